"""The Lambda's deadline: stop consolidating while there is still time to answer every object.

Lambda kills an invocation at its timeout, and the post-annotation Lambda's answers only reach
Ground Truth when the handler returns, so a batch that runs past the timeout loses every answer.
:class:`Deadline` asks the Lambda context (``get_remaining_time_in_millis``) before each object
whether the time left still covers, in this order of size on a dense batch:

* the next object, estimated as the slowest object of this call so far (an object far denser
  than every one before it can still overrun: nothing interrupts the engine mid-object);
* encoding the response: :data:`ENCODE_PASSES` times the encoding measured on the entries so
  far (the runtime encodes what the handler returns, and the batch-wide checks may re-encode
  an entry twice: a label mismatch, a trimmed diagnostic);
* answering each object not yet consolidated as failed, :data:`FAIL_MS` each; and
* :data:`FLOOR_MS` for the runtime to send the response and the last log lines.

The response goes back inline (Ground Truth reads the Lambda's return value,
``docs/ground-truth-formats.md`` §3), so no S3 write needs time. The measured parts are taken
on the Lambda's own CPU, which scales with its memory size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["ENCODE_PASSES", "FAIL_MS", "FLOOR_MS", "Deadline", "LambdaContext"]

ENCODE_PASSES = 3
"""Encodings of each entry the time left must still cover (see the module docstring)."""

FAIL_MS = 1.0
"""Milliseconds kept per object to answer it as failed (measured: 20 us on one x86 core)."""

FLOOR_MS = 500.0
"""Milliseconds kept for the runtime to send the response and for the last log lines."""


class LambdaContext(Protocol):
    """The part of AWS Lambda's context object the post-annotation handler uses."""

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until Lambda ends the invocation."""
        ...


@dataclass(slots=True)
class Deadline:
    """Whether the time left still covers the next object and answering all the others.

    Without a context (the package API called directly) time never runs out.

    Attributes:
        context: the invocation's Lambda context, or ``None``.
        slowest_ms: the slowest object so far, its reading, consolidation and encoding.
        encode_ms: time spent encoding the entries so far.
        remaining_ms: the time left when :meth:`passed` said yes.
        reserve_ms: the time that was needed then.
        left: the objects not consolidated then (0 while time is left).
    """

    context: LambdaContext | None
    slowest_ms: float = 0.0
    encode_ms: float = 0.0
    remaining_ms: int | None = None
    reserve_ms: float = 0.0
    left: int = 0

    def reserve(self, unanswered: int) -> float:
        """Milliseconds needed to consolidate one more object and still answer the others."""
        return FLOOR_MS + FAIL_MS * unanswered + ENCODE_PASSES * self.encode_ms + self.slowest_ms

    def passed(self, unanswered: int) -> bool:
        """True when the time left no longer covers :meth:`reserve`; asks the clock once."""
        if self.context is None:
            return False
        remaining = self.context.get_remaining_time_in_millis()
        reserve = self.reserve(unanswered)
        if remaining >= reserve:
            return False
        self.remaining_ms, self.reserve_ms, self.left = remaining, reserve, unanswered
        return True

    def wait_s(self, unanswered: int) -> float | None:
        """Seconds the handler may wait (for answers read from S3) and still have the reserve.

        Asks the clock once; ``None`` without a context (no limit). A read can hang far longer
        than the Lambda has (botocore waits 60 s a try, five tries): a wait that outlasts this
        ends the consolidation as :meth:`passed` does (:meth:`stop`).
        """
        if self.context is None:
            return None
        remaining = self.context.get_remaining_time_in_millis()
        return max(0.0, remaining - self.reserve(unanswered)) / 1_000

    def stop(self, unanswered: int) -> None:
        """Time is up, whatever the clock says now (a wait ran out): record it as :meth:`passed`."""
        remaining = self.context.get_remaining_time_in_millis() if self.context else 0
        self.remaining_ms, self.reserve_ms = remaining, self.reserve(unanswered)
        self.left = unanswered

    def record(self, seconds: float, encode_seconds: float) -> None:
        """Account one consolidated object: its whole time, and the part spent encoding it."""
        self.slowest_ms = max(self.slowest_ms, seconds * 1_000)
        self.encode_ms += encode_seconds * 1_000
