"""Checks on a worker template and its inputs, before anyone is paid to use it.

Each finding has a severity: ``error`` means the job would fail or workers could not do the
task as meant (bad labels, an example image that does not exist, Liquid that does not parse
or calls a filter Ground Truth lacks);
``warning`` means it works but is likely to cost label quality (no bad example, more labels
than the crowd-bounding-box element documents, a template too big for the HumanTaskUi APIs).

Size limit: AWS documents no limit for a template read from ``UiTemplateS3Uri``. The
``TemplateContent`` shape (``CreateHumanTaskUi``, ``RenderUiTemplate``) allows at most
128,000 characters (botocore's service model), so we warn above that: such a template cannot
be tested with ``RenderUiTemplate`` or registered as a HumanTaskUi, and it is mostly embedded
images that are better served from S3.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from botocore.exceptions import BotoCoreError
from markupsafe import Markup

from gt_toolkit.errors import GtToolkitError
from gt_toolkit.formats.label_categories import validate_labels
from gt_toolkit.storage.s3 import S3Store, is_s3_uri, parse_s3_uri

__all__ = [
    "BOUNDING_BOX_ELEMENT_LABEL_LIMIT",
    "TEMPLATE_SIZE_LIMIT",
    "LintFinding",
    "has_errors",
    "lint_template",
    "lint_template_text",
]

TEMPLATE_SIZE_LIMIT: Final = 128_000
"""Characters; the ``TemplateContent`` maximum of the HumanTaskUi APIs (see module docstring)."""

BOUNDING_BOX_ELEMENT_LABEL_LIMIT: Final = 10
"""The crowd-bounding-box element page says "Limit: 10 labels" (the job quota says 50)."""

Severity = Literal["error", "warning"]

# A tag of the kind people write instructions in: plain text shows it to workers as is.
_HTML_TAG_RE: Final = re.compile(
    r"</?(?:p|div|span|br|hr|ul|ol|li|b|i|u|em|strong|h[1-6]|img|a|table|tr|td|th|pre|code)"
    r"(?:\s[^<>]*)?/?>",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class LintFinding:
    """One problem: a stable ``code`` for filtering, and a message that says what to do."""

    severity: Severity
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.message} [{self.code}]"


def has_errors(findings: Sequence[LintFinding]) -> bool:
    """True when any finding is an error."""
    return any(f.severity == "error" for f in findings)


def _check_image(
    image: str | os.PathLike[str], where: str, store: S3Store | None
) -> LintFinding | None:
    text = os.fspath(image)
    if text.startswith(("https://", "data:image/")):
        return None
    if text.startswith("http://"):
        return LintFinding(
            "warning",
            "insecure-example-image",
            f"{where} image {text} uses http://; the worker page is https and browsers "
            "block or flag mixed content: use https:// or s3://",
        )
    if is_s3_uri(text):
        try:
            parse_s3_uri(text)
        except GtToolkitError as exc:
            return LintFinding("error", "example-image-unreadable", f"{where} image: {exc}")
        if store is None:
            return LintFinding(
                "warning",
                "example-image-unchecked",
                f"{where} image {text} was not checked (no S3 access given)",
            )
        try:
            found = store.exists(text)
        except (GtToolkitError, BotoCoreError) as exc:
            return LintFinding(
                "error", "example-image-unreadable", f"{where} image {text} cannot be read: {exc}"
            )
        if not found:
            return LintFinding(
                "error", "example-image-unreadable", f"{where} image {text} does not exist in S3"
            )
        return None
    path = Path(text)
    if not path.is_file():
        return LintFinding(
            "error", "example-image-missing", f"{where} image {text} does not exist (local file)"
        )
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        return LintFinding(
            "error",
            "example-image-unreadable",
            f"{where} image {text} is not a readable image: {exc}",
        )
    return None


def lint_template(
    *,
    labels: Sequence[str],
    header: str,
    short_instructions: str,
    full_instructions: str,
    good_examples: Sequence[tuple[str | os.PathLike[str], str]],
    bad_examples: Sequence[tuple[str | os.PathLike[str], str]],
    template_text: str | None = None,
    task_type: str = "BoundingBox",
    labels_from_task_input: bool = False,
    store: S3Store | None = None,
) -> list[LintFinding]:
    """Every finding for a worker template's inputs (and the rendered text, when given).

    Args:
        labels: the labels baked into the template (may be empty with
            ``labels_from_task_input``).
        header: the question above the image.
        short_instructions: side-panel text.
        full_instructions: the "full instructions" text.
        good_examples: ``(image, description)`` pairs.
        bad_examples: as ``good_examples``.
        template_text: the rendered template, to check its size and that its Liquid parses.
        task_type: ``BoundingBox``, ``ImageMultiClass`` or ``ImageMultiClassMultiLabel``.
        labels_from_task_input: the pre-annotation Lambda supplies ``taskInput.labels``.
        store: reads S3 example images; ``None`` reports them as unchecked.
    """
    findings = _label_findings(list(labels), task_type, labels_from_task_input)
    findings += _text_findings(header, short_instructions, full_instructions)
    for kind, examples in (("good", good_examples), ("bad", bad_examples)):
        findings += _example_findings(kind, examples, store)
    if template_text is not None:
        findings += lint_template_text(template_text)
    return findings


def _label_findings(
    labels: list[str], task_type: str, labels_from_task_input: bool
) -> list[LintFinding]:
    findings: list[LintFinding] = []
    if labels or not labels_from_task_input:
        findings += [
            LintFinding("error", "invalid-labels", problem)
            for problem in validate_labels(labels, task_type=task_type)
        ]
    if task_type == "BoundingBox" and len(labels) > BOUNDING_BOX_ELEMENT_LABEL_LIMIT:
        findings.append(
            LintFinding(
                "warning",
                "too-many-labels",
                f"{len(labels)} labels: the crowd-bounding-box element documents a limit of "
                f"{BOUNDING_BOX_ELEMENT_LABEL_LIMIT} (the job allows 50); workers pick from a "
                "long list slowly and inconsistently, so consider splitting the job",
            )
        )
    return findings


def _text_findings(header: str, short: str, full: str) -> list[LintFinding]:
    findings: list[LintFinding] = []
    if not header.strip():
        findings.append(
            LintFinding(
                "warning", "missing-header", "no header: workers see no question above the image"
            )
        )
    for name, text in (("short", short), ("full", full)):
        if not text.strip():
            findings.append(
                LintFinding(
                    "error",
                    f"missing-{name}-instructions",
                    f"no {name} instructions: Ground Truth requires the <{name}-instructions> "
                    "region, and workers need to know what a correct label looks like",
                )
            )
        elif not isinstance(text, Markup) and (tag := _HTML_TAG_RE.search(text)):
            findings.append(
                LintFinding(
                    "warning",
                    f"{name}-instructions-look-like-html",
                    f"the {name} instructions hold HTML ({tag[0][:40]!r}), but instructions "
                    "are plain text: workers would see the tags themselves. Write plain text "
                    "(blank lines, '- ' bullets, '1.' lists) or, from Python, pass trusted "
                    "HTML as markupsafe.Markup",
                )
            )
    return findings


def _example_findings(
    kind: str, examples: Sequence[tuple[str | os.PathLike[str], str]], store: S3Store | None
) -> list[LintFinding]:
    findings: list[LintFinding] = []
    if not examples:
        findings.append(
            LintFinding(
                "warning",
                f"no-{kind}-example",
                f"no {kind} example: show workers at least one {kind} example "
                f"(image and description) with --{kind} IMAGE DESCRIPTION",
            )
        )
    for index, (image, description) in enumerate(examples):
        where = f"{kind} example #{index + 1}"
        if not str(description).strip():
            findings.append(
                LintFinding(
                    "warning",
                    "example-without-description",
                    f"{where} has no description: say what makes it {kind}",
                )
            )
        finding = _check_image(image, where, store)
        if finding is not None:
            findings.append(finding)
    return findings


def lint_template_text(template_text: str) -> list[LintFinding]:
    """Findings on a rendered template: too large, Liquid that fails to parse, unknown filters."""
    findings: list[LintFinding] = []
    size = len(template_text)
    if size > TEMPLATE_SIZE_LIMIT:
        findings.append(
            LintFinding(
                "warning",
                "template-too-large",
                f"the template has {size:,} characters, over the {TEMPLATE_SIZE_LIMIT:,} that "
                "CreateHumanTaskUi/RenderUiTemplate accept: put example images in S3 (s3:// "
                "URIs) instead of embedding them, or lower --max-image-side",
            )
        )
    from liquid.exceptions import LiquidError

    from gt_toolkit.worker_ui.preview import liquid_environment

    env = liquid_environment()
    try:
        used = env.from_string(template_text).analyze().filters
    except LiquidError as exc:
        findings.append(
            LintFinding("error", "liquid-syntax", f"the template's Liquid does not parse: {exc}")
        )
        return findings
    # Liquid looks filters up only when a task renders: a misspelt one fails every task
    for name in sorted(set(used) - set(env.filters)):
        close = difflib.get_close_matches(name, list(env.filters), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        findings.append(
            LintFinding(
                "error",
                "liquid-filter",
                f"the template uses the filter {name!r}, which Ground Truth's Liquid does not "
                f"have{hint}: every task would fail to render",
            )
        )
    return findings
