"""COCO with several annotators: one file with raters, or one file per annotator.

- ``coco-raters``: the multi-rater convention of the LVIS double annotations and the KaLOS
  agreement tool: ``annotations[].rater_id``, and ``images[].rater_list`` naming who saw
  the image (a list, or ``{rater: [session, ...]}`` where each session counts as its own
  annotator ``"<rater> (S<session>)"`` and annotations carry ``session_id``).
- ``coco-per-annotator``: a folder of plain COCO files, annotator = file stem (the path
  under the folder where stems repeat); images are matched by ``file_name`` and categories
  by ``name`` across files.

Shapes and rules in ``docs/crowd-sources.md``. Each file is streamed (ijson, through
:func:`~gt_toolkit.formats.crowd.json_stream.open_json`) section by section (``categories``,
``images``, ``annotations``), so it may list them in any order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import ijson

from gt_toolkit.errors import CrowdSourceError
from gt_toolkit.formats.coco_ids import coco_id
from gt_toolkit.formats.crowd.answer_index import AnswerIndex
from gt_toolkit.formats.crowd.base import (
    IndexedSource,
    attribute_turn,
    coordinate,
    envelope,
    file_annotators,
    first_line,
    list_files,
    positive_size,
)
from gt_toolkit.formats.crowd.json_stream import broken_entry, json_items, open_json
from gt_toolkit.formats.crowd.report import SkipReason
from gt_toolkit.types import ImageSize, WorkerBox

__all__ = ["PER_ANNOTATOR_EXTENSIONS", "CocoPerAnnotatorSource", "CocoRatersSource"]

PER_ANNOTATOR_EXTENSIONS = (".json",)  # what a folder of per-annotator COCO files lists

_KINDS = {"start_map": "an object", "null": "null"}  # ijson events; scalars read "a number"


@dataclass(frozen=True, slots=True)
class _Category:
    """A ``categories`` entry: its name, where it is, and another entry with its id, if any."""

    name: str
    at: str  # categories[3]
    also: str = ""  # "'truck' at categories[5]": the same id, another name (ambiguous)


class _CocoSource(IndexedSource):
    """What both COCO layouts share: streaming the sections, reading one annotation."""

    def _section(self, location: str, name: str) -> Iterator[tuple[int, Any]]:
        """The entries of the top-level list ``name``, numbered.

        Raises:
            CrowdSourceError: not a JSON object, ``name`` is there but not a list, or it is
                missing (``categories`` may be).
        """
        n = -1  # the last entry read whole
        try:
            items = json_items(
                location,
                f"{name}.item",
                starts=b"{",
                otherwise="not a COCO file: expected an object",
                store=self.store,
            )
            for n, item in enumerate(items):
                yield n, item
            if n < 0:  # nothing read: an empty list, or no list at all
                self._check_list(location, name)
        except ijson.JSONError as exc:
            where = broken_entry(location, store=self.store)
            raise CrowdSourceError(location, where, f"not JSON: {first_line(exc)}") from exc

    def _check_list(self, location: str, name: str) -> None:
        """Refuse a file whose ``name`` is not a list, which ``items`` reads as no entries.

        Called only when a section yielded nothing, so a sound file is read once a section.
        """
        with open_json(location, store=self.store) as stream:
            events = ijson.parse(stream)
            kind = next(
                (next(events, ("", "", None))[1] for top in events if top == ("", "map_key", name)),
                None,
            )
        if kind == "start_array" or (kind is None and name == "categories"):
            return
        found = (
            f"{name!r} is {_KINDS.get(kind, f'a {kind}')}, not a list"
            if kind
            else f"no {name!r} list"
        )
        raise CrowdSourceError(location, "", f"not a COCO file: {found}")

    def _categories(self, location: str) -> dict[str, _Category]:
        """Category id (as text) to its entry; every name is declared as a label.

        Category ids are unique in a file: a second entry with an id already seen is
        ``malformed``, and when it names another category the id is ambiguous, so every
        annotation naming it is ``malformed`` too (:meth:`_box`) rather than given either label.
        """
        categories: dict[str, _Category] = {}
        for n, cat in self._section(location, "categories"):
            where = f"categories[{n}]"
            name = cat.get("name") if isinstance(cat, Mapping) else None
            cat_id = coco_id(cat.get("id")) if isinstance(cat, Mapping) else None
            if not isinstance(name, str) or not name or cat_id is None:
                self.skip(location, where, SkipReason.MALFORMED, "no id or name", cat)
                continue
            first = categories.get(cat_id)
            if first is not None:
                detail = f"duplicate category id {cat['id']!r}, first at {first.at}"
                self.skip(location, where, SkipReason.MALFORMED, detail, cat)
                if name != first.name and not first.also:
                    categories[cat_id] = _Category(first.name, first.at, f"{name!r} at {where}")
                continue
            categories[cat_id] = _Category(name, where)
            self.add_label(name)
        return categories

    def _images(
        self, location: str, index: AnswerIndex, who: str | None, prefix: str
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(file_name, extra)`` of each sound ``images`` entry, registered in the index.

        Its id, prefixed with ``prefix``, becomes an alias of the file name whose extra is
        :meth:`_extra`'s plus where the entry is. ``who`` names the size's origin in a
        conflict (default: the image id).
        """
        for n, image in self._section(location, "images"):
            where = f"images[{n}]"
            entry = self._entry(image)
            if isinstance(entry, str):
                self.skip(location, where, SkipReason.MALFORMED, entry, image)
                continue
            key, size, extra = entry
            alias = prefix + str(coco_id(image["id"]))
            first = index.resolve(alias)
            if first is not None:
                self._duplicate(location, where, index, alias, key, first, image)
                continue
            who_ = who or f"image id {image['id']}"
            index.add_image(key, size, who=who_, where=(location, where))
            index.set_alias(alias, key, {**extra, "at": where})
            yield key, extra

    def _entry(self, image: Any) -> tuple[str, ImageSize | None, dict[str, Any]] | str:
        """``(file_name, size, extra)`` of an ``images`` entry, or why it is malformed."""
        name = image.get("file_name") if isinstance(image, Mapping) else None
        if not isinstance(name, str) or not name or coco_id(image.get("id")) is None:
            return "no id or file_name"
        width, height = image.get("width"), image.get("height")
        size = positive_size(width, height)
        if size is None and (width, height) != (None, None):
            return f"width {width!r}, height {height!r}: not whole numbers from 1 to 2**31 - 1"
        extra = self._extra(image)
        return extra if isinstance(extra, str) else (name, size, extra)

    def _extra(self, image: Mapping[str, Any]) -> dict[str, Any] | str:
        """What the layout keeps with an image id, or why the entry is malformed."""
        return {}

    def _duplicate(
        self,
        location: str,
        where: str,
        index: AnswerIndex,
        alias: str,
        key: str,
        first: tuple[str, Any],
        image: Mapping[str, Any],
    ) -> None:
        """Reject a second entry with an image id already seen.

        If it names another file, the id is ambiguous: every annotation naming it is
        rejected (:meth:`_box`) rather than put on either image.
        """
        first_key, extra = first
        self.skip(
            location,
            where,
            SkipReason.MALFORMED,
            f"duplicate image id {image['id']!r}, first at {extra['at']}",
            image,
        )
        if key != first_key and "also" not in extra:
            index.set_alias(alias, first_key, {**extra, "also": f"{key!r} at {where}"})

    def _box(
        self,
        location: str,
        n: int,
        ann: Any,
        resolve: Any,
        categories: Mapping[str, _Category],
    ) -> tuple[str, Any, WorkerBox | SkipReason] | None:
        """``(image key, alias extra, box)`` of one annotation.

        ``None`` when it names no known image; instead of the box, why it is not read when
        it is rejected or a crowd region on an image that is known.
        """
        where = _annotation_at(n, ann)
        if not isinstance(ann, Mapping):
            self.skip(location, where, SkipReason.MALFORMED, "not an object", ann)
            return None
        image_id = coco_id(ann.get("image_id"))
        found = resolve(image_id) if image_id is not None else None
        if found is None:
            self.skip(
                location, where, SkipReason.UNKNOWN_IMAGE, f"image_id {ann.get('image_id')!r}", ann
            )
            return None
        key, extra = found
        if "also" in extra:
            detail = (
                f"image_id {ann.get('image_id')!r} names both {key!r} at {extra['at']}"
                f" and {extra['also']}"
            )
            self.skip(location, where, SkipReason.MALFORMED, detail, ann)
            return key, extra, SkipReason.MALFORMED
        crowd = ann.get("iscrowd")
        if crowd not in (None, 0, 1):  # "0" read as true skipped a real box as a crowd region
            detail = f"iscrowd {crowd!r} is not 0 or 1"
            self.skip(location, where, SkipReason.MALFORMED, detail, ann)
            return key, extra, SkipReason.MALFORMED
        if crowd:  # a region of several objects: its annotator abstains if it is all they drew
            self.skip(location, where, SkipReason.CROWD_REGION)
            return key, extra, SkipReason.CROWD_REGION
        category_id = coco_id(ann.get("category_id"))
        category = categories.get(category_id) if category_id is not None else None
        if category is None:
            self.skip(
                location,
                where,
                SkipReason.UNKNOWN_CATEGORY,
                f"category_id {ann.get('category_id')!r}",
                ann,
            )
            return key, extra, SkipReason.UNKNOWN_CATEGORY
        if category.also:
            detail = (
                f"category_id {ann.get('category_id')!r} names both {category.name!r} at"
                f" {category.at} and {category.also}"
            )
            self.skip(location, where, SkipReason.MALFORMED, detail, ann)
            return key, extra, SkipReason.MALFORMED
        label = category.name
        bbox = ann.get("bbox")
        coords = [coordinate(v) for v in bbox] if isinstance(bbox, list) and len(bbox) == 4 else []
        if len(coords) != 4 or any(c is None for c in coords):
            self.skip(
                location, where, SkipReason.MALFORMED, "bbox is not [x, y, width, height]", ann
            )
            return key, extra, SkipReason.MALFORMED
        x, y, w, h = (c or 0.0 for c in coords)
        if w < 0 or h < 0:  # a zero size reaches the engine, which drops it as every source's
            self.skip(
                location,
                where,
                SkipReason.MALFORMED,
                "bbox width and height must not be negative",
                ann,
            )
            return key, extra, SkipReason.MALFORMED
        box: WorkerBox = {"label": label, "left": x, "top": y, "width": w, "height": h}
        rotation = attribute_turn(ann.get("attributes"))  # CVAT's COCO export turns boxes
        if isinstance(rotation, str):
            unread = "an object" if rotation == "attributes" else "a number"
            self.skip(location, where, SkipReason.MALFORMED, f"{rotation} is not {unread}", ann)
            return key, extra, SkipReason.MALFORMED
        if rotation % 360.0:
            self.report.rotated += 1
            box = envelope(box, rotation, pivot="center")
        return key, extra, box


