"""Consolidation quality and speed: gt-toolkit vs Weighted Boxes Fusion vs one worker.

One process, the same simulated crowds (``gt_toolkit.testing.simulated_crowd``) for every method:

- ``ours``: ``gt_toolkit.consolidate_boxes`` with its defaults (IoU 0.5, strict majority
  per label, Huber fusion), timed as ``consolidate_boxes_batch`` over the crowd (the same
  outputs, checked; one call for many images, as a job's consolidation makes it);
- ``ours-all``: the same with ``min_support=1`` (keeps every cluster, like raw WBF does);
- ``ours-model``: the offline default (``gt-convert consolidate``, ``reconsolidate``):
  ``fit_worker_model`` over the whole crowd (untimed), then ``consolidate_images(...,
  worker_model=...)`` over the crowd (timed; the same outputs as ``consolidate_image`` per
  image, checked): the head count keeps, the model fuses;
- ``ours-model-keep``: the same with ``keep="model"`` (the model also decides);
- ``ours-mean-box``: the defaults before issue 14 (``fusion="mean"``, ``quorum="box"``: one
  voted label per cluster, 1:1 ties kept), for comparison;
- ``wbf``: ``ensemble_boxes.weighted_boxes_fusion`` with every score 1.0,
  ``conf_type='box_and_model_avg'`` and ``iou_thr=0.5`` (all output boxes kept);
- ``wbf>=0.5``: the same output keeping only boxes with score >= 0.5 (WBF's nearest
  analogue of a majority quorum, shown so WBF's precision is not judged on raw output only);
- ``single``: one worker picked at random per image (what a 1-worker job gets).

Per cell (K workers x true boxes per image) it reports, class-aware at IoU 0.5: the mean
IoU of matched boxes to the truth, precision, recall, AP@0.5 (ranked by each method's
confidence, 101-point interpolation), and milliseconds per image. The crowd has 3 labels
and a 10% mean miss rate (each worker 5-15%), jitter 5% of the box size, 2% spurious and
2% duplicate boxes per object, 3% wrong labels, and every 4th worker draws loose boxes.

Each cell is scored on ``--seeds`` independent crowds (default 5; 3000, 1000, 200 and 50
images for 1, 10, 100 and 500 boxes): the table pools their images, and each difference
is set against the standard error of its per-crowd differences, because one crowd's
figures move in the fourth decimal from seed to seed.

Two operating points are compared, each against the WBF output at the same support:
``ours``, ``ours-model`` (strict majority) and ``ours-model-keep`` (the model's own keep
rule) vs ``wbf>=0.5``
(score k/K >= 0.5 is the same majority), and ``ours-all`` (min_support=1) vs raw ``wbf``;
the differences (ours minus WBF) and every figure where ours is lower are printed, then the
goals of issue 14.

Timing: on the first crowd of each cell, ``--rounds`` interleaved rounds over the same
images (the method order rotates), best round per method. Each round counts the CPU time
of this process (``time.process_time``), not the wall clock, so other programs on a shared
machine slow every method alike instead of whichever ran while they did. ``wbf>=0.5`` is
timed as ``wbf`` (same call). Where a method has a batch call (``ours``, ``ours-all``,
``ours-mean-box``: ``consolidate_boxes_batch``; ``ours-model``, ``ours-model-keep``:
``consolidate_images``) its speed is the batch call's, and the goal lines print the
one-image-at-a-time figure beside it.

    .venv/bin/python bench/consolidation.py [--quick] [--markdown]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ensemble_boxes import weighted_boxes_fusion

from gt_toolkit.consolidation.engine import (
    consolidate_boxes,
    consolidate_boxes_batch,
    consolidate_image,
    consolidate_images,
)
from gt_toolkit.consolidation.geometry import iou_matrix, xyxy_from_gt
from gt_toolkit.consolidation.settings import ConsolidationSettings, Keep
from gt_toolkit.consolidation.worker_model import WorkerModel, fit_worker_model
from gt_toolkit.testing.simulated_crowd import CrowdImage, make_skills, simulate_crowd
from gt_toolkit.types import ConsolidatedBox, WorkerBox

LABELS = ("car", "person", "bike")
Pred = tuple[np.ndarray, list[str], np.ndarray]  # xyxy, labels, scores


@dataclass
class Score:
    ious: list[float]
    tp: int = 0
    fp: int = 0
    fn: int = 0
    seconds: float = 0.0
    images: int = 0
    alone: float = 0.0  # with a batch call: seconds per image called one image at a time

    def __init__(self) -> None:
        self.ious, self.tp, self.fp, self.fn, self.seconds, self.images = [], 0, 0, 0, 0.0, 0
        self.ranked: list[tuple[float, int]] = []  # (score, is_tp) for AP
        self.positives = 0

    def add(self, other: Score) -> None:
        """Pool another crowd's counts into this one (the table shows pooled figures)."""
        self.ious += other.ious
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn
        self.ranked += other.ranked
        self.positives += other.positives
        self.images += other.images

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def mean_iou(self) -> float:
        return float(np.mean(self.ious)) if self.ious else 0.0

    @property
    def ms(self) -> float:
        return 1000 * self.seconds  # ``seconds`` is per image (best timing round)

    def ap(self) -> float:
        if not self.positives:
            return 1.0
        ranked = sorted(self.ranked, key=lambda r: -r[0])
        hits = np.array([r[1] for r in ranked], dtype=float)
        tp = np.cumsum(hits)
        fp = np.cumsum(1 - hits)
        recall = tp / self.positives
        precision = tp / np.maximum(tp + fp, 1e-12)
        for i in range(len(precision) - 2, -1, -1):  # precision envelope
            precision[i] = max(precision[i], precision[i + 1])
        total = 0.0
        for r in np.linspace(0, 1, 101):
            k = np.searchsorted(recall, r, side="left")
            total += precision[k] if k < len(precision) else 0.0
        return total / 101


def match(score: Score, truth: CrowdImage, pred: Pred) -> None:
    """Greedy class-aware matching by descending score at IoU 0.5 (COCO style)."""
    t_xyxy = xyxy_from_gt(truth.truth)
    t_labels = [b["label"] for b in truth.truth]
    p_xyxy, p_labels, p_scores = pred
    score.positives += len(t_labels)
    order = np.argsort(-p_scores, kind="stable")
    iou = iou_matrix(p_xyxy, t_xyxy)
    if len(t_labels) and len(p_labels):
        same = np.array(p_labels)[:, None] == np.array(t_labels)[None, :]
        iou = np.where(same, iou, 0.0)
    taken = np.zeros(len(t_labels), dtype=bool)
    for i in order:
        hit = 0
        if len(t_labels):
            row = np.where(taken, -1.0, iou[i])
            j = int(np.argmax(row))
            if row[j] >= 0.5:
                taken[j] = True
                hit = 1
                score.ious.append(float(row[j]))
        score.ranked.append((float(p_scores[i]), hit))
        score.tp += hit
        score.fp += 1 - hit
    score.fn += int((~taken).sum())


@dataclass(frozen=True)
class Method:
    """``run`` is timed: the workers' answers in Ground Truth's shape in, the method's own
    output (in pixels, with label names) out. ``pred`` is not timed: it turns that output
    into arrays for scoring, which no user needs."""

    run: Callable[[CrowdImage, random.Random], Any]
    pred: Callable[[Any], Pred]
    timed_as: str = ""  # the method whose timing this one shares (same call)
    prepare: Callable[[Sequence[CrowdImage]], None] | None = None  # per crowd, untimed
    # the same outputs for a whole crowd in one call (timed as the method's speed;
    # ``run`` one image at a time is timed too, and the outputs are checked equal)
    batch: Callable[[Sequence[CrowdImage]], list[Any]] | None = None


