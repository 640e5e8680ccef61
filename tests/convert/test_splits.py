from __future__ import annotations

from pathlib import Path

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
