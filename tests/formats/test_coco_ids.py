"""One id rule for every COCO reader: the crowd readers, ``from-coco`` and ``evaluate``.

They had three (``evaluate`` matched ``null`` with ``null`` by its text, ``from-coco`` refused
``7.0`` and did not match ``"7"`` with ``7``), so one file's annotation met its image in one
command and was an orphan in another.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gt_toolkit.convert import ConvertOptions, convert_output
from gt_toolkit.errors import ConversionError, ValidationError
from gt_toolkit.evaluation.coco_detections import read_coco_detections
from gt_toolkit.formats.coco_ids import coco_id, coco_int
from gt_toolkit.formats.crowd.sources import open_crowd_source
from gt_toolkit.formats.output_manifest import iter_detection_records

IDS = [7, 7.0, "7", Decimal("7"), Decimal("7.00")]
NO_IDS = [None, True, False, 7.5, float("inf"), float("nan"), [7], {"id": 7}, Decimal("7.5")]


@pytest.mark.parametrize("value", IDS)
def test_an_integer_its_float_and_its_text_are_one_id(value: Any) -> None:
    assert coco_id(value) == "7"


@pytest.mark.parametrize("value", NO_IDS)
def test_null_booleans_fractions_and_containers_are_no_id(value: Any) -> None:
    assert coco_id(value) is None
    assert coco_int(value) is None


def test_a_string_is_an_id_but_no_integer() -> None:
    assert coco_id("img-01") == "img-01"
    assert coco_int("7") is None  # from-coco's category ids sort as numbers


@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_any_integer_is_its_own_text(number: int) -> None:
    assert coco_id(number) == str(number) and coco_int(number) == number
    if abs(number) < 2**53:  # a float holds it exactly
        assert coco_id(float(number)) == str(number)


def _coco(image_id: Any, ann_image_id: Any, ann_category_id: Any) -> dict[str, Any]:
    return {
        "images": [{"id": image_id, "file_name": "a.jpg", "width": 10, "height": 10}],
        "categories": [{"id": 7, "name": "car"}],
        "annotations": [
            {
                "id": 1,
                "image_id": ann_image_id,
                "category_id": ann_category_id,
                "bbox": [1, 1, 2, 2],
                "rater_id": "r1",
                "area": 4,
                "iscrowd": 0,
            }
        ],
    }


def _readers(tmp_path: Path, coco: dict[str, Any], *, raw: str | None = None) -> dict[str, bool]:
    """Whether each reader put the one box on its image (``raw``: JSON text put for ``"RAW"``)."""
    path = tmp_path / "coco.json"
    text = json.dumps(coco)
    path.write_text(text if raw is None else text.replace('"RAW"', raw))
    with open_crowd_source(path, "coco-raters", on_reject=lambda reject: None) as source:
        crowd = any(image.boxes and image.boxes[0] for image in source.images())
    out = tmp_path / "prior.manifest"
    try:
        convert_output("from-coco", path, out, ConvertOptions(image_prefix="s3://bkt-x/"))
        converted = any(r.boxes for r in iter_detection_records(out))
    except ConversionError:  # nothing converted: the box met no image or category
        converted = False
    try:
        evaluated = bool(read_coco_detections(path).boxes.get("a.jpg"))
    except ValidationError:  # "no image", "unknown category_id"
        evaluated = False
    return {"crowd": crowd, "from-coco": converted, "evaluate": evaluated}


@pytest.mark.parametrize("image_id", [7, "7"])
@pytest.mark.parametrize("ann_image_id", [7, 7.0, "7"])
@pytest.mark.parametrize("ann_category_id", [7, 7.0, "7"])
def test_every_reader_matches_ids_by_the_one_rule(
    tmp_path: Path, image_id: Any, ann_image_id: Any, ann_category_id: Any
) -> None:
    got = _readers(tmp_path, _coco(image_id, ann_image_id, ann_category_id))
    assert got == {"crowd": True, "from-coco": True, "evaluate": True}


@pytest.mark.parametrize("ann_image_id", [None, True, [7], 7.5, "7.0"])
def test_no_reader_matches_what_is_no_id(tmp_path: Path, ann_image_id: Any) -> None:
    got = _readers(tmp_path, _coco(7, ann_image_id, 7))
    assert got == {"crowd": False, "from-coco": False, "evaluate": False}


@pytest.mark.parametrize("digits", [4301, 5000, 10**8])
def test_a_whole_number_past_the_integer_text_limit_is_no_id(digits: int) -> None:
    number = Decimal(f"1E+{digits}")  # as the streaming readers read 1E+5000
    assert coco_int(number) is None
    assert coco_id(number) is None
    assert coco_id(Decimal("1E+4299")) == "1" + "0" * 4299  # the longest that prints


def test_an_id_written_1e5000_is_a_bad_id_in_every_reader(tmp_path: Path) -> None:
    # Before: from-coco stopped with a ValueError traceback (Python will not write an
    # integer of 5,001 digits as text); the crowd readers and evaluate read it as infinity.
    got = _readers(tmp_path, _coco("RAW", "RAW", 7), raw="1E+5000")
    assert got == {"crowd": False, "from-coco": False, "evaluate": False}
