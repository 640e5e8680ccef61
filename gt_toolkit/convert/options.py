"""What a conversion is asked to do and what it reports back.

Kept free of heavy imports (numpy, boto3, Pillow): the CLI reads the registry and these
options to build ``gt-convert --help``, and that must start fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gt_toolkit.formats.manifest import RejectPolicy
    from gt_toolkit.formats.output_manifest import BoxPolicy, EmptyPolicy, OutputStats
    from gt_toolkit.storage.files import Location
    from gt_toolkit.storage.s3 import S3Store

__all__ = ["ConversionResult", "ConvertOptions", "options_set"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvertOptions:
    """Options of every target; each target declares the ones it reads.

    Setting an option the chosen target does not read is an error (see
    :func:`gt_toolkit.convert.convert_output`), so nothing is silently ignored.
    ``empty_policy`` and ``copy_images`` are ``None`` for "the target's default".
    """

    label_attribute: str | None = None
    policy: RejectPolicy | str = "collect"
    rejects: Location | None = None
    box_policy: BoxPolicy | str = "clip"
    empty_policy: EmptyPolicy | str | None = None
    validation_fraction: float = 0.2
    seed: int | str = 0
    stratify: bool = False
    include_metadata: bool = False
    copy_images: bool | None = None
    images_dir: str | None = None
    images_prefix: str | None = None
    workers: int = 16
    channel_prefix: str | None = None
    image_prefix: str | None = None
    coco_reference: Location | None = None
    polygon_boxes: bool = False
    job_name: str = "prelabel"
    human_annotated: bool = False
    store: S3Store | None = None


def options_set(options: ConvertOptions) -> list[str]:
    """The names of the options that differ from their defaults (``store`` aside)."""
    return [
        f.name
        for f in fields(options)
        if f.name != "store" and getattr(options, f.name) != f.default
    ]


@dataclass(slots=True)
class ConversionResult:
    """What a conversion wrote and saw; ``to_json`` is the summary file.

    ``notes`` are things the user must act on before training (an empty channel, local
    ``S3Uri`` values, renumbered categories); they are printed with the summary, not only
    buried in a file.
    """

    target: str
    stats: OutputStats
    outputs: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Stats, outputs and target-specific facts, ready for ``summary.json``."""
        out: dict[str, Any] = {"target": self.target, **self.stats.to_json()}
        out["outputs"] = self.outputs
        out.update(self.extra)
        if self.notes:
            out["notes"] = self.notes
        return out

    def summary_lines(self) -> list[str]:
        """The printed summary."""
        lines = [f"gt-convert {self.target}:", *(f"  {x}" for x in self.stats.summary_lines())]
        lines += [f"  wrote {k}: {v}" for k, v in self.outputs.items()]
        lines += [f"  note: {note}" for note in self.notes]
        return lines
