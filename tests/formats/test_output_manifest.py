from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_toolkit.errors import ConversionError, ManifestError
from gt_toolkit.formats.detection_label import build_detection_label
from gt_toolkit.formats.manifest import ReadStats, parse_manifest_lines
from gt_toolkit.formats.output_manifest import (
    ClassMap,
    LabelKind,
    OutputReader,
    OutputStats,
    detect_label_attributes,
    iter_classification_records,
    iter_detection_records,
    iter_output_records,
    parse_creation_date,
)
from tests.helpers import DATA

OUTPUTS = DATA / "outputs"


def _rejects(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_console_job_attribute_is_job_name_and_every_case_is_reported(tmp_path: Path) -> None:
    stats = OutputStats()
    rejects = tmp_path / "rejects.jsonl"
    recs = list(
        iter_detection_records(OUTPUTS / "console-job.manifest", rejects=rejects, stats=stats)
    )
    assert [r.line_no for r in recs] == [1, 2, 4, 6]
    assert {r.attribute for r in recs} == {"dogs-and-toys"}
    assert stats.attribute == "dogs-and-toys"
    assert [b.label for b in recs[0].boxes] == ["dog", "toy"]
    assert (recs[0].boxes[0].left, recs[0].boxes[0].top) == (12, 40)
    assert recs[1].boxes == []  # empty image kept by default
    # line 4: class_id "1" (string) becomes 1; the first box reaches outside 640x480: clipped
    four = recs[2]
    assert four.class_ids == [1, 1, 0]
    assert (four.boxes[0].width, four.boxes[0].height) == (40, 80)
    assert four.label["annotations"][0]["class_id"] == 1
    assert four.label["annotations"][0]["width"] == 40
    assert stats.clipped_boxes == 1
    assert stats.empty_images == 1
    assert stats.max_boxes == 3
    assert dict(stats.boxes_per_class) == {"dog": 3, "toy": 3}
    assert stats.read.blank == 1
    got = {(r["line"], r["reason"]) for r in _rejects(rejects)}
    assert got == {(3, "failed-object"), (7, "invalid-json")}
    assert "expired" in next(r["detail"] for r in _rejects(rejects) if r["line"] == 3)
    assert dict(stats.rejected) == {"failed-object": 1, "invalid-json": 1}


def test_reject_policies_for_boxes_and_empty_images(tmp_path: Path) -> None:
    rejects = tmp_path / "r.jsonl"
    recs = list(
        iter_detection_records(
            OUTPUTS / "console-job.manifest",
            rejects=rejects,
            box_policy="reject",
            empty_policy="reject",
        )
    )
    assert [r.line_no for r in recs] == [1, 6]
    reasons = {r["line"]: r["reason"] for r in _rejects(rejects)}
    assert reasons == {
        2: "empty-image",
        3: "failed-object",
        4: "box-outside-image",
        7: "invalid-json",
    }


def test_strict_policy_stops_at_the_first_reject() -> None:
    with pytest.raises(ManifestError, match=r"console-job.manifest:3: failed-object"):
        list(iter_detection_records(OUTPUTS / "console-job.manifest", policy="strict"))


def test_api_job_custom_attribute_and_sparse_class_ids() -> None:
    stats = OutputStats()
    recs = list(iter_detection_records(OUTPUTS / "api-job.manifest", stats=stats))
    assert {r.attribute for r in recs} == {"boxes"}
    assert stats.class_map.to_json() == {"0": "car", "1": "truck", "2": "bike"}
    assert recs[0].boxes[1].score == pytest.approx(0.64)
    assert recs[3].boxes[0].width == 40  # 280 + 100 > 320: clipped


def test_chained_job_picks_newest_unless_told(tmp_path: Path) -> None:
    stats = OutputStats()
    rejects = tmp_path / "r.jsonl"
    recs = list(
        iter_detection_records(
            OUTPUTS / "chained-adjustment.manifest", stats=stats, rejects=rejects
        )
    )
    assert stats.attribute == "adjusted-boxes"
    assert stats.other_attributes == ["boxes"]
    assert [len(r.boxes) for r in recs] == [2, 1]
    assert [r["reason"] for r in _rejects(rejects)] == ["failed-object"]
    older = list(
        iter_detection_records(OUTPUTS / "chained-adjustment.manifest", label_attribute="boxes")
    )
    assert [len(r.boxes) for r in older] == [1, 1, 1]


def test_class_map_conflict_names_both_lines() -> None:
    with pytest.raises(ConversionError, match=r"'car' at line 1 but 'person' at line 3"):
        list(iter_detection_records(OUTPUTS / "class-conflict.manifest"))


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("video-tracking.manifest", r"tracks-ref.*video-object-tracking.*SeqLabel"),
        ("semantic-segmentation.manifest", r"mask-ref.*semantic-segmentation"),
        ("classification-single.manifest", r"'animal' is groundtruth/image-classification"),
    ],
)
def test_non_detection_outputs_are_refused_clearly(name: str, pattern: str) -> None:
    with pytest.raises(ConversionError, match=pattern):
        list(iter_detection_records(OUTPUTS / name))


