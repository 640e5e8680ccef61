"""consolidate_images and consolidate_boxes_batch: each image's result is its own, bit for bit."""

from __future__ import annotations

import dataclasses
import pickle
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
    consolidate_boxes_batch,
    consolidate_image,
    consolidate_images,
)
from gt_toolkit.consolidation import clean, engine, geometry
from gt_toolkit.consolidation.worker_model import fit_worker_model
from gt_toolkit.testing.simulated_crowd import CrowdImage, make_skills, simulate_crowd

LABELS = ("car", "bus", "van")
DEFAULTS = ConsolidationSettings()


def bx(left: float, top: float, width: float, height: float, label: str = "car") -> dict[str, Any]:
    return {"label": label, "left": left, "top": top, "width": width, "height": height}


def same(a: Any, b: Any) -> bool:
    """Equal to the last bit (``==`` would call ``0.0`` and ``-0.0`` equal)."""
    return pickle.dumps(dataclasses.astuple(a)) == pickle.dumps(dataclasses.astuple(b))


def crowd(workers: int, boxes: int, images: int, seed: int) -> list[CrowdImage]:
    skills = make_skills(
        workers, seed=seed, spurious_rate=0.08, duplicate_rate=0.06, wrong_label_rate=0.1
    )
    return simulate_crowd(
        images=images, boxes_per_image=boxes, skills=skills, labels=LABELS, seed=seed
    )


def check_each(
    images: list[Any],
    setting: ConsolidationSettings = DEFAULTS,
    **kwargs: Any,
) -> int:
    """Assert the batch gives each image's own result; return how many images went together."""
    together = 0
    original = engine._decide_together

    def counting(*args: Any) -> Any:
        nonlocal together
        together += len(args[2])
        return original(*args)

    engine._decide_together = counting  # type: ignore[assignment]
    try:
        got = consolidate_images(images, settings=setting, **kwargs)
    finally:
        engine._decide_together = original  # type: ignore[assignment]
    sizes = kwargs.get("image_sizes") or [None] * len(images)
    weights = kwargs.get("weights") or [None] * len(images)
    annotators = kwargs.get("annotators") or [None] * len(images)
    for k, answers in enumerate(images):
        alone = consolidate_image(
            answers,
            settings=setting,
            labels=kwargs.get("labels"),
            image_size=sizes[k],
            weights=weights[k],
            worker_model=kwargs.get("worker_model"),
            annotators=annotators[k],
        )
        assert same(got[k], alone), (k, got[k], alone)
    return together


SETTINGS = [
    ConsolidationSettings(),
    ConsolidationSettings(quorum="box"),
    ConsolidationSettings(min_support=1),
    ConsolidationSettings(fusion="mean"),
    ConsolidationSettings(fusion="median"),
    ConsolidationSettings(clip=False),
    ConsolidationSettings(iou_threshold=0.3, duplicate_iou=0.5),
    ConsolidationSettings(iou_threshold=1.0),
]


