from __future__ import annotations

import random
from typing import Any

import pytest
import shapely

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
    assert len(out.polygons) == 1 and out.polygons[0]["confidence"] == 0.0
    assert shapely.Polygon([(v["x"], v["y"]) for v in out.polygons[0]["vertices"]]).is_valid
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