def ours(min_support: int | None = None, **options: Any) -> Method:
    def run(img: CrowdImage, rng: random.Random) -> list[ConsolidatedBox]:
        size = img.image_size
        return consolidate_boxes(
            img.answers, labels=LABELS, image_size=size, min_support=min_support, **options
        )

    def batch(crowd: Sequence[CrowdImage]) -> list[list[ConsolidatedBox]]:
        return consolidate_boxes_batch(
            [img.answers for img in crowd],
            labels=LABELS,
            image_sizes=[img.image_size for img in crowd],
            min_support=min_support,
            **options,
        )

    def pred(out: list[ConsolidatedBox]) -> Pred:
        scores = np.array([b["confidence"] for b in out], dtype=float)
        return xyxy_from_gt(out), [b["label"] for b in out], scores

    return Method(run, pred, batch=batch)


def ours_model(keep: Keep) -> Method:
    """A worker model fitted on the whole crowd, then each image; ``keep``: who decides."""
    fitted: dict[str, WorkerModel] = {}
    settings = ConsolidationSettings(keep=keep)

    def prepare(crowd: Sequence[CrowdImage]) -> None:
        job = (img.as_source_image(str(i)) for i, img in enumerate(crowd))
        fitted["model"] = fit_worker_model(job, labels=list(LABELS))

    def run(img: CrowdImage, rng: random.Random) -> list[ConsolidatedBox]:
        return consolidate_image(
            img.answers,
            settings=settings,
            labels=LABELS,
            image_size=img.image_size,
            worker_model=fitted["model"],
            annotators=img.worker_ids,
        ).boxes

    def batch(crowd: Sequence[CrowdImage]) -> list[list[ConsolidatedBox]]:
        results = consolidate_images(
            [img.answers for img in crowd],
            settings=settings,
            labels=LABELS,
            image_sizes=[img.image_size for img in crowd],
            worker_model=fitted["model"],
            annotators=[img.worker_ids for img in crowd],
        )
        return [result.boxes for result in results]

    return Method(run, ours().pred, prepare=prepare, batch=batch)


def wbf_run(img: CrowdImage, rng: random.Random) -> tuple[np.ndarray, list[str], np.ndarray]:
    w, h = img.image_size["width"], img.image_size["height"]
    scale = np.array([w, h, w, h], dtype=float)
    boxes, scores, labels = [], [], []
    for answer in img.answers:
        xyxy = xyxy_from_gt(answer) / scale if answer else np.zeros((0, 4))
        boxes.append(np.clip(xyxy, 0, 1).tolist())
        scores.append([1.0] * len(answer))
        labels.append([LABELS.index(b["label"]) for b in answer])
    if not any(boxes):
        return np.zeros((0, 4)), [], np.zeros(0)
    fused, fscores, flabels = weighted_boxes_fusion(
        boxes, scores, labels, iou_thr=0.5, skip_box_thr=0.0, conf_type="box_and_model_avg"
    )
    return np.asarray(fused) * scale, [LABELS[int(c)] for c in flabels], np.asarray(fscores)


def wbf(min_score: float = 0.0) -> Method:
    def pred(out: Pred) -> Pred:
        keep = out[2] >= min_score
        return out[0][keep], [c for c, k in zip(out[1], keep, strict=True) if k], out[2][keep]

    return Method(wbf_run, pred, "wbf" if min_score else "")


def single_run(img: CrowdImage, rng: random.Random) -> list[WorkerBox]:
    return list(img.answers[rng.randrange(len(img.answers))])


def single_pred(answer: list[WorkerBox]) -> Pred:
    return xyxy_from_gt(answer), [b["label"] for b in answer], np.ones(len(answer))


METHODS: dict[str, Method] = {
    "ours": ours(),
    "ours-all": ours(1),
    "ours-model": ours_model("quorum"),
    "ours-model-keep": ours_model("model"),
    "ours-mean-box": ours(fusion="mean", quorum="box"),
    "wbf": wbf(),
    "wbf>=0.5": wbf(0.5),
    "single": Method(single_run, single_pred),
}
TIMED = tuple(name for name, m in METHODS.items() if not m.timed_as)


