from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit.convert import ConvertOptions, convert_output
from gt_toolkit.convert.yolo import data_yaml
from gt_toolkit.errors import ConversionError
from gt_toolkit.formats.output_manifest import iter_detection_records
from tests.helpers import DATA, image_mirror

OUTPUTS = DATA / "outputs"
CONSOLE = OUTPUTS / "console-job.manifest"
API = OUTPUTS / "api-job.manifest"


def test_yolo_round_trip_through_images(tmp_path: Path) -> None:
    mirror = image_mirror(tmp_path, API)
    out = tmp_path / "yolo"
    convert_output(
        "yolo",
        API,
        out,
        ConvertOptions(copy_images=True, images_dir=str(mirror), validation_fraction=0.5),
    )

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


def test_data_yaml_names_the_dataset_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ultralytics resolves a relative ``path`` against the current folder, not the file."""
    import yaml

    monkeypatch.chdir(tmp_path)
    convert_output("yolo", API, "rel/yolo", ConvertOptions(validation_fraction=0.5))
    doc = yaml.safe_load((tmp_path / "rel" / "yolo" / "data.yaml").read_text())
    assert doc["path"] == str(tmp_path / "rel" / "yolo")
    assert (doc["train"], doc["val"]) == ("images/train", "images/val")
    assert doc["names"] == {0: "car", 1: "truck", 2: "bike"}
    assert doc["nc"] == 3


def test_data_yaml_on_s3_has_no_path(store: Any, bucket: str) -> None:
    """No ``path``: Ultralytics then takes the folder data.yaml was downloaded to."""
    import yaml

    out = f"s3://{bucket}/yolo"
    convert_output("yolo", API, out, ConvertOptions(store=store))
    doc = yaml.safe_load(store.get_bytes(f"{out}/data.yaml"))
    assert "path" not in doc
    assert doc["names"][2] == "bike"


def test_dotted_stems_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "in.manifest"
    src.write_text(API.read_text().replace("cars/a.png", "cars/x_ver1.0_640.png"))
    mirror = image_mirror(tmp_path, src)
    out = tmp_path / "yolo"
    convert_output("yolo", src, out, ConvertOptions(copy_images=True, images_dir=str(mirror)))
    assert len(list((out / "labels").rglob("x_ver1.0_640.txt"))) == 1
    back = tmp_path / "back.manifest"
    convert_output("from-yolo", out, back)
    refs = {r.source_ref for r in iter_detection_records(back)}
    assert "s3://gt-demo-bucket/cars/x_ver1.0_640.png" in refs


def test_a_second_line_of_one_image_is_a_reject_not_an_overwrite(tmp_path: Path) -> None:
    # one label file per image (yolo, voc, od-json share the reader): the second line would
    # replace the first one's boxes
    target = "yolo"
    lines = API.read_text().splitlines()
    doubled = tmp_path / "doubled.manifest"
    doubled.write_text("\n".join([*lines, lines[0]]) + "\n")
    out = tmp_path / target
    result = convert_output(target, doubled, out, ConvertOptions())
    assert result.stats.rejected == {"duplicate-source-ref": 1}
    assert result.stats.lost_total == 1  # the run reports a loss (exit 1)
    assert result.stats.objects == len(lines)
    single = convert_output(target, API, tmp_path / "single", ConvertOptions())
    assert result.stats.boxes == single.stats.boxes  # the rejected line's boxes uncounted


def test_a_rejected_lines_clipped_and_dropped_boxes_and_its_box_count_leave_the_summary(
    tmp_path: Path,
) -> None:
    # the second line of one image, with 10 more boxes (4 of them clipped, 3 outside): the
    # summary said "max 13 per image, 4 boxes clipped, 3 dropped" of a line it rejected
    lines = API.read_text().splitlines()
    again = json.loads(lines[0])
    attr = next(k for k in again if k.endswith("-metadata")).removesuffix("-metadata")
    size = again[attr]["image_size"][0]
    first = again[attr]["annotations"][0]
    edge = {"left": size["width"] - 5, "width": 50}
    outside = {"left": size["width"] + 10, "width": 5}
    again[attr]["annotations"] += [first] * 3 + [first | edge] * 4 + [first | outside] * 3
    again[f"{attr}-metadata"]["objects"] += [{"confidence": 0.9}] * 10
    doubled = tmp_path / "doubled.manifest"
    doubled.write_text("\n".join([*lines, json.dumps(again)]) + "\n")
    result = convert_output("yolo", doubled, tmp_path / "yolo", ConvertOptions())
    single = convert_output("yolo", API, tmp_path / "single", ConvertOptions())
    assert result.stats.rejected == {"duplicate-source-ref": 1}
    summary, plain = result.to_json(), single.to_json()
    for key in ("boxes", "max_boxes_per_image", "clipped_boxes", "dropped_boxes"):
        assert summary[key] == plain[key], key


def test_a_label_under_another_attribute_name_is_named_in_the_rejects(tmp_path: Path) -> None:
    # one run converts one attribute (the first line's here); a line whose label is under
    # another name is its own reject reason, so the summary shows it (not a silent no-label);
    # it is no loss: it may be an input's prior label on an object the job skipped
    lines = [json.loads(x) for x in API.read_text().splitlines()]
    attr = next(k for k in lines[0] if k.endswith("-metadata")).removesuffix("-metadata")
    moved = dict(lines[1])
    moved["other"], moved["other-metadata"] = moved.pop(attr), moved.pop(f"{attr}-metadata")
    mixed = tmp_path / "mixed.manifest"
    mixed.write_text("".join(json.dumps(x) + "\n" for x in [lines[0], moved, *lines[2:]]))
    result = convert_output("yolo", mixed, tmp_path / "yolo", ConvertOptions())
    assert result.stats.rejected == {"other-label-attribute": 1}
    assert result.stats.lost_total == 0
    del moved["other-metadata"]  # a bare value is no label at all
    moved[f"{attr}-metadata"] = lines[1][f"{attr}-metadata"]  # metadata without its label
    mixed.write_text("".join(json.dumps(x) + "\n" for x in [lines[0], moved, *lines[2:]]))
    result = convert_output("yolo", mixed, tmp_path / "yolo2", ConvertOptions())
    assert result.stats.rejected == {"no-label": 1}


def test_an_image_whose_every_box_misses_it_is_not_a_negative(tmp_path: Path) -> None:
    # clipping drops a box that lies wholly outside the image; an image left with none had
    # objects nonetheless, so it is a reject, never an empty label file (a negative example)
    lines = [json.loads(x) for x in API.read_text().splitlines()]
    attr = next(k for k in lines[0] if k.endswith("-metadata")).removesuffix("-metadata")
    for ann in lines[0][attr]["annotations"]:
        ann["left"] = 10_000
    moved = tmp_path / "outside.manifest"
    moved.write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = convert_output("yolo", moved, tmp_path / "yolo", ConvertOptions())
    assert result.stats.rejected == {"all-boxes-dropped": 1}
    assert result.stats.empty_images == 0
    written = {p.stem for p in (tmp_path / "yolo" / "labels").rglob("*.txt")}
    assert lines[0]["source-ref"].rsplit("/", 1)[1].rsplit(".", 1)[0] not in written


def test_data_yaml_reads_back_any_class_name_and_refuses_absurd_ids(tmp_path: Path) -> None:
    import yaml

    names = ["car", "del\x7f", "c1\x85", 'tab\tquote"', "émoji 🚗", "line\nbreak"]
    assert yaml.safe_load(data_yaml("s3://b/yolo", names))["names"] == dict(enumerate(names))
    lines = [json.loads(x) for x in API.read_text().splitlines()]
    attr = next(k for k in lines[0] if k.endswith("-metadata")).removesuffix("-metadata")
    lines[0][attr]["annotations"][0]["class_id"] = 2**31 - 1
    lines[0][f"{attr}-metadata"]["class-map"][str(2**31 - 1)] = "far"
    sparse = tmp_path / "sparse.manifest"
    sparse.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(ConversionError, match="renumber the classes"):
        convert_output("yolo", sparse, tmp_path / "yolo", ConvertOptions())
    assert not (tmp_path / "yolo").exists()


def test_images_named_like_another_ones_hashed_name_keep_their_own_label_files(
    tmp_path: Path,
) -> None:
    """An export's ``img-<hash>.jpg`` listed before the two ``img.jpg`` it came from: the
    second ``img.jpg`` got that same name, and its label file replaced the export's."""
    lines = API.read_text().splitlines()[:3]
    clash = hashlib.blake2b(b"s3://gt-demo-bucket/b/img.png", digest_size=4).hexdigest()
    refs = [f"cars/img-{clash}.png", "a/img.png", "b/img.png"]
    src = tmp_path / "in.manifest"
    src.write_text(
        "".join(
            line.replace(json.loads(line)["source-ref"], f"s3://gt-demo-bucket/{ref}") + "\n"
            for line, ref in zip(lines, refs, strict=True)
        )
    )
    mirror = image_mirror(tmp_path, src)
    out = tmp_path / "yolo"
    options = ConvertOptions(validation_fraction=0, copy_images=True, images_dir=str(mirror))
    convert_output("yolo", src, out, options)
    labels = sorted(p.name for p in (out / "labels" / "train").iterdir())
    assert len(labels) == 3
    back = tmp_path / "back.manifest"
    convert_output("from-yolo", out, back, ConvertOptions())
    original = {r.source_ref: len(r.boxes) for r in iter_detection_records(src)}
    assert {r.source_ref: len(r.boxes) for r in iter_detection_records(back)} == original


