"""The label-list check: a label list that does not match the labels the workers drew.

Consolidation drops a box whose label is not in the job's label list as ``unknown-label``
(:mod:`gt_toolkit.consolidation.engine`). One such box is a worker's slip; most boxes of a run
dropped that way is a configuration error (``labelCategories`` or ``--labels`` spelled or
cased differently from the labels the workers were offered), and carrying on would turn every
drawn object into an empty, confident-looking label. So is one label of the list spelled
otherwise than the workers mostly spelled it (``Person`` for the ``person`` they drew), however
rare that label: every one of its objects would vanish from the consolidated data, and workers
pick labels from the list they are shown, so no slip of theirs gives a label that differs
only in case or surrounding spaces. :func:`label_mismatch` is the one rule that tells these
apart; the post-annotation Lambda and offline re-consolidation both call it,
each over a whole run (a Lambda batch, a job), and decide what stopping means for them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter

from gt_toolkit.consolidation.engine import DropReason, ImageConsolidation
from gt_toolkit.types import WorkerBox

__all__ = ["LabelMismatch", "LabelTally", "label_mismatch", "unknown_labels"]

_SHOWN = 20  # labels listed in the message; the counts keep them all
_LABEL = itemgetter("label")
_NAME_CHARS = 80  # a label name longer than this is cut in the message


def unknown_labels(
    answers: Sequence[Sequence[WorkerBox]], result: ImageConsolidation
) -> Counter[str]:
    """Labels of one image's boxes dropped as ``unknown-label``, with their box counts.

    Args:
        answers: the workers' boxes exactly as given to
            :func:`~gt_toolkit.consolidation.engine.consolidate_image`.
        result: what it returned for them.
    """
    return Counter(
        str(answers[d["worker"]][d["box"]]["label"])
        for d in result.dropped
        if d["reason"] == DropReason.UNKNOWN_LABEL
    )


@dataclass(slots=True)
class LabelTally:
    """What :func:`label_mismatch` weighs over a run, added image by image.

    Attributes:
        unknown: labels dropped as ``unknown-label``, with their box counts.
        drawn: every label the workers drew, with its box counts.
        boxes: boxes the workers drew.
        answers: worker answers (one worker on one image) that hold a box.
        misread: those answers whose boxes were mostly dropped as ``unknown-label``.
    """

    unknown: Counter[str] = field(default_factory=Counter)
    drawn: Counter[str] = field(default_factory=Counter)
    boxes: int = 0
    answers: int = 0
    misread: int = 0

    def add(self, answers: Sequence[Sequence[WorkerBox]], result: ImageConsolidation) -> None:
        """Count one image: ``answers`` exactly as given to ``consolidate_image``."""
        self.unknown += unknown_labels(answers, result)
        try:  # at C speed: a per-box Python loop cost a Lambda or a reconsolidation 15%
            labels = list(map(str, map(_LABEL, chain.from_iterable(answers))))
        except (TypeError, KeyError):  # a box that is not an object: consolidation's malformed
            labels = [
                str(box.get("label"))
                for boxes in answers
                for box in boxes
                if isinstance(box, Mapping)
            ]
        self.drawn.update(labels)
        self.boxes += sum(map(len, answers))
        dropped = Counter(
            d["worker"] for d in result.dropped if d["reason"] == DropReason.UNKNOWN_LABEL
        )
        self.answers += sum(1 for boxes in answers if boxes)
        self.misread += sum(1 for w, n in dropped.items() if 2 * n > len(answers[w]))

    def __iadd__(self, other: LabelTally) -> LabelTally:
        self.unknown += other.unknown
        self.drawn += other.drawn
        self.boxes += other.boxes
        self.answers += other.answers
        self.misread += other.misread
        return self

    def mismatch(self, expected: Sequence[str]) -> LabelMismatch | None:
        """:func:`label_mismatch` over the run so far."""
        return label_mismatch(
            self.unknown,
            self.boxes,
            expected,
            answers=self.answers,
            misread=self.misread,
            drawn=self.drawn,
        )


@dataclass(frozen=True, slots=True)
class LabelMismatch:
    """Most boxes of a run carried labels the label list does not have.

    Attributes:
        seen: each unknown label with the number of boxes that carried it.
        expected: the label list the run was given.
        dropped: boxes dropped as ``unknown-label`` (the sum of ``seen``).
        boxes: boxes the workers drew in the run.
    """

    seen: Mapping[str, int]
    expected: tuple[str, ...]
    dropped: int
    boxes: int

    @property
    def message(self) -> str:
        """One paragraph: the counts, the labels seen and expected, and near misses."""
        seen = sorted(self.seen.items(), key=lambda kv: (-kv[1], kv[0]))
        listed = ", ".join(f"{_name(k)} ({n})" for k, n in seen[:_SHOWN])
        if len(seen) > _SHOWN:
            listed += f", and {len(seen) - _SHOWN} more"
        expected = ", ".join(_name(k) for k in self.expected[:_SHOWN])
        if len(self.expected) > _SHOWN:
            expected += f", and {len(self.expected) - _SHOWN} more"
        text = (
            f"label list mismatch: {self.dropped} of {self.boxes} boxes were dropped as "
            f"unknown-label; labels seen: {listed}; labels expected: {expected or '(none)'}"
        )
        near = _near_misses(self.seen, self.expected)[:_SHOWN]
        if near:
            text += "; " + ", ".join(f"{_name(a)} looks like {_name(b)}" for a, b in near)
        return text


def label_mismatch(
    unknown: Mapping[str, int],
    boxes: int,
    expected: Sequence[str],
    *,
    answers: int | None = None,
    misread: int = 0,
    drawn: Mapping[str, int] | None = None,
) -> LabelMismatch | None:
    """The rule: the workers' labels mostly miss the list, or spell one of its labels otherwise.

    Mostly miss: most boxes of the run, and most boxes of most answers, had unknown labels.
    The second half (checked when ``answers`` is given) keeps one worker from failing a
    run: a worker who floods one answer with boxes of a made-up label outweighs the others'
    boxes, not their answers. A label list that does not match fails nearly every answer.

    Args:
        unknown: unknown labels with their box counts over the whole run (sum the
            :func:`unknown_labels` of every image).
        boxes: every box the workers drew in the run, dropped or not.
        expected: the label list the run was given.
        answers: worker answers that hold a box (:class:`LabelTally` counts them).
        misread: of those, the answers whose boxes were mostly dropped as unknown-label.
        drawn: every label drawn in the run with its box counts (:class:`LabelTally`
            counts them): an unknown label equal to a listed one up to case and surrounding
            spaces that carries more boxes than the listed spelling is a mismatch however
            few boxes it has (module docstring).

    Returns:
        The mismatch to report, or ``None`` when at most half of the boxes were dropped as
        ``unknown-label``, or at most half of the answers mostly were, and no listed label
        is outnumbered by another spelling of it (a few stray labels are reported box by
        box, as ever).

    Examples:
        >>> print(label_mismatch({"Car": 9}, 10, ["car", "bus"]).message)
        label list mismatch: 9 of 10 boxes were dropped as unknown-label; labels seen: 'Car' (9); \
labels expected: 'car', 'bus'; 'Car' looks like 'car'
        >>> label_mismatch({"truck": 1}, 10, ["car"]) is None
        True
    """
    dropped = sum(unknown.values())
    most = 2 * dropped > boxes and (answers is None or 2 * misread > answers)
    respelt = drawn is not None and any(
        unknown[name] > drawn.get(listed, 0) for name, listed in _near_misses(unknown, expected)
    )
    if not (most or respelt):
        return None
    seen = {name: n for name, n in unknown.items() if n}
    return LabelMismatch(seen=seen, expected=tuple(expected), dropped=dropped, boxes=boxes)


def _near_misses(seen: Mapping[str, int], expected: Sequence[str]) -> list[tuple[str, str]]:
    """Unknown labels equal to an expected one up to case and surrounding spaces."""
    folded = {name.strip().casefold(): name for name in expected}
    out = []
    for name in seen:
        match = folded.get(name.strip().casefold())
        if match is not None:
            out.append((name, match))
    return out


def _name(name: str) -> str:
    """A label as the message shows it: quoted, cut when very long."""
    if len(name) > _NAME_CHARS:
        return repr(name[:_NAME_CHARS]) + f"... ({len(name)} characters)"
    return repr(name)
