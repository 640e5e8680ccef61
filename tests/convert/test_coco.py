from __future__ import annotations

from pathlib import Path

from gt_toolkit.convert import ConvertOptions, convert_output
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
