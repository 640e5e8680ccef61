from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from gt_toolkit.convert import ConvertOptions, convert_output
from tests.helpers import DATA, read_jsonl

OUTPUTS = DATA / "outputs"
CONSOLE = OUTPUTS / "console-job.manifest"
API = OUTPUTS / "api-job.manifest"


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
    val = read_jsonl(out / "validation.manifest")
    rare = [x for x in val if x["b"]["annotations"][0]["class_id"] == 1]
    assert len(val) == 12
    assert len(rare) == 2


def test_records_refused_after_the_plan_keep_the_others_on_their_planned_split(
    tmp_path: Path,
) -> None:
    """20 lines without image_size (``no-image-size`` rejects of the converting pass only)
    sat between the common and the rare class: each rare image took the split planned for
    the line before it, and the rare class got 6 validation images for its planned 5."""
    rows = [_detection(f"car{i}.jpg", 0) for i in range(20)]
    for i in range(20):
        row = _detection(f"nosize{i}.jpg", 0)
        del row["b"]["image_size"]
        rows.append(row)
    rows += [_detection(f"bus{i}.jpg", 1) for i in range(10)]
    src = tmp_path / "in.manifest"
    src.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    for seed in range(5):
        out = tmp_path / f"yolo{seed}"
        options = ConvertOptions(
            validation_fraction=0.5, stratify=True, seed=seed, rejects=tmp_path / "r.jsonl"
        )
        result = convert_output("yolo", src, out, options)
        assert result.stats.rejected == {"no-image-size": 20}
        validation = [p.stem for p in (out / "labels" / "val").glob("*.txt")]
        assert sum(stem.startswith("bus") for stem in validation) == 5, seed


def _detection(name: str, cls: int) -> dict[str, Any]:
    return {
        "source-ref": f"s3://bkt-x/{name}",
        "b": {
            "image_size": [{"width": 100, "height": 100, "depth": 3}],
            "annotations": [{"class_id": cls, "left": 1, "top": 1, "width": 5, "height": 5}],
        },
        "b-metadata": {
            "objects": [{"confidence": 0}],
            "class-map": {str(cls): ["common", "rare"][cls]},
            "type": "groundtruth/object-detection",
            "creation-date": "2024-01-01T00:00:00",
        },
    }


def test_the_stratified_plan_counts_only_the_lines_written(tmp_path: Path) -> None:
    """A second line of one image (``duplicate-source-ref``) and a line without a size
    (``no-image-size``) were planned as items of their stratum: 10 images, one of them on
    10 lines, planned 19 items and 10 validation places, most of them the repeated image's,
    so the 10 written images got anything but their 5 (``augmented``, which writes an image
    without a size, its 20 lines anything but their 10)."""
    rows = [_detection(f"car{i}.jpg", 0) for i in range(10)]
    rows += [_detection("car0.jpg", 0) for _ in range(9)]
    for i in range(10):
        row = _detection(f"nosize{i}.jpg", 0)
        del row["b"]["image_size"]
        rows.append(row)
    src = tmp_path / "in.manifest"
    src.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    got = {}
    for target in ("yolo", "augmented"):
        for seed in range(6):
            out = tmp_path / f"{target}{seed}"
            options = ConvertOptions(
                validation_fraction=0.5, stratify=True, seed=seed, rejects=tmp_path / "r.jsonl"
            )
            result = convert_output(target, src, out, options)
            assert result.stats.rejected["duplicate-source-ref"] == 9
            if target == "yolo":
                validation = len(list((out / "labels" / "val").glob("car*.txt")))
            else:  # augmented writes the images without a size too: 20 items, 10 places
                validation = len(read_jsonl(out / "validation.manifest"))
            got[target, seed] = validation
    assert got == {key: 5 if key[0] == "yolo" else 10 for key in got}
