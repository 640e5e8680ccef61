from __future__ import annotations

import random
from typing import Any

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_toolkit.consolidation.polygons import consolidate_polygons, polygon_iou
from gt_toolkit.errors import ConsolidationError


def sq(x: float, y: float, s: float, label: str = "roof") -> dict[str, Any]:
    return {
        "label": label,
        "vertices": [
            {"x": x, "y": y},
            {"x": x + s, "y": y},
            {"x": x + s, "y": y + s},
            {"x": x, "y": y + s},
        ],
    }


def poly(points: list[tuple[Any, Any]], label: str = "roof") -> dict[str, Any]:
    return {"label": label, "vertices": [{"x": x, "y": y} for x, y in points]}


def shape_of(p: dict[str, Any]) -> shapely.Polygon:
    return shapely.Polygon([(v["x"], v["y"]) for v in p["vertices"]])


def test_polygons_cluster_vote_and_medoid() -> None:
    answers = [[sq(0, 0, 10)], [sq(1, 0, 10)], [sq(0, 1, 10, "shed"), sq(40, 40, 5)], []]
    out = consolidate_polygons(answers, image_size={"width": 50, "height": 50})
    assert len(out.polygons) == 1
    p = out.polygons[0]
    assert p["label"] == "roof"
    # medoid: the member with the highest mean IoU to the others is the square at (0, 0)
    assert shapely.Polygon([(v["x"], v["y"]) for v in p["vertices"]]).equals(
        shapely.box(0, 0, 10, 10)
    )
    assert 0 < p["confidence"] < 1
    assert out.clusters == [[(0, 0), (1, 0), (2, 0)]]
    assert [d["reason"] for d in out.dropped] == ["below-min-support"]


def test_bow_tie_is_repaired_and_dirty_input_recorded() -> None:
    bow = {
        "label": "roof",
        "vertices": [{"x": 0, "y": 0}, {"x": 10, "y": 10}, {"x": 10, "y": 0}, {"x": 0, "y": 10}],
    }
    bad = [
        {"label": "roof", "vertices": [{"x": 0, "y": 0}]},
        {"label": "roof", "vertices": "x"},
        sq(100, 100, 5),
        "junk",
        sq(0, 0, 5, ""),
    ]
    out = consolidate_polygons([[bow, *bad]], image_size={"width": 50, "height": 50})
    assert len(out.polygons) == 2  # the two triangles the repair makes
    assert all(p["confidence"] == 0.0 and shape_of(p).is_valid for p in out.polygons)
    assert sorted(d["reason"] for d in out.dropped) == [
        "malformed",
        "malformed",
        "missing-label",
        "non-positive-size",
        "outside-image",
    ]


def test_polygon_permutation_invariance() -> None:
    rnd = random.Random(5)
    answers = [
        [
            sq(rnd.randint(0, 3), rnd.randint(0, 3), 10, rnd.choice("ab")),
            sq(30 + rnd.randint(0, 2), 30, 8),
        ]
        for _ in range(5)
    ]
    expected = consolidate_polygons(answers).polygons
    for _ in range(5):
        shuffled = [rnd.sample(a, len(a)) for a in answers]
        rnd.shuffle(shuffled)
        assert consolidate_polygons(shuffled).polygons == expected


def test_polygon_iou_and_settings() -> None:
    assert polygon_iou(shapely.box(0, 0, 2, 2), shapely.box(1, 0, 3, 2)) == pytest.approx(1 / 3)
    assert polygon_iou(shapely.Polygon(), shapely.Polygon()) == 0.0
    with pytest.raises(ConsolidationError):
        consolidate_polygons([], iou_threshold=0)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (poly([(0, 0), (10**400, 0), (0, 5)]), "non-finite"),  # int too large for a float
        (poly([(0, 0), (1e200, 0), (1e200, 1e200), (0, 1e200)]), "non-finite"),  # area overflows
        (poly([(0, 0), ("inf", 0), (0, 5)]), "non-finite"),
        ({"label": "roof"}, "malformed"),
        ({"label": "roof", "vertices": None}, "malformed"),
        ({"label": "roof", "vertices": {}}, "malformed"),
        ({"label": "roof", "vertices": "xyz"}, "malformed"),
        ({"label": "roof", "vertices": [[0, 0], [5, 0], [0, 5]]}, "malformed"),
        (poly([(0, 0), (5, 0)]), "non-positive-size"),
        (poly([(0, 0), (5, 5), (10, 10)]), "non-positive-size"),  # make_valid gives a line
        (poly([(0, 0), (0, 0), (0, 0), (0, 0)]), "non-positive-size"),  # a point
        ({"label": None, "vertices": sq(0, 0, 5)["vertices"]}, "missing-label"),
        ({"label": 5, "vertices": sq(0, 0, 5)["vertices"]}, "missing-label"),
    ],
)
def test_hostile_polygon_is_dropped_with_its_reason(raw: Any, reason: str) -> None:
    out = consolidate_polygons([[raw], [sq(0, 0, 5)]], min_support=1)
    assert [(d["worker"], d["box"], d["reason"]) for d in out.dropped] == [(0, 0, reason)]
    assert len(out.polygons) == 1


