from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from typing import Literal

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gt_toolkit.consolidation.engine import (
    ImageConsolidation,
    consolidate_boxes,
    consolidate_image,
)
from gt_toolkit.consolidation.geometry import iou_matrix, xyxy_from_gt
from gt_toolkit.consolidation.settings import ConsolidationSettings, Fusion, Keep
from gt_toolkit.consolidation.worker_model import (
    PRIOR_STRENGTH,
    WorkerModel,
    WorkerSkill,
    fit_worker_model,
)
from gt_toolkit.errors import ConsolidationError
from gt_toolkit.formats.crowd import CrowdImage
from gt_toolkit.testing.simulated_crowd import CrowdImage as SimulatedImage
from gt_toolkit.testing.simulated_crowd import WorkerSkill as SimulatedSkill
from gt_toolkit.testing.simulated_crowd import make_skills, simulate_crowd
from gt_toolkit.types import ImageSize, WorkerBox

LABELS = ("car",)
CAREFUL = [
    SimulatedSkill(f"careful{i}", jitter=0.03, miss_rate=0.05, spurious_rate=0.01) for i in range(5)
]
SPAMMER = SimulatedSkill("spammer", jitter=0.15, miss_rate=0.5, spurious_rate=0.8)
MODEL_KEEPS = ConsolidationSettings(keep="model")


def _job(images: int = 160, per_image: int = 3) -> tuple[list[CrowdImage], list[SimulatedImage]]:
    """Every image answered by ``per_image`` of six workers (one a spammer), in rotation."""
    pool = [*CAREFUL, SPAMMER]
    crowd = simulate_crowd(images=images, boxes_per_image=4, skills=pool, labels=LABELS, seed=7)
    job = []
    for i, img in enumerate(crowd):
        chosen = [(i + j) % len(pool) for j in range(per_image)]
        job.append(img.as_source_image(f"img{i}", chosen))
    return job, crowd


def _f1(found: list[list[WorkerBox]], crowd: list[SimulatedImage]) -> float:
    tp = fp = fn = 0
    for boxes, img in zip(found, crowd, strict=True):
        iou = iou_matrix(xyxy_from_gt(boxes), xyxy_from_gt(img.truth))
        hits = 0
        taken: set[int] = set()
        for row in iou:
            best = max(
                (j for j in range(len(row)) if j not in taken), key=row.__getitem__, default=None
            )
            if best is not None and row[best] >= 0.5:
                taken.add(best)
                hits += 1
        tp, fp, fn = tp + hits, fp + len(boxes) - hits, fn + len(img.truth) - hits
    return 2 * tp / (2 * tp + fp + fn)


def test_fit_tells_the_spammer_from_careful_workers() -> None:
    job, _ = _job()
    model = fit_worker_model(job, labels=LABELS)
    spammer = model.workers["spammer"]
    careful = [model.workers[s.worker_id] for s in CAREFUL]
    assert all(spammer.false_boxes > 3 * c.false_boxes for c in careful)
    assert all(spammer.miss_rate > 2 * c.miss_rate for c in careful)
    assert all(spammer.box_noise > c.box_noise for c in careful)
    assert all(spammer.false_share > 0.5 > 0.1 > c.false_share for c in careful)
    assert sum(c.images for c in careful) + spammer.images == 3 * len(job)
    # what a box of theirs is worth: a careful worker's box counts, the spammer's barely
    evidence = model.evidence(["spammer", "careful0"])
    assert evidence.drawn[1] > evidence.drawn[0] + 2.0
    assert evidence.weights[1] > evidence.weights[0]


def test_model_keeps_what_a_careful_worker_drew_alone() -> None:
    # two workers per image: a head count needs both, so every object one of them missed is
    # lost; the model keeps a careful worker's lone box and drops the spammer's
    job, crowd = _job(per_image=2)
    model = fit_worker_model(job, labels=LABELS)
    with_model = [
        consolidate_image(
            img.boxes,
            settings=MODEL_KEEPS,
            labels=LABELS,
            image_size=img.image_size,
            worker_model=model,
            annotators=img.annotators,
        ).boxes
        for img in job
    ]
    head_count = [
        consolidate_boxes(img.boxes, labels=LABELS, image_size=img.image_size) for img in job
    ]
    assert _f1(with_model, crowd) > _f1(head_count, crowd) + 0.05  # type: ignore[arg-type]


