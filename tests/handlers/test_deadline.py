from __future__ import annotations

import pytest

from gt_toolkit.handlers.deadline import ENCODE_PASSES, FAIL_MS, FLOOR_MS, Deadline
from tests.helpers import FakeLambdaContext


def test_without_a_context_time_never_runs_out() -> None:
    deadline = Deadline(None)
    deadline.record(1_000.0, 1_000.0)
    assert not deadline.passed(10**6)
    assert deadline.remaining_ms is None and deadline.left == 0


def test_record_keeps_the_slowest_object_and_adds_up_the_encoding() -> None:
    deadline = Deadline(None)
    for seconds, encoding in ((0.2, 0.01), (0.5, 0.02), (0.1, 0.03)):
        deadline.record(seconds, encoding)
    assert deadline.slowest_ms == pytest.approx(500)
    assert deadline.encode_ms == pytest.approx(60)
    expected = FLOOR_MS + 7 * FAIL_MS + ENCODE_PASSES * 60 + 500
    assert deadline.reserve(7) == pytest.approx(expected)


# (slowest s, encoding s, objects left): the reserve is the floor, the failed answers, the
# encodings and the next object; a millisecond less than it and the deadline has passed
@pytest.mark.parametrize(
    ("slowest", "encoding", "left"),
    [(0.0, 0.0, 0), (0.0, 0.0, 1_000), (0.25, 0.0, 3), (0.0, 0.125, 3), (22.0, 1.5, 5_000)],
)
def test_the_deadline_passes_a_millisecond_under_the_reserve(
    slowest: float, encoding: float, left: int
) -> None:
    reserve = FLOOR_MS + FAIL_MS * left + ENCODE_PASSES * encoding * 1_000 + slowest * 1_000
    assert reserve == int(reserve)  # the draws above are exact in binary
    context = FakeLambdaContext(int(reserve), int(reserve) - 1)
    deadline = Deadline(context)
    deadline.record(slowest, encoding)
    assert not deadline.passed(left)
    assert deadline.remaining_ms is None
    assert deadline.passed(left)
    assert deadline.remaining_ms == reserve - 1
    assert (deadline.reserve_ms, deadline.left) == (reserve, left)
    assert context.asked == 2
