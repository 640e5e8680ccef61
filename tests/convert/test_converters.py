from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
import pytest
from PIL import Image

from gt_toolkit.convert import CONVERTERS, ConvertOptions, Target, convert_output
from gt_toolkit.errors import ConversionError
from gt_toolkit.formats.output_manifest import iter_detection_records
from gt_toolkit.formats.sampling import split_name
from tests.helpers import DATA

OUTPUTS = DATA / "outputs"
CONSOLE = OUTPUTS / "console-job.manifest"
API = OUTPUTS / "api-job.manifest"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


def _mirror(tmp_path: Path, manifest: Path, size: tuple[int, int] | None = None) -> Path:
    """Local images for every source-ref of a fixture, sized from its image_size."""
    root = tmp_path / "mirror"
    for raw in manifest.read_bytes().splitlines():
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        ref = line["source-ref"]
        key = ref.split("/", 3)[3]
        w, h = size or (640, 480)
        for value in line.values():
            if isinstance(value, dict) and value.get("image_size"):
                w, h = value["image_size"][0]["width"], value["image_size"][0]["height"]
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (w, h), (90, 120, 150)).save(
            path, format="PNG" if ref.endswith(".png") else "JPEG"
        )
    return root


def test_registry_covers_every_target() -> None:
    assert set(CONVERTERS) == set(Target)
    assert {t.value for t in Target} >= {"augmented", "coco", "yolo", "voc", "from-coco"}


def test_augmented_split_channels_and_facts(tmp_path: Path) -> None:
    out = tmp_path / "aug"
    result = convert_output("augmented", API, out, ConvertOptions(validation_fraction=0.5, seed=3))
    train, val = _lines(out / "train.manifest"), _lines(out / "validation.manifest")
    assert len(train) + len(val) == 4
    for line in train + val:
        assert list(line) == ["source-ref", "boxes"]  # image first, no metadata by default
        want = split_name(line["source-ref"], seed=3, validation_fraction=0.5)
        assert (line in val) == (want == "validation")
    channels = json.loads((out / "channels.json").read_text())
    assert channels["attribute_names"] == ["source-ref", "boxes"]
    cfg = {c["ChannelName"]: c for c in channels["InputDataConfig"]}
    assert set(cfg) == {"train", "validation"}
    src = cfg["train"]["DataSource"]["S3DataSource"]
    assert src["S3DataType"] == "AugmentedManifestFile"
    assert src["AttributeNames"] == ["source-ref", "boxes"]
    assert cfg["train"]["RecordWrapperType"] == "RecordIO"
    assert cfg["train"]["InputMode"] == "Pipe"
    assert channels["num_training_samples"] == {"train": len(train), "validation": len(val)}
    assert channels["hyperparameters"]["num_training_samples"] == str(len(train))
    assert channels["num_classes"] == 3
    assert channels["label_width_required"] == 2 + 5 * 2
    assert result.stats.clipped_boxes == 1
    clipped = next(x for x in train + val if x["source-ref"].endswith("d.png"))
    assert clipped["boxes"]["annotations"][0]["width"] == 40


def test_augmented_rejects_empty_by_default_and_keeps_metadata_on_request(tmp_path: Path) -> None:
    out = tmp_path / "aug"
    result = convert_output(
        "augmented",
        CONSOLE,
        out,
        ConvertOptions(include_metadata=True, rejects=tmp_path / "r.jsonl", validation_fraction=0),
    )
    lines = _lines(out / "train.manifest")
    assert [x["source-ref"][-11:] for x in lines] == ["img_001.jpg", "img_004.jpg", "img_005.jpg"]
    assert all(x["dogs-and-toys-metadata"]["type"] == "groundtruth/object-detection" for x in lines)
    assert lines[1]["dogs-and-toys"]["annotations"][0]["class_id"] == 1  # "1" normalised
    reasons = sorted(
        json.loads(x)["reason"] for x in (tmp_path / "r.jsonl").read_text().splitlines()
    )
    assert reasons == ["empty-image", "failed-object", "invalid-json"]
    assert result.stats.rejected_total == 3
    notes = json.loads((out / "channels.json").read_text())["notes"]
    assert any("one channel is empty" in n for n in notes)


def test_stratified_split_gives_each_class_its_share(tmp_path: Path) -> None:
    src = tmp_path / "many.manifest"
    rows = []
    for i in range(60):
        cls = 0 if i < 50 else 1  # class 1 is rare: 10 images
        rows.append(
            {
                "source-ref": f"s3://bkt-x/i{i}.jpg",
                "b": {
                    "image_size": [{"width": 100, "height": 100, "depth": 3}],
                    "annotations": [
                        {"class_id": cls, "left": 1, "top": 1, "width": 5, "height": 5}
                    ],
                },
                "b-metadata": {
                    "objects": [{"confidence": 0}],
                    "class-map": {str(cls): ["common", "rare"][cls]},
                    "type": "groundtruth/object-detection",
                    "creation-date": "2024-01-01T00:00:00",
                },
            }
        )
    src.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    out = tmp_path / "s"
    convert_output("augmented", src, out, ConvertOptions(validation_fraction=0.2, stratify=True))
    val = _lines(out / "validation.manifest")
    rare = [x for x in val if x["b"]["annotations"][0]["class_id"] == 1]
    assert len(val) == 12
    assert len(rare) == 2


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
    first = _lines(back)[0]
    assert first["prior-metadata"]["type"] == "groundtruth/object-detection"
    assert first["prior-metadata"]["human-annotated"] == "no"


