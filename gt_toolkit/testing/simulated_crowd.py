"""A deterministic crowd of simulated workers drawing boxes, for tests, benchmarks and demos.

Real crowds miss objects, jitter edges in proportion to the object's size, draw loose boxes,
add spurious boxes, draw two boxes on one object and pick the wrong label. Each simulated
worker has their own :class:`WorkerSkill`; the same seed always gives the same answers
(``random.Random`` only, whose sequence is stable across Python versions).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gt_toolkit.formats import crowd
from gt_toolkit.types import ImageSize, WorkerBox

__all__ = [
    "CrowdImage",
    "WorkerSkill",
    "make_skills",
    "simulate_crowd",
    "simulate_truth",
    "simulate_worker",
    "worker_response_document",
]


@dataclass(frozen=True, slots=True)
class WorkerSkill:
    """How one simulated worker draws.

    Attributes:
        worker_id: the ``workerId`` their answers carry.
        jitter: standard deviation of each edge's error, as a fraction of the box's size.
        miss_rate: probability of not drawing a true object.
        spurious_rate: expected spurious boxes per true object (at least a chance of one per
            image even when there are few objects).
        duplicate_rate: probability of drawing a second box on an object already drawn.
        wrong_label_rate: probability of picking another label (needs two or more labels).
        loose: each side pushed outwards by this fraction of the box size (0 = tight).
        seconds_per_box: mean time spent per drawn box (for the time-spent figures).
    """

    worker_id: str
    jitter: float = 0.05
    miss_rate: float = 0.1
    spurious_rate: float = 0.02
    duplicate_rate: float = 0.02
    wrong_label_rate: float = 0.03
    loose: float = 0.0
    seconds_per_box: float = 6.0


@dataclass(slots=True)
class CrowdImage:
    """One simulated image: its size, true boxes and every worker's answer."""

    image_size: ImageSize
    truth: list[WorkerBox]
    answers: list[list[WorkerBox]]
    worker_ids: list[str]
    time_spent: list[float] = field(default_factory=list)

    def as_source_image(self, key: str, workers: Sequence[int] | None = None) -> crowd.CrowdImage:
        """The image as a crowd source yields it, seen by ``workers`` (indices; default all)."""
        seen = range(len(self.answers)) if workers is None else workers
        return crowd.CrowdImage(
            key=key,
            image_size=self.image_size,
            annotators=tuple(self.worker_ids[i] for i in seen),
            boxes=tuple(self.answers[i] for i in seen),
        )


def make_skills(
    workers: int,
    *,
    seed: int = 0,
    jitter: float = 0.05,
    miss_rate: float = 0.1,
    spurious_rate: float = 0.02,
    duplicate_rate: float = 0.02,
    wrong_label_rate: float = 0.03,
    loose_every: int = 4,
) -> list[WorkerSkill]:
    """A varied crowd: jitter spread around ``jitter``; every ``loose_every``-th worker loose.

    The rates are the crowd's means; each worker gets a spread of 0.5x to 1.5x of each.
    """
    rng = random.Random(f"skills:{seed}:{workers}")
    skills = []
    for i in range(workers):

        def spread(value: float) -> float:
            return value * (0.5 + rng.random())

        skills.append(
            WorkerSkill(
                worker_id=f"private.us-east-1.sim{seed:03d}w{i:02d}",
                jitter=spread(jitter),
                miss_rate=min(1.0, spread(miss_rate)),
                spurious_rate=spread(spurious_rate),
                duplicate_rate=min(1.0, spread(duplicate_rate)),
                wrong_label_rate=min(1.0, spread(wrong_label_rate)),
                loose=0.08 if loose_every and i % loose_every == loose_every - 1 else 0.0,
                seconds_per_box=3.0 + 6.0 * rng.random(),
            )
        )
    return skills


def simulate_truth(
    rng: random.Random, boxes: int, image_size: ImageSize, labels: Sequence[str]
) -> list[WorkerBox]:
    """``boxes`` true objects laid out on a jittered grid (neighbours may overlap a little)."""
    if boxes <= 0:
        return []
    width, height = image_size["width"], image_size["height"]
    cols = max(1, math.ceil(math.sqrt(boxes * 1.5 * width / height)))
    rows = max(1, math.ceil(boxes * 1.5 / cols))
    cw, ch = width / cols, height / rows
    cells = rng.sample(range(cols * rows), boxes)
    truth: list[WorkerBox] = []
    for cell in sorted(cells):
        r, c = divmod(cell, cols)
        bw, bh = cw * rng.uniform(0.35, 1.1), ch * rng.uniform(0.35, 1.1)
        left = min(max(c * cw + rng.uniform(-0.1, 0.9) * (cw - bw), 0.0), width - bw)
        top = min(max(r * ch + rng.uniform(-0.1, 0.9) * (ch - bh), 0.0), height - bh)
        truth.append(
            {
                "label": rng.choice(list(labels)),
                "left": round(left),
                "top": round(top),
                "width": max(2, round(bw)),
                "height": max(2, round(bh)),
            }
        )
    return truth


