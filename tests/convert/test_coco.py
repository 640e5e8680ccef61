from __future__ import annotations

from pathlib import Path

import orjson

from gt_toolkit.convert import ConvertOptions, convert_output
from gt_toolkit.convert.images import windows_unsafe
from gt_toolkit.convert.staging import LISTING
from gt_toolkit.formats.output_manifest import iter_detection_records
from tests.helpers import DATA, image_mirror, read_jsonl

OUTPUTS = DATA / "outputs"
CONSOLE = OUTPUTS / "console-job.manifest"
API = OUTPUTS / "api-job.manifest"


def test_coco_loads_in_pycocotools_and_round_trips(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    out = tmp_path / "coco.json"
    convert_output("coco", CONSOLE, out, ConvertOptions())
    coco = COCO(str(out))
    assert {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())} == {"dog": 1, "toy": 2}
    assert len(coco.getImgIds()) == 4
    assert len(coco.getAnnIds()) == 6
    img = next(i for i in coco.loadImgs(coco.getImgIds()) if i["file_name"] == "img_004.jpg")
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
    assert sorted(a["bbox"] for a in anns)[-1] == [600, 400, 40, 80]  # clipped box
    # back to a Ground Truth manifest with a prior label, then read like any output
    back = tmp_path / "back.manifest"
    convert_output("from-coco", out, back, ConvertOptions(label_attribute="prior"))
    original = {r.source_ref: r for r in iter_detection_records(CONSOLE)}
    again = {r.source_ref: r for r in iter_detection_records(back)}
    assert set(again) == set(original)
    for ref, rec in original.items():
        got = [(b.label, b.left, b.top, b.width, b.height) for b in again[ref].boxes]
        assert got == [(b.label, b.left, b.top, b.width, b.height) for b in rec.boxes]
    first = read_jsonl(back)[0]
    assert first["prior-metadata"]["type"] == "groundtruth/object-detection"
    assert first["prior-metadata"]["human-annotated"] == "no"


def test_a_folder_output_has_the_layout_datumaro_imports(tmp_path: Path) -> None:
    """datumaro's coco importer: annotations/instances_<subset>.json, images/<subset>/."""
    from pycocotools.coco import COCO

    mirror = image_mirror(tmp_path, API)
    out = tmp_path / "ds"
    result = convert_output(
        "coco", API, out, ConvertOptions(copy_images=True, images_dir=str(mirror))
    )
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        LISTING,  # hidden, at the top: no importer looks there
        "annotations/instances_default.json",
        *(f"images/default/{n}.png" for n in "abcd"),
    ]
    assert result.outputs["coco"] == str(out / "annotations" / "instances_default.json")
    coco = COCO(str(out / "annotations" / "instances_default.json"))
    for image in coco.loadImgs(coco.getImgIds()):
        assert (out / "images" / "default" / image["file_name"]).is_file()
    # One annotation per box and no polygon: a box-shaped polygon was read as a second box.
    assert len(coco.getAnnIds()) == 5
    assert all(a["segmentation"] == [] for a in coco.loadAnns(coco.getAnnIds()))


def _renamed_refs(tmp_path: Path, names: list[str]) -> Path:
    """api-job.manifest with its images renamed (``cars/<name>``, in order)."""
    lines = [orjson.loads(x) for x in API.read_text().splitlines()]
    for line, name in zip(lines, names, strict=False):
        line["source-ref"] = f"s3://gt-demo-bucket/{name}"
    src = tmp_path / "renamed.manifest"
    src.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    return src