def test_classification_single_label_accepts_int_and_string_ids(tmp_path: Path) -> None:
    stats = OutputStats()
    recs = list(
        iter_classification_records(
            OUTPUTS / "classification-single.manifest", stats=stats, rejects=tmp_path / "r"
        )
    )
    assert [(r.class_ids, r.labels) for r in recs] == [
        ([1], ["dog"]),
        ([0], ["cat"]),
        ([0], ["cat"]),
        ([2], ["bird"]),
    ]
    assert not recs[0].multi_label
    assert stats.class_map.sorted_names() == ["cat", "dog", "bird"]
    assert dict(stats.rejected) == {"failed-object": 1}


def test_classification_multi_label() -> None:
    stats = OutputStats()
    recs = list(iter_classification_records(OUTPUTS / "classification-multi.manifest", stats=stats))
    assert [r.class_ids for r in recs] == [[0, 1], [2], []]
    assert recs[0].labels == ["beach", "people"]
    assert recs[0].multi_label
    assert stats.empty_images == 1


def test_plain_read_stats_are_filled_too() -> None:
    stats = ReadStats()
    list(iter_detection_records(OUTPUTS / "console-job.manifest", stats=stats))
    assert (stats.lines, stats.blank, stats.accepted) == (7, 1, 4)
    assert stats.rejected_total == 2


def test_detect_label_attributes_orders_newest_first() -> None:
    line = orjson.loads((OUTPUTS / "chained-adjustment.manifest").read_bytes().splitlines()[2])
    attrs = detect_label_attributes(line)
    assert [(a.name, a.kind, a.failed) for a in attrs] == [
        ("boxes", LabelKind.DETECTION, False),
        ("adjusted-boxes", LabelKind.FAILED, True),
    ]
    assert attrs[1].failure_reason == "ClientError: worker task expired"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-08-18T17:57:40.723894", dt.datetime(2025, 8, 18, 17, 57, 40, 723894)),
        ("2024-06-01T10:00:00.000+0000", dt.datetime(2024, 6, 1, 10)),
        ("2024-06-01 10:00:00Z", dt.datetime(2024, 6, 1, 10)),
        ("2024-06-01T10:00", dt.datetime(2024, 6, 1, 10)),
        ("2024-06-01T10:00:00.1234567", dt.datetime(2024, 6, 1, 10, 0, 0, 123456)),
        ("2024-06-01T10:00:00 +00:00", dt.datetime(2024, 6, 1, 10)),
    ],
)
def test_creation_dates_parse_leniently(text: str, expected: dt.datetime) -> None:
    assert parse_creation_date(text) == expected.replace(tzinfo=dt.UTC)


