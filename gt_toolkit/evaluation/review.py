"""Pictures for people: boxes drawn on images, a contact sheet, an HTML review report.

Users judge a labeling run by looking at it, starting where the workers disagreed. For each
object of an output manifest this module draws the consolidated boxes with their confidence
and, when the workers' answers are known, every worker's boxes in that worker's colour in a
second panel beside them. :func:`write_review` puts the pictures, a contact sheet PNG and a
self-contained HTML report (images inlined as ``data:`` URIs, no external assets, so it can be
mailed or attached to a ticket) in one folder, images sorted by lowest agreement first, with
the worker-quality table on top.

The drawing and HTML functions are pure (images and values in, images and text out);
:func:`write_review` is the I/O edge that reads the manifest, the worker answers (by the
``gt-job`` crowd source's rules, so a review and ``consolidate`` see the same answers) and
the images (from S3 or a local folder).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import math
import os
import re
import secrets
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import IO, Any

from PIL import ExifTags, Image, ImageDraw, ImageOps, Jpeg2KImagePlugin

from gt_toolkit.consolidation.engine import ConsolidationSettings, consolidate_image
from gt_toolkit.consolidation.worker_quality import QualityAccumulator
from gt_toolkit.errors import ConversionError, StorageError, ValidationError
from gt_toolkit.evaluation.fonts import caption_size, font_for, missing_glyphs
from gt_toolkit.formats.crowd.gt_job import (
    find_worker_responses,
    one_per_worker,
    read_answer_files,
    reject_unknown_objects,
    reject_unreadable,
)
from gt_toolkit.formats.crowd.report import IngestReport, Skipper
from gt_toolkit.formats.manifest import RejectPolicy, RejectsSink, dataset_object_id
from gt_toolkit.formats.output_manifest import (
    DetectionRecord,
    OutputStats,
    iter_detection_records,
)
from gt_toolkit.formats.worker_answers import BoundingBoxAnswer
from gt_toolkit.storage.files import (
    AllOrNone,
    Location,
    check_links,
    inside_location,
    json_bytes,
    make_part_folder,
    read_bytes,
)
from gt_toolkit.storage.image_mirror import (
    TURNED,
    ImageMirror,
    data_uri,
    eight_bit_colour_key,
    eight_bits,
)
from gt_toolkit.storage.s3 import S3Store, is_s3_uri, parse_s3_uri
from gt_toolkit.templating import render_page
from gt_toolkit.types import ConsolidatedBox, ImageSize

__all__ = [
    "CONSENSUS_COLOUR",
    "SHEET_IMAGES",
    "WORKER_COLOURS",
    "ReviewItem",
    "ReviewSummary",
    "build_review_html",
    "contact_label_height",
    "contact_sheet",
    "draw_boxes",
    "image_agreement",
    "image_resolver",
    "read_worker_responses",
    "render_review_image",
    "review_files",
    "worker_colours",
    "worker_quality_rows",
    "write_review",
]

RGB = tuple[int, int, int]

CONSENSUS_COLOUR: RGB = (0, 230, 64)
"""Consolidated boxes: a green that stands out on most photos."""
WORKER_COLOURS: tuple[RGB, ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (148, 103, 189),
    (23, 190, 207),
    (227, 119, 194),
    (188, 189, 34),
    (140, 86, 75),
    (255, 215, 0),
    (127, 127, 127),
    (214, 39, 40),
)
"""One colour per worker (tab10 without its green, which marks the consensus)."""
_PANEL_GAP = 6
_MISSING_SIZE = (160, 120)
_MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485  # Pillow's warning limit (None: off)
_CELL = (240, 120)  # a contact-sheet cell's pixels
_MAX_SIDE = 4096
"""The longest side an image is drawn at. A larger one is decoded reduced (a JPEG's
``draft``, a JPEG 2000's ``reduce``) or shrunk as soon as it is read, and its boxes with it:
drawn whole, an 80-megapixel photo, or the grey placeholder of one that was missing, took
about 1 GB (its two panels and the picture they make); seeing where the boxes lie needs no
more than this."""
SHEET_IMAGES = 600
"""The contact sheet shows this many images at most, the lowest-agreement ones: a sheet of
all of 10,000 images was 1,440 x 235,000 pixels, 1.5 GB at peak; every image is in
``images/`` and in the report whatever their number."""


# --------------------------------------------------------------------------- pure core


@dataclass(slots=True, kw_only=True)
class ReviewItem:
    """One object to review: its consolidated boxes and, when known, each worker's answer."""

    source_ref: str
    boxes: list[ConsolidatedBox]
    workers: list[BoundingBoxAnswer] = field(default_factory=list)
    image_size: ImageSize | None = None
    line_no: int = 0

    @property
    def agreement(self) -> float:
        """See :func:`image_agreement`."""
        return image_agreement(self.boxes, self.workers)


def image_agreement(
    boxes: Sequence[ConsolidatedBox], workers: Sequence[BoundingBoxAnswer] = ()
) -> float:
    """How much the workers agreed on an image, in [0, 1]: the mean box confidence.

    An image without consolidated boxes scores 1.0 when no worker drew anything (they agree
    it is empty) and 0.0 when some worker did (their boxes found no support), so those come
    first in the review. Ground Truth writes confidence 0.0 for single-worker jobs, so such
    outputs all score 0 and keep manifest order.
    """
    if boxes:
        return math.fsum(float(b["confidence"]) for b in boxes) / len(boxes)
    return 0.0 if any(w.boxes for w in workers) else 1.0


def worker_colours(worker_ids: Iterable[str]) -> dict[str, RGB]:
    """A stable colour per worker: sorted ids take :data:`WORKER_COLOURS` in turn."""
    return {
        wid: WORKER_COLOURS[i % len(WORKER_COLOURS)]
        for i, wid in enumerate(sorted(set(worker_ids)))
    }


def _text_colour(fill: RGB) -> RGB:
    luminance = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def _finite_box(box: Mapping[str, Any]) -> bool:
    try:
        return all(math.isfinite(float(box[k])) for k in ("left", "top", "width", "height"))
    except (KeyError, TypeError, ValueError):
        return False


def _resized(image: Image.Image, scale: float) -> Image.Image:
    out = image.convert("RGB")
    if scale != 1.0:
        out = out.resize(
            (max(1, round(out.width * scale)), max(1, round(out.height * scale))),
            Image.Resampling.BILINEAR,
        )
    return out


def draw_boxes(
    image: Image.Image,
    boxes: Sequence[Mapping[str, Any]],
    colour: RGB,
    *,
    captions: Sequence[str] | None = None,
    scale: float = 1.0,
    line_width: int = 2,
    box_scale: float | None = None,
) -> Image.Image:
    """Draw Ground Truth ``{left, top, width, height}`` boxes on a copy of ``image``.

    The outline runs along the box's pixel edges (drawn inwards), so the pixel at
    ``(left, top + height / 2)`` is ``colour``; captions sit on a filled tab above the box
    (inside it when the box touches the top). Boxes with non-finite coordinates, which dirty
    worker answers can hold, are skipped rather than failing the picture.

    Args:
        image: the picture at its original size; it is resized by ``scale`` first.
        boxes: pixel boxes in the original image's coordinates.
        captions: one text per box (``None`` for none).
        box_scale: the boxes' scale when ``image`` is a reduced copy of the labeled image
            (default ``scale``): the labeled pixels' size on the drawn picture.
    """
    out = _resized(image, scale)
    at = scale if box_scale is None else box_scale
    _draw_on(out, boxes, colour, captions=captions, scale=at, line_width=line_width)
    return out


def _draw_on(
    out: Image.Image,
    boxes: Sequence[Mapping[str, Any]],
    colour: RGB,
    *,
    captions: Sequence[str] | None,
    scale: float,
    line_width: int,
) -> None:
    draw = ImageDraw.Draw(out)
    size = caption_size(out.width, out.height)
    for i, box in enumerate(boxes):
        if not _finite_box(box):
            continue
        x0 = float(box["left"]) * scale
        y0 = float(box["top"]) * scale
        x1 = x0 + max(float(box["width"]) * scale, 1.0) - 1
        y1 = y0 + max(float(box["height"]) * scale, 1.0) - 1
        if x0 >= out.width or y0 >= out.height or x1 < 0 or y1 < 0:
            continue  # wholly off the picture: nothing of it to show
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=line_width)
        text = captions[i] if captions is not None else ""
        if text:
            # On the picture: a box reaching past its left or top edge (-1e20, a label's
            # coordinates are anything finite) put the caption there, where Pillow's text
            # drawing failed with a SystemError (the review stopped) or it could not be seen.
            cx, cy = max(x0, 0.0), max(y0, 0.0)
            font = font_for(text, size)
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            tw, th = right - left + 4, bottom - top + 3
            ty = cy - th if cy - th >= 0 else cy + line_width
            draw.rectangle([cx, ty, cx + tw, ty + th], fill=colour)
            draw.text((cx + 2 - left, ty + 1 - top), text, fill=_text_colour(colour), font=font)


