"""bench/consolidation.py: its class-aware greedy matching and AP, against pycocotools.

The README's simulated-crowd table (and issue 14's "no figure below WBF's") rests on this
script's ``match`` and ``Score.ap``; on one label they must give COCOeval's AP@0.5 and
recall to the last digit, tied scores included (WBF's scores are k/K: ties everywhere).
"""

from __future__ import annotations

import contextlib
import io
import random
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from gt_toolkit.consolidation.geometry import iou_matrix
from gt_toolkit.testing.simulated_crowd import make_skills, simulate_crowd
from gt_toolkit.types import WorkerBox
from tests.helpers import load_script

BENCH = Path(__file__).resolve().parents[2] / "bench" / "consolidation.py"


@pytest.fixture(scope="module")
def cons() -> ModuleType:
    """The script as a module (``bench/`` is not a package)."""
    return load_script(BENCH, "bench_consolidation")


def _coco_ap(
    truths: list[list[WorkerBox]], preds: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[float, float]:
    """COCOeval's AP@0.5 and recall@0.5 on one category, every detection counted."""
    gt = COCO()
    images: list[dict[str, int]] = []
    anns: list[dict[str, Any]] = []
    for i, boxes in enumerate(truths):
        images.append({"id": i + 1, "width": 1000, "height": 1000})
        for b in boxes:
            box = [b["left"], b["top"], b["width"], b["height"]]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": 1,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "c"}]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dets = [
            {
                "image_id": i + 1,
                "category_id": 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(s),
            }
            for i, (xyxy, scores) in enumerate(preds)
            for (x1, y1, x2, y2), s in zip(xyxy.tolist(), scores.tolist(), strict=True)
        ]
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.iouThrs = np.array([0.5])
        ev.params.maxDets = [10_000]
        ev.params.areaRng = [[0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][0, :, 0, 0, 0]
    return float(np.mean(precision)), float(ev.eval["recall"][0, 0, 0, 0])


@pytest.mark.parametrize("method", ["wbf", "ours", "single"])
def test_ap_and_recall_are_cocoevals(cons: ModuleType, method: str) -> None:
    """One label, a simulated crowd: the bench's AP@0.5 and recall equal COCOeval's."""
    crowd = simulate_crowd(
        images=30,
        boxes_per_image=6,
        skills=make_skills(3, seed=5, miss_rate=0.2),
        labels=("car",),
        seed=5,
    )
    m = cons.METHODS[method]
    score = cons.Score()
    truths, preds = [], []
    rng = random.Random(5)
    for img in crowd:
        pred = m.pred(m.run(img, rng))
        cons.match(score, img, pred)
        truths.append(img.truth)
        preds.append((pred[0], pred[2]))
    ap, recall = _coco_ap(truths, preds)
    assert score.tp > 0 and score.fp + score.fn > 0  # a case with something to rank
    assert score.ap() == pytest.approx(ap, abs=1e-12)
    assert score.recall == pytest.approx(recall, abs=1e-12)


def test_match_is_class_aware_and_one_to_one(cons: ModuleType) -> None:
    """A box of the wrong label is a miss and a false box; one truth takes one prediction."""
    car = WorkerBox(label="car", left=0, top=0, width=10, height=10)
    truth = type("T", (), {"truth": [car]})()
    xyxy = np.array([[0, 0, 10, 10], [0, 0, 10, 11], [0, 0, 10, 10]], dtype=float)
    score = cons.Score()
    cons.match(score, truth, (xyxy, ["bike", "car", "car"], np.array([0.9, 0.8, 0.7])))
    # the bike is wrong; the car at 0.8 takes the truth first (greedy by score), though the
    # car at 0.7 fits it better; that one is then a false box
    assert (score.tp, score.fp, score.fn) == (1, 2, 0)
    assert score.ious == [pytest.approx(iou_matrix(xyxy[1:2], xyxy[:1])[0, 0])]
    assert score.ranked == [(0.9, 0), (0.8, 1), (0.7, 0)]
