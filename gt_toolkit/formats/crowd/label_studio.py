"""Label Studio exports: the JSON export (one task per image) and JSON_MIN (one per annotation).

Shapes in ``docs/crowd-sources.md``. Both are one JSON list, often hundreds of megabytes, so
it is parsed as a stream (ijson): memory holds one task at a time (for JSON_MIN, the records
of one image in a row). Each list item decides its own shape: a task carries
``annotations`` (or ``completions`` in old exports); a JSON_MIN record carries
``annotator``. An image's answers are converted to pixels once all of that task's
annotations are read, so an annotation without the image size takes it from any other,
whatever their order. One whose image no answer read so far sizes is held in the answer
index (on disk, not in memory) until the whole file is read: any task or record of the same
image, before it or after it, may give the size.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeGuard

import ijson

from gt_toolkit.errors import CrowdSourceError
from gt_toolkit.formats.crowd.answer_index import AnswerIndex, Where
from gt_toolkit.formats.crowd.base import (
    IndexedSource,
    coordinate,
    envelope,
    first_line,
    positive_size,
)
from gt_toolkit.formats.crowd.json_stream import json_items
from gt_toolkit.formats.crowd.report import RejectHandler, SkipReason, unread_reason
from gt_toolkit.storage.files import Location
from gt_toolkit.storage.s3 import S3Store
from gt_toolkit.types import ImageSize, WorkerBox

__all__ = ["LabelStudioSource"]

_BOX_TYPE = "rectanglelabels"
# results that mark a place on the image (as a box does) in another shape; the others
# (choices, textarea, rating, relation, ...) say something of the whole image or of regions
_REGION_TYPES = frozenset(
    {
        "rectangle",
        "polygon",
        "polygonlabels",
        "keypoint",
        "keypointlabels",
        "ellipse",
        "ellipselabels",
        "brush",
        "brushlabels",
        "bitmask",
        "bitmasklabels",
        "vector",
        "vectorlabels",
    }
)
_DECIMALS = 6  # pixels from percent, rounded past float noise


@dataclass(slots=True)
class _Answer:
    """One annotation read but not yet in pixels: its size may come from another."""

    annotator: str
    where: str
    size: ImageSize | None = None
    # value, where, the key of its labels ("rectanglelabels", or "labels" of a Labels
    # control), and the labels the region's other controls give it (not read as boxes)
    regions: list[tuple[Mapping[str, Any], str, str, tuple[Any, ...]]] = field(default_factory=list)
    unread: str | None = None  # why regions were not read as boxes (AnswerIndex.answers)
    lead_time: Any = None
    created: Any = None  # JSON_MIN's created_at: its records of a task come newest first


@dataclass(frozen=True, slots=True)
class _Pairing:
    """How one annotation's results pair into regions, and which result of each is its box.

    A region is one result per control, all with its ``id`` (JSON_MIN: its place,
    :func:`_min_region`). Its RectangleLabels result is the box, and a Labels result of the
    same region says the same again; one whose RectangleLabels result gives no label
    (``[]``, or none: the annotator labelled it with the other control only) is the box its
    Labels result makes (read by the empty one, it was rejected and its annotator
    abstained). A region of Labels controls only (<Labels name="kind"> beside "label") is
    one box, labelled by the control whose name sorts first (the exports list controls in
    different orders; this is the same) of those that give it a label: one that gives
    none (``"labels": []``) lost the box where another control labels it. So is a region
    of two RectangleLabels controls (Label Studio puts a second control's label on the
    selected rectangle): read by each, it was two boxes of one annotator on one object,
    and an empty result beside the other's label a reject of a region read.
    """

    boxes: frozenset[Any]  # regions whose RectangleLabels result is the box
    relabelled: frozenset[Any]  # regions whose RectangleLabels gives none, a Labels one does
    box_control: dict[Any, str]  # a region's RectangleLabels result read: that control's
    first_control: dict[Any, str]  # a region read from a Labels result: by that control
    # what a region's Labels results say: beside the label read, another is a region of
    # several labels, counted as one with choice="multiple" is (one box, one class)
    said: dict[Any, list[Any]]

    @classmethod
    def of(cls, results: list[Any]) -> _Pairing:
        """The pairing of one annotation's (or JSON_MIN record's) results."""
        named = _named_regions(results)
        found: set[Any] = set()
        first: dict[Any, tuple[bool, str]] = {}  # as _first_controls, in the same pass
        for r in results:
            if not (isinstance(r, dict) and r.get("type") == _BOX_TYPE):
                continue
            region, value = r.get("id"), r.get("value")
            if not isinstance(region, str | int):
                continue
            if not (region in named and _no_label(value)):
                found.add(region)
            control = str(r.get("from_name"))
            unlabelled = not (isinstance(value, dict) and _gives_label(value.get(_BOX_TYPE)))
            if (unlabelled, control) < first.get(region, (True, control + "\0")):
                first[region] = (unlabelled, control)
        boxes = frozenset(found)
        return cls(
            boxes,
            named - boxes,
            {region: control for region, (_, control) in first.items()},
            _first_controls(results, boxes),
            _said(results),
        )

    def read_by(self, result: Any, labelled: set[Any]) -> str | None:
        """The key of the labels ``result`` is read by as a box; ``None``: not read as one.

        ``labelled``: the regions a Labels result was read as the box of already (this
        adds to it); another control's result of such a region is that box again.
        """
        labels_key = _box_labels(result, self.boxes) if isinstance(result, dict) else None
        if labels_key == "labels" and isinstance(result.get("id"), str | int):
            region = result["id"]
            if region in labelled or str(result.get("from_name")) != self.first_control[region]:
                return None  # another control's result of a region read
            labelled.add(region)
        elif labels_key == _BOX_TYPE and (region := _region_id(result)) is not None:
            if region in self.relabelled:
                return None  # no label of its own: its Labels result is the box
            value = result.get("value")
            if str(result.get("from_name")) != self.box_control[region] and (
                _no_label(value) or (isinstance(value, dict) and _gives_label(value[_BOX_TYPE]))
            ):
                return None  # another RectangleLabels control's result of a region read
        return labels_key

    def also(self, result: dict[str, Any]) -> tuple[Any, ...]:
        """The labels the Labels results of a box's region give it."""
        region = _region_id(result)
        return tuple(self.said.get(region, ())) if region is not None else ()