def _legend(
    draw: ImageDraw.ImageDraw, x: int, y: int, entries: Sequence[tuple[str, RGB]], size: int
) -> None:
    for text, colour in entries:
        font = font_for(text, size)
        draw.rectangle([x, y + 2, x + size - 2, y + size], fill=colour)
        draw.text((x + size + 2, y + 1), text, fill=(0, 0, 0), font=font)
        x += size + 2 + int(draw.textlength(text, font=font)) + size


def render_review_image(
    image: Image.Image,
    item: ReviewItem,
    *,
    colours: Mapping[str, RGB] | None = None,
    scale: float = 1.0,
    box_scale: float | None = None,
) -> Image.Image:
    """The review picture of one object: consensus panel, then (if known) the workers' panel.

    The left panel shows the consolidated boxes in :data:`CONSENSUS_COLOUR`, captioned
    ``label confidence``; the right one (only when ``item.workers`` is not empty) shows every
    worker's boxes in that worker's colour. A legend strip under the panels names the
    colours. Panels are ``scale`` times the image size and start at x = 0 and
    x = panel width + 6; captions and legend use :func:`~gt_toolkit.evaluation.fonts.caption_size`
    of the panel. ``box_scale``: as :func:`draw_boxes` takes it, for a reduced ``image``.
    """
    at = scale if box_scale is None else box_scale
    consensus = draw_boxes(
        image,
        item.boxes,
        CONSENSUS_COLOUR,
        captions=[f"{b['label']} {float(b['confidence']):.2f}" for b in item.boxes],
        scale=scale,
        box_scale=at,
    )
    panels = [consensus]
    legend: list[tuple[str, RGB]] = [("consensus", CONSENSUS_COLOUR)]
    if item.workers:
        palette = dict(colours or worker_colours(w.worker_id for w in item.workers))
        for wid, colour in worker_colours(w.worker_id for w in item.workers).items():
            palette.setdefault(wid, colour)
        workers_panel = _resized(image, scale)
        for answer in sorted(item.workers, key=lambda a: a.worker_id):
            _draw_on(
                workers_panel,
                answer.boxes,
                palette[answer.worker_id],
                captions=None,
                scale=at,
                line_width=2,
            )
        panels.append(workers_panel)
        legend += [(_short(a.worker_id), palette[a.worker_id]) for a in item.workers]
    size = caption_size(consensus.width, consensus.height)
    width = sum(p.width for p in panels) + _PANEL_GAP * (len(panels) - 1)
    height = max(p.height for p in panels) + size + 4
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    x = 0
    for panel in panels:
        sheet.paste(panel, (x, 0))
        x += panel.width + _PANEL_GAP
    _legend(ImageDraw.Draw(sheet), 2, height - size - 4, legend, size)
    return sheet


def _short(worker_id: str) -> str:
    """Worker ids like ``private.us-east-1.0123abcd`` shortened to their last part.

    A long part keeps its end, where ids of one team differ (``sim20261124w03``).
    """
    part = worker_id.rsplit(".", 1)[-1]
    return (part if len(part) <= 12 else "…" + part[-11:]) or "?"


def contact_label_height(cell: tuple[int, int]) -> int:
    """Pixels under each contact-sheet cell for its caption: a font a sixteenth of the width."""
    return max(12, round(cell[0] / 16)) + 6


