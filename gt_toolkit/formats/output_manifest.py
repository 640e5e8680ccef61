"""Read Ground Truth *output* manifests: find the label, check it, say what was dropped and why.

An output manifest is an input manifest with ``<attr>`` + ``<attr>-metadata`` pairs added
(``docs/ground-truth-formats.md`` §2). The label attribute is the job name for console
jobs and anything for API jobs, so it is found by its ``-metadata`` partner and that
partner's ``type``, never by guessing from names. Chained and adjustment jobs add more pairs;
the newest by ``creation-date`` wins unless the caller names one.

The pure core is :func:`detect_label_attributes` and :class:`OutputReader`, which maps
parsed lines (from :func:`gt_toolkit.formats.manifest.parse_manifest_lines`) to records or rejects.
:func:`iter_detection_records` and :func:`iter_classification_records` are the I/O edges:
they stream a local file or S3 object in constant memory and write one rejects file holding
both unparsable lines and labels that cannot be used (failed objects, broken labels, boxes
outside the image, and empty images when asked), each with its line number and reason.
"""

from __future__ import annotations

import collections
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NoReturn, cast

from gt_toolkit.errors import ConversionError, LabelFormatError, RejectedRecordError
from gt_toolkit.formats.detection_label import (
    DETECTION_TYPE,
    MAX_CLASS_ID,
    MAX_COORDINATE,
    ScoredBox,
    label_boxes,
    label_image_size,
    parse_annotation,
    parse_class_id,
)
from gt_toolkit.formats.label_attributes import (
    METADATA_SUFFIX,
    LabelAttribute,
    LabelKind,
    detect_label_attributes,
    parse_creation_date,
)
from gt_toolkit.formats.manifest import (
    ManifestLine,
    ReadStats,
    RejectedLine,
    RejectPolicy,
    RejectsSink,
    dump_line,
    iter_accepted_lines,
)
from gt_toolkit.storage.files import Location, iter_raw_lines
from gt_toolkit.storage.s3 import S3Store
from gt_toolkit.types import ImageSize

__all__ = [
    "NOTHING_LOST",
    "BoxPolicy",
    "ClassMap",
    "ClassificationRecord",
    "DetectionRecord",
    "EmptyPolicy",
    "LabelAttribute",
    "LabelKind",
    "OutputReader",
    "OutputRejectReason",
    "OutputStats",
    "detect_label_attributes",
    "iter_classification_records",
    "iter_detection_records",
    "iter_output_records",
    "lost_count",
    "parse_creation_date",
]

logger = logging.getLogger(__name__)


class OutputRejectReason(StrEnum):
    """Why an output-manifest object was not converted (on top of manifest reject reasons)."""

    FAILED_OBJECT = "failed-object"
    NO_LABEL = "no-label"
    INVALID_LABEL = "invalid-label"
    UNKNOWN_CLASS = "unknown-class-id"
    BOX_OUTSIDE_IMAGE = "box-outside-image"
    EMPTY_IMAGE = "empty-image"
    ALL_BOXES_DROPPED = "all-boxes-dropped"
    NO_SOURCE_REF = "no-source-ref"
    OTHER_ATTRIBUTE = "other-label-attribute"


# Rejects that lose nothing the input held: objects nobody labeled (a failed object, a line
# without the label or with only another attribute's, such as an input's prior boxes on an
# object the job skipped, every box dropped by consolidation) and lines refused by a policy the user
# chose (``--boxes reject``, ``--empty reject``). Every other reject is a label that could not be
# read, and a run with one does not exit 0.
NOTHING_LOST = frozenset(
    {
        OutputRejectReason.FAILED_OBJECT,
        OutputRejectReason.NO_LABEL,
        OutputRejectReason.OTHER_ATTRIBUTE,
        OutputRejectReason.ALL_BOXES_DROPPED,
        OutputRejectReason.BOX_OUTSIDE_IMAGE,
        OutputRejectReason.EMPTY_IMAGE,
    }
)


def lost_count(rejected: Mapping[str, int]) -> int:
    """How many of these rejects (counts by reason) are labels that could not be read."""
    return sum(n for reason, n in rejected.items() if reason not in NOTHING_LOST)


class BoxPolicy(StrEnum):
    """Boxes reaching outside ``image_size``: clip them to the image, or reject the line."""

    CLIP = "clip"
    REJECT = "reject"


class EmptyPolicy(StrEnum):
    """Objects labeled with no boxes (or no classes): keep them, or send them to rejects."""

    KEEP = "keep"
    REJECT = "reject"


def _refusal(attr: LabelAttribute) -> str:
    """Why an attribute cannot be converted, in words a user can act on."""
    what = f"label attribute {attr.name!r} ({attr.type or 'no type'})"
    low = attr.type.lower()
    if attr.name.endswith("-ref") or "video" in low or "point-cloud" in low or "3d" in low:
        return (
            f"{what} cannot be converted: video-frame, 3D point cloud and semantic segmentation "
            "outputs are '-ref' attributes pointing at a label file or mask per object "
            "(e.g. SeqLabel.json), not boxes in the manifest, so they cannot feed training "
            "channels directly (see AWS sagemaker-examples #1682)"
        )
    if "segmentation" in low:
        return f"{what} cannot be converted: semantic segmentation labels are mask images"
    return (
        f"{what} cannot be converted: only groundtruth/object-detection, "
        "groundtruth/image-classification and groundtruth/image-classification-multilabel "
        "outputs are supported"
    )


