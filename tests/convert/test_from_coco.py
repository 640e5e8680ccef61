from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from gt_toolkit.convert import ConvertOptions, convert_output
from gt_toolkit.errors import ConversionError
from tests.helpers import DATA, read_jsonl

OUTPUTS = DATA / "outputs"
CONSOLE = OUTPUTS / "console-job.manifest"
API = OUTPUTS / "api-job.manifest"


def test_from_coco_needs_a_prefix_for_relative_file_names(tmp_path: Path) -> None:
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4], "score": 0.4}
        ],
        "categories": [{"id": 7, "name": "cat"}],
    }
    src = tmp_path / "c.json"
    src.write_bytes(orjson.dumps(doc))
    with pytest.raises(ConversionError, match="--image-prefix"):
        convert_output("from-coco", src, tmp_path / "o.manifest", ConvertOptions())
    convert_output(
        "from-coco", src, tmp_path / "o.manifest", ConvertOptions(image_prefix="s3://bkt-x/imgs/")
    )
    line = read_jsonl(tmp_path / "o.manifest")[0]
    assert line["source-ref"] == "s3://bkt-x/imgs/a.jpg"
    assert line["prior-boxes"]["annotations"] == [
        {"class_id": 0, "left": 1, "top": 2, "width": 3, "height": 4}
    ]
    assert line["prior-boxes-metadata"]["objects"] == [{"confidence": 0.4}]