def _named_regions(results: list[Any]) -> frozenset[Any]:
    """The regions (ids) a Labels result of a rectangle's place gives a label."""
    return frozenset(
        r["id"]
        for r in results
        if isinstance(r, dict)
        and _box_labels(r, frozenset()) == "labels"
        and isinstance(r.get("id"), str | int)
        and _gives_label(r["value"].get("labels"))
    )


def _first_controls(results: list[Any], boxes: frozenset[Any]) -> dict[Any, str]:
    """Each region read from a Labels result: the control whose result is its box.

    Of the controls that give it a label, the one whose name sorts first (by code point);
    where none does, the first of all (its box is then rejected: no labels).
    """
    first: dict[Any, tuple[bool, str]] = {}
    for r in results:
        if isinstance(r, dict) and _box_labels(r, boxes) and r.get("type") == "labels":
            region, control = r.get("id"), str(r.get("from_name"))
            unlabelled = not _gives_label(r["value"].get("labels"))
            if isinstance(region, str | int) and (unlabelled, control) < first.get(
                region, (True, control + "\0")
            ):
                first[region] = (unlabelled, control)
    return {region: control for region, (_, control) in first.items()}


def _said(results: list[Any]) -> dict[Any, list[Any]]:
    """What each region's Labels and RectangleLabels results say, every label, in order."""
    said: dict[Any, list[Any]] = {}
    for r in results:
        if not isinstance(r, dict):
            continue
        kind, value = r.get("type"), r.get("value")
        if (kind == _BOX_TYPE or _box_labels(r, frozenset()) == "labels") and isinstance(
            value, dict
        ):
            labels = value.get(kind)
            if isinstance(r.get("id"), str | int) and isinstance(labels, list):
                said.setdefault(r["id"], []).extend(labels)
    return said