def test_coco_without_copies_names_each_image_by_its_own_name(tmp_path: Path) -> None:
    """No file is written: a 304-byte name (or a Windows device name) got a hashed
    ``file_name``, naming no file the training job could find. A clash is still hashed:
    two entries of one ``file_name`` are one image to datumaro; ``source_ref`` keeps it."""
    long = "\u00e9" * 150 + ".png"
    src = _renamed_refs(tmp_path, [f"cars/{long}", "cars/aux.png", f"other/{long}"])
    out = tmp_path / "c.json"
    convert_output("coco", src, out, ConvertOptions())
    images = orjson.loads(out.read_bytes())["images"]
    names = [i["file_name"] for i in images]
    assert names[:2] == [long, "aux.png"]
    assert names[2] != long and len(names[2].encode()) <= 200  # the clash: a name no file has
    assert images[2]["source_ref"] == f"s3://gt-demo-bucket/other/{long}"
    assert not (tmp_path / "images").exists()


def test_coco_copies_of_windows_device_names_get_names_windows_can_hold(tmp_path: Path) -> None:
    """``aux.png`` and ``LPT1.x.png`` were copied (and named in ``file_name``) as they were:
    no such file can be made on Windows, and ``img.png.`` is ``img.png`` there."""
    src = _renamed_refs(tmp_path, ["cars/aux.png", "cars/LPT1.x.png", "cars/img.png.", "b/ok.png"])
    mirror = image_mirror(tmp_path, src)
    out = tmp_path / "c.json"
    convert_output("coco", src, out, ConvertOptions(copy_images=True, images_dir=str(mirror)))
    names = [i["file_name"] for i in orjson.loads(out.read_bytes())["images"]]
    assert names[3] == "ok.png"
    assert [n.split("-")[0] for n in names[:3]] == ["aux", "LPT1", "img"]
    assert not any(windows_unsafe(n) for n in names)
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == sorted(names)


def test_coco_without_copies_keeps_names_that_share_only_a_stem(tmp_path: Path) -> None:
    """``cars/img.jpg`` and ``cars/img.png`` are two files of two names: without copies no
    label file is named after the stem, yet the second got ``img-<hash>.png``, which no file
    has (and jumpstart-od --no-copy-images the same). A name clash is still hashed."""
    src = _renamed_refs(tmp_path, ["cars/img.jpg", "cars/img.png", "other/img.jpg"])
    out = tmp_path / "c.json"
    convert_output("coco", src, out, ConvertOptions())
    names = [i["file_name"] for i in orjson.loads(out.read_bytes())["images"]]
    assert names[:2] == ["img.jpg", "img.png"]
    assert names[2] not in ("img.jpg", "img.png")
    convert_output("jumpstart-od", src, tmp_path / "js", ConvertOptions(copy_images=False))
    doc = orjson.loads((tmp_path / "js" / "annotations.json").read_bytes())
    assert [i["file_name"] for i in doc["images"]][:2] == ["img.jpg", "img.png"]


def test_coco_without_copies_keeps_s3_names_that_differ_only_by_case_or_normalisation(
    tmp_path: Path,
) -> None:
    """``cars/IMG.jpg`` and ``cars/img.jpg`` (or ``é`` composed and decomposed) are two S3
    objects of two keys, and two ``file_name`` keys to a reader: without copies no file is
    written, yet the name compared case-folded (and NFC) as for a disk gave the second
    ``img-<hash>.jpg``, which no object has. Only the same name is a clash (see above)."""
    nfc, nfd = "caf\u00e9.jpg", "cafe\u0301.jpg"
    src = _renamed_refs(tmp_path, [f"cars/{n}" for n in ("IMG.jpg", "img.jpg", nfc, nfd)])
    out = tmp_path / "c.json"
    convert_output("coco", src, out, ConvertOptions())
    names = [i["file_name"] for i in orjson.loads(out.read_bytes())["images"]]
    assert names == ["IMG.jpg", "img.jpg", nfc, nfd]
    convert_output("jumpstart-od", src, tmp_path / "js", ConvertOptions(copy_images=False))
    doc = orjson.loads((tmp_path / "js" / "annotations.json").read_bytes())
    assert [i["file_name"] for i in doc["images"]] == ["IMG.jpg", "img.jpg", nfc, nfd]