def test_from_coco_needs_a_prefix_for_relative_file_names(tmp_path: Path) -> None:
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4], "score": 0.4}
        ],
        "categories": [{"id": 7, "name": "cat"}],
    }
    src = tmp_path / "c.json"
    src.write_bytes(orjson.dumps(doc))
    with pytest.raises(ConversionError, match="--image-prefix"):
        convert_output("from-coco", src, tmp_path / "o.manifest", ConvertOptions())
    convert_output(
        "from-coco", src, tmp_path / "o.manifest", ConvertOptions(image_prefix="s3://bkt-x/imgs/")
    )
    line = _lines(tmp_path / "o.manifest")[0]
    assert line["source-ref"] == "s3://bkt-x/imgs/a.jpg"
    assert line["prior-boxes"]["annotations"] == [
        {"class_id": 0, "left": 1, "top": 2, "width": 3, "height": 4}
    ]
    assert line["prior-boxes-metadata"]["objects"] == [{"confidence": 0.4}]


def test_yolo_round_trip_through_images(tmp_path: Path) -> None:
    mirror = _mirror(tmp_path, API)
    out = tmp_path / "yolo"
    result = convert_output(
        "yolo",
        API,
        out,
        ConvertOptions(copy_images=True, images_dir=str(mirror), validation_fraction=0.5),
    )
    assert result.image_errors == []
    assert (out / "classes.txt").read_text().split() == ["car", "truck", "bike"]
    labels = sorted((out / "labels").rglob("*.txt"))
    assert len(labels) == 4
    first = next(p for p in labels if p.stem == "a").read_text().split("\n")[0].split()
    assert first[0] == "0"
    assert [float(v) for v in first[1:]] == pytest.approx([62 / 320, 80 / 240, 100 / 320, 80 / 240])
    back = tmp_path / "back.manifest"
    convert_output("from-yolo", out, back, ConvertOptions())
    original = {r.source_ref: r for r in iter_detection_records(API)}
    again = {r.source_ref: r for r in iter_detection_records(back)}
    assert set(again) == set(original)
    for ref, rec in original.items():
        got = [(b.label, b.left, b.top, b.width, b.height) for b in again[ref].boxes]
        assert got == [(b.label, b.left, b.top, b.width, b.height) for b in rec.boxes]


def test_voc_is_readable_by_a_standard_parser(tmp_path: Path) -> None:
    from globox import AnnotationSet

    out = tmp_path / "voc"
    convert_output("voc", API, out, ConvertOptions(validation_fraction=0.5))
    doc = ET.parse(out / "Annotations" / "a.xml").getroot()
    assert doc.findtext("size/width") == "320"
    names = [o.findtext("name") for o in doc.iter("object")]
    assert names == ["car", "bike"]
    assert doc.findtext("object/bndbox/xmax") == "112"
    sets = [(out / "ImageSets" / "Main" / f).read_text().split() for f in ("train.txt", "val.txt")]
    assert sorted(sets[0] + sets[1]) == ["a", "b", "c", "d"]
    loaded = AnnotationSet.from_pascal_voc(out / "Annotations")
    assert len(loaded) == 4
    assert sum(len(a.boxes) for a in loaded) == 5


def test_jumpstart_od_uses_xyxy_and_copies_images(tmp_path: Path) -> None:
    mirror = _mirror(tmp_path, API)
    out = tmp_path / "js"
    convert_output("jumpstart-od", API, out, ConvertOptions(images_dir=str(mirror)))
    doc = json.loads((out / "annotations.json").read_text())
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "a.png",
        "b.png",
        "c.png",
        "d.png",
    ]
    a = next(i for i in doc["images"] if i["file_name"] == "a.png")
    boxes = [x["bbox"] for x in doc["annotations"] if x["image_id"] == a["id"]]
    assert boxes == [[12, 40, 112, 120], [200, 100, 255, 160]]
    assert {c["name"] for c in doc["categories"]} == {"car", "truck", "bike"}


def test_od_json_writes_four_channels(tmp_path: Path) -> None:
    mirror = _mirror(tmp_path, API)
    out = tmp_path / "od"
    convert_output(
        "od-json", API, out, ConvertOptions(images_dir=str(mirror), validation_fraction=0.5)
    )
    docs = sorted((out).glob("*_annotation/*.json"))
    assert len(docs) == 4
    for doc_path in docs:
        doc = json.loads(doc_path.read_text())
        split = doc_path.parent.name.removesuffix("_annotation")
        assert (out / split / doc["file"]).is_file()
        assert doc["image_size"][0]["width"] == 320