class LabelStudioSource(IndexedSource):
    """A Label Studio JSON or JSON_MIN export file.

    Args:
        data_key: the field of the task's ``data`` that holds the image reference.
        image_name: the name of the ``<Image>`` tag that shows it (the boxes' ``to_name``),
            where that is not ``data_key`` (``<Image name="img" value="$image_url"/>``):
            only its boxes are read, in every task. ``None``: see :meth:`_image_object`.
    """

    kind = "label-studio"

    def __init__(
        self,
        location: Location,
        *,
        data_key: str = "image",
        image_name: str | None = None,
        store: S3Store | None = None,
        on_reject: RejectHandler | None = None,
    ) -> None:
        super().__init__(location, store=store, on_reject=on_reject)
        self.data_key = data_key
        self.image_name = image_name

    def load(self, index: AnswerIndex) -> None:
        """Stream the list, one task (or JSON_MIN record) at a time, into ``index``.

        JSON_MIN records of one image come in a row (one per annotation of a task): they
        are held until the image changes, then finished together like a task's annotations.
        """
        held: tuple[str, list[_Answer]] | None = None  # JSON_MIN answers of one image
        for n, item in self._records():
            where = f"task {n}" + (
                f" (id {item['id']})" if isinstance(item, dict) and "id" in item else ""
            )
            task = isinstance(item, dict) and ("annotations" in item or "completions" in item)
            if isinstance(item, dict) and not task and "annotator" in item:
                if self.image_name is not None:  # read all, boxes of any image were kept
                    raise CrowdSourceError(
                        self.location,
                        where.replace("task", "record", 1),
                        "a JSON_MIN record has no to_name to match --image-name against:"
                        " export the project as JSON (or leave --image-name out)",
                    )
                found = self._min_record(index, item, where.replace("task", "record", 1))
                if found is None:
                    continue
                if held is not None and held[0] != found[0]:
                    self._finish(index, *_in_time(*held))
                elif held is not None:
                    found = (found[0], held[1] + found[1])
                held = found
                continue
            if held is not None:
                self._finish(index, *_in_time(*held))
                held = None
            if task:
                self._task(index, item, where)
            elif not isinstance(item, dict):
                self.skip(self.location, where, SkipReason.MALFORMED, "not an object", item)
            else:
                self.skip(
                    self.location,
                    where,
                    SkipReason.MALFORMED,
                    "neither a task ('annotations') nor a JSON_MIN record ('annotator')",
                    item,
                )
        if held is not None:
            self._finish(index, *_in_time(*held))
        for row, key, answer in index.held():  # the sizes every record gave are known now
            index.settle(row, *self._boxes(answer, index.size_of(key)))

    def _records(self) -> Iterator[tuple[int, Any]]:
        n = -1  # the last task read whole
        try:
            items = json_items(
                self.location,
                "item",
                starts=b"[",
                otherwise="not a Label Studio export: expected a JSON list",
                store=self.store,
            )
            for n, item in enumerate(items):
                yield n, item
        except ijson.JSONError as exc:
            raise CrowdSourceError(
                self.location, f"task {n + 1}", f"not JSON: {first_line(exc)}"
            ) from exc

    def _image(self, data: Any, where: str, raw: Any) -> str | None:
        ref = data.get(self.data_key) if isinstance(data, Mapping) else None
        if not isinstance(ref, str) or not ref:
            self.skip(
                self.location,
                where,
                SkipReason.NO_IMAGE,
                f"no image reference in data[{self.data_key!r}] (see --data-key)",
                raw,
            )
            return None
        return ref

    # -- the JSON export ---------------------------------------------------------------------
    def _task(self, index: AnswerIndex, task: dict[str, Any], where: str) -> None:
        key = self._image(task.get("data"), where, task.get("data"))
        if key is None:
            return
        annotations = task["annotations"] if "annotations" in task else task["completions"]
        if not isinstance(annotations, list):
            self.skip(self.location, where, SkipReason.MALFORMED, "annotations is not a list")
            return
        index.add_image(key)
        only = self._image_object(annotations, task["data"])
        # the image read as the boxes name it: ``only``, else the one image object all of
        # the task's boxes are on (read whole); a region on another is none of its business
        on = only if only is not None else _one_image(annotations)
        shown = on if on is not None and (only is None or _names(annotations, on)) else None
        answers: list[_Answer] = []
        for j, ann in enumerate(annotations):
            here = f"{where}, annotation {j}"
            if not isinstance(ann, dict):
                self.skip(self.location, here, SkipReason.MALFORMED, "not an object", ann)
                continue
            if ann.get("was_cancelled") or ann.get("skipped"):
                self.skip(self.location, here, SkipReason.CANCELLED)
                continue
            annotator = _annotator(ann.get("completed_by"))
            if annotator is None:
                self.skip(
                    self.location, here, SkipReason.NO_ANNOTATOR, "no completed_by", ann.get("id")
                )
                continue
            results = ann.get("result") or []
            if not isinstance(results, list):
                self.skip(self.location, here, SkipReason.MALFORMED, "result is not a list")
                continue
            answers.append(
                self._answer(
                    key, annotator, results, ann.get("lead_time"), here, only=only, shown=shown
                )
            )
        self._finish(index, key, answers)

    def _image_object(self, annotations: list[Any], data: Mapping[str, Any]) -> str | None:
        """The ``to_name`` a box must have to be on the image read, when the task shows several.

        A task may show several images (``<Image name="image" value="$image"/>`` and
        ``<Image name="image2" value="$image2"/>``); each box names the one it is on in
        ``to_name``. Where the task's boxes name more than one, only those on the image
        object named as ``--data-key`` are this image's (:meth:`_answer` rejects the others);
        read all, the second image's boxes were put on the first, silently. So too where
        they name one that is another field of the task's ``data`` (all drawn on
        ``$image2``, read with ``--data-key image``). ``None``: the boxes name one image
        object (or none), all of them read. ``image_name`` given: its boxes, in every task.
        """
        if self.image_name is not None:
            return self.image_name
        names: set[Any] = set()
        for ann in annotations:
            if not isinstance(ann, dict) or ann.get("was_cancelled") or ann.get("skipped"):
                continue
            results = ann.get("result")
            for result in results if isinstance(results, list) else ():
                if isinstance(result, dict) and _box_labels(result, frozenset()):
                    to_name = result.get("to_name")  # a name; a list or object as its text
                    names.add(to_name if isinstance(to_name, str | None) else repr(to_name))
        names.discard(None)  # a box that names no image object tells nothing
        elsewhere = any(n != self.data_key and n in data for n in names)
        return self.data_key if len(names) > 1 or elsewhere else None

    def _answer(
        self,
        key: str,
        annotator: str,
        results: list[Any],
        lead_time: Any,
        where: str,
        *,
        only: str | None = None,
        shown: str | None = None,
    ) -> _Answer:
        """One annotator's results on one image, checked; their boxes still in percent.

        ``only``: the ``to_name`` of the image read, where the task shows several images
        (:meth:`_image_object`); a box on another is rejected. ``shown``: the ``to_name`` of
        the image read where some box of the task is on it (also where the task's boxes are
        all on one image, ``only`` then ``None``), so a region on another image is no
        abstention from this one.
        """
        answer = _Answer(annotator, where, lead_time=lead_time)
        pairing = _Pairing.of(results)
        labelled: set[Any] = set()  # regions (ids) a Labels result made a box of already
        raw_size: tuple[Any, Any] = (None, None)  # the results of one annotation share it
        box_size: ImageSize | None = None
        for k, result in enumerate(results):
            here = f"{where}, result {k}"
            labels_key = pairing.read_by(result, labelled)
            if labels_key is None:
                self._not_a_box(answer, result, here, shown)
                continue
            value = self._box_value(answer, result, here, only, shown)
            if value is None:
                continue
            raw = (result.get("original_width"), result.get("original_height"))
            if raw != raw_size:
                raw_size, box_size = raw, positive_size(*raw)
            if box_size is None and raw != (None, None):
                self.skip(
                    self.location,
                    here,
                    SkipReason.MALFORMED,
                    "original_width/original_height not whole numbers from 1 to 2**31 - 1",
                    result,
                )
                answer.unread = unread_reason(answer.unread, SkipReason.MALFORMED)
                continue
            where_size = (self.location, here)
            answer.size = _same_size(key, answer.size, box_size, annotator, where_size)
            answer.regions.append((value, here, labels_key, pairing.also(result)))
        return answer

    def _not_a_box(self, answer: _Answer, result: Any, here: str, shown: str | None) -> None:
        """Skip a result that is not read as a box; a region of another shape is unread.

        Its annotator abstains if nothing of theirs is read as a box, unless the region is
        on another image of the task (``shown``: the image read): a polygon there says
        nothing of this one.
        """
        # parsed JSON: dict, not Mapping (whose isinstance costs eight times as much)
        kind = result.get("type") if isinstance(result, dict) else None
        value = result.get("value") if isinstance(result, dict) else None
        self.skip(self.location, here, SkipReason.NOT_A_BOX, f"type {kind!r}")
        to_name = result.get("to_name") if isinstance(result, dict) else None
        elsewhere = shown is not None and isinstance(to_name, str) and to_name != shown
        if _is_region(kind, value) and not elsewhere:  # a polygon on another image
            answer.unread = unread_reason(answer.unread, SkipReason.NOT_A_BOX)  # too

    def _box_value(
        self,
        answer: _Answer,
        result: dict[str, Any],
        here: str,
        only: str | None,
        shown: str | None,
    ) -> dict[str, Any] | None:
        """A box result's value, if it has one and is on the image read; else it is rejected.

        A box on another image of the task says nothing of this one: whoever drew only
        there saw this image and drew nothing on it, an answer; taken as an abstention,
        their "nothing here" was lost and the others' boxes won support they did not have.
        Where no box of the task is on the image read (``shown`` false: perhaps a wrong
        --image-name), they abstain: no output says "nothing here" of an image whose boxes
        were all rejected.
        """
        value = result.get("value")
        if not isinstance(value, dict):
            self.skip(self.location, here, SkipReason.MALFORMED, "no value", result)
            answer.unread = unread_reason(answer.unread, SkipReason.MALFORMED)
            return None
        if only is not None and result.get("to_name") != only:
            detail = self._elsewhere(result.get("to_name"))
            self.skip(self.location, here, SkipReason.MALFORMED, detail, result)
            if not (shown is not None and isinstance(result.get("to_name"), str)):
                answer.unread = unread_reason(answer.unread, SkipReason.MALFORMED)
            return None
        return value

    def _elsewhere(self, to_name: Any) -> str:
        """Why a box whose ``to_name`` is not the image read is rejected, and what to pass.

        The reader cannot tell from the export which ``<Image>`` tag shows which data field:
        a tag named otherwise than its field (``<Image name="img1" value="$url1"/>``) takes
        ``--image-name``, without which no box of such a task could be read at all.
        """
        if self.image_name is not None:
            return (
                f"to_name {to_name!r}: not the image read, the <Image> tag named"
                f" {self.image_name!r} (--image-name)"
            )
        return (
            f"to_name {to_name!r}: the task's boxes are on another image than"
            f" data[{self.data_key!r}] or on several images, and only those whose to_name is"
            f" {self.data_key!r} (--data-key) are read; if the <Image> tag that shows"
            f" data[{self.data_key!r}] has another name, pass it as --image-name"
        )

    def _finish(self, index: AnswerIndex, key: str, answers: list[_Answer]) -> None:
        """An image's answers in pixels, each in the size it gives, else any other's.

        Boxes of an image no answer sizes yet are held in ``index`` for the end of the file
        (:meth:`load`): a later task or record of the image may give its size.
        """
        known = next((a.size for a in answers if a.size), None) or index.size_of(key)
        for answer in answers:
            time_spent = coordinate(answer.lead_time)
            if answer.regions and not (answer.size or known):
                index.hold_answer(key, answer.annotator, answer, time_spent=time_spent)
                continue
            boxes, unread = self._boxes(answer, answer.size or known)
            index.add_answer(
                key,
                answer.annotator,
                boxes,
                size=answer.size,
                time_spent=time_spent,
                where=(self.location, answer.where),
                unread=unread,
            )

    def _boxes(self, answer: _Answer, size: ImageSize | None) -> tuple[list[WorkerBox], str | None]:
        """An answer's boxes in pixels of ``size``, and why regions were not read as boxes."""
        boxes: list[WorkerBox] = []
        unread = answer.unread
        for value, here, labels_key, also in answer.regions:
            box = self._box(value, size, here, labels_key, also)
            if isinstance(box, SkipReason):
                unread = unread_reason(unread, box)
            else:
                boxes.append(box)
        return boxes, unread

    def _box(
        self,
        value: Mapping[str, Any],
        size: ImageSize | None,
        where: str,
        labels_key: str,
        also: tuple[Any, ...] = (),
    ) -> WorkerBox | SkipReason:
        """A percent box in pixels (its envelope when rotated); else why it was rejected.

        Label Studio keeps a rectangle dragged up or left with a negative width or height
        and draws it from ``x + width`` to ``x``: that is the box read (counted as flipped).
        """
        labels = value.get(labels_key)
        if not _gives_label(labels):
            self.skip(self.location, where, SkipReason.MALFORMED, f"no {labels_key}", value)
            return SkipReason.MALFORMED
        x, y, w, h = (coordinate(value.get(k)) for k in ("x", "y", "width", "height"))
        if x is None or y is None or w is None or h is None:
            self.skip(self.location, where, SkipReason.MALFORMED, "x, y, width, height", value)
            return SkipReason.MALFORMED
        # absent or null: upright; read as 0, a "90" or 1e400 turned box was taken as upright.
        # The result's image_rotation is not read: the editor turns its canvas, not the
        # regions, so the value is in the image's own frame (docs/crowd-sources.md)
        rotation = 0.0 if value.get("rotation") is None else coordinate(value["rotation"])
        if rotation is None:
            self.skip(self.location, where, SkipReason.MALFORMED, "rotation is not a number", value)
            return SkipReason.MALFORMED
        if size is None:
            self.skip(
                self.location,
                where,
                SkipReason.NO_IMAGE_SIZE,
                "no original_width/original_height for this image",
                value,
            )
            return SkipReason.NO_IMAGE_SIZE
        if w < 0 or h < 0:
            self.report.flipped += 1
            if not rotation % 360.0:  # a rotated one keeps its corner (x, y) as the pivot
                x, w = (x + w, -w) if w < 0 else (x, w)
                y, h = (y + h, -h) if h < 0 else (y, h)
        # choice="multiple", or another control's label of the region (``also``)
        if any(other != labels[0] for other in (*labels[1:], *also)):
            self.report.several_labels += 1
        sx, sy = size["width"] / 100.0, size["height"] / 100.0
        box: WorkerBox = {  # to a millionth of a pixel: 42.49999999 was meant as 42.5
            "label": labels[0],
            "left": round(x * sx, _DECIMALS),
            "top": round(y * sy, _DECIMALS),
            "width": round(w * sx, _DECIMALS),
            "height": round(h * sy, _DECIMALS),
        }
        if rotation % 360.0:  # the envelope of the four corners, whatever their signs
            self.report.rotated += 1
            box = envelope(box, rotation, pivot="top-left")
        return box

    # -- JSON_MIN ------------------------------------------------------------------------------
    def _min_record(
        self, index: AnswerIndex, record: dict[str, Any], where: str
    ) -> tuple[str, list[_Answer]] | None:
        """The image a record answers and its answer (none for a task nobody annotated)."""
        key = self._image(record, where, {k: v for k, v in record.items() if k != "annotator"})
        if key is None:
            return None
        index.add_image(key)  # the image is part of the job, whoever answered it
        # the converter's get_annotator writes str(completed_by): "None" for an annotation
        # whose completed_by is null (a no-annotator reject in the JSON export). Read as a
        # name, every such annotation was one annotator "None", each superseding another's
        # on a task they shared. JSON_MIN names a user by an integer id or an e-mail
        named = record.get("annotator")
        annotator = None if named == "None" else _annotator(named)
        results: list[Any] = []
        for name, value in record.items():
            if name == self.data_key or not isinstance(value, list):
                continue
            # a place -> this control's values there so far: the n-th of each control at a
            # place is one region (counted across two RectangleLabels controls, a region of
            # both was two regions and two boxes, as it is not in the JSON export)
            labels_at: dict[str, int] = {}
            for region in value:
                if isinstance(region, Mapping) and _BOX_TYPE in region:
                    sized = {"value": region, "id": _min_region(region, labels_at)}
                    sized["from_name"] = name  # the box of a region of two such controls
                    results.append({"type": _BOX_TYPE, **sized, **_size_fields(region)})
                elif isinstance(region, Mapping) and _min_kind(region) == "labels":
                    sized = {"value": region, "id": _min_region(region, labels_at)}
                    sized["from_name"] = name  # JSON_MIN's key is the control's name
                    results.append({"type": "labels", **sized, **_size_fields(region)})
                elif isinstance(region, Mapping):  # another control's result
                    results.append({"type": _min_kind(region)})
        if annotator is None:
            # a task nobody annotated has no annotation_id and no regions; an annotation
            # that names nobody (as completed_by null in the JSON export) was dropped unsaid
            drew = any(_box_labels(r, frozenset()) for r in results)
            if record.get("annotation_id") is None and not drew:
                return key, []
            self.skip(self.location, where, SkipReason.NO_ANNOTATOR, "no annotator", record)
            return None
        answer = self._answer(key, annotator, results, record.get("lead_time"), where)
        answer.created = record.get("created_at")
        return key, [answer]