def run_cell(
    workers: int, boxes: int, images: int, seeds: Sequence[int], rounds: int
) -> tuple[dict[str, Score], dict[str, list[tuple[float, ...]]]]:
    """Score every method on ``len(seeds)`` independent crowds, then time them on the first.

    Returns the pooled scores (figures over all crowds' images) and each method's figures
    per crowd, so a difference can be set against its crowd-to-crowd spread: one crowd's
    figures move in the fourth decimal from seed to seed.

    Timing is separate: ``rounds`` interleaved rounds over the first crowd (the method
    order rotates each round), each method timed over all its images per round, and the
    best round counts, so a busy shared machine slows every method alike and a noisy
    round is discarded rather than averaged in.
    """
    results = {name: Score() for name in METHODS}
    per_seed: dict[str, list[tuple[float, ...]]] = {name: [] for name in METHODS}
    crowds = []
    for seed in seeds:
        skills = make_skills(workers, seed=seed, miss_rate=0.1)
        crowd = simulate_crowd(
            images=images, boxes_per_image=boxes, skills=skills, labels=LABELS, seed=seed
        )
        crowds.append(crowd)
        for name, method in METHODS.items():
            if method.prepare is not None:
                method.prepare(crowd)
            score = Score()
            rng = random.Random(seed)
            for img in crowd:
                match(score, img, method.pred(method.run(img, rng)))
            score.images = len(crowd)
            per_seed[name].append(figures(score))
            results[name].add(score)
    crowd, seed = crowds[0], seeds[0]
    for method in METHODS.values():
        if method.prepare is not None:
            method.prepare(crowd)
    for name, method in METHODS.items():  # a batch call must give what one at a time does
        if method.batch is not None:
            alone = [method.run(img, random.Random(seed)) for img in crowd]
            if method.batch(crowd) != alone:
                raise AssertionError(f"{name}: the batch call's outputs differ")
    best = {name: math.inf for name in TIMED}
    best_alone = dict(best)
    for r in range(rounds):
        names = TIMED[r % len(TIMED) :] + TIMED[: r % len(TIMED)]
        for name in names:
            fn, batch = METHODS[name].run, METHODS[name].batch
            fn(crowd[0], random.Random(seed))  # warm-up: first-call costs are not per image
            rng = random.Random(seed)
            start = time.process_time()
            for img in crowd:
                fn(img, rng)
            best_alone[name] = min(best_alone[name], (time.process_time() - start) / len(crowd))
            if batch is not None:
                start = time.process_time()
                batch(crowd)
                best[name] = min(best[name], (time.process_time() - start) / len(crowd))
            else:
                best[name] = best_alone[name]
    for name, score in results.items():
        score.seconds = best[METHODS[name].timed_as or name]
        score.alone = best_alone[METHODS[name].timed_as or name]
    return results, per_seed


PAIRS = (
    ("ours", "wbf>=0.5"),
    ("ours-model", "wbf>=0.5"),
    ("ours-model-keep", "wbf>=0.5"),
    ("ours-all", "wbf"),
)
FIGURES = ("mIoU", "P", "R", "AP")


def figures(s: Score) -> tuple[float, float, float, float]:
    return (s.mean_iou, s.precision, s.recall, s.ap())


def spread(diffs: Sequence[float]) -> float:
    """Standard error of the mean of per-crowd differences (0 for one crowd)."""
    if len(diffs) < 2:
        return 0.0
    return float(np.std(diffs, ddof=1) / math.sqrt(len(diffs)))


Cell = tuple[int, int, dict[str, Score], dict[str, list[tuple[float, ...]]]]


def print_deficits(cells: Sequence[Cell]) -> tuple[dict[str, int], dict[str, int]]:
    """Print every figure where ours is below the paired WBF; count them (and beyond 2 SE)."""
    print(
        "quality figures where ours < the paired WBF (cell, pair, figure, pooled difference,"
        " standard error of the per-crowd differences):"
    )
    beyond: dict[str, int] = {}
    lower: dict[str, int] = {}
    for k, n, res, per_seed in cells:
        for mine, theirs in PAIRS:
            pooled = zip(FIGURES, figures(res[mine]), figures(res[theirs]), strict=True)
            for f, (fig, a, b) in enumerate(pooled):
                if a >= b - 1e-9:
                    continue
                diffs = [x[f] - y[f] for x, y in zip(per_seed[mine], per_seed[theirs], strict=True)]
                se = spread(diffs)
                noise = se > 0 and b - a <= 2 * se
                beyond[mine] = beyond.get(mine, 0) + (not noise)
                lower[mine] = lower.get(mine, 0) + 1
                verdict = "within 2 SE (noise)" if noise else "beyond 2 SE"
                if len(diffs) < 5:  # a standard error from fewer crowds says little
                    verdict = f"only {len(diffs)} crowds: noise not judged"
                print(
                    f"    K={k} x {n} boxes, {mine} vs {theirs}, {fig}: {a - b:+.4f} "
                    f"(SE {se:.4f}, {verdict})"
                )
    if not lower:
        print("    none")
    return lower, beyond