def test_lst_single_and_multi_label(tmp_path: Path) -> None:
    out = tmp_path / "lst"
    result = convert_output(
        "lst",
        OUTPUTS / "classification-single.manifest",
        out,
        ConvertOptions(copy_images=False, validation_fraction=0),
    )
    rows = [x.split("\t") for x in (out / "train.lst").read_text().splitlines()]
    assert rows == [
        ["0", "1", "p1.jpg"],
        ["1", "0", "p2.jpg"],
        ["2", "0", "p3.jpg"],
        ["3", "2", "p4.jpg"],
    ]
    assert result.extra["class_index"] == {"0": "cat", "1": "dog", "2": "bird"}
    multi = tmp_path / "multi"
    convert_output(
        "lst",
        OUTPUTS / "classification-multi.manifest",
        multi,
        ConvertOptions(copy_images=False, validation_fraction=0),
    )
    rows = [x.split("\t") for x in (multi / "train.lst").read_text().splitlines()]
    assert rows[0] == ["0", "1", "1", "0", "s1.jpg"]
    assert rows[2] == ["2", "0", "0", "0", "s3.jpg"]


def test_class_folders_refuses_multi_label(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="single-label"):
        convert_output(
            "class-folders",
            OUTPUTS / "classification-multi.manifest",
            tmp_path / "f",
            ConvertOptions(images_dir=str(tmp_path)),
        )


def test_class_folders_downloads_from_s3_and_writes_back(
    store: Any, bucket: str, tmp_path: Path
) -> None:
    rows = []
    for i, (cls, name) in enumerate([(0, "cat"), (1, "dog"), (0, "cat")]):
        key = f"pets/p{i}.jpg"
        store.put_bytes(f"s3://{bucket}/{key}", f"image-{i}".encode())
        rows.append(
            {
                "source-ref": f"s3://{bucket}/{key}",
                "animal": cls,
                "animal-metadata": {
                    "class-name": name,
                    "type": "groundtruth/image-classification",
                    "creation-date": "2024-01-01T00:00:00",
                },
            }
        )
    store.put_bytes(f"s3://{bucket}/out/output.manifest", b"\n".join(orjson.dumps(r) for r in rows))
    local = tmp_path / "folders"
    result = convert_output(
        "class-folders", f"s3://{bucket}/out/output.manifest", local, ConvertOptions(store=store)
    )
    assert result.image_errors == []
    written = sorted(p.relative_to(local).as_posix() for p in local.rglob("*.jpg"))
    # each image in exactly one split, under its class folder
    assert sorted(w.split("/", 1)[1] for w in written) == ["cat/p0.jpg", "cat/p2.jpg", "dog/p1.jpg"]
    assert {w.split("/", 1)[0] for w in written} <= {"train", "validation"}
    dog = next(w for w in written if w.endswith("p1.jpg"))
    assert (local / dog).read_bytes() == b"image-1"
    split_of = {w.rsplit("/", 1)[1]: w.split("/", 1)[0] for w in written}
    missing = {
        f"class {name!r} has no {split} images"
        for name, images in (("cat", ["p0.jpg", "p2.jpg"]), ("dog", ["p1.jpg"]))
        for split in ("train", "validation")
        if split not in {split_of[i] for i in images}
    }
    assert set(result.notes) == missing
    # and S3 to S3
    convert_output(
        "class-folders",
        f"s3://{bucket}/out/output.manifest",
        f"s3://{bucket}/folders/",
        ConvertOptions(store=store),
    )
    assert store.get_bytes(f"s3://{bucket}/folders/{split_of['p2.jpg']}/cat/p2.jpg") == b"image-2"


def test_missing_images_are_reported_not_lost(tmp_path: Path) -> None:
    mirror = _mirror(tmp_path, API)
    (mirror / "cars" / "b.png").unlink()
    out = tmp_path / "js"
    result = convert_output(
        "jumpstart-od",
        API,
        out,
        ConvertOptions(images_dir=str(mirror), images_prefix="s3://gt-demo-bucket/"),
    )
    assert len(result.image_errors) == 1
    assert "b.png" in result.image_errors[0]
    assert len(json.loads((out / "annotations.json").read_text())["images"]) == 4


def test_augmented_to_and_from_s3(store: Any, bucket: str) -> None:
    store.put_bytes(f"s3://{bucket}/job/output.manifest", API.read_bytes())
    convert_output(
        "augmented",
        f"s3://{bucket}/job/output.manifest",
        f"s3://{bucket}/channels",
        ConvertOptions(store=store, validation_fraction=0.5),
    )
    channels = json.loads(store.get_bytes(f"s3://{bucket}/channels/channels.json"))
    uris = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in channels["InputDataConfig"]]
    assert uris == [
        f"s3://{bucket}/channels/train.manifest",
        f"s3://{bucket}/channels/validation.manifest",
    ]
    n = sum(len(store.get_bytes(u).splitlines()) for u in uris)
    assert n == 4
    assert not any("local paths" in x for x in channels["notes"])
