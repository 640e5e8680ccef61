from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_toolkit.consolidation.geometry import (
    area,
    as_xyxy,
    box_iou,
    candidate_pairs,
    clip_xyxy,
    gt_from_xyxy,
    iou_columns,
    iou_matrix,
    iou_pairs,
    overlap_pairs,
    xyxy_from_gt,
)

coord = st.floats(min_value=-50, max_value=500, allow_nan=False, width=32)
size = st.floats(min_value=0, max_value=200, allow_nan=False, width=32)
box_st = st.tuples(coord, coord, size, size).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])
boxes_st = st.lists(box_st, min_size=0, max_size=12)


def shapely_iou(a: list[float], b: list[float]) -> float:
    pa, pb = shapely.box(*a), shapely.box(*b)
    union = pa.union(pb).area
    return 0.0 if union == 0 else pa.intersection(pb).area / union


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 2, 2], [0, 0, 2, 2], 1.0),  # identical
        ([0, 0, 2, 2], [1, 0, 3, 2], 1 / 3),  # half overlap
        ([0, 0, 1, 1], [1, 0, 2, 1], 0.0),  # touching edges
        ([0, 0, 1, 1], [5, 5, 6, 6], 0.0),  # disjoint
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),  # two empty boxes: safe division, not NaN
        ([0, 0, 4, 4], [1, 1, 2, 2], 1 / 16),  # containment
    ],
    ids=["same", "half", "touch", "disjoint", "empty", "inside"],
)
def test_iou_matrix_table(a: list[float], b: list[float], expected: float) -> None:
    assert iou_matrix([a], [b])[0, 0] == pytest.approx(expected)


@settings(max_examples=60, deadline=None)
@given(boxes_st, boxes_st)
def test_iou_matrix_equals_shapely_oracle(a: list[list[float]], b: list[list[float]]) -> None:
    got = iou_matrix(a, b)
    assert got.shape == (len(a), len(b))
    for i, ba in enumerate(a):
        for j, bb in enumerate(b):
            assert got[i, j] == pytest.approx(shapely_iou(ba, bb), abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(boxes_st)
def test_iou_symmetric_bounded_and_self_one(a: list[list[float]]) -> None:
    m = iou_matrix(a, a)
    assert np.allclose(m, m.T)
    assert ((m >= 0) & (m <= 1)).all()
    nonempty = area(a) > 0 if a else np.zeros(0, dtype=bool)
    assert np.allclose(np.diag(m)[nonempty], 1.0)
    if a:
        assert np.allclose(iou_pairs(a, a)[nonempty], 1.0)


@settings(max_examples=60, deadline=None)
@given(boxes_st, boxes_st)
def test_every_iou_form_agrees_with_the_matrix(a: list[list[float]], b: list[list[float]]) -> None:
    """The scalar, row-wise, column and xywh forms are one IoU, bit for bit."""
    m = iou_matrix(a, b)
    for i, ba in enumerate(a):
        for j, bb in enumerate(b):
            assert box_iou(ba, bb) == m[i, j]
    k = min(len(a), len(b))
    aa, bb_ = as_xyxy(a[:k]), as_xyxy(b[:k])
    rows = iou_pairs(aa, bb_)
    assert rows.tolist() == [m[i, i] for i in range(k)]
    assert iou_columns(tuple(aa.T), tuple(bb_.T)).tolist() == rows.tolist()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(*[st.integers(0, 300)] * 4), max_size=8),
    st.lists(st.tuples(*[st.integers(0, 300)] * 4), max_size=8),
)
def test_xywh_iou_is_the_xyxy_iou_of_the_same_boxes(
    a: list[tuple[int, ...]], b: list[tuple[int, ...]]
) -> None:
    def corners(boxes: list[tuple[int, ...]]) -> list[list[int]]:
        return [[x, y, x + w, y + h] for x, y, w, h in boxes]

    got = iou_matrix(a, b, xywh=True)
    assert got.shape == (len(a), len(b))
    assert np.array_equal(got, iou_matrix(corners(a), corners(b)))