# JSON_MIN drops a result's type: what its value holds tells it. A value says something of
# the whole image (or of a region, per region) by its control's key; a place without labels
# (an unlabelled <Polygon>, <Rectangle>, <KeyPoint>, ...) by its geometry alone
_MIN_ABOUT = {
    "choices": "choices",
    "text": "textarea",
    "rating": "rating",
    "number": "number",
    "datetime": "datetime",
    "taxonomy": "taxonomy",
    "ranker": "ranker",
}
_MIN_PLACES = (
    ("points", "polygon"),
    ("vertices", "vector"),
    ("rle", "brush"),
    ("imageDataURL", "bitmask"),
    ("radiusX", "ellipse"),
    ("height", "rectangle"),
    ("x", "keypoint"),
)


def _min_region(value: Mapping[str, Any], seen: dict[str, int]) -> str:
    """A JSON_MIN box's region, told by its place: JSON_MIN drops the result ``id``.

    A region labelled by a RectangleLabels and a Labels control is one result per control,
    each with the region's place. The JSON export pairs them by ``id`` and reads one box;
    JSON_MIN writes each under its control's name, and read apart they were two boxes of
    one annotator where the JSON export of the same annotation has one. A region has one
    result per control, so the n-th value of one control at a place pairs with the n-th of
    another there (``seen`` counts one control's values by place): a second region at the
    very same place (a duplicated region, relabelled) stays a box of its own, as in the
    JSON export, where pairing every value at a place made all of them one.
    """
    # the place as it is read (:meth:`LabelStudioSource._box`): 10 is 10.0, and a rotation
    # absent or null is 0; told apart, one region's two values were two boxes here and one
    # in the JSON export
    numbers = [value.get(k) for k in ("x", "y", "width", "height", "rotation")]
    numbers[4] = 0.0 if numbers[4] is None else numbers[4]
    place = repr(tuple(_same_number(n) for n in numbers))
    n = seen[place] = seen.get(place, -1) + 1
    return f"{place}#{n}"


def _same_number(value: Any) -> Any:
    """A number as the float it is read as (``-0.0`` as ``0.0``); anything else as it is."""
    number = coordinate(value)
    return value if number is None else number + 0.0


def _one_image(annotations: list[Any]) -> str | None:
    """The one ``to_name`` every box of the task that counts names, if there is one.

    A task whose boxes are all on ``image`` and whose polygons are on ``image2`` shows two
    images: read without ``--image-name``, a polygon on ``image2`` made its maker abstain
    on ``image``, where read with ``--image-name image`` it was an answer with no box.
    """
    found: str | None = None
    for ann in annotations:
        if not isinstance(ann, dict) or ann.get("was_cancelled") or ann.get("skipped"):
            continue
        results = ann.get("result")
        for result in results if isinstance(results, list) else ():
            if not isinstance(result, dict) or not _box_labels(result, frozenset()):
                continue
            to_name = result.get("to_name")
            if to_name is None:
                continue  # names no image object: tells nothing
            if not isinstance(to_name, str) or (found is not None and to_name != found):
                return None
            found = to_name
    return found


def _names(annotations: list[Any], to_name: str) -> bool:
    """Whether a box of an annotation that counts names ``to_name`` (is on that image)."""
    for ann in annotations:
        if not isinstance(ann, dict) or ann.get("was_cancelled") or ann.get("skipped"):
            continue
        results = ann.get("result")
        for result in results if isinstance(results, list) else ():
            on_it = isinstance(result, dict) and result.get("to_name") == to_name
            if on_it and _box_labels(result, frozenset()):
                return True
    return False