@pytest.mark.parametrize("setting", SETTINGS, ids=repr)
@pytest.mark.parametrize(("workers", "boxes"), [(1, 5), (2, 3), (3, 1), (3, 30), (5, 10), (9, 4)])
def test_each_image_gets_its_own_result(
    setting: ConsolidationSettings, workers: int, boxes: int
) -> None:
    images = crowd(workers, boxes, 12, seed=workers * 100 + boxes)
    answers = [img.answers for img in images]
    # a worker fewer on some images, and an image nobody answered: counts differ per image
    answers = [a if k % 3 else a[: max(1, len(a) - 1)] for k, a in enumerate(answers)] + [[]]
    sizes = [img.image_size for img in images] + [None]
    for labels in (None, LABELS):
        together = check_each(answers, setting, labels=labels, image_sizes=sizes)
        assert together >= 6  # most of them went through the phases together
    # "bus" boxes dropped as off the list: those images go alone, the others together
    check_each(answers, setting, labels=("van", "car"), image_sizes=sizes)
    w = random.Random(workers)
    weights = [[w.choice((0.0, 0.5, 1.0, 3.7)) for _ in a] for a in answers]
    check_each(answers, setting, labels=LABELS, image_sizes=sizes, weights=weights)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    workers=st.integers(1, 6),
    boxes=st.lists(st.integers(0, 40), min_size=2, max_size=8),
    sized=st.lists(st.booleans(), min_size=1, max_size=3),
    labels=st.sampled_from([None, LABELS, ("bus",)]),
    quorum=st.sampled_from(["label", "box"]),
    threshold=st.sampled_from([0.3, 0.5, 0.9]),
)
def test_any_mix_of_images_gets_their_own_results(
    seed: int,
    workers: int,
    boxes: list[int],
    sized: list[bool],
    labels: tuple[str, ...] | None,
    quorum: Any,
    threshold: float,
) -> None:
    skills = make_skills(workers, seed=seed, spurious_rate=0.1, duplicate_rate=0.1)
    images = simulate_crowd(
        images=len(boxes), boxes_per_image=boxes, skills=skills, labels=LABELS, seed=seed
    )
    sizes = [img.image_size if sized[k % len(sized)] else None for k, img in enumerate(images)]
    setting = ConsolidationSettings(quorum=quorum, iou_threshold=threshold)
    check_each([img.answers for img in images], setting, labels=labels, image_sizes=sizes)


def test_unusual_images_beside_usual_ones_get_their_own_results() -> None:
    usual = [img.answers for img in crowd(3, 20, 6, seed=4)]
    size = {"width": 1000, "height": 800}
    dense = [[bx(i % 7, i % 5, 300, 300, LABELS[i % 2]) for i in range(60)] for _ in range(3)]
    images = [
        *usual[:2],
        [[bx(10.5, 10, 40, 40)], [bx(11, 10, 40, 40)]],  # off the pixel grid
        [[bx(10, 10, -4, 40), bx(30, 30, 10, 10)], [bx(30, 30, 10, 10)]],  # an invalid box
        [[bx(10, 10, 40, 40, "truck")], [bx(11, 10, 40, 40, "truck")]],  # a label off the list
        dense,  # so many overlaps that one image alone would cut it into bands
        [[bx(5, 5, 20, 20)]] * 3,  # identical workers: equal boxes ordered by worker rank
        [[bx(5, 5, 20, 20, "bus")], [bx(5, 5, 20, 20, "bus")], []],  # one label only
        [[], [], []],  # nobody drew anything
        *usual[2:],
    ]
    assert check_each(images, labels=None, image_sizes=[size] * len(images)) >= 4
    # the same with the label list: the off-list label and the invalid box are dropped alone
    check_each(images, labels=LABELS, image_sizes=[size] * len(images))


def test_images_of_many_boxes_go_alone_and_keep_their_results() -> None:
    big = [img.answers for img in crowd(3, 300, 2, seed=9)]  # ~900 boxes an image
    small = [img.answers for img in crowd(3, 5, 3, seed=10)]
    images = [small[0], big[0], small[1], small[2], big[1]]
    assert check_each(images, labels=LABELS) == 2  # the two small ones between the big ones


@pytest.mark.parametrize("setting", SETTINGS[:3], ids=repr)
def test_images_of_some_hundred_boxes_go_together_and_keep_their_results(
    setting: ConsolidationSettings,
) -> None:
    # 400-500 boxes an image: past the count from which a search first asks whether an
    # image needs bands, below the one from which it goes alone
    sparse = [img.answers for img in crowd(5, 90, 4, seed=11)]
    dense = [
        [[bx(i % 13, i % 11, 400, 400, LABELS[i % 2]) for i in range(w, 420, 3)] for w in range(3)]
    ]  # so many overlaps that the image is cut into bands
    wide = [
        [[bx(20 * i + w, 5 + i % 4, 15, 30, LABELS[i % 2]) for i in range(150)] for w in range(3)]
    ]  # a row of objects: a few candidates a box, so the shared x-sweep serves it
    images = [sparse[0], sparse[1], *dense, sparse[2], *wide, sparse[3]]
    counts = [sum(map(len, a)) for a in images]
    assert min(counts) > geometry._BOUND_FROM and max(counts) < engine._ALONE_FROM, counts
    assert check_each(images, setting, labels=LABELS) == len(images)