class CocoRatersSource(_CocoSource):
    """One COCO file whose annotations carry ``rater_id`` (and images ``rater_list``)."""

    kind = "coco-raters"

    def _extra(self, image: Mapping[str, Any]) -> dict[str, Any] | str:
        """The image's raters (:func:`_rater_list`)."""
        return _rater_list(image.get("rater_list"))

    def load(self, index: AnswerIndex) -> None:
        """Categories, then images with their raters, then every annotation, into ``index``."""
        location = self.location
        categories = self._categories(location)
        for key, extra in self._images(location, index, None, ""):
            for name in extra["raters"] or ():
                index.add_box(key, name, None)  # saw the image; boxes follow, if any
        for n, ann in self._section(location, "annotations"):
            read = self._box(location, n, ann, index.resolve, categories)
            if read is None:
                continue
            key, extra, box = read
            rater = _rater(ann, extra["sessions"])
            listed = rater is not None and (extra["raters"] is None or rater in extra["raters"])
            where = _annotation_at(n, ann)
            if isinstance(box, SkipReason):  # counted already; a known rater's region unread
                if listed:
                    index.add_box(key, str(rater), None, unread=box)
            elif rater is None:
                self.skip(
                    location, where, SkipReason.NO_ANNOTATOR, "no rater_id (or session_id)", ann
                )
            elif not listed:
                self.skip(
                    location,
                    where,
                    SkipReason.RATER_NOT_LISTED,
                    f"rater {rater!r} is not in the image's rater_list",
                    ann,
                )
            else:
                index.add_box(key, rater, box)


