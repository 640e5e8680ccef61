"""Evaluation: AP cross-checked against pycocotools on the same data, properties, adapters."""

from __future__ import annotations

import contextlib
import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from gt_toolkit import evaluate_detections
from gt_toolkit.cli import main
from gt_toolkit.consolidation.geometry import iou_matrix
from gt_toolkit.errors import ConversionError, ValidationError
from gt_toolkit.evaluation.metrics import (
    format_evaluation,
    iter_prediction_lines,
    read_detection_set,
)
from gt_toolkit.formats.detection_label import ScoredBox
from tests.helpers import SAMPLES


def B(
    label: str, left: float, top: float, width: float, height: float, score: float = 1.0
) -> ScoredBox:
    return ScoredBox(label=label, left=left, top=top, width=width, height=height, score=score)


# Several classes, misses, false positives, duplicates, ties of scores (0.0 like a
# single-worker Ground Truth job, and a crowd at 0.5), images with boxes on one side only,
# and a class ("bird") that only the detections have.
REFERENCE = {
    "s3://bkt/a.jpg": [B("cat", 10, 10, 50, 50), B("dog", 100, 100, 40, 60)],
    "s3://bkt/b.jpg": [],
    "s3://bkt/c.jpg": [B("car", 0, 0, 30, 20), B("car", 40, 0, 30, 20), B("car", 80, 0, 30, 20)],
    "s3://bkt/d.jpg": [B("cat", 0, 0, 40, 40), B("cat", 30, 30, 40, 40)],
    "s3://bkt/e.jpg": [B("dog", 50, 50, 100, 100), B("car", 300, 300, 60, 30)],
    "s3://bkt/f.jpg": [B("dog", 0, 0, 20, 80), B("dog", 25, 0, 20, 80), B("cat", 200, 10, 30, 30)],
    "s3://bkt/g.jpg": [B("car", 0, 0, 10, 10), B("car", 2, 0, 10, 10)],
}
DETECTIONS = {
    "s3://bkt/a.jpg": [
        B("cat", 12, 11, 48, 50, 0.9),
        B("cat", 10, 12, 50, 47, 0.8),  # duplicate of the same cat
        B("dog", 105, 98, 40, 60, 0.7),
        B("car", 200, 200, 30, 30, 0.6),  # false positive
        B("bird", 5, 5, 10, 10, 0.5),  # class absent from the reference
    ],
    "s3://bkt/b.jpg": [B("cat", 0, 0, 20, 20, 0.95)],  # nothing to find here
    # c.jpg: no entry at all, every car is missed
    "s3://bkt/d.jpg": [
        B("cat", 2, 1, 38, 40, 0.0),
        B("cat", 28, 33, 40, 40, 0.0),
        B("cat", 15, 15, 40, 40, 0.0),
    ],
    "s3://bkt/e.jpg": [
        B("dog", 60, 60, 100, 100, 0.5),
        B("dog", 50, 50, 90, 95, 0.5),
        B("car", 305, 300, 60, 30, 0.5),
        B("car", 330, 300, 60, 30, 0.5),
    ],
    "s3://bkt/f.jpg": [
        B("dog", 0, 2, 20, 76, 0.5),
        B("dog", 26, 0, 19, 80, 0.3),
        B("dog", 12, 0, 20, 80, 0.5),
        B("cat", 205, 12, 30, 28, 0.05),
    ],
    # The first detection has equal IoU with both cars; COCO gives it the later one, which
    # leaves the exact match for the second detection.
    "s3://bkt/g.jpg": [B("car", 1, 0, 10, 10, 0.9), B("car", 0, 0, 10, 10, 0.8)],
}


def _det_key(b: ScoredBox) -> tuple[float, ...]:
    return (-b.score, b.left, b.top, b.width, b.height)


def _ref_key(b: ScoredBox) -> tuple[float, ...]:
    return (b.left, b.top, b.width, b.height)


