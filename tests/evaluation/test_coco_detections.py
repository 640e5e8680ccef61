from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit.errors import ValidationError
from gt_toolkit.evaluation import coco_detections
from gt_toolkit.evaluation.coco_detections import (
    is_coco_file,
    read_coco_detections,
    read_coco_results,
)
from gt_toolkit.evaluation.metrics import read_detection_set
from tests.helpers import SAMPLES

COCO = {
    "images": [
        {"id": 1, "file_name": "a.jpg", "source_ref": "s3://b/a.jpg", "width": 9, "height": 9},
        {"id": 2, "file_name": "b.jpg"},
        {"id": 3, "file_name": "c.jpg", "failure_reason": "reconsolidate: nobody answered"},
    ],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4], "score": 0.5},
        {"id": 2, "image_id": 2, "category_id": 7, "bbox": [0, 0, 2, 2]},
        {"id": 3, "image_id": 2, "category_id": 7, "bbox": [0, 0, 9, 9], "iscrowd": 1, "area": 50},
    ],
    "categories": [{"id": 7, "name": "car"}],
}


@pytest.mark.parametrize(("indent", "bom"), [(None, b""), (2, b""), (None, b"\xef\xbb\xbf")])
def test_boxes_by_source_ref_or_file_name(tmp_path: Path, indent: int | None, bom: bytes) -> None:
    path = tmp_path / "coco.json"
    path.write_bytes(bom + json.dumps(COCO, indent=indent).encode())  # a BOM: Windows tools
    assert is_coco_file(path)
    found = read_detection_set(path)
    assert found.kind == "coco"
    assert [(b.label, b.left, b.score) for b in found.boxes["s3://b/a.jpg"]] == [("car", 1, 0.5)]
    assert [b.score for b in found.boxes["b.jpg"]] == [1.0, 1.0]  # a dataset's box is certain
    # A crowd region is kept, flagged, with the file's area (an absent one is width x height).
    assert [(b.crowd, b.area) for b in found.boxes["b.jpg"]] == [(False, None), (True, 50.0)]
    assert "c.jpg" not in found.boxes and len(found.skipped) == 1  # the failed image


def test_a_coco_file_without_annotations_is_coco(tmp_path: Path) -> None:
    # COCO's image-info files (test-dev) have no "annotations" key; pycocotools reads them.
    path = tmp_path / "image_info.json"
    path.write_text(json.dumps({k: v for k, v in COCO.items() if k != "annotations"}))
    assert is_coco_file(path)
    found = read_detection_set(path)
    assert found.kind == "coco"
    assert found.boxes == {"s3://b/a.jpg": [], "b.jpg": []} and len(found.skipped) == 1


def test_manifests_are_not_coco() -> None:
    assert not is_coco_file(SAMPLES / "truth.manifest")
    assert not is_coco_file(
        SAMPLES / "job-output" / "samples-balls" / "manifests" / "output" / "output.manifest"
    )


def test_broken_entries_are_named(tmp_path: Path) -> None:
    coco = json.loads(json.dumps(COCO))
    coco["annotations"][0]["bbox"] = [1, 2, "x", 4]
    coco["annotations"][1]["image_id"] = 99
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    with pytest.raises(ValidationError) as caught:
        read_coco_detections(path)
    assert [p.split(": ", 1)[1] for p in caught.value.problems] == [
        "annotations[0]: needs bbox [x, y, w, h] and score as finite numbers, "
        "got [1, 2, 'x', 4], 0.5",
        "annotations[1]: no image 99",
    ]
    with pytest.raises(ValidationError, match="no label attribute"):
        read_detection_set(path, label_attribute="boxes")