def test_decision_and_confidence_follow_the_log_odds() -> None:
    box: WorkerBox = {"label": "car", "left": 10, "top": 10, "width": 40, "height": 40}
    reliable = WorkerSkill(miss_rate=0.1, false_boxes=0.01, box_noise=0.1)
    careless = WorkerSkill(miss_rate=0.6, false_boxes=2.0, box_noise=0.3)
    model = WorkerModel({"r": reliable, "c": careless}, reliable, objects=2.0, places=50.0)

    def log_odds(drew: list[WorkerSkill], silent: list[WorkerSkill]) -> float:
        value = math.log(2.0 / 50.0) + sum(math.log(s.miss_rate) for s in silent)
        for s in drew:
            value += math.log(50.0 * (1 - s.miss_rate) / s.false_boxes)
        return value

    # a lone reliable box, the careless worker silent: kept, at the posterior
    def run(answers: list[list[WorkerBox]], annotators: list[str]) -> ImageConsolidation:
        return consolidate_image(
            answers, settings=MODEL_KEEPS, worker_model=model, annotators=annotators
        )

    out = run([[box], []], ["r", "c"])
    expected = 1 / (1 + math.exp(-log_odds([reliable], [careless])))
    assert expected > 0.5
    assert [b["confidence"] for b in out.boxes] == [pytest.approx(expected)]
    # a lone careless box, the reliable worker silent: dropped as unlikely
    out = run([[], [box]], ["r", "c"])
    assert out.boxes == []
    assert [d["reason"] for d in out.dropped] == ["unlikely"]
    assert log_odds([careless], [reliable]) < 0
    # an unknown worker gets the crowd's skills (here the reliable one)
    out = run([[box], []], ["new", "c"])
    assert [b["confidence"] for b in out.boxes] == [pytest.approx(expected)]


def test_model_weights_pull_the_fused_box_towards_the_steady_worker() -> None:
    steady = WorkerSkill(miss_rate=0.1, false_boxes=0.01, box_noise=0.05)
    shaky = WorkerSkill(miss_rate=0.1, false_boxes=0.01, box_noise=0.5)
    model = WorkerModel({"s": steady, "k": shaky}, steady, objects=1.0, places=20.0)
    a: WorkerBox = {"label": "car", "left": 0, "top": 0, "width": 40, "height": 40}
    b: WorkerBox = {"label": "car", "left": 8, "top": 0, "width": 40, "height": 40}
    (fused,) = consolidate_image([[a], [b]], worker_model=model, annotators=["s", "k"]).boxes
    assert 0 < fused["left"] < 0.5  # weights 400 : 4


def test_fit_reads_the_images_once_and_chunks_agree() -> None:
    job, _ = _job(images=120)

    def once() -> Iterator[CrowdImage]:
        yield from job

    whole = fit_worker_model(once(), labels=LABELS)
    chunked = fit_worker_model(once(), labels=LABELS, chunk_images=25)
    assert whole.workers.keys() == chunked.workers.keys()
    for w, skill in whole.workers.items():
        other = chunked.workers[w]
        assert other.images == skill.images and other.boxes == skill.boxes
        assert other.false_boxes == pytest.approx(skill.false_boxes, rel=0.35, abs=0.02)
        assert other.miss_rate == pytest.approx(skill.miss_rate, rel=0.35, abs=0.02)


@pytest.mark.parametrize("chunk_images", [1, 7])
def test_noise_and_bias_do_not_depend_on_the_chunks(chunk_images: int) -> None:
    # both come from sums over the job: cutting it into chunks changes nothing
    job = _biased_job((-0.1, -0.05, 0.1, 0.05), images=30)
    whole = fit_worker_model(job, labels=LABELS)
    chunked = fit_worker_model(job, labels=LABELS, chunk_images=chunk_images)
    for w, skill in whole.workers.items():
        other = chunked.workers[w]
        assert other.box_noise == pytest.approx(skill.box_noise, rel=1e-9)
        assert other.box_bias == pytest.approx(skill.box_bias, rel=1e-9, abs=1e-12)


