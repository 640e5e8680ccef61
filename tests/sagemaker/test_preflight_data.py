"""Pre-flight of class folders and JumpStart detection data, local and on moto's S3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit.convert import ConvertOptions, convert_output
from gt_toolkit.sagemaker.preflight_data import (
    list_folder,
    preflight_class_folders,
    preflight_jumpstart_detection,
)
from gt_toolkit.sagemaker.preflight_report import PreflightReport
from gt_toolkit.storage.s3 import S3Store
from tests.helpers import SAMPLES


def messages(report: PreflightReport) -> tuple[list[str], list[str]]:
    return [f.message for f in report.errors], [f.message for f in report.warnings]


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for name, body in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            path.mkdir(exist_ok=True)
        else:
            path.write_bytes(body)
    return root


# -- class folders ---------------------------------------------------------------------------

FOLDERS = {"cat/a.jpg": b"x", "cat/b.jpg": b"x", "dog/c.png": b"x"}


def test_good_class_folders(tmp_path: Path) -> None:
    train = write_files(tmp_path / "train", FOLDERS)
    validation = write_files(tmp_path / "validation", FOLDERS)
    report = preflight_class_folders(train, validation)
    assert report.ok and not report.warnings
    assert report.counts == {"train": 3, "validation": 3}
    assert report.class_ids == {0, 1}


@pytest.mark.parametrize(
    ("train", "validation", "error", "warning"),
    [
        ({**FOLDERS, "bird/": b""}, FOLDERS, "class folders without images: ['bird']", None),
        ({**FOLDERS, "bird/notes.txt": b""}, FOLDERS, "without images", "not images skipped"),
        (FOLDERS, {"cat/a.jpg": b"x", "fox/f.jpg": b"x"}, "only in train ['dog']", None),
        ({"cat/a.jpg": b"x"}, None, "needs at least two class folders", None),
        ({**FOLDERS, "train.lst": b""}, None, None, "outside skipped: train.lst"),
    ],
)
def test_class_folder_problems(
    tmp_path: Path,
    train: dict[str, bytes],
    validation: dict[str, bytes] | None,
    error: str | None,
    warning: str | None,
) -> None:
    train_dir = write_files(tmp_path / "train", train)
    validation_dir = write_files(tmp_path / "validation", validation) if validation else None
    errors, warnings = messages(preflight_class_folders(train_dir, validation_dir))
    assert (error is None) == (not errors), errors
    assert error is None or any(error in e for e in errors), errors
    assert (warning is None) == (not warnings), warnings
    assert warning is None or any(warning in w for w in warnings), warnings


def test_missing_or_empty_folders(tmp_path: Path, store: S3Store, bucket: str) -> None:
    errors, _ = messages(preflight_class_folders(tmp_path / "nope"))
    assert errors == [f"{tmp_path / 'nope'} is not a folder"]
    errors, _ = messages(preflight_class_folders(f"s3://{bucket}/empty/", store=store))
    assert errors[0] == f"nothing under s3://{bucket}/empty/"


def test_class_folders_on_s3(store: S3Store, bucket: str) -> None:
    for key in ("train/cat/a.jpg", "train/dog/b.jpg", "train/dog/c.gif", "validation/cat/d.jpg"):
        store.put_bytes(f"s3://{bucket}/data/{key}", b"x")
    store.put_bytes(f"s3://{bucket}/data/train_more/cat/e.jpg", b"x")  # a neighbour prefix
    assert list_folder(f"s3://{bucket}/data/train", store=store) == [
        "cat/a.jpg",
        "dog/b.jpg",
        "dog/c.gif",
    ]
    report = preflight_class_folders(
        f"s3://{bucket}/data/train", f"s3://{bucket}/data/validation/", store=store
    )
    errors, warnings = messages(report)
    assert errors == [
        "validation: needs at least two class folders, found ['cat']",
        "train and validation class folders differ: only in train ['dog'], only in validation []",
    ]
    assert warnings == ["train: 1 file(s) not images skipped: dog/c.gif"]


def test_the_converters_class_folders_pass(tmp_path: Path) -> None:
    """gt-convert class-folders output of the samples labelled by ball count."""
    options = ConvertOptions(
        images_dir=str(SAMPLES / "images"),
        images_prefix="s3://gt-toolkit-demo/images/",
        stratify=True,
    )
    manifest = SAMPLES / "ball-count.manifest"
    convert_output("class-folders", manifest, tmp_path / "folders", options)
    report = preflight_class_folders(
        tmp_path / "folders" / "train", tmp_path / "folders" / "validation"
    )
    assert report.ok, report.format()
    assert sum(report.counts.values()) == 40


# -- JumpStart detection ---------------------------------------------------------------------


def detection(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "images": [
            {"file_name": "a.jpg", "width": 100, "height": 80, "id": 0},
            {"file_name": "b.jpg", "width": 100, "height": 80, "id": 1},
        ],
        "annotations": [
            {"image_id": 0, "bbox": [10, 10, 50, 40], "category_id": 0},
            {"image_id": 1, "bbox": [0, 0, 100, 80], "category_id": 1},
            {"image_id": 1, "bbox": [5, 5, 20, 20], "category_id": 0},
        ],
        "categories": [{"id": 0, "name": "ball"}, {"id": 1, "name": "bat"}],
    }
    document.update(changes)
    return document


def od_folder(root: Path, document: Any, images: tuple[str, ...] = ("a.jpg", "b.jpg")) -> Path:
    files = {f"images/{name}": b"\xff\xd8\xff" for name in images}
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return write_files(root, {**files, "annotations.json": body})


def test_good_detection_data(tmp_path: Path) -> None:
    report = preflight_jumpstart_detection(od_folder(tmp_path, detection()))
    assert report.ok and not report.warnings, report.format()
    assert report.counts == {"images": 2, "annotations": 3}
    assert (report.class_ids, report.max_boxes) == ({0, 1}, 2)


def _annotation(**changes: Any) -> list[dict[str, Any]]:
    """The good annotations with the first one changed."""
    first, *rest = detection()["annotations"]
    return [{**first, **changes}, *rest]


SPARSE = [
    {"image_id": 0, "bbox": [10, 10, 50, 40], "category_id": 2},
    {"image_id": 1, "bbox": [0, 0, 100, 80], "category_id": 1},
]


@pytest.mark.parametrize(
    ("document", "images", "error", "warning"),
    [
        (detection(), ("a.jpg",), "names 1 image(s) not in images/: b.jpg", None),
        (
            detection(),
            ("a.jpg", "b.jpg", "c.jpg"),
            None,
            "1 file(s) in images/ are not in annotations.json: c.jpg",
        ),
        (
            detection(annotations=SPARSE),
            None,
            "not dense: the annotations use [1, 2], JumpStart counts classes as 0..1 (missing [0])",
            None,
        ),
        (
            detection(annotations=_annotation(bbox=[10, 10, 5, 5])),
            None,
            "has no area (is it COCO's [x, y, w, h]?)",
            None,
        ),
        (
            detection(annotations=_annotation(bbox=[10, 10, 150, 40])),
            None,
            None,
            "reaches outside the 100x80 image",
        ),
        (detection(annotations=_annotation(bbox=[1, 2, 3])), None, "bbox must be 4 numbers", None),
        (
            detection(annotations=_annotation(image_id=7)),
            None,
            "names image id 7, which is not in images",
            "1 image(s) have no box: ids 0",
        ),
        (
            detection(annotations=_annotation(category_id="ball")),
            None,
            "has category_id 'ball'",
            None,
        ),
        (
            detection(images=[*detection()["images"], {"file_name": "a.jpg", "id": 0}]),
            None,
            "image ids repeat: 0",
            None,
        ),
        (
            detection(images=[{"file_name": "a.jpg"}]),
            None,
            "images[0] needs id and file_name",
            None,
        ),
        (b"{not json", None, "annotations.json is not JSON", None),
        (b"[]", None, "annotations.json is not a JSON object", None),
    ],
)
def test_detection_problems(
    tmp_path: Path,
    document: Any,
    images: tuple[str, ...] | None,
    error: str | None,
    warning: str | None,
) -> None:
    root = od_folder(tmp_path, document, images or ("a.jpg", "b.jpg"))
    errors, warnings = messages(preflight_jumpstart_detection(root))
    assert (error is None) == (not errors), errors
    assert error is None or any(error in e for e in errors), errors
    assert warning is None or any(warning in w for w in warnings), warnings


def test_detection_data_without_annotations_json(tmp_path: Path) -> None:
    write_files(tmp_path, {"cat/a.jpg": b"x"})
    errors, _ = messages(preflight_jumpstart_detection(tmp_path))
    assert errors == [f"{tmp_path} has no annotations.json (gt-convert jumpstart-od)"]


def test_the_converters_jumpstart_output_passes_on_s3(
    tmp_path: Path, store: S3Store, bucket: str
) -> None:
    """gt-convert jumpstart-od of the samples' truth, written to S3, then checked there."""
    options = ConvertOptions(
        images_dir=str(SAMPLES / "images"),
        images_prefix="s3://gt-toolkit-demo/images/",
        store=store,
    )
    convert_output("jumpstart-od", SAMPLES / "truth.manifest", f"s3://{bucket}/od/", options)
    report = preflight_jumpstart_detection(f"s3://{bucket}/od", store=store)
    assert report.ok, report.format()
    assert report.counts["images"] == 40 and report.class_ids == {0}
