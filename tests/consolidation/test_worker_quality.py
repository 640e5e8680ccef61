from __future__ import annotations

import math
import random
import struct
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gt_toolkit.consolidation.engine import ConsolidationSettings, consolidate_image
from gt_toolkit.consolidation.worker_model import WorkerModel
from gt_toolkit.consolidation.worker_model import WorkerSkill as ModelSkill
from gt_toolkit.consolidation.worker_quality import (
    ExactSum,
    QualityAccumulator,
    WorkerQuality,
    quality_weights,
)
from gt_toolkit.testing.simulated_crowd import WorkerSkill, simulate_crowd


def test_quality_separates_good_from_sloppy_workers() -> None:
    skills = [
        WorkerSkill("good1", jitter=0.02, miss_rate=0.0, spurious_rate=0.0, duplicate_rate=0.0),
        WorkerSkill("good2", jitter=0.02, miss_rate=0.0, spurious_rate=0.0, duplicate_rate=0.0),
        WorkerSkill("good3", jitter=0.02, miss_rate=0.0, spurious_rate=0.0, duplicate_rate=0.0),
        WorkerSkill("sloppy", jitter=0.12, miss_rate=0.4, spurious_rate=0.3, loose=0.15),
    ]
    acc = QualityAccumulator()
    for img in simulate_crowd(images=30, boxes_per_image=6, skills=skills, seed=4):
        result = consolidate_image(img.answers, image_size=img.image_size)
        acc.add(
            img.worker_ids,
            img.answers,
            result,
            image_size=img.image_size,
            time_spent=img.time_spent,
        )
    q = {x.worker_id: x for x in acc.result()}
    assert set(q) == {"good1", "good2", "good3", "sloppy"}
    for name in ("good1", "good2", "good3"):
        assert q[name].recall > 0.95 and q[name].precision > 0.95
        assert q[name].mean_iou > q["sloppy"].mean_iou
        assert abs(q[name].size_bias) < 0.05
    assert q["sloppy"].recall < 0.8 and q["sloppy"].precision < q["good1"].precision
    assert q["sloppy"].size_bias > 0.1  # loose boxes
    assert q["good1"].images == 30 and q["good1"].mean_time_spent is not None
    w = quality_weights(acc.result())
    assert w["sloppy"] < min(w["good1"], w["good2"], w["good3"])
    assert quality_weights(acc.result(), min_images=100) == dict.fromkeys(q, 1.0)


def test_label_agreement_counts_wrong_labels() -> None:
    a = {"label": "car", "left": 0, "top": 0, "width": 10, "height": 10}
    b = dict(a, label="bus")
    answers = [[a], [a], [b]]
    acc = QualityAccumulator()
    acc.add(["w1", "w2", "w3"], answers, consolidate_image(answers))  # type: ignore[list-item]
    q = {x.worker_id: x for x in acc.result()}
    assert q["w3"].label_agreement == 0.0 and q["w1"].label_agreement == 1.0
    assert q["w3"].mean_time_spent is None


def test_label_quorum_credits_each_worker_with_their_own_label() -> None:
    # with quorum="label" and min_support=1 the object gets a car box and a bus box on the
    # same cluster; the bus worker matched the bus box, so their label agreement is 1.0
    a = {"label": "car", "left": 0, "top": 0, "width": 10, "height": 10}
    b = dict(a, label="bus")
    answers = [[a], [a], [b]]
    config = ConsolidationSettings(min_support=1, quorum="label")
    result = consolidate_image(answers, settings=config)  # type: ignore[arg-type]
    assert sorted(x["label"] for x in result.boxes) == ["bus", "car"]
    acc = QualityAccumulator()
    acc.add(["w1", "w2", "w3"], answers, result)  # type: ignore[arg-type]
    q = {x.worker_id: x for x in acc.result()}
    assert [q[w].label_agreement for w in ("w1", "w2", "w3")] == [1.0, 1.0, 1.0]
    assert [q[w].matched for w in ("w1", "w2", "w3")] == [1, 1, 1]
    assert [q[w].recall for w in ("w1", "w2", "w3")] == [1.0, 1.0, 1.0]  # one object


def test_a_worker_model_adds_its_columns_and_the_crowds_skills_for_strangers() -> None:
    box = {"label": "car", "left": 10, "top": 10, "width": 40, "height": 40}
    acc = QualityAccumulator()
    answers = [[box], [box], []]
    acc.add(["ana", "ben", "stranger"], answers, consolidate_image(answers))
    careful = ModelSkill(miss_rate=0.1, false_boxes=0.05, box_noise=0.1, box_bias=(-0.1, 0, 0.2, 0))
    crowd = ModelSkill(miss_rate=0.3, false_boxes=0.5, box_noise=0.2)
    model = WorkerModel({"ana": careful, "ben": careful}, crowd, 1.0, 50.0)

    plain = {q.worker_id: q for q in acc.result()}
    rows = {q.worker_id: q.to_json() for q in acc.result(model)}
    assert rows["ana"] == plain["ana"].to_json() | {
        "miss_rate": 0.1,
        "false_boxes": 0.05,
        "box_noise": 0.1,
        "bias_left": -0.1,
        "bias_top": 0,
        "bias_right": 0.2,
        "bias_bottom": 0,
    }
    assert (rows["stranger"]["miss_rate"], rows["stranger"]["box_noise"]) == (0.3, 0.2)
    assert rows["stranger"]["bias_right"] == 0.0  # the crowd's (default) bias
    assert list(plain["ana"].to_json()) == WorkerQuality.columns(with_model=False)
    assert list(rows["ana"]) == WorkerQuality.columns(with_model=True)


def test_recall_counts_objects_not_boxes() -> None:
    # one worker draws one object twice with two labels and both labels are kept: that is
    # one object found, so recall stays at most 1 (precision counts the boxes)
    def b(x: float, label: str) -> dict[str, Any]:
        return {"label": label, "left": x, "top": 0, "width": 100, "height": 100}

    answers = [[b(0, "car"), b(10, "dog")], [b(0, "car")], [b(2, "dog")]]
    settings = ConsolidationSettings(quorum="label", min_support=1)
    result = consolidate_image(answers, settings=settings)
    accumulator = QualityAccumulator()
    accumulator.add(["A", "B", "C"], answers, result)
    quality = {q.worker_id: q for q in accumulator.result()}
    assert quality["A"].matched == 2 and quality["A"].consensus_boxes == 1
    assert quality["A"].recall == 1.0 and quality["B"].recall == 1.0


def test_a_worker_who_rightly_drew_nothing_keeps_full_weight() -> None:
    # nothing matched is no IoU evidence: a mean IoU of 0 put them at the 0.1 floor
    box = {"label": "car", "left": 0, "top": 0, "width": 10, "height": 10}
    acc = QualityAccumulator()
    for _ in range(6):  # empty images: everyone drew nothing, rightly
        acc.add(["quiet", "busy", "other"], [[], [], []], consolidate_image([[], [], []]))
    for _ in range(6):  # "quiet" sees only empty images; the others also a car
        answers: list[list[Any]] = [[box], [box]]
        acc.add(["busy", "other"], answers, consolidate_image(answers))
    q = {x.worker_id: x for x in acc.result()}
    assert q["quiet"].matched == 0 and q["quiet"].recall == 1.0 and q["quiet"].precision == 1.0
    w = quality_weights(acc.result())
    assert w == {"quiet": 1.0, "busy": 1.0, "other": 1.0}
    # one who drew nothing where the others found a car still falls to the floor
    missed = QualityAccumulator()
    for _ in range(6):
        missed.add(["blind", "a", "b"], [[], [box], [box]], consolidate_image([[], [box], [box]]))
    assert quality_weights(missed.result())["blind"] == 0.1


def test_exact_sums_of_huge_finite_terms_are_exact_and_never_raise() -> None:
    # Shewchuk's float partials overflowed on finite terms: two times spent of 1e308 left
    # partials of -inf and inf, and reading them raised "ValueError: -inf + inf in fsum"
    # (a traceback in gt-convert agreement and consolidate); a third term made them NaN
    import math
    import random

    from gt_toolkit.consolidation.worker_quality import ExactSum

    terms = [1e308, 1e308, -1e308, 5e-324, -2.5, 1.7976931348623157e308, -1.7976931348623157e308]
    rng = random.Random(5)
    for _ in range(20):
        rng.shuffle(terms)
        one_by_one, at_once = ExactSum(), ExactSum()
        for t in terms:
            one_by_one.add(t)
        at_once.extend(terms)
        assert float(one_by_one) == float(at_once) == 1e308  # the exact sum, rounded once
    over = ExactSum()
    over.extend([1e308, 1e308])
    assert float(over) == math.inf  # beyond the largest float, as a running sum reads it
    under = ExactSum()
    under.extend([-1e308, -1e308])
    assert float(under) == -math.inf
    mixed = ExactSum()
    for t in (1e308, 1e308, -math.inf):
        mixed.add(t)
    assert math.isnan(float(mixed))  # inf - inf, as fsum's own terms
    small = [rng.uniform(-1, 1) * 10.0 ** rng.randint(-320, 300) for _ in range(300)]
    total = ExactSum()
    total.extend(small)
    assert float(total) == math.fsum(small)


