"""``from-coco``: a COCO detection file, or a COCO results list, as a Ground Truth prior label.

The file is streamed with ijson (three passes: categories, images, annotations), so memory
holds a compact table of images and boxes, not the parsed document: a COCO file of 100,000
images converts in well under 300 MB (see the README's conversion section).

What COCO says is kept, and what cannot be kept is said:

* coordinates are written exactly as the file has them (no rounding to whole pixels);
* ``iscrowd`` regions (one box around a crowd, which COCO evaluation ignores) are skipped
  and counted; an ``iscrowd`` other than 0 or 1 (``"0"``, ``2``) is a reject;
* class ids are the categories' positions in category-id order, every category included
  (used or not); ``<OUT>.categories.json`` maps each class id to its COCO id and name, and
  the names go into every line's ``class-map``, so evaluation matches classes by name;
* annotations whose image is not in ``images`` (orphans), with a category not in
  ``categories``, or with a malformed ``bbox`` (a number beyond +-(2**31 - 1) pixels included)
  or ``score`` are rejects with their position;
* an image whose ``width`` or ``height`` is beyond 2**31 - 1 pixels (every reader's limit,
  :func:`~gt_toolkit.formats.detection_label.image_side`) is an ``invalid-image`` reject
  with its position, its boxes with it: written, its size was one the manifest readers
  refuse. A size that is missing or not a positive whole number leaves the line without
  one, as before;
* a box turned in ``attributes.rotation`` (CVAT's COCO export keeps it upright in ``bbox``
  and its turn there, degrees clockwise about its centre) is written as the axis-aligned
  envelope of the turned box, by the crowd readers' one rule
  (:func:`~gt_toolkit.formats.crowd.base.envelope`), and counted; read upright, it was
  another box than CVAT showed, silently. A rotation that is not a number is a reject, and
  so are ``attributes`` that are not an object (``null``, ``{}`` and ``[]`` are none).

A results list (``[{"image_id", "category_id", "bbox", "score"}, ...]``, what detectors and
``COCO.loadRes`` use) has no images or categories of its own: they come from the COCO file
named by ``coco_reference`` (``--coco-reference``), as with pycocotools.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeGuard

from gt_toolkit.convert.options import ConversionResult, ConvertOptions
from gt_toolkit.convert.prior_label import PriorManifest, source_ref_for, unique_labels
from gt_toolkit.convert.staging import StagedOutput
from gt_toolkit.errors import ConversionError, CrowdSourceError
from gt_toolkit.formats.coco_ids import coco_id, coco_int
from gt_toolkit.formats.crowd.base import attribute_turn, envelope, first_line
from gt_toolkit.formats.crowd.json_stream import broken_entry, open_json
from gt_toolkit.formats.detection_label import MAX_COORDINATE, image_side
from gt_toolkit.storage.files import Location
from gt_toolkit.storage.s3 import S3Store, is_s3_uri
from gt_toolkit.types import ConsolidatedBox, ImageSize, WorkerBox

__all__ = ["from_coco"]


def from_coco(source: Location, out: StagedOutput, options: ConvertOptions) -> ConversionResult:
    """Write a manifest with one line per COCO image and its boxes as a prior label."""
    name = os.fspath(source)
    with contextlib.ExitStack() as stack:
        path = stack.enter_context(_local_file(name, options.store))
        results = _is_results_list(path)
        if results and options.coco_reference is None:
            raise ConversionError(
                f"{name} is a COCO results list (detections without images or categories): "
                "pass --coco-reference with the COCO file it was made for"
            )
        ref_name = os.fspath(options.coco_reference) if results and options.coco_reference else name
        ref = stack.enter_context(_local_file(ref_name, options.store)) if results else path
        categories = _read_categories(ref, ref_name)
        images = _read_images(ref, ref_name, options.image_prefix)
        with PriorManifest("from-coco", out, options, categories.labels) as prior:
            boxes = _Boxes(len(images.refs))
            prefix = "item" if results else "annotations.item"
            for i, ann in enumerate(_items(path, prefix, name)):
                boxes.add(ann, images, categories, prior, name, i)
            for i, ref_uri in enumerate(images.refs):
                found = boxes.of_image(i, categories.labels)
                where = f"images[{i}]"
                if i in images.unusable:  # its boxes go with it: kept in the rejects file
                    entry, detail = images.unusable[i]
                    raw = {"image": entry, "source-ref": ref_uri, "boxes": found}
                    prior.reject(ref_name, where, "invalid-image", detail, raw)
                    continue
                if prior.add(ref_uri, found, images.size(i), file=ref_name, where=where):
                    boxes.rotated += boxes.turned_of(i)  # not those of an image rejected
    mapping = f"{out.out}.categories.json"
    out.write_json(mapping, categories.mapping())
    result = prior.result(
        categories=categories.mapping(),
        crowd_regions_skipped=boxes.crowd,
        rotated_boxes=boxes.rotated,  # as crowd_regions_skipped: a number, not only a note
        results_list=results,
    )
    result.outputs["categories"] = mapping
    result.notes += _notes(categories, boxes.crowd, boxes.rotated)
    return result


def _notes(categories: _Categories, crowd: int, rotated: int) -> list[str]:
    notes = []
    if any(cid != i for i, cid in enumerate(categories.coco_ids)):
        notes.append(
            "class ids are the COCO categories' positions (see the categories file); "
            "evaluate by name, not by COCO category id"
        )
    if crowd:
        notes.append(f"{crowd} iscrowd regions skipped (COCO evaluation ignores them too)")
    if rotated:
        notes.append(
            f"{rotated} boxes turned in attributes.rotation written as their axis-aligned envelope"
        )
    return notes


@contextlib.contextmanager
def _local_file(location: str, store: S3Store | None) -> Iterator[Path]:
    """A local path to read (an S3 object is downloaded once: the reader makes three passes)."""
    if not is_s3_uri(location):
        if not Path(location).is_file():
            raise ConversionError(f"{location}: no such file")
        yield Path(location)
        return
    with tempfile.TemporaryDirectory(prefix="gt-from-coco-") as tmp:
        path = Path(tmp) / "coco.json"
        (store if store is not None else S3Store()).download_file(location, path)
        yield path


def _is_results_list(path: Path) -> bool:
    """True when the document is a JSON array (a results list), not a COCO object."""
    with path.open("rb") as fh:
        while chunk := fh.read(4096):
            text = chunk.lstrip(b"\xef\xbb\xbf \t\r\n")
            if text:
                return text[:1] == b"["
    return False


def _items(path: Path, prefix: str, name: str) -> Iterator[Any]:
    """Stream the items under ``prefix`` (``images.item``...), as every JSON reader opens files.

    Integers of any size arrive as ``int`` and fractions as ``Decimal`` (yajl's float mode
    fails the whole file on one integer past 64 bits; an odd id must be one reject).
    """
    import ijson  # only this target needs it

    try:
        with open_json(path) as fh:  # a BOM skipped, UTF-8 and the nesting depth checked
            yield from ijson.items(fh, prefix)
    except ijson.JSONError as exc:
        where = broken_entry(path)  # the entry, not yajl's caret over a mangled line
        at = f" at {where}" if where else ""
        raise ConversionError(f"{name}: not valid JSON{at}: {first_line(exc)}") from exc
    except CrowdSourceError as exc:
        raise ConversionError(str(exc)) from exc
    except InvalidOperation:  # 1e<5,000 digits>: valid JSON that Decimal cannot hold
        raise ConversionError(f"{name}: a number whose exponent no reader holds") from None
    except UnicodeDecodeError:  # "\udce9": an escape of half a character, which yajl
        # decodes to bytes that are not UTF-8 (a traceback, before)
        raise ConversionError(
            f"{name}: a string escapes half a character (a lone surrogate such as \\udce9),"
            " which is no text"
        ) from None


@dataclass(slots=True)
class _Categories:
    """COCO categories in id order; a class id is a position in this order."""

    coco_ids: list[int]
    labels: list[str]
    index: dict[str, int]  # by id as text (coco_id): 3, 3.0 and "3" are one id

    def mapping(self) -> list[dict[str, Any]]:
        """Class id, COCO category id and name of every category."""
        return [
            {"class_id": i, "coco_id": cid, "name": name}
            for i, (cid, name) in enumerate(zip(self.coco_ids, self.labels, strict=True))
        ]


def _read_categories(path: Path, name: str) -> _Categories:
    found: dict[int, str] = {}
    for i, cat in enumerate(_items(path, "categories.item", name)):
        cid = coco_int(cat.get("id")) if isinstance(cat, dict) else None
        label = cat.get("name") if isinstance(cat, dict) else None
        if cid is None or not isinstance(label, str) or cid in found:
            raise ConversionError(
                f"{name}: categories[{i}] needs a unique integer 'id' and a 'name': {cat!r:.200}"
            )
        found[cid] = label
    ids = sorted(found)
    labels = unique_labels([found[c] for c in ids], f"{name}: categories")
    return _Categories(ids, labels, {str(cid): i for i, cid in enumerate(ids)})


@dataclass(slots=True)
class _Images:
    """The images table: position by COCO id, source-ref and size (0 when unknown)."""

    index: dict[str, int] = field(default_factory=dict)  # by id as text (coco_id)
    refs: list[str] = field(default_factory=list)
    widths: array[int] = field(default_factory=lambda: array("q"))
    heights: array[int] = field(default_factory=lambda: array("q"))
    # position -> (the entry, why): images whose size no reader takes (a reject each)
    unusable: dict[int, tuple[Any, str]] = field(default_factory=dict)

    def size(self, i: int) -> ImageSize | None:
        w, h = self.widths[i], self.heights[i]
        return {"width": w, "height": h, "depth": 3} if w > 0 and h > 0 else None


def _read_images(path: Path, name: str, prefix: str | None) -> _Images:
    images = _Images()
    for i, img in enumerate(_items(path, "images.item", name)):
        image_id = coco_id(img.get("id")) if isinstance(img, dict) else None
        file_name = img.get("file_name") if isinstance(img, dict) else None
        if image_id is None or not isinstance(file_name, str) or image_id in images.index:
            raise ConversionError(
                f"{name}: images[{i}] needs a unique 'id' and a 'file_name': {img!r:.200}"
            )
        ref = img.get("source_ref")  # gt-convert coco writes it: it wins over file_name
        ref = source_ref_for(
            ref if isinstance(ref, str) else file_name, prefix, f"{name}: images[{i}]"
        )
        images.index[image_id] = len(images.refs)
        images.refs.append(ref)
        w, h = img.get("width"), img.get("height")
        read_w, read_h = _as_read(w), _as_read(h)
        side_w = image_side(read_w) if _is_number(read_w) else None
        side_h = image_side(read_h) if _is_number(read_h) else None
        if side_w is None or side_h is None:  # 0: no usable size, the line gets none
            side_w = side_h = 0
        images.widths.append(side_w)
        images.heights.append(side_h)
        sides = (("width", w, read_w), ("height", h, read_h))
        large = [f"{k} {v!r:.40}" for k, v, read in sides if _too_large(read)]
        if large:
            detail = f"{', '.join(large)}: beyond {_MAX} pixels, no image is that large"
            images.unusable[len(images.refs) - 1] = (img, detail)
    if not images.refs:
        raise ConversionError(f"{name}: no 'images': not a COCO detection file")
    return images


class _Boxes:
    """Every kept box in flat columns, chained per image (a few dozen bytes a box)."""

    def __init__(self, n_images: int) -> None:
        self.head = array("q", [-1]) * n_images
        self.next = array("q")
        self.cls = array("q")
        self.xywhs = array("d")  # left, top, width, height, score (NaN: none)
        self.crowd = 0
        self.turned = array("b")  # per box: turned in attributes.rotation (its envelope kept)
        self.rotated = 0  # of those, the boxes written (an image rejected takes its boxes)

    def add(
        self,
        ann: Any,
        images: _Images,
        categories: _Categories,
        prior: PriorManifest,
        name: str,
        i: int,
    ) -> None:
        """Keep one annotation, or reject it with its reason."""
        if ann.__class__ is not dict:
            prior.reject(name, f"annotations[{i}]", "invalid-annotation", "not an object", ann)
            return
        crowd = ann.get("iscrowd")
        if crowd not in (None, 0, 1):  # read by truth, "0" skipped a real box as a crowd region
            detail = f"iscrowd must be 0 or 1, got {crowd!r:.50}"
            prior.reject(name, f"annotations[{i}]", "invalid-annotation", detail, ann)
            return
        if crowd:
            self.crowd += 1
            return
        image_id, category_id = coco_id(ann.get("image_id")), coco_id(ann.get("category_id"))
        image = images.index.get(image_id) if image_id is not None else None
        cls = categories.index.get(category_id) if category_id is not None else None
        box = _box(ann.get("bbox"), ann.get("score"))
        turned = False
        if not isinstance(box, str):
            box, turned = _turned(box, ann.get("attributes"))
        if image is None:
            reason, detail = "orphan-annotation", "its image_id is not in images"
        elif cls is None:
            reason, detail = "unknown-category", "its category_id is not in categories"
        elif isinstance(box, str):
            reason, detail = "invalid-bbox", box
        else:
            self.next.append(self.head[image])
            self.head[image] = len(self.cls)
            self.cls.append(cls)
            self.xywhs.extend(box)
            self.turned.append(turned)
            return
        prior.reject(name, f"annotations[{i}]", reason, detail, ann)

    def turned_of(self, image: int) -> int:
        """How many boxes of one image were turned in attributes.rotation."""
        count, k = 0, self.head[image]
        while k >= 0:
            count += self.turned[k]
            k = self.next[k]
        return count

    def of_image(self, image: int, labels: list[str]) -> list[ConsolidatedBox]:
        """The boxes of one image, in file order."""
        found = []
        k = self.head[image]
        while k >= 0:
            x, y, w, h, score = self.xywhs[5 * k : 5 * k + 5]
            found.append(
                ConsolidatedBox(
                    label=labels[self.cls[k]],
                    left=x,
                    top=y,
                    width=w,
                    height=h,
                    confidence=1.0 if math.isnan(score) else score,
                )
            )
            k = self.next[k]
        found.reverse()
        return found


def _box(bbox: object, score: object) -> tuple[float, float, float, float, float] | str:
    """``(x, y, w, h, score)`` (score NaN when absent), or why the pair cannot be a box."""
    if bbox.__class__ is not list or len(bbox) != 4 or not _NUMBERS.issuperset(map(type, bbox)):
        return f"bbox must be [x, y, width, height] numbers, got {bbox!r:.100}"
    try:
        x, y, w, h = map(float, bbox)
    except OverflowError:  # an integer of hundreds of digits
        x = y = w = h = math.inf
    total = x + y + w + h
    if total - total != 0.0 or w <= 0 or h <= 0:  # inf - inf and NaN are not 0
        return f"bbox must be finite with a positive width and height, got {bbox!r:.100}"
    if not (-_MAX <= x <= _MAX and -_MAX <= y <= _MAX and w <= _MAX and h <= _MAX):
        # No image is that large; a whole-valued 1e20 would be written as an integer past
        # 64 bits, which no JSON writer takes (the output-manifest readers' rule too).
        return f"bbox is beyond +-{_MAX} pixels, no image is that large: {bbox!r:.100}"
    if score is None:
        return x, y, w, h, math.nan
    if not _is_number(score) or not 0 <= float(score) <= 1:
        return f"score must be a number in [0, 1], got {score!r:.50}"
    return x, y, w, h, float(score)


def _turned(
    box: tuple[float, float, float, float, float], attributes: object
) -> tuple[tuple[float, float, float, float, float] | str, bool]:
    """``box`` turned by ``attributes.rotation`` (its envelope) or why it cannot be; turned?

    CVAT's COCO export (datumaro's) writes a turned rectangle upright in ``bbox`` and its
    turn, degrees clockwise about its centre, in ``attributes.rotation``, as CVAT's XML and
    the ``coco-per-annotator`` crowd reader read it: the envelope is theirs
    (:func:`~gt_toolkit.formats.crowd.base.envelope`). Read upright, a box turned 30
    degrees was written where CVAT did not show it, silently.
    """
    degrees = attribute_turn(attributes)
    if degrees == "attributes":  # a list, a string, a number: not read as none
        return f"attributes must be an object, got {attributes!r:.50}", False
    if isinstance(degrees, str):
        turn = attributes.get("rotation") if isinstance(attributes, dict) else None
        return f"attributes.rotation must be a finite number, got {turn!r:.50}", False
    if not degrees % 360.0:
        return box, False
    x, y, w, h, score = box
    upright: WorkerBox = {"label": "", "left": x, "top": y, "width": w, "height": h}
    env = envelope(upright, degrees, pivot="center")
    x, y, w, h = env["left"], env["top"], env["width"], env["height"]
    if not (-_MAX <= x <= _MAX and -_MAX <= y <= _MAX and w <= _MAX and h <= _MAX):
        return f"bbox turned {degrees:g} degrees is beyond +-{_MAX} pixels: {box[:4]!r:.100}", False
    return (x, y, w, h, score), True


def _as_read(value: object) -> object:
    """An image side as every other reader reads its JSON text: a fraction as a float.

    ijson gives fractions here as ``Decimal`` (exact); the manifest, Label Studio, COCO
    raters and answer readers parse them as floats. ``640.00000000000000000001`` is 640.0
    there and was 640 here before :func:`image_side` (``float(value).is_integer()``);
    compared exactly, it was no whole number, and the line lost the size every reader
    downstream takes. Integers stay exact (a 400-digit side is no float).
    """
    return float(value) if value.__class__ is Decimal else value


def _too_large(value: object) -> bool:
    """A number past every reader's limit for an image side (an integer of any size too)."""
    return _is_number(value) and value > _MAX


_NUMBERS = frozenset({int, float, Decimal})
_MAX = MAX_COORDINATE


def _is_number(value: object) -> TypeGuard[int | float | Decimal]:
    return value.__class__ in _NUMBERS