class ClassMap:
    """The global class-id to name map, merged across lines; a conflict is an error.

    Ground Truth writes ``class-map`` per line, listing only the classes used on that line,
    so the dataset's map is the union. Two lines that name one id differently mean the file
    mixes jobs or was edited; converting it would silently mislabel boxes.
    """

    __slots__ = ("_first", "names")

    def __init__(self, names: Mapping[int, str] | None = None) -> None:
        self.names: dict[int, str] = dict(names or {})
        self._first: dict[int, int] = dict.fromkeys(self.names, 0)

    def add(self, class_id: int, name: str, line_no: int) -> None:
        """Record ``class_id -> name`` seen at ``line_no``.

        Raises:
            ConversionError: the id already has another name; names both lines.
        """
        known = self.names.get(class_id)
        if known is None:
            self.names[class_id] = name
            self._first[class_id] = line_no
        elif known != name:
            first = self._first[class_id]
            where = f"line {first}" if first else "the given class map"
            raise ConversionError(
                f"class id {class_id} is named {known!r} at {where} but {name!r} at line "
                f"{line_no}; the manifest mixes label sets (pick one job's lines, or fix the "
                "class-map)"
            )

    def refuse_shared_names(self) -> None:
        """Refuse a name that two class ids carry (for targets that number classes by id).

        Each line's ``class-map`` lists only its own classes, so two jobs whose label lists
        put ``cat`` at different places give ``0: cat`` and ``1: cat`` without an id clash:
        a trainer would learn two classes named ``cat`` (VOC, which names boxes, one).

        Raises:
            ConversionError: naming the ids and the lines that first named them.
        """
        owner: dict[str, int] = {}
        for class_id in sorted(self.names):
            name = self.names[class_id]
            first = owner.setdefault(name, class_id)
            if first != class_id:
                raise ConversionError(
                    f"class name {name!r} is class id {first} ({self._where(first)}) and "
                    f"{class_id} ({self._where(class_id)}); the manifest mixes label sets "
                    "(pick one job's lines, or fix the class-map)"
                )

    def _where(self, class_id: int) -> str:
        first = self._first.get(class_id, 0)
        return f"line {first}" if first else "the given class map"

    def name_of(self, class_id: int) -> str:
        """The name of ``class_id``; its decimal string when no line named it."""
        return self.names.get(class_id) or str(class_id)

    def sorted_names(self) -> list[str]:
        """Names in class-id order (the order training formats use for their indices)."""
        return [self.name_of(i) for i in sorted(self.names)]

    def to_json(self) -> dict[str, str]:
        """``{"0": "car", ...}``: Ground Truth's ``class-map`` spelling, id-sorted."""
        return {str(i): self.names[i] for i in sorted(self.names)}

    def __len__(self) -> int:
        return len(self.names)


@dataclass(slots=True)
class OutputStats:
    """What one read saw; the basis of the conversion summary."""

    read: ReadStats = field(default_factory=ReadStats)
    attribute: str | None = None
    label_type: str | None = None
    other_attributes: list[str] = field(default_factory=list)
    objects: int = 0
    empty_images: int = 0
    boxes: int = 0
    max_boxes: int = 0
    boxes_per_class: Counter[str] = field(default_factory=Counter)
    images_per_class: Counter[str] = field(default_factory=Counter)
    clipped_boxes: int = 0
    dropped_boxes: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    class_map: ClassMap = field(default_factory=ClassMap)

    @property
    def rejected_total(self) -> int:
        """Every rejected line, manifest-level or label-level."""
        return sum(self.rejected.values())

    @property
    def lost_total(self) -> int:
        """Rejected lines whose label could not be read (see ``NOTHING_LOST``)."""
        return lost_count(self.rejected)

    def to_json(self) -> dict[str, Any]:
        """The summary written next to converted outputs."""
        return {
            "lines": self.read.lines,
            "blank_lines": self.read.blank,
            "label_attribute": self.attribute,
            "label_type": self.label_type,
            "other_label_attributes": self.other_attributes,
            "objects": self.objects,
            "empty_images": self.empty_images,
            "boxes": self.boxes,
            "max_boxes_per_image": self.max_boxes,
            "boxes_per_class": dict(sorted(self.boxes_per_class.items())),
            "images_per_class": dict(sorted(self.images_per_class.items())),
            "clipped_boxes": self.clipped_boxes,
            "dropped_boxes": self.dropped_boxes,
            "rejected": self.rejected_total,
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "class_map": self.class_map.to_json(),
        }

    def summary_lines(self) -> list[str]:
        """A short report for a person."""
        read = f"{self.read.lines} lines, " if self.read.lines else ""  # from-coco reads none
        lines = [
            f"label attribute: {self.attribute} ({self.label_type})",
            f"{read}{self.objects} objects converted, "
            f"{self.empty_images} empty, {self.rejected_total} rejected",
        ]
        if self.boxes or self.label_type == DETECTION_TYPE:
            per = ", ".join(f"{k}: {v}" for k, v in sorted(self.boxes_per_class.items()))
            lines.append(f"{self.boxes} boxes (max {self.max_boxes} per image) {per}".rstrip())
        elif self.images_per_class:
            per = ", ".join(f"{k}: {v}" for k, v in sorted(self.images_per_class.items()))
            lines.append(f"images per class: {per}")
        if self.clipped_boxes or self.dropped_boxes:
            lines.append(
                f"{self.clipped_boxes} boxes clipped to the image, "
                f"{self.dropped_boxes} dropped (nothing left inside)"
            )
        if self.rejected:
            per = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items()))
            lines.append(f"rejects by reason: {per}")
        if self.other_attributes:
            lines.append(f"other label attributes ignored: {', '.join(self.other_attributes)}")
        return lines