def contact_sheet(
    images: Sequence[tuple[Image.Image, str]],
    *,
    columns: int = 6,
    cell: tuple[int, int] = _CELL,
) -> Image.Image:
    """Thumbnails in a grid, each fitted into ``cell`` with its caption underneath.

    The sheet is exactly ``columns * cell[0]`` wide (fewer columns when there are fewer
    images) and ``rows * (cell[1] + contact_label_height(cell))`` high.
    """
    if columns < 1:
        raise ValidationError([f"columns must be >= 1, got {columns}"], what="contact sheet")
    cols = max(1, min(columns, len(images)))
    rows = max(1, math.ceil(len(images) / cols))
    cw, ch = cell
    label = contact_label_height(cell)
    size = label - 6
    sheet = Image.new("RGB", (cols * cw, rows * (ch + label)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (img, caption) in enumerate(images):
        thumb = _thumbnail(img, cell)
        r, c = divmod(i, cols)
        x, y = c * cw, r * (ch + label)
        sheet.paste(thumb, (x + (cw - thumb.width) // 2, y + (ch - thumb.height) // 2))
        font = font_for(caption, size)
        text = caption
        while text and draw.textlength(text, font=font) > cw - 4:
            text = text[:-2] + "…" if len(text) > 2 else ""
        draw.text((x + 2, y + ch + 2), text, fill=(0, 0, 0), font=font)
    return sheet


def worker_quality_rows(
    items: Sequence[ReviewItem], *, settings: ConsolidationSettings | None = None
) -> list[dict[str, Any]]:
    """The worker-quality table of the items' worker answers.

    Quality needs to know which consensus box each worker box joined, so each image's
    answers are consolidated again with :func:`~gt_toolkit.consolidation.engine.consolidate_image`
    (``settings``, default: the toolkit's defaults); the manifest's own boxes may come from
    another consolidation (Ground Truth's built-in one) and carry no such link. One row per
    worker, sorted by worker id.
    """
    acc = QualityAccumulator()
    for item in items:
        if not item.workers:
            continue
        answers = [a.boxes for a in item.workers]
        consolidation = consolidate_image(
            answers, settings=settings or ConsolidationSettings(), image_size=item.image_size
        )
        acc.add(
            [a.worker_id for a in item.workers],
            answers,
            consolidation,
            image_size=item.image_size,
            time_spent=[a.time_spent for a in item.workers],
        )
    return [q.to_json() for q in acc.result()]


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _quality_table(
    quality: Sequence[Mapping[str, Any]], palette: Mapping[str, RGB]
) -> list[list[dict[str, Any]]]:
    """Cells of the worker-quality table: text, whether it is a number, the worker's swatch."""
    keys = list(quality[0]) if quality else []
    rows = []
    for row in quality:
        cells = []
        for key in keys:
            value = row.get(key)
            colour = palette.get(str(value)) if key == "worker_id" else None
            cells.append(
                {
                    "text": _cell(value),
                    "number": isinstance(value, int | float) and not isinstance(value, bool),
                    "swatch": "rgb({},{},{})".format(*colour) if colour else None,
                }
            )
        rows.append(cells)
    return rows


def build_review_html(
    items: Sequence[ReviewItem],
    pictures: Sequence[bytes | None],
    *,
    quality: Sequence[Mapping[str, Any]] = (),
    colours: Mapping[str, RGB] | None = None,
    title: str = "Ground Truth review",
    notes: Sequence[str] = (),
) -> str:
    """A self-contained HTML page: worker-quality table, then one row per image.

    Rows follow ``items`` order (pass them sorted by agreement). ``pictures`` holds each
    item's picture (PNG or JPEG bytes) in the same order (``None``: no picture), inlined as
    a ``data:`` URI; by position, since a manifest may list one image on two lines. The
    page is ``templates/review/report.html.j2``, rendered with autoescape, so source-refs,
    labels and worker ids cannot inject markup; labels and worker ids sit in ``<bdi>``, so
    right-to-left text (or a stray U+202E override) in them cannot reorder the numbers
    after them.
    """
    srcs = [data_uri(picture) if picture else None for picture in pictures]
    return _review_page(items, srcs, quality=quality, colours=colours, title=title, notes=notes)


def _review_page(
    items: Sequence[ReviewItem],
    srcs: Sequence[str | None],
    *,
    quality: Sequence[Mapping[str, Any]],
    colours: Mapping[str, RGB] | None,
    title: str,
    notes: Sequence[str],
) -> str:
    """:func:`build_review_html` with each picture's ``src`` given (a ``data:`` URI, a mark)."""
    images = [
        {
            "rank": rank,
            "source_ref": item.source_ref,
            "agreement": item.agreement,
            "picture": src,
            "boxes": [(b["label"], f"{float(b['confidence']):.2f}") for b in item.boxes],
            "workers": [
                (a.worker_id, len(a.boxes)) for a in sorted(item.workers, key=lambda a: a.worker_id)
            ],
        }
        for rank, (item, src) in enumerate(zip(items, srcs, strict=True), 1)
    ]
    return render_page(
        "review/report.html.j2",
        {
            "title": title,
            "notes": list(notes),
            "quality_keys": list(quality[0]) if quality else [],
            "quality_rows": _quality_table(quality, colours or {}),
            "images": images,
        },
    )


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=False)
    return buf.getvalue()


_JPEG_QUALITY = 90
_JPEG_MAX_SIDE = 65_500
"""The longest side a JPEG holds: Pillow fails a longer one ("broken data stream")."""


def _jpeg(image: Image.Image) -> bytes:
    """``image`` as a JPEG of quality :data:`_JPEG_QUALITY` with no chroma subsampling.

    4:2:0 (Pillow's default) halves the colour's resolution: a 2 px green box line on a
    noisy photo came back up to 54 levels off in a channel, against 24 at 4:4:4.
    """
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=_JPEG_QUALITY, subsampling=0, optimize=True)
    return buf.getvalue()


# --------------------------------------------------------------------------- I/O edges


def image_resolver(
    *,
    images_dir: str | os.PathLike[str] | None = None,
    images_prefix: str | None = None,
    store: S3Store | None = None,
) -> Callable[[str], bytes | None]:
    """A function from a ``source-ref`` to the image bytes, or ``None`` when not found.

    Without ``images_dir`` the image is read from S3 (or the local path the source-ref
    names). With it, only that local mirror is read
    (:class:`~gt_toolkit.storage.image_mirror.ImageMirror`).
    """

    def from_store(source_ref: str) -> bytes | None:
        try:
            return read_bytes(source_ref, store=store)
        except StorageError:
            return None

    if images_dir is None:
        return from_store
    mirror = ImageMirror(images_dir, images_prefix)

    def from_dir(source_ref: str) -> bytes | None:
        path = mirror.local_path(source_ref)
        return path.read_bytes() if path is not None else None

    return from_dir


def read_worker_responses(
    prefix: str,
    objects: Mapping[int, int],
    *,
    data_objects: int,
    skip: Skipper,
    store: S3Store | None = None,
) -> dict[int, list[BoundingBoxAnswer]]:
    """The workers' answers to each object, read by the rules of the ``gt-job`` crowd source.

    ``prefix`` is the job's output prefix (local folder or ``s3://``). Files are listed,
    read and kept by the pieces :class:`~gt_toolkit.formats.crowd.gt_job.GtJobSource` reads
    with, so a review draws the answers ``consolidate`` counts: the latest iteration of each
    object, one answer per worker (:func:`~gt_toolkit.formats.crowd.gt_job.one_per_worker`).
    A file, or an answer in one, that cannot be read is an ``unreadable-answer`` reject and
    its object keeps the other answers; answers to objects beyond the manifest are an
    ``unknown-image`` reject. Neither stops the read.

    Args:
        objects: ``datasetObjectId`` to manifest line number, for each object to read.
        data_objects: how many data objects the manifest holds (blank lines are none).
        skip: counts skipped answers and hands rejected ones on.

    Raises:
        NoMatchingObjectsError: the prefix holds no worker-response file.
    """
    files = find_worker_responses(prefix, store=store)
    answers: dict[int, list[BoundingBoxAnswer]] = {}
    for object_id, line_no in objects.items():
        got, where, problems = read_answer_files(files.get(object_id, []), store=store)
        reject_unreadable(problems, line_no, skip)
        kept = one_per_worker(got, where, skip, object_id=object_id)
        answers[object_id] = [replace(got[i], worker_id=name) for name, i in kept.items()]
    reject_unknown_objects(files, data_objects, skip)
    return answers


@dataclass(slots=True, kw_only=True)
class ReviewSummary:
    """What :func:`write_review` wrote and saw.

    ``rejected`` counts rejected manifest lines by reason; ``rejected_answers`` the worker
    answers that could not be drawn (``unreadable-answer``, ``unknown-image``) and
    ``skipped_answers`` those left out on purpose (``superseded-answer``), by reason.
    ``rejects`` is the rejects file listing both kinds of reject, ``None`` when there is none.
    ``too_large_images`` are the ``missing_images`` past Pillow's decompression-bomb limit
    (not decoded); ``contact_sheet_images`` how many images the contact sheet shows
    (:data:`SHEET_IMAGES` at most, the lowest-agreement ones).
    """

    out_dir: str
    report: str
    contact_sheet: str
    pictures: list[str]
    images: int
    missing_images: list[str]
    lowest: list[tuple[str, float]]
    quality: list[dict[str, Any]]
    rejected: dict[str, int] = field(default_factory=dict)
    rejected_answers: dict[str, int] = field(default_factory=dict)
    skipped_answers: dict[str, int] = field(default_factory=dict)
    rejects: str | None = None
    missing_glyphs: list[str] = field(default_factory=list)
    too_large_images: list[str] = field(default_factory=list)
    contact_sheet_images: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "out_dir": self.out_dir,
            "report": self.report,
            "contact_sheet": self.contact_sheet,
            "pictures": self.pictures,
            "images": self.images,
            "missing_images": self.missing_images,
            "lowest": [{"source-ref": s, "agreement": a} for s, a in self.lowest],
            "quality": self.quality,
            "rejected": self.rejected,
            "rejected_answers": self.rejected_answers,
            "skipped_answers": self.skipped_answers,
            "rejects": self.rejects,
            "missing_glyphs": self.missing_glyphs,
            "too_large_images": self.too_large_images,
            "contact_sheet_images": self.contact_sheet_images,
        }


_PICTURE = re.compile(r"[0-9]{4,}_([\w.-]{0,80})\.png")
"""What :func:`_picture_name` makes: the rank has four digits or more (``10000_x.png``), the
stem 80 letters, digits or ``-_.`` at most (``\\w`` is ``str.isalnum`` and ``_``)."""

_STEM_BYTES = 120
"""A picture's stem in UTF-8, at most, so that the temporary file it is written to first
(``.<name>.<host>.<pid>.<token>.part``) fits a file name (255 bytes) too: 80 letters of
three bytes (CJK) or four (U+20000) did not, and the review failed after drawing all."""


def _picture_name(source_ref: str, rank: int) -> str:
    base = PurePosixPath(parse_s3_uri(source_ref)[1] if is_s3_uri(source_ref) else source_ref)
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in base.stem)[:80]
    stem = stem.encode()[:_STEM_BYTES].decode(errors="ignore")  # a letter cut in two goes
    return f"{rank:04d}_{stem}.png"


def _is_picture_name(name: str) -> bool:
    """Whether :func:`_picture_name` could have made ``name``."""
    made = _PICTURE.fullmatch(name)
    return made is not None and len(made[1].encode()) <= _STEM_BYTES


def _placeholder(size: ImageSize | None, text: str = "image not found") -> _Source:
    """A grey picture of the label's size, where the boxes land as on the image.

    It is made no larger than :data:`_MAX_SIDE` (the boxes shrink with it): made at the
    label's size, the placeholder of a missing 80-megapixel photo took 1 GB. A size past
    Pillow's decompression-bomb limit (a label's size is up to 2**31 a side) gets the small
    default at the boxes' own scale: Pillow would not have opened such an image.
    """
    fits = size is not None and size["width"] * size["height"] <= _MAX_PIXELS
    w, h = (max(size["width"], 1), max(size["height"], 1)) if size and fits else _MISSING_SIZE
    shrink = min(1.0, _MAX_SIDE / max(w, h))
    img = Image.new("RGB", (max(1, round(w * shrink)), max(1, round(h * shrink))), (200, 200, 200))
    font = font_for(text, caption_size(img.width, img.height))
    ImageDraw.Draw(img).text((4, 4), text, fill=(120, 0, 0), font=font)
    return _Source(img, img.width / w, problem=text)


def _review_item(record: DetectionRecord, workers: list[BoundingBoxAnswer]) -> ReviewItem:
    return ReviewItem(
        source_ref=record.source_ref,
        boxes=[b.consolidated_box() for b in record.boxes],
        workers=workers,
        image_size=record.image_size,
        line_no=record.line_no,
    )