def _draw(
    rng: random.Random, box: WorkerBox, skill: WorkerSkill, image_size: ImageSize
) -> WorkerBox | None:
    """One worker's drawing of a true box: jittered, maybe loose, clipped, whole pixels."""
    w, h = float(box["width"]), float(box["height"])
    x1 = box["left"] - skill.loose * w + rng.gauss(0.0, skill.jitter * w)
    x2 = box["left"] + w + skill.loose * w + rng.gauss(0.0, skill.jitter * w)
    y1 = box["top"] - skill.loose * h + rng.gauss(0.0, skill.jitter * h)
    y2 = box["top"] + h + skill.loose * h + rng.gauss(0.0, skill.jitter * h)
    x1, x2 = max(0, round(x1)), min(image_size["width"], round(x2))
    y1, y2 = max(0, round(y1)), min(image_size["height"], round(y2))
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None
    return {"label": box["label"], "left": x1, "top": y1, "width": x2 - x1, "height": y2 - y1}


def simulate_worker(
    rng: random.Random,
    truth: Sequence[WorkerBox],
    skill: WorkerSkill,
    image_size: ImageSize,
    labels: Sequence[str],
) -> list[WorkerBox]:
    """One worker's answer for one image (boxes in the order the worker drew them)."""
    drawn: list[WorkerBox] = []
    for box in truth:
        if rng.random() < skill.miss_rate:
            continue
        copies = 2 if rng.random() < skill.duplicate_rate else 1
        for _ in range(copies):
            mine = _draw(rng, box, skill, image_size)
            if mine is None:
                continue
            if len(labels) > 1 and rng.random() < skill.wrong_label_rate:
                mine["label"] = rng.choice([x for x in labels if x != box["label"]])
            drawn.append(mine)
    expected = skill.spurious_rate * max(len(truth), 5)
    spurious = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
    width, height = image_size["width"], image_size["height"]
    typical = math.sqrt(width * height / max(len(truth), 4)) / 2
    for _ in range(spurious):
        bw = max(2.0, min(width, typical * rng.uniform(0.5, 1.5)))
        bh = max(2.0, min(height, typical * rng.uniform(0.5, 1.5)))
        left, top = rng.uniform(0, width - bw), rng.uniform(0, height - bh)
        drawn.append(
            {
                "label": rng.choice(list(labels)),
                "left": round(left),
                "top": round(top),
                "width": round(bw),
                "height": round(bh),
            }
        )
    rng.shuffle(drawn)
    return drawn


def simulate_crowd(
    *,
    images: int,
    boxes_per_image: int | Sequence[int],
    skills: Sequence[WorkerSkill],
    labels: Sequence[str] = ("ball",),
    image_size: ImageSize | None = None,
    seed: int = 0,
) -> list[CrowdImage]:
    """Simulate ``images`` images, each labelled by every worker in ``skills``.

    Args:
        boxes_per_image: one count for every image, or one count per image.
        image_size: fixed size; ``None`` picks 40 x 40 pixels per true object area-wise
            (at least 640 x 480) so crowded images keep objects a sensible size.
        seed: the same seed (with the same other arguments) gives the same images.
    """
    rng = random.Random(f"crowd:{seed}")
    counts = (
        [boxes_per_image] * images
        if isinstance(boxes_per_image, int)
        else list(boxes_per_image)[:images]
    )
    out: list[CrowdImage] = []
    for n in counts:
        if image_size is None:
            scale = max(1.0, math.sqrt(n * 40 * 40 * 4 / (640 * 480)))
            size: ImageSize = {"width": round(640 * scale), "height": round(480 * scale)}
        else:
            size = dict(image_size)  # type: ignore[assignment]
        truth = simulate_truth(rng, n, size, labels)
        answers = [simulate_worker(rng, truth, s, size, labels) for s in skills]
        spent = [
            round(s.seconds_per_box * (len(a) + 1) * rng.uniform(0.7, 1.3), 1)
            for s, a in zip(skills, answers, strict=True)
        ]
        out.append(CrowdImage(size, truth, answers, [s.worker_id for s in skills], spent))
    return out


def worker_response_document(
    image: CrowdImage,
    *,
    element_name: str = "boundingBox",
    start: dt.datetime | None = None,
) -> dict[str, Any]:
    """The Ground Truth worker-response file for one image (``docs/ground-truth-formats.md`` §2.3).

    ``{"answers": [{"workerId", "acceptanceTime", "submissionTime", "timeSpentInSeconds",
    "answerContent": {element_name: {"boundingBoxes", "inputImageProperties"}},
    "workerMetadata"}]}``; times are derived from ``start`` so the output is deterministic.
    """
    start = start or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    answers = []
    for i, (worker_id, boxes) in enumerate(zip(image.worker_ids, image.answers, strict=True)):
        spent = image.time_spent[i] if i < len(image.time_spent) else 10.0
        accepted = start + dt.timedelta(seconds=37 * i)
        submitted = accepted + dt.timedelta(seconds=spent)
        answers.append(
            {
                "workerId": worker_id,
                "acceptanceTime": _iso(accepted),
                "submissionTime": _iso(submitted),
                "timeSpentInSeconds": spent,
                "answerContent": {
                    element_name: {
                        "boundingBoxes": [dict(b) for b in boxes] or None,
                        "inputImageProperties": {
                            "width": image.image_size["width"],
                            "height": image.image_size["height"],
                        },
                    }
                },
                "workerMetadata": {
                    "identityData": {
                        "identityProviderType": "Cognito",
                        "issuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_sim",
                        "sub": worker_id.rsplit(".", 1)[-1],
                    }
                },
            }
        )
    return {"answers": answers}


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )
