from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gt_toolkit import LintFinding, lint_template
from gt_toolkit.storage.s3 import S3Store
from gt_toolkit.worker_ui.lint import TEMPLATE_SIZE_LIMIT, has_errors, lint_template_text
from tests.helpers import REPO, huge_png_header

GOOD = str(REPO / "samples" / "examples" / "good_tight.jpg")
BAD = str(REPO / "samples" / "examples" / "bad_loose.jpg")


def lint(**overrides: Any) -> list[LintFinding]:
    kwargs: dict[str, Any] = {
        "labels": ["ball"],
        "header": "Box every ball",
        "short_instructions": "Tight boxes.",
        "full_instructions": "Tight boxes around every ball.",
        "good_examples": [(GOOD, "tight")],
        "bad_examples": [(BAD, "loose")],
    }
    kwargs.update(overrides)
    return lint_template(**kwargs)


def codes(findings: list[LintFinding]) -> dict[str, str]:
    return {f.code: f.severity for f in findings}


def test_an_image_too_big_to_open_is_an_error(tmp_path: Path) -> None:
    huge = tmp_path / "huge.png"
    huge.write_bytes(huge_png_header())
    findings = lint(good_examples=[(huge, "t")])
    assert codes(findings) == {"example-image-unreadable": "error"}
    assert "decompression bomb" in findings[0].message


def test_clean_inputs_have_no_findings() -> None:
    assert lint() == []


@pytest.mark.parametrize(
    ("overrides", "code", "severity", "fragment"),
    [
        (
            {"short_instructions": "<p>Box <b>every</b> ball</p>"},
            "short-instructions-look-like-html",
            "warning",
            "'<p>'",
        ),
        (
            {"full_instructions": "Rules:\n<UL><li>tight</li></UL>"},
            "full-instructions-look-like-html",
            "warning",
            "'<UL>'",
        ),
        ({"labels": [f"l{i}" for i in range(11)]}, "too-many-labels", "warning", "11 labels"),
        ({"labels": ["a", "a"]}, "invalid-labels", "error", "appears 2 times"),
        ({"labels": []}, "invalid-labels", "error", "at least 1 label"),
        ({"good_examples": []}, "no-good-example", "warning", "no good example"),
        ({"bad_examples": []}, "no-bad-example", "warning", "no bad example"),
        ({"short_instructions": "  "}, "missing-short-instructions", "error", "<short-"),
        ({"full_instructions": ""}, "missing-full-instructions", "error", "<full-"),
        ({"header": ""}, "missing-header", "warning", "no question"),
        ({"good_examples": [("nope/x.jpg", "t")]}, "example-image-missing", "error", "nope/x.jpg"),
        (
            {"bad_examples": [(str(REPO / "pyproject.toml"), "t")]},
            "example-image-unreadable",
            "error",
            "not a readable image",
        ),
        (
            {"good_examples": [("http://example.com/a.jpg", "t")]},
            "insecure-example-image",
            "warning",
            "mixed content",
        ),
        ({"good_examples": [(GOOD, " ")]}, "example-without-description", "warning", "say what"),
        (
            {"good_examples": [("s3://bucket/a.jpg", "t")]},
            "example-image-unchecked",
            "warning",
            "not checked",
        ),
    ],
    ids=[
        "html-short",
        "html-full",
        "11-labels",
        "duplicate-labels",
        "no-labels",
        "no-good",
        "no-bad",
        "no-short",
        "no-full",
        "no-header",
        "missing-image",
        "not-an-image",
        "http",
        "no-description",
        "s3-unchecked",
    ],
)
def test_each_finding(overrides: dict[str, Any], code: str, severity: str, fragment: str) -> None:
    findings = lint(**overrides)
    assert codes(findings) == {code: severity}, findings
    assert fragment in findings[0].message
    assert has_errors(findings) is (severity == "error")
    assert str(findings[0]).startswith(f"{severity}: ")


def test_ten_labels_is_fine_for_the_element() -> None:
    assert lint(labels=[f"l{i}" for i in range(10)]) == []


def test_too_many_labels_only_for_bounding_boxes() -> None:
    labels = [f"l{i}" for i in range(12)]
    assert lint(labels=labels, task_type="ImageMultiClass") == []


def test_labels_from_task_input_may_be_empty() -> None:
    assert lint(labels=[], labels_from_task_input=True) == []


def test_s3_examples_checked_through_the_store(store: S3Store, bucket: str) -> None:
    store.put_bytes(f"s3://{bucket}/ex/good.jpg", Path(GOOD).read_bytes())
    findings = lint(
        good_examples=[(f"s3://{bucket}/ex/good.jpg", "t")],
        bad_examples=[(f"s3://{bucket}/ex/missing.jpg", "t")],
        store=store,
    )
    assert [(f.code, f.severity) for f in findings] == [("example-image-unreadable", "error")]
    assert "does not exist in S3" in findings[0].message
    assert "ex/missing.jpg" in findings[0].message


def test_s3_example_in_a_missing_bucket(store: S3Store) -> None:
    findings = lint(good_examples=[("s3://gt-no-such-bucket-zz9/a.jpg", "t")], store=store)
    assert codes(findings) == {"example-image-unreadable": "error"}


def test_template_size_limit_boundary() -> None:
    assert lint_template_text("x" * TEMPLATE_SIZE_LIMIT) == []
    findings = lint_template_text("x" * (TEMPLATE_SIZE_LIMIT + 1))
    assert codes(findings) == {"template-too-large": "warning"}
    assert "128,001 characters" in findings[0].message


def test_liquid_syntax_error_is_reported() -> None:
    findings = lint(template_text="<p>{% if task.input.x %}unclosed</p>")
    assert codes(findings) == {"liquid-syntax": "error"}


def test_a_filter_ground_truth_lacks_is_an_error() -> None:
    text = (
        '<img src="{{ task.input.taskObject | grant_read_acess }}">'
        "{{ task.input.labels | to_json | skip_autoescape }}{{ task.input.header | upcase }}"
    )
    findings = lint_template_text(text)
    assert codes(findings) == {"liquid-filter": "error"}
    assert "'grant_read_acess'" in str(findings[0])
    assert "did you mean 'grant_read_access'?" in str(findings[0])


@pytest.mark.parametrize(
    "text",
    [
        "Boxes must be tight: width < 5 px off, height > 0.",
        "Use the a<b rule: left edge < right edge.",
        "Type <ball> for a ball.",
    ],
)
def test_text_with_angle_brackets_is_not_html(text: str) -> None:
    assert lint(short_instructions=text, full_instructions=text) == []


def test_trusted_markup_instructions_are_not_flagged() -> None:
    from markupsafe import Markup

    html = Markup("<p>Box <b>every</b> ball</p>")
    assert lint(short_instructions=html, full_instructions=html) == []