class DetectionRecord:
    """One usable object-detection object; boxes are checked and named from the class map.

    ``label`` is the (possibly clipped) label value with integer ``class_id`` values, ready
    to be written back as a Ground Truth label; ``labels`` are the box class names in box
    order. ``boxes`` (:class:`ScoredBox` values) are built on first use: manifest-to-
    manifest targets never need them, and building them is most of a line's cost.
    ``clipped`` and ``dropped`` count its boxes clipped to the image and dropped (its share
    of the summary, taken back when the caller rejects it).
    """

    __slots__ = (
        "_boxes",
        "_objects",
        "attribute",
        "clipped",
        "data",
        "dropped",
        "image_size",
        "label",
        "labels",
        "line_no",
        "source_ref",
    )

    def __init__(
        self,
        line_no: int,
        data: dict[str, Any],
        source_ref: str,
        attribute: str,
        image_size: ImageSize | None,
        label: dict[str, Any],
        labels: list[str],
        objects: list[Any],
        clipped: int = 0,
        dropped: int = 0,
    ) -> None:
        self.line_no = line_no
        self.clipped = clipped
        self.dropped = dropped
        self.data = data
        self.source_ref = source_ref
        self.attribute = attribute
        self.image_size = image_size
        self.label = label
        self.labels = labels
        self._objects = objects
        self._boxes: list[ScoredBox] | None = None

    @property
    def boxes(self) -> list[ScoredBox]:
        """The checked boxes with names and scores (pixels, xywh)."""
        if self._boxes is None:
            self._boxes = label_boxes(self.label["annotations"], self.labels, self._objects)
        return self._boxes

    @property
    def class_ids(self) -> list[int]:
        """The boxes' class ids, in box order (integers once read)."""
        return [ann["class_id"] for ann in self.label["annotations"]]

    def __repr__(self) -> str:
        return (
            f"DetectionRecord(line_no={self.line_no}, source_ref={self.source_ref!r}, "
            f"attribute={self.attribute!r}, boxes={len(self.labels)})"
        )


@dataclass(frozen=True, slots=True)
class ClassificationRecord:
    """One usable image-classification object: its class ids (one, or several)."""

    line_no: int
    data: dict[str, Any]
    source_ref: str
    attribute: str
    class_ids: list[int]
    labels: list[str]
    multi_label: bool
    label: int | list[int]


_Record = DetectionRecord | ClassificationRecord


def _is_class_key(key: str) -> bool:
    """A ``class-map`` key that names a valid class id (``"0"``, ``"12"``)."""
    return key.isascii() and key.isdigit() and len(key) <= 10 and int(key) <= MAX_CLASS_ID


# Counter.update(iterable) without its isinstance(iterable, Mapping) test, which goes through
# the ABC machinery: the stdlib's C helper (PyPy's pure one) that update() calls. A name at a
# time, ``counter[name] += 1`` on the Counter (a dict subclass, so no fast subscript) took
# 0.18 us a box; this takes 0.2 us for a line of three.
_count_elements: Callable[[Mapping[str, int], Iterable[str]], None] = getattr(  # noqa: B009
    collections, "_count_elements"
)

_COORDS = ("left", "top", "width", "height")