def _annotation_at(n: int, ann: Any) -> str:
    """``annotations[3] (id 17)``: the position, and the id a user searches the file for."""
    return f"annotations[{n}]" + (
        f" (id {ann['id']})" if isinstance(ann, Mapping) and "id" in ann else ""
    )


class CocoPerAnnotatorSource(_CocoSource):
    """A folder of COCO files, one per annotator (the file's stem)."""

    kind = "coco-per-annotator"

    def load(self, index: AnswerIndex) -> None:
        """Each file's images (seen by its annotator) and boxes, into ``index``."""
        files = list_files(self.location, PER_ANNOTATOR_EXTENSIONS, store=self.store)
        # alice/annotations/instances_default.json and bob/... (CVAT's and datumaro's COCO
        # export, unzipped per annotator) name alice/annotations/instances_default and bob/...
        annotators = file_annotators(self.location, files, whole_path=False)
        for number, (location, annotator) in enumerate(annotators.items()):
            categories = self._categories(location)
            prefix = f"{number}:"
            for key, _ in self._images(location, index, annotator, prefix):
                index.add_box(key, annotator, None)
            for n, ann in self._section(location, "annotations"):
                read = self._box(
                    location, n, ann, lambda i, p=prefix: index.resolve(p + i), categories
                )
                if read is None:
                    continue
                key, _, box = read
                if isinstance(box, SkipReason):
                    index.add_box(key, annotator, None, unread=box)
                else:
                    index.add_box(key, annotator, box)


