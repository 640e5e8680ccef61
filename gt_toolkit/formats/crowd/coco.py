"""COCO with several annotators: one file with raters, or one file per annotator.

- ``coco-raters``: the multi-rater convention of the LVIS double annotations and the KaLOS
  agreement tool: ``annotations[].rater_id``, and ``images[].rater_list`` naming who saw
  the image (a list, or ``{rater: [session, ...]}`` where each session counts as its own
  annotator ``"<rater> (S<session>)"`` and annotations carry ``session_id``).
- ``coco-per-annotator``: a folder of plain COCO files, annotator = file stem; images are
  matched by ``file_name`` and categories by ``name`` across files.

Shapes in ``docs/crowd-sources.md``. Each file is streamed (ijson) section by section
(``categories``, ``images``, ``annotations``), so it may list them in any order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any

import ijson

from gt_toolkit.errors import CrowdSourceError
from gt_toolkit.formats.crowd.answer_index import AnswerIndex
from gt_toolkit.formats.crowd.base import (
    IndexedSource,
    coordinate,
    first_line,
    list_files,
    open_stream,
    positive_size,
)
from gt_toolkit.formats.crowd.report import SkipReason
from gt_toolkit.types import WorkerBox

__all__ = ["CocoPerAnnotatorSource", "CocoRatersSource"]


class _CocoSource(IndexedSource):
    """What both COCO layouts share: streaming the sections, reading one annotation."""

    def _section(self, location: str, name: str) -> Iterator[tuple[int, Any]]:
        n = -1  # the last entry read whole
        try:
            with open_stream(location, store=self.store) as stream:
                if stream.peek(64).lstrip()[:1] != b"{":
                    raise CrowdSourceError(location, "", "not a COCO file: expected an object")
                for n, item in enumerate(ijson.items(stream, f"{name}.item", use_float=True)):
                    yield n, item
        except ijson.JSONError as exc:
            raise CrowdSourceError(
                location, f"{name}[{n + 1}]", f"not JSON: {first_line(exc)}"
            ) from exc

    def _categories(self, location: str) -> dict[str, str]:
        """Category id (as text) to name; every name is declared as a label."""
        names: dict[str, str] = {}
        for n, cat in self._section(location, "categories"):
            name = cat.get("name") if isinstance(cat, Mapping) else None
            if not isinstance(name, str) or not name or "id" not in cat:
                self.skip(location, f"categories[{n}]", SkipReason.MALFORMED, "no id or name", cat)
                continue
            names[str(cat["id"])] = name
            self.add_label(name)
        return names

    def _images(
        self, location: str, index: AnswerIndex, who: str | None
    ) -> Iterator[tuple[str, str, Any]]:
        """``(image id, file_name, entry)`` of each ``images`` entry, registered in the index.

        ``who`` names the size's origin in a conflict (default: the image id).
        """
        for n, image in self._section(location, "images"):
            name = image.get("file_name") if isinstance(image, Mapping) else None
            if not isinstance(name, str) or not name or "id" not in image:
                self.skip(
                    location, f"images[{n}]", SkipReason.MALFORMED, "no id or file_name", image
                )
                continue
            size = positive_size(image.get("width"), image.get("height"))
            image_id = str(image["id"])
            where = (location, f"images[{n}]")
            index.add_image(name, size, who=who or f"image id {image_id}", where=where)
            yield image_id, name, image

    def _box(
        self,
        location: str,
        n: int,
        ann: Any,
        resolve: Any,
        categories: Mapping[str, str],
    ) -> tuple[str, Any, WorkerBox | None] | None:
        """``(image key, alias extra, box)`` of one annotation.

        ``None`` when it names no known image or is skipped on purpose; the box is ``None``
        when it is broken (rejected) on an image that is known.
        """
        where = f"annotations[{n}]" + (
            f" (id {ann['id']})" if isinstance(ann, Mapping) and "id" in ann else ""
        )
        if not isinstance(ann, Mapping):
            self.skip(location, where, SkipReason.MALFORMED, "not an object", ann)
            return None
        found = resolve(str(ann.get("image_id")))
        if found is None:
            self.skip(
                location, where, SkipReason.UNKNOWN_IMAGE, f"image_id {ann.get('image_id')!r}", ann
            )
            return None
        if ann.get("iscrowd"):
            self.skip(location, where, SkipReason.CROWD_REGION)
            return None
        key, extra = found
        label = categories.get(str(ann.get("category_id")))
        if label is None:
            self.skip(
                location,
                where,
                SkipReason.UNKNOWN_CATEGORY,
                f"category_id {ann.get('category_id')!r}",
                ann,
            )
            return key, extra, None
        bbox = ann.get("bbox")
        coords = [coordinate(v) for v in bbox] if isinstance(bbox, list) and len(bbox) == 4 else []
        if len(coords) != 4 or any(c is None for c in coords):
            self.skip(
                location, where, SkipReason.MALFORMED, "bbox is not [x, y, width, height]", ann
            )
            return key, extra, None
        x, y, w, h = (c or 0.0 for c in coords)
        return key, extra, {"label": label, "left": x, "top": y, "width": w, "height": h}


class CocoRatersSource(_CocoSource):
    """One COCO file whose annotations carry ``rater_id`` (and images ``rater_list``)."""

    kind = "coco-raters"

    def load(self, index: AnswerIndex) -> None:
        """Categories, then images with their raters, then every annotation, into ``index``."""
        location = self.location
        categories = self._categories(location)
        for image_id, key, image in self._images(location, index, None):
            raters, sessions = _rater_list(image.get("rater_list"))
            index.set_alias(image_id, key, {"raters": raters, "sessions": sessions})
            for name in raters or ():
                index.add_box(key, name, None)  # saw the image; boxes follow, if any
        for n, ann in self._section(location, "annotations"):
            read = self._box(location, n, ann, index.resolve, categories)
            if read is None:
                continue
            key, extra, box = read
            rater = _rater(ann, extra["sessions"])
            listed = rater is not None and (extra["raters"] is None or rater in extra["raters"])
            where = f"annotations[{n}]"
            if box is None:  # rejected already: its rater, if known, is left out of the image
                if listed:
                    index.add_box(key, str(rater), None, broken=True)
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


class CocoPerAnnotatorSource(_CocoSource):
    """A folder of COCO files, one per annotator (the file's stem)."""

    kind = "coco-per-annotator"

    def load(self, index: AnswerIndex) -> None:
        """Each file's images (seen by its annotator) and boxes, into ``index``."""
        for number, location in enumerate(list_files(self.location, (".json",), store=self.store)):
            annotator = PurePosixPath(location.replace("\\", "/")).stem
            categories = self._categories(location)
            for image_id, key, _ in self._images(location, index, annotator):
                index.set_alias(f"{number}:{image_id}", key, None)
                index.add_box(key, annotator, None)
            for n, ann in self._section(location, "annotations"):
                read = self._box(
                    location, n, ann, lambda i, p=f"{number}:": index.resolve(p + i), categories
                )
                if read is not None:
                    key, _, box = read
                    index.add_box(key, annotator, box, broken=box is None)


def _rater_list(value: Any) -> tuple[list[str] | None, bool]:
    """``rater_list`` as annotator names, and whether it lists sessions."""
    if isinstance(value, list):
        return [str(r) for r in value], False
    if isinstance(value, Mapping):
        return [f"{r} (S{s})" for r, sessions in value.items() for s in sessions or ()], True
    return None, False


def _rater(ann: Mapping[str, Any], sessions: bool) -> str | None:
    rater = ann.get("rater_id")
    if rater is None or isinstance(rater, bool) or rater == "":
        return None
    if not sessions:
        return str(rater)
    session = ann.get("session_id")
    return None if session is None else f"{rater} (S{session})"