def test_silent_annotators_count_and_empty_jobs_fit() -> None:
    box: WorkerBox = {"label": "car", "left": 0, "top": 0, "width": 10, "height": 10}
    job = [
        CrowdImage(key=str(i), image_size=None, annotators=("a", "b"), boxes=([box], []))
        for i in range(20)
    ]
    model = fit_worker_model(job)
    assert model.workers["b"].images == 20 and model.workers["b"].boxes == 0
    assert model.workers["b"].miss_rate > model.workers["a"].miss_rate
    empty = fit_worker_model([])
    assert empty.workers == {} and 0 < empty.crowd.miss_rate < 1


def test_json_round_trip_and_bad_tables() -> None:
    job, _ = _job(images=40)
    model = fit_worker_model(job, labels=LABELS)
    again = WorkerModel.from_json(json.loads(json.dumps(model.to_json())))
    assert again == model
    table = model.to_json()
    for broken in (
        {**table, "model": "something-else"},
        {**table, "objects": -1},
        {**table, "workers": {"x": {**table["crowd"], "miss_rate": 1.5}}},
        {k: v for k, v in table.items() if k != "crowd"},
        {**table, "workers": {"x": {**table["crowd"], "box_bias": {"left": 0.3}}}},
        {**table, "workers": {"x": {**table["crowd"], "box_bias": {"top": math.nan}}}},
        # counts and shares a hand-edited table can spell out of range: one error, no
        # OverflowError out of int(inf), no NaN carried into the model
        {**table, "workers": {"x": {**table["crowd"], "images": math.inf}}},
        {**table, "workers": {"x": {**table["crowd"], "boxes": math.nan}}},
        {**table, "workers": {"x": {**table["crowd"], "images": -3}}},
        {**table, "workers": {"x": {**table["crowd"], "boxes": 2.5}}},
        {**table, "crowd": {**table["crowd"], "false_share": math.nan}},
        {**table, "workers": {"x": {**table["crowd"], "false_share": 1.5}}},
        # an integer of 400 digits (JSON holds it; float() cannot): an OverflowError traceback
        {**table, "objects": 10**400},
        {**table, "crowd": {**table["crowd"], "miss_rate": 10**400}},
        {**table, "workers": {"x": {**table["crowd"], "false_share": -(10**400)}}},
        {**table, "workers": {"x": {**table["crowd"], "box_bias": {"left": 10**400}}}},
    ):
        with pytest.raises(ConsolidationError, match="bad worker model"):
            WorkerModel.from_json(broken)
    # a hand-written table may leave the bias out, or give only some edges: no bias there
    plain = {k: v for k, v in table["crowd"].items() if k != "box_bias"}
    partial = {**table["crowd"], "box_bias": {"right": 0.05}}
    again = WorkerModel.from_json({**table, "workers": {"p": plain, "q": partial}})
    assert again.workers["p"].box_bias == (0.0, 0.0, 0.0, 0.0)
    assert again.workers["q"].box_bias == (0.0, 0.0, 0.05, 0.0)
    # a sloppy worker at a low IoU threshold can be noisier than one box size: still a table
    sloppy = {**table, "workers": {"s": {**table["crowd"], "box_noise": 1.345}}}
    assert WorkerModel.from_json(sloppy).workers["s"].box_noise == 1.345
    with pytest.raises(ConsolidationError, match="bad worker model"):
        WorkerModel.from_json({**table, "workers": {"s": {**table["crowd"], "box_noise": 0}}})


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"box_noise": 1e-200}, "worker 'x'"),  # 1 / noise**2 overflows
        ({"box_noise": 1e-160}, "worker 'x'"),  # noise**2 underflows to 0
        ({"false_boxes": 1e-320}, "worker 'x'"),  # its log-odds are not finite
    ],
)
def test_a_table_whose_figures_compute_to_no_number_is_refused_where_it_is_read(
    change: dict[str, float], named: str
) -> None:
    # each value is in range, but consolidation would fail on every image with it
    job, _ = _job(images=20)
    table = fit_worker_model(job, labels=LABELS).to_json()
    workers = {**table["workers"], "x": {**table["crowd"], **change}}
    with pytest.raises(ConsolidationError, match=f"figures of {named} give no finite"):
        WorkerModel.from_json({**table, "workers": workers})
    with pytest.raises(ConsolidationError, match="objects / places underflows"):
        WorkerModel.from_json({**table, "objects": 1e-300, "places": 1e300})


