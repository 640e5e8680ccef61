from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gt_toolkit.errors import ValidationError
from gt_toolkit.formats.label_categories import (
    build_label_category_config,
    parse_label_category_config,
    read_label_category_config,
    validate_labels,
)
from gt_toolkit.storage.s3 import S3Store
from tests.helpers import seen_by_worker


def test_build_label_category_config_matches_documented_shape() -> None:
    assert build_label_category_config(["car", "bike"]) == {
        "document-version": "2018-11-28",
        "labels": [{"label": "car"}, {"label": "bike"}],
    }


def test_build_keeps_hostile_labels_verbatim() -> None:
    labels = ['say "hi"', "a & b", "</script>", "自転車", "{{ x }}"]
    config = build_label_category_config(labels)
    assert [e["label"] for e in config["labels"]] == labels
    assert parse_label_category_config(json.dumps(config)) == labels


def test_build_adds_ner_instructions() -> None:
    config = build_label_category_config(
        ["PERSON"], task_type="NamedEntityRecognition", short_instruction="s", full_instruction="f"
    )
    assert config["instructions"] == {"shortInstruction": "s", "fullInstruction": "f"}


_FLAG = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"  # Scotland


@pytest.mark.parametrize(
    ("labels", "task_type", "fragment"),
    [
        ([], "BoundingBox", "at least 1 label"),
        (["a"], "ImageMultiClass", "at least 2 labels"),
        (["a"], "ImageMultiClassMultiLabel", "at least 2 labels"),
        ([f"l{i}" for i in range(51)], "BoundingBox", "at most 50 labels, got 51"),
        ([f"l{i}" for i in range(51)], "TextMultiClassMultiLabel", "at most 50"),
        (["a", "b", "a"], "BoundingBox", "'a' appears 2 times"),
        (["", "b"], "BoundingBox", "label #1 is empty"),
        (["x" * 257], "BoundingBox", "257 characters; the limit is 256"),
        (["   "], "BoundingBox", "only whitespace"),
        (["a", 3], "BoundingBox", "label #2 is a int"),
        ("car", "BoundingBox", "not a single str"),
        (["car", "car "], "BoundingBox", "labels 'car' and 'car ' differ only in spaces"),
        (["big  dog", "big dog"], "BoundingBox", "differ only in spaces"),
        (["caf\u00e9", "cafe\u0301"], "BoundingBox", "'caf\\xe9' and 'cafe\\u0301' differ"),
        (["car", "car\u200b"], "BoundingBox", "'car' and 'car\\u200b' differ only"),
        (["\u200b\u2060"], "BoundingBox", "label #1 is only whitespace or invisible"),
        (["car", "car\x07"], "BoundingBox", "'car' and 'car\\x07' differ only"),
        (["car", "car\U000e0067"], "BoundingBox", "'car' and 'car\\U000e0067' differ"),
        (["\U0001f3f4", "\U0001f3f4\u200b"], "BoundingBox", "differ only in spaces"),
        # a tag sequence without its cancel tag shows a black flag; a tag after a whole one
        # shows nothing (59a9aa8 kept every tag after a black flag: both pairs passed)
        (["\U0001f3f4", "\U0001f3f4\U000e0067\U000e0062"], "BoundingBox", "differ only"),
        ([_FLAG, _FLAG + "\U000e0067"], "BoundingBox", "differ only"),
        # a tag sequence of no recommended flag (California's, a typo for Scotland's) shows
        # a black flag: d714540 kept every whole sequence's tags, both pairs passed
        (
            ["\U0001f3f4", "\U0001f3f4\U000e0075\U000e0073\U000e0063\U000e0061\U000e007f"],
            "BoundingBox",
            "differ only",
        ),
        (
            [
                "\U0001f3f4",
                "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0078\U000e0074\U000e007f",
            ],
            "BoundingBox",
            "differ only",
        ),
        # letters and marks that draw nothing (not Cf, which was all the rule dropped): a
        # Hangul filler, the combining grapheme joiner, Braille's blank cell
        (["car", "car\u3164"], "BoundingBox", "differ only"),
        (["car", "c\u034far"], "BoundingBox", "differ only"),
        (["a b", "a\u2800b"], "BoundingBox", "differ only"),
        (["car", "\u3164"], "BoundingBox", "label #2 is only whitespace or invisible"),
        # a variation selector after a Latin letter picks no look (16eb89d kept them all:
        # 'car' and 'car' plus VS16 passed as two labels of one button text)
        (["car", "car\ufe0f"], "BoundingBox", "differ only"),
        (["car", "c\U000e0100ar"], "BoundingBox", "differ only"),
        (["\ufe0f", "x"], "BoundingBox", "label #1 is only whitespace or invisible"),
        # a joiner that joins nothing: after a Latin letter, at the end of a Devanagari word
        (["ab", "a\u200db"], "BoundingBox", "differ only"),
        (["\u0928\u092e", "\u0928\u092e\u200c"], "BoundingBox", "differ only"),
        # a right-to-left override draws 'rac' as 'car': the rule dropped it as invisible
        # and kept 'rac', so the two labels passed, two buttons that read 'car'
        (["car", "\u202erac\u202c"], "BoundingBox", "label #2 ('\\u202erac\\u202c') holds a"),
        (["12", "\u202d21"], "BoundingBox", "bidi override"),
    ],
    ids=[
        "bbox-empty",
        "classifier-one",
        "multilabel-one",
        "bbox-51",
        "multilabel-51",
        "duplicate",
        "empty-string",
        "too-long",
        "blank",
        "not-a-string",
        "bare-string",
        "trailing-space",
        "double-space",
        "accent-encodings",
        "zero-width-space",
        "invisible",
        "control-character",
        "tag-outside-a-flag",
        "flag-and-zero-width-space",
        "flag-left-unended",
        "tag-after-a-flag",
        "flag-of-no-recommended-sequence",
        "flag-with-a-misspelt-sequence",
        "hangul-filler",
        "grapheme-joiner",
        "braille-blank",
        "only-a-filler",
        "variation-selector-after-a-letter",
        "ideographic-variation-selector-after-a-letter",
        "only-a-variation-selector",
        "joiner-between-latin-letters",
        "non-joiner-ending-a-word",
        "right-to-left-override",
        "left-to-right-override",
    ],
)
def test_validate_labels_reports_each_problem(
    labels: list[object], task_type: str, fragment: str
) -> None:
    problems = validate_labels(labels, task_type=task_type)
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize(
    ("labels", "task_type"),
    [
        (["x" * 256], "BoundingBox"),
        ([f"l{i}" for i in range(50)], "BoundingBox"),
        ([f"l{i}" for i in range(500)], "ImageMultiClass"),
        (["cat", "dog"], "ImageMultiClass"),
    ],
    ids=["256-chars", "50-boxes", "500-single-label", "two-classes"],
)
def test_validate_labels_accepts_the_limits(labels: list[str], task_type: str) -> None:
    assert validate_labels(labels, task_type=task_type) == []


