from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_toolkit import (
    ConsolidationError,
    ConsolidationSettings,
    consolidate_boxes,
    consolidate_image,
    parse_bounding_box_answer,
)
from gt_toolkit.consolidation import clean as clean_module
from gt_toolkit.consolidation.engine import default_min_support
from gt_toolkit.consolidation.geometry import iou_matrix, xyxy_from_gt
from gt_toolkit.consolidation.settings import Fusion
from gt_toolkit.testing.simulated_crowd import make_skills, simulate_crowd


def bx(left: float, top: float, width: float, height: float, label: str = "car") -> dict[str, Any]:
    return {"label": label, "left": left, "top": top, "width": width, "height": height}


A = bx(10, 10, 40, 40)
A2 = bx(12, 11, 40, 40)
A3 = bx(9, 12, 41, 39)
B = bx(200, 100, 30, 60)
# the engine before issue 14's defaults: mean fusion, one voted label per cluster
MEAN_BOX = ConsolidationSettings(fusion="mean", quorum="box")
MEAN_BOX_KW: dict[str, Any] = {"fusion": "mean", "quorum": "box"}


# ---- table-driven cases ------------------------------------------------------------------
CASES = [
    # (id, answers, kwargs, expected [(label, left, top, width, height)] approx, confidence check)
    ("two-agree", [[A], [A2]], {}, [("car", 11, 10.5, 40, 40)]),
    ("disjoint-workers", [[A], [B]], {}, []),  # each box has 1 of 2 votes: no majority
    (
        "disjoint-min1",
        [[A], [B]],
        {"min_support": 1},
        [("car", 10, 10, 40, 40), ("car", 200, 100, 30, 60)],
    ),
    ("one-worker", [[A, B]], {}, [("car", 10, 10, 40, 40), ("car", 200, 100, 30, 60)]),
    ("empty-answers", [[], [], []], {}, []),
    ("no-workers", [], {}, []),
    ("majority-of-three", [[A], [A2], []], {}, [("car", 11, 10.5, 40, 40)]),
    ("minority-dropped", [[A], [], []], {}, []),
    (
        "label-vote",
        [[A], [A2], [bx(9, 12, 41, 39, "bus")]],
        {"fusion": "mean"},
        [("car", 31 / 3, 11, 121 / 3, 119 / 3)],
    ),
    (
        "two-boxes-one-object",  # worker 0 draws two boxes on A; only one joins the cluster
        [[A, bx(14, 14, 38, 38)], [A2], [A3]],
        {"fusion": "mean"},
        [("car", 31 / 3, 11, 121 / 3, 119 / 3)],
    ),
    (
        "median",
        [[A], [A2], [bx(100, 10, 40, 40)], [A3]],
        {"fusion": "median", "min_support": 3},
        [("car", 10, 11, 40, 40)],
    ),
]


