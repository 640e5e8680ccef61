from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gt_toolkit.convert import ConvertOptions, convert_output
from gt_toolkit.errors import ConversionError
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


def test_labelmap_lists_every_class_as_datumaro_reads_it(tmp_path: Path) -> None:
    """datumaro's VOC label map: ``name:color:parts:actions``, '#' lines are comments."""
    out = tmp_path / "voc"
    convert_output("voc", API, out)
    lines = [x for x in (out / "labelmap.txt").read_text().splitlines() if not x.startswith("#")]
    assert [x.split(":") for x in lines] == [[n, "", "", ""] for n in ("car", "truck", "bike")]


def test_a_class_name_the_labelmap_cannot_hold_fails_the_run(tmp_path: Path) -> None:
    src = tmp_path / "in.manifest"
    src.write_text(API.read_text().replace('"bike"', '"bike: road"'))
    with pytest.raises(ConversionError, match="labelmap"):
        convert_output("voc", src, tmp_path / "voc")
    assert not (tmp_path / "voc").exists()


def test_names_a_voc_file_cannot_carry_are_refused(tmp_path: Path) -> None:
    # a control character breaks the XML; a line break splits ImageSets into two entries
    lines = [json.loads(x) for x in API.read_text().splitlines()]
    attr = next(k for k in lines[0] if k.endswith("-metadata")).removesuffix("-metadata")
    bad_file = [dict(x) for x in lines]
    bad_file[1]["source-ref"] = bad_file[1]["source-ref"].replace(".png", "\n2.png")
    bad_label = [json.loads(json.dumps(x)) for x in lines]
    for x in bad_label:  # one class map for the whole file, as a job writes it
        if "0" in x[f"{attr}-metadata"]["class-map"]:
            x[f"{attr}-metadata"]["class-map"]["0"] = "car\x01"
    for i, doc in enumerate((bad_file, bad_label)):
        src = tmp_path / f"bad{i}.manifest"
        src.write_text("".join(json.dumps(x) + "\n" for x in doc))
        out = tmp_path / f"voc{i}"
        with pytest.raises(ConversionError, match=r"\\n|control character"):
            convert_output("voc", src, out, ConvertOptions(copy_images=False))
        assert not out.exists()


@pytest.mark.parametrize("char", ["\ufffe", "\uffff"], ids=["U+FFFE", "U+FFFF"])
@pytest.mark.parametrize("where", ["image name", "class name"])
def test_non_characters_xml_refuses_are_refused_not_written(
    tmp_path: Path, where: str, char: str
) -> None:
    """XML 1.0 has no U+FFFE or U+FFFF: written raw, the run exited 0 and every XML parser
    stopped at the file ("not well-formed (invalid token)")."""
    lines = [json.loads(x) for x in API.read_text().splitlines()]
    attr = next(k for k in lines[0] if k.endswith("-metadata")).removesuffix("-metadata")
    for x in lines:
        if where == "image name":
            x["source-ref"] = x["source-ref"].replace(".png", f"{char}.png")
        elif "0" in x[f"{attr}-metadata"]["class-map"]:
            x[f"{attr}-metadata"]["class-map"]["0"] = f"car{char}"
    src = tmp_path / "odd.manifest"
    src.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    out = tmp_path / "voc"
    with pytest.raises(ConversionError, match=re.escape(repr(char)) if "image" in where else "XML"):
        convert_output("voc", src, out, ConvertOptions(copy_images=False))
    assert not out.exists()