def test_repeated_polygon_of_one_worker_is_a_duplicate() -> None:
    twice = [sq(0, 0, 10), sq(0, 0, 10), sq(0.1, 0, 10), sq(0, 0, 10, "shed")]
    out = consolidate_polygons([twice], min_support=1)
    assert sorted(p["label"] for p in out.polygons) == ["roof", "shed"]
    assert sorted((d["box"], d["reason"]) for d in out.dropped) == [
        (1, "duplicate"),
        (2, "duplicate"),
    ]


def test_repaired_multipolygon_keeps_every_part() -> None:
    bow = poly([(0, 0), (10, 10), (10, 0), (0, 10)])  # make_valid: two triangles
    out = consolidate_polygons([[bow], [bow]])
    parts = [shape_of(p) for p in out.polygons]
    assert len(parts) == 2 and all(p.is_valid for p in parts)
    assert shapely.union_all(parts).equals(shapely.make_valid(shape_of(bow)))
    assert out.clusters == [[(0, 0), (1, 0)], [(0, 0), (1, 0)]]  # one members list per part
    assert len({p["confidence"] for p in out.polygons}) == 1


def test_clipping_that_splits_a_polygon_keeps_both_pieces() -> None:
    u = poly([(0, 30), (30, 30), (30, 0), (20, 0), (20, 20), (10, 20), (10, 0), (0, 0)])
    out = consolidate_polygons([[u]], image_size={"width": 40, "height": 15})
    assert [shape_of(p).bounds for p in out.polygons] == [(0, 0, 10, 15), (20, 0, 30, 15)]


_COORD = st.one_of(st.integers(-5, 30), st.floats(-5, 30, allow_nan=False))
_BASES = [
    [(0, 0), (10, 0), (10, 10), (0, 10)],
    [(5, 5), (15, 5), (10, 14)],
    [(0, 0), (10, 10), (10, 0), (0, 10)],  # a bow-tie
    [(20, 20), (30, 20), (30, 30), (20, 30), (25, 25)],  # a repeated-looking spike
]


