"""What a pre-flight found: findings (errors and warnings, with where) and what it counted.

One report type for every pre-flight (:mod:`gt_toolkit.sagemaker.preflight` for augmented
manifests and whole requests, :mod:`gt_toolkit.sagemaker.preflight_data` for class folders and
JumpStart detection data), so callers read and raise them the same way.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from gt_toolkit.errors import ValidationError

__all__ = ["Finding", "PreflightReport", "Severity"]


class Severity(StrEnum):
    """An error stops training from working; a warning is worth a look."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: where (channel and 1-based line, when it has one) and what."""

    severity: Severity
    message: str
    channel: str | None = None
    line_no: int | None = None

    def __str__(self) -> str:
        where = ""
        if self.channel is not None:
            where = self.channel + (f":{self.line_no}" if self.line_no is not None else "")
            where += ": "
        return f"{self.severity.value}: {where}{self.message}"


@dataclass(slots=True)
class PreflightReport:
    """Everything the pre-flight saw: findings, counts per channel, classes and boxes."""

    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    class_ids: set[int] = field(default_factory=set)
    max_boxes: int = 0
    bucket_regions: dict[str, str] = field(default_factory=dict)
    suppressed: Counter[str] = field(default_factory=Counter)

    @property
    def errors(self) -> list[Finding]:
        """Findings that would make training fail or learn the wrong thing."""
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        """Findings worth a look that do not stop training."""
        return [f for f in self.findings if f.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def format(self) -> str:
        """A human report: one line per finding, then a summary."""
        lines = [str(f) for f in self.findings]
        for kind, count in sorted(self.suppressed.items()):
            lines.append(f"... and {count} more {kind!r} findings not shown")
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        lines.append(
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s); lines: {counts}; "
            f"classes {sorted(self.class_ids)}; max boxes per image {self.max_boxes}"
        )
        return "\n".join(lines)

    def raise_for_errors(self) -> None:
        """Raise one :class:`ValidationError` listing every error (warnings are not raised)."""
        if self.errors:
            raise ValidationError([str(f) for f in self.errors], what="training channels")
