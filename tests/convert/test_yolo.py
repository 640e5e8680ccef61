from __future__ import annotations

from pathlib import Path

import pytest

from gt_toolkit.convert import ConvertOptions, convert_output
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
