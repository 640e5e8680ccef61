from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit import iter_crowd_images
from gt_toolkit.consolidation.reconsolidate import reconsolidate
from gt_toolkit.errors import CrowdSourceError
from gt_toolkit.formats.crowd.report import CrowdReject
from gt_toolkit.formats.crowd.sources import open_crowd_source
from tests.helpers import CROWD, consolidated_boxes

EXPORT = CROWD / "label-studio.json"
MINIMAL = CROWD / "label-studio-min.json"

# Annotator 7 and bea drew img_a (annotator 12 cancelled it); on img_b bea drew nothing.
# By hand: img_a car: IoU 121.6/128 = 0.95 between (64,48,128,96) and (70.4,48,121.6,96),
# fused (67.2,48,124.8,96), confidence 1 - 0.05/4; person: bea's 20% x 10% box turned 90
# degrees clockwise about its top-left corner (384,240) spans (336,240,48,128), IoU 0.6 with
# (320,240,64,96), fused (328,240,56,112), confidence 1 - 0.4/4; img_b car: IoU 18240/20160
# between (160,120) and (160,126), two of three workers: (2 - (1 - IoU)/2)/3.
EXPECTED = {
    "s3://bkt/photos/img_a.jpg": [
        ("car", 67, 48, 125, 96, 0.9875),
        ("person", 328, 240, 56, 112, 0.9),
    ],
    "s3://bkt/photos/img_b.jpg": [("car", 160, 123, 160, 120, 0.6508)],
    "s3://bkt/photos/img_c.jpg": "reconsolidate: no worker answers for this object",
}


def consolidate(location: Path, tmp_path: Path) -> tuple[dict[str, Any], Any]:
    out = tmp_path / "out.manifest"
    with open_crowd_source(location, "label-studio") as source:
        # the head count: the expected boxes are its arithmetic on a tiny crowd
        report = reconsolidate(source, out, worker_model=None)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    return consolidated_boxes(lines), report


@pytest.mark.parametrize("location", [EXPORT, MINIMAL], ids=["json", "json-min"])
def test_export_consolidates_box_by_box(location: Path, tmp_path: Path) -> None:
    boxes, report = consolidate(location, tmp_path)
    assert boxes == EXPECTED
    assert report.labels == ["car", "person"]
    ingest = report.ingest
    assert (ingest.images, ingest.answers, ingest.boxes, ingest.rotated) == (3, 5, 6, 1)
    assert ingest.annotators == {"7", "bea@example.com", "12"}
    assert report.complete


def test_json_export_counts_what_it_skips() -> None:
    with open_crowd_source(EXPORT, "label-studio") as source:
        images = list(source.images())
    assert dict(source.report.skipped) == {"cancelled-annotation": 1, "not-a-box": 1}
    assert "1 rotated boxes read as their axis-aligned envelope" in source.report.summary()
    a, b, c = images
    assert a.annotators == ("7", "bea@example.com")  # 12 cancelled img_a
    assert b.annotators == ("7", "bea@example.com", "12") and b.boxes[1] == []
    assert c.annotators == () and c.image_size is None


def test_rotated_rectangle_becomes_its_envelope() -> None:
    image = next(iter_crowd_images(EXPORT, "label-studio"))
    person = image.boxes[1][1]
    assert person["label"] == "person"
    got = [person[k] for k in ("left", "top", "width", "height")]  # type: ignore[literal-required]
    assert got == pytest.approx([336, 240, 48, 128])


def test_data_key_picks_the_image_field(tmp_path: Path) -> None:
    tasks = json.loads(EXPORT.read_text())
    for task in tasks:
        task["data"] = {"photo": task["data"]["image"]}
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    keys = [i.key for i in iter_crowd_images(path, "label-studio", data_key="photo")]
    assert keys == list(EXPECTED)
    with pytest.raises(CrowdSourceError, match=r"export\.json: task 0 \(id 101\): no-image"):
        next(iter_crowd_images(path, "label-studio"))