def print_markdown(cells: Sequence[Cell]) -> None:
    print()
    print("| K | boxes | method | mIoU | P@0.5 | R@0.5 | AP@0.5 | ms/image |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for k, n, res, _ in cells:
        for name, s in res.items():
            q = figures(s)
            print(
                f"| {k} | {n} | {name} | {q[0]:.3f} | {q[1]:.3f} | {q[2]:.3f} | "
                f"{q[3]:.3f} | {s.ms:.2f} |"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and crowds per cell")
    parser.add_argument("--workers", type=int, nargs="*", default=[3, 5, 9])
    parser.add_argument("--boxes", type=int, nargs="*", default=[1, 10, 100, 500])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--seeds", type=int, default=5, help="independent crowds per cell")
    parser.add_argument("--markdown", action="store_true", help="also print a markdown table")
    args = parser.parse_args(argv)
    images_for = {1: 600, 10: 200, 100: 40, 500: 10}
    seeds = 2 if args.quick else max(1, args.seeds)
    print(f"{seeds} crowds per cell; figures pooled over their images\n")
    header = (
        f"{'K':>2} {'boxes':>5} {'method':<18} {'mIoU':>6} {'P@.5':>6} {'R@.5':>6} "
        f"{'AP@.5':>6} {'ms/img':>8}"
    )
    print(header)
    print("-" * len(header))
    cells: list[Cell] = []
    for k in args.workers:
        for n in args.boxes:
            images = images_for.get(n, 10)
            if args.quick:
                images = max(2, images // 5)
            base = 1000 * k + n
            res, per_seed = run_cell(
                k, n, images, [base + 7919 * i for i in range(seeds)], args.rounds
            )
            cells.append((k, n, res, per_seed))
            for name, s in res.items():
                q = figures(s)
                print(
                    f"{k:>2} {n:>5} {name:<18} {q[0]:6.3f} {q[1]:6.3f} {q[2]:6.3f} {q[3]:6.3f} "
                    f"{s.ms:8.2f}"
                )
            for mine, theirs in PAIRS:
                o, w = figures(res[mine]), figures(res[theirs])
                d = [a - b for a, b in zip(o, w, strict=True)]
                speed = res[theirs].ms / max(res[mine].ms, 1e-9)
                print(
                    f"{'':>2} {'':>5} {mine + ' - ' + theirs:<18} {d[0]:+6.3f} {d[1]:+6.3f} "
                    f"{d[2]:+6.3f} {d[3]:+6.3f} {speed:7.1f}x faster"
                )
            sys.stdout.flush()
    print()
    lower, beyond = print_deficits(cells)
    print("goals:")
    for mine, theirs in PAIRS:
        print(
            f"    {mine} vs {theirs}: {lower.get(mine, 0)} of {4 * len(cells)} figures lower "
            f"({beyond.get(mine, 0) if seeds >= 5 else '?'} beyond 2 SE); goal: none lower"
        )
    speed_goal = {1: 1.0, 100: 15.0, 500: 25.0}
    for k, n, res, _ in cells:
        if n in speed_goal:
            ratio = res["wbf"].ms / max(res["ours"].ms, 1e-9)
            alone = res["wbf"].ms / max(1000 * res["ours"].alone, 1e-9)
            print(
                f"    K={k} x {n} boxes: ours {ratio:.2f}x as fast as WBF "
                f"(goal >= {speed_goal[n]:g}x; {alone:.2f}x called one image at a time)"
            )
    if args.markdown:
        print_markdown(cells)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