_HELD = ("lines.jsonl", "answers.jsonl")
"""The rejects files a review holds back (manifest lines, then worker answers) until it writes
its folder; ``rejects.jsonl`` is the two, in this order."""


def _read_items(
    manifest: Location,
    held: Path,
    *,
    label_attribute: str | None,
    worker_responses: str | None,
    store: S3Store | None,
) -> tuple[list[ReviewItem], OutputStats, IngestReport]:
    """Every usable object with its workers' answers; rejects go to the files in ``held``.

    Raises:
        ConversionError: no line of ``manifest`` has a usable bounding-box label.
    """
    stats = OutputStats()
    blank: list[int] = []
    records = list(
        iter_detection_records(
            manifest,
            label_attribute=label_attribute,
            rejects=held / _HELD[0],
            stats=stats,
            store=store,
            blank_lines=blank,
        )
    )
    if not records:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(stats.rejected.items()))
        raise ConversionError(
            f"nothing to draw: no usable bounding-box line in {os.fspath(manifest)} "
            f"({stats.read.lines} lines" + (f"; rejected {reasons})" if reasons else ")")
        )
    ids = [dataset_object_id(rec.line_no, blank) for rec in records]
    report = IngestReport()
    answers: dict[int, list[BoundingBoxAnswer]] = {}
    if worker_responses:
        sink = RejectsSink(
            held / _HELD[1], policy=RejectPolicy.COLLECT, source=worker_responses, store=store
        )
        with sink:
            answers = read_worker_responses(
                worker_responses,
                {i: rec.line_no for i, rec in zip(ids, records, strict=True)},
                data_objects=stats.read.lines - len(blank),
                skip=Skipper(report, lambda reject: sink.add(reject.to_json())),
                store=store,
            )
    items = [_review_item(rec, answers.get(i, [])) for i, rec in zip(ids, records, strict=True)]
    return items, stats, report


_UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
"""What Pillow raises for bytes it cannot draw: truncated, corrupt or too large. A damaged
header raises ``ValueError`` too (a PPM's ``invalid literal for int()``, a TGA's ``unknown
raw mode``), which stopped the whole review after reading everything."""


@dataclass(slots=True)
class _Source:
    """An image as the review draws it.

    Its pixels, how many of them per labeled pixel, and what was wrong with it (``None``:
    nothing; else the placeholder's text).
    """

    image: Image.Image
    scale: float = 1.0
    problem: str | None = None


_TOO_LARGE = "image too large to draw"


def _open_image(data: bytes | None, size: ImageSize | None = None) -> _Source:
    """The image as RGB, no larger than :data:`_MAX_SIDE`, or a placeholder saying why not.

    It is turned as ``size`` says it was labeled (:func:`_turned`). An image past
    Pillow's decompression-bomb limit is not decoded at all: one up to twice the limit was
    decoded whole, with only a ``DecompressionBombWarning`` (a 100-megapixel PNG took
    1.2 GB); it is a placeholder like one past twice the limit, which Pillow refuses.
    """
    if data is None:
        return _placeholder(size)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        return _placeholder(size, _TOO_LARGE)
    except _UNREADABLE:
        return _placeholder(size)
    try:
        with opened:
            if opened.width * opened.height > _MAX_PIXELS:
                return _placeholder(size, _TOO_LARGE)
            eight_bit_colour_key(opened, data)
            return _decoded(opened, size, data)
    except _UNREADABLE:
        return _placeholder(size)


def _decoded(opened: Image.Image, size: ImageSize | None, data: bytes) -> _Source:
    """``opened``'s pixels upright as labeled, decoded at the size they are drawn at.

    A JPEG decodes at 1/2, 1/4 or 1/8 of its size (``draft``), a JPEG 2000 at a power of
    two (``reduce``), whichever is the smallest still as large as needed; any other format
    is decoded whole (it is within Pillow's limit) and shrunk before it is drawn.
    """
    stored = opened.size
    shrink = min(1.0, _MAX_SIDE / max(stored))
    if shrink < 1.0:
        wanted = (math.ceil(stored[0] * shrink), math.ceil(stored[1] * shrink))
        if isinstance(opened, Jpeg2KImagePlugin.Jpeg2KImageFile):
            opened = _reduced_jpeg2000(opened, data, math.floor(math.log2(1 / shrink)))
        else:
            opened.draft(None, wanted)  # a no-op but for JPEG
        opened.load()  # at the reduced size: resize would take the size it had before
    turned = _turned(opened, size, stored)
    image = ImageOps.exif_transpose(opened) if turned else opened
    labeled = (stored[1], stored[0]) if turned else stored
    if shrink == 1.0:
        return _Source(_rgb(image))
    target = (max(1, round(labeled[0] * shrink)), max(1, round(labeled[1] * shrink)))
    if image.mode in ("RGB", "L"):  # shrunk first: its 8-bit RGB copy is a small one
        image = _shrunk(image, target)
    return _Source(_shrunk(_rgb(image), target), target[0] / labeled[0])


def _reduced_jpeg2000(
    opened: Jpeg2KImagePlugin.Jpeg2KImageFile, data: bytes, reduce: int
) -> Image.Image:
    """``opened`` decoded ``reduce`` halvings down, or as few as its codestream holds.

    A codestream has as many halvings as it has decomposition levels (an encoder's
    ``num_resolutions`` less one; none in some lossless files), and OpenJPEG fails a
    ``reduce`` past them: the image, readable whole, was drawn as 'image not found'.
    """
    for level in range(max(0, reduce), 0, -1):
        opened.reduce = level
        try:
            opened.load()
            return opened
        except OSError:
            opened.close()
            again = Image.open(io.BytesIO(data))  # a failed load leaves no state to reuse
            if not isinstance(again, Jpeg2KImagePlugin.Jpeg2KImageFile):  # pragma: no cover
                return again
            opened = again
    return opened