@pytest.mark.parametrize("text", ["", "yesterday", None, 12])
def test_unreadable_creation_dates_are_none(text: object) -> None:
    assert parse_creation_date(text) is None


def test_given_class_map_is_checked() -> None:
    with pytest.raises(ConversionError, match="given class map"):
        list(
            iter_detection_records(
                OUTPUTS / "api-job.manifest", class_map=ClassMap({0: "automobile"})
            )
        )


_names = st.sampled_from(["car", "bike", "truck", "person", "dog"])
_box = st.builds(
    lambda label, x, y, w, h, c: {
        "label": label,
        "left": x,
        "top": y,
        "width": w,
        "height": h,
        "confidence": c,
    },
    _names,
    st.integers(0, 500),
    st.integers(0, 300),
    st.integers(1, 140),
    st.integers(1, 180),
    st.floats(0, 1),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_box, max_size=6), min_size=1, max_size=6), st.booleans())
def test_parser_round_trips_built_labels(images: list[list[Any]], string_ids: bool) -> None:
    labels = ["car", "bike", "truck", "person", "dog"]
    raw: list[bytes] = []
    for i, boxes in enumerate(images):
        line: dict[str, Any] = {"source-ref": f"s3://bkt-x/img{i}.jpg"}
        line.update(
            build_detection_label(
                "lbl",
                boxes,
                image_size={"width": 640, "height": 480, "depth": 3},
                labels=labels,
                job_name="j",
            )
        )
        if string_ids:
            for ann in line["lbl"]["annotations"]:
                ann["class_id"] = str(ann["class_id"])
        raw.append(orjson.dumps(line))
    reader = OutputReader(want=frozenset({LabelKind.DETECTION}))
    rejects: list[dict[str, Any]] = []
    recs = list(
        reader.iter_records(parse_manifest_lines(raw, source="mem"), on_reject=rejects.append)
    )
    assert rejects == []
    assert len(recs) == len(images)
    for rec, boxes in zip(recs, images, strict=True):
        assert isinstance(rec.boxes, list)
        got = [(b.label, b.left, b.top, b.width, b.height) for b in rec.boxes]
        want = []
        for b in boxes:
            # clipping to 640x480 is the only change the reader may make
            x0, y0 = b["left"], b["top"]
            x1, y1 = min(640, x0 + b["width"]), min(480, y0 + b["height"])
            want.append((b["label"], x0, y0, x1 - x0, y1 - y0))
        assert got == want
        assert [b.score for b in rec.boxes] == [
            pytest.approx(round(b["confidence"], 4)) for b in boxes
        ]


def _lambda_line(ref: str, boxes: list[Any], **extra: Any) -> bytes:
    """A line shaped as the post-annotation Lambda writes it (boxes as ConsolidatedBox)."""
    pair = build_detection_label(
        "boxes",
        boxes,
        image_size={"width": 100, "height": 100},
        labels=["car"],
        job_name="j",
        extra_metadata=extra,
    )
    return orjson.dumps({"source-ref": ref, **pair})


CAR = {"label": "car", "left": 1, "top": 1, "width": 10, "height": 10, "confidence": 0.9}
DROPPED = {"workerId": "w1", "box": {**CAR, "label": "truck"}, "reason": "unknown-label"}


@pytest.mark.parametrize("first", [True, False], ids=["failed-first", "failed-later"])
def test_failure_reason_fails_the_object_whatever_else_the_line_holds(
    tmp_path: Path, first: bool
) -> None:
    failed = _lambda_line("s3://bkt/f.jpg", [], **{"failure-reason": "no usable worker answer"})
    good = _lambda_line("s3://bkt/g.jpg", [CAR])
    path = tmp_path / "out.manifest"
    path.write_bytes(b"\n".join([failed, good] if first else [good, failed]) + b"\n")
    stats = OutputStats()
    recs = list(iter_detection_records(path, stats=stats, rejects=tmp_path / "r.jsonl"))
    assert [r.source_ref for r in recs] == ["s3://bkt/g.jpg"]
    assert stats.empty_images == 0
    (reject,) = _rejects(tmp_path / "r.jsonl")
    assert reject["reason"] == "failed-object"
    assert "no usable worker answer" in reject["detail"]
    attrs = detect_label_attributes(orjson.loads(failed))
    assert [(a.name, a.failed) for a in attrs] == [("boxes", True)]