class OutputReader:
    """Map parsed manifest lines to checked records; the pure core of the readers.

    Args:
        want: the label kinds the caller can use (detection, or classification kinds).
        label_attribute: the attribute to read; ``None`` picks the newest convertible one
            (by ``creation-date``) on the first labeled line and keeps it for the file.
        box_policy: what to do with boxes reaching outside ``image_size``.
        empty_policy: keep objects with no boxes/classes, or reject them.
        class_map: a known class map to check against (and extend).
        stats: filled in as lines go by.
        source: the file name used in messages.
        size_of: the size of a ``source-ref``'s image, asked when a detection label has no
            ``image_size``: its boxes are then clipped (or rejected) against that size as
            against the label's own, so no box reaches past the image it is written for.
    """

    def __init__(
        self,
        *,
        want: frozenset[LabelKind],
        label_attribute: str | None = None,
        box_policy: BoxPolicy | str = BoxPolicy.CLIP,
        empty_policy: EmptyPolicy | str = EmptyPolicy.KEEP,
        class_map: ClassMap | None = None,
        stats: OutputStats | None = None,
        source: str = "<manifest>",
        size_of: Callable[[str], ImageSize | None] | None = None,
    ) -> None:
        self.want = want
        self.size_of = size_of
        self.attribute = label_attribute
        self.box_policy = BoxPolicy(box_policy)
        self.empty_policy = EmptyPolicy(empty_policy)
        self.stats = stats if stats is not None else OutputStats()
        if class_map is not None:
            self.stats.class_map = class_map
        self.source = source
        self._kind: LabelKind | None = None
        # set with ``_kind`` (:meth:`_accept`), read per line: an enum member's look-up
        # (``LabelKind.DETECTION``) took 0.15-0.2 us, the metadata key's concatenation 40 ns
        self._detect = False
        self._attr = ""
        self._meta_key = ""
        self._last_class_map: object = None
        # class-map entries ("2" -> "bike") already merged; most lines repeat a few of them
        self._seen_class_keys: dict[str, str] = {}
        self._last_sizes: object = None
        self._last_size: ImageSize | None = None
        self._last_bounds = _bounds(None)  # the last size's width and height, for the boxes
        if label_attribute is not None:
            self.stats.attribute = label_attribute

    # -- attribute choice --------------------------------------------------------------
    def _choose(self, data: Mapping[str, Any], line_no: int) -> None:
        """Lock the attribute on the first labeled line; refuse types the target cannot use."""
        attrs = detect_label_attributes(data)
        if self.attribute is not None:
            named = next((a for a in attrs if a.name == self.attribute and not a.failed), None)
            if named is not None:
                self._accept(named, attrs, line_no)
            return  # not on this line (or failed): the line is rejected, the next decides
        live = [a for a in attrs if not a.failed]
        if not live:
            return
        usable = [a for a in live if a.kind in self.want]
        self._accept(usable[0] if usable else live[0], attrs, line_no)

    def _accept(self, chosen: LabelAttribute, attrs: list[LabelAttribute], line_no: int) -> None:
        if chosen.kind not in self.want:
            if chosen.convertible:
                raise ConversionError(
                    f"{self.source}:{line_no}: label attribute {chosen.name!r} is "
                    f"{chosen.type}, but this target needs "
                    f"{' or '.join(sorted(k.value for k in self.want))}"
                )
            raise ConversionError(f"{self.source}:{line_no}: " + _refusal(chosen))
        self.attribute = self._attr = chosen.name
        self._meta_key = chosen.name + METADATA_SUFFIX
        self._kind = chosen.kind
        self._detect = chosen.kind is LabelKind.DETECTION
        self.stats.attribute = chosen.name
        self.stats.label_type = chosen.type or DETECTION_TYPE
        others = sorted(a.name for a in attrs if a.name != chosen.name)
        self.stats.other_attributes = others
        if others:
            logger.info("using label attribute %r; also present: %s", chosen.name, others)

    # -- records ----------------------------------------------------------------------
    def record(self, line: ManifestLine) -> _Record:
        """Check one line and return its record.

        Raises:
            RejectedRecordError: (internal) the line goes to rejects.
            ConversionError: the file cannot be converted at all (wrong type, class clash).
        """
        data = line.data
        if self._kind is None:
            self._choose(data, line.line_no)
        attr = self._attr  # the chosen attribute's name, once a kind is chosen
        value = data.get(attr) if self._kind is not None else None
        meta = data.get(self._meta_key) if value is not None else None
        if meta.__class__ is not dict:
            meta = {}
        if value is None or meta.get("failure-reason") is not None:
            self._unlabeled(data, self.attribute)
        source_ref = data.get("source-ref")
        if source_ref.__class__ is not str:
            raise RejectedRecordError(
                OutputRejectReason.NO_SOURCE_REF, "no 'source-ref': not an image object"
            )
        if self._detect:
            return self._detection(line.line_no, data, source_ref, attr, value, meta)
        return self._classification(line.line_no, data, source_ref, attr, value, meta)

    def _unlabeled(self, data: Mapping[str, Any], attr: str | None) -> NoReturn:
        for a in detect_label_attributes(data):
            if a.failed and (attr is None or a.name == attr):
                raise RejectedRecordError(
                    OutputRejectReason.FAILED_OBJECT,
                    f"{a.name!r} failed: {a.failure_reason}",
                )
        if attr is None:
            raise RejectedRecordError(
                OutputRejectReason.NO_LABEL, "no label attribute on this line"
            )
        others = [a.name for a in detect_label_attributes(data) if not a.failed and a.name != attr]
        if others:  # another job's label, or an input's prior one: named, left to the user
            raise RejectedRecordError(
                OutputRejectReason.OTHER_ATTRIBUTE,
                f"no {attr!r} label, but {', '.join(map(repr, others))} (--label-attribute "
                "chooses; one run converts one attribute)",
            )
        raise RejectedRecordError(OutputRejectReason.NO_LABEL, f"no {attr!r} label on this line")

    def _detection(
        self,
        line_no: int,
        data: dict[str, Any],
        source_ref: str,
        attr: str,
        value: Any,
        meta: Mapping[str, Any],
    ) -> DetectionRecord:
        """Check a bounding-box label in phases: shape, class map, boxes, empty, counts.

        One function for the whole line (the box loop and the counts inlined): it runs once
        per line, and each helper call with its result tuple cost more than the check it made.
        """
        source = value.get("annotations") if value.__class__ is dict else None
        if source.__class__ is not list:
            raise RejectedRecordError(
                OutputRejectReason.INVALID_LABEL,
                f"{attr!r} is not an object-detection label (no 'annotations' list)",
            )
        sizes = value.get("image_size")
        if sizes != self._last_sizes:  # most jobs have few distinct image sizes
            self._last_size = _image_size(sizes)
            self._last_sizes = sizes
            self._last_bounds = _bounds(self._last_size)
        size = self._last_size
        width_px, height_px = self._last_bounds
        if size is None and self.size_of is not None:
            size = self.size_of(source_ref)
            width_px, height_px = _bounds(size)
        class_names = meta.get("class-map")
        if class_names.__class__ is not dict:
            class_names = {}
        objects = meta.get("objects")
        if objects.__class__ is not list:
            objects = []
        # Merged before (most lines): all of its entries seen (a C-level subset test; values
        # are compared too, so a renamed class is merged), or the last line's map (one with
        # an entry that names no class id is never all seen). Asked in that order: most
        # lines name only some classes, so their maps differ from line to line.
        if (
            not class_names.items() <= self._seen_class_keys.items()
            and class_names != self._last_class_map
        ):
            self._merge_class_map(class_names, line_no)
        st = self.stats
        # -- boxes: each checked; ``annotations`` is made at the first changed box, and
        # stays ``None`` when every box passed unchanged (the label is reused as it is,
        # and ``objects`` with it); else it holds the boxes kept, fixed, with their objects.
        annotations: list[dict[str, Any]] | None = None
        names: list[str] = []
        add_name = names.append
        get_name = st.class_map.names.get
        keep: list[Any] = []
        clipped = dropped = 0
        name: Any  # a str whenever ``fast`` holds: its class-map lookup found the name
        for i, ann in enumerate(source):
            # Fast path: an int class id and numbers inside the image (what Ground Truth
            # writes). A string, NaN or missing field fails a comparison or the lookup and
            # takes the slow path, which decides what to do with it.
            try:
                cid = ann["class_id"]  # five subscripts: 0.07 us a box less than an itemgetter
                x = ann["left"]
                y = ann["top"]
                w = ann["width"]
                h = ann["height"]
                # JSON true/false arrive as bools, which compare as 1/0: only these pass
                # the comparisons (identity tests: cheaper than four class lookups).
                fast = (
                    cid.__class__ is int
                    and x >= 0
                    and y >= 0
                    and w > 0
                    and h > 0
                    and x + w <= width_px
                    and y + h <= height_px
                    and x is not True
                    and x is not False
                    and y is not True
                    and y is not False
                    and w is not True
                    and h is not True
                    and (name := get_name(cid)) is not None  # named ids are 0..MAX_CLASS_ID
                )
            except (KeyError, TypeError):
                fast = False
            if fast:
                add_name(name)
                if annotations is not None:
                    annotations.append(ann)
                    keep.append(objects[i] if i < len(objects) else None)
                continue
            if annotations is None:
                annotations = list(source[:i])
                keep = list(objects[:i])
            fixed_ann, name, status = self._slow_box(i, ann, size, class_names, line_no)
            if fixed_ann is None:
                dropped += 1
                continue
            if status == "clipped":
                clipped += 1
            annotations.append(fixed_ann)
            add_name(name)
            keep.append(objects[i] if i < len(objects) else None)
        n = len(names)
        if not n:
            self._check_empty(meta, attr, dropped)
        # -- counts: one accepted detection object
        st.objects += 1
        st.boxes += n
        if clipped:
            st.clipped_boxes += clipped
        if dropped:
            st.dropped_boxes += dropped
        if n > st.max_boxes:
            st.max_boxes = n
        if n:
            _count_elements(st.boxes_per_class, names)
        else:
            st.empty_images += 1
        if annotations is None:
            return DetectionRecord(
                line_no, data, source_ref, attr, size, value, names, objects, clipped, dropped
            )
        label = {**value, "annotations": annotations}
        return DetectionRecord(
            line_no, data, source_ref, attr, size, label, names, keep, clipped, dropped
        )

    def _merge_class_map(self, class_names: dict[str, Any], line_no: int) -> None:
        """Merge a line's ``class-map`` into the file's :class:`ClassMap`.

        The caller skips it when every entry was merged before (see :meth:`_detection`).
        """
        cmap = self.stats.class_map
        known = cmap.names
        seen = self._seen_class_keys
        for key, name in class_names.items():
            if seen.get(key) == name:  # merged before: one dict look, no parsing
                continue
            if isinstance(name, str) and isinstance(key, str) and _is_class_key(key):
                key_id = int(key)
                if known.get(key_id) != name:
                    cmap.add(key_id, name, line_no)
                seen[key] = name
        self._last_class_map = class_names

    def _check_empty(self, meta: Mapping[str, Any], attr: str, outside: int) -> None:
        """An object without boxes: flag it when its boxes were all dropped; then policy.

        Dropped by consolidation, or (``outside``) by clipping, as boxes that miss the image:
        either way the image had objects, so it is not a negative example.
        """
        if outside:
            raise RejectedRecordError(
                OutputRejectReason.ALL_BOXES_DROPPED,
                f"all {outside} box(es) dropped (outside the image, or of no size): not a "
                "negative image",
            )
        lost = _dropped_count(meta.get("dropped-boxes"))
        if lost:
            raise RejectedRecordError(
                OutputRejectReason.ALL_BOXES_DROPPED,
                f"consolidation dropped all {lost} box(es) the workers drew (see "
                f"'dropped-boxes' in {attr + METADATA_SUFFIX!r}): not a negative image",
            )
        if self.empty_policy is EmptyPolicy.REJECT:
            raise RejectedRecordError(OutputRejectReason.EMPTY_IMAGE, "no boxes on this image")

    def _slow_box(
        self,
        i: int,
        ann: Any,
        size: ImageSize | None,
        class_names: Mapping[str, Any],
        line_no: int,
    ) -> tuple[dict[str, Any] | None, str, str]:
        """Check one unusual box: string ids, floats, outside the image. ``None`` = dropped."""
        try:
            class_id, left, top, width, height = parse_annotation(ann)
        except ValueError as exc:
            raise RejectedRecordError(
                OutputRejectReason.INVALID_LABEL, f"annotation {i} is malformed: {exc}"
            ) from None
        name = self._class_name(class_id, class_names, line_no, f"annotation {i}")
        box = (left, top, width, height)
        status = "ok"
        fixed = _fit(box, size)
        if fixed != box:
            if self.box_policy is BoxPolicy.REJECT:
                raise RejectedRecordError(
                    OutputRejectReason.BOX_OUTSIDE_IMAGE,
                    f"annotation {i} {dict(zip(_COORDS, box, strict=True))} does not "
                    f"fit the image {size}",
                )
            if fixed is None:
                return None, name, "dropped"
            status = "clipped"
        if fixed is None:  # unreachable: None never equals the box; narrows the type
            return None, name, "dropped"
        out = {**ann, "class_id": class_id}
        out.update(zip(_COORDS, map(_num, fixed), strict=True))
        return out, name, status

    def _class_name(
        self, class_id: int, class_names: Mapping[str, Any], line_no: int, what: str
    ) -> str:
        """The name of ``class_id`` from this line's class map or an earlier one.

        An id nobody named would reach the output as a bare number: the line is rejected.
        """
        cmap = self.stats.class_map
        name = class_names.get(str(class_id))
        if isinstance(name, str):
            cmap.add(class_id, name, line_no)
            return name
        known = cmap.names.get(class_id)
        if known is None:
            raise RejectedRecordError(
                OutputRejectReason.UNKNOWN_CLASS,
                f"{what}: class id {class_id} is in no class map of this file",
            )
        return known

    def _classification(
        self,
        line_no: int,
        data: dict[str, Any],
        source_ref: str,
        attr: str,
        value: Any,
        meta: Mapping[str, Any],
    ) -> ClassificationRecord:
        multi = self._kind is LabelKind.MULTILABEL
        try:
            if multi:
                if not isinstance(value, list):
                    raise LabelFormatError(f"expected a list of class ids, got {value!r}")
                ids = sorted({parse_class_id(v) for v in value})
            else:
                ids = [parse_class_id(value)]
        except ValueError as exc:
            raise RejectedRecordError(
                OutputRejectReason.INVALID_LABEL, f"{attr!r}: {exc}"
            ) from None
        class_names: Mapping[str, Any] = {}
        if multi and isinstance(meta.get("class-map"), Mapping):
            class_names = meta["class-map"]
        elif not multi and isinstance(meta.get("class-name"), str):
            class_names = {str(ids[0]): meta["class-name"]}
        labels = [self._class_name(i, class_names, line_no, repr(attr)) for i in ids]
        if not ids and self.empty_policy is EmptyPolicy.REJECT:
            raise RejectedRecordError(OutputRejectReason.EMPTY_IMAGE, "no classes on this image")
        st = self.stats
        st.objects += 1
        if not ids:
            st.empty_images += 1
        _count_elements(st.images_per_class, labels)
        return ClassificationRecord(
            line_no, data, source_ref, attr, ids, labels, multi, ids if multi else ids[0]
        )

    # -- streams ----------------------------------------------------------------------
    def iter_records(
        self,
        items: Iterable[ManifestLine | RejectedLine],
        *,
        on_reject: Callable[[dict[str, Any]], None],
    ) -> Iterator[_Record]:
        """Yield records; hand every reject (manifest- or label-level) to ``on_reject``."""
        rejected = self.stats.rejected
        record = self.record
        for item in items:
            if isinstance(item, RejectedLine):
                rejected[item.reason.value] += 1
                on_reject(item.to_json())
                continue
            try:
                yield record(item)
            except RejectedRecordError as rej:
                reason = str(rej.reason)  # an OutputRejectReason: its value
                rejected[reason] += 1
                on_reject(
                    {
                        "file": self.source,
                        "line": item.line_no,
                        "reason": reason,
                        "detail": rej.detail,
                        "raw": item.raw.decode("utf-8", "backslashreplace"),
                    }
                )


