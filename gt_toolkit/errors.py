"""The one exception tree of gt_toolkit.

Every error the toolkit raises on purpose derives from :class:`GtToolkitError`, so the CLI
can print it as one line and exit 1, while any other exception is a bug and keeps its
traceback. Each class also inherits the builtin it resembles::

    GtToolkitError(Exception)
    ├── ManifestError(GtToolkitError, ValueError)      file:line: reason of a bad line
    ├── LabelFormatError(GtToolkitError, ValueError)   a label off Ground Truth's shape
    ├── CrowdSourceError(GtToolkitError, ValueError)   file:position: reason in a tool's export
    ├── S3UriError(GtToolkitError, ValueError)         not an s3://bucket/key URI
    ├── StorageError(GtToolkitError, OSError)          missing bucket or file, access denied
    │   └── NoMatchingObjectsError                     a prefix or folder with nothing to list
    ├── TemplateError(GtToolkitError)                  a worker template cannot be rendered
    ├── ValidationError(GtToolkitError, ValueError)    a request with one or more problems
    ├── ConversionError(GtToolkitError, ValueError)    an output manifest that cannot convert
    ├── ConsolidationError(GtToolkitError, ValueError) answers that cannot be consolidated
    ├── RejectedRecordError(GtToolkitError)            inside a reader: this record is a reject
    ├── JobFailedError(GtToolkitError)                 a SageMaker job or endpoint that failed
    │   ├── LabelingJobFailedError                     a labeling job ended Failed or Stopped
    │   └── EndpointFailedError                        an endpoint failed, or nothing to deploy
    ├── WaitTimeoutError(GtToolkitError, TimeoutError) a job or endpoint still running at the limit
    └── LambdaZipError(GtToolkitError)                 the Lambda zip cannot be built

Warnings (``warnings.warn`` categories, not raised)::

    LambdaResponseSizeWarning(UserWarning)             a labeling job whose consolidation batches
                                                       can pass Lambda's 6 MB response limit
    ServiceClosureWarning(UserWarning)                 a request opts into an AWS feature with
                                                       an announced end (Debugger, Profiler)
    ServiceQuotaWarning(UserWarning)                   a request past an AWS default quota, which
                                                       runs only once AWS Support raises it
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class GtToolkitError(Exception):
    """Root of every error gt_toolkit raises deliberately."""


class ManifestError(GtToolkitError, ValueError):
    """A manifest line that breaks the Ground Truth contract (strict policy)."""

    def __init__(self, source: str, line_no: int, reason: str) -> None:
        self.source = source
        self.line_no = line_no
        self.reason = reason
        super().__init__(f"{source}:{line_no}: {reason}")


class LabelFormatError(GtToolkitError, ValueError):
    """A label value, box, class id or image size that breaks Ground Truth's shape.

    The readers catch it per line or per box and turn it into a reject with its reason.
    """


class CrowdSourceError(GtToolkitError, ValueError):
    """A multi-annotator export (Label Studio, CVAT, COCO, worker answers) that cannot be read.

    ``position`` says where in ``source``, in the export's own terms (``task 3, annotation
    1``, ``line 12``, ``image 'a.jpg'``), since a streamed JSON document has no useful line.
    """

    def __init__(self, source: str, position: str, reason: str) -> None:
        self.source = source
        self.position = position
        self.reason = reason
        super().__init__(f"{source}: {position}: {reason}" if position else f"{source}: {reason}")


class S3UriError(GtToolkitError, ValueError):
    """A string that should be an ``s3://bucket/key`` URI and is not."""


class StorageError(GtToolkitError, OSError):
    """Local or S3 storage refused: missing bucket or file, access denied."""


class NoMatchingObjectsError(StorageError):
    """A prefix or folder that holds no object matching the filters."""


class TemplateError(GtToolkitError):
    """A worker task template that cannot be rendered or is unsafe."""


class ValidationError(GtToolkitError, ValueError):
    """A request or configuration with problems; lists every problem at once."""

    MAX_SHOWN = 20  # a message a person can read; ``problems`` keeps them all

    def __init__(self, problems: Sequence[str], *, what: str = "request") -> None:
        self.problems = list(problems)
        self.what = what
        lines = "\n".join(f"  - {p}" for p in self.problems[: self.MAX_SHOWN])
        more = len(self.problems) - self.MAX_SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{len(self.problems)} problem(s) in the {what}:\n{lines}{tail}")

    def one_line(self, shown: int = 5) -> str:
        """The message on one line, for a terminal: the first ``shown`` problems."""
        more = len(self.problems) - shown
        text = "; ".join(self.problems[:shown]) + (f"; and {more} more" if more > 0 else "")
        return f"{len(self.problems)} problem(s) in the {self.what}: {text}"


class ConversionError(GtToolkitError, ValueError):
    """An output manifest that cannot be converted to the requested target."""


class ConsolidationError(GtToolkitError, ValueError):
    """Worker answers that cannot be consolidated at all."""


class RejectedRecordError(GtToolkitError):
    """A record one reader sends to its rejects file, with a ``reason`` and a ``detail``.

    Raised and caught inside the reader (output-manifest lines, YOLO label lines), which
    writes the reject with its file and line; it never reaches a caller.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class JobFailedError(GtToolkitError):
    """A SageMaker job or endpoint that ended in failure."""


class LabelingJobFailedError(JobFailedError):
    """A labeling job ended Failed or Stopped; carries the last description."""

    def __init__(self, description: Mapping[str, Any]) -> None:
        self.description = dict(description)
        status = description.get("LabelingJobStatus")
        reason = description.get("FailureReason", "no reason given")
        super().__init__(f"labeling job {description.get('LabelingJobName')} {status}: {reason}")


class EndpointFailedError(JobFailedError):
    """An endpoint ended ``Failed`` (or the training job to deploy did not complete)."""


class WaitTimeoutError(GtToolkitError, TimeoutError):
    """A job or endpoint did not finish within the allowed time."""


class LambdaZipError(GtToolkitError):
    """The Lambda zip cannot be built: pip, bytecode or the import check failed."""


class LambdaResponseSizeWarning(UserWarning):
    """A labeling job whose post-annotation responses can pass Lambda's 6 MB limit."""


class ServiceClosureWarning(UserWarning):
    """A request uses an AWS feature that is closing (the message says when and what instead)."""


class ServiceQuotaWarning(UserWarning):
    """A request past an AWS default quota: it fails unless AWS Support has raised the quota."""