def test_boxes_batch_is_consolidate_boxes_of_each_image() -> None:
    images = crowd(3, 15, 10, seed=3)
    answers = [img.answers for img in images]
    sizes = [img.image_size for img in images]
    got = consolidate_boxes_batch(answers, labels=LABELS, image_sizes=sizes, fusion="mean")
    want = [
        consolidate_boxes(a, labels=LABELS, image_size=s, fusion="mean")
        for a, s in zip(answers, sizes, strict=True)
    ]
    assert pickle.dumps(got) == pickle.dumps(want)
    assert sum(map(len, got)) > 50


@pytest.mark.parametrize("keep", ["quorum", "model"])
@pytest.mark.parametrize("quorum", ["label", "box"])
@pytest.mark.parametrize("sized", [True, False])
@pytest.mark.parametrize(("workers", "boxes"), [(2, 3), (4, 10), (7, 25)])
def test_with_a_worker_model_each_image_gets_its_own_result(
    keep: Any, quorum: Any, sized: bool, workers: int, boxes: int
) -> None:
    images = crowd(workers, boxes, 10, seed=workers * 10 + boxes)
    model = fit_worker_model(
        (img.as_source_image(str(k)) for k, img in enumerate(images)), labels=LABELS
    )
    answers = [img.answers for img in images]
    names = [img.worker_ids for img in images]
    # a worker fewer on some images: each image's evidence is its own annotators'
    answers = [a if k % 3 else a[1:] for k, a in enumerate(answers)]
    names = [n if k % 3 else n[1:] for k, n in enumerate(names)]
    sizes = [img.image_size if sized else None for img in images]
    setting = ConsolidationSettings(keep=keep, quorum=quorum)
    for labels in (LABELS, None):
        together = check_each(
            answers,
            setting,
            labels=labels,
            image_sizes=sizes,
            worker_model=model,
            annotators=names,
        )
        assert together >= 6


def test_a_worker_models_wrong_arguments_raise_as_for_the_image_alone() -> None:
    images = crowd(3, 5, 4, seed=8)
    model = fit_worker_model(
        (img.as_source_image(str(k)) for k, img in enumerate(images)), labels=LABELS
    )
    answers = [img.answers for img in images]
    names = [img.worker_ids for img in images]
    with pytest.raises(ConsolidationError, match="one annotator id per answer: got 2 for 3"):
        consolidate_images(
            answers, worker_model=model, annotators=[*names[:2], names[2][:2], names[3]]
        )
    with pytest.raises(ConsolidationError, match="give weights or a worker model, not both"):
        consolidate_images(
            answers, worker_model=model, annotators=names, weights=[None, [1.0] * 3, None, None]
        )
    with pytest.raises(ConsolidationError, match='keep="model" needs a worker_model'):
        consolidate_images(answers, settings=ConsolidationSettings(keep="model"))


