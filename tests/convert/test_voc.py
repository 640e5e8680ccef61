from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from gt_toolkit.convert import ConvertOptions, convert_output
from tests.helpers import DATA

OUTPUTS = DATA / "outputs"
CONSOLE = OUTPUTS / "console-job.manifest"
API = OUTPUTS / "api-job.manifest"


def test_voc_is_readable_by_a_standard_parser(tmp_path: Path) -> None:
    from globox import AnnotationSet

    out = tmp_path / "voc"
    convert_output("voc", API, out, ConvertOptions(validation_fraction=0.5))
    doc = ET.parse(out / "Annotations" / "a.xml").getroot()
    assert doc.findtext("size/width") == "320"
    names = [o.findtext("name") for o in doc.iter("object")]
    assert names == ["car", "bike"]
    assert doc.findtext("object/bndbox/xmax") == "112"
    sets = [(out / "ImageSets" / "Main" / f).read_text().split() for f in ("train.txt", "val.txt")]
    assert sorted(sets[0] + sets[1]) == ["a", "b", "c", "d"]
    loaded = AnnotationSet.from_pascal_voc(out / "Annotations")
    assert len(loaded) == 4
    assert sum(len(a.boxes) for a in loaded) == 5