# A label without a size is not clipped, but a box past what any image can hold leaves the
# fast path here and is rejected as malformed by ``parse_annotation`` (no extra comparison).
_NO_BOUND = MAX_COORDINATE


def _bounds(size: ImageSize | None) -> tuple[int, int]:
    """The width and height a box must stay within: the image's, or none."""
    return (size["width"], size["height"]) if size is not None else (_NO_BOUND, _NO_BOUND)


def _num(x: float) -> int | float:
    """Whole pixel values stay integers, as Ground Truth writes them."""
    return int(x) if x.is_integer() else x


def _image_size(sizes: object) -> ImageSize | None:
    """The label's size, ``None`` when absent or unusable (boxes are then not clipped)."""
    try:
        return label_image_size(sizes)
    except ValueError:
        return None


def _dropped_count(value: object) -> int:
    """How many boxes a post-annotation Lambda's ``dropped-boxes`` lists.

    A list of dropped boxes, or, when the Lambda trimmed it to fit its response limit,
    ``{"omitted": ..., "count": n}``.
    """
    if isinstance(value, list):
        return len(value)
    if isinstance(value, Mapping):
        count = value.get("count")
        return count if isinstance(count, int) and not isinstance(count, bool) else 0
    return 0


def _fit(
    box: tuple[float, float, float, float], size: ImageSize | None
) -> tuple[float, float, float, float] | None:
    """The box clipped to the image (or unchanged), ``None`` when nothing is left inside."""
    left, top, width, height = box
    if width <= 0 or height <= 0:
        return None
    if size is None:
        return box
    w, h = size["width"], size["height"]
    if left >= 0 and top >= 0 and left + width <= w and top + height <= h:
        return box
    x0, y0 = max(0.0, left), max(0.0, top)
    x1, y1 = min(float(w), left + width), min(float(h), top + height)
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