def coco_ap(
    detections: dict[str, list[ScoredBox]],
    reference: dict[str, list[ScoredBox]],
    max_dets: int | None,
) -> dict[str, tuple[float, float] | None]:
    """AP@0.5 and AP@[.5:.95] per label (and "mean") from pycocotools' COCOeval.

    Images get ids in source-ref order and boxes are listed in the documented tie order, so
    pycocotools sees the same ranking as the toolkit.
    """
    images = sorted(reference)
    labels = sorted(
        {b.label for bs in reference.values() for b in bs}
        | {b.label for bs in detections.values() for b in bs}
    )
    cat_ids = {label: i + 1 for i, label in enumerate(labels)}
    gt: dict[str, Any] = {
        "images": [
            {"id": i + 1, "file_name": ref, "width": 1000, "height": 1000}
            for i, ref in enumerate(images)
        ],
        "categories": [{"id": cat_ids[name], "name": name} for name in labels],
        "annotations": [],
    }
    dts: list[dict[str, Any]] = []
    for i, ref in enumerate(images):
        for b in sorted(reference[ref], key=_ref_key):
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": i + 1,
                    "category_id": cat_ids[b.label],
                    "bbox": [b.left, b.top, b.width, b.height],
                    "area": b.width * b.height,
                    "iscrowd": 0,
                }
            )
        for b in sorted(detections.get(ref, []), key=_det_key):
            dts.append(
                {
                    "image_id": i + 1,
                    "category_id": cat_ids[b.label],
                    "bbox": [b.left, b.top, b.width, b.height],
                    "score": b.score,
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        coco_dt = coco.loadRes(dts)
        ev = COCOeval(coco, coco_dt, "bbox")
        ev.params.maxDets = [max_dets or 10**6]  # evaluate() sorts it; keep one value
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"]  # (T, R, K, A, M)
    out: dict[str, tuple[float, float] | None] = {}
    for k, label in enumerate(labels):
        p = precision[:, :, k, 0, -1]
        out[label] = None if (p <= -1).all() else (float(np.mean(p[0])), float(np.mean(p)))
    all_p = precision[:, :, :, 0, -1]
    out["mean"] = (float(np.mean(all_p[0][all_p[0] > -1])), float(np.mean(all_p[all_p > -1])))
    return out


def assert_matches_coco(
    detections: dict[str, list[ScoredBox]],
    reference: dict[str, list[ScoredBox]],
    max_dets: int | None = None,
) -> None:
    expected = coco_ap(detections, reference, max_dets)
    result = evaluate_detections(detections, reference, max_detections=max_dets)
    got = {c.label: (c.ap50, c.ap) for c in result.classes}
    for label, value in expected.items():
        if label == "mean":
            assert result.map50 == pytest.approx(value[0], abs=1e-6)  # type: ignore[index]
            assert result.map == pytest.approx(value[1], abs=1e-6)  # type: ignore[index]
        elif value is None:
            assert got[label] == (None, None)
        else:
            assert got[label][0] == pytest.approx(value[0], abs=1e-6), label
            assert got[label][1] == pytest.approx(value[1], abs=1e-6), label


@pytest.mark.parametrize("max_dets", [None, 100, 1, 2], ids=["all", "coco-100", "one", "two"])
def test_ap_matches_pycocotools_on_fixed_data(max_dets: int | None) -> None:
    assert_matches_coco(DETECTIONS, REFERENCE, max_dets)


def test_fixed_data_results_are_not_trivial() -> None:
    # Guards the cross-check: the fixed data must exercise partial scores, not 0s and 1s.
    result = evaluate_detections(DETECTIONS, REFERENCE)
    by_label = {c.label: c for c in result.classes}
    assert by_label["bird"].ap is None and by_label["bird"].false_positives == 1
    assert 0 < by_label["cat"].ap50 < 1  # type: ignore[operator]
    assert 0 < by_label["car"].ap50 < 1  # type: ignore[operator]
    assert by_label["car"].false_negatives == 3  # all of c.jpg; e.jpg's car is found
    assert result.map is not None and result.map50 is not None and result.map < result.map50
    assert result.unknown_images == []


boxes_st = st.builds(
    B,
    label=st.sampled_from(["a", "b", "c"]),
    left=st.integers(0, 60),
    top=st.integers(0, 60),
    width=st.integers(1, 40),
    height=st.integers(1, 40),
    score=st.sampled_from([0.0, 0.25, 0.5, 0.5, 0.75, 1.0]),
)
images_st = st.dictionaries(
    st.sampled_from([f"s3://bkt/{i}.jpg" for i in range(6)]),
    st.lists(boxes_st, max_size=6),
    min_size=1,
)


@settings(max_examples=60, deadline=None)
@given(reference=images_st, detections=images_st, jitter=st.integers(0, 6))
def test_ap_matches_pycocotools_on_random_data(
    reference: dict[str, list[ScoredBox]], detections: dict[str, list[ScoredBox]], jitter: int
) -> None:
    # Detections: shifted copies of reference boxes (hits at various IoU) plus random ones.
    rng = random.Random(jitter)
    dets = {k: list(v) for k, v in detections.items() if k in reference}
    for ref, boxes in reference.items():
        for b in boxes:
            if rng.random() < 0.7:
                dets.setdefault(ref, []).append(
                    B(
                        b.label,
                        b.left + rng.randint(-jitter, jitter),
                        b.top + rng.randint(-jitter, jitter),
                        b.width,
                        b.height,
                        rng.choice([0.1, 0.5, 0.9]),
                    )
                )
    # pycocotools cannot load an empty result list, and has no class to score without boxes
    assume(any(dets.values()) and any(reference.values()))
    assert_matches_coco(dets, reference)


SUMMARY = (
    "map",
    "map50",
    "map75",
    "map_small",
    "map_medium",
    "map_large",
    "mar1",
    "mar10",
    "mar100",
    "mar_small",
    "mar_medium",
    "mar_large",
)
"""EvaluationResult's names for COCOeval.stats, in its order."""


def coco_summary(
    detections: dict[str, list[ScoredBox]], reference: dict[str, list[ScoredBox]]
) -> dict[str, float | None]:
    """COCOeval's twelve summary numbers (default maxDets 1, 10, 100); -1 becomes None."""
    return coco_stats(*coco_documents(detections, reference))


def coco_documents(
    detections: dict[str, list[ScoredBox]], reference: dict[str, list[ScoredBox]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The reference as a COCO dataset (images named by key) and the detections as results.

    Reference boxes keep their ``crowd`` flag and ``area`` (``width * height`` when unset).
    """
    images = sorted(reference)
    labels = sorted({b.label for bs in [*reference.values(), *detections.values()] for b in bs})
    cat_ids = {label: i + 1 for i, label in enumerate(labels)}
    gt: dict[str, Any] = {
        "images": [
            {"id": i + 1, "file_name": ref, "width": 1000, "height": 1000}
            for i, ref in enumerate(images)
        ],
        "categories": [{"id": cat_ids[name], "name": name} for name in labels],
        "annotations": [
            {
                "id": n + 1,
                "image_id": i + 1,
                "category_id": cat_ids[b.label],
                "bbox": [b.left, b.top, b.width, b.height],
                "area": b.width * b.height if b.area is None else b.area,
                "iscrowd": int(b.crowd),
            }
            for n, (i, b) in enumerate(
                (i, b) for i, ref in enumerate(images) for b in sorted(reference[ref], key=_ref_key)
            )
        ],
    }
    dts = [
        {
            "image_id": i + 1,
            "category_id": cat_ids[b.label],
            "bbox": [b.left, b.top, b.width, b.height],
            "score": b.score,
        }
        for i, ref in enumerate(images)
        for b in sorted(detections.get(ref, []), key=_det_key)
    ]
    return gt, dts


def coco_stats(gt: dict[str, Any], dts: list[dict[str, Any]]) -> dict[str, float | None]:
    """COCOeval's twelve summary numbers for a COCO dataset and a results list."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dts), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: None if v < 0 else float(v) for name, v in zip(SUMMARY, ev.stats, strict=True)}


def assert_summary_matches_coco(
    detections: dict[str, list[ScoredBox]], reference: dict[str, list[ScoredBox]]
) -> None:
    assert_summary_is(coco_summary(detections, reference), detections, reference)


def assert_summary_is(
    expected: dict[str, float | None],
    detections: dict[str, list[ScoredBox]],
    reference: dict[str, list[ScoredBox]],
) -> None:
    result = evaluate_detections(detections, reference, max_detections=100)
    for name, value in expected.items():
        got = getattr(result, name)
        if value is None:
            assert got is None, name
        else:
            assert got == pytest.approx(value, abs=1e-6), name


# Boxes on both sides of COCO's area bounds (32² and 96², both inclusive), detections whose
# own area lies in another range than the box they hit, and an image crowded past 10.
AREAS = {
    "s3://bkt/a.jpg": [B("x", 0, 0, 32, 32), B("x", 40, 0, 31, 33), B("x", 100, 0, 96, 96)],
    "s3://bkt/b.jpg": [B("x", 0, 0, 97, 96), B("x", 0, 0, 30, 30), B("y", 200, 200, 60, 60)],
    "s3://bkt/c.jpg": [B("x", 30 * i, 0, 25, 25) for i in range(12)],
    "s3://bkt/d.jpg": [B("x", 0, 0, 32, 32), B("x", 0, 0, 33, 33)],
}
AREA_DETECTIONS = {
    "s3://bkt/a.jpg": [
        B("x", 1, 0, 33, 32, 0.9),  # area 1056: medium, on a 1024 box (small and medium)
        B("x", 40, 1, 31, 33, 0.8),
        B("x", 104, 0, 90, 96, 0.7),  # medium box on the 96² one
        B("x", 500, 500, 5, 5, 0.95),  # small false positive
    ],
    "s3://bkt/b.jpg": [
        B("x", 2, 2, 95, 94, 0.6),
        B("x", 0, 0, 28, 31, 0.6),  # overlaps both x boxes: prefers the one in range
        B("y", 210, 200, 60, 60, 0.4),
    ],
    "s3://bkt/c.jpg": [B("x", 30 * i + 1, 0, 25, 25, 1 - i / 20) for i in range(12)],
    # for "small", the exact match (33², medium only) is out of range: COCO takes the 32² box
    "s3://bkt/d.jpg": [B("x", 0, 0, 33, 33, 0.9)],
}


def test_summary_matches_pycocotools_on_fixed_data() -> None:
    assert_summary_matches_coco(DETECTIONS, REFERENCE)
    assert_summary_matches_coco(AREA_DETECTIONS, AREAS)


def test_evaluate_reads_a_results_list_against_its_coco_file(tmp_path: Path) -> None:
    # The pycocotools workflow: gt-convert evaluate RESULTS INSTANCES, no conversion first.
    reference = {**AREAS, "s3://bkt/e.jpg": [B("x", 5, 5, 50, 50)]}  # e: no detection at all
    gt, dts = coco_documents(AREA_DETECTIONS, reference)
    (tmp_path / "instances.json").write_text(json.dumps(gt))
    (tmp_path / "results.json").write_text(json.dumps(dts, indent=1))
    out = tmp_path / "eval.json"
    args = ["evaluate", str(tmp_path / "results.json"), str(tmp_path / "instances.json")]
    assert main([*args, "--max-detections", "100", "-o", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["sources"]["predictions"]["kind"] == "coco-results"
    assert report["sources"]["predictions"]["images"] == len(reference)  # e.jpg included
    for name, value in coco_stats(gt, dts).items():
        assert report[name] == pytest.approx(value, abs=1e-6), name


def _shuffled_coco(seed: int, n_images: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A COCO file and a results list as detectors write them: image ids in no order of
    their file names, results in no order, scores rounded (ties within and across images),
    crowd regions with their own area, duplicates, and boxes past the image's edge."""
    rng = random.Random(seed)
    ids = rng.sample(range(1, 10 * n_images), n_images)
    images, anns, dts = [], [], []
    for n, image_id in enumerate(ids):
        images.append({"id": image_id, "file_name": f"img_{n:04d}.jpg", "width": 320})
        images[-1]["height"] = 240
        for _ in range(rng.randint(0, 6)):
            x, y = rng.randint(-20, 300), rng.randint(-20, 220)
            w, h = rng.randint(0, 120), rng.randint(0, 90)
            crowd = int(rng.random() < 0.1)
            area = w * h if rng.random() < 0.7 else rng.randint(0, 12000)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "bbox": [x, y, w, h]})
            anns[-1] |= {"category_id": rng.choice([1, 2]), "area": area, "iscrowd": crowd}
            for _ in range(rng.choice([0, 1, 1, 2])):  # found, twice at times
                jx, jy = x + rng.randint(-6, 6), y + rng.randint(-6, 6)
                box = [jx, jy, max(0, w + rng.randint(-9, 9)), max(0, h + rng.randint(-9, 9))]
                dts.append({"image_id": image_id, "category_id": anns[-1]["category_id"]})
                dts[-1] |= {"bbox": box, "score": rng.choice([0.25, 0.5, 0.75, 0.9])}
        for _ in range(rng.randint(0, 2)):
            box = [rng.randint(0, 300), rng.randint(0, 200), 30, 30]
            dts.append({"image_id": image_id, "category_id": rng.choice([1, 2, 3])})
            dts[-1] |= {"bbox": box, "score": rng.choice([0.25, 0.5])}
    rng.shuffle(dts)
    categories = [{"id": i, "name": name} for i, name in ((1, "a"), (2, "b"), (3, "c"))]
    return {"images": images, "annotations": anns, "categories": categories}, dts


def test_a_results_list_scores_as_pycocotools_where_scores_tie(tmp_path: Path) -> None:
    gt, dts = _shuffled_coco(3, 120)
    (tmp_path / "instances.json").write_text(json.dumps(gt))
    (tmp_path / "results.json").write_text(json.dumps(dts))
    out = tmp_path / "eval.json"
    args = ["evaluate", str(tmp_path / "results.json"), str(tmp_path / "instances.json")]
    assert main([*args, "--max-detections", "100", "-o", str(out)]) == 0
    report = json.loads(out.read_text())
    expected = coco_stats(gt, dts)
    # Before: ties went by file name and box position, not by image id and file order:
    # seven of the twelve numbers differed, AP@.5 0.374 where pycocotools says 0.388.
    assert {k: report[k] for k in expected} == pytest.approx(expected, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), n_images=st.integers(1, 8))
def test_a_results_list_scores_as_pycocotools_on_random_files(
    tmp_path_factory: pytest.TempPathFactory, seed: int, n_images: int
) -> None:
    gt, dts = _shuffled_coco(seed, n_images)
    assume(dts and any(not a["iscrowd"] for a in gt["annotations"]))
    folder = tmp_path_factory.mktemp("coco")
    (folder / "instances.json").write_text(json.dumps(gt))
    (folder / "results.json").write_text(json.dumps(dts))
    pred = read_detection_set(folder / "results.json", coco_reference=folder / "instances.json")
    ref = read_detection_set(folder / "instances.json")
    result = evaluate_detections(
        pred.boxes, ref.boxes, max_detections=100, coco_order=pred.image_order
    )
    expected = coco_stats(gt, dts)
    assert {k: getattr(result, k) for k in expected} == pytest.approx(expected, abs=1e-9)


def _roboflow_coco(seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """:func:`_shuffled_coco` as a Roboflow export names its categories: an unused category
    0 named after the data set, which is also the name of category 1. Some detections are
    of category 0 (a detector trained on the export predicts it too)."""
    gt, dts = _shuffled_coco(seed, 12)
    gt["categories"] = [{"id": 0, "name": "a", "supercategory": "none"}, *gt["categories"]]
    rng = random.Random(seed)
    for n, dt in enumerate(dts):
        dt["score"] = round(dt["score"] - n * 1e-4, 6)  # no ties: a COCO file has no loadRes order
        if dt["category_id"] == 1 and rng.random() < 0.3:
            dt["category_id"] = 0
    return gt, dts


def test_two_categories_of_one_name_score_by_id_as_pycocotools(tmp_path: Path) -> None:
    gt, dts = _roboflow_coco(11)
    expected = coco_stats(gt, dts)
    (tmp_path / "instances.json").write_text(json.dumps(gt))
    (tmp_path / "results.json").write_text(json.dumps(dts))
    # The detections as a COCO file of their own (what consolidate --output-format coco writes).
    anns = [{"id": n + 1, **dt} for n, dt in enumerate(dts)]
    (tmp_path / "detections.json").write_text(json.dumps({**gt, "annotations": anns}))
    for pred in ("results.json", "detections.json"):
        out = tmp_path / f"{pred}.eval.json"
        args = ["evaluate", str(tmp_path / pred), str(tmp_path / "instances.json")]
        # Before: refused, "categories[1]: name 'a' is listed twice (categories[0])".
        assert main([*args, "--max-detections", "100", "-o", str(out)]) == 0, pred
        report = json.loads(out.read_text())
        assert {k: report[k] for k in expected} == pytest.approx(expected, abs=1e-9), pred
        labels = {c["label"] for c in report["classes"]}
        assert labels == {"a (id 0)", "a (id 1)", "b", "c"}, pred  # told apart for display


def test_two_categories_of_one_name_are_refused_against_a_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A manifest has only names: its "a" would meet both categories, one class of two.
    gt, _dts = _roboflow_coco(11)
    (tmp_path / "instances.json").write_text(json.dumps(gt))
    manifest = tmp_path / "pred.manifest"
    line = {"source-ref": "s3://bkt/img_0000.jpg", "boxes": [{"label": "a", "left": 1, "top": 1}]}
    line["boxes"][0] |= {"width": 5, "height": 5, "score": 0.5}
    manifest.write_text(json.dumps(line) + "\n")
    assert main(["evaluate", str(manifest), str(tmp_path / "instances.json")]) == 1
    assert "categories[1]: name 'a' is listed twice" in capsys.readouterr().err


def test_area_data_is_not_trivial() -> None:
    result = evaluate_detections(AREA_DETECTIONS, AREAS, max_detections=100)
    for name in ("map_small", "map_medium", "map_large", "mar1", "mar10"):
        assert 0 < getattr(result, name) < 1, name
    assert result.mar1 < result.mar10 < result.mar100  # c.jpg has 12 boxes


sized_boxes_st = st.builds(
    B,
    label=st.sampled_from(["a", "b"]),
    left=st.integers(0, 150),
    top=st.integers(0, 150),
    width=st.integers(1, 130),
    height=st.integers(1, 130),
    score=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]),
)


@settings(max_examples=60, deadline=None)
@given(
    reference=st.dictionaries(
        st.sampled_from([f"s3://bkt/{i}.jpg" for i in range(4)]),
        st.lists(sized_boxes_st, max_size=12),
        min_size=1,
    ),
    seed=st.integers(0, 1000),
)
def test_summary_matches_pycocotools_on_random_data(
    reference: dict[str, list[ScoredBox]], seed: int
) -> None:
    # Detections: each reference box found (or not) with its size changed, plus stray boxes.
    rng = random.Random(seed)
    dets: dict[str, list[ScoredBox]] = {}
    for ref, boxes in reference.items():
        for b in boxes:
            if rng.random() < 0.8:
                dets.setdefault(ref, []).append(
                    B(
                        b.label,
                        b.left + rng.randint(-4, 4),
                        b.top + rng.randint(-4, 4),
                        max(1, b.width + rng.randint(-20, 20)),
                        max(1, b.height + rng.randint(-20, 20)),
                        rng.choice([0.1, 0.5, 0.9]),
                    )
                )
        if rng.random() < 0.5:
            dets.setdefault(ref, []).append(B("a", rng.randint(0, 200), 0, 40, 40, 0.3))
    assume(any(dets.values()) and any(reference.values()))
    assert_summary_matches_coco(dets, reference)


# The audit's case: a person, and a crowd region (file area 8100) holding a detection that
# scores above the person's. The person's file area (900) is small, its bbox (2500) medium.
CROWD_GT: dict[str, Any] = {
    "images": [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 200}],
    "categories": [{"id": 1, "name": "person"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 50], "area": 900}
        | {"iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [100, 100, 90, 90], "area": 8100}
        | {"iscrowd": 1},
    ],
}
CROWD_DT = [
    {"image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 50], "score": 0.5},
    {"image_id": 1, "category_id": 1, "bbox": [110, 110, 40, 40], "score": 0.9},
]


def test_a_detection_on_a_crowd_region_is_ignored_as_cocoeval_does(tmp_path: Path) -> None:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(CROWD_GT))
    reference = read_detection_set(path).boxes
    detections = {"a.jpg": [B("person", *d["bbox"], d["score"]) for d in CROWD_DT]}
    assert_summary_is(coco_stats(CROWD_GT, CROWD_DT), detections, reference)
    result = evaluate_detections(detections, reference, max_detections=100)
    # Before: AP 0.5 (the crowd detection was a false positive), and medium, not small.
    assert result.map == pytest.approx(1.0) and result.map_small == pytest.approx(1.0)
    assert result.map_medium is None


def test_crowd_regions_are_neither_references_nor_hits_for_precision_and_recall() -> None:
    crowd = ScoredBox(label="p", left=100, top=100, width=90, height=90, crowd=True)
    reference = {"a.jpg": [B("p", 0, 0, 50, 50), crowd]}
    detections = {
        "a.jpg": [
            B("p", 0, 0, 50, 50, 0.5),  # the person
            B("p", 110, 110, 40, 40, 0.9),  # two inside the crowd region: not counted
            B("p", 150, 150, 30, 30, 0.8),
            B("p", 185, 100, 20, 20, 0.7),  # a quarter of it inside: a false positive
            B("p", 300, 0, 20, 20, 0.6),  # a false positive
        ]
    }
    result = evaluate_detections(detections, reference)
    (c,) = result.classes
    assert (c.references, c.detections, c.true_positives, c.false_positives) == (1, 3, 1, 2)
    assert (result.precision, result.recall) == (pytest.approx(1 / 3), 1.0)
    (image,) = result.images
    assert (image.references, image.detections, image.matched) == (1, 3, 1)
    assert image.miou == pytest.approx(1 / 3)  # one exact pair over 1 + 3 - 1 boxes


crowd_reference_st = st.builds(
    ScoredBox,
    label=st.sampled_from(["a", "b", "c"]),
    left=st.integers(0, 150),
    top=st.integers(0, 150),
    width=st.integers(1, 130),
    height=st.integers(1, 130),
    crowd=st.sampled_from([False, False, True]),
    # a file's own area, across COCO's size bounds and unrelated to width x height
    area=st.one_of(st.none(), st.sampled_from([1024.0, 9216.0]), st.integers(0, 12000)),
)


@settings(max_examples=40, deadline=None)
@given(
    reference=st.dictionaries(
        st.sampled_from([f"s3://bkt/{i}.jpg" for i in range(4)]),
        st.lists(crowd_reference_st, max_size=10),
        min_size=1,
    ),
    seed=st.integers(0, 1000),
)
def test_summary_matches_pycocotools_with_crowd_regions_and_areas(
    reference: dict[str, list[ScoredBox]], seed: int
) -> None:
    # Detections: boxes found with their size changed, several inside each crowd region
    # (any number may match one), stray boxes; scores tie often.
    rng = random.Random(seed)
    dets: dict[str, list[ScoredBox]] = {}
    for ref, boxes in reference.items():
        for b in boxes:
            found = dets.setdefault(ref, [])
            if rng.random() < 0.8:
                w = max(1, b.width + rng.randint(-20, 20))
                h = max(1, b.height + rng.randint(-20, 20))
                found.append(B(b.label, b.left + rng.randint(-4, 4), b.top, w, h, 0.5))
            for _ in range(rng.randint(1, 3) if b.crowd else 0):
                w, h = rng.randint(1, int(b.width)), rng.randint(1, int(b.height))
                x, y = b.left + rng.randint(0, int(b.width) - w), b.top + rng.randint(0, 9)
                found.append(B(b.label, x, y, w, h, rng.choice([0.1, 0.5, 0.9])))
        if rng.random() < 0.5:
            dets.setdefault(ref, []).append(B("a", rng.randint(0, 200), 0, 40, 40, 0.5))
    assume(any(dets.values()) and any(not b.crowd for bs in reference.values() for b in bs))
    assert_summary_matches_coco(dets, reference)


def _perfect(reference: dict[str, list[ScoredBox]]) -> dict[str, list[ScoredBox]]:
    return {
        k: [B(b.label, b.left, b.top, b.width, b.height, 0.0) for b in v]
        for k, v in reference.items()
    }


@settings(max_examples=60, deadline=None)
@given(reference=images_st)
def test_perfect_predictions_score_one(reference: dict[str, list[ScoredBox]]) -> None:
    result = evaluate_detections(_perfect(reference), reference)
    if any(reference.values()):
        assert result.map50 == pytest.approx(1.0) and result.map == pytest.approx(1.0)
        assert result.precision == 1.0 and result.recall == 1.0
    else:
        assert result.map is None
    assert all(img.miou == pytest.approx(1.0) for img in result.images)
    assert all(img.missed == 0 and img.false_positives == 0 for img in result.images)


@settings(max_examples=60, deadline=None)
@given(reference=images_st, detections=images_st, seed=st.integers(0, 1000))
def test_results_do_not_depend_on_input_order(
    reference: dict[str, list[ScoredBox]], detections: dict[str, list[ScoredBox]], seed: int
) -> None:
    assume(set(detections) & set(reference))  # disjoint names are an error (tested below)
    rng = random.Random(seed)

    def shuffled(data: dict[str, list[ScoredBox]]) -> dict[str, list[ScoredBox]]:
        keys = list(data)
        rng.shuffle(keys)
        return {k: rng.sample(data[k], len(data[k])) for k in keys}

    first = evaluate_detections(detections, reference).to_json()
    second = evaluate_detections(shuffled(detections), shuffled(reference)).to_json()
    assert first == second


def test_iou_matches_definition() -> None:
    a = np.array([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 0.0, 5.0]])
    b = np.array([[5.0, 5.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 1.0, 1.0]])
    iou = iou_matrix(a, b, xywh=True)
    assert iou.shape == (2, 3)
    assert iou[0, 0] == pytest.approx(25 / 175)
    assert iou[0, 1] == 1.0
    assert iou[0, 2] == 0.0
    assert (iou[1] == 0).all()  # zero-width box overlaps nothing


def test_image_miou_counts_misses_and_false_positives_worst_first() -> None:
    reference = {
        "good.jpg": [B("x", 0, 0, 10, 10)],
        "half.jpg": [B("x", 0, 0, 10, 10), B("x", 50, 50, 10, 10)],
        "empty.jpg": [],
        "fp.jpg": [],
    }
    detections = {
        "good.jpg": [B("x", 0, 0, 10, 10)],
        "half.jpg": [B("x", 0, 0, 10, 10)],
        "fp.jpg": [B("x", 0, 0, 5, 5)],
    }
    result = evaluate_detections(detections, reference)
    by_ref = {r.source_ref: r for r in result.images}
    assert by_ref["good.jpg"].miou == 1.0
    assert by_ref["half.jpg"].miou == pytest.approx(0.5)
    assert by_ref["half.jpg"].matched_iou == 1.0 and by_ref["half.jpg"].missed == 1
    assert by_ref["empty.jpg"].miou == 1.0  # nothing on either side
    assert by_ref["fp.jpg"].miou == 0.0 and by_ref["fp.jpg"].false_positives == 1
    assert [r.source_ref for r in result.images] == ["fp.jpg", "half.jpg", "empty.jpg", "good.jpg"]


def test_wrong_label_is_a_miss_and_a_false_positive() -> None:
    result = evaluate_detections({"a": [B("dog", 0, 0, 10, 10)]}, {"a": [B("cat", 0, 0, 10, 10)]})
    image = result.images[0]
    assert image.matched == 0 and image.missed == 1 and image.false_positives == 1
    assert result.map == 0.0  # cat has AP 0; dog has no reference and is left out


def test_score_threshold_drops_low_scores_from_precision_recall_only() -> None:
    reference = {"a": [B("x", 0, 0, 10, 10), B("x", 50, 50, 10, 10)]}
    detections = {"a": [B("x", 0, 0, 10, 10, 0.9), B("x", 50, 50, 10, 10, 0.2)]}
    low = evaluate_detections(detections, reference, score_threshold=0.0)
    high = evaluate_detections(detections, reference, score_threshold=0.5)
    assert low.recall == 1.0 and high.recall == 0.5
    assert low.map == high.map == pytest.approx(1.0)
    assert high.images[0].miou == pytest.approx(0.5)


def test_detections_on_unknown_images_are_reported_not_scored() -> None:
    result = evaluate_detections(
        {"s3://bkt/a.jpg": [B("x", 0, 0, 1, 1)], "s3://other/a.jpg": [B("x", 0, 0, 1, 1)]},
        {"s3://bkt/a.jpg": [B("x", 0, 0, 1, 1)]},
    )
    assert result.unknown_images == ["s3://other/a.jpg"]
    assert result.recall == 1.0 and result.map == pytest.approx(1.0)
    assert result.warnings == [
        "1 of 2 detection image(s) are not in the reference and were left out, "
        "e.g. s3://other/a.jpg"
    ]


def test_detections_on_none_of_the_reference_images_are_an_error() -> None:
    with pytest.raises(ValidationError, match=r"none of the 1 detection image\(s\)") as info:
        evaluate_detections(
            {"s3://other/a.jpg": [B("x", 0, 0, 1, 1)]}, {"s3://bkt/a.jpg": [B("x", 0, 0, 1, 1)]}
        )
    assert "s3://other/a.jpg against s3://bkt/a.jpg" in info.value.one_line()


@pytest.mark.parametrize(
    ("detections", "hint"),
    [
        ({"a": [B("Ball", 10, 10, 20, 20)]}, "only in case or spaces: 'Ball' vs 'ball'"),
        ({"a": [B("ball ", 10, 10, 20, 20)]}, "only in case or spaces: 'ball ' vs 'ball'"),
        ({"a": [B("ball", 0.1, 0.1, 0.2, 0.2)]}, "detection boxes all lie within 0-1"),
    ],
    ids=["case", "spaces", "normalised"],
)
def test_mismatched_inputs_score_zero_with_a_hint(
    detections: dict[str, list[ScoredBox]], hint: str
) -> None:
    reference = {"a": [B("ball", 10, 10, 20, 20)]}
    result = evaluate_detections(detections, reference)
    assert result.map == 0.0
    assert len(result.warnings) == 1 and hint in result.warnings[0]
    assert evaluate_detections(reference, reference).warnings == []


def test_a_normalised_reference_is_named_too() -> None:
    result = evaluate_detections(
        {"a": [B("ball", 10, 10, 20, 20)]}, {"a": [B("ball", 0.1, 0.1, 0.2, 0.2)]}
    )
    assert "reference boxes all lie within 0-1" in result.warnings[0]


@pytest.mark.parametrize(
    ("box", "message"),
    [
        (B("x", float("nan"), 0, 1, 1), "non-finite"),
        (B("x", 0, 0, -1, 1), "negative width"),
        (B("x", 0, 0, 1, 1, float("inf")), "non-finite"),
        (ScoredBox(label="x", left=0, top=0, width=1, height=1, area=float("nan")), "area"),
        (ScoredBox(label="x", left=0, top=0, width=1, height=1, area=-1.0), "area"),
    ],
    ids=["nan-left", "negative-width", "inf-score", "nan-area", "negative-area"],
)
def test_bad_boxes_are_rejected_with_every_problem(box: ScoredBox, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        evaluate_detections({"a": [box]}, {"a": [box]})
    assert len(info.value.problems) == 2  # both sides named


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValidationError, match="iou_threshold") as info:
        evaluate_detections({}, {}, iou_threshold=1.5, max_detections=0)
    assert len(info.value.problems) == 2


def test_format_evaluation_lists_classes_means_and_worst_images() -> None:
    text = format_evaluation(evaluate_detections(DETECTIONS, REFERENCE), worst=2)
    lines = text.splitlines()
    assert lines[0].split() == [
        "class",
        "refs",
        "dets",
        "AP50",
        "AP75",
        "AP",
        "P",
        "R",
        "TP",
        "FP",
        "FN",
    ]
    assert any(line.startswith("bird") and " - " in line for line in lines)
    assert any(line.startswith("mean") for line in lines)
    assert "worst 2 of 7 images:" in text
    assert "s3://bkt/c.jpg" in text  # every car missed: mIoU 0


# ------------------------------------------------------------------ adapters and CLI


def _write_predictions(path: Path, data: dict[str, list[ScoredBox]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in iter_prediction_lines(data)))


def _truth() -> dict[str, list[ScoredBox]]:
    return read_detection_set(SAMPLES / "truth.manifest").boxes


def test_read_output_manifest_uses_confidences_and_detects_attribute() -> None:
    found = read_detection_set(SAMPLES / "truth.manifest")
    assert found.kind == "output-manifest" and found.attribute == "truth"
    assert len(found.boxes) == 40
    lines = (SAMPLES / "truth.manifest").read_text().splitlines()
    first = json.loads(lines[0])
    boxes = found.boxes[first["source-ref"]]
    assert [b.left for b in boxes] == [a["left"] for a in first["truth"]["annotations"]]
    assert {b.label for bs in found.boxes.values() for b in bs} == {"ball"}
    assert all(b.score == 1.0 for b in boxes)


def test_truth_against_itself_is_perfect() -> None:
    truth = _truth()
    result = evaluate_detections(truth, truth)
    assert result.map == pytest.approx(1.0) and result.mean_image_miou == pytest.approx(1.0)


def test_chained_job_picks_newest_label_and_skips_failed_objects(tmp_path: Path) -> None:
    def label(left: int, date: str) -> dict[str, Any]:
        return {
            "v": {
                "image_size": [{"width": 100, "height": 100}],
                "annotations": [
                    {"class_id": "0", "left": left, "top": 0, "width": 10, "height": 10}
                ],
            },
            "m": {
                "objects": [{"confidence": 0}],
                "class-map": {"0": "ball"},
                "type": "groundtruth/object-detection",
                "creation-date": date,
            },
        }

    old, new = label(1, "2024-01-01T00:00:00"), label(2, "2024-02-01T00:00:00")
    lines = [
        {
            "source-ref": "s3://bkt/1.jpg",
            "first": old["v"],
            "first-metadata": old["m"],
            "adjusted": new["v"],
            "adjusted-metadata": new["m"],
        },
        {
            "source-ref": "s3://bkt/2.jpg",
            "first": old["v"],
            "first-metadata": old["m"],
            "adjusted-metadata": {"failure-reason": "ClientError: x"},
        },
    ]
    path = tmp_path / "out.manifest"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    found = read_detection_set(path)
    assert found.attribute == "adjusted"
    assert found.boxes == {"s3://bkt/1.jpg": [B("ball", 2, 0, 10, 10, 0.0)]}
    assert len(found.skipped) == 1 and "ClientError" in found.skipped[0]
    first = read_detection_set(path, label_attribute="first")
    assert [b.left for bs in first.boxes.values() for b in bs] == [1, 1] and not first.skipped


def test_prediction_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "pred.jsonl"
    _write_predictions(path, DETECTIONS)
    found = read_detection_set(path)
    assert found.kind == "predictions"
    assert found.boxes == DETECTIONS


@pytest.mark.parametrize(
    ("lines", "error", "message"),
    [
        (
            [{"source-ref": "s3://bkt/a.jpg", "boxes": [{"label": "x", "left": 0}]}],
            ValidationError,
            "box 0",
        ),
        (
            [
                {"source-ref": "s3://bkt/a.jpg", "boxes": []},
                {"source-ref": "s3://bkt/a.jpg", "boxes": []},
            ],
            ValidationError,
            "duplicate source-ref s3://bkt/a.jpg",
        ),
        ([{"source-ref": "s3://bkt/a.jpg", "other": 1}], ValidationError, "no label attribute"),
        (["not json"], ValidationError, "invalid-json"),
    ],
    ids=["malformed-box", "duplicate", "no-label", "bad-json"],
)
def test_bad_files_raise_clear_errors(
    tmp_path: Path, lines: list[Any], error: type[Exception], message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    with pytest.raises(error, match=message):
        read_detection_set(path)


def test_cli_evaluate_prints_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = _truth()
    # A "model" that misses every second image's boxes and shifts the others a little.
    predictions = {
        ref: [B(b.label, b.left + 2, b.top + 1, b.width, b.height, 0.5 + 0.01 * i) for b in boxes]
        for i, (ref, boxes) in enumerate(sorted(truth.items()))
        if i % 2 == 0
    }
    pred = tmp_path / "pred.jsonl"
    _write_predictions(pred, predictions)
    out = tmp_path / "report" / "eval.json"
    code = main(
        ["evaluate", str(pred), str(SAMPLES / "truth.manifest"), "-o", str(out), "--worst", "3"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:4] == ["class", "refs", "dets", "AP50"]
    assert "worst 3 of 40 images:" in printed
    report = json.loads(out.read_text())
    expected = evaluate_detections(predictions, truth)
    assert report["map50"] == pytest.approx(expected.map50)
    assert report["recall"] == pytest.approx(expected.recall)
    assert 0.3 < report["recall"] < 0.7
    assert report["images"][0]["miou"] == 0.0  # a missed image comes first
    assert report["sources"]["predictions"]["kind"] == "predictions"


def test_cli_evaluate_warns_about_label_case_and_unknown_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = _truth()
    predictions = {
        ref: [B("Ball", b.left, b.top, b.width, b.height) for b in boxes]
        for ref, boxes in truth.items()
    }
    predictions["s3://elsewhere/x.jpg"] = [B("Ball", 0, 0, 5, 5)]
    pred = tmp_path / "pred.jsonl"
    _write_predictions(pred, predictions)
    code = main(["evaluate", str(pred), str(SAMPLES / "truth.manifest")])
    captured = capsys.readouterr()
    assert code == 0
    warnings = captured.err.splitlines()
    assert warnings == [
        "warning: 1 of 41 detection image(s) are not in the reference and were left out, "
        "e.g. s3://elsewhere/x.jpg",
        "warning: labels differ from the reference only in case or spaces: 'Ball' vs 'ball'",
    ]
    assert "AR@1/10/100" in captured.out


def test_cli_evaluate_names_reference_images_the_predictions_do_not_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Half the images named in another bucket (a copy's), and one the model never ran on:
    # both sides' unmatched images are named. Before, only the copy's were; the 21 reference
    # images left were scored as all missed without a word, in the table and the report.
    truth = _truth()
    refs = sorted(truth)
    predictions = {
        (ref if i % 2 else "s3://copy-bkt/" + ref.rsplit("/", 1)[1]): truth[ref]
        for i, ref in enumerate(refs[:-1])
    }
    pred, out = tmp_path / "pred.jsonl", tmp_path / "eval.json"
    _write_predictions(pred, predictions)
    assert main(["evaluate", str(pred), str(SAMPLES / "truth.manifest"), "-o", str(out)]) == 0
    missing = sorted(refs[0:-1:2] + refs[-1:])
    assert capsys.readouterr().err.splitlines() == [
        f"warning: 20 of 39 detection image(s) are not in the reference and were left out, "
        f"e.g. s3://copy-bkt/{refs[0].rsplit('/', 1)[1]}",
        f"warning: 21 of 40 reference image(s) have no entry in the detections and count as "
        f"all missed, e.g. {missing[0]}",
        f"wrote {out}",
    ]
    report = json.loads(out.read_text())
    assert report["missing_images"] == missing
    assert len(report["unknown_images"]) == 20


def test_cli_evaluate_names_the_images_an_empty_prediction_file_leaves_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred = tmp_path / "pred.jsonl"
    pred.write_text("")  # an upload cut short, a wrong path's empty file
    assert main(["evaluate", str(pred), str(SAMPLES / "truth.manifest")]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "warning: 40 of 40 reference image(s) have no entry in the detections and count as "
        "all missed, e.g. s3://gt-toolkit-demo/images/img_000.jpg"
    ]


def test_cli_evaluate_prints_hostile_labels_and_names_spelled_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A label that forges a table row, one that clears the screen, and an image name with a
    # right-to-left override. Before: printed as they are, the table had a "mean" row too many.
    forged = "cat\nmean   99   99  1.000  1.000  1.000  1.000  1.000   99    0    0"
    ref = "s3://bkt/a\u202e.jpg"
    boxes = [B(forged, 0, 0, 10, 10, 0.9), B("dog\x1b[2J", 20, 20, 10, 10, 0.9)]
    pred, truth = tmp_path / "pred.jsonl", tmp_path / "truth.jsonl"
    _write_predictions(pred, {ref: boxes, "s3://bkt/\x1b]0;x\x07.jpg": boxes})
    _write_predictions(truth, {ref: [B("dog\x1b[2J", 20, 20, 10, 10)]})
    assert main(["evaluate", str(pred), str(truth)]) == 0
    out, err = capsys.readouterr()
    assert not any(c in out + err for c in "\x1b\x07\u202e")
    lines = out.splitlines()
    table = lines[: next(i for i, line in enumerate(lines) if line.startswith("P/R"))]
    assert [line.split()[0].strip("-") for line in table] == [
        "class",
        "",
        r"cat\nmean",
        r"dog\x1b[2J",
        "mean",
    ]
    assert r"s3://bkt/a\u202e.jpg" in out and r"s3://bkt/\x1b]0;x\x07.jpg" in err


def test_cli_evaluate_fails_when_no_image_matches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred = tmp_path / "pred.jsonl"
    _write_predictions(pred, {"s3://elsewhere/img_000.jpg": [B("ball", 0, 0, 5, 5)]})
    assert main(["evaluate", str(pred), str(SAMPLES / "truth.manifest")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none of the 1 detection image(s)" in err


def test_cli_evaluate_reports_bad_input_as_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred = tmp_path / "pred.jsonl"
    pred.write_text('{"source-ref": "s3://bkt/a.jpg", "boxes": "nope"}\n')
    assert main(["evaluate", str(pred), str(SAMPLES / "truth.manifest")]) == 1
    assert "ValidationError" in capsys.readouterr().err


def test_classification_manifest_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cls.manifest"
    line = {
        "source-ref": "s3://bkt/a.jpg",
        "animal": 1,
        "animal-metadata": {
            "class-name": "dog",
            "confidence": 0.9,
            "type": "groundtruth/image-classification",
        },
    }
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(ConversionError, match="animal"):
        read_detection_set(path)


def test_prediction_lines_accept_confidence_as_the_score(tmp_path: Path) -> None:
    # The shape gt_toolkit.sagemaker.predictions.decode_detections returns (ConsolidatedBox dicts).
    box = {"label": "ball", "left": 1.5, "top": 2, "width": 3, "height": 4, "confidence": 0.7}
    path = tmp_path / "pred.jsonl"
    path.write_text(json.dumps({"source-ref": "s3://bkt/a.jpg", "boxes": [box]}) + "\n")
    assert read_detection_set(path).boxes == {"s3://bkt/a.jpg": [B("ball", 1.5, 2, 3, 4, 0.7)]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label": None}, "box 1 is malformed"),  # once a class named "None"
        ({"label": ["ball"]}, "box 1 is malformed"),
        ({"score": True}, "box 1 is malformed"),
        ({"width": -3}, "prediction s3://bkt/a.jpg box 1: negative width or height"),
        ({"left": "nan"}, "prediction s3://bkt/a.jpg box 1: non-finite value"),
    ],
    ids=["null-label", "list-label", "bool-score", "negative-width", "nan-left"],
)
def test_bad_prediction_boxes_are_named_by_file_and_line(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    good = {"label": "ball", "left": 1, "top": 2, "width": 3, "height": 4, "score": 0.7}
    path = tmp_path / "pred.jsonl"
    path.write_text(
        json.dumps({"source-ref": "s3://bkt/b.jpg", "boxes": [good]})
        + "\n"
        + json.dumps({"source-ref": "s3://bkt/a.jpg", "boxes": [good, {**good, **change}]})
        + "\n"
    )
    with pytest.raises(ValidationError) as caught:
        read_detection_set(path)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(f"{path}:2: {message}")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_evaluation_shows_progress_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    truth = _truth()
    evaluate_detections(truth, truth)
    assert "evaluating:" in terminal.getvalue() and "0/40" in terminal.getvalue()


def _coco_loop(
    iou: np.ndarray, threshold: float, ignored: list[bool], crowd: list[bool]
) -> list[int]:
    """pycocotools' evaluateImg matching loop, transcribed (references sorted ignored-last)."""
    order = sorted(range(iou.shape[1]), key=lambda g: ignored[g])
    taken = [False] * iou.shape[1]
    out = []
    for d in range(iou.shape[0]):
        best, m = min(threshold, 1 - 1e-10), -1
        for g in order:
            if taken[g] and not crowd[g]:
                continue
            if m > -1 and not ignored[m] and ignored[g]:
                break
            if iou[d, g] < best:
                continue
            best, m = iou[d, g], g
        if m > -1:
            taken[m] = True
        out.append(m)
    return out


@settings(max_examples=200, deadline=None)
@given(
    iou=st.lists(
        st.lists(st.sampled_from([0.0, 0.3, 0.5, 0.55, 0.7, 0.95, 1.0]), min_size=3, max_size=3),
        max_size=5,
    ),
    ignored=st.lists(st.booleans(), min_size=3, max_size=3),
    crowd=st.lists(st.booleans(), min_size=3, max_size=3),
    use_ignored=st.booleans(),
)
def test_greedy_match_is_cocos_loop(
    iou: list[list[float]], ignored: list[bool], crowd: list[bool], use_ignored: bool
) -> None:
    from gt_toolkit.evaluation.metrics import COCO_IOU_THRESHOLDS, _greedy_match

    matrix = np.array(iou, dtype=float).reshape(len(iou), 3)
    # COCOeval ignores every crowd region; without ignored flags there is no crowd either.
    crowds = [c and use_ignored for c in crowd]
    flags = [(i or c) and use_ignored for i, c in zip(ignored, crowd, strict=True)]
    got = _greedy_match(
        matrix,
        COCO_IOU_THRESHOLDS,
        np.array(flags) if use_ignored else None,
        np.array(crowds) if use_ignored else None,
    )
    for t, threshold in enumerate(COCO_IOU_THRESHOLDS):
        assert got[t].tolist() == _coco_loop(matrix, float(threshold), flags, crowds)


def test_failed_and_all_dropped_objects_are_skipped_not_scored_as_negatives(
    tmp_path: Path,
) -> None:
    from gt_toolkit.formats.detection_label import build_detection_label

    def line(ref: str, **meta: Any) -> str:
        pair = build_detection_label(
            "boxes", [], image_size=None, job_name="j", extra_metadata=meta
        )
        return json.dumps({"source-ref": ref, **pair}) + "\n"

    dropped = [{"workerId": "w", "box": {}, "reason": "unknown-label"}]
    path = tmp_path / "out.manifest"
    path.write_text(
        line("s3://bkt/failed.jpg", **{"failure-reason": "no usable worker answer"})
        + line("s3://bkt/dropped.jpg", **{"dropped-boxes": dropped})
        + line("s3://bkt/empty.jpg")
    )
    found = read_detection_set(path)
    assert found.boxes == {"s3://bkt/empty.jpg": []}
    assert [s.split(": ")[1] for s in found.skipped] == ["failed-object", "all-boxes-dropped"]