def _in_time(key: str, answers: list[_Answer]) -> tuple[str, list[_Answer]]:
    """JSON_MIN answers of one image, each annotator's oldest first: a later one supersedes.

    Label Studio's converter writes a task's annotations newest first (sorted by
    ``created_at``, reversed), where the JSON export lists them oldest first: read in file
    order, an annotator's older annotation superseded their newer one in JSON_MIN only.
    An annotator's answers are put in time order among the places they hold; where one of
    them has no ``created_at`` that parses, the file's order stands.
    """
    places: dict[str, list[int]] = {}
    for i, answer in enumerate(answers):
        places.setdefault(answer.annotator, []).append(i)
    ordered = list(answers)
    for slots in places.values():
        if len(slots) < 2:
            continue
        try:
            times = [datetime.fromisoformat(answers[i].created) for i in slots]
            order = sorted(range(len(slots)), key=times.__getitem__)  # stable: ties keep order
        except (TypeError, ValueError):  # no created_at, another format, naive beside aware
            continue
        for slot, j in zip(slots, order, strict=True):
            ordered[slot] = answers[slots[j]]
    return key, ordered


def _box_labels(result: dict[str, Any], boxes: frozenset[Any]) -> str | None:
    """The key of a result's labels if it is a box, else ``None``.

    A box is a ``rectanglelabels`` result, or the ``labels`` result of a Labels control
    beside a ``<Rectangle>`` tag (Label Studio's OCR template), whose value holds the
    rectangle's place: read as a region of another shape, every box of such a project was
    lost. One whose region (``id``) has a ``rectanglelabels`` result in ``boxes`` too is
    that box again.
    """
    kind = result.get("type")
    if kind == _BOX_TYPE:
        return _BOX_TYPE
    value = result.get("value")
    if kind != "labels" or not isinstance(value, dict) or _place(value) != "rectangle":
        return None
    region = result.get("id")  # a region id is a string; anything else matches no box
    return "labels" if not isinstance(region, str | int) or region not in boxes else None


