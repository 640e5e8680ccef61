from __future__ import annotations

import json
from pathlib import Path

from gt_toolkit.convert import ConvertOptions, convert_output
from tests.helpers import DATA, image_mirror

OUTPUTS = DATA / "outputs"
CONSOLE = OUTPUTS / "console-job.manifest"
API = OUTPUTS / "api-job.manifest"


def test_od_json_writes_four_channels(tmp_path: Path) -> None:
    mirror = image_mirror(tmp_path, API)
    out = tmp_path / "od"
    convert_output(
        "od-json", API, out, ConvertOptions(images_dir=str(mirror), validation_fraction=0.5)
    )
    docs = sorted((out).glob("*_annotation/*.json"))
    assert len(docs) == 4
    for doc_path in docs:
        doc = json.loads(doc_path.read_text())
        split = doc_path.parent.name.removesuffix("_annotation")
        assert (out / split / doc["file"]).is_file()
        assert doc["image_size"][0]["width"] == 320
