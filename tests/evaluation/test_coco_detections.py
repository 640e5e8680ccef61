from __future__ import annotations

import json
from pathlib import Path

import pytest

from gt_toolkit.errors import ValidationError
from gt_toolkit.evaluation.coco_detections import is_coco_file, read_coco_detections
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
        {"id": 3, "image_id": 2, "category_id": 7, "bbox": [0, 0, 9, 9], "iscrowd": 1},
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
    assert [b.score for b in found.boxes["b.jpg"]] == [1.0]  # a dataset's box is certain
    assert "c.jpg" not in found.boxes and len(found.skipped) == 2  # failed image, crowd region


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
        "annotations[0]: needs a known category_id and bbox [x, y, w, h]",
        "annotations[1]: no image 99",
    ]
    with pytest.raises(ValidationError, match="no label attribute"):
        read_detection_set(path, label_attribute="boxes")