def _region_id(result: dict[str, Any]) -> str | int | None:
    """A result's region ``id``; ``None`` for none, or one of another JSON type (a list)."""
    region = result.get("id")
    return region if isinstance(region, str | int) else None


def _gives_label(labels: Any) -> TypeGuard[list[Any]]:
    """Whether a result's list of labels names one (its first is read)."""
    return isinstance(labels, list) and bool(labels) and isinstance(labels[0], str)


def _no_label(value: Any) -> bool:
    """Whether a ``rectanglelabels`` value gives no label: ``[]``, ``null`` or none at all.

    Anything else that names none (``[5]``, ``"car"``) is no empty choice but a broken one,
    and stays ``malformed``.
    """
    return isinstance(value, dict) and value.get(_BOX_TYPE) in (None, [])


def _is_region(kind: Any, value: Any) -> bool:
    """Whether a result that is not a box marks a place on the image (its maker abstains).

    The generic Labels control paired with a shape tag is exported as type ``labels`` with
    the shape's place in its value: a region, where a ``labels`` result with no place is not.
    """
    if kind in _REGION_TYPES:
        return True
    return kind == "labels" and isinstance(value, Mapping) and _place(value) is not None


def _place(value: Mapping[str, Any]) -> str | None:
    """The shape a value's place keys name (``points``: a polygon...), ``None`` for none."""
    return next((t for k, t in _MIN_PLACES if k in value), None)


