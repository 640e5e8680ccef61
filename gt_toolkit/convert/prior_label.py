"""The input manifest ``from-coco`` and ``from-yolo`` write: boxes from elsewhere as a prior label.

Each line carries the boxes as a bounding-box label attribute plus ``-metadata`` (the shape
Ground Truth itself writes), ready for an adjustment job or for the pre-annotation Lambda to
show as ``initialValue``. Coordinates are kept exactly as the source gives them. Class ids
are the positions in ``labels`` (the ``labelCategories`` order the job should use).

Items of the source that cannot become boxes are rejects, like bad manifest lines: each is
counted by reason and written, with its file, position and reason, to the rejects file
(under the ``strict`` policy the first one stops the run).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import orjson

from gt_toolkit.convert.options import ConversionResult, ConvertOptions
from gt_toolkit.convert.records import ref_key
from gt_toolkit.convert.staging import StagedOutput
from gt_toolkit.errors import ConversionError, S3UriError
from gt_toolkit.formats.detection_label import (
    DETECTION_TYPE,
    build_detection_label,
    label_attribute_problems,
    now_creation_date,
)
from gt_toolkit.formats.manifest import RejectPolicy, RejectsSink
from gt_toolkit.formats.output_manifest import OutputStats
from gt_toolkit.storage.files import LineWriter
from gt_toolkit.storage.s3 import is_s3_uri, parse_s3_uri
from gt_toolkit.types import ConsolidatedBox, ImageSize

__all__ = ["DEFAULT_PRIOR_ATTRIBUTE", "PriorManifest", "source_ref_for", "unique_labels"]

DEFAULT_PRIOR_ATTRIBUTE = "prior-boxes"
_RAW_LIMIT = 2000  # characters of a rejected item kept in the rejects file
logger = logging.getLogger(__name__)


def source_ref_for(path: str, prefix: str | None, where: str) -> str:
    """``path`` as an ``s3://`` source-ref: as is, or joined to ``--image-prefix``.

    Raises:
        ConversionError: no prefix for a path, or a source-ref the manifest readers would
            reject (``s3://b/a.jpg``: a bucket name S3 does not allow).
    """
    if is_s3_uri(path):
        ref = path
    elif not prefix:
        raise ConversionError(
            f"{where}: {path!r} is not an s3:// URI; pass --image-prefix s3://bucket/prefix/"
        )
    else:
        ref = prefix.rstrip("/") + "/" + path.lstrip("/")
    try:
        parse_s3_uri(ref)
    except S3UriError as exc:
        raise ConversionError(f"{where}: {exc}") from None
    return ref


def unique_labels(names: Sequence[str], where: str) -> list[str]:
    """``names`` as a label list; two classes with one name cannot be told apart by name."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise ConversionError(
                f"{where}: classes {seen[name]} and {i} are both named {name!r}; "
                "evaluation and Ground Truth match classes by name"
            )
        seen[name] = i
    return list(names)


class PriorManifest:
    """Writes the prior-label manifest of one ``from-*`` run and keeps its rejects.

    Use as a context manager around the run; :meth:`result` after the block.
    """

    def __init__(
        self, target: str, out: StagedOutput, options: ConvertOptions, labels: list[str]
    ) -> None:
        self.target = target
        self.out = out
        self.options = options
        self.labels = labels
        self.attribute = options.label_attribute or DEFAULT_PRIOR_ATTRIBUTE
        problems = label_attribute_problems(self.attribute)
        if problems:
            raise ConversionError("; ".join(problems))
        self.stats = OutputStats(attribute=self.attribute, label_type=DETECTION_TYPE)
        self.creation_date = now_creation_date()  # one import, one date
        for cid, name in enumerate(labels):
            self.stats.class_map.add(cid, name, 0)
        self._rejects = RejectsSink(
            options.rejects, policy=RejectPolicy.COLLECT, source=out.out, store=options.store
        )
        self._lines: LineWriter | None = None
        self._cm: Any = None
        self._refs: set[int] = set()  # the source-refs written (records.ref_key)

    def __enter__(self) -> PriorManifest:
        self._cm = self.out.open(self.out.out)
        self._lines = LineWriter(self._cm.__enter__())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and self._lines is not None:
            self._lines.flush()
        self._cm.__exit__(exc_type, exc, tb)
        self._rejects.close(exc)

    def add(
        self,
        source_ref: str,
        boxes: list[ConsolidatedBox],
        size: ImageSize | None,
        *,
        file: str,
        where: str,
    ) -> bool:
        """Write one image's line (``file`` and ``where``: the item it comes from); written?

        A second item of a source-ref already written is a ``duplicate-source-ref`` reject,
        its line kept in the rejects file: two lines of one image were two tasks of a job
        on it, and every training target refuses the second anyway.
        """
        key = ref_key(source_ref)
        if key in self._refs:
            item = {"source-ref": source_ref, "boxes": boxes, "image_size": size}
            detail = f"{source_ref} is already the source-ref of an earlier line"
            self.reject(file, where, "duplicate-source-ref", detail, item)
            return False
        self._refs.add(key)
        st = self.stats
        st.objects += 1
        st.boxes += len(boxes)
        st.max_boxes = max(st.max_boxes, len(boxes))
        if not boxes:
            st.empty_images += 1
        for b in boxes:
            st.boxes_per_class[b["label"]] += 1
        line: dict[str, Any] = {"source-ref": source_ref}
        line.update(
            build_detection_label(
                self.attribute,
                boxes,
                image_size=size,
                labels=self.labels,
                job_name=self.options.job_name,
                human_annotated=self.options.human_annotated,
                creation_date=self.creation_date,
                whole_pixels=False,
            )
        )
        if self._lines is None:
            raise ConversionError("PriorManifest.add outside its with-block")
        self._lines.add(orjson.dumps(line))
        return True

    def reject(self, file: str, where: str, reason: str, detail: str, raw: object) -> None:
        """Count and keep one item that cannot become a box (``where``: line or position)."""
        if RejectPolicy(self.options.policy) is RejectPolicy.STRICT:
            raise ConversionError(f"{file}:{where}: {reason}: {detail}")
        self.stats.rejected[reason] += 1
        text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
        self._rejects.add(
            {
                "file": file,
                "position": where,
                "reason": reason,
                "detail": detail,
                "raw": text[:_RAW_LIMIT],
            }
        )

    def result(self, **extra: Any) -> ConversionResult:
        """The run's result; ``extra`` facts go into the summary."""
        self.stats.read.accepted = self.stats.objects
        return ConversionResult(
            target=self.target,
            stats=self.stats,
            outputs={"manifest": self.out.out},
            extra={"lines": self.stats.objects, **extra},
        )