def _mean_times(times: list[Any]) -> dict[str, float | None]:
    """Each of two workers' mean time spent, timed ``times[w]`` on each of two images."""
    skills = [
        WorkerSkill("a", jitter=0.02, miss_rate=0.0, spurious_rate=0.0, duplicate_rate=0.0),
        WorkerSkill("b", jitter=0.02, miss_rate=0.0, spurious_rate=0.0, duplicate_rate=0.0),
    ]
    acc = QualityAccumulator()
    for img in simulate_crowd(images=2, boxes_per_image=2, skills=skills, seed=1):
        result = consolidate_image(img.answers, image_size=img.image_size)
        acc.add(img.worker_ids, img.answers, result, time_spent=times)
    return {x.worker_id: x.mean_time_spent for x in acc.result()}


def test_a_worker_timed_at_1e308_twice_gets_a_mean_not_a_traceback() -> None:
    assert _mean_times([1e308, 2.0]) == {"a": 1e308, "b": 2.0}


def test_a_time_spent_past_the_float_range_counts_as_none_not_a_traceback() -> None:
    # an int of 10**400 seconds (the API takes any number) made math.isfinite raise
    # OverflowError out of QualityAccumulator.add; an infinity was already left out
    assert _mean_times([10**400, 2.0]) == {"a": None, "b": 2.0}


_BIG = 1.7976931348623157e308  # the largest float
_TERMS = st.one_of(
    st.floats(),  # NaN and the infinities too
    st.sampled_from([_BIG, -_BIG, 1e308, -1e308, 1.0, -0.0, 5e-324, math.inf, -math.inf]),
)


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def test_one_extend_adds_the_same_in_any_order_of_its_terms() -> None:
    # fsum's partials overflow on some orders of finite terms and not on others: the order
    # that raised was added term by term, exactly (1 + M + M - M), the other as fsum's
    # rounded M, so the same image's terms in two orders left 1.0 and 0.0 after a - M
    reads = set()
    for part in ([1.0, _BIG, _BIG, -_BIG], [-_BIG, _BIG, _BIG, 1.0]):
        total = ExactSum()
        total.extend(part)
        total.add(-_BIG)
        reads.add(_bits(float(total)))
    assert reads == {_bits(0.0)}  # the part's sum rounded once: M, then M - M


def test_a_nan_sum_reads_as_one_nan_in_any_order() -> None:
    # inf - inf and nan + x carry a sign bit that depends on the order of the terms: the
    # property test below found -nan in one order and nan in another (a flaky CI run)
    parts = [
        [1.0, -1.1e16, math.nan, math.inf, -1e308],
        [_BIG],
        [-1e308, math.inf, -math.inf, _BIG],
    ]
    rnd = random.Random(0)
    reads = set()
    for _ in range(200):
        total = ExactSum()
        for part in rnd.sample(parts, len(parts)):
            total.extend(rnd.sample(part, len(part)))
        reads.add((_bits(float(total)), _bits(total.mean(3))))
    assert reads == {(_bits(math.nan), _bits(math.nan))}


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(st.lists(_TERMS, max_size=6), max_size=4), rnd=st.randoms())
def test_extend_reads_the_same_in_any_order_of_parts_and_terms(
    parts: list[list[float]], rnd: random.Random
) -> None:
    def read(parts: list[list[float]]) -> tuple[bytes, bytes]:
        total = ExactSum()
        for part in parts:
            total.extend(part)
        return _bits(float(total)), _bits(total.mean(3))

    shuffled = [rnd.sample(part, len(part)) for part in parts]
    rnd.shuffle(shuffled)
    assert read(parts) == read(shuffled)
    if all(math.isfinite(x) for part in parts for x in part):
        # each part's exact sum rounded once (as fsum, where its partials do not overflow)
        try:
            rounded = [float(sum(map(Fraction, part), Fraction(0))) for part in parts]
            want = float(sum(map(Fraction, rounded), Fraction(0)))
        except OverflowError:  # a part or the whole beyond the largest float
            return
        assert read(parts)[0] == _bits(want)