def test_model_misuse_is_refused() -> None:
    model = WorkerModel({}, WorkerSkill(0.1, 0.1, 0.1), objects=1.0, places=10.0)
    box: WorkerBox = {"label": "car", "left": 0, "top": 0, "width": 10, "height": 10}
    with pytest.raises(ConsolidationError, match="one annotator id per answer"):
        consolidate_image([[box]], worker_model=model)
    with pytest.raises(ConsolidationError, match="one annotator id per answer"):
        consolidate_image([[box]], worker_model=model, annotators=["a", "b"])
    with pytest.raises(ConsolidationError, match="weights or a worker model"):
        consolidate_image([[box]], worker_model=model, annotators=["a"], weights=[1.0])
    with pytest.raises(ConsolidationError, match=">= 1"):
        fit_worker_model([], chunk_images=0)


def test_evidence_matches_the_model_figures() -> None:
    a = WorkerSkill(miss_rate=0.2, false_boxes=0.1, box_noise=0.2)
    model = WorkerModel({"a": a}, a, objects=1.5, places=30.0)
    ev = model.evidence(["a", "a"])
    assert ev.silent == pytest.approx(math.log(1.5 / 30.0) + 2 * math.log(0.2))
    assert np.allclose(ev.drawn, math.log(30.0 * 0.8 / 0.1) - math.log(0.2))
    # 1 / 0.2**2 = 25 over a power of two (32): only the ratios count, and in [0.5, 1)
    # no sum or product of them can overflow
    assert ev.weights.tolist() == [1 / 0.2**2 / 32] * 2


def test_evidence_is_remembered_per_group_of_annotators_and_read_only() -> None:
    a = WorkerSkill(miss_rate=0.2, false_boxes=0.1, box_noise=0.2, box_bias=(0.1, 0, 0, 0))
    b = WorkerSkill(miss_rate=0.4, false_boxes=0.3, box_noise=0.5)
    model = WorkerModel({"a": a, "b": b}, b, objects=1.5, places=30.0)
    ab = model.evidence(["a", "b"])
    ba = model.evidence(("b", "a"))  # another group: its own terms, in its own order
    assert model.evidence(("a", "b")) is ab
    assert ba.drawn.tolist() == ab.drawn[::-1].tolist()
    assert ba.bias.tolist() == ab.bias[::-1].tolist()
    # each group's terms equal those of a model that never saw another group
    fresh = WorkerModel({"a": a, "b": b}, b, objects=1.5, places=30.0).evidence(["b", "a"])
    assert ba.silent == fresh.silent and ba.weights.tolist() == fresh.weights.tolist()
    for shared in (ab.drawn, ab.weights, ab.bias):  # one image must not change the next's
        with pytest.raises(ValueError, match="read-only"):
            shared[0] = 0.0


def _box(x1: float, y1: float, x2: float, y2: float) -> WorkerBox:
    return {"label": "car", "left": x1, "top": y1, "width": x2 - x1, "height": y2 - y1}


def _biased_job(bias: tuple[float, ...], images: int = 60) -> list[CrowdImage]:
    """Five workers box one object per image; ``loose`` adds ``bias`` (in box sizes)."""
    rng = np.random.default_rng(3)
    workers = ("loose", "a", "b", "c", "d")
    job = []
    for i in range(images):
        x, y, w, h = rng.uniform(50, 300, 2).tolist() + rng.uniform(40, 120, 2).tolist()
        size = np.array([w, h, w, h])
        answers = []
        for name in workers:
            edges = np.array([x, y, x + w, y + h]) + rng.normal(0.0, 0.02, 4) * size
            if name == "loose":
                edges += np.asarray(bias) * size
            answers.append([_box(*edges.tolist())])
        size_px = {"width": 640, "height": 480}
        job.append(
            CrowdImage(key=str(i), image_size=size_px, annotators=workers, boxes=tuple(answers))
        )
    return job


@pytest.mark.parametrize(
    "bias", [(-0.1, -0.05, 0.1, 0.05), (0.08, 0.0, 0.08, 0.0), (0.0, 0.06, 0.0, -0.04)]
)
def test_fit_finds_a_worker_s_bias_against_the_others(bias: tuple[float, ...]) -> None:
    # measured against the mean box of the other workers: the loose worker's own bias, and
    # for each of the others a quarter of it the other way (the loose worker is one of the
    # four they are measured against); shrunk by the prior like every other figure
    images = 60
    model = fit_worker_model(_biased_job(bias, images), labels=LABELS)
    shrink = images / (images + PRIOR_STRENGTH)
    assert model.workers["loose"].box_bias == pytest.approx(np.multiply(bias, shrink), abs=0.01)
    for other in "abcd":
        expected = np.multiply(bias, -shrink / 4)
        assert model.workers[other].box_bias == pytest.approx(expected, abs=0.01)
    assert model.crowd.box_bias == (0.0, 0.0, 0.0, 0.0)


