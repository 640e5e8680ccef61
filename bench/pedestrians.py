"""Consolidation on a real crowd: Mechanical Turk pedestrians against an expert's boxes.

The data are the pedestrian boxes of Branson, Van Horn and Perona, "Lean Crowdsourcing:
Combining Humans and Machines in an Online System" (CVPR 2017; repository
sbranson/online_crowdsourcing, MIT licence): 7 workers per 1280x720 street image, one class,
and an expert's reference boxes on about two thirds of the images. ``--data DIR`` is a folder
holding ``crowd.json`` and ``expert.json`` in that repository's shape::

    {"images": {"<id>": {"width", "height", ...}},
     "annotations": [{"worker": "<id>", "answer": {"images": {
         "<id>": [["<name>", {"x", "y", "scaleX", "scaleY"}], ...]}}}]}

``x``, ``y`` are the box centre and ``scaleX``, ``scaleY`` its size; corners are clipped to
``[0, width - 1] x [0, height - 1]`` as the authors' own converter does, a ``null`` entry is no
box, and the few boxes with no area left after clipping are dropped for every method alike. An
image a worker saw with an empty list is that worker drawing nothing there.

For each K, every image gets K of its workers drawn at random (``--draws`` independent draws,
seeded): one simulated labeling job per draw. Methods, all run in this process on the same
draws:

- ``ours``: ``gt_toolkit.consolidate_boxes`` with its defaults, image by image;
- ``ours-model``: the whole-job path, the offline default: ``fit_worker_model`` over the
  draw (every image, the expert unused), then ``consolidate_image(..., worker_model=...)``
  image by image (the head count keeps the clusters, the model fuses them);
- ``ours-model-keep``: the same with ``keep="model"`` (the model also decides);
- ``ours-mean-box``: the defaults before issue 14 (``fusion="mean"``, ``quorum="box"``);
- ``wbf+majority``: ``ensemble_boxes.weighted_boxes_fusion`` with every score 1.0,
  ``conf_type='box_and_model_avg'`` and ``iou_thr=0.5`` (its score is then the share of the K
  workers in the cluster), keeping the boxes scoring above 0.5 (a strict majority);
- ``medoid+majority``: a re-implementation of datumaro's ``IntersectMerge`` for boxes (the
  merge CVAT's consensus jobs use; datumaro is not a dependency): every pair of workers is
  matched greedily (each box, in input order, takes the other worker's unmatched box of highest
  IoU >= 0.5), matches are linked from the earlier worker to the later one, and clusters grow
  along the links as datumaro's ``ShapeMatcher.match_annotations`` grows them: a linked box is
  queued when it reaches IoU 0.5 with every member taken so far and its worker is not among
  them, and joins when its turn comes, unchecked against the boxes queued beside it (so two
  boxes of one worker can both join, and both vote). Datumaro's queue is a set, popped in no
  set order; here it is first in, first out, in input order. Each cluster becomes its member
  nearest (highest IoU) to the members' mean box, and is kept when its boxes (the winning
  label's votes, one per box) reach a strict majority of the K workers (CVAT's ``quorum``);
- ``one worker``: the first of the drawn workers, as a 1-worker job gets.

Scoring against the expert, on the images the expert annotated: per image, one-to-one
(Hungarian) matching that maximises the summed IoU over pairs reaching the threshold; F1 at
IoU 0.5 and 0.75 from the true positives, false positives and misses pooled over images and
draws; mIoU is the mean IoU of the pairs matched at 0.5. Each difference to ``wbf+majority``
is set against the standard error of its per-draw differences.

Per K it also prints what bounds every method: the share of expert boxes that any of the K
workers found (IoU >= 0.5), the share a strict majority found (the recall ceiling of a
majority rule), and how many of the clusters one worker drew alone match an expert box
(whether keeping minority clusters could pay).

    .venv/bin/python bench/pedestrians.py --data DIR [--draws 5] [--workers 3 5 7] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ensemble_boxes import weighted_boxes_fusion
from scipy.optimize import linear_sum_assignment

from gt_toolkit.consolidation.engine import consolidate_boxes, consolidate_image
from gt_toolkit.consolidation.geometry import iou_matrix, xyxy_from_gt
from gt_toolkit.consolidation.settings import ConsolidationSettings, Keep
from gt_toolkit.consolidation.worker_model import fit_worker_model
from gt_toolkit.formats.crowd import CrowdImage
from gt_toolkit.types import ImageSize, WorkerBox

LABEL = "pedestrian"
THRESHOLDS = (0.5, 0.75)
Boxes = np.ndarray  # (N, 4) xyxy


@dataclass(frozen=True)
class Scene:
    """One image: every worker's boxes (xyxy, clipped) and the expert's, when it has them."""

    key: str
    width: int
    height: int
    workers: dict[str, list[tuple[float, float, float, float]]]
    expert: Boxes | None


def _box(props: dict[str, Any], width: int, height: int) -> tuple[float, float, float, float]:
    """Centre and size to clipped corners, as the data's authors convert them."""
    x, y = float(props["x"]), float(props["y"])
    half_w, half_h = float(props["scaleX"]) / 2, float(props["scaleY"]) / 2
    xs = (min(width - 1, max(0.0, x - half_w)), min(width - 1, max(0.0, x + half_w)))
    ys = (min(height - 1, max(0.0, y - half_h)), min(height - 1, max(0.0, y + half_h)))
    return xs[0], ys[0], xs[1], ys[1]