@pytest.mark.parametrize(
    ("answers", "kwargs", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_consolidate_table(
    answers: Any, kwargs: dict[str, Any], expected: list[tuple[Any, ...]]
) -> None:
    out = consolidate_boxes(answers, **kwargs)
    assert len(out) == len(expected)
    for got, exp in zip(out, expected, strict=True):
        assert got["label"] == exp[0]
        assert [got["left"], got["top"], got["width"], got["height"]] == pytest.approx(
            list(exp[1:])
        )
        assert 0.0 <= got["confidence"] <= 1.0


def test_label_tie_broken_by_label_list_then_name() -> None:
    answers = [[bx(0, 0, 10, 10, "zebra")], [bx(0, 0, 10, 10, "apple")]]
    assert consolidate_boxes(answers, quorum="box")[0]["label"] == "apple"
    tie = consolidate_boxes(answers, labels=["zebra", "apple"], quorum="box")
    assert tie[0]["label"] == "zebra"


def test_confidence_formula() -> None:
    # confidence = s * (1 - (1 - q) / (2k)); s = k/N, q = mean pairwise IoU x label share
    shifted = bx(14, 10, 40, 40)  # IoU with A: 36*40 / (44*40)
    out = consolidate_image([[A], [shifted], []])
    q = 36 / 44
    assert out.boxes[0]["confidence"] == pytest.approx((2 / 3) * (1 - (1 - q) / 4))
    # label disagreement: q = 1.0 (identical boxes) x 2/3 (winning label's share)
    out = consolidate_image([[A], [A], [bx(10, 10, 40, 40, "bus")]], settings=MEAN_BOX)
    assert out.boxes[0]["confidence"] == pytest.approx(1 - (1 - 2 / 3) / 6)
    # a single-member cluster kept by min_support=1: no agreement measured (q = 0), s = 1/2
    assert [b["confidence"] for b in consolidate_boxes([[A], [B]], min_support=1)] == [
        pytest.approx(0.25),
        pytest.approx(0.25),
    ]
    # one worker: 0.0, like Ground Truth
    assert consolidate_boxes([[A]])[0]["confidence"] == 0.0


def test_confidence_ranks_support_before_agreement() -> None:
    # 3 of 5 workers with loose agreement outrank 2 of 5 with perfect agreement
    loose = [[bx(0, 0, 40, 40)], [bx(6, 0, 40, 40)], [bx(0, 6, 40, 40)]]
    tight = [[bx(200, 0, 40, 40)], [bx(200, 0, 40, 40)]]
    answers = [a + b for a, b in zip(loose, [*tight, []], strict=True)] + [[], []]
    out = consolidate_boxes(answers, min_support=2)
    by_left = {round(b["left"]): b["confidence"] for b in out}
    assert by_left[200] == pytest.approx(2 / 5)  # q = 1: exactly the support share
    assert 2 / 5 < by_left[2] < 3 / 5
    # deterministic: the same answers in another order give identical confidences
    assert consolidate_boxes(answers[::-1], min_support=2) == out


def test_image_consolidation_records_clusters_and_drops() -> None:
    answers = [
        [A, bx(11, 10, 40, 40)],  # second box duplicates the first (IoU > 0.9)
        [bx(12, 11, 40, 40), bx(0, 0, -5, 3), bx(float("nan"), 1, 2, 3)],
        [bx(9, 12, 41, 39), bx(-100, -100, 10, 10), bx(1, 1, 5, 5, "dog"), {"oops": 1}, "bad"],
    ]
    out = consolidate_image(answers, labels=["car"], image_size={"width": 300, "height": 200})
    assert out.workers == 3
    assert out.clusters == [[(0, 0), (1, 0), (2, 0)]]
    reasons = {(d["worker"], d["box"]): d["reason"] for d in out.dropped}
    assert reasons == {
        (0, 1): "duplicate",
        (1, 1): "non-positive-size",
        (1, 2): "non-finite",
        (2, 1): "outside-image",
        (2, 2): "unknown-label",
        (2, 3): "malformed",
        (2, 4): "malformed",
    }


@pytest.mark.parametrize("where", ["fast", "slow"], ids=["whole-answer", "with-a-bad-box"])
def test_a_coordinate_no_float_can_hold_is_malformed_not_a_crash(where: str) -> None:
    # JSON reads 1e400-digit integers as Python ints; float() of one overflows
    huge = {"label": "car", "left": 10**400, "top": 1, "width": 5, "height": 5}
    first = [huge] if where == "fast" else [huge, {"oops": 1}]
    out = consolidate_image([first, [A], [A]])
    first_drop = out.dropped[0]
    assert (first_drop["worker"], first_drop["box"], first_drop["reason"]) == (0, 0, "malformed")
    assert "int too large" in first_drop["detail"]
    assert len(out.boxes) == 1


@pytest.mark.parametrize(
    ("answers", "labels", "message"),
    [
        ([None, [A]], None, "answer 0 is NoneType"),
        ([[A], "car"], None, "answer 1 is str"),  # was one malformed box per letter
        ([{"car": A}, [A]], None, "answer 0 is dict"),  # was one per key
        ([[A], [A]], "car", "not the string 'car'"),  # was the labels 'c', 'a', 'r'
    ],
    ids=["none", "string", "dict", "labels-string"],
)
def test_a_callers_wrong_shapes_are_an_error_not_worker_slips(
    answers: list[Any], labels: Any, message: str
) -> None:
    with pytest.raises(ConsolidationError, match=message):
        consolidate_image(answers, labels=labels)


def test_clip_versus_drop_at_image_border() -> None:
    crossing = [[bx(90, 10, 20, 20)], [bx(91, 10, 20, 20)]]
    size = {"width": 100, "height": 100}
    clipped = consolidate_boxes(crossing, image_size=size)
    assert clipped[0]["left"] + clipped[0]["width"] == pytest.approx(100)
    dropped = consolidate_image(
        crossing, image_size=size, settings=ConsolidationSettings(clip=False)
    )
    assert dropped.boxes == []
    assert {d["reason"] for d in dropped.dropped} == {"outside-image"}


def test_weights_pull_the_fused_box_and_label() -> None:
    answers = [[bx(0, 0, 10, 10, "a")], [bx(2, 0, 10, 10, "b")]]
    out = consolidate_boxes(answers, weights=[3.0, 1.0], **MEAN_BOX_KW)
    assert out[0]["left"] == pytest.approx(0.5)
    assert out[0]["label"] == "a"
    with pytest.raises(ConsolidationError, match="weights"):
        consolidate_boxes(answers, weights=[1.0])
    with pytest.raises(ConsolidationError, match="weights"):
        consolidate_boxes(answers, weights=[1.0, -1.0])


def test_min_support_capped_at_workers_who_answered() -> None:
    assert consolidate_boxes([[A], [A2]], min_support=5)  # 2 of 2 is enough
    assert [default_min_support(n) for n in range(6)] == [1, 1, 2, 2, 3, 3]


def test_settings_validation_and_env() -> None:
    s = ConsolidationSettings.from_env(
        {"GT_IOU_THRESHOLD": "0.6", "GT_MIN_SUPPORT": "2", "GT_FUSION": "Median"}
    )
    assert (s.iou_threshold, s.min_support, s.fusion) == (0.6, 2, "median")
    assert ConsolidationSettings.from_env({"GT_MIN_SUPPORT": ""}) == ConsolidationSettings()
    for env in (
        {"GT_IOU_THRESHOLD": "x"},
        {"GT_IOU_THRESHOLD": "1.5"},
        {"GT_MIN_SUPPORT": "0"},
        {"GT_FUSION": "max"},
    ):
        with pytest.raises(ConsolidationError):
            ConsolidationSettings.from_env(env)


def test_crowded_scene_keeps_neighbours_apart() -> None:
    # Two overlapping objects (IoU ~0.43): three workers draw both; no chaining across them.
    o1, o2 = bx(0, 0, 40, 40), bx(12, 0, 40, 40)
    answers = [
        [o1, o2],
        [bx(1, 0, 40, 40), bx(13, 0, 40, 40)],
        [bx(0, 1, 40, 40), bx(12, 1, 40, 40)],
    ]
    out = consolidate_boxes(answers, iou_threshold=0.4)
    assert len(out) == 2
    assert sorted(round(b["left"]) for b in out) == [0, 12]


# ---- answers parser -------------------------------------------------------------------
def test_parse_bounding_box_answer() -> None:
    content = {
        "boundingBox": {
            "boundingBoxes": [{"label": "car", "left": 1, "top": 2, "width": "3", "height": None}],
            "inputImageProperties": {"width": 640, "height": 480},
        }
    }
    ans = parse_bounding_box_answer(content, worker_id="w1", time_spent=12.5)
    assert ans.worker_id == "w1" and ans.time_spent == 12.5
    assert ans.image_size == {"width": 640, "height": 480}
    assert ans.boxes[0]["width"] == 3.0 and math.isnan(ans.boxes[0]["height"])
    null = parse_bounding_box_answer({"annotatedResult": {"boundingBoxes": None}})
    assert null.boxes == [] and null.image_size is None
    two = {"boxes": {"boundingBoxes": []}, "comment": "hi"}
    assert parse_bounding_box_answer(two).boxes == []
    assert parse_bounding_box_answer(two, element_name="boxes").boxes == []


@pytest.mark.parametrize(
    ("content", "kwargs", "match"),
    [
        ([], {}, "must be an object"),
        ({"a": {"boundingBoxes": []}, "b": {"boundingBoxes": []}}, {}, "cannot tell"),
        ({"a": {}}, {"element_name": "b"}, "no 'b' element"),
        ({"a": "text"}, {}, "must be an object"),
        ({"a": {"boundingBoxes": {}}}, {}, "list or null"),
        ({"a": {"boundingBoxes": [3]}}, {}, "box 0"),
    ],
    ids=[
        "not-object",
        "ambiguous",
        "missing-element",
        "element-not-object",
        "boxes-not-list",
        "box-not-object",
    ],
)
def test_parse_bounding_box_answer_errors(content: Any, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConsolidationError, match=match):
        parse_bounding_box_answer(content, **kwargs)


# ---- properties -----------------------------------------------------------------------
coord = st.integers(min_value=-20, max_value=220)
dim = st.integers(min_value=-5, max_value=120)
label = st.sampled_from(["car", "bus", "person"])
box_st = st.builds(bx, coord, coord, dim, dim, label)
answers_st = st.lists(st.lists(box_st, max_size=6), min_size=0, max_size=5)
SIZE = {"width": 200, "height": 150}


@settings(max_examples=80, deadline=None)
@given(
    answers_st,
    st.randoms(use_true_random=False),
    st.sampled_from(["box", "label"]),
    st.sampled_from([None, 1]),
)
def test_permutation_invariance(
    answers: list[list[dict[str, Any]]], rnd: random.Random, quorum: Any, support: int | None
) -> None:
    kw: dict[str, Any] = {"image_size": SIZE, "quorum": quorum, "min_support": support}
    expected = consolidate_boxes(answers, **kw)
    shuffled = [list(a) for a in answers]
    for a in shuffled:
        rnd.shuffle(a)
    rnd.shuffle(shuffled)
    assert consolidate_boxes(shuffled, **kw) == expected


fraction = st.floats(min_value=-20, max_value=220).map(lambda v: round(v, 2))
fractional_st = st.lists(
    st.lists(st.builds(bx, fraction, fraction, fraction, fraction, label), max_size=6),
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(fractional_st, st.randoms(use_true_random=False), st.sampled_from([None, SIZE]))
def test_permutation_invariance_off_the_pixel_grid(
    answers: list[list[dict[str, Any]]], rnd: random.Random, size: Any
) -> None:
    # fractional (and, without an image size, negative) edges take the float sort keys
    expected = consolidate_boxes(answers, image_size=size, min_support=1)
    shuffled = [list(a) for a in answers]
    for a in shuffled:
        rnd.shuffle(a)
    rnd.shuffle(shuffled)
    assert consolidate_boxes(shuffled, image_size=size, min_support=1) == expected


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**32 - 1),
    st.integers(min_value=65, max_value=1200),
    st.integers(min_value=1, max_value=60),
    st.booleans(),
)
def test_box_order_is_the_six_key_sort_with_its_ties(
    seed: int, n: int, span: int, fractional: bool
) -> None:
    # past 64 boxes the order is found by left edge and top first, then all keys only
    # where those tie; it must be the plain sort by all six keys, ties and all
    rng = np.random.default_rng(seed)
    corner = rng.integers(0, span, size=(2, n)).astype(float)
    xyxy = np.concatenate([corner, corner + rng.integers(1, 3, size=(2, n))])
    if fractional:
        xyxy += rng.choice([0.0, 0.5], size=(4, n))
    name_key = rng.integers(0, 3, size=n)
    box_of = rng.integers(0, max(2, n // 3), size=n)
    keys = np.stack([box_of, name_key, xyxy[3], xyxy[2], xyxy[1], xyxy[0]]).astype(float)
    expected = np.lexsort(keys)
    in_order = keys[1:].take(expected, axis=1)
    expected_tied = np.logical_and.reduce(in_order[:, 1:] == in_order[:, :-1])
    order, tied = clean_module._box_order(xyxy, name_key, box_of)
    assert order.tolist() == expected.tolist()
    if tied is None:
        assert not expected_tied.any()
    else:
        assert tied.tolist() == expected_tied.tolist()


@settings(max_examples=40, deadline=None)
@given(answers_st)
def test_whole_pixel_and_fractional_answers_cluster_alike(
    answers: list[list[dict[str, Any]]],
) -> None:
    # a quarter-pixel shift moves every box alike: the same clusters, shifted
    shifted = [
        [{**b, "left": b["left"] + 0.25, "top": b["top"] - 0.25} for b in a] for a in answers
    ]
    whole = consolidate_boxes(answers, min_support=1)
    moved = consolidate_boxes(shifted, min_support=1)
    assert len(moved) == len(whole)
    for m, w in zip(moved, whole, strict=True):
        assert m["label"] == w["label"]
        assert m["left"] == pytest.approx(w["left"] + 0.25)
        assert m["top"] == pytest.approx(w["top"] - 0.25)
        assert (m["width"], m["height"]) == pytest.approx((w["width"], w["height"]))
        assert m["confidence"] == pytest.approx(w["confidence"])


@settings(max_examples=60, deadline=None)
@given(st.lists(box_st, max_size=6), st.integers(min_value=2, max_value=6))
def test_identical_workers_give_their_boxes_back(boxes: list[dict[str, Any]], k: int) -> None:
    size = {"width": 300, "height": 300}
    valid = consolidate_boxes([boxes], image_size=size)  # one worker: their cleaned boxes
    out = consolidate_boxes([boxes] * k, image_size=size)
    assert [(b["label"], b["left"], b["top"], b["width"], b["height"]) for b in out] == [
        (b["label"], b["left"], b["top"], b["width"], b["height"]) for b in valid
    ]
    assert all(b["confidence"] == pytest.approx(1.0) for b in out)


@settings(max_examples=80, deadline=None)
@given(answers_st, st.sampled_from(["mean", "median"]), st.sampled_from(["box", "label"]))
def test_outputs_inside_image_and_valid(
    answers: list[list[dict[str, Any]]], fusion: Any, quorum: Any
) -> None:
    config = ConsolidationSettings(fusion=fusion, quorum=quorum)
    out = consolidate_image(answers, image_size=SIZE, settings=config)
    assert len(out.boxes) == len(out.clusters)
    need = default_min_support(len(answers))
    for b, members in zip(out.boxes, out.clusters, strict=True):
        assert b["left"] >= 0 and b["top"] >= 0
        assert b["left"] + b["width"] <= SIZE["width"] + 1e-9
        assert b["top"] + b["height"] <= SIZE["height"] + 1e-9
        assert b["width"] > 0 and b["height"] > 0
        assert 0.0 <= b["confidence"] <= 1.0
        workers = [w for w, _ in members]
        same_label = {w for w, i in members if answers[w][i]["label"] == b["label"]}
        if quorum == "box":
            assert len(workers) == len(set(workers))  # never two boxes of one worker
            assert len(members) >= need
        else:  # a worker's second box joins the box of the label it gave
            assert len(same_label) >= need
            geometry = [m for m in members if answers[m[0]][m[1]]["label"] == b["label"]]
            assert len(members) - len(geometry) <= len(set(workers))
    # every input box is either in a cluster or dropped with a reason, exactly once (a
    # cluster that gives one box per label lists its members under each of them)
    in_clusters = {m for c in out.clusters for m in c}
    accounted = list(in_clusters) + [(d["worker"], d["box"]) for d in out.dropped]
    assert sorted(accounted) == sorted((w, i) for w, a in enumerate(answers) for i in range(len(a)))


@settings(max_examples=40, deadline=None)
@given(answers_st)
def test_cluster_members_overlap_their_fused_box(answers: list[list[dict[str, Any]]]) -> None:
    out = consolidate_image(answers, image_size=SIZE)
    for b, members in zip(out.boxes, out.clusters, strict=True):
        fused = xyxy_from_gt([b])
        member_boxes = xyxy_from_gt([answers[w][i] for w, i in members])
        assert (iou_matrix(fused, member_boxes) > 0).all()


def test_double_drawer_does_not_split_the_cluster() -> None:
    # worker 0 draws two boxes on one object (IoU 0.73, below the duplicate threshold);
    # each could seed its own cluster with half of the other workers.
    answers = [
        [bx(0, 0, 100, 100), bx(8, 8, 100, 100)],
        [bx(1, 1, 100, 100)],
        [bx(7, 7, 100, 100)],
        [bx(9, 8, 100, 100)],
        [bx(2, 0, 100, 100)],
    ]
    out = consolidate_image(answers)
    assert len(out.boxes) == 1
    assert sorted(w for w, _ in out.clusters[0]) == [0, 1, 2, 3, 4]
    assert [(d["worker"], d["reason"]) for d in out.dropped] == [(0, "duplicate")]


def test_centroid_linkage_keeps_a_loose_member() -> None:
    # the loose worker's box misses the threshold with one tight box (IoU 0.47), so
    # complete linkage would leave one of them out, but every box reaches it with the
    # cluster's mean box: all five help place the object.
    tight = [bx(0, 0, 100, 100), bx(25, 0, 100, 100), bx(5, 5, 100, 100), bx(0, 5, 100, 100)]
    loose = bx(-20, -20, 140, 140)
    answers = [[b] for b in [*tight, loose]]
    assert iou_matrix(xyxy_from_gt([loose]), xyxy_from_gt(tight)).round(2).tolist() == [
        [0.51, 0.47, 0.51, 0.51]
    ]
    out = consolidate_image(answers)
    assert len(out.clusters) == 1 and len(out.clusters[0]) == 5
    assert out.dropped == []


@pytest.mark.parametrize("workers", [3, 5, 9])
def test_crowded_simulated_image_is_order_free(workers: int) -> None:
    # hundreds of boxes: the sweep, coherent-component and greedy paths all run
    crowd = simulate_crowd(
        images=2,
        boxes_per_image=60,
        skills=make_skills(workers, seed=7, duplicate_rate=0.1, spurious_rate=0.05),
        labels=["car", "bus"],
        seed=7,
    )
    rnd = random.Random(workers)
    for img in crowd:
        expected = consolidate_boxes(img.answers, image_size=img.image_size)
        shuffled = [list(a) for a in img.answers]
        for a in shuffled:
            rnd.shuffle(a)
        rnd.shuffle(shuffled)
        assert consolidate_boxes(shuffled, image_size=img.image_size) == expected
        assert consolidate_image(img.answers, image_size=img.image_size).boxes == expected
        assert 40 <= len(expected) <= 70
        assert all(0.0 < b["confidence"] <= 1.0 for b in expected)


# ---- second boxes and the per-label quorum ----------------------------------------------
def test_two_double_drawers_give_one_box() -> None:
    # workers 0 and 2 both draw the object twice; their second boxes form a two-worker
    # cluster that would pass a 3-worker majority and emit the object twice
    answers = [
        [bx(877, 244, 35, 27, "bike"), bx(878, 244, 34, 26, "car")],
        [bx(875, 244, 36, 26, "bike")],
        [bx(873, 244, 38, 28, "bike"), bx(876, 244, 38, 25, "bike")],
    ]
    out = consolidate_image(answers, settings=MEAN_BOX)
    assert [b["label"] for b in out.boxes] == ["bike"]
    assert sorted(w for w, _ in out.clusters[0]) == [0, 1, 2]
    assert sorted((d["worker"], d["reason"]) for d in out.dropped) == [
        (0, "duplicate"),
        (2, "duplicate"),
    ]
    assert all("second box" in d["detail"] for d in out.dropped)


def test_every_worker_drawing_two_overlapping_boxes_means_two_objects() -> None:
    # two objects overlapping at IoU 0.6, drawn by all three workers: equal-sized
    # clusters, so neither is taken for a repeat of the other
    a, b = (0, 0, 100, 100), (25, 0, 100, 100)
    answers = [[bx(*a), bx(*b)] for _ in range(3)]
    out = consolidate_boxes(answers)
    assert [(o["left"], o["width"]) for o in out] == [(0.0, 100.0), (25.0, 100.0)]


def test_double_drawer_keeps_the_box_whose_label_the_others_gave() -> None:
    # worker 2 draws the object as a car and as a bike; its car box is nearer the mean,
    # but the bike box agrees with worker 0, so it joins and bike wins 2:0
    answers = [
        [bx(188, 276, 59, 54, "bike")],
        [],
        [bx(193, 280, 52, 49, "car"), bx(193, 278, 45, 57, "bike")],
    ]
    out = consolidate_image(answers, labels=["car", "person", "bike"])
    assert [b["label"] for b in out.boxes] == ["bike"]
    assert sorted(out.clusters[0]) == [(0, 0), (2, 1)]
    assert [(d["worker"], d["box"], d["reason"]) for d in out.dropped] == [(2, 0, "duplicate")]


def test_label_quorum_drops_a_split_vote_that_box_quorum_keeps() -> None:
    answers = [[bx(0, 0, 50, 50, "bus")], [bx(2, 0, 50, 50, "car")], []]
    # two of three drew it; the 1:1 tie goes to "bus"
    kept = consolidate_image(answers, settings=MEAN_BOX)
    assert [b["label"] for b in kept.boxes] == ["bus"]
    split = consolidate_image(answers, settings=ConsolidationSettings(quorum="label"))
    assert split.boxes == []
    assert [(d["worker"], d["reason"]) for d in split.dropped] == [
        (0, "below-min-support"),
        (1, "below-min-support"),
    ]
    assert all("no label was given by 2" in d["detail"] for d in split.dropped)


def test_label_quorum_at_one_keeps_every_label_on_the_fused_box() -> None:
    answers = [[bx(0, 0, 50, 50, "car")], [bx(2, 0, 50, 50, "car")], [bx(4, 0, 50, 50, "bus")]]
    out = consolidate_image(answers, settings=ConsolidationSettings(min_support=1, quorum="label"))
    assert [b["label"] for b in out.boxes] == ["bus", "car"]
    bus, car = out.boxes
    assert (bus["left"], bus["width"]) == (car["left"], car["width"]) == (2.0, 50.0)
    assert car["confidence"] > 0.5 > bus["confidence"] > 0.0
    assert out.clusters[0] == out.clusters[1] == [(0, 0), (1, 0), (2, 0)]
    # the vote winner alone, as quorum="box" gives it, scores higher (all three support it)
    (alone,) = consolidate_boxes(answers, min_support=1, quorum="box")
    assert alone["label"] == "car" and alone["confidence"] > car["confidence"]


def test_label_quorum_counts_a_second_box_with_another_label() -> None:
    # worker 0 calls the object both person and bike; with the per-label quorum that is a
    # vote for each, so both labels reach 2 of 3 (what WBF's per-label clusters give)
    answers = [
        [bx(247, 556, 38, 71, "person"), bx(244, 555, 39, 70, "bike")],
        [bx(244, 553, 42, 77, "person")],
        [bx(242, 557, 43, 64, "bike")],
    ]
    labels = ["car", "person", "bike"]
    out = consolidate_image(answers, labels=labels, settings=ConsolidationSettings(quorum="label"))
    assert sorted(b["label"] for b in out.boxes) == ["bike", "person"]
    assert out.dropped == []
    members = {b["label"]: sorted(c) for b, c in zip(out.boxes, out.clusters, strict=True)}
    assert (0, 0) in members["person"] and (0, 1) in members["bike"]
    boxed = consolidate_image(answers, labels=labels, settings=MEAN_BOX)  # one voted label
    assert len(boxed.boxes) == 1
    assert [d["reason"] for d in boxed.dropped] == ["duplicate"]


def test_quorum_setting_validation_and_env() -> None:
    with pytest.raises(ConsolidationError, match="quorum must be 'box' or 'label'"):
        ConsolidationSettings(quorum="labels")  # type: ignore[arg-type]
    assert ConsolidationSettings.from_env({"GT_QUORUM": " Label "}).quorum == "label"
    assert ConsolidationSettings.from_env({"GT_QUORUM": ""}).quorum == "label"
    with pytest.raises(ConsolidationError, match="quorum"):
        ConsolidationSettings.from_env({"GT_QUORUM": "cluster"})


def test_one_workers_lone_double_is_one_object() -> None:
    # nobody else drew there: worker 0's two overlapping boxes (IoU ~0.88, under the
    # duplicate IoU) are one object drawn twice, not two objects
    double = [bx(60, 449, 59, 27, "person"), bx(58, 449, 65, 26, "person")]
    answers = [double, [bx(400, 100, 30, 30)], [bx(402, 100, 30, 30)]]
    out = consolidate_image(answers, settings=ConsolidationSettings(min_support=1))
    people = [b for b in out.boxes if b["label"] == "person"]
    assert len(people) == 1
    assert [(d["worker"], d["reason"]) for d in out.dropped] == [(0, "duplicate")]
    # the same when the others answered but drew nothing at all
    assert len(consolidate_boxes([double, [], []], min_support=1)) == 1
    # with one worker there is no one to compare with: both boxes stay theirs
    assert len(consolidate_boxes([double])) == 2
    # two workers who both drew two overlapping boxes are two objects (corroborated)
    both = consolidate_boxes([double, double, []], min_support=1)
    assert len(both) == 2


def test_second_box_that_reaches_the_cluster_mean_is_a_duplicate() -> None:
    # worker 1's loose box joins the cluster; its tight box misses the loose one
    # (IoU 0.49) but lies on the object: it reaches the cluster's mean box
    answers = [
        [bx(808, 585, 53, 29, "person")],
        [bx(810, 591, 46, 23, "person"), bx(798, 583, 70, 31, "person")],
        [bx(800, 585, 59, 28, "person")],
    ]
    out = consolidate_image(answers, settings=ConsolidationSettings(min_support=1))
    assert len(out.boxes) == 1
    assert sorted(w for w, _ in out.clusters[0]) == [0, 1, 2]
    assert [(d["worker"], d["reason"]) for d in out.dropped] == [(1, "duplicate")]


def test_label_quorum_ranks_a_contested_label_below_an_uncontested_lone_box() -> None:
    lone = bx(300, 300, 40, 40, "car")  # one of three drew it; the others drew nothing there
    contested = [bx(0, 0, 50, 50, "car"), bx(2, 0, 50, 50, "car"), bx(4, 0, 50, 50, "bus")]
    answers = [[contested[0], lone], [contested[1]], [contested[2]]]
    out = consolidate_boxes(answers, min_support=1, quorum="label")
    conf = {(b["label"], round(b["left"])): b["confidence"] for b in out}
    assert set(conf) == {("car", 2), ("bus", 2), ("car", 300)}
    # k = 1 for both: the lone box scores 1/(2N); the dissent pushes "bus" below it
    assert conf["car", 300] == pytest.approx(1 / 6)
    assert 0.0 <= conf["bus", 2] < conf["car", 300] < conf["car", 2]
    # N identical boxes with one label still score 1.0 under the per-label quorum
    same = consolidate_boxes([[contested[0]]] * 3, quorum="label")
    assert same[0]["confidence"] == pytest.approx(1.0)


def test_two_workers_who_both_drew_an_object_twice_give_one_box() -> None:
    # equal clusters of the same two workers whose mean boxes are as close as their own
    # members are to each other: one object drawn twice by both, not two objects
    answers = [
        [bx(563, 413, 56, 73, "person"), bx(560, 416, 51, 68, "person")],
        [bx(559, 423, 55, 65, "person"), bx(562, 414, 48, 75, "person")],
        [],
    ]
    for quorum in ("box", "label"):
        out = consolidate_image(answers, settings=ConsolidationSettings(quorum=quorum))
        assert len(out.boxes) == 1, quorum
        assert sorted(w for w, _ in out.clusters[0]) == [0, 1]
        assert sorted((d["worker"], d["reason"]) for d in out.dropped) == [
            (0, "duplicate"),
            (1, "duplicate"),
        ]
    # the cluster drawn with more agreement stays: (0, 1) and (1, 1) agree at IoU 0.86
    kept = consolidate_image(answers).clusters[0]
    assert sorted(kept) == [(0, 1), (1, 1)]


@pytest.mark.parametrize("quorum", ["box", "label"])
def test_crowded_scene_on_and_off_the_pixel_grid_agree(quorum: Any) -> None:
    # whole-pixel answers sort on uint16 keys, fractional ones on floats; both orders
    # must be by left edge (the pair sweep relies on it): a quarter-pixel shift of a
    # crowded scene gives the same boxes, shifted
    crowd = simulate_crowd(
        images=2,
        boxes_per_image=80,
        skills=make_skills(5, seed=11, duplicate_rate=0.1, spurious_rate=0.05),
        labels=["car", "bus"],
        seed=11,
    )
    for img in crowd:
        shifted = [
            [{**b, "left": b["left"] + 0.25, "top": b["top"] - 0.25} for b in a]
            for a in img.answers
        ]
        whole = consolidate_boxes(img.answers, quorum=quorum)
        moved = consolidate_boxes(shifted, quorum=quorum)
        assert len(whole) >= 60
        assert [b["label"] for b in moved] == [b["label"] for b in whole]
        got = [v for b in moved for v in (b["left"] - 0.25, b["top"] + 0.25, b["width"])]
        assert got == pytest.approx([v for b in whole for v in (b["left"], b["top"], b["width"])])


def test_ejected_boxes_never_share_a_cluster_id_with_coherent_extras() -> None:
    # a coherent component's extra box (worker 0's second box at x=8) and a box ejected by
    # the greedy merge near x=103 used to get the same fresh cluster id and be fused
    b = lambda left, width: bx(left, 10, width, 20)  # noqa: E731
    answers = [
        [b(10, 20), b(8, 20), b(102, 12), b(104, 13)],
        [b(10, 20), b(103, 9)],
        [b(10, 20), b(106, 12), b(103, 20)],
    ]
    out = consolidate_image(answers)
    for members in out.clusters:
        workers = [w for w, _ in members]
        assert len(workers) == len(set(workers))
    assert [round(o["left"]) for o in out.boxes] == [10, 104]
    assert consolidate_boxes([answers[1], answers[0], answers[2]]) == consolidate_boxes(answers)


def test_output_order_is_free_of_worker_order_when_top_and_left_tie() -> None:
    b = lambda width, height: bx(0, 0, width, height)  # noqa: E731
    answers = [
        [b(10, 7)],
        [b(11, 11), b(5, 7)],
        [b(7, 12), b(8, 3), b(9, 8)],
        [b(4, 12), b(9, 10)],
        [b(6, 6), b(6, 5), b(12, 4)],
    ]
    out = consolidate_boxes(answers, min_support=1)
    assert len(out) >= 3
    assert consolidate_boxes(answers[::-1], min_support=1) == out


def test_unhashable_or_array_settings_are_validated_not_cached() -> None:
    answers = [[A], [A2]]
    same = consolidate_boxes(answers, iou_threshold=np.array(0.5))  # type: ignore[arg-type]
    assert same == consolidate_boxes(answers)
    with pytest.raises(ConsolidationError, match="fusion"):
        consolidate_boxes(answers, fusion=["mean"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("left", "width"), [(1e308, 1e308), (math.inf, -math.inf), (-1e308, -1e308)]
)
def test_edges_that_overflow_are_dropped_without_warnings(left: float, width: float) -> None:
    # pytest turns warnings into errors here: an overflowing right edge must neither warn
    # nor come out as an infinite box
    bad = {"label": "car", "left": left, "top": 0, "width": width, "height": 5}
    out = consolidate_image([[bad, A], [bad, A2]], settings=ConsolidationSettings(min_support=1))
    assert [round(b["left"]) for b in out.boxes] == [11]
    assert {(d["box"], d["reason"]) for d in out.dropped} <= {
        (0, "non-finite"),
        (0, "non-positive-size"),
    }
    assert len(out.dropped) == 2


@pytest.mark.parametrize("size", [1e160, 1e200, 1.7e308])
def test_boxes_too_large_to_measure_are_dropped_as_such(size: float) -> None:
    # their areas overflowed and their IoU came out NaN: three workers' identical boxes
    # were three "1 of 3 workers drew it" records, and nothing said why
    huge = bx(0, 0, size, size)
    out = consolidate_image([[huge, A], [huge, A2], [huge]])
    assert [round(b["left"]) for b in out.boxes] == [11]
    assert [(d["worker"], d["reason"]) for d in out.dropped] == [
        (w, "non-finite") for w in range(3)
    ]
    assert all("its area overflows a float" in d["detail"] for d in out.dropped)


@pytest.mark.parametrize("size", [None, {"width": 640, "height": 480}], ids=["no-size", "sized"])
@pytest.mark.parametrize(
    ("left", "width"), [(1e-200, 1e-200), (600.0, 1e-14)], ids=["tiny", "lost-in-rounding"]
)
def test_boxes_too_small_to_measure_are_dropped_as_such(
    left: float, width: float, size: dict[str, int] | None
) -> None:
    # areas underflowed and IoU came out 0 / 0 with a RuntimeWarning (an error here), or a
    # width lost against its left edge: three workers' identical boxes came out as "1 of 3
    # drew it", or with an image size as "entirely outside the image"
    tiny = bx(left, 10, width, width if left < 1 else 10)
    out = consolidate_image([[tiny, A], [tiny, A2], [tiny]], image_size=size)
    assert [round(b["left"]) for b in out.boxes] == [11]
    reasons = [(d["worker"], d["reason"]) for d in out.dropped]
    assert reasons == [(w, "non-positive-size") for w in range(3)]
    assert all("too small to measure there" in d["detail"] for d in out.dropped)


@pytest.mark.parametrize("left", [1e30, -1e30, 1e18])
def test_a_box_far_outside_the_image_is_outside_though_its_width_is_lost(left: float) -> None:
    # at 1e30 a width of 42 is lost in rounding: it was "too small to measure"
    far = bx(left, 0, 42, 38)
    for clip in (True, False):
        settings = ConsolidationSettings(clip=clip)
        out = consolidate_image(
            [[far], [far]], image_size={"width": 160, "height": 120}, settings=settings
        )
        assert {d["reason"] for d in out.dropped} == {"outside-image"}


@pytest.mark.parametrize("fusion", ["huber", "mean"])
def test_a_weight_vanishing_next_to_the_largest_counts_as_none(fusion: Fusion) -> None:
    # scaled to a largest of 1 it was a subnormal (about 5e-309): times a 2^-500 edge it fell
    # to 0, the fused box had width 0 (mean), and Huber divided 0 by 0 (a RuntimeWarning)
    box = bx(-1, 0, 2, 10)
    settings = ConsolidationSettings(min_support=1, fusion=fusion)
    size = {"width": 2.0**-500, "height": 20.0}
    weights = [1.0, 1.797e308, 0.5]
    out = consolidate_image([[box], [], [box]], image_size=size, weights=weights, settings=settings)
    assert [b["width"] for b in out.boxes] == [2.0**-500]
    zeroed = consolidate_image(
        [[box], [], [box]], image_size=size, weights=[0.0, 1.0, 0.0], settings=settings
    )
    assert out.boxes == zeroed.boxes


@settings(max_examples=60)
@given(st.integers(-480, 500), st.randoms(use_true_random=False))
def test_consolidation_scales_with_the_boxes(power: int, rnd: random.Random) -> None:
    # IoU is relative: boxes scaled by a power of two (exactly) cluster alike and give the
    # same boxes scaled, up to the largest size the engine measures (the mean: Huber's
    # iteration stops when no edge moves by 0.01 pixel, a fixed length)
    answers = _messy_scene(rnd)
    k = 2.0**power
    scaled = [
        [b | {c: b[c] * k for c in ("left", "top", "width", "height")} for b in a] for a in answers
    ]
    mean = ConsolidationSettings(min_support=1, fusion="mean")
    plain, big = consolidate_image(answers, settings=mean), consolidate_image(scaled, settings=mean)
    assert [b["confidence"] for b in big.boxes] == [b["confidence"] for b in plain.boxes]
    assert [b["left"] for b in big.boxes] == [b["left"] * k for b in plain.boxes]
    assert [b["height"] for b in big.boxes] == [b["height"] * k for b in plain.boxes]
    assert big.dropped == plain.dropped


def _messy_scene(rnd: random.Random) -> list[list[dict[str, Any]]]:
    """Groups of nearby objects, each drawn 1-3 times by every worker, with pixel jitter.

    Groups lie 100 px apart, so one image mixes clique, coherent and greedy components.
    """
    objects = [
        (100 * g + rnd.randint(0, 30), rnd.randint(0, 30), rnd.randint(6, 20), rnd.randint(6, 20))
        for g in range(rnd.randint(1, 3))
        for _ in range(rnd.randint(1, 3))
    ]
    j = rnd.choice([1, 2, 4])
    return [
        [
            bx(
                x + rnd.randint(-j, j),
                y + rnd.randint(-j, j),
                w + rnd.randint(-j, j),
                h + rnd.randint(-j, j),
                rnd.choice(["car", "car", "bus"]),
            )
            for x, y, w, h in objects
            for _ in range(rnd.choice([1, 2, 2, 3]))
        ]
        for _ in range(rnd.randint(1, 6))
    ]


def test_messy_scenes_keep_every_invariant() -> None:
    # overlapping objects drawn several times by every worker drive the greedy merge, the
    # coherent path and the second-box rules together; a seeded sweep of such scenes
    # checks what every answer must satisfy (this found a cluster-id collision that fused
    # unrelated boxes, and an output order that followed worker order)
    rnd = random.Random(2026)
    for _ in range(1500):
        answers = _messy_scene(rnd)
        kw: dict[str, Any] = {
            "iou_threshold": rnd.choice([0.3, 0.5, 0.7]),
            "min_support": rnd.choice([1, 2, None]),
            "quorum": rnd.choice(["box", "label"]),
            "fusion": rnd.choice(["mean", "median"]),
        }
        weights = rnd.choice([None, [rnd.choice([0.0, 0.5, 1.0, 2.0]) for _ in answers]])
        full = consolidate_image(answers, settings=ConsolidationSettings(**kw), weights=weights)
        boxes = consolidate_boxes(answers, weights=weights, **kw)
        assert full.boxes == boxes
        members = [m for cluster in full.clusters for m in cluster]
        dropped = [(d["worker"], d["box"]) for d in full.dropped]
        everything = {(w, b) for w, a in enumerate(answers) for b in range(len(a))}
        assert len(dropped) == len(set(dropped))
        assert set(members) | set(dropped) == everything  # no box lost
        assert not set(members) & set(dropped)
        if kw["quorum"] == "box":  # one box per worker per cluster, each box in one cluster
            assert len(members) == len(set(members))
            for cluster in full.clusters:
                assert len({w for w, _ in cluster}) == len(cluster)
        assert all(0.0 <= b["confidence"] <= 1.0 for b in boxes)
        order = list(range(len(answers)))
        rnd.shuffle(order)
        shuffled = [rnd.sample(answers[i], len(answers[i])) for i in order]
        moved = [weights[i] for i in order] if weights else None
        assert consolidate_boxes(shuffled, weights=moved, **kw) == boxes


@pytest.mark.parametrize("quorum", ["label", "box"])
def test_a_box_only_weightless_workers_drew_has_no_support(quorum: str) -> None:
    # rule 7: s is the members' share of the weight; fusion alone gives them equal weights
    answers = [[bx(100, 0, 10, 10)], [bx(50, 0, 10, 10), bx(101, 0, 10, 10)], [bx(50, 0, 10, 10)]]
    settings = ConsolidationSettings(quorum=quorum)  # type: ignore[arg-type]
    result = consolidate_image(answers, weights=[1.0, 0.0, 0.0], settings=settings)
    by_left = {round(b["left"]): b for b in result.boxes}
    assert set(by_left) == {50, 100}
    assert by_left[50]["confidence"] == 0.0 < by_left[100]["confidence"]


def test_agreement_counts_every_pair_of_a_cluster() -> None:
    # 0, 20 and 40 px apart: one cluster (each reaches the mean box), yet the outer pair's
    # IoU is below the threshold; q is the mean over all three pairs (rule 7)
    answers = [[bx(x, 0, 100, 100)] for x in (0, 20, 40)]
    (box,) = consolidate_image(answers, settings=ConsolidationSettings(quorum="box")).boxes
    iou = iou_matrix(xyxy_from_gt([a[0] for a in answers]), xyxy_from_gt([a[0] for a in answers]))
    q = (iou[0, 1] + iou[0, 2] + iou[1, 2]) / 3
    assert iou[0, 2] < 0.5
    assert box["confidence"] == pytest.approx((3 - (1 - q) / 2) / 3, abs=1e-12)


def test_weighted_workers_in_any_order_give_the_same_bits() -> None:
    answers = [[bx(0, 0, 10, 10)], [bx(1, 0, 10, 10)], [], [], []]
    weights = [0.1, 0.2, 0.3, 0.7, 0.9]
    settings = ConsolidationSettings(min_support=2)
    base = consolidate_image(answers, weights=weights, settings=settings).boxes
    for order in ((0, 1, 3, 4, 2), (4, 3, 2, 1, 0), (2, 0, 4, 1, 3)):
        moved = consolidate_image(
            [answers[i] for i in order], weights=[weights[i] for i in order], settings=settings
        ).boxes
        assert moved == base


@given(st.sampled_from([1e-300, 1e-3, 1.0, 1e150, 1e308]))
def test_only_the_ratio_of_the_weights_counts(scale: float) -> None:
    answers = [[bx(0, 0, 10, 10)], [bx(2, 1, 12, 10)], [bx(1, 0, 9, 11)], []]
    ratios = [1.0, 0.5, 0.25, 0.75]
    plain = consolidate_image(answers, weights=ratios).boxes
    scaled = consolidate_image(answers, weights=[r * scale for r in ratios]).boxes
    assert all(math.isfinite(v) for b in scaled for v in b.values() if isinstance(v, float))
    assert [b["label"] for b in scaled] == [b["label"] for b in plain]
    for a, b in zip(scaled, plain, strict=True):
        for key in ("left", "top", "width", "height", "confidence"):
            assert a[key] == pytest.approx(b[key], rel=1e-12)


@pytest.mark.parametrize(
    "size",
    [{"width": 0, "height": 10}, {"width": 10, "height": -1}, {"width": math.nan, "height": 10}],
    ids=["zero", "negative", "nan"],
)
def test_an_image_size_that_is_no_size_is_an_error_not_every_box_outside(
    size: dict[str, float],
) -> None:
    # before, every box was dropped as outside-image: the caller's mistake became lost labels
    with pytest.raises(ConsolidationError, match="image size must be positive and finite"):
        consolidate_image([[A], [A]], image_size=size)
    with pytest.raises(ConsolidationError, match="image size must be positive and finite"):
        consolidate_image([[A], [A]], image_size=size, settings=ConsolidationSettings(clip=False))


def test_a_box_on_an_image_too_small_to_measure_is_not_outside_it() -> None:
    # clipped to an image 1e-300 high, its height is under 2^-500: it was "entirely outside"
    box = bx(0, 0, 86.6, 43.5)
    out = consolidate_image([[box], [box]], image_size={"width": 3.0, "height": 1e-300})
    assert [d["reason"] for d in out.dropped] == ["non-positive-size"] * 2
