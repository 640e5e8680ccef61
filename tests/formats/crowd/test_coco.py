from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit import iter_crowd_images
from gt_toolkit.consolidation.reconsolidate import reconsolidate
from gt_toolkit.errors import CrowdSourceError
from gt_toolkit.formats.crowd.report import CrowdReject
from gt_toolkit.formats.crowd.sources import open_crowd_source
from tests.helpers import CROWD, consolidated_boxes

RATERS = CROWD / "coco-raters.json"
PER_ANNOTATOR = CROWD / "coco-per-annotator"


def consolidate(location: Path, kind: str, tmp_path: Path, **kw: Any) -> tuple[Any, Any]:
    out = tmp_path / "out.manifest"
    with open_crowd_source(location, kind, **kw) as source:
        # the head count: the expected boxes are its arithmetic on a tiny crowd
        report = reconsolidate(source, out, image_prefix="s3://bkt/photos/", worker_model=None)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    return consolidated_boxes(lines), report


def test_raters_file_consolidates_box_by_box(tmp_path: Path) -> None:
    # r3 is listed on img_a and drew nothing there: three workers, two drew each object
    # (2/3 x (1 - (1 - IoU)/4)); on img_b r2 drew nothing. r9's box (not listed on img_b)
    # is a reject, r3's crowd region is skipped.
    rejects: list[CrowdReject] = []
    boxes, report = consolidate(RATERS, "coco-raters", tmp_path, on_reject=rejects.append)
    assert boxes == {
        "s3://bkt/photos/img_a.jpg": [
            ("car", 67, 48, 125, 96, 0.6583),
            ("person", 328, 240, 56, 112, 0.6),
        ],
        "s3://bkt/photos/img_b.jpg": [("car", 160, 123, 160, 120, 0.6508)],
    }
    assert report.labels == ["car", "person"]  # the categories, by name
    assert report.ingest.answers == 6 and report.ingest.annotators == {"r1", "r2", "r3"}
    assert dict(report.ingest.skipped) == {"crowd-region": 1, "rater-not-listed": 1}
    (reject,) = rejects
    assert str(reject).endswith(
        "annotations[7]: rater-not-listed: rater 'r9' is not in the image's rater_list"
    )
    assert not report.complete


def test_per_annotator_folder_consolidates_box_by_box(tmp_path: Path) -> None:
    # each file numbers images and categories its own way; carl saw img_b only, bea drew
    # nothing there: the same crowd as the Label Studio fixture
    boxes, report = consolidate(PER_ANNOTATOR, "coco-per-annotator", tmp_path)
    assert boxes == {
        "s3://bkt/photos/img_a.jpg": [
            ("car", 67, 48, 125, 96, 0.9875),
            ("person", 328, 240, 56, 112, 0.9),
        ],
        "s3://bkt/photos/img_b.jpg": [("car", 160, 123, 160, 120, 0.6508)],
    }
    images = list(iter_crowd_images(PER_ANNOTATOR, "coco-per-annotator"))
    assert [i.annotators for i in images] == [("alice", "bea"), ("alice", "bea", "carl")]
    assert report.complete and report.ingest.boxes == 6


def test_sessions_count_as_annotators(tmp_path: Path) -> None:
    coco = json.loads(RATERS.read_text())
    coco["images"][0]["rater_list"] = {"r1": [1, 2]}
    coco["images"][1]["rater_list"] = {"r1": [1], "r3": [1]}
    for ann in coco["annotations"]:
        ann["session_id"] = 2 if ann["rater_id"] == "r2" else 1
        ann["rater_id"] = "r1" if ann["rater_id"] == "r2" else ann["rater_id"]
    path = tmp_path / "sessions.json"
    path.write_text(json.dumps(coco))
    rejects: list[CrowdReject] = []
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        images = list(source.images())
    assert [i.annotators for i in images] == [("r1 (S1)", "r1 (S2)"), ("r1 (S1)", "r3 (S1)")]
    assert [len(b) for b in images[0].boxes] == [2, 2]
    assert [r.reason.value for r in rejects] == ["rater-not-listed"]  # r9


def test_without_rater_list_the_raters_are_those_who_drew(tmp_path: Path) -> None:
    coco = json.loads(RATERS.read_text())
    for image in coco["images"]:
        del image["rater_list"]
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(coco))
    images = list(iter_crowd_images(path, "coco-raters"))
    assert [i.annotators for i in images] == [("r1", "r2"), ("r1", "r3", "r9")]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("image", r"raters\.json: annotations\[0\] \(id 1\): unknown-image: image_id 99"),
        ("category", r"raters\.json: annotations\[0\] \(id 1\): unknown-category: category_id 42"),
        ("bbox", r"raters\.json: annotations\[0\] \(id 1\): malformed: bbox is not \[x, y, "),
        ("rater", r"raters\.json: annotations\[0\]: no-annotator: no rater_id"),
        ("file_name", r"raters\.json: images\[1\]: malformed: no id or file_name"),
        ("truncated", r"raters\.json: categories\[\d+\]: not JSON: "),
    ],
)
def test_malformed_input_is_one_line_with_file_and_position(
    tmp_path: Path, change: str, message: str
) -> None:
    coco = json.loads(RATERS.read_text())
    first = coco["annotations"][0]
    text = None
    if change == "image":
        first["image_id"] = 99
    elif change == "category":
        first["category_id"] = 42
    elif change == "bbox":
        first["bbox"] = [64, 48, "wide", 96]
    elif change == "rater":
        del first["rater_id"]
    elif change == "file_name":
        del coco["images"][1]["file_name"]
    else:
        text = json.dumps(coco)[:300]
    path = tmp_path / "raters.json"
    path.write_text(text if text is not None else json.dumps(coco))
    with pytest.raises(CrowdSourceError, match=message) as caught:
        list(iter_crowd_images(path, "coco-raters"))
    assert "\n" not in str(caught.value)


def test_per_annotator_size_conflict_names_both(tmp_path: Path) -> None:
    folder = tmp_path / "coco"
    shutil.copytree(PER_ANNOTATOR, folder)
    carl = json.loads((folder / "carl.json").read_text())
    carl["images"][0]["height"] = 500
    (folder / "carl.json").write_text(json.dumps(carl))
    with pytest.raises(
        CrowdSourceError,
        match=r"carl\.json: images\[0\]: image 'img_b\.jpg' is 640x500 for carl but 640x480 "
        r"for alice",
    ):
        list(iter_crowd_images(folder, "coco-per-annotator"))


def test_a_rater_whose_every_box_is_broken_is_left_out(tmp_path: Path) -> None:
    coco = json.loads(RATERS.read_text())
    coco["annotations"][0]["bbox"] = [64, 48, None, 96]  # r1's car on img_a
    coco["annotations"][1]["category_id"] = 77  # r1's person on img_a
    path = tmp_path / "raters.json"
    path.write_text(json.dumps(coco))
    rejects: list[CrowdReject] = []
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        img_a, img_b = source.images()
    assert [r.reason.value for r in rejects] == [
        "malformed",
        "unknown-category",
        "rater-not-listed",
    ]
    assert img_a.annotators == ("r2", "r3")  # r3 drew nothing; r1's boxes could not be read
    assert img_b.annotators == ("r1", "r2", "r3")