def test_a_steady_habit_is_not_noise() -> None:
    # the loose worker draws 10% too wide on each side, as precisely as the others: once
    # the bias is out their boxes are as steady, and their fusion weight must say so
    model = fit_worker_model(_biased_job((-0.1, -0.1, 0.1, 0.1)), labels=LABELS)
    loose, others = model.workers["loose"], [model.workers[w] for w in "abcd"]
    assert loose.box_bias[2] > 0.05
    assert loose.box_noise < 1.5 * max(o.box_noise for o in others)
    assert loose.weight > 0.4 * min(o.weight for o in others)


_BIAS = st.floats(-0.1, 0.1)


@settings(max_examples=60, deadline=None)
@given(
    truth=st.tuples(
        st.floats(100, 500), st.floats(100, 500), st.floats(20, 300), st.floats(20, 300)
    ),
    biases=st.lists(st.tuples(_BIAS, _BIAS, _BIAS, _BIAS), min_size=2, max_size=5),
    fusion=st.sampled_from(["huber", "mean", "median"]),
)
def test_each_worker_s_bias_comes_out_before_fusion(
    truth: tuple[float, float, float, float],
    biases: list[tuple[float, float, float, float]],
    fusion: Fusion,
) -> None:
    # every worker draws the object exactly but for their bias, an offset of each edge in
    # their box's own size: whatever the biases, the fused box is the object
    x, y, w, h = truth
    answers = []
    for left, top, right, bottom in biases:
        drawn_w, drawn_h = w / (1 - right + left), h / (1 - bottom + top)
        x1, y1 = x + left * drawn_w, y + top * drawn_h
        answers.append([_box(x1, y1, x1 + drawn_w, y1 + drawn_h)])
    drawn = np.concatenate([xyxy_from_gt(a) for a in answers])
    assume(iou_matrix(drawn, drawn).min() >= 0.5)  # one cluster
    names = [f"w{i}" for i in range(len(biases))]
    skills = {
        n: WorkerSkill(0.1, 0.01, 0.1, box_bias=b) for n, b in zip(names, biases, strict=True)
    }
    model = WorkerModel(skills, WorkerSkill(0.1, 0.01, 0.1), objects=1.0, places=100.0)
    out = consolidate_image(
        answers,
        image_size={"width": 1000, "height": 1000},
        worker_model=model,
        annotators=names,
        settings=ConsolidationSettings(fusion=fusion),
    )
    (box,) = out.boxes
    got = (box["left"], box["top"], box["width"], box["height"])
    assert got == pytest.approx(truth, rel=1e-9, abs=1e-6)


def test_a_bias_correction_stays_inside_the_image() -> None:
    # two workers who box tight on the left (+10%) both drew a box against the left border:
    # taken out, their bias would put the edge 4 px outside the picture
    tight = WorkerSkill(0.1, 0.01, 0.1, box_bias=(0.1, 0.0, 0.0, 0.0))
    model = WorkerModel({"a": tight, "b": tight}, tight, objects=1.0, places=100.0)
    answers = [[_box(0, 10, 40, 50)], [_box(0, 10, 40, 50)]]

    def left(image_size: ImageSize | None) -> float:
        out = consolidate_image(
            answers, image_size=image_size, worker_model=model, annotators=["a", "b"]
        )
        return out.boxes[0]["left"]

    assert left(None) == pytest.approx(-4.0)  # no image size: nothing to clip to
    assert left({"width": 100, "height": 100}) == 0.0


def _members_by_box(out: ImageConsolidation) -> list[tuple[str, tuple[tuple[int, int], ...]]]:
    """Each output box's label and members, in a fixed order."""
    return sorted(
        (box["label"], tuple(sorted(members)))
        for box, members in zip(out.boxes, out.clusters, strict=True)
    )