def test_a_worker_models_error_on_a_later_image_comes_after_the_earlier_images_own() -> None:
    """The evidence of every image is built before any image is consolidated, and only a
    ConsolidationError there went back to one image at a time: an annotator list of None
    raised TypeError (alone: "needs one annotator id per answer"), and a later image whose
    evidence raises (a hand-made model, miss rates 0 and inf) came before an earlier
    image's own mistake (a string for an answer)."""
    images = crowd(3, 5, 3, seed=9)
    model = fit_worker_model(
        (img.as_source_image(str(k)) for k, img in enumerate(images)), labels=LABELS
    )
    answers = [img.answers for img in images]
    names: list[Any] = [img.worker_ids for img in images]
    with pytest.raises(ConsolidationError, match="one annotator id per answer: got no for 3"):
        consolidate_image(answers[1], worker_model=model, annotators=None)
    with pytest.raises(ConsolidationError, match="one annotator id per answer: got no for 3"):
        consolidate_images(answers, worker_model=model, annotators=[names[0], None, names[2]])
    first, second = names[0][:2]
    workers = dict(model.workers)
    workers[first] = dataclasses.replace(workers[first], miss_rate=0.0)
    workers[second] = dataclasses.replace(workers[second], miss_rate=float("inf"))
    broken = dataclasses.replace(model, workers=workers)
    mistake = [*answers[0][:2], "boxes"]
    with np.errstate(all="ignore"), pytest.raises(ValueError, match="in fsum"):
        consolidate_image(answers[1], worker_model=broken, annotators=names[1])
    with np.errstate(all="ignore"), pytest.raises(ConsolidationError, match="answer 2 is str"):
        consolidate_images(
            [mistake, answers[1]],
            worker_model=broken,
            annotators=[["someone", "else", names[0][2]], names[1]],
        )


def test_a_callers_mistake_in_one_image_raises_as_for_that_image_alone() -> None:
    good = [[bx(10, 10, 40, 40)], [bx(11, 10, 40, 40)]]
    with pytest.raises(ConsolidationError, match="answer 1 is str"):
        consolidate_images([good, [[bx(1, 1, 5, 5)], "boxes"], good])
    with pytest.raises(ConsolidationError, match="image size must be positive"):
        consolidate_images(
            [good, good], image_sizes=[{"width": 10, "height": 10}, {"width": 0, "height": 5}]
        )
    with pytest.raises(ConsolidationError, match="got 1 image sizes for 2 images"):
        consolidate_images([good, good], image_sizes=[None])
    with pytest.raises(ConsolidationError, match="got 3 weights for 2 workers"):
        consolidate_images([good, good], weights=[None, [1.0, 1.0, 1.0]])


def test_clean_together_declines_what_it_cannot_do_bit_for_bit() -> None:
    setting = ConsolidationSettings()
    on_grid = [[bx(10, 10, 40, 40)], [bx(11, 10, 40, 40)]]
    off_grid = [[bx(10.25, 10, 40, 40)], [bx(11, 10, 40, 40)]]
    invalid = [[bx(10, 10, 0, 40)], [bx(11, 10, 40, 40)]]
    many = [[bx(i, i, 5, 5, f"L{i}") for i in range(300)]]
    sized = {"width": 100, "height": 100}
    images = [on_grid, off_grid, on_grid, invalid, on_grid]
    weights = [[1.0] * len(a) for a in images]
    together = clean.clean_together(images, None, [None] * 5, weights, setting)
    assert together is not None
    assert together.members == [0, 2, 4]  # the others are cleaned alone
    assert together.bounds == [0, 2, 4, 6]
    assert together.clean.worker.tolist() == [0, 1, 2, 3, 4, 5]
    for images, sizes in (
        ([on_grid, off_grid], [None, None]),  # one image left
        ([on_grid, on_grid], [sized, None]),  # sized and not
        ([on_grid, many], [None, None]),  # over 256 labels
    ):
        weights = [[1.0] * len(a) for a in images]
        assert clean.clean_together(images, None, sizes, weights, setting) is None


def test_images_without_boxes_beside_one_whose_boxes_all_go_get_their_own_results() -> None:
    # the box off the label list leaves its image to go alone; the two images left drew
    # nothing (answers, no boxes): clean_together once went on with no boxes and crashed
    # ("zero-size array to reduction operation minimum")
    images: list[Any] = [[[]], [[]], [[bx(0, 0, 1, 1, "bus")]]]
    for labels in (("car",), None):
        check_each(images, labels=labels)
        check_each(images, ConsolidationSettings(clip=False), labels=labels)
    off_grid: list[Any] = [[[], []], [[bx(0.5, 0, 1, 1)], [bx(0.5, 0, 1, 1)]], [[]]]
    check_each(off_grid)
    got = consolidate_boxes_batch([[[]], [[]], [[bx(0, 0, 1, 1, "bus")]]], labels=["car"])
    assert got == [[], [], []]