def _answers(path: Path, sizes: dict[str, tuple[int, int]]) -> dict[str, dict[str, list[Any]]]:
    """``{image: {worker: [xyxy, ...]}}``; boxes with no area after clipping are dropped."""
    out: dict[str, dict[str, list[Any]]] = {}
    for hit in json.loads(path.read_text())["annotations"]:
        for image, objects in hit["answer"]["images"].items():
            w, h = sizes[image]
            boxes = [_box(obj[1], w, h) for obj in objects if obj is not None]
            mine = out.setdefault(image, {}).setdefault(str(hit["worker"]), [])
            mine.extend(b for b in boxes if b[2] > b[0] and b[3] > b[1])
    return out


def load(data: Path) -> list[Scene]:
    """Every image of ``crowd.json`` with its workers, and the expert's boxes where given."""
    meta = json.loads((data / "crowd.json").read_text())["images"]
    sizes = {k: (int(v["width"]), int(v["height"])) for k, v in meta.items()}
    crowd = _answers(data / "crowd.json", sizes)
    expert = _answers(data / "expert.json", sizes)
    scenes = []
    for key in sorted(crowd):
        ref = expert.get(key)
        boxes = [b for worker in ref.values() for b in worker] if ref is not None else None
        w, h = sizes[key]
        truth = np.asarray(boxes, dtype=float).reshape(-1, 4) if boxes is not None else None
        scenes.append(Scene(key, w, h, crowd[key], truth))
    return scenes


def draw(scenes: Sequence[Scene], k: int, seed: int) -> list[CrowdImage]:
    """One simulated job: K of each image's workers, drawn at random."""
    rng = random.Random(seed)
    job = []
    for s in scenes:
        chosen = rng.sample(sorted(s.workers), min(k, len(s.workers)))
        boxes = tuple(
            [
                WorkerBox(label=LABEL, left=x1, top=y1, width=x2 - x1, height=y2 - y1)
                for x1, y1, x2, y2 in s.workers[w]
            ]
            for w in chosen
        )
        size = ImageSize(width=s.width, height=s.height)
        job.append(CrowdImage(key=s.key, image_size=size, annotators=tuple(chosen), boxes=boxes))
    return job


Method = Callable[[Sequence[CrowdImage]], list[Boxes]]


def ours(**options: Any) -> Method:
    def run(job: Sequence[CrowdImage]) -> list[Boxes]:
        return [
            xyxy_from_gt(
                consolidate_boxes(img.boxes, labels=[LABEL], image_size=img.image_size, **options)
            )
            for img in job
        ]

    return run