_RATE = st.floats(0.01, 0.9)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    workers=st.integers(2, 6),
    objects=st.integers(1, 10),
    skills=st.lists(
        st.tuples(_RATE, st.floats(0.001, 3.0), st.tuples(_BIAS, _BIAS, _BIAS, _BIAS)),
        min_size=6,
        max_size=6,
    ),
    quorum=st.sampled_from(["box", "label"]),
)
def test_with_keep_quorum_the_head_count_keeps_and_the_model_moves_the_boxes(
    seed: int,
    workers: int,
    objects: int,
    skills: list[tuple[float, float, tuple[float, float, float, float]]],
    quorum: Literal["box", "label"],
) -> None:
    # whatever the model thinks of each worker's misses and false boxes, the head count
    # decides; the model's bias comes out of every member (equal noise: a plain mean)
    labels = ("car", "person")
    crowd = simulate_crowd(
        images=1,
        boxes_per_image=objects,
        skills=make_skills(workers, seed=seed, duplicate_rate=0.0),
        labels=labels,
        seed=seed,
    )
    img = crowd[0]
    table = {
        name: WorkerSkill(miss, false, 0.1, box_bias=bias)
        for name, (miss, false, bias) in zip(img.worker_ids, skills, strict=False)
    }
    model = WorkerModel(table, WorkerSkill(0.1, 0.1, 0.1), objects=3.0, places=50.0)
    plain = ConsolidationSettings(fusion="mean", quorum=quorum)
    head = consolidate_image(img.answers, settings=plain, labels=labels)
    fused = consolidate_image(
        img.answers, settings=plain, labels=labels, worker_model=model, annotators=img.worker_ids
    )
    assert _members_by_box(fused) == _members_by_box(head)
    assert fused.dropped == head.dropped

    def mean_of(members: list[tuple[int, int]], moved: bool) -> list[float]:
        edges = []
        for w, b in members:
            box = img.answers[w][b]
            x1, y1, bw, bh = box["left"], box["top"], box["width"], box["height"]
            left, top, right, bottom = table[img.worker_ids[w]].box_bias if moved else (0,) * 4
            edges.append(
                (x1 - left * bw, y1 - top * bh, x1 + bw - right * bw, y1 + bh - bottom * bh)
            )
        x1, y1, x2, y2 = np.mean(edges, axis=0)
        return [x1, y1, x2 - x1, y2 - y1]

    for out, moved in ((head, False), (fused, True)):
        for box, members in zip(out.boxes, out.clusters, strict=True):
            got = [box["left"], box["top"], box["width"], box["height"]]
            assert got == pytest.approx(mean_of(members, moved), rel=1e-9, abs=1e-6)


@pytest.mark.parametrize(("keep", "kept"), [("model", 1), ("quorum", 0)])
def test_only_keep_model_keeps_a_careful_worker_s_lone_box(keep: Keep, kept: int) -> None:
    # two workers, one silent: the head count needs both; the model trusts the careful one
    careful = WorkerSkill(miss_rate=0.05, false_boxes=0.01, box_noise=0.05)
    careless = WorkerSkill(miss_rate=0.6, false_boxes=2.0, box_noise=0.3)
    model = WorkerModel({"a": careful, "b": careless}, careless, objects=2.0, places=50.0)
    box: WorkerBox = {"label": "car", "left": 10, "top": 10, "width": 40, "height": 40}
    answers: list[list[WorkerBox]] = [[box], []]
    assert consolidate_boxes(answers) == []
    out = consolidate_image(
        answers,
        settings=ConsolidationSettings(keep=keep),
        worker_model=model,
        annotators=["a", "b"],
    )
    assert len(out.boxes) == kept
    assert [d["reason"] for d in out.dropped] == ["below-min-support"] * (1 - kept)


def test_keep_is_validated_and_model_needs_a_worker_model() -> None:
    with pytest.raises(ConsolidationError, match="keep must be 'quorum' or 'model'"):
        ConsolidationSettings(keep="all")  # type: ignore[arg-type]
    box: WorkerBox = {"label": "car", "left": 0, "top": 0, "width": 10, "height": 10}
    with pytest.raises(ConsolidationError, match='keep="model" needs a worker_model'):
        consolidate_image([[box]], settings=ConsolidationSettings(keep="model"))
    assert ConsolidationSettings.from_env({"GT_KEEP": " Model "}).keep == "model"
    assert ConsolidationSettings.from_env({"GT_KEEP": ""}).keep == "quorum"
    with pytest.raises(ConsolidationError, match="keep must be"):
        ConsolidationSettings.from_env({"GT_KEEP": "everything"})


