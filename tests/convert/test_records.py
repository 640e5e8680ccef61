"""What every target reads: odd class ids and coordinates are rejects, never output."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit.convert import ConvertOptions, Target, convert_output
from gt_toolkit.errors import ConversionError
from tests.helpers import DATA, image_mirror, read_jsonl

FORWARD_DETECTION = [
    Target.AUGMENTED,
    Target.OD_JSON,
    Target.JUMPSTART_OD,
    Target.COCO,
    Target.YOLO,
    Target.VOC,
]


def _line(ref: str, box: dict[str, Any]) -> bytes:
    """One output-manifest line with one box; its class map names only class 0."""
    body = (
        '{"source-ref": "s3://bkt-x/%s", "b": {"image_size": [{"width": 100, "height": 80, '
        '"depth": 3}], "annotations": [%s]}, "b-metadata": {"objects": [{"confidence": 0.9}], '
        '"class-map": {"0": "cat"}, "type": "groundtruth/object-detection", '
        '"creation-date": "2024-01-01T00:00:00"}}'
    )
    fields = ", ".join(f'"{k}": {v}' for k, v in box.items())
    return (body % (ref, "{" + fields + "}")).encode()


_SIZE = b'"image_size": [{"width": 100, "height": 80, "depth": 3}], '
GOOD = {"class_id": "0", "left": "1", "top": "2", "width": "30", "height": "40"}

# (case, box fields as raw JSON, reason); raw JSON so 2^64 arrives as JSON writes it.
ODD = [
    ("id 2^64", {**GOOD, "class_id": str(2**64)}, "invalid-label"),
    ("id 2^64-1", {**GOOD, "class_id": str(2**64 - 1)}, "invalid-label"),
    ("id 10^30", {**GOOD, "class_id": "1" + "0" * 30}, "invalid-label"),
    ("negative id", {**GOOD, "class_id": "-1"}, "invalid-label"),
    ("id in no class map", {**GOOD, "class_id": "7"}, "unknown-class-id"),
    ("boolean left", {**GOOD, "left": "true"}, "invalid-label"),
    ("boolean top", {**GOOD, "top": "false"}, "invalid-label"),
    ("boolean width", {**GOOD, "width": "true"}, "invalid-label"),
    ("boolean id", {**GOOD, "class_id": "false"}, "invalid-label"),
]


@pytest.mark.parametrize("target", FORWARD_DETECTION, ids=str)
@pytest.mark.parametrize(("case", "box", "reason"), ODD, ids=[c[0] for c in ODD])
def test_odd_class_ids_and_coordinates_are_rejects(
    tmp_path: Path, target: Target, case: str, box: dict[str, Any], reason: str
) -> None:
    src = tmp_path / "in.manifest"
    src.write_bytes(_line("good.jpg", GOOD) + b"\n" + _line("odd.jpg", box) + b"\n")
    rejects = tmp_path / "rejects.jsonl"
    options: dict[str, Any] = {"rejects": rejects}
    if target in (Target.OD_JSON, Target.JUMPSTART_OD):
        options["copy_images"] = False
    result = convert_output(target, src, tmp_path / "out", ConvertOptions(**options))
    assert result.stats.objects == 1
    assert result.stats.rejected == {reason: 1}
    [rejected] = read_jsonl(rejects)
    assert (rejected["file"], rejected["line"], rejected["reason"]) == (str(src), 2, reason)
    assert "odd.jpg" in rejected["raw"]


@pytest.mark.parametrize(
    ("label", "meta", "reason"),
    [
        ("-1", '"class-name": "cat"', "invalid-label"),
        (str(2**64), '"class-name": "cat"', "invalid-label"),
        ("3", '"other": 1', "unknown-class-id"),
        ("true", '"class-name": "cat"', "invalid-label"),
    ],
)
def test_odd_classification_ids_are_rejects(
    tmp_path: Path, label: str, meta: str, reason: str
) -> None:
    line = (
        '{"source-ref": "s3://bkt-x/%s", "pet": %s, "pet-metadata": {%s, '
        '"type": "groundtruth/image-classification", "creation-date": "2024-01-01T00:00:00"}}'
    )
    good = line % ("a.jpg", "0", '"class-name": "cat"')
    odd = line % ("b.jpg", label, meta)
    src = tmp_path / "in.manifest"
    src.write_text(good + "\n" + odd + "\n")
    rejects = tmp_path / "rejects.jsonl"
    result = convert_output(
        "lst", src, tmp_path / "out", ConvertOptions(rejects=rejects, copy_images=False)
    )
    assert result.extra["class_index"] == {"0": "cat"}
    assert [(r["line"], r["reason"]) for r in read_jsonl(rejects)] == [(2, reason)]


SIZED = [Target.OD_JSON, Target.JUMPSTART_OD, Target.COCO, Target.YOLO, Target.VOC]


@pytest.mark.parametrize("target", SIZED, ids=str)
def test_a_line_without_image_size_is_a_written_reject_not_an_empty_image(
    tmp_path: Path, target: Target
) -> None:
    src = tmp_path / "in.manifest"
    sizeless = _line("sizeless.jpg", GOOD).replace(
        b'"image_size": [{"width": 100, "height": 80, "depth": 3}], ', b""
    )
    empty = _line("empty.jpg", GOOD).replace(b"[{" + b'"class_id"', b'[], "x": [{"class_id"', 1)
    assert sizeless != _line("sizeless.jpg", GOOD)
    src.write_bytes(b"\n".join([_line("good.jpg", GOOD), sizeless, empty]) + b"\n")
    rejects = tmp_path / "rejects.jsonl"
    options: dict[str, Any] = {"rejects": rejects}
    if target in (Target.OD_JSON, Target.JUMPSTART_OD):
        options["copy_images"] = False
    result = convert_output(target, src, tmp_path / "out", ConvertOptions(**options))
    # counted once, as a reject, and kept in the rejects file with its line
    assert result.stats.rejected == {"no-image-size": 1}
    assert result.stats.objects == 2
    assert result.stats.empty_images == 1  # only the image with no boxes
    [rejected] = read_jsonl(rejects)
    assert (rejected["line"], rejected["reason"]) == (2, "no-image-size")
    assert "sizeless.jpg" in rejected["raw"]


def _written_box(target: Target, out: Path) -> list[float]:
    """The one box a target wrote, as ``[xmin, ymin, xmax, ymax]`` pixels of a 100x80 image."""
    if target is Target.YOLO:
        [label] = list((out / "labels").rglob("*.txt"))
        _, cx, cy, w, h = (float(v) for v in label.read_text().split())
        return [(cx - w / 2) * 100, (cy - h / 2) * 80, (cx + w / 2) * 100, (cy + h / 2) * 80]
    if target is Target.VOC:
        [xml] = list((out / "Annotations").glob("*.xml"))
        box = ET.parse(xml).getroot().find("object/bndbox")
        assert box is not None
        return [float(box.findtext(tag) or "nan") for tag in ("xmin", "ymin", "xmax", "ymax")]
    if target is Target.COCO:
        doc = json.loads((out / "annotations" / "instances_default.json").read_text())
        x, y, w, h = doc["annotations"][0]["bbox"]
        return [x, y, x + w, y + h]
    if target is Target.JUMPSTART_OD:
        return [
            float(v)
            for v in json.loads((out / "annotations.json").read_text())["annotations"][0]["bbox"]
        ]
    [doc_file] = list(out.glob("*_annotation/*.json"))
    ann = json.loads(doc_file.read_text())["annotations"][0]
    return [ann["left"], ann["top"], ann["left"] + ann["width"], ann["top"] + ann["height"]]


@pytest.mark.parametrize("target", SIZED, ids=str)
def test_boxes_past_an_image_sized_from_its_file_are_clipped_like_any_other(
    tmp_path: Path, target: Target
) -> None:
    """A label without image_size takes the size of its mirrored image, and its boxes with it.

    The box reached 30 px past the right edge: it was written as it was (YOLO centre 1.0,
    VOC xmax 120 in a 100 px image) and counted as unclipped, under the default ``clip``.
    """
    src = tmp_path / "in.manifest"
    box = {**GOOD, "left": "70", "top": "-10", "width": "60", "height": "40"}
    src.write_bytes(_line("sizeless.jpg", box).replace(_SIZE, b""))
    mirror = image_mirror(tmp_path, src, size=(100, 80))
    out = tmp_path / "out"
    result = convert_output(target, src, out, ConvertOptions(images_dir=str(mirror)))
    assert result.stats.clipped_boxes == 1
    assert _written_box(target, out) == pytest.approx([70, 0, 100, 30], abs=1e-3)

    rejects = tmp_path / "rejects.jsonl"
    options = ConvertOptions(images_dir=str(mirror), box_policy="reject", rejects=rejects)
    with pytest.raises(ConversionError, match="nothing was converted"):
        convert_output(target, src, tmp_path / "strict", options)
    assert [r["reason"] for r in read_jsonl(rejects)] == ["box-outside-image"]


@pytest.mark.parametrize("target", SIZED, ids=str)
def test_a_sideways_phone_photo_is_sized_as_the_worker_saw_it(
    tmp_path: Path, target: Target
) -> None:
    """Stored 100 x 80 with EXIF orientation 6, a browser shows it 80 x 100, and so it was
    labeled: a box on its lower part (y 82..97) lay past the stored height and was dropped,
    the line an ``all-boxes-dropped`` reject, and the run converted nothing."""
    from PIL import Image

    src = tmp_path / "in.manifest"
    box = {**GOOD, "left": "10", "top": "82", "width": "60", "height": "15"}
    src.write_bytes(_line("phone.jpg", box).replace(_SIZE, b""))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn a quarter clockwise to show
    Image.new("RGB", (100, 80)).save(mirror / "phone.jpg", "JPEG", exif=exif.tobytes())
    out = tmp_path / "out"
    result = convert_output(target, src, out, ConvertOptions(images_dir=str(mirror)))
    assert (result.stats.objects, result.stats.boxes, result.stats.clipped_boxes) == (1, 1, 0)
    if target is Target.COCO:
        doc = json.loads((out / "annotations" / "instances_default.json").read_text())
        assert (doc["images"][0]["width"], doc["images"][0]["height"]) == (80, 100)
        assert doc["annotations"][0]["bbox"] == [10, 82, 60, 15]
    if target is Target.YOLO:
        [label] = list((out / "labels").rglob("*.txt"))
        assert [float(v) for v in label.read_text().split()] == pytest.approx(
            [0, 40 / 80, 89.5 / 100, 60 / 80, 15 / 100]
        )


@pytest.mark.parametrize("target", [*FORWARD_DETECTION, Target.LST, Target.CLASS_FOLDERS], ids=str)
def test_a_second_line_of_one_image_is_a_reject_in_every_target(
    tmp_path: Path, target: Target
) -> None:
    """``augmented`` wrote both lines: the image trained twice (under two labels, perhaps),
    where every other target rejects the second line with its file and line."""
    classes = target in (Target.LST, Target.CLASS_FOLDERS)
    lines = (
        (DATA / "outputs" / ("classification-single" if classes else "api-job"))
        .with_suffix(".manifest")
        .read_text()
        .splitlines()[:3]
    )
    src = tmp_path / "doubled.manifest"
    src.write_text("\n".join([*lines, lines[1]]) + "\n")
    mirror = image_mirror(tmp_path, src)
    rejects = tmp_path / "rejects.jsonl"
    options = ConvertOptions(rejects=rejects)
    if target not in (Target.AUGMENTED, Target.YOLO, Target.VOC):
        options = ConvertOptions(rejects=rejects, images_dir=str(mirror))
    result = convert_output(target, src, tmp_path / "out", options)
    assert result.stats.rejected == {"duplicate-source-ref": 1}
    assert result.stats.lost_total == 1  # the run exits 1
    assert result.stats.objects == 3
    [item] = read_jsonl(rejects)
    assert (item["line"], item["reason"]) == (4, "duplicate-source-ref")
    assert item["file"] == str(src)


@pytest.mark.parametrize("target", FORWARD_DETECTION, ids=str)
def test_one_class_name_under_two_ids_is_refused(tmp_path: Path, target: Target) -> None:
    """Two jobs with ``cat`` at different places in their label lists: line 1 says
    ``0: cat``, line 2 ``1: cat`` (each line's class-map names its own classes only). YOLO,
    COCO and the rest wrote two classes named cat, VOC's labelmap.txt cat twice; exit 0."""
    second = _line("b.jpg", {**GOOD, "class_id": "1"}).replace(b'{"0": "cat"}', b'{"1": "cat"}')
    src = tmp_path / "in.manifest"
    src.write_bytes(_line("a.jpg", GOOD) + b"\n" + second + b"\n")
    options: dict[str, Any] = {}
    if target in (Target.OD_JSON, Target.JUMPSTART_OD):
        options["copy_images"] = False
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match=r"'cat' is class id 0 \(line 1\) and 1 \(line 2\)"):
        convert_output(target, src, out, ConvertOptions(**options))
    assert not out.exists()


