from __future__ import annotations

from typing import Any

import pytest

from gt_toolkit.consolidation.engine import consolidate_image
from gt_toolkit.consolidation.label_check import LabelTally, label_mismatch, unknown_labels
from gt_toolkit.types import WorkerBox


def box(label: str, left: float = 10) -> WorkerBox:
    return {"label": label, "left": left, "top": 10, "width": 40, "height": 40}


@pytest.mark.parametrize(
    ("unknown", "boxes", "mismatch"),
    [
        ({}, 0, False),  # nothing drawn
        ({}, 10, False),
        ({"truck": 1}, 10, False),  # a stray label: dropped box by box
        ({"Car": 5}, 10, False),  # half is not most
        ({"Car": 6}, 10, True),
        ({"Car": 3, "Bike": 3}, 10, True),  # several labels add up
        ({"ball": 444}, 444, True),  # the README example: every box
        ({"ball": 0}, 0, False),
    ],
)
def test_the_rule_is_more_than_half_of_the_boxes(
    unknown: dict[str, int], boxes: int, mismatch: bool
) -> None:
    assert (label_mismatch(unknown, boxes, ["car", "bike"]) is not None) is mismatch


def test_the_message_lists_labels_seen_and_expected_with_near_misses() -> None:
    found = label_mismatch({"Car": 6, "ball": 9, " bike": 1}, 20, ["car", "bike", "person"])
    assert found is not None
    assert (found.dropped, found.boxes, found.expected) == (16, 20, ("car", "bike", "person"))
    text = found.message
    assert text.startswith("label list mismatch: 16 of 20 boxes were dropped as unknown-label")
    assert "labels seen: 'ball' (9), 'Car' (6), ' bike' (1)" in text  # most boxes first
    assert "labels expected: 'car', 'bike', 'person'" in text
    assert "'Car' looks like 'car', ' bike' looks like 'bike'" in text
    assert "'ball' looks like" not in text


def test_the_message_stays_short_for_many_or_long_labels() -> None:
    unknown = {f"label-{i:03}": 1 for i in range(500)} | {"x" * 5_000: 1}
    found = label_mismatch(unknown, 501, ["y" * 5_000])
    assert found is not None and len(found.seen) == 501
    assert "and 481 more" in found.message and "(5000 characters)" in found.message
    assert len(found.message) < 3_000


def test_unknown_labels_counts_what_the_engine_dropped_as_unknown() -> None:
    answers = [[box("car"), box("Car", 200), box("", 400)], [box("car"), box("Car", 202)]]
    result = consolidate_image(answers, labels=["car"])
    assert unknown_labels(answers, result) == {"Car": 2}  # the empty label is missing-label
    assert unknown_labels(answers, consolidate_image(answers)) == {}


def test_one_worker_flooding_an_answer_with_a_made_up_label_is_no_mismatch() -> None:
    # 10 images, three workers drawing the car; on one image a fourth answer holds 61 boxes
    # of "zzz": most boxes are unknown, but 1 of 31 answers, so the label list stands
    expected = ["car"]
    tally = LabelTally()
    for i in range(10):
        answers = [[box("car")], [box("car", 11)], [box("car", 12)]]
        if i == 0:
            answers.append([box("zzz", 200 + 3 * k) for k in range(61)])
        tally.add(answers, consolidate_image(answers, labels=expected))
    assert (tally.boxes, tally.answers, tally.misread) == (91, 31, 1)
    assert sum(tally.unknown.values()) == 61
    assert tally.mismatch(expected) is None
    assert label_mismatch(tally.unknown, tally.boxes, expected) is not None  # boxes alone


def test_a_label_list_that_matches_no_worker_is_a_mismatch_by_answers_too() -> None:
    tally = LabelTally()
    for _ in range(5):
        answers = [[box("Car")], [box("Car", 11)], [box("car", 12), box("Car", 100)]]
        tally.add(answers, consolidate_image(answers, labels=["car"]))
    assert (tally.answers, tally.misread) == (15, 10)  # the third worker's half is not most
    found = tally.mismatch(["car"])
    assert found is not None and found.dropped == 15


@pytest.mark.parametrize(
    ("unknown", "drawn", "mismatch"),
    [
        ({"person": 9}, {"car": 91, "person": 9}, True),  # the list says "Person"
        ({" car": 2}, {"car": 0, " car": 2}, True),  # spaces count as another spelling
        ({"Person": 1}, {"car": 90, "person": 9, "Person": 1}, False),  # outnumbered: a slip
        ({"Person": 9}, {"car": 82, "person": 9, "Person": 9}, False),  # a tie is no proof
        ({"truck": 9}, {"car": 91, "truck": 9}, False),  # not a respelling: box by box
        ({}, {"car": 91, "person": 9}, False),  # the healthy job
    ],
)
def test_a_listed_label_the_workers_spell_otherwise_is_a_mismatch(
    unknown: dict[str, int], drawn: dict[str, int], mismatch: bool
) -> None:
    expected = ["car", "Person"] if "person" in unknown else ["car", "person"]
    found = label_mismatch(unknown, 100, expected, answers=50, misread=5, drawn=drawn)
    assert (found is not None) is mismatch
    assert label_mismatch(unknown, 100, expected, answers=50, misread=5) is None  # counts alone


def test_a_tally_catches_one_mis_cased_label_of_several() -> None:
    tally = LabelTally()
    for i in range(10):
        label = "person" if i < 2 else "car"  # one image in five holds the rarer class
        answers = [[box(label)], [box(label, 11)], [box(label, 12)]]
        tally.add(answers, consolidate_image(answers, labels=["car", "Person"]))
    assert tally.drawn == {"car": 24, "person": 6}
    found = tally.mismatch(["car", "Person"])
    assert found is not None and found.dropped == 6
    assert "'person' looks like 'Person'" in found.message
    merged = LabelTally()
    merged += tally  # the Lambda sums its answers' tallies
    assert merged.drawn == tally.drawn and merged.mismatch(["car", "Person"]) == found


def test_a_tally_takes_the_malformed_boxes_consolidation_records() -> None:
    # consolidate_image records a box that is not an object as malformed; the tally must
    # count the image all the same, not fail on the box's missing label
    answers: list[list[Any]] = [[box("car"), None, "junk"], [box("car", 11)]]
    result = consolidate_image(answers, labels=["car"])
    assert [d["reason"] for d in result.dropped] == ["malformed", "malformed"]
    tally = LabelTally()
    tally.add(answers, result)
    assert tally.drawn == {"car": 2} and tally.mismatch(["car"]) is None
