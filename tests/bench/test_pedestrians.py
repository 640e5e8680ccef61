"""bench/pedestrians.py: its scoring and its peers, checked by hand and by brute force.

The README's real-crowd table and issue 14's goals rest on this script, so its matching,
F1 and mean IoU, its WBF majority cut and its datumaro-style medoid are tested here like
library code.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_toolkit.consolidation.geometry import iou_matrix
from gt_toolkit.formats.crowd import CrowdImage
from gt_toolkit.types import ImageSize, WorkerBox
from tests.helpers import load_script

BENCH = Path(__file__).resolve().parents[2] / "bench" / "pedestrians.py"


@pytest.fixture(scope="module")
def ped() -> ModuleType:
    """The script as a module (``bench/`` is not a package)."""
    return load_script(BENCH, "bench_pedestrians")


def _image(*workers: list[tuple[float, float, float, float]], size: int = 100) -> CrowdImage:
    """One image: each worker's xyxy boxes."""
    boxes = tuple(
        [
            WorkerBox(label="pedestrian", left=x1, top=y1, width=x2 - x1, height=y2 - y1)
            for x1, y1, x2, y2 in answer
        ]
        for answer in workers
    )
    return CrowdImage(
        key="img",
        image_size=ImageSize(width=size, height=size),
        annotators=tuple(f"w{i}" for i in range(len(workers))),
        boxes=boxes,
    )


def test_score_by_hand(ped: ModuleType) -> None:
    """Two expert boxes, three predictions: F1 and mean IoU worked out on paper."""
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], dtype=float)
    pred = np.array(
        [
            [0, 0, 10, 12],  # IoU 100/120 with the first: a hit at 0.5 and 0.75
            [20, 0, 30, 15],  # IoU 100/150 with the second: a hit at 0.5 only
            [0, 0, 10, 11],  # IoU 100/110 with the first, already taken one to one: false
        ],
        dtype=float,
    )
    score = ped.Score()
    score.add(pred, truth)
    # one to one: the first expert box goes to the prediction of IoU 0.909, not 0.833
    assert score.tp == {0.5: 2, 0.75: 1}
    assert score.fp == {0.5: 1, 0.75: 2}
    assert score.fn == {0.5: 0, 0.75: 1}
    assert score.f1(0.5) == pytest.approx(2 * 2 / (2 * 2 + 1 + 0))
    assert score.f1(0.75) == pytest.approx(2 * 1 / (2 * 1 + 2 + 1))
    assert score.mean_iou() == pytest.approx((100 / 110 + 100 / 150) / 2)


def test_score_of_an_empty_expert_image(ped: ModuleType) -> None:
    """An image the expert saw and left empty: every prediction is a false positive."""
    score = ped.Score()
    score.add(np.array([[0, 0, 5, 5]], dtype=float), np.zeros((0, 4)))
    score.add(np.zeros((0, 4)), np.array([[0, 0, 5, 5]], dtype=float))
    assert (score.tp[0.5], score.fp[0.5], score.fn[0.5]) == (0, 1, 1)


def _brute_force(iou: np.ndarray, t: float) -> float:
    """The largest summed IoU of any one-to-one set of pairs at IoU >= t, by enumeration."""
    rows, cols = iou.shape
    best = 0.0
    for r in range(min(rows, cols) + 1):
        for chosen_rows in itertools.combinations(range(rows), r):
            for chosen_cols in itertools.permutations(range(cols), r):
                pairs = [iou[i, j] for i, j in zip(chosen_rows, chosen_cols, strict=True)]
                if all(v >= t for v in pairs):
                    best = max(best, float(sum(pairs)))
    return best


_coord = st.integers(min_value=0, max_value=12)


@st.composite
def _boxes(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(min_value=0, max_value=4))
    rows = []
    for _ in range(n):
        x, y = draw(_coord), draw(_coord)
        w, h = draw(st.integers(1, 8)), draw(st.integers(1, 8))
        rows.append((x, y, x + w, y + h))
    return np.asarray(rows, dtype=float).reshape(-1, 4)


@settings(max_examples=300, deadline=None)
@given(pred=_boxes(), truth=_boxes(), t=st.sampled_from([0.5, 0.75]))
def test_matching_is_the_best_one_to_one(
    ped: ModuleType, pred: np.ndarray, truth: np.ndarray, t: float
) -> None:
    """``matched`` is one to one, every pair reaches t, and no matching sums more IoU."""
    iou = iou_matrix(pred, truth)
    hits = ped.matched(iou, t)
    assert all(v >= t for v in hits.values())
    assert len(hits) <= min(len(pred), len(truth))
    # no more than the best one-to-one sum (an expert box taken twice could exceed it)
    # and no less (a worse matching would fall short)
    assert sum(hits.values()) == pytest.approx(_brute_force(iou, t), abs=1e-9)


def test_wbf_majority_keeps_what_a_strict_majority_drew(ped: ModuleType) -> None:
    """Scores are the share of workers in a cluster; a worker's second box counts once."""
    obj, lone = (10, 10, 40, 60), (70, 70, 90, 95)
    img = _image(
        [obj, (11, 10, 41, 60)],  # the first worker draws the object twice
        [(10, 11, 40, 61)],
        [lone],
    )
    out = ped.wbf_majority([img])[0]
    # one object, 2 of 3 workers: kept; the lone box, 1 of 3: dropped
    assert out.shape == (1, 4)
    assert iou_matrix(out, [obj])[0, 0] > 0.9
    twice_alone = _image([obj, (11, 10, 41, 60)], [], [])
    # one worker's two boxes are 1 of 3 workers, not 2
    assert ped.wbf_majority([twice_alone])[0].shape == (0, 4)


def test_medoid_clusters_as_datumaro_does(ped: ModuleType) -> None:
    """A box joins when its turn comes, checked only against the members taken before.

    Worker 0's box links to worker 1's and worker 2's first box; worker 1's box links to
    worker 2's second box (its best match). Datumaro's ``match_annotations`` queues worker
    1's box and worker 2's first box from worker 0's, then worker 2's second box from
    worker 1's, checked against the two members taken so far: all four join, and the
    cluster has four votes, a strict majority of seven workers.
    """
    a1, b1 = (0, 0, 10, 10), (0, 0, 10, 12)
    c1, c2 = (0, 0, 10, 10), (0, 0, 10, 12.5)
    img = _image([a1], [b1], [c1, c2], [], [], [], [])
    out = ped.medoid_majority([img])[0]
    assert out.shape == (1, 4)
    mean = np.mean([a1, b1, c1, c2], axis=0)
    nearest = max((a1, b1, c1, c2), key=lambda b: iou_matrix([mean], [b])[0, 0])
    assert out[0].tolist() == list(map(float, nearest))


def test_every_method_sees_the_same_draw(ped: ModuleType) -> None:
    """``draw`` is seeded: two calls give the same workers, and one worker is the first."""
    scenes = [
        ped.Scene(
            key=f"s{i}",
            width=100,
            height=100,
            workers={f"w{j}": [(j, j, j + 10.0, j + 10.0)] for j in range(7)},
            expert=None,
        )
        for i in range(20)
    ]
    one, two = ped.draw(scenes, 3, seed=7), ped.draw(scenes, 3, seed=7)
    assert [img.annotators for img in one] == [img.annotators for img in two]
    assert len({img.annotators for img in one}) > 1  # drawn, not always the same three
    first = ped.one_worker(one)
    for img, boxes in zip(one, first, strict=True):
        j = int(img.annotators[0][1:])
        assert boxes.tolist() == [[j, j, j + 10.0, j + 10.0]]