@settings(max_examples=60, deadline=None)
@given(st.lists(box_st, min_size=0, max_size=120))
def test_candidate_pairs_are_exactly_the_overlapping_pairs(a: list[list[float]]) -> None:
    arr = as_xyxy(a)
    lo, hi = candidate_pairs(arr)
    got = set(zip(lo.tolist(), hi.tolist(), strict=True))
    assert len(got) == len(lo)
    expected = {
        (i, j)
        for i in range(len(a))
        for j in range(i + 1, len(a))
        if shapely.box(*a[i]).intersection(shapely.box(*a[j])).area > 0
    }
    assert got == expected


def test_candidate_pairs_grid_path_on_many_boxes() -> None:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 1000, (400, 2))
    arr = np.column_stack([xy, xy + rng.uniform(1, 60, (400, 2))])
    lo, hi = candidate_pairs(arr)
    ix = np.minimum(arr[:, None, 2], arr[None, :, 2]) - np.maximum(arr[:, None, 0], arr[None, :, 0])
    iy = np.minimum(arr[:, None, 3], arr[None, :, 3]) - np.maximum(arr[:, None, 1], arr[None, :, 1])
    expected = {(i, j) for i, j in zip(*np.nonzero((ix > 0) & (iy > 0)), strict=True) if i < j}
    assert set(zip(lo.tolist(), hi.tolist(), strict=True)) == expected


def test_gt_round_trip_and_area() -> None:
    gt = [
        {"left": 10, "top": 20, "width": 30, "height": 40},
        {"left": 0, "top": 0, "width": 1, "height": 2},
    ]
    arr = xyxy_from_gt(gt)
    assert arr.tolist() == [[10, 20, 40, 60], [0, 0, 1, 2]]
    assert gt_from_xyxy(arr) == [{k: float(v) for k, v in b.items()} for b in gt]
    assert area(arr).tolist() == [1200, 2]
    assert xyxy_from_gt([]).shape == (0, 4)
    assert area([[5, 5, 1, 1]]).tolist() == [0]  # inverted box counts as empty


def test_clip_to_image() -> None:
    out = clip_xyxy([[-10, -5, 50, 60], [200, 200, 300, 300]], 100, 50)
    assert out.tolist() == [[0, 0, 50, 50], [100, 50, 100, 50]]
    assert area(out).tolist() == [2500, 0]


def test_as_xyxy_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        as_xyxy([[1, 2, 3]])
    assert as_xyxy([1, 2, 3, 4]).shape == (1, 4)


many_st = st.lists(
    st.tuples(st.integers(0, 400), st.integers(0, 400), st.integers(0, 60), st.integers(0, 60)).map(
        lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]]
    ),
    min_size=41,
    max_size=120,
)
huge_st = st.lists(
    st.tuples(st.integers(-50, 300), st.integers(-50, 300), st.integers(100, 500)).map(
        lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[2] // 2]
    ),
    max_size=4,
)


@settings(max_examples=40, deadline=None)
@given(many_st, huge_st)
def test_band_sweep_finds_every_overlapping_pair(
    small: list[list[int]], huge: list[list[int]]
) -> None:
    # above 40 boxes the band sweep runs: integer edges make touching boxes common, and a
    # few huge boxes (checked against everything) and zero-size ones are mixed in
    arr = as_xyxy(small + huge)
    lo, hi = candidate_pairs(arr)
    ix = np.minimum(arr[:, None, 2], arr[None, :, 2]) - np.maximum(arr[:, None, 0], arr[None, :, 0])
    iy = np.minimum(arr[:, None, 3], arr[None, :, 3]) - np.maximum(arr[:, None, 1], arr[None, :, 1])
    expected = {(i, j) for i, j in zip(*np.nonzero((ix > 0) & (iy > 0)), strict=True) if i < j}
    got = list(zip(lo.tolist(), hi.tolist(), strict=True))
    assert len(got) == len(set(got))
    assert set(got) == expected
    # the x-sweep for boxes sorted by left edge finds the same pairs, with their IoU
    order = np.argsort(arr[:, 0], kind="stable")
    cols = [np.ascontiguousarray(arr[order, k]) for k in range(4)]
    s_lo, s_hi, s_iou = overlap_pairs(np.array(cols), x_sorted=True, with_iou=True)
    assert {
        tuple(sorted((int(order[i]), int(order[j]))))
        for i, j in zip(s_lo.tolist(), s_hi.tolist(), strict=True)
    } == expected
    assert s_iou == pytest.approx(iou_pairs(arr[order][s_lo], arr[order][s_hi]))