def test_class_folders_take_one_name_under_two_ids_as_one_class(tmp_path: Path) -> None:
    line = (
        '{"source-ref": "s3://bkt-x/%s.jpg", "pet": %d, "pet-metadata": {"class-name": "cat", '
        '"type": "groundtruth/image-classification", "creation-date": "2024-01-01T00:00:00"}}'
    )
    src = tmp_path / "in.manifest"
    src.write_text(line % ("a", 0) + "\n" + line % ("b", 1) + "\n")
    mirror = image_mirror(tmp_path, src)
    with pytest.raises(ConversionError, match="'cat' is class id 0"):
        convert_output("lst", src, tmp_path / "lst", ConvertOptions(copy_images=False))
    out = tmp_path / "folders"
    options = ConvertOptions(images_dir=str(mirror), validation_fraction=0)
    result = convert_output("class-folders", src, out, options)
    assert result.extra["class_index"] == {"0": "cat"}
    assert sorted(p.name for p in (out / "train" / "cat").iterdir()) == ["a.jpg", "b.jpg"]


LONG = "\u00e9" * 150 + ".jpg"  # 304 bytes: an S3 key takes it, no file system's name does


@pytest.mark.parametrize("target", SIZED, ids=str)
def test_an_image_name_too_long_for_a_file_gets_a_short_hashed_one(
    tmp_path: Path, target: Target, store: Any, bucket: str
) -> None:
    """The run failed (exit 1) with "File name too long" writing the label file or image."""
    src = tmp_path / "in.manifest"
    lines = [_line(LONG, GOOD), _line("other/" + LONG, GOOD), _line("short.jpg", GOOD)]
    src.write_bytes(b"\n".join(lines).replace(b"bkt-x", bucket.encode()) + b"\n")
    for key in (LONG, "other/" + LONG, "short.jpg"):
        store.put_bytes(f"s3://{bucket}/{key}", b"image")
    out = tmp_path / "out"
    copy = target is not Target.YOLO or None  # yolo: labels only, the others copy the images
    split = {} if target in (Target.COCO, Target.JUMPSTART_OD) else {"validation_fraction": 0.0}
    options = ConvertOptions(store=store, copy_images=copy, **split)
    result = convert_output(target, src, out, options)
    assert result.stats.objects == 3
    written = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert all(len(p.name.encode()) <= 205 for p in written)  # <stem>.json at the most
    named = {p.stem for p in written if p.stem.startswith("\u00e9")}
    assert len(named) == 2  # the two long names stay two images
    if copy:
        assert sorted(p.read_bytes() for p in written if p.suffix == ".jpg") == [b"image"] * 3