def _with(change: str) -> Any:
    """COCO with one defect; ``change`` names it (the test ids)."""
    coco = json.loads(json.dumps(COCO))
    images, anns, cats = coco["images"], coco["annotations"], coco["categories"]
    if change == "image-id-twice":  # pycocotools keeps the last: a.jpg's box would move to b.jpg
        images[1]["id"] = 1
        anns[1]["image_id"] = 1
    elif change == "category-id-twice":  # the last name would relabel every car a bus
        cats.append({"id": 7, "name": "bus"})
    elif change == "category-name-twice":  # scored by name: two classes would be one
        cats.append({"id": 8, "name": cats[0]["name"]})
        anns[1]["category_id"] = 8
    elif change == "category-without-name":
        del cats[0]["name"]
    elif change == "empty-file-name":
        images[1]["file_name"] = ""
    elif change == "negative-width":
        anns[0]["bbox"] = [1, 2, -3, 4]
    elif change == "score-not-a-number":
        anns[0]["score"] = "0.5"
    elif change == "iscrowd-not-0-or-1":  # pycocotools would ignore it but not use its IoU rule
        anns[2]["iscrowd"] = "1"
    elif change == "area-not-a-number":  # would decide the size range
        anns[2]["area"] = "50"
    elif change == "negative-area":
        anns[1]["area"] = -4
    elif change == "annotations-not-a-list":
        coco["annotations"] = "none"
    return coco


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("image-id-twice", "images[1]: id 1 is listed twice (images[0])"),
        ("category-id-twice", "categories[1]: id 7 is listed twice (categories[0])"),
        (
            "category-name-twice",
            "categories[1]: name 'car' is listed twice (categories[0]): boxes are scored by name",
        ),
        ("category-without-name", "categories[0]: needs an id (an integer or a string) and a name"),
        ("empty-file-name", "images[1]: needs an id (an integer or a string) and a file_name"),
        ("negative-width", "annotations[0]: bbox [1, 2, -3, 4] has a negative width or height"),
        ("score-not-a-number", "annotations[0]: needs bbox [x, y, w, h] and score as finite"),
        ("iscrowd-not-0-or-1", "annotations[2]: iscrowd must be 0 or 1, got '1'"),
        ("area-not-a-number", "annotations[2]: area must be a finite number >= 0, got '50'"),
        ("negative-area", "annotations[1]: area must be a finite number >= 0, got -4"),
        ("annotations-not-a-list", "'annotations' must be a list, got str"),
    ],
)
def test_defects_that_would_move_or_bend_boxes_are_named(
    tmp_path: Path, change: str, message: str
) -> None:
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(_with(change)))
    with pytest.raises(ValidationError) as caught:
        read_coco_detections(path)
    assert caught.value.problems[0].startswith(f"{path}: {message}")