def _checked(
    records: Iterable[_Record],
    check: Callable[[_Record], str | None] | None,
    note: Callable[[str], None] | None,
    out_stats: OutputStats,
    sink: RejectsSink,
    source: str,
) -> Iterator[_Record]:
    """The records the caller's ``check`` accepts (all, without one); the others become rejects.

    A record the caller cannot use is a reject like any other: counted once (not also as an
    object, its boxes not as converted, clipped or dropped, nor in the most boxes on an
    image) and kept in the rejects file with its line. ``note`` is told the source-ref of
    each record accepted, here rather than in a wrapper of ``check``: one call a record less.
    """
    most = 0  # the most boxes on an accepted image: a maximum cannot be taken back
    for record in records:
        reason = check(record) if check is not None else None
        if reason is None:
            if note is not None:
                note(record.source_ref)
            if isinstance(record, DetectionRecord) and len(record.labels) > most:
                most = len(record.labels)
            yield record
            continue
        out_stats.objects -= 1
        if isinstance(record, DetectionRecord):  # its boxes were counted as converted
            out_stats.boxes -= len(record.labels)
            out_stats.boxes_per_class.subtract(record.labels)
            out_stats.boxes_per_class += Counter()  # drop the classes that fell to 0
            out_stats.empty_images -= not record.labels
            out_stats.clipped_boxes -= record.clipped
            out_stats.dropped_boxes -= record.dropped
        else:  # its classes were counted as images of them
            out_stats.images_per_class.subtract(record.labels)
            out_stats.images_per_class += Counter()
            out_stats.empty_images -= not record.labels
        out_stats.rejected[reason] += 1
        sink.add(
            {
                "file": source,
                "line": record.line_no,
                "reason": reason,
                "detail": f"{record.source_ref}: {reason}",
                "raw": dump_line(record.data).decode(),
            }
        )
    out_stats.max_boxes = most