def _min_kind(value: Mapping[str, Any]) -> str | None:
    """The result type of a JSON_MIN value that is not a box, as the JSON export names it.

    JSON_MIN writes each result's ``value`` without its ``type``: ``{"polygonlabels": [...],
    "points": ...}`` is a region, but ``{"rating": 4}`` (a Rating, Number, DateTime or
    Taxonomy control, which JSON_MIN writes as a list of one value) says something of the
    whole image: an annotator who gave only that drew nothing, as in the JSON export, where
    taken for a region it made them abstain. ``None``: neither (a list in the task's data).
    """
    kind = next((k for k in value if isinstance(k, str) and k.endswith("labels")), None)
    if kind is not None:  # a Labels control's box reads as the JSON export's "labels" result
        return kind if kind != "labels" or _place(value) == "rectangle" else _place(value) or kind
    about = next((t for k, t in _MIN_ABOUT.items() if k in value), None)
    if about is not None:
        return about
    return _place(value)


def _same_size(
    key: str, size: ImageSize | None, box_size: ImageSize | None, annotator: str, where: Where
) -> ImageSize | None:
    """The one size of an annotation's results (they must agree)."""
    if box_size is None:
        return size
    if size is not None and size != box_size:
        raise CrowdSourceError(
            *where,
            f"image {key!r} is {box_size['width']}x{box_size['height']} here but "
            f"{size['width']}x{size['height']} in an earlier result of {annotator}",
        )
    return box_size


def _size_fields(source: Mapping[str, Any]) -> dict[str, Any]:
    return {k: source[k] for k in ("original_width", "original_height") if k in source}


def _annotator(value: Any) -> str | None:
    """``completed_by`` (an id or ``{"email": ...}``) or JSON_MIN ``annotator`` as a name."""
    if isinstance(value, Mapping):
        value = value.get("email") or value.get("id")
    if isinstance(value, bool) or value is None or value == "":
        return None
    return str(value) if isinstance(value, int | str) else None
