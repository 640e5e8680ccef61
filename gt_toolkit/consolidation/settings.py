"""The engine's knobs and its vocabulary: settings, drop reasons, the default quorum.

Every phase of :mod:`gt_toolkit.consolidation.engine` reads these; the rules they tune are
told once, in ``docs/consolidation.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from gt_toolkit.errors import ConsolidationError

__all__ = [
    "DEFAULT_WORKER_MODEL",
    "ConsolidationSettings",
    "DropReason",
    "Fusion",
    "Keep",
    "Quorum",
    "default_min_support",
]

Fusion = Literal["huber", "mean", "median"]
Quorum = Literal["box", "label"]
Keep = Literal["quorum", "model"]

DEFAULT_WORKER_MODEL: Literal["fit"] | None = "fit"
"""Offline consolidation without a model given: ``"fit"`` one on the job first, or ``None``
(the head count). Why: ``docs/consolidation.md``, "Why these defaults"."""


class DropReason(StrEnum):
    """Why a worker's box did not become (part of) a consolidated box."""

    MALFORMED = "malformed"
    MISSING_LABEL = "missing-label"
    UNKNOWN_LABEL = "unknown-label"
    NON_FINITE = "non-finite"
    NON_POSITIVE_SIZE = "non-positive-size"
    OUTSIDE_IMAGE = "outside-image"
    DUPLICATE = "duplicate"
    BELOW_MIN_SUPPORT = "below-min-support"
    UNLIKELY = "unlikely"  # a worker model finds a false positive likelier than an object


def default_min_support(workers: int) -> int:
    """Strict majority of the workers who answered; 1 for one (or no) worker."""
    return workers // 2 + 1 if workers > 1 else 1


@dataclass(frozen=True, slots=True)
class ConsolidationSettings:
    """Tuning knobs of :func:`~gt_toolkit.consolidation.engine.consolidate_image`.

    Attributes:
        iou_threshold: the IoU two boxes of different workers need to be the same object.
        min_support: workers needed to keep a cluster; ``None`` = strict majority of the
            workers who answered (1 when one answered).
        fusion: how member edges are combined: ``"huber"`` (default, Huber's M-estimate),
            ``"mean"`` or ``"median"``.
        clip: clip boxes to the image (``True``) or drop boxes that cross its border.
        duplicate_iou: IoU at which two same-label boxes of *one* worker count as a duplicate.
        quorum: what ``min_support`` counts. ``"box"``: workers who drew the cluster; it
            is kept with the voted label, ties included. ``"label"`` (default): workers
            who gave each label; one box per label that reaches it, all on the cluster's
            fused box (every member still helps place it). At a strict majority this drops
            clusters whose label vote is split (a 1:1 tie of 3 workers is a coin flip);
            at ``min_support=1`` it keeps every label any worker gave, as WBF does.
        keep: who decides which clusters are objects when a worker model is given.
            ``"quorum"`` (default): the head count (``min_support`` and ``quorum`` as
            without a model); the model only fuses. ``"model"``: the model's log-odds
            (rule 8), at least one worker. ``"model"`` needs a worker model.
    """

    iou_threshold: float = 0.5
    min_support: int | None = None
    fusion: Fusion = "huber"
    clip: bool = True
    duplicate_iou: float = 0.9
    quorum: Quorum = "label"
    keep: Keep = "quorum"

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.iou_threshold <= 1.0:
            problems.append(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if self.min_support is not None and self.min_support < 1:
            problems.append(f"min_support must be >= 1, got {self.min_support}")
        if self.fusion not in ("huber", "mean", "median"):
            problems.append(f"fusion must be 'huber', 'mean' or 'median', got {self.fusion!r}")
        if not 0.0 < self.duplicate_iou <= 1.0:
            problems.append(f"duplicate_iou must be in (0, 1], got {self.duplicate_iou}")
        if self.quorum not in ("box", "label"):
            problems.append(f"quorum must be 'box' or 'label', got {self.quorum!r}")
        if self.keep not in ("quorum", "model"):
            problems.append(f"keep must be 'quorum' or 'model', got {self.keep!r}")
        if problems:
            raise ConsolidationError("; ".join(problems))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConsolidationSettings:
        """Settings from the ``GT_*`` variables of the post-annotation Lambda.

        ``GT_IOU_THRESHOLD``, ``GT_MIN_SUPPORT``, ``GT_FUSION``, ``GT_QUORUM``, ``GT_KEEP``.
        Unset or empty variables keep the defaults.

        Raises:
            ConsolidationError: a variable is set to a value that cannot be used.
        """
        kwargs: dict[str, Any] = {}
        try:
            if env.get("GT_IOU_THRESHOLD", "").strip():
                kwargs["iou_threshold"] = float(env["GT_IOU_THRESHOLD"])
            if env.get("GT_MIN_SUPPORT", "").strip():
                kwargs["min_support"] = int(env["GT_MIN_SUPPORT"])
        except ValueError as exc:
            raise ConsolidationError(
                f"bad consolidation setting in the environment: {exc}"
            ) from exc
        if env.get("GT_FUSION", "").strip():
            kwargs["fusion"] = env["GT_FUSION"].strip().lower()
        if env.get("GT_QUORUM", "").strip():
            kwargs["quorum"] = env["GT_QUORUM"].strip().lower()
        if env.get("GT_KEEP", "").strip():
            kwargs["keep"] = env["GT_KEEP"].strip().lower()
        return cls(**kwargs)