def _rater_list(value: Any) -> dict[str, Any] | str:
    """``rater_list`` as annotator names and whether it lists sessions, or why it cannot be.

    ``raters`` is ``None`` when the image has no ``rater_list``.
    """
    if value is None:
        return {"raters": None, "sessions": False}
    if isinstance(value, list) and all(map(_is_id, value)):
        return {"raters": [coco_id(r) for r in value], "sessions": False}
    if isinstance(value, Mapping) and all(
        isinstance(s, list) and all(map(_is_id, s)) for s in value.values()
    ):
        raters = [f"{r} (S{coco_id(s)})" for r, sessions in value.items() for s in sessions]
        return {"raters": raters, "sessions": True}
    return "rater_list is neither a list of raters nor an object of session lists"


def _is_id(value: Any) -> bool:
    """A rater or session id in ``rater_list``, by the rule of :func:`coco_id`.

    ``rater_list: [4.0]`` (the float-typed column that writes ``rater_id: 4.0``) lists rater
    4; held to integers and strings, the image was ``malformed`` while its ``rater_id`` was
    read.
    """
    return coco_id(value) is not None


def _rater(ann: Mapping[str, Any], sessions: bool) -> str | None:
    """The annotation's annotator; ``None`` when its ``rater_id`` (or ``session_id``) is no id.

    A list or an object was an annotator named by its text (``['r1']``) on an image
    without ``rater_list``.
    """
    rater = coco_id(ann.get("rater_id"))
    if not rater:
        return None
    if not sessions:
        return rater
    session = coco_id(ann.get("session_id"))
    return None if session is None else f"{rater} (S{session})"