def ours_model(keep: Keep) -> Method:
    settings = ConsolidationSettings(keep=keep)

    def run(job: Sequence[CrowdImage]) -> list[Boxes]:
        model = fit_worker_model(job, labels=[LABEL])
        return [
            xyxy_from_gt(
                consolidate_image(
                    img.boxes,
                    settings=settings,
                    labels=[LABEL],
                    image_size=img.image_size,
                    worker_model=model,
                    annotators=img.annotators,
                ).boxes
            )
            for img in job
        ]

    return run


def wbf_majority(job: Sequence[CrowdImage]) -> list[Boxes]:
    out = []
    for img in job:
        assert img.image_size is not None
        w, h = img.image_size["width"], img.image_size["height"]
        scale = np.array([w, h, w, h], dtype=float)
        boxes = [(xyxy_from_gt(a) / scale).tolist() for a in img.boxes]
        if not any(boxes):
            out.append(np.zeros((0, 4)))
            continue
        fused, scores, _ = weighted_boxes_fusion(
            boxes,
            [[1.0] * len(a) for a in img.boxes],
            [[0] * len(a) for a in img.boxes],
            iou_thr=0.5,
            skip_box_thr=0.0,
            conf_type="box_and_model_avg",
        )
        out.append(np.asarray(fused).reshape(-1, 4)[np.asarray(scores) > 0.5] * scale)
    return out


def _pair_matches(a: Boxes, b: Boxes) -> list[tuple[int, int]]:
    """datumaro's pairwise match: each box of ``a`` in turn takes ``b``'s best free box."""
    iou = iou_matrix(a, b)
    taken = np.zeros(len(b), dtype=bool)
    pairs = []
    for i in range(len(a)):
        row = np.where(taken | (iou[i] < 0.5), -1.0, iou[i]) if len(b) else iou[i]
        if len(b) and row.max() >= 0.5:
            j = int(np.argmax(row))
            taken[j] = True
            pairs.append((i, j))
    return pairs


def medoid_majority(job: Sequence[CrowdImage]) -> list[Boxes]:
    out = []
    for img in job:
        k = len(img.boxes)
        need = k // 2 + 1 if k > 1 else 1
        sets = [xyxy_from_gt(a) for a in img.boxes]
        nodes = [(s, i) for s in range(k) for i in range(len(sets[s]))]
        index = {n: x for x, n in enumerate(nodes)}
        flat = np.concatenate(sets) if nodes else np.zeros((0, 4))
        iou = iou_matrix(flat, flat)
        links: dict[int, list[int]] = {x: [] for x in range(len(nodes))}
        for s in range(k):
            for t in range(s + 1, k):
                for i, j in _pair_matches(sets[s], sets[t]):
                    links[index[(s, i)]].append(index[(t, j)])
        visited: set[int] = set()
        kept = []
        for start in range(len(nodes)):
            if start in visited:
                continue
            cluster: list[int] = []
            queue = [start]
            while queue:
                c = queue.pop(0)
                cluster.append(c)
                visited.add(c)
                for x in links[c]:
                    # datumaro checks against the members taken so far, not the queued ones
                    if x in visited or x in queue:
                        continue
                    if any(iou[x, m] < 0.5 for m in cluster):
                        continue
                    if nodes[x][0] in {nodes[m][0] for m in cluster}:
                        continue
                    queue.append(x)
            if len(cluster) >= need:
                members = flat[cluster]
                nearest = iou_matrix(members.mean(axis=0), members)[0]
                kept.append(members[int(np.argmax(nearest))])
        out.append(np.asarray(kept).reshape(-1, 4))
    return out


def one_worker(job: Sequence[CrowdImage]) -> list[Boxes]:
    return [xyxy_from_gt(img.boxes[0]) for img in job]


METHODS: dict[str, Method] = {
    "ours": ours(),
    "ours-model": ours_model("quorum"),
    "ours-model-keep": ours_model("model"),
    "ours-mean-box": ours(fusion="mean", quorum="box"),
    "wbf+majority": wbf_majority,
    "medoid+majority": medoid_majority,
    "one worker": one_worker,
}
REFERENCE = "wbf+majority"