def test_old_completions_export_reads_like_annotations(tmp_path: Path) -> None:
    tasks = json.loads(EXPORT.read_text())
    for task in tasks:
        task["completions"] = task.pop("annotations")
    path = tmp_path / "old.json"
    path.write_text(json.dumps(tasks))
    boxes, _ = consolidate(path, tmp_path)
    assert boxes == EXPECTED


def mutate(tasks: list[Any], change: str) -> list[Any] | str:
    first = tasks[0]["annotations"][0]
    if change == "no-x":
        del first["result"][1]["value"]["x"]
    elif change == "string-width":
        first["result"][0]["value"]["width"] = "20"
    elif change == "no-label":
        first["result"][0]["value"]["rectanglelabels"] = []
    elif change == "no-size":
        for result in first["result"]:
            del result["original_width"]
    elif change == "no-annotator":
        del first["completed_by"]
    elif change == "size-conflict":  # two annotators disagree on the image's size
        for result in tasks[0]["annotations"][1]["result"]:
            result["original_width"] = 800
    elif change == "size-conflict-within":
        tasks[0]["annotations"][1]["result"][0]["original_width"] = 800
    elif change == "not-a-list":
        return json.dumps({"tasks": tasks})
    elif change == "truncated":
        return json.dumps(tasks)[:700]
    return tasks


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no-x", r"task 0 \(id 101\), annotation 0, result 1: malformed: x, y, width, height"),
        ("string-width", r"task 0 \(id 101\), annotation 0, result 0: malformed"),
        ("no-label", r"task 0 \(id 101\), annotation 0, result 0: malformed: no rectanglelabels"),
        ("no-size", r"annotation 0, result 0: no-image-size"),
        ("no-annotator", r"task 0 \(id 101\), annotation 0: no-annotator"),
        (
            "size-conflict",
            r"annotation 1: image 's3://bkt/photos/img_a.jpg' is 800x480 for bea@example.com "
            r"but 640x480 for 7",
        ),
        ("size-conflict-within", r"annotation 1, result 1: image .* is 640x480 here but 800x480"),
        ("not-a-list", r"bad\.json: not a Label Studio export: expected a JSON list"),
        ("truncated", r"bad\.json: task 0: not JSON"),
    ],
)
def test_malformed_input_is_one_line_with_file_and_position(
    tmp_path: Path, change: str, message: str
) -> None:
    changed = mutate(json.loads(EXPORT.read_text()), change)
    path = tmp_path / "bad.json"
    path.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.raises(CrowdSourceError, match=message) as caught:
        list(iter_crowd_images(path, "label-studio"))
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_with_a_reject_handler_broken_boxes_are_kept_aside(tmp_path: Path) -> None:
    changed = mutate(json.loads(EXPORT.read_text()), "no-x")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(changed))
    rejects: list[CrowdReject] = []
    with open_crowd_source(path, "label-studio", on_reject=rejects.append) as source:
        images = list(source.images())
    (reject,) = rejects
    assert reject.to_json()["position"] == "task 0 (id 101), annotation 0, result 1"
    assert '"rectanglelabels": ["person"]' in reject.to_json()["raw"].replace('":[', '": [')
    assert [len(b) for b in images[0].boxes] == [1, 2]  # the annotator's other box stays
    assert source.report.rejected == 1


def test_an_annotator_whose_every_box_is_broken_did_not_draw_nothing(tmp_path: Path) -> None:
    tasks = json.loads(EXPORT.read_text())
    for result in tasks[0]["annotations"][0]["result"]:
        result["value"]["x"] = "left"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(tasks))
    rejects: list[CrowdReject] = []
    with open_crowd_source(path, "label-studio", on_reject=rejects.append) as source:
        first = next(source.images())
    assert len(rejects) == 2
    assert first.annotators == ("bea@example.com",)  # 7 is left out, not a "no" vote