@st.composite
def _polygon(draw: st.DrawFn) -> Any:
    """A crowd-polygon answer: near copies of a few shapes (to make clusters and ties),
    random rings, and now and then a broken one."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.sampled_from(["junk", {"label": "a"}, poly([(0, 0), (1, 1)], "a")]))
    label = draw(st.sampled_from(["a", "b"]))
    if kind == 1:
        return poly(draw(st.lists(st.tuples(_COORD, _COORD), min_size=3, max_size=6)), label)
    base = draw(st.sampled_from(_BASES))
    dx, dy = draw(st.sampled_from([0, 0.5, 2])), draw(st.sampled_from([0, -1, 1]))
    start = draw(st.integers(0, len(base) - 1))
    return poly([(x + dx, y + dy) for x, y in base[start:] + base[:start]], label)


def _canonical(raw: Any) -> tuple[str, str]:
    """What tells two input polygons apart for the algorithm (label and repaired shape)."""
    if not isinstance(raw, dict) or len(raw.get("vertices") or ()) < 3:
        return ("", repr(raw))
    shape = shapely.make_valid(shape_of(raw))
    return (str(raw["label"]), shapely.normalize(shape).wkt)


@settings(max_examples=150, deadline=None)
@given(
    answers=st.lists(st.lists(_polygon(), max_size=4), max_size=5),
    rnd=st.randoms(use_true_random=False),
    min_support=st.sampled_from([None, 1, 2]),
    image_size=st.sampled_from([None, {"width": 25, "height": 25}]),
)
def test_polygons_invariants(
    answers: list[list[Any]],
    rnd: random.Random,
    min_support: int | None,
    image_size: Any,
) -> None:
    """Any worker and polygon order gives the same output; confidence is in [0, 1]; every
    input polygon is in a kept cluster or in ``dropped``, never both, never neither."""
    out = consolidate_polygons(answers, min_support=min_support, image_size=image_size)
    members = {wb for group in out.clusters for wb in group}
    dropped = [(d["worker"], d["box"]) for d in out.dropped]
    every = {(w, b) for w, polys in enumerate(answers) for b in range(len(polys))}
    assert len(dropped) == len(set(dropped)) and not members & set(dropped)
    assert members | set(dropped) == every
    assert all(0.0 <= p["confidence"] <= 1.0 for p in out.polygons)

    order = rnd.sample(range(len(answers)), len(answers))
    shuffled = [rnd.sample(answers[w], len(answers[w])) for w in order]
    again = consolidate_polygons(shuffled, min_support=min_support, image_size=image_size)
    assert again.polygons == out.polygons

    # identical inputs are interchangeable, so members are compared by what they are
    def who(ans: list[list[Any]], group: list[tuple[int, int]]) -> list[tuple[str, str]]:
        return sorted(_canonical(ans[w][b]) for w, b in group)

    assert [who(shuffled, g) for g in again.clusters] == [who(answers, g) for g in out.clusters]
    assert sorted(
        (_canonical(shuffled[d["worker"]][d["box"]]), d["reason"]) for d in again.dropped
    ) == sorted((_canonical(answers[d["worker"]][d["box"]]), d["reason"]) for d in out.dropped)


def test_polygon_confidence_is_the_box_formula() -> None:
    """docs/consolidation.md rule 7: support ranks first, agreement second."""
    loose = [sq(0, 0, 10), sq(2, 0, 10), sq(1, 2, 10)]  # three workers, mean IoU < 1
    answers = [[loose[0], sq(50, 50, 10)], [loose[1], sq(50, 50, 10)], [loose[2]], []]
    drawn_by_three, drawn_by_two = sorted(
        consolidate_polygons(answers, min_support=2).polygons, key=lambda p: p["vertices"][0]["x"]
    )
    assert drawn_by_three["confidence"] > drawn_by_two["confidence"] == pytest.approx(2 / 4)
    lone = consolidate_polygons([[sq(0, 0, 10)], [], []], min_support=1).polygons
    assert [p["confidence"] for p in lone] == [pytest.approx(1 / 6)]  # 1 / (2N)
    everyone = consolidate_polygons([[sq(0, 0, 10)]] * 3).polygons
    assert [p["confidence"] for p in everyone] == [pytest.approx(1.0)]


def test_an_image_size_that_is_no_size_is_an_error() -> None:
    square = {"label": "roof", "vertices": [{"x": 0, "y": 0}, {"x": 5, "y": 0}, {"x": 5, "y": 5}]}
    with pytest.raises(ConsolidationError, match="image size must be positive and finite"):
        consolidate_polygons([[square], [square]], image_size={"width": 0, "height": 10})


@pytest.mark.parametrize(
    ("ring", "size"),
    [
        # found by test_polygons_invariants: GEOS's repair or clip raised TopologyException
        # ("side location conflict") on a vertex 5e-16 below a line, and the call failed
        (
            [(16.0, -4.729475240522966e-16), (9, 18), (16.0, 0), (12.0, 11), (13, 10), (12, 10.0)],
            {"width": 25, "height": 25},
        ),
        (
            [(16.0, -4.729475240522966e-16), (9, 16), (16.0, 0), (12.0, 10), (14, 8), (12, 8.0)],
            None,
        ),
    ],
)
def test_a_nearly_degenerate_polygon_is_repaired_not_fatal(
    ring: list[tuple[float, float]], size: dict[str, int] | None
) -> None:
    answers = [[poly(ring, "a")], [poly(ring, "a")]]
    out = consolidate_polygons(answers, image_size=size)
    assert out.dropped == [] and out.polygons
    assert sorted(out.clusters) == [[(0, 0), (1, 0)]] * len(out.clusters)