def matched(iou: np.ndarray, t: float) -> dict[int, float]:
    """The one-to-one matching (rows: predictions) maximising the summed IoU of pairs >= t.

    Returns each matched prediction's IoU with its reference box.
    """
    if not iou.size:
        return {}
    eligible = np.where(iou >= t, iou, 0.0)
    rows, cols = linear_sum_assignment(-eligible)
    return {
        int(r): float(eligible[r, c])
        for r, c in zip(rows, cols, strict=True)
        if eligible[r, c] >= t
    }


@dataclass
class Score:
    """Counts pooled over images (and draws, when added up)."""

    tp: dict[float, int] = field(default_factory=lambda: dict.fromkeys(THRESHOLDS, 0))
    fp: dict[float, int] = field(default_factory=lambda: dict.fromkeys(THRESHOLDS, 0))
    fn: dict[float, int] = field(default_factory=lambda: dict.fromkeys(THRESHOLDS, 0))
    iou_sum: float = 0.0
    seconds: float = 0.0

    def add(self, pred: Boxes, truth: Boxes) -> None:
        iou = iou_matrix(pred, truth)
        for t in THRESHOLDS:
            hits = matched(iou, t)
            self.tp[t] += len(hits)
            self.fp[t] += len(pred) - len(hits)
            self.fn[t] += len(truth) - len(hits)
            if t == 0.5:
                self.iou_sum += sum(hits.values())

    def merge(self, other: Score) -> None:
        for t in THRESHOLDS:
            self.tp[t] += other.tp[t]
            self.fp[t] += other.fp[t]
            self.fn[t] += other.fn[t]
        self.iou_sum += other.iou_sum
        self.seconds += other.seconds

    def f1(self, t: float) -> float:
        denominator = 2 * self.tp[t] + self.fp[t] + self.fn[t]
        return 2 * self.tp[t] / denominator if denominator else 1.0

    def precision(self) -> float:
        tp, fp = self.tp[0.5], self.fp[0.5]
        return tp / (tp + fp) if tp + fp else 1.0

    def recall(self) -> float:
        tp, fn = self.tp[0.5], self.fn[0.5]
        return tp / (tp + fn) if tp + fn else 1.0

    def mean_iou(self) -> float:
        return self.iou_sum / self.tp[0.5] if self.tp[0.5] else 0.0

    def figures(self) -> tuple[float, float, float]:
        return self.f1(0.5), self.f1(0.75), self.mean_iou()


def score(method: Method, job: Sequence[CrowdImage], scenes: Sequence[Scene]) -> Score:
    start = time.perf_counter()
    preds = method(job)
    result = Score(seconds=time.perf_counter() - start)
    for pred, scene in zip(preds, scenes, strict=True):
        if scene.expert is not None:
            result.add(pred, scene.expert)
    return result


def spread(diffs: Sequence[float]) -> float:
    """Standard error of the mean of per-draw differences (0 for one draw)."""
    if len(diffs) < 2:
        return 0.0
    return float(np.std(diffs, ddof=1) / math.sqrt(len(diffs)))


FIGURES = ("F1@0.5", "F1@0.75", "mIoU")


