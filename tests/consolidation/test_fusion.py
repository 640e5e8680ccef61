from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gt_toolkit.consolidation.engine import consolidate_boxes
from gt_toolkit.types import WorkerBox


def bx(left: float, top: float, width: float, height: float) -> WorkerBox:
    return {"label": "car", "left": left, "top": top, "width": width, "height": height}


def edges(box: WorkerBox) -> list[float]:
    return [box["left"], box["top"], box["left"] + box["width"], box["top"] + box["height"]]


def fused(answers: list[list[WorkerBox]], fusion: str) -> list[float]:
    (box,) = consolidate_boxes(answers, fusion=fusion, min_support=1)  # type: ignore[arg-type]
    return edges(box)


# four careful workers and one loose one on a 100 x 100 object, plus a second object whose
# workers agree closely, so the image's edge noise is measured on both
CAREFUL = [bx(100 + d, 100 - d, 100, 100) for d in (-1, 0, 1, 2)]
LOOSE = bx(80, 80, 140, 140)
OTHER = [bx(400 + d, 100, 100, 100) for d in (0, 1, -1, 0, 1)]


def test_huber_lets_a_sloppy_box_pull_far_less_than_the_mean() -> None:
    answers = [[c, o] for c, o in zip([*CAREFUL, LOOSE], OTHER, strict=True)]
    out = consolidate_boxes(answers, fusion="huber")
    mean = consolidate_boxes(answers, fusion="mean")
    median = consolidate_boxes(answers, fusion="median")
    careful = np.mean([edges(c) for c in CAREFUL], axis=0)
    sloppy, tight = (edges(b) for b in sorted(out, key=lambda b: b["left"]))
    mean_error = np.abs(np.array(edges(mean[0])) - careful).max()
    huber_error = np.abs(np.array(sloppy) - careful).max()
    assert huber_error < mean_error / 3
    assert np.abs(np.array(sloppy) - np.array(edges(median[0]))).max() < 2.0
    # the tight object: every member within the limit, so Huber's estimate is the mean
    assert tight == pytest.approx(edges(mean[1]))


def test_two_members_give_their_mean() -> None:
    answers = [[bx(0, 0, 50, 50)], [bx(10, 4, 50, 40)]]
    assert fused(answers, "huber") == pytest.approx(fused(answers, "mean"))


def test_identical_members_give_that_box() -> None:
    answers = [[bx(5, 6, 30, 40)] for _ in range(4)]
    assert fused(answers, "huber") == pytest.approx([5, 6, 35, 46])


def test_weights_pull_the_huber_estimate() -> None:
    answers = [[bx(0, 0, 40, 40)], [bx(4, 0, 40, 40)], [bx(2, 0, 40, 40)]]
    light = consolidate_boxes(answers, weights=[1.0, 1.0, 1.0])[0]["left"]
    heavy = consolidate_boxes(answers, weights=[10.0, 1.0, 1.0])[0]["left"]
    assert heavy < light


corner = st.integers(min_value=0, max_value=300)


@settings(max_examples=60, deadline=None)
@given(
    st.tuples(corner, corner, st.integers(20, 120), st.integers(20, 120)),
    st.lists(st.tuples(*[st.integers(-8, 8)] * 4), min_size=3, max_size=8),
)
def test_huber_stays_within_the_members_and_ignores_their_order(
    base: tuple[int, int, int, int], jitters: list[tuple[int, ...]]
) -> None:
    left, top, width, height = base
    answers = [[bx(left + a, top + b, width + c, height + d)] for a, b, c, d in jitters]
    out = consolidate_boxes(answers, fusion="huber", min_support=1)
    assume(len(out) == 1)  # jitter this small keeps one cluster; a split draw says nothing
    got = np.array(edges(out[0]))
    members = np.array([edges(a[0]) for a in answers])
    assert (got >= members.min(axis=0) - 1e-9).all() and (got <= members.max(axis=0) + 1e-9).all()
    again = consolidate_boxes(answers[::-1], fusion="huber", min_support=1)
    assert edges(again[0]) == pytest.approx(edges(out[0]))