def test_build_raises_with_every_problem() -> None:
    with pytest.raises(ValidationError) as info:
        build_label_category_config(["a", "a", ""])
    assert len(info.value.problems) == 2
    assert "label list" in str(info.value)


def test_unknown_task_type_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="unknown task type 'Boxes'"):
        validate_labels(["a"], task_type="Boxes")


@pytest.mark.parametrize(
    "document",
    [
        {"document-version": "2018-11-28", "labels": [{"label": "a"}, {"label": "b"}]},
        {"document-version": "2021-05-13", "labels": [{"label": "a"}, {"label": "b"}]},
        {"labels": [{"label": "a"}, {"label": "b"}]},
    ],
    ids=["2018", "2021", "no-version"],
)
def test_parse_accepts_both_versions(document: dict[str, object]) -> None:
    assert parse_label_category_config(document) == ["a", "b"]


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        (b"{not json", "not JSON"),
        (b"[1]", "expected a JSON object"),
        (b'{"document-version": "1999-01-01", "labels": []}', "unknown document-version"),
        (b'{"labels": {"label": "a"}}', '"labels" must be a list'),
        (b'{"labels": [{"name": "a"}]}', 'labels[0] has no string "label"'),
    ],
)
def test_parse_rejects_malformed(document: bytes, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_label_category_config(document)
    assert fragment in str(info.value)


@given(
    st.lists(
        st.text(min_size=1, max_size=256).filter(seen_by_worker),
        min_size=1,
        max_size=50,
        unique_by=seen_by_worker,
    )
)
def test_build_then_parse_round_trips(labels: list[str]) -> None:
    document = json.dumps(build_label_category_config(labels))
    assert parse_label_category_config(document) == labels


def test_read_local(tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(build_label_category_config(["ball", "cup"])))
    assert read_label_category_config(path) == ["ball", "cup"]


def test_read_s3(store: S3Store, bucket: str) -> None:
    uri = f"s3://{bucket}/config/labels.json"
    store.put_bytes(uri, json.dumps(build_label_category_config(["ball"])).encode())
    assert read_label_category_config(uri, store=store) == ["ball"]


_SCOTLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
_WALES = "\U0001f3f4\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f"
_ENGLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"


@pytest.mark.parametrize(
    "labels",
    [
        [_SCOTLAND, _WALES, _ENGLAND, "\U0001f3f4"],  # three tag-sequence flags, a black one
        ["\u0600\u0661\u0662", "\u0661\u0662"],  # an Arabic number sign is drawn
        # a ZWJ between emoji makes one picture: a family, not a man, a woman and a girl
        ["\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f468\U0001f469\U0001f467"],
        ["\U0001f3f3\ufe0f\u200d\U0001f308", "\U0001f3f3\ufe0f\U0001f308"],  # rainbow flag
        # after a virama a joiner picks the conjunct's form: Sinhala's yansaya, a half form
        ["\u0dc1\u0dca\u200d\u0dbb\u0dd3", "\u0dc1\u0dca\u0dbb\u0dd3"],
        ["\u0915\u094d\u200d\u0937", "\u0915\u094d\u0937", "\u0915\u094d\u200c\u0937"],
        ["\u0915\u094d\u200d", "\u0915\u094d"],  # a half form ending the label
        # Persian's ZWNJ keeps two Arabic letters apart
        [
            "\u0641\u0627\u0631\u0633\u06cc\u200c\u0647\u0627",
            "\u0641\u0627\u0631\u0633\u06cc\u0647\u0627",
        ],
        ["\u2764\ufe0f", "\u2764"],  # emoji and text presentation
    ],
    ids=[
        "subdivision-flags",
        "arabic-number-sign",
        "emoji-family",
        "rainbow-flag",
        "sinhala-yansaya",
        "devanagari-half-form",
        "devanagari-half-form-at-the-end",
        "persian-non-joiner",
        "emoji-presentation",
    ],
)
def test_format_characters_that_are_drawn_make_distinct_labels(labels: list[str]) -> None:
    """The look-alike rule dropped every format character (category Cf), so Scotland's and
    Wales's flags (a black flag and invisible tag letters, shown as two flags) were refused
    as labels that 'differ only in invisible characters', as was a label with the sign; and
    it dropped every joiner, so an emoji family and its three emoji, a conjunct and its half
    form, were refused too."""
    assert validate_labels(labels) == []