def _settle_line_counts(
    out_stats: OutputStats, stats: OutputStats | ReadStats | None, *, blank: int
) -> None:
    """Fill the line counts once the read ends: every non-blank line became a record or a reject."""
    read = out_stats.read
    read.lines += out_stats.objects + out_stats.rejected_total + blank
    read.blank += blank
    read.rejected.update(out_stats.rejected)
    read.accepted += out_stats.objects
    if isinstance(stats, ReadStats):
        stats.lines, stats.blank = read.lines, read.blank
        stats.accepted, stats.rejected = read.accepted, read.rejected


def _iter_output(
    location: Location,
    *,
    want: frozenset[LabelKind],
    label_attribute: str | None,
    policy: RejectPolicy | str,
    rejects: Location | None,
    stats: OutputStats | ReadStats | None,
    store: S3Store | None,
    box_policy: BoxPolicy | str,
    empty_policy: EmptyPolicy | str,
    class_map: ClassMap | None,
    log_rejects: bool = True,
    check: Callable[[_Record], str | None] | None = None,
    note: Callable[[str], None] | None = None,
    blank_lines: list[int] | None = None,
    size_of: Callable[[str], ImageSize | None] | None = None,
) -> Iterator[_Record]:
    """The records of one output manifest, rejects routed to one sink (the public readers)."""
    name = str(location)
    out_stats = stats if isinstance(stats, OutputStats) else OutputStats()
    reader = OutputReader(
        want=want,
        label_attribute=label_attribute,
        box_policy=box_policy,
        empty_policy=empty_policy,
        class_map=class_map,
        stats=out_stats,
        source=name,
        size_of=size_of,
    )
    blank = blank_lines if blank_lines is not None else []
    sink = RejectsSink(
        rejects, policy=RejectPolicy(policy), source=name, store=store, log=log_rejects
    )
    error: BaseException | None = None
    try:

        def manifest_reject(item: RejectedLine) -> None:
            out_stats.rejected[item.reason.value] += 1
            sink.add(item.to_json())

        # Accepted lines straight from the manifest hot path; rejects come through the
        # callback in line order (one generator layer less than parse_manifest_lines).
        lines = iter_accepted_lines(
            iter_raw_lines(location, store=store),
            source=name,
            require_source=True,
            on_reject=manifest_reject,
            blank=blank,
        )
        records = reader.iter_records(lines, on_reject=sink.add)
        if check is not None or note is not None:
            records = _checked(records, check, note, out_stats, sink, name)
        yield from records
    except BaseException as exc:
        error = exc
        raise
    finally:
        _settle_line_counts(out_stats, stats, blank=len(blank))
        sink.close(error if not isinstance(error, GeneratorExit) else None)