@pytest.mark.parametrize("indent", [None, 2])
def test_a_results_list_without_its_coco_file_names_what_it_needs(
    tmp_path: Path, indent: int | None
) -> None:
    results = [{"image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4], "score": 0.5}]
    path = tmp_path / "results.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(results, indent=indent).encode())
    for reference in (None, SAMPLES / "truth.manifest"):  # none, or not a COCO file
        with pytest.raises(ValidationError) as caught:
            read_detection_set(path, coco_reference=reference)
        assert len(caught.value.problems) == 1  # not one invalid-json line per indented line
        assert "COCO results list" in caught.value.problems[0]
        assert "evaluate RESULTS COCO_FILE" in caught.value.problems[0]
        assert "from-coco" in caught.value.problems[0]


def test_a_results_list_reads_its_ids_in_the_coco_file(tmp_path: Path) -> None:
    reference = tmp_path / "instances.json"
    reference.write_text(json.dumps(COCO))
    results = [
        {"image_id": 2, "category_id": 7, "bbox": [0, 0, 2, 2], "score": 0.9},
        # loadRes sets every result's iscrowd to 0 and its area to width x height
        {"image_id": 2, "category_id": 7, "bbox": [5, 5, 3, 3], "score": 0.2, "iscrowd": 1},
        {"image_id": 3, "category_id": 7, "bbox": [0, 0, 1, 1], "score": 0.7},  # failed image
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    found = read_detection_set(path, coco_reference=reference)
    assert found.kind == "coco-results"
    assert found.boxes["s3://b/a.jpg"] == []  # an image no result names is there, empty
    assert [(b.label, b.left, b.score, b.crowd, b.area) for b in found.boxes["b.jpg"]] == [
        ("car", 0, 0.9, False, None),
        ("car", 5, 0.2, False, None),
    ]
    assert "c.jpg" not in found.boxes and len(found.skipped) == 1


def test_broken_results_are_named_by_position(tmp_path: Path) -> None:
    reference = tmp_path / "instances.json"
    reference.write_text(json.dumps(COCO))
    results = [
        {"image_id": 9, "category_id": 7, "bbox": [0, 0, 2, 2], "score": 0.9},
        {"image_id": 1, "category_id": 8, "bbox": [0, 0, 2, 2], "score": 0.9},
        {"image_id": 1, "category_id": 7, "bbox": [0, 0, 2, 2]},
        "a box",
        {"image_id": 1, "category_id": 7, "bbox": [0, 0, 2], "score": 0.9},
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    with pytest.raises(ValidationError) as caught:
        read_coco_results(path, reference)
    assert [p.removeprefix(f"{path}: ") for p in caught.value.problems] == [
        "[2]: needs image_id, category_id, bbox and score",
        "[3]: needs image_id, category_id, bbox and score",
        "[0]: no image 9",
        "[1]: unknown category_id 8",
        "[4]: needs bbox [x, y, w, h] and score as finite numbers, got [0, 0, 2], 0.9",
    ]
    path.write_text(json.dumps({"results": results}))
    with pytest.raises(ValidationError, match="not a COCO results list"):
        read_coco_results(path, reference)


def test_a_whole_float_id_meets_the_integer_id(tmp_path: Path) -> None:
    # pycocotools keys its dicts by the ids as given, and 1.0 == 1 there; a writer that
    # goes through floats (pandas) writes 1.0
    coco = json.loads(json.dumps(COCO))
    coco["annotations"][0]["image_id"] = 1.0
    coco["annotations"][0]["category_id"] = 7.0
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    assert [b.label for b in read_coco_detections(path).boxes["s3://b/a.jpg"]] == ["car"]
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps([{"image_id": 2.0, "category_id": 7, "bbox": [0, 0, 1, 1], "score": 1}])
    )
    assert len(read_coco_results(results, path).boxes["b.jpg"]) == 1


@pytest.mark.parametrize("big", [2**64, -(2**63) - 10, 10**400], ids=["u64", "i64", "400 digits"])
def test_ids_past_64_bits_stay_apart(tmp_path: Path, big: int) -> None:
    # orjson reads them as the nearest float: 2**64 + 1 and 2**64 + 2 were one id, refused
    # as "listed twice", and a results list's boxes could land on the wrong image; past the
    # float range orjson refused the file
    coco = json.loads(json.dumps(COCO))
    for entry in coco["images"]:
        entry["id"] += big
    for ann in coco["annotations"]:
        ann["image_id"] += big
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    found = read_coco_detections(path)
    assert [b.left for b in found.boxes["s3://b/a.jpg"]] == [1]
    assert [b.left for b in found.boxes["b.jpg"]] == [0, 0]
    results = tmp_path / "results.json"
    result = {"image_id": big + 2, "category_id": 7, "bbox": [3, 0, 1, 1], "score": 1}
    results.write_text(json.dumps([result]))
    boxes = read_coco_results(results, path).boxes
    assert boxes["s3://b/a.jpg"] == [] and [b.left for b in boxes["b.jpg"]] == [3]


def test_fractions_with_many_digits_are_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a 20-digit run of a score's fraction (json.dumps of a float32) made every detector's
    # results list be parsed twice, both copies in memory at once
    reference = tmp_path / "instances.json"
    reference.write_text(json.dumps(COCO))
    result = {
        "image_id": 2,
        "category_id": 7,
        "bbox": [0, 0, 2, 2],
        "score": 0.00040973525028675795,
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps([result]))

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("read twice")

    monkeypatch.setattr(coco_detections.json, "loads", refuse)
    assert [b.score for b in read_coco_results(path, reference).boxes["b.jpg"]] == [result["score"]]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('{"images": [{"id": NaN}]}', "not JSON: unexpected character"),
        # the standard library reads a lone surrogate, and the report then failed to print
        ('{"images": [{"id": 1, "file_name": "\\ud800.jpg"}]}', "not JSON: no low surrogate"),
        ('{"images": [{"id": 1' + "0" * 5000 + "}]}", "cannot read it exactly: Exceeds the limit"),
    ],
    ids=["nan", "lone surrogate", "5000 digits"],
)
def test_what_cannot_be_read_exactly_is_one_problem(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "coco.json"
    path.write_text(text)
    with pytest.raises(ValidationError, match=said):
        read_coco_detections(path)


def test_names_told_apart_by_id_never_meet_another_name(tmp_path: Path) -> None:
    # Two categories 'a' become 'a (id 0)' and 'a (id 1)'; a third category named
    # 'a (id 0)' would have been one class with the first. It is told apart again.
    coco = json.loads(json.dumps(COCO))
    coco["categories"] = [
        {"id": 0, "name": "a"},
        {"id": 1, "name": "a"},
        {"id": 2, "name": "a (id 0)"},
    ]
    anns = coco["annotations"]
    for ann, cat in zip(anns, (0, 1, 2), strict=True):
        ann["category_id"] = cat
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    found = read_coco_detections(path, by_id=True, partner=path)
    labels = [b.label for boxes in found.boxes.values() for b in boxes]
    assert len(set(labels)) == 3
    assert labels[0] == "a (id 0) (id 0)" and labels[2] == "a (id 0) (id 2)"