def test_placeholder_names_of_unused_ids_are_no_class_name(tmp_path: Path) -> None:
    """Class 0 is named ``class_1`` and id 1 is unused: data.yaml named both 0 and 1
    ``class_1``, and from-yolo refused the dataset (two classes of one name)."""
    lines = [json.loads(x) for x in API.read_text().splitlines()]
    for line in lines:
        meta = line["boxes-metadata"]
        cmap = {k: "class_1" if k == "0" else v for k, v in meta["class-map"].items()}
        meta["class-map"] = {k: v for k, v in cmap.items() if k != "1"}
        kept = [a for a in line["boxes"]["annotations"] if a["class_id"] != 1]
        meta["objects"] = meta["objects"][: len(kept)]
        line["boxes"]["annotations"] = kept
    src = tmp_path / "in.manifest"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    mirror = image_mirror(tmp_path, src)
    out = tmp_path / "yolo"
    options = ConvertOptions(copy_images=True, images_dir=str(mirror))
    result = convert_output("yolo", src, out, options)
    names = result.extra["names"]
    assert names[0] == "class_1" and names[2] == "bike"
    assert len(set(names)) == 3
    back = tmp_path / "back.manifest"
    convert_output("from-yolo", out, back, ConvertOptions())
    original = {r.source_ref: r.labels for r in iter_detection_records(src)}
    assert {r.source_ref: r.labels for r in iter_detection_records(back)} == original


def test_label_files_of_windows_device_names_get_names_windows_can_hold(tmp_path: Path) -> None:
    """The label file of ``nul.png`` was ``nul.txt``, of ``Com1 .png`` ``Com1 .txt``: a
    dataset no Windows disk could hold, even without ``--copy-images``."""
    lines = [json.loads(x) for x in API.read_text().splitlines()]
    for line, name in zip(lines, ["nul.png", "Com1 .png", "a.png "], strict=False):
        line["source-ref"] = f"s3://gt-demo-bucket/cars/{name}"
    src = tmp_path / "nul.manifest"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "y"
    convert_output("yolo", src, out, ConvertOptions(validation_fraction=0))
    stems = sorted(p.stem for p in (out / "labels" / "train").iterdir())
    assert len(stems) == 4 and "d" in stems
    assert sorted(s.split("-")[0] for s in stems) == ["Com1", "a", "d", "nul"]
    sources = [json.loads(x) for x in (out / "sources.jsonl").read_text().splitlines()]
    assert len(sources) == 4