def iter_detection_records(
    location: Location,
    *,
    label_attribute: str | None = None,
    policy: RejectPolicy | str = RejectPolicy.COLLECT,
    rejects: Location | None = None,
    stats: OutputStats | ReadStats | None = None,
    store: S3Store | None = None,
    box_policy: BoxPolicy | str = BoxPolicy.CLIP,
    empty_policy: EmptyPolicy | str = EmptyPolicy.KEEP,
    class_map: ClassMap | None = None,
    blank_lines: list[int] | None = None,
) -> Iterator[DetectionRecord]:
    """Stream the usable object-detection objects of an output manifest (local or S3).

    Args:
        location: the output manifest (``output.manifest``), a path or ``s3://`` URI.
        label_attribute: the attribute to read; default: the newest object-detection
            attribute by ``creation-date`` on the first labeled line.
        policy: ``collect`` (default) routes bad lines to ``rejects`` and goes on;
            ``strict`` raises :class:`ManifestError` at the first one.
        rejects: the JSON Lines rejects file (only written when something was rejected).
        stats: an :class:`OutputStats` (or a plain ``ReadStats``) filled in as lines go by.
        box_policy: ``clip`` boxes to ``image_size`` (dropping those left empty) or
            ``reject`` the line.
        empty_policy: ``keep`` images without boxes (negatives) or ``reject`` them.
        class_map: an expected class map; lines must agree with it.
        blank_lines: an empty list, given the numbers of the blank lines as the read goes
            (for :func:`~gt_toolkit.formats.manifest.dataset_object_id`).

    Raises:
        ConversionError: the chosen attribute is not object detection (video ``-ref``,
            segmentation, classification...) or two lines name one class id differently.
        ManifestError: under ``strict``, the first rejected line.
    """
    for rec in _iter_output(
        location,
        want=frozenset({LabelKind.DETECTION}),
        label_attribute=label_attribute,
        policy=policy,
        rejects=rejects,
        stats=stats,
        store=store,
        box_policy=box_policy,
        empty_policy=empty_policy,
        class_map=class_map,
        blank_lines=blank_lines,
    ):
        yield cast(DetectionRecord, rec)


def iter_classification_records(
    location: Location,
    *,
    label_attribute: str | None = None,
    policy: RejectPolicy | str = RejectPolicy.COLLECT,
    rejects: Location | None = None,
    stats: OutputStats | ReadStats | None = None,
    store: S3Store | None = None,
    empty_policy: EmptyPolicy | str = EmptyPolicy.KEEP,
    class_map: ClassMap | None = None,
) -> Iterator[ClassificationRecord]:
    """Stream the usable image-classification objects (single- or multi-label).

    Same contract as :func:`iter_detection_records`; the attribute must be
    ``groundtruth/image-classification`` or ``...-multilabel``.
    """
    for rec in _iter_output(
        location,
        want=frozenset({LabelKind.CLASSIFICATION, LabelKind.MULTILABEL}),
        label_attribute=label_attribute,
        policy=policy,
        rejects=rejects,
        stats=stats,
        store=store,
        box_policy=BoxPolicy.CLIP,
        empty_policy=empty_policy,
        class_map=class_map,
    ):
        yield cast(ClassificationRecord, rec)


def iter_output_records(
    location: Location,
    *,
    kinds: Iterable[LabelKind],
    label_attribute: str | None = None,
    policy: RejectPolicy | str = RejectPolicy.COLLECT,
    rejects: Location | None = None,
    stats: OutputStats | ReadStats | None = None,
    store: S3Store | None = None,
    box_policy: BoxPolicy | str = BoxPolicy.CLIP,
    empty_policy: EmptyPolicy | str = EmptyPolicy.KEEP,
    class_map: ClassMap | None = None,
    log_rejects: bool = True,
    check: Callable[[DetectionRecord | ClassificationRecord], str | None] | None = None,
    note: Callable[[str], None] | None = None,
    size_of: Callable[[str], ImageSize | None] | None = None,
) -> Iterator[DetectionRecord | ClassificationRecord]:
    """Stream records of any of ``kinds`` (for targets that take detection or classification).

    ``log_rejects=False`` with no ``rejects`` file drops rejects silently: for a first pass
    over a file that a second pass will report on. ``check`` lets a caller refuse a record
    the reader accepted (a converter that needs the image size): it returns a reject reason
    or ``None``, and a refused record is a reject like the reader's own; ``note`` is told
    the source-ref of each record the check accepted (each record yielded). ``size_of`` sizes
    the images of detection labels without ``image_size`` (see :class:`OutputReader`).
    """
    return _iter_output(
        location,
        want=frozenset(kinds),
        label_attribute=label_attribute,
        policy=policy,
        rejects=rejects,
        stats=stats,
        store=store,
        box_policy=box_policy,
        empty_policy=empty_policy,
        class_map=class_map,
        log_rejects=log_rejects,
        check=check,
        note=note,
        size_of=size_of,
    )