def test_failed_classification_with_a_value_is_not_a_label(tmp_path: Path) -> None:
    meta = {"class-name": "dog", "type": "groundtruth/image-classification"}
    lines = [
        {"source-ref": "s3://bkt/a.jpg", "animal": 0, "animal-metadata": meta},
        {
            "source-ref": "s3://bkt/b.jpg",
            "animal": 0,
            "animal-metadata": {**meta, "failure-reason": "ClientError: timeout"},
        },
    ]
    path = tmp_path / "out.manifest"
    path.write_bytes(b"\n".join(map(orjson.dumps, lines)) + b"\n")
    stats = OutputStats()
    assert [r.line_no for r in iter_classification_records(path, stats=stats)] == [1]
    assert dict(stats.rejected) == {"failed-object": 1}


def test_objects_whose_boxes_were_all_dropped_are_flagged_not_negatives(tmp_path: Path) -> None:
    trimmed = {"omitted": "over the Lambda response size limit", "count": 3, "payload": "s3://x"}
    lines = [
        _lambda_line("s3://bkt/all.jpg", [], **{"dropped-boxes": [DROPPED, DROPPED]}),
        _lambda_line("s3://bkt/trimmed.jpg", [], **{"dropped-boxes": trimmed}),
        _lambda_line("s3://bkt/some.jpg", [CAR], **{"dropped-boxes": [DROPPED]}),
        _lambda_line("s3://bkt/empty.jpg", []),
    ]
    path = tmp_path / "out.manifest"
    path.write_bytes(b"\n".join(lines) + b"\n")
    stats = OutputStats()
    recs = list(iter_detection_records(path, stats=stats, rejects=tmp_path / "r.jsonl"))
    assert [r.source_ref for r in recs] == ["s3://bkt/some.jpg", "s3://bkt/empty.jpg"]
    assert stats.empty_images == 1  # only the object nobody drew on
    rejects = _rejects(tmp_path / "r.jsonl")
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (1, "all-boxes-dropped"),
        (2, "all-boxes-dropped"),
    ]
    assert "all 3 box(es)" in rejects[1]["detail"]


@pytest.mark.parametrize("refuse_every", [None, 2])
def test_note_hears_exactly_the_records_yielded_and_counts_are_theirs(
    tmp_path: Path, refuse_every: int | None
) -> None:
    """``note`` is told each record the check accepted (all, without a check), in order;
    the per-class box counts and the most boxes per image are those of the records yielded."""
    noted: list[str] = []
    seen = [0]

    def check(rec: Any) -> str | None:
        seen[0] += 1
        return "refused" if refuse_every and seen[0] % refuse_every == 0 else None

    stats = OutputStats()
    recs = list(
        iter_output_records(
            OUTPUTS / "console-job.manifest",
            kinds=[LabelKind.DETECTION],
            rejects=tmp_path / "r.jsonl",
            stats=stats,
            check=check if refuse_every else None,
            note=noted.append,
        )
    )
    assert recs
    assert noted == [r.source_ref for r in recs]
    boxes: dict[str, int] = {}
    for rec in recs:
        for name in rec.labels:
            boxes[name] = boxes.get(name, 0) + 1
    assert dict(stats.boxes_per_class) == boxes
    assert stats.boxes == sum(boxes.values())
    assert stats.max_boxes == max(len(r.labels) for r in recs)
    if refuse_every:
        assert stats.rejected["refused"] == seen[0] // refuse_every > 0