@dataclass
class Ceilings:
    """What bounds every method on a K's draws, pooled: who found each expert box at all.

    Per expert box, how many of its image's drawn workers drew a box at IoU >= 0.5 with it
    (a box nobody found is not output; one fewer than a strict majority found is output
    only by a rule that keeps minority clusters), and how many of the clusters one worker
    drew alone (``min_support=1``) match an expert box, scored as every method is: whether
    keeping minority clusters could pay. These bound recall in practice, not in proof: a
    fused box can reach IoU 0.5 with an expert box no single member did.
    """

    boxes: int = 0
    anyone: int = 0
    majority: int = 0
    lone: int = 0
    lone_real: int = 0

    def add(self, job: Sequence[CrowdImage], scenes: Sequence[Scene]) -> None:
        settings = ConsolidationSettings(min_support=1)
        for img, scene in zip(job, scenes, strict=True):
            if scene.expert is None:
                continue
            found = np.zeros(len(scene.expert), dtype=int)
            for answer in img.boxes:
                if answer and len(scene.expert):
                    found += (iou_matrix(xyxy_from_gt(answer), scene.expert) >= 0.5).any(axis=0)
            self.boxes += len(found)
            self.anyone += int(np.count_nonzero(found))
            self.majority += int(np.count_nonzero(2 * found > len(img.boxes)))
            result = consolidate_image(
                img.boxes, settings=settings, labels=[LABEL], image_size=img.image_size
            )
            alone = [len({w for w, _ in members}) == 1 for members in result.clusters]
            hits = matched(iou_matrix(xyxy_from_gt(result.boxes), scene.expert), 0.5)
            self.lone += sum(alone)
            self.lone_real += sum(alone[i] for i in hits)

    def line(self, k: int) -> str:
        n = max(self.boxes, 1)
        return (
            f"{'':>2} recall ceilings: an expert box found (IoU >= 0.5) by any of the {k} "
            f"workers {self.anyone / n:.3f}, by a strict majority {self.majority / n:.3f}; "
            f"{self.lone_real} of the {self.lone} boxes one worker drew alone are real"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="the folder of crowd.json and expert.json"
    )
    parser.add_argument("--workers", type=int, nargs="*", default=[3, 5, 7])
    parser.add_argument("--draws", type=int, default=5, help="random draws of workers per K")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--markdown", action="store_true", help="also print a markdown table")
    args = parser.parse_args(argv)
    scenes = load(args.data)
    rated = sum(s.expert is not None for s in scenes)
    print(
        f"{len(scenes)} images ({rated} with expert boxes), "
        f"{len({w for s in scenes for w in s.workers})} workers; {args.draws} draws per K"
    )
    header = f"{'K':>2} {'method':<16} {'F1@0.5':>7} {'F1@0.75':>7} {'mIoU':>7} {'P':>6} {'R':>6}"
    print(header + "   minus " + REFERENCE + " (SE over draws)")
    table: list[tuple[int, str, Score]] = []
    for k in args.workers:
        pooled = {name: Score() for name in args.methods}
        per_draw: dict[str, list[tuple[float, ...]]] = {name: [] for name in args.methods}
        ceilings = Ceilings()
        for d in range(args.draws):
            job = draw(scenes, k, seed=1000 * k + d)
            ceilings.add(job, scenes)
            for name in args.methods:
                s = score(METHODS[name], job, scenes)
                pooled[name].merge(s)
                per_draw[name].append(s.figures())
        for name in args.methods:
            s = pooled[name]
            f = s.figures()
            line = (
                f"{k:>2} {name:<16} {f[0]:7.3f} {f[1]:7.3f} {f[2]:7.3f} "
                f"{s.precision():6.3f} {s.recall():6.3f}"
            )
            if REFERENCE in per_draw and name != REFERENCE:
                diffs = [
                    tuple(a - b for a, b in zip(mine, ref, strict=True))
                    for mine, ref in zip(per_draw[name], per_draw[REFERENCE], strict=True)
                ]
                cols = [
                    f"{f[i] - pooled[REFERENCE].figures()[i]:+.4f} "
                    f"({spread([d[i] for d in diffs]):.4f})"
                    for i in range(3)
                ]
                line += "   " + "  ".join(cols)
            print(line)
            table.append((k, name, s))
        print(ceilings.line(k))
        sys.stdout.flush()
    if args.markdown:
        print()
        print("| K | method | F1@0.5 | F1@0.75 | mIoU | P@0.5 | R@0.5 |")
        print("|---:|---|---:|---:|---:|---:|---:|")
        for k, name, s in table:
            f = s.figures()
            print(
                f"| {k} | {name} | {f[0]:.3f} | {f[1]:.3f} | {f[2]:.3f} | "
                f"{s.precision():.3f} | {s.recall():.3f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