def _shrunk(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _turned(image: Image.Image, size: ImageSize | None, stored: tuple[int, int]) -> bool:
    """Whether ``image`` (``stored`` pixels before any reduced decode) is to be turned upright.

    A phone photo is stored sideways with an EXIF orientation; a browser shows it upright,
    and a worker who saw it so drew boxes (and reported ``image_size``) in upright pixels.
    Drawn on the stored pixels, such boxes lay across the wrong part of a sideways picture.
    Which way the labels were made shows only in ``image_size``: height x width of the
    stored pixels means upright, width x height means as stored (a tool that ignores EXIF).
    Without that sign (no size, a square image, a flip or half turn, which keep the size)
    the stored pixels are drawn, as before.
    """
    if size is None or stored[0] == stored[1]:
        return False
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except _UNREADABLE:  # a damaged EXIF block: no sign either way
        return False
    upright = (size["width"], size["height"]) == (stored[1], stored[0])
    return orientation in TURNED and upright


def _rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB, as a browser shows it.

    ``convert("RGB")`` alone clips 16-bit grayscale (``I;16``, values to 65535) at 255, so
    such a picture came out white but for its darkest pixels: here it is scaled to 8 bits.
    Transparent pixels (an alpha channel, a palette's or grayscale ``transparency``) lie on
    white, as on the report's page, not on whatever colour they hold (black, mostly).
    """
    if image.mode.startswith("I"):  # "I", "I;16", "I;16B", ...: 16-bit PNGs and TIFFs
        image = eight_bits(image)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


@dataclass(slots=True)
class _Drawn:
    pictures: list[Path] = field(default_factory=list)  # PNG files spooled, in rank order
    inline: list[Path] = field(default_factory=list)  # the report's copies (PNG, JPEG)
    names: list[str] = field(default_factory=list)  # images/NNNN_<name>.png, in rank order
    thumbs: list[tuple[Image.Image, str]] = field(default_factory=list)  # SHEET_IMAGES at most
    missing: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)  # of missing: past Pillow's limit


def _draw_items(
    items: Sequence[ReviewItem],
    resolve: Callable[[str], bytes | None],
    colours: Mapping[str, RGB],
    min_width: int,
    spool: Path,
) -> _Drawn:
    """Draw every item; the full pictures wait as files in ``spool``, not in memory."""
    drawn = _Drawn()
    spool.mkdir(exist_ok=True)
    for rank, item in enumerate(items, 1):
        source = _open_image(resolve(item.source_ref), item.image_size)
        if source.problem is not None:
            drawn.missing.append(item.source_ref)
        if source.problem == _TOO_LARGE:
            drawn.too_large.append(item.source_ref)
        scale = _upscale(source.image, min_width)
        picture = render_review_image(
            source.image, item, colours=colours, scale=scale, box_scale=scale * source.scale
        )
        png = _png(picture)
        drawn.pictures.append(spool / f"{rank}.png")
        drawn.pictures[-1].write_bytes(png)
        drawn.inline.append(spool / f"{rank}.report")
        drawn.inline[-1].write_bytes(_report_copy(picture, png))
        drawn.names.append(f"images/{_picture_name(item.source_ref, rank)}")
        if rank <= SHEET_IMAGES:
            caption = f"{rank}. {PurePosixPath(item.source_ref).name} {item.agreement:.2f}"
            drawn.thumbs.append((_thumbnail(picture), caption))
    return drawn


_REPORT_WIDTH = 1600
"""The widest picture the report inlines: its page shows one at most 90% of the window wide."""


def _report_copy(picture: Image.Image, png: bytes) -> bytes:
    """The picture the report inlines: a JPEG when smaller than its PNG, else the PNG.

    A photo's JPEG is the smaller; flat drawings and text stay PNG, lossless. The picture
    is shrunk to :data:`_REPORT_WIDTH` first when wider.

    Inlined at full size, a phone photo's picture (4000 px, twice that with the workers'
    panel) put 12 to 30 MB of base64 in the page per row: 20 photos of 3000 x 2000 made a
    250 MB page, past what a browser opens, all held in memory at once. Inlined as PNG, a
    noisy photo's picture of 1600 px was still 5.7 MB (7.7 MB of base64): 100 of them made
    a 766 MB page. The JPEG keeps full-resolution colour (4:4:4, :func:`_jpeg`) so the
    thin coloured box lines stay crisp. The full pictures are in ``images/`` as PNG.
    """
    if picture.width > _REPORT_WIDTH:
        height = max(1, round(picture.height * _REPORT_WIDTH / picture.width))
        picture = picture.resize((_REPORT_WIDTH, height), Image.Resampling.LANCZOS)
        png = _png(picture)
    if max(picture.size) > _JPEG_MAX_SIDE:  # a strip enlarged for --min-width: PNG only
        return png
    jpeg = _jpeg(picture)
    return jpeg if len(jpeg) < len(png) else png


def _upscale(image: Image.Image, min_width: int) -> float:
    """How much to enlarge a small image: to ``min_width`` wide, within a pixel budget.

    The budget is the image's own pixels or ``4 * min_width**2``, whichever is more: a
    1 x 6000 strip (a few hundred bytes) was scaled 320 times, to 614 million pixels a
    panel, and the review took 4.8 GB and half a minute for it.
    """
    if not min_width or image.width >= min_width:
        return 1.0
    pixels = image.width * image.height
    budget = max(pixels, 4 * min_width * min_width)
    return max(1.0, min(min_width / image.width, math.sqrt(budget / pixels)))


def _thumbnail(picture: Image.Image, cell: tuple[int, int] = _CELL) -> Image.Image:
    """The picture as :func:`contact_sheet` shrinks it into ``cell``, made once it is drawn.

    Holding every full-size picture until the sheet was made took 18 MB an image of
    3000 x 2000 (36 MB with the workers' panel), all at once: 90 MB an image in all.
    The sheet's own ``thumbnail`` then leaves it as it is, so the sheet is the same.
    """
    thumb = picture.convert("RGB")
    thumb.thumbnail((cell[0] - 4, cell[1] - 4), Image.Resampling.LANCZOS)
    return thumb


def _notes(
    manifest: Location,
    shown: int,
    stats: OutputStats,
    answers: IngestReport,
    drawn: _Drawn,
    no_glyphs: list[str],
) -> list[str]:
    notes = [
        f"{shown} of {stats.objects} objects from {os.fspath(manifest)}, lowest agreement "
        "(mean consolidated confidence) first.",
    ]
    if stats.rejected_total:
        notes.append(f"{stats.rejected_total} line(s) rejected, listed in rejects.jsonl.")
    counts = answers.to_json()
    if counts["rejected"]:
        reasons = ", ".join(f"{k} {v}" for k, v in counts["rejected_by_reason"].items())
        notes.append(
            f"{counts['rejected']} worker answer(s) not drawn ({reasons}), listed in "
            "rejects.jsonl; their objects are drawn with the answers that could be read."
        )
    if counts["skipped"]:
        notes.append(
            f"{sum(counts['skipped'].values())} answer(s) superseded: a worker who answered "
            "an object twice is drawn with the answer read last."
        )
    if drawn.missing:
        notes.append(
            f"{len(drawn.missing)} image(s) could not be read and are drawn as placeholders."
        )
    if drawn.too_large:
        notes.append(
            f"{len(drawn.too_large)} of them are past Pillow's decompression-bomb limit "
            f"({_MAX_PIXELS:,} pixels) and were not decoded, e.g. {drawn.too_large[0]}."
        )
    if shown > len(drawn.thumbs):
        notes.append(
            f"The contact sheet shows the {len(drawn.thumbs)} lowest-agreement images of "
            f"{shown}; every image is below and in images/."
        )
    if no_glyphs:
        notes.append(
            f"No font on this machine draws {no_glyphs[0]!r} ({len(no_glyphs)} caption(s)): "
            "the pictures show empty boxes there; install fonts-wqy-microhei or fonts-noto-cjk."
        )
    return notes


def review_files(out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """The files :func:`write_review` writes (or removes) in ``out_dir`` besides its pictures.

    Known before it runs, so a command can refuse an input of the same name.
    """
    out = Path(out_dir)
    return {
        "contact sheet": out / "contact_sheet.png",
        "report": out / "report.html",
        "review summary": out / "review.json",
        "rejects file": out / "rejects.jsonl",
    }


def _previous(out: Path) -> list[Path]:
    """What an earlier review wrote into ``out`` (pictures, rejects), and only that.

    A rerun into the same folder would otherwise leave pictures of objects it no longer
    draws, and a rejects file from another run, beside its own report. The pictures are
    the ones the earlier ``review.json`` lists, not every file named like one: a file of
    the user's in ``images/`` is never removed. An earlier run that stopped before its
    summary leaves its pictures (unlisted, so harmless: the report inlines its own).
    """
    files = review_files(out)
    return [
        files["rejects file"],
        *(out / name for name in _listed_pictures(files["review summary"])),
    ]


def _listed_pictures(summary: Path) -> list[str]:
    """The pictures an earlier review's summary lists, as ``images/NNNN_name.png``.

    A name that is not one of :func:`_picture_name`'s in ``images/`` (a hand-edited or
    foreign summary) is ignored, so no path in the file reaches outside that folder.
    """
    try:
        listed = json.loads(summary.read_bytes()).get("pictures")
    except (OSError, ValueError, AttributeError):  # none, unreadable, or not an object
        return []
    if not isinstance(listed, list):
        return []
    return [
        name
        for name in listed
        if isinstance(name, str)
        and PurePosixPath(name).parent == PurePosixPath("images")
        and _is_picture_name(PurePosixPath(name).name)
    ]


def write_review(
    manifest: Location,
    out_dir: str | os.PathLike[str],
    *,
    worker_responses: str | None = None,
    images_dir: str | os.PathLike[str] | None = None,
    images_prefix: str | None = None,
    label_attribute: str | None = None,
    limit: int | None = None,
    min_width: int = 320,
    store: S3Store | None = None,
) -> ReviewSummary:
    """Draw every object of an output manifest and write the review folder.

    Writes ``out_dir/images/NNNN_<name>.png`` (rank by agreement, lowest first),
    ``out_dir/contact_sheet.png``, ``out_dir/report.html``, ``out_dir/review.json`` and,
    when lines or worker answers were rejected, ``out_dir/rejects.jsonl`` (lines first, each
    record with its file, position and reason). Worker answers are read as the ``gt-job``
    crowd source reads them (:func:`read_worker_responses`): a worker-response file that
    cannot be read, or answers to an object beyond the manifest, are rejected and the review
    goes on with the rest (:attr:`ReviewSummary.rejected_answers` counts them; the command
    exits 1 on them). An image that cannot be found is drawn as a grey placeholder and
    listed, so one missing file does not hide the rest of the review. An image on two lines
    is drawn twice. Everything is drawn before anything is written; what an earlier review
    wrote into ``out_dir`` is replaced (:func:`_previous`), once all of this run's files are
    written; a run that fails to write them leaves none (:func:`_write_all`).

    Args:
        manifest: the output manifest (local or ``s3://``).
        worker_responses: the job's output prefix holding ``annotations/worker-response``.
        images_dir: read images from this folder instead of S3 (see :func:`image_resolver`).
        images_prefix: the source-ref prefix that ``images_dir`` mirrors.
        limit: draw only this many objects, lowest agreement first (``None``: all); the
            worker-quality table is still of every object.
        min_width: small images are scaled up to at least this width for legibility.

    Raises:
        ConversionError: the manifest has no usable bounding-box line (nothing is written).
        NoMatchingObjectsError: ``worker_responses`` holds no worker-response file.
    """
    out = Path(out_dir)
    files = review_files(out)
    with _staging(out) as held:
        items, stats, answers = _read_items(
            manifest,
            held,
            label_attribute=label_attribute,
            worker_responses=worker_responses,
            store=store,
        )
        items.sort(key=lambda it: (it.agreement, it.line_no))
        # Worker quality (and so each worker's colour) is of every object, not only the
        # ones drawn: of the --limit lowest-agreement ones alone, every worker looked poor.
        quality = worker_quality_rows(items) if any(it.workers for it in items) else []
        colours = worker_colours(a.worker_id for it in items for a in it.workers)
        items = items[:limit] if limit is not None else items
        resolve = image_resolver(images_dir=images_dir, images_prefix=images_prefix, store=store)
        drawn = _draw_items(items, resolve, colours, min_width, held / "pictures")
        no_glyphs = missing_glyphs(
            [b["label"] for it in items for b in it.boxes]
            + [_short(a.worker_id) for it in items for a in it.workers]
        )
        page = _SpooledPage(drawn.inline)
        page.text = _review_page(
            items,
            page.marks,
            quality=quality,
            colours=colours,
            title="Ground Truth review",
            notes=_notes(manifest, len(items), stats, answers, drawn, no_glyphs),
        )
        rejects = b"".join(p.read_bytes() for p in map(held.joinpath, _HELD) if p.exists())
        answer_counts = answers.to_json()
        summary = ReviewSummary(
            out_dir=str(out),
            report=str(files["report"]),
            contact_sheet=str(files["contact sheet"]),
            pictures=drawn.names,
            images=len(items),
            missing_images=drawn.missing,
            lowest=[(it.source_ref, it.agreement) for it in items[:10]],
            quality=quality,
            rejected=dict(sorted(stats.rejected.items())),
            rejected_answers=answer_counts["rejected_by_reason"],
            skipped_answers=answer_counts["skipped"],
            rejects=str(files["rejects file"]) if rejects else None,
            missing_glyphs=no_glyphs,
            too_large_images=drawn.too_large,
            contact_sheet_images=len(drawn.thumbs),
        )
        written: dict[Path, bytes | Path | _SpooledPage] = {
            **{
                out / name: spooled
                for name, spooled in zip(drawn.names, drawn.pictures, strict=True)
            },
            files["contact sheet"]: _png(contact_sheet(drawn.thumbs)),
            files["report"]: page,
            **({files["rejects file"]: rejects} if rejects else {}),
            files["review summary"]: json_bytes(summary.to_json()),
        }
        read = [os.fspath(x) for x in (manifest, images_dir, worker_responses) if x is not None]
        refs = {it.source_ref for it in items} if images_dir is None else set()
        _write_all(out, written, _reader(read, refs))
    return summary


def _reader(read: list[str], refs: set[str]) -> Callable[[str], bool]:
    """Whether the review reads a real path: its manifest, images, worker responses.

    ``refs``: the source-refs it reads images by (S3 URIs, or local paths).
    """
    local = [where for where in read if not is_s3_uri(where)]
    images = {os.path.realpath(ref) for ref in refs if not is_s3_uri(ref)}

    def reads(real: str) -> bool:
        return real in images or any(inside_location(real, where) for where in local)

    return reads


@contextlib.contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A private folder in ``out`` for the run's spooled pictures and held rejects.

    Made in the system's temporary folder, it was left there by a run killed with
    ``kill -9`` (every picture drawn so far and its report copy, 11 MB a noisy photo of
    1600 x 1200) and no later run removed it. It is ``out/.review.<host>.<pid>.<token>.part``
    (:func:`make_part_folder`): the next run into ``out`` sweeps it once the process that
    made it is gone, and nothing else. The folders made for it (``out``, its parents) go
    again when the run fails: a run that writes nothing leaves nothing.
    """
    made = [folder for folder in (*reversed(out.parents), out) if not folder.is_dir()]
    try:
        try:
            out.mkdir(parents=True, exist_ok=True)
            held = make_part_folder(out, "review")
        except OSError as exc:  # a file where a folder goes, no permission
            why = exc.strerror or str(exc)
            raise StorageError(f"cannot make the review folder {out}: {why}") from exc
        try:
            yield held
        finally:
            shutil.rmtree(held, ignore_errors=True)
    except BaseException:
        for folder in reversed(made):
            with contextlib.suppress(OSError):  # not empty: another's file stays
                folder.rmdir()
        raise


class _SpooledPage:
    """The report, its pictures inlined from their spooled files as it is written.

    Built whole, the page held every picture's PNG and then its base64 text at once: 100
    photos of 1600 x 1200 px took 3.6 GB. The page is rendered with a mark where each
    picture's ``data:`` URI goes (a random token in it, so no crowd-supplied text can be
    one), and :meth:`write` puts each URI in its place, a piece at a time.
    """

    _PIECE = 3 * 65536  # a multiple of 3 bytes: the pieces' base64 joins into one

    def __init__(self, pictures: Sequence[Path]) -> None:
        self._pictures = pictures
        self._token = secrets.token_hex(16)
        self.marks = [f"gt-review-{self._token}-{n}" for n in range(len(pictures))]
        self.text = ""

    def write(self, fh: IO[bytes]) -> None:
        """Write the page to ``fh``, each mark replaced by its picture's ``data:`` URI."""
        mark = re.compile(rf"gt-review-{self._token}-([0-9]+)")
        at = 0
        for found in mark.finditer(self.text):
            fh.write(self.text[at : found.start()].encode("utf-8"))
            with self._pictures[int(found[1])].open("rb") as picture:
                # the first piece's URI names the type (PNG or JPEG), as data_uri sniffs it
                fh.write(data_uri(picture.read(self._PIECE)).encode("ascii"))
                while piece := picture.read(self._PIECE):
                    fh.write(base64.b64encode(piece))
            at = found.end()
        fh.write(self.text[at:].encode("utf-8"))


def _write_all(
    out: Path,
    written: Mapping[Path, bytes | Path | _SpooledPage],
    reads: Callable[[str], bool] = lambda _: False,
) -> None:
    """Write the review's files together or not at all, then remove the earlier review's.

    A write that fails (a full disk, a ``report.html`` that is a folder) takes the files
    already written with it, and the folders this run made: it left the pictures and the
    contact sheet without a report or a ``review.json`` to list them, so a rerun could not
    tell them from a user's. What the earlier review wrote (:func:`_previous`) goes only
    once all is written; a file of it that this run replaces (a rerun's pictures mostly
    have the earlier names, ``0001_x.png``) is kept aside in ``out`` and put back if the run
    fails (:meth:`~gt_toolkit.storage.files.AllOrNone.keep_earlier`): else the earlier
    report and ``review.json`` named pictures that were gone.

    A file whose name is a symbolic link is written where it leads (a file not there yet is
    created); one in a loop or into a missing folder,
    to another file of the review (``0003_b.png -> 0001_a.png``: one picture in both
    places, exit 0) or to a file the run ``reads`` (an image it drew, overwritten with a
    picture) is refused before anything is written
    (:func:`~gt_toolkit.storage.files.check_links`).
    """
    check_links([str(path) for path in written], reads=reads)
    stale = [path for path in _previous(out) if path not in written]
    made = [
        folder for folder in (*reversed(out.parents), out, out / "images") if not folder.is_dir()
    ]
    try:
        with AllOrNone() as together:
            together.keep_earlier(written, beside=out, stem="review-earlier")
            for path, data in written.items():
                with together.open(path) as fh:
                    if isinstance(data, Path):  # a spooled picture, copied a piece at a time
                        with data.open("rb") as source:
                            shutil.copyfileobj(source, fh)
                    elif isinstance(data, _SpooledPage):
                        data.write(fh)
                    else:
                        fh.write(data)
    except BaseException:
        for folder in reversed(made):
            with contextlib.suppress(OSError):  # not empty: another's file stays
                folder.rmdir()
        raise
    for path in stale:
        path.unlink(missing_ok=True)