def test_a_huge_image_gives_a_finite_capped_number_of_places() -> None:
    # its area overflowed to inf, and the fit failed with "math domain error"
    job, _ = _job(images=8)
    huge = [dataclasses.replace(img, image_size={"width": 1e155, "height": 1e155}) for img in job]
    model = fit_worker_model(huge)
    assert model.places == pytest.approx(math.exp(100.0))
    ordinary = fit_worker_model(job)
    assert 1.0 <= ordinary.places < math.exp(100.0)


@pytest.mark.parametrize(("noise", "left"), [(1.2e-154, 100.0), (1e-100, 1e150)])
def test_tiny_box_noises_fuse_as_any_equal_weights_do(noise: float, left: float) -> None:
    # each weight 1 / noise**2 is finite, so the table was read; five of 6.9e307 summed to
    # an overflow (OverflowError on every image they answered together), and a weight of
    # 1e200 times an edge of 1e150 overflowed in the fusion
    from gt_toolkit.consolidation.engine import ConsolidationSettings, consolidate_image
    from gt_toolkit.consolidation.worker_model import MODEL_NAME

    names = [f"w{i}" for i in range(5)]

    def table(box_noise: float) -> WorkerModel:
        skill = {"miss_rate": 0.1, "false_boxes": 0.1, "box_noise": box_noise}
        return WorkerModel.from_json(
            {
                "model": MODEL_NAME,
                "objects": 1.0,
                "places": 100.0,
                "crowd": skill,
                "workers": {n: skill for n in names},
            }
        )

    size = left / 100
    answers = [
        [{"label": "car", "left": left + i * size / 50, "top": 0, "width": size, "height": size}]
        for i in range(5)
    ]
    for keep in ("quorum", "model"):
        settings = ConsolidationSettings(keep=keep)
        tiny, usual = (
            consolidate_image(answers, settings=settings, worker_model=table(n), annotators=names)
            for n in (noise, 0.1)
        )
        assert len(tiny.boxes) == 1
        assert tiny.boxes == usual.boxes  # only the weights' ratios count


def test_images_nobody_answered_change_no_figure_of_the_model() -> None:
    # an image with no annotator (an expired task, a listed image nobody rated) counted as
    # an image of no objects: 60 of them beside 30 answered took `objects` from 2.0 to
    # 0.67, the prior of every cluster kept or dropped under keep="model"
    size: ImageSize = {"width": 500, "height": 500}

    def box(left: float) -> WorkerBox:
        return {"label": "car", "left": left, "top": 10, "width": 30, "height": 30}

    answered = [
        CrowdImage(
            key=f"i{i}",
            image_size=size,
            annotators=("a", "b", "c"),
            boxes=([box(10 + i % 3), box(200)], [box(10), box(201)], [box(11)]),
        )
        for i in range(30)
    ]
    nobody = [CrowdImage(key=f"e{i}", image_size=size, annotators=(), boxes=()) for i in range(60)]
    alone = fit_worker_model(answered)
    assert alone.objects == pytest.approx(2.0, abs=0.01)
    assert fit_worker_model(answered + nobody) == alone
    assert fit_worker_model(nobody[:5] + answered + nobody[5:]) == alone


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.just(0.0),
            st.floats(min_value=1e-300, max_value=1e300),
            st.floats(min_value=0.5, max_value=2.0),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_a_models_weights_are_cut_and_scaled_as_given_weights_are(weights: list[float]) -> None:
    # A table's weights went through a power of two only: a worker under 2^-100 of the
    # largest kept a subnormal weight that lost bits (a fused edge moved by 0.09 px), where
    # the same weights given to the engine count as 0 (engine._checked_weights)
    from gt_toolkit.consolidation import engine, worker_model

    assume(max(weights) > 0)
    scaled = worker_model._scaled(np.array(weights))
    given_ = engine._checked_weights(weights, len(weights))
    assert given_ is not None
    top = float(scaled.max())
    assert 0.5 <= top < 1.0
    # the same cut, and the same ratios to the bit
    assert [float(x) / top for x in scaled] == given_