def test_a_batch_with_one_box_in_all_gives_that_box_its_label() -> None:
    # one label to look up: itemgetter of one name gives the code, not a tuple of codes,
    # and bytes() of a code is that many zero bytes; the pass must still read one code
    images: list[Any] = [[[bx(3, 4, 5, 6, "bus")]], [[]], [[], []]]
    together = clean.clean_together(images, LABELS, [None] * 3, [[1.0]] * 3, DEFAULTS)
    assert together is not None
    assert together.clean.code.tolist() == [0]
    assert together.clean.labels == ("bus",)
    assert check_each(images, labels=LABELS) == 3


def test_an_earlier_images_mistake_is_raised_before_a_later_images_weights() -> None:
    # one by one, the str answers of image 1 raise before image 2's wrong weight count;
    # the batch once checked every image's weights first and raised image 2's error
    good = [[bx(10, 10, 40, 40)], [bx(11, 10, 40, 40)]]
    with pytest.raises(ConsolidationError, match="answer 0 is str"):
        consolidate_image("xx")  # type: ignore[arg-type]
    for weights in ([None, None, [1.0]], [[1.0, 1.0], None, [1.0]]):
        with pytest.raises(ConsolidationError, match="answer 0 is str"):
            consolidate_images([good, "xx", good], weights=weights)  # type: ignore[list-item]
        with pytest.raises(ConsolidationError, match="answer 0 is str"):
            consolidate_boxes_batch([good, "xx", good], weights=weights)  # type: ignore[list-item]
    # and the first image's wrong weights still come first
    with pytest.raises(ConsolidationError, match="got 1 weights for 2 workers"):
        consolidate_images([good, "xx"], weights=[[1.0], None])  # type: ignore[list-item]


_COORD = st.one_of(
    st.integers(0, 30), st.sampled_from([-0.0, -3, 65534, 65535, 65536, 1e-300, 2.5, 1e300])
)
_SIDE = st.one_of(st.integers(1, 30), st.sampled_from([0, -0.0, 65535, 65536, 0.5, 1e-300]))
_BOX = st.builds(bx, _COORD, _COORD, _SIDE, _SIDE, st.sampled_from(["car", "bus", "Bus", "é"]))


@settings(max_examples=60, deadline=None)
@given(
    images=st.lists(st.lists(st.lists(_BOX, max_size=4), max_size=4), min_size=2, max_size=6),
    labels=st.sampled_from([None, LABELS, ("van",), ("é", "Bus", "car")]),
    clip=st.booleans(),
    sized=st.booleans(),
    weighted=st.booleans(),
    fusion=st.sampled_from(["huber", "mean", "median"]),
    quorum=st.sampled_from(["label", "box"]),
)
def test_hand_made_boxes_at_the_edges_get_their_own_results(
    images: list[Any],
    labels: tuple[str, ...] | None,
    clip: bool,
    sized: bool,
    weighted: bool,
    fusion: Any,
    quorum: Any,
) -> None:
    # off the grid, off the image, negative, empty, duplicated and off-list boxes beside
    # whole-pixel ones, answers without boxes: whatever goes alone or together, each
    # image's result is its own
    setting = ConsolidationSettings(clip=clip, fusion=fusion, quorum=quorum)
    sizes = [{"width": 20, "height": 25} if sized else None for _ in images]
    weights = [[float(w % 3) for w in range(len(a))] for a in images] if weighted else None
    check_each(images, setting, labels=labels, image_sizes=sizes, weights=weights)
