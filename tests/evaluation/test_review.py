"""Review pictures, contact sheet and HTML report, on the sample images and GT-layout answers."""

from __future__ import annotations

import io
import json
import math
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from PIL import Image

from gt_toolkit.cli import main
from gt_toolkit.errors import StorageError
from gt_toolkit.evaluation import fonts
from gt_toolkit.evaluation.fonts import caption_size
from gt_toolkit.evaluation.review import (
    CONSENSUS_COLOUR,
    ReviewItem,
    build_review_html,
    contact_label_height,
    contact_sheet,
    draw_boxes,
    image_agreement,
    read_worker_responses,
    render_review_image,
    worker_colours,
    write_review,
)
from gt_toolkit.formats.crowd.gt_job import GtJobSource
from gt_toolkit.formats.crowd.report import CrowdReject, IngestReport, Skipper, SkipReason
from gt_toolkit.formats.worker_answers import BoundingBoxAnswer
from gt_toolkit.storage.files import part_name
from gt_toolkit.storage.s3 import S3Store
from tests.helpers import SAMPLES, chromium, huge_png_header

JOB = SAMPLES / "job-output" / "samples-balls"

PREFIX = "s3://gt-toolkit-demo/images/"
IMAGES = SAMPLES / "images"
WORKERS = ("private.us-east-1.aaa", "private.us-east-1.bbb", "private.us-east-1.ccc")
N_IMAGES = 8
WHITE = (255, 255, 255)
RED = (255, 0, 0)


def _box(
    label: str, left: float, top: float, width: float, height: float, conf: float = 1.0
) -> dict[str, Any]:
    return {
        "label": label,
        "left": left,
        "top": top,
        "width": width,
        "height": height,
        "confidence": conf,
    }


# ---------------------------------------------------------------- drawing (pure)


def test_draw_boxes_puts_the_outline_on_the_box_edges() -> None:
    image = Image.new("RGB", (100, 80), WHITE)
    out = draw_boxes(image, [_box("x", 10, 20, 30, 40)], RED, line_width=1)
    assert out.size == (100, 80)
    assert out.getpixel((10, 40)) == RED  # left edge
    assert out.getpixel((39, 40)) == RED  # right edge: left + width - 1
    assert out.getpixel((25, 59)) == RED  # bottom edge
    assert out.getpixel((25, 40)) == WHITE  # inside stays clear
    assert out.getpixel((45, 40)) == WHITE  # outside stays clear
    assert image.getpixel((10, 40)) == WHITE  # the input is not modified


def test_draw_boxes_scales_image_and_coordinates_and_skips_nan() -> None:
    image = Image.new("RGB", (50, 40), WHITE)
    boxes = [_box("x", 10, 10, 10, 10), _box("bad", float("nan"), 0, 5, 5)]
    out = draw_boxes(image, boxes, RED, scale=2.0, line_width=2)
    assert out.size == (100, 80)
    assert out.getpixel((20, 30)) == RED and out.getpixel((21, 30)) == RED
    assert out.getpixel((39, 30)) == RED
    assert out.getpixel((30, 30)) == WHITE
    assert out.getpixel((0, 0)) == WHITE  # the NaN box was skipped


def test_captions_are_drawn_above_the_box() -> None:
    image = Image.new("RGB", (120, 80), WHITE)
    out = draw_boxes(image, [_box("ball", 20, 40, 30, 30)], RED, captions=["ball 0.87"])
    above = [out.getpixel((x, y)) for x in range(20, 80) for y in range(20, 40)]
    assert RED in above and (255, 255, 255) in above  # the tab and its text
    assert any(p not in (RED, WHITE) for p in above)  # anti-aliased text


def test_captions_of_boxes_reaching_past_the_picture_stay_on_it() -> None:
    # A label's coordinates are anything finite. Before: Pillow's text drawing failed with
    # "SystemError: <method 'draw_bitmap' ...> returned a result with an exception set"
    # for a caption at -1e20 or 1e300, and the review stopped with a traceback.
    image = Image.new("RGB", (120, 80), WHITE)
    boxes = [_box("sky", -1e20, -1e20, 2e20, 2e20), _box("far", 1e300, 0, 10, 10)]
    out = draw_boxes(image, boxes, RED, captions=["sky 0.50", "far 0.50"])
    tab = [out.getpixel((x, y)) for x in range(0, 40) for y in range(2, 14)]
    assert RED in tab and any(p not in (RED, WHITE) for p in tab)  # the caption, at the corner
    assert out.getpixel((60, 60)) == WHITE  # the far box is nowhere


def _answer(
    worker: str, boxes: list[dict[str, Any]], seconds: float | None = None
) -> BoundingBoxAnswer:
    return BoundingBoxAnswer(
        worker_id=worker,
        boxes=[{k: b[k] for k in ("label", "left", "top", "width", "height")} for b in boxes],  # type: ignore[misc]
        time_spent=seconds,
    )


def test_review_image_has_a_consensus_panel_and_a_worker_panel() -> None:
    image = Image.new("RGB", (60, 50), WHITE)
    item = ReviewItem(
        source_ref=PREFIX + "x.jpg",
        boxes=[_box("x", 30, 30, 20, 15, 0.9)],
        workers=[
            _answer(WORKERS[0], [_box("x", 30, 30, 20, 15)]),
            _answer(WORKERS[1], [_box("x", 5, 5, 10, 10)]),
        ],
    )
    colours = worker_colours(WORKERS)
    out = render_review_image(image, item, colours=colours, scale=2.0)
    assert out.size == (2 * 120 + 6, 100 + caption_size(120, 100) + 4)
    assert out.getpixel((60, 75)) == CONSENSUS_COLOUR  # consensus left edge, scaled
    right = 120 + 6
    assert out.getpixel((right + 10, 15)) == colours[WORKERS[1]]  # second worker's box
    assert out.getpixel((right + 60, 75)) == colours[WORKERS[0]]  # first worker's box
    assert out.getpixel((10, 15)) == WHITE  # no worker boxes in the consensus panel


def test_only_thumbnails_wait_in_memory(tmp_path: Path) -> None:
    # Every full-size picture was held until the sheet was made (18 MB an image of
    # 3000 x 2000), and its PNG until the end, and inlined at full size in the report
    # (12.5 MB of base64 a row: 20 such photos made a 250 MB page, 1.9 GB of memory).
    from gt_toolkit.evaluation.review import _draw_items

    photo = io.BytesIO()
    Image.new("RGB", (3000, 2000), WHITE).save(photo, "PNG")
    items = [
        ReviewItem(source_ref=f"s3://bkt/{i}.jpg", boxes=[_box("a", 9, 9, 99, 99)])
        for i in range(3)
    ]
    drawn = _draw_items(items, lambda ref: photo.getvalue(), {}, 320, tmp_path / "spool")
    height = 2000 + caption_size(3000, 2000) + 4
    assert [Image.open(path).size for path in drawn.pictures] == [(3000, height)] * 3
    assert all(path.parent == tmp_path / "spool" for path in drawn.pictures)  # on disk
    # The report's copies wait on disk too: 100 photos' copies, and then their base64 in the
    # page, took 3.7 GB.
    assert all(path.parent == tmp_path / "spool" for path in drawn.inline)
    inline = [Image.open(path) for path in drawn.inline]
    assert [im.size for im in inline] == [(1600, round(height * 1600 / 3000))] * 3
    assert inline[0].convert("RGB").getpixel((round(9 * 1600 / 3000), 30)) != WHITE  # a box
    full = Image.open(drawn.pictures[0]).convert("RGB")
    full.thumbnail((236, 116), Image.Resampling.LANCZOS)  # as contact_sheet shrinks it
    assert [thumb.tobytes() for thumb, _ in drawn.thumbs] == [full.tobytes()] * 3


def test_review_image_without_workers_is_one_panel() -> None:
    image = Image.new("RGB", (60, 50), WHITE)
    out = render_review_image(image, ReviewItem(source_ref="s3://bkt/a.jpg", boxes=[]))
    assert out.size == (60, 50 + caption_size(60, 50) + 4)  # the legend strip


def test_contact_sheet_size_and_placement() -> None:
    images = [(Image.new("RGB", (200, 100), (i * 30, 0, 0)), f"img {i}") for i in range(7)]
    sheet = contact_sheet(images, columns=3, cell=(100, 50))
    row = 50 + contact_label_height((100, 50))
    assert sheet.size == (300, 3 * row)
    # the first thumbnail (black) is centred in its cell; the empty last cells stay white
    assert sheet.getpixel((50, 25)) == (0, 0, 0)
    assert sheet.getpixel((250, 2 * row + 25)) == WHITE
    assert contact_sheet(images[:2], columns=6, cell=(100, 50)).size == (200, row)


@pytest.mark.parametrize(
    ("boxes", "workers", "expected"),
    [
        ([_box("x", 0, 0, 1, 1, 0.2), _box("x", 0, 0, 1, 1, 0.6)], [], 0.4),
        ([], [], 1.0),  # nobody drew anything: full agreement that it is empty
        ([], [_answer("w", [_box("x", 0, 0, 1, 1)])], 0.0),  # drawn, but no support
        ([_box("x", 0, 0, 1, 1, 0.0)], [], 0.0),  # single-worker Ground Truth output
    ],
    ids=["mean-confidence", "empty-agreed", "unsupported-boxes", "single-worker"],
)
def test_image_agreement(
    boxes: list[Any], workers: list[BoundingBoxAnswer], expected: float
) -> None:
    assert image_agreement(boxes, workers) == pytest.approx(expected)


# ---------------------------------------------------------------- realistic data


def _truth_lines() -> list[dict[str, Any]]:
    lines = (SAMPLES / "truth.manifest").read_text().splitlines()
    return [json.loads(line) for line in lines[:N_IMAGES]]


def _write_job(root: Path) -> tuple[Path, dict[str, float]]:
    """An output manifest (truth boxes, a different confidence per image) and GT-layout
    worker responses: worker aaa copies the truth, bbb jitters it, ccc misses the first box
    and adds a spurious one. Returns the manifest path and the agreement per source-ref."""
    rng = random.Random(7)
    out_lines = []
    agreement = {}
    for i, line in enumerate(_truth_lines()):
        anns = line["truth"]["annotations"]
        conf = round(0.95 - 0.1 * ((i * 3) % N_IMAGES), 2)  # a shuffled order
        record = {
            "source-ref": line["source-ref"],
            "boxes": line["truth"],
            "boxes-metadata": {
                **line["truth-metadata"],
                "objects": [{"confidence": conf} for _ in anns],
                "job-name": "labeling-job/review-test",
            },
        }
        out_lines.append(record)
        agreement[line["source-ref"]] = conf
        truth = [
            {"label": "ball", **{k: a[k] for k in ("left", "top", "width", "height")}} for a in anns
        ]
        jitter = [
            {**b, "left": b["left"] + rng.randint(-2, 2), "top": b["top"] + rng.randint(-2, 2)}
            for b in truth
        ]
        sloppy = [*truth[1:], {"label": "ball", "left": 1, "top": 1, "width": 9, "height": 9}]
        for worker, boxes, n in zip(WORKERS, (truth, jitter, sloppy), range(3), strict=True):
            folder = root / "job" / "annotations" / "worker-response" / "iteration-1" / str(i)
            folder.mkdir(parents=True, exist_ok=True)
            doc = {
                "answers": [
                    {
                        "workerId": worker,
                        "timeSpentInSeconds": 10.0 + n,
                        "answerContent": {
                            "boundingBox": {
                                "boundingBoxes": boxes,
                                "inputImageProperties": line["truth"]["image_size"][0],
                            }
                        },
                    }
                ]
            }
            (folder / f"2024-03-01T10:00:0{n}.json").write_text(json.dumps(doc))
    manifest = root / "output.manifest"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in out_lines))
    return manifest, agreement


class _Report(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str | None]] = []
        self.srcs: list[str] = []
        self.links: list[str] = []
        self.refs: list[str] = []  # every address an attribute of any tag names
        self.tables: dict[str, int] = {}
        self._table: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        refs = ("src", "href", "srcset", "action", "data", "poster", "background")
        self.refs += [value or "" for key, value in attrs if key in refs]
        if tag == "table":
            self._table = a.get("id")
            self.tables[self._table or ""] = 0
        elif tag == "tr" and self._table:
            self.tables[self._table] += 1
            if a.get("class") == "image-row":
                self.rows.append(a)
        elif tag == "img":
            self.srcs.append(a.get("src") or "")
        elif tag in ("link", "script", "a"):
            self.links.append(a.get("href") or a.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None


def _inlined(src: str) -> Image.Image:
    """The picture a ``data:`` URI of the report holds, decoded; its format PNG or JPEG."""
    import base64

    head, body = src.split(",", 1)
    image = Image.open(io.BytesIO(base64.b64decode(body, validate=True)))
    mime = {"PNG": "image/png", "JPEG": "image/jpeg"}[str(image.format)]
    assert head == f"data:{mime};base64"
    image.load()
    return image


def _parse(path: Path) -> _Report:
    parser = _Report()
    parser.feed(path.read_text())
    parser.close()
    return parser


def _check_review_folder(out: Path, agreement: dict[str, float], with_workers: bool) -> _Report:
    report = _parse(out / "report.html")
    refs = [row["data-source-ref"] for row in report.rows]
    assert refs == sorted(agreement, key=lambda r: agreement[r])  # lowest agreement first
    values = [float(row["data-agreement"] or "nan") for row in report.rows]
    assert values == sorted(values) and values[0] == pytest.approx(min(agreement.values()))
    assert len(report.srcs) == N_IMAGES
    assert report.links == []  # self-contained: no scripts, stylesheets or links
    assert report.refs == report.srcs and "url(" not in (out / "report.html").read_text()
    for src, picture in zip(report.srcs, sorted((out / "images").glob("*.png")), strict=True):
        # each picture inlined whole, as a PNG or (a photo: the sample JPEGs) a JPEG
        assert _inlined(src).size == Image.open(picture).size
    if with_workers:
        assert report.tables["worker-quality"] == 1 + len(WORKERS)  # header + one per worker
    pictures = sorted((out / "images").glob("*.png"))
    assert len(pictures) == N_IMAGES
    first = Image.open(pictures[0])
    lowest = min(agreement, key=lambda r: agreement[r])
    name = lowest.rsplit("/", 1)[1]
    truth = next(line for line in _truth_lines() if line["source-ref"].endswith("/" + name))
    width = truth["truth"]["image_size"][0]["width"]
    scale = max(1.0, 320 / width)
    expected_width = round(width * scale) * (2 if with_workers else 1) + (6 if with_workers else 0)
    assert first.width == expected_width
    a = truth["truth"]["annotations"][0]
    # the consensus box's left edge, half-way down, is drawn in the consensus colour
    x, y = round(a["left"] * scale), round((a["top"] + a["height"] / 2) * scale)
    assert first.convert("RGB").getpixel((x, y)) == CONSENSUS_COLOUR
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.width == 6 * 240 and sheet.height == 2 * (120 + contact_label_height((240, 120)))
    return report


def test_write_review_with_local_images_and_worker_answers(tmp_path: Path) -> None:
    manifest, agreement = _write_job(tmp_path)
    summary = write_review(
        manifest,
        tmp_path / "review",
        worker_responses=str(tmp_path / "job"),
        images_dir=SAMPLES / "images",
    )
    assert summary.missing_images == []
    _check_review_folder(tmp_path / "review", agreement, with_workers=True)
    # gt_toolkit.consolidation.worker_quality's table, against a fresh consolidation of the three
    # workers
    quality = {row["worker_id"]: row for row in summary.quality}
    assert set(quality) == set(WORKERS)
    exact, jitter, sloppy = (quality[w] for w in WORKERS)
    assert exact["precision"] == exact["recall"] == pytest.approx(1.0)
    assert exact["mean_time_spent"] == pytest.approx(10.0)
    assert exact["mean_iou"] > jitter["mean_iou"] > 0.7
    assert sloppy["recall"] < 1.0 and sloppy["precision"] < 1.0
    html_text = (tmp_path / "review" / "report.html").read_text()
    assert all(w in html_text for w in WORKERS) and "label_agreement" in html_text
    saved = json.loads((tmp_path / "review" / "review.json").read_text())
    assert saved["lowest"][0]["source-ref"] == min(agreement, key=lambda r: agreement[r])


def test_write_review_reads_images_and_answers_from_s3(
    tmp_path: Path, store: S3Store, bucket: str
) -> None:
    manifest, agreement = _write_job(tmp_path)
    # Point the manifest at this test's bucket and upload images, manifest and answers.
    text = manifest.read_text().replace(PREFIX, f"s3://{bucket}/images/")
    agreement = {k.replace(PREFIX, f"s3://{bucket}/images/"): v for k, v in agreement.items()}
    store.put_bytes(f"s3://{bucket}/job/manifests/output/output.manifest", text.encode())
    for ref in agreement:
        name = ref.rsplit("/", 1)[1]
        store.upload_file(SAMPLES / "images" / name, ref)
    for path in (tmp_path / "job").rglob("*.json"):
        store.upload_file(
            path, f"s3://{bucket}/job/{path.relative_to(tmp_path / 'job').as_posix()}"
        )
    summary = write_review(
        f"s3://{bucket}/job/manifests/output/output.manifest",
        tmp_path / "review",
        worker_responses=f"s3://{bucket}/job/",
        store=store,
    )
    assert summary.missing_images == []
    _check_review_folder(tmp_path / "review", agreement, with_workers=True)


def test_missing_images_become_placeholders_and_are_listed(tmp_path: Path) -> None:
    manifest, agreement = _write_job(tmp_path)
    images = tmp_path / "some-images"
    images.mkdir()
    kept = sorted(agreement)[:3]
    for ref in kept:
        name = ref.rsplit("/", 1)[1]
        (images / name).write_bytes((SAMPLES / "images" / name).read_bytes())
    summary = write_review(manifest, tmp_path / "review", images_dir=images)
    assert sorted(summary.missing_images) == sorted(set(agreement) - set(kept))
    assert len(list((tmp_path / "review" / "images").glob("*.png"))) == N_IMAGES
    report = _parse(tmp_path / "review" / "report.html")
    assert (
        "worker-quality" in report.tables
        or "No worker answers" in (tmp_path / "review" / "report.html").read_text()
    )


def test_an_image_too_big_to_open_becomes_a_placeholder(tmp_path: Path) -> None:
    manifest, agreement = _write_job(tmp_path)
    images = tmp_path / "images"
    images.mkdir()
    huge, *rest = sorted(agreement)
    for ref in rest:
        name = ref.rsplit("/", 1)[1]
        (images / name).write_bytes((SAMPLES / "images" / name).read_bytes())
    (images / huge.rsplit("/", 1)[1]).write_bytes(huge_png_header())
    summary = write_review(manifest, tmp_path / "review", images_dir=images)
    assert summary.missing_images == [huge]
    assert len(list((tmp_path / "review" / "images").glob("*.png"))) == N_IMAGES


# Damaged headers on which Pillow raises ValueError rather than OSError: a PPM whose width
# is not a number, and (found by mutating a JPEG) 40 bytes that Pillow reads as a TGA of a
# raw mode it has no decoder for.
DAMAGED = {
    "ppm": b"P6\n4x 4\n255\n" + bytes(48),
    "tga": bytes.fromhex(
        "0100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f141d1a1f1e"
    ),
}


@pytest.mark.parametrize("damaged", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_image_becomes_a_placeholder(tmp_path: Path, damaged: bytes) -> None:
    manifest, agreement = _write_job(tmp_path)
    images = tmp_path / "images"
    images.mkdir()
    bad, *rest = sorted(agreement)
    for ref in rest:
        name = ref.rsplit("/", 1)[1]
        (images / name).write_bytes((SAMPLES / "images" / name).read_bytes())
    (images / bad.rsplit("/", 1)[1]).write_bytes(damaged)
    out = tmp_path / "review"
    assert main(["review", str(manifest), "-o", str(out), "--images-dir", str(images)]) == 0
    summary = json.loads((out / "review.json").read_text())
    assert summary["missing_images"] == [bad]
    assert len(list((out / "images").glob("*.png"))) == N_IMAGES


def _review_one(
    tmp_path: Path,
    image: Image.Image | bytes | None,
    box: dict[str, Any],
    image_size: dict[str, int] | None = None,
    min_width: int = 0,
    **save: Any,
) -> Image.Image:
    """The picture ``review`` draws of ``image`` (saved as a PNG, or by ``save``'s format;
    bytes: the file as they are; ``None``: no file) with one consolidated box, at its own
    scale (``--min-width 0``)."""
    from gt_toolkit.formats.detection_label import build_detection_label

    images = tmp_path / "images"
    images.mkdir()
    if isinstance(image, bytes):
        (images / "x.img").write_bytes(image)
    elif image is not None:
        image.save(images / "x.img", **({"format": "PNG"} | save))
    pair = build_detection_label("boxes", [box], image_size=image_size, job_name="j")
    manifest = tmp_path / "out.manifest"
    manifest.write_text(json.dumps({"source-ref": "s3://bkt/x.img", **pair}) + "\n")
    out = tmp_path / "review"
    args = ["review", str(manifest), "-o", str(out), "--images-dir", str(images)]
    assert main([*args, "--min-width", str(min_width)]) == 0
    missing = json.loads((out / "review.json").read_text())["missing_images"]
    assert missing == ([] if image is not None else ["s3://bkt/x.img"])
    (picture,) = (out / "images").glob("*.png")
    return Image.open(picture).convert("RGB")


def test_a_16_bit_image_is_scaled_to_8_bits_not_clipped(tmp_path: Path) -> None:
    # A 16-bit grayscale ramp (a depth map, an X-ray): 0, 256, ..., 65280 along x.
    ramp = Image.new("I;16", (256, 64))
    ramp.putdata([x * 256 for _ in range(64) for x in range(256)])
    picture = _review_one(tmp_path, ramp, _box("a", 200, 40, 20, 10))
    # Before: convert("RGB") clipped every value over 255, a white picture past x = 0.
    assert [picture.getpixel((x, 5)) for x in (1, 64, 128, 250)] == [
        (1, 1, 1),
        (64, 64, 64),
        (128, 128, 128),
        (250, 250, 250),
    ]
    assert picture.getpixel((200, 45)) == CONSENSUS_COLOUR


def test_a_16_bit_image_with_a_transparent_value_clears_that_value_only(tmp_path: Path) -> None:
    # A 16-bit grayscale ramp whose value 32768 (the middle column) is transparent (tRNS).
    ramp = Image.new("I;16", (256, 64))
    ramp.putdata([x * 256 for _ in range(64) for x in range(256)])
    picture = _review_one(tmp_path, ramp, _box("a", 200, 40, 20, 10), transparency=32768)
    # Before: the 16-bit value was kept on the 8-bit copy and matched its low byte: every
    # pixel of 0 (x = 0) was clear and the middle column grey.
    assert [picture.getpixel((x, 5)) for x in (0, 1, 127, 128, 129)] == [
        (0, 0, 0),
        (1, 1, 1),
        (127, 127, 127),
        WHITE,
        (129, 129, 129),
    ]
    assert picture.getpixel((200, 45)) == CONSENSUS_COLOUR


def _png_rgb16(rows: list[list[tuple[int, int, int]]], transparent: tuple[int, int, int]) -> bytes:
    """A 16-bit RGB PNG with a transparent colour (tRNS), as libpng writes one (Pillow cannot)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body).to_bytes(4, "big")
        return len(body).to_bytes(4, "big") + kind + body + crc

    header = struct.pack(">IIBBBBB", len(rows[0]), len(rows), 16, 2, 0, 0, 0)
    pixels = b"".join(b"\0" + b"".join(struct.pack(">3H", *px) for px in row) for row in rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"tRNS", struct.pack(">3H", *transparent))
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


def test_a_16_bit_colour_image_clears_its_transparent_colour_only(tmp_path: Path) -> None:
    # Columns of (200, 200, 200) of 65535 (near black, the transparent colour), of
    # (51400, 51400, 51400) (light grey, read as 200 in 8 bits) and of red.
    row = [(200, 200, 200)] * 20 + [(51400, 51400, 51400)] * 20 + [(65535, 0, 0)] * 20
    data = _png_rgb16([row] * 40, transparent=(200, 200, 200))
    picture = _review_one(tmp_path, data, _box("a", 45, 25, 10, 10))
    # Before: the 16-bit colour was matched against the 8-bit pixels: the transparent
    # column was drawn black and the light grey one white.
    assert [picture.getpixel((x, 5)) for x in (5, 25, 50)] == [
        WHITE,
        (200, 200, 200),
        (255, 0, 0),
    ]


@pytest.mark.parametrize("mode", ["RGBA", "P"])
def test_transparent_pixels_lie_on_white(tmp_path: Path, mode: str) -> None:
    # A transparent picture with an opaque red square; its clear pixels hold black.
    image = Image.new("RGBA", (120, 80), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (40, 20, 80, 60))
    if mode == "P":  # a palette with a transparent index, as GIFs and small PNGs have
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=2)
        clear = image.getpixel((0, 0))
        image.info["transparency"] = clear
    picture = _review_one(tmp_path, image, _box("a", 40, 20, 40, 40))
    assert picture.getpixel((10, 40)) == WHITE  # before: black
    assert picture.getpixel((60, 40)) == RED
    assert picture.getpixel((40, 40)) == CONSENSUS_COLOUR


def test_a_thin_strip_is_not_scaled_past_a_pixel_budget(tmp_path: Path) -> None:
    # Scaled to 320 px wide, a 1 x 600 strip became 320 x 192,000 (61 million pixels a
    # panel); 1 x 6000 took 4.8 GB and half a minute. Now 4 * 320**2 pixels at most.
    strip = Image.new("RGB", (1, 600), RED)
    picture = _review_one(tmp_path, strip, _box("a", 0, 0, 1, 10), min_width=320)
    panel = (picture.width, picture.height - caption_size(picture.width, picture.height) - 4)
    assert panel[0] * panel[1] <= 4 * 320**2 and panel[0] > 1  # still enlarged
    assert picture.getpixel((panel[0] // 2, panel[1] - 2)) == RED


def test_a_missing_image_of_an_absurd_size_is_a_small_placeholder(tmp_path: Path) -> None:
    # A label may say 2**31 - 1 pixels a side. Before: a placeholder that size raised
    # MemoryError and the review stopped with a traceback.
    side = 2**31 - 1
    picture = _review_one(tmp_path, None, _box("a", 5, 5, 50, 50), {"width": side, "height": side})
    assert picture.width == 160  # the default placeholder
    assert picture.getpixel((5, 30)) == CONSENSUS_COLOUR


def test_cli_review_prints_names_with_escapes_spelled_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An S3 key may hold any character: before, ESC[2J cleared the terminal and U+202E
    # reordered the agreement figures printed beside it.
    from gt_toolkit.formats.detection_label import build_detection_label

    pair = build_detection_label(
        "boxes", [_box("a", 1, 1, 5, 5, 0.5)], image_size=None, job_name="j"
    )
    manifest = tmp_path / "out.manifest"
    manifest.write_text(json.dumps({"source-ref": "s3://bkt/a\x1b[2J\u202e.jpg", **pair}) + "\n")
    out, images = tmp_path / "review", tmp_path / "images"
    images.mkdir()
    assert main(["review", str(manifest), "-o", str(out), "--images-dir", str(images)]) == 0
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\u202e" not in err
    assert "0.500  s3://bkt/a\\x1b[2J\\u202e.jpg" in err


def test_the_report_inlines_wide_pictures_shrunk_and_images_keeps_them_whole(
    tmp_path: Path,
) -> None:
    import base64

    wide = Image.new("RGB", (2400, 200), WHITE)
    picture = _review_one(tmp_path, wide, _box("a", 1200, 50, 300, 100))
    assert picture.width == 2400  # images/ keeps the full picture
    (src,) = _parse(tmp_path / "review" / "report.html").srcs
    inline = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")
    # Before: inlined at 2400 px too (a phone photo's row was 12 to 30 MB of base64).
    assert inline.size == (1600, round(picture.height * 1600 / 2400))
    assert inline.getpixel((800, 60)) != WHITE  # the box's left edge, shrunk with it


def _noisy_photo(width: int, height: int) -> Image.Image:
    """A photo's worth of detail: smooth shading under sensor noise (sigma 10 levels)."""
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    scene = np.stack(
        [128 + 100 * np.sin(x / 200), 128 + 80 * np.cos(y / 150), 128 + 60 * np.sin((x + y) / 300)],
        axis=-1,
    )
    noisy = scene + np.random.default_rng(7).normal(0, 10, scene.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def test_a_noisy_photo_is_inlined_small_with_crisp_boxes_and_captions(tmp_path: Path) -> None:
    import base64

    import numpy as np

    size = {"width": 1600, "height": 1200}
    box = _box("person", 400, 300, 500, 400, conf=0.87)
    picture = _review_one(tmp_path, _noisy_photo(1600, 1200), box, size, format="JPEG", quality=95)
    assert Image.open(next((tmp_path / "review" / "images").glob("*.png"))).format == "PNG"
    report = _parse(tmp_path / "review" / "report.html")
    assert report.links == [] and report.refs == report.srcs  # no address but data: URIs
    (src,) = report.srcs
    inline = _inlined(src)
    assert inline.size == picture.size  # 1600 px wide: not shrunk
    inlined_bytes = len(base64.b64decode(src.split(",", 1)[1]))
    # Before: inlined as its PNG, 3.9 MB here (5.2 MB of base64 a row; 100 noisy photos
    # made a 766 MB page). As a JPEG of quality 90 it is 0.8 MB.
    assert inlined_bytes < picture.width * picture.height
    drawn = np.asarray(picture).astype(int)
    shown = np.asarray(inline.convert("RGB")).astype(int)
    green = (drawn == CONSENSUS_COLOUR).all(axis=-1)  # the box's outline and caption tab
    assert green[300:700, 400:402].all() and green.sum() > 2000
    off = np.abs(shown[green] - CONSENSUS_COLOUR)
    assert off.max() <= 48 and off.mean() <= 6  # 4:4:4: 36 at most; 4:2:0 was 113 off
    text = (drawn == (0, 0, 0)).all(axis=-1)  # the caption's and the legend's letters
    assert text.sum() > 100 and shown[text].max(axis=-1).mean() <= 40


def test_a_flat_drawing_is_inlined_as_its_png(tmp_path: Path) -> None:
    # A JPEG of flat colour and text is larger than its PNG, and blurs it: the PNG stays.
    picture = _review_one(
        tmp_path, Image.new("RGB", (800, 600), WHITE), _box("a", 100, 100, 50, 50)
    )
    (src,) = _parse(tmp_path / "review" / "report.html").srcs
    inline = _inlined(src)
    assert inline.format == "PNG" and inline.convert("RGB").tobytes() == picture.tobytes()


def _sideways_photo() -> tuple[Image.Image, Image.Image.Exif]:
    """A phone photo stored sideways: 200 x 100 pixels with EXIF orientation 6 ("turn a
    quarter clockwise to show"), upright 100 x 200 with a red square at (10, 150, 30, 30)."""
    upright = Image.new("RGB", (100, 200), WHITE)
    upright.paste(RED, (10, 150, 40, 180))
    exif = Image.Exif()
    exif[0x0112] = 6
    return upright.transpose(Image.Transpose.ROTATE_90), exif


def _reddish(pixel: tuple[int, ...]) -> bool:
    return pixel[0] > 200 and max(pixel[1:3]) < 60


def test_boxes_of_a_sideways_photo_labeled_upright_land_on_their_object(tmp_path: Path) -> None:
    stored, exif = _sideways_photo()
    upright_size = {"width": 100, "height": 200}  # what a browser showed the worker
    box = _box("a", 10, 150, 30, 30)
    picture = _review_one(tmp_path, stored, box, upright_size, format="JPEG", exif=exif)
    # Before: drawn on the stored 200 x 100 pixels, the box lay off the picture's bottom.
    assert picture.width == 100
    assert picture.getpixel((10, 165)) == CONSENSUS_COLOUR
    assert _reddish(picture.getpixel((25, 165)))


def test_boxes_labeled_on_the_stored_pixels_stay_there(tmp_path: Path) -> None:
    # The same file labeled by a tool that ignores EXIF: its size is the stored one.
    stored, exif = _sideways_photo()
    box = _box("a", 150, 60, 30, 30)  # the red square in the stored pixels
    picture = _review_one(
        tmp_path, stored, box, {"width": 200, "height": 100}, format="JPEG", exif=exif
    )
    assert picture.width == 200
    assert picture.getpixel((150, 75)) == CONSENSUS_COLOUR
    assert _reddish(picture.getpixel((165, 75)))


def test_images_prefix_maps_keys_below_a_folder(tmp_path: Path) -> None:
    manifest, agreement = _write_job(tmp_path)
    nested = tmp_path / "mirror" / "images"
    nested.mkdir(parents=True)
    for ref in agreement:
        name = ref.rsplit("/", 1)[1]
        (nested / name).write_bytes((SAMPLES / "images" / name).read_bytes())
    summary = write_review(
        manifest,
        tmp_path / "review",
        images_dir=tmp_path / "mirror",
        images_prefix="s3://gt-toolkit-demo/",
    )
    assert summary.missing_images == []


def _read_answers(
    prefix: Path, objects: dict[int, int], data_objects: int
) -> tuple[dict[int, list[BoundingBoxAnswer]], list[CrowdReject]]:
    rejects: list[CrowdReject] = []
    skip = Skipper(IngestReport(), rejects.append)
    answers = read_worker_responses(str(prefix), objects, data_objects=data_objects, skip=skip)
    return answers, rejects


def _put_answer(root: Path, iteration: int, object_id: int, worker: str) -> Path:
    folder = root / "annotations" / "worker-response" / f"iteration-{iteration}" / str(object_id)
    folder.mkdir(parents=True, exist_ok=True)
    content = {
        "boundingBox": {"boundingBoxes": None, "inputImageProperties": {"width": 5, "height": 5}}
    }
    doc = {"answers": [{"workerId": worker, "answerContent": content}]}
    path = folder / f"{worker}.json"
    path.write_text(json.dumps(doc))
    return path


def test_read_worker_responses_keeps_the_latest_iteration(tmp_path: Path) -> None:
    _put_answer(tmp_path, 1, 0, "old")
    _put_answer(tmp_path, 2, 0, "new-a")
    _put_answer(tmp_path, 2, 0, "new-b")
    answers, rejects = _read_answers(tmp_path, {0: 1}, 1)
    assert sorted(a.worker_id for a in answers[0]) == ["new-a", "new-b"]
    assert all(a.boxes == [] for a in answers[0])  # boundingBoxes: null means nothing drawn
    assert rejects == []


def test_read_worker_responses_rejects_a_bad_file_and_reads_the_rest(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no worker-response"):
        _read_answers(tmp_path, {0: 1}, 1)
    _put_answer(tmp_path, 1, 3, "good")
    bad = _put_answer(tmp_path, 1, 3, "zz-bad")
    bad.write_text('{"not": "answers"}')
    answers, rejects = _read_answers(tmp_path, {3: 4}, 4)
    assert [a.worker_id for a in answers[3]] == ["good"]
    assert [(r.source, r.position, r.reason) for r in rejects] == [
        (str(bad), "manifest line 4", SkipReason.UNREADABLE_ANSWER)
    ]


def test_cli_review(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, agreement = _write_job(tmp_path)
    out = tmp_path / "review"
    code = main(
        [
            "review",
            str(manifest),
            "-o",
            str(out),
            "--worker-responses",
            str(tmp_path / "job"),
            "--images-dir",
            str(SAMPLES / "images"),
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [str(out / "report.html"), str(out / "contact_sheet.png")]
    lowest = min(agreement, key=lambda r: agreement[r])
    assert lowest in captured.err
    _check_review_folder(out, agreement, with_workers=True)


def test_cli_review_limit_and_bad_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, _agreement = _write_job(tmp_path)
    out = tmp_path / "review"
    assert (
        main(
            [
                "review",
                str(manifest),
                "-o",
                str(out),
                "--images-dir",
                str(SAMPLES / "images"),
                "--limit",
                "3",
            ]
        )
        == 0
    )
    assert len(_parse(out / "report.html").rows) == 3
    code = main(
        ["review", str(manifest), "-o", str(out), "--worker-responses", str(tmp_path / "nope")]
    )
    assert code == 1
    assert "no worker-response files" in capsys.readouterr().err


def test_limit_draws_fewer_objects_but_rates_workers_on_all(tmp_path: Path) -> None:
    manifest, _agreement = _write_job(tmp_path)
    answers, images = str(tmp_path / "job"), SAMPLES / "images"
    every = write_review(manifest, tmp_path / "all", worker_responses=answers, images_dir=images)
    two = write_review(
        manifest, tmp_path / "two", worker_responses=answers, images_dir=images, limit=2
    )
    assert (two.images, every.images) == (2, N_IMAGES)
    # Before: the table was of the two lowest-agreement objects alone.
    assert two.quality == every.quality and len(two.quality) == len(WORKERS)
    page = (tmp_path / "two" / "report.html").read_text()
    assert page.count('class="swatch"') == len(WORKERS)  # each worker keeps a colour


def _review_copied_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Callable[[Path], Path]
) -> tuple[int, str, Path, list[dict[str, Any]], Path]:
    """``review`` of the sample job copied and changed by ``change`` (which returns the file
    it broke or added): exit code, stderr, the folder, its rejects, and that file."""
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    changed = change(job / "annotations" / "worker-response" / "iteration-1")
    out = tmp_path / "review"
    code = main(
        [
            "review",
            str(SAMPLES / "truth.manifest"),
            "-o",
            str(out),
            "--worker-responses",
            str(job),
            "--images-dir",
            str(SAMPLES / "images"),
        ]
    )
    err = capsys.readouterr().err
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    return code, err, out, rejects, changed


def _cut_short(responses: Path) -> Path:
    """Cut the body of object 20's answer file (the middle of the job) in half."""
    (path,) = (responses / "20").glob("*.json")
    body = path.read_bytes()
    path.write_bytes(body[: len(body) // 2])
    return path


def _beyond(responses: Path) -> Path:
    """Answers for object 40 of a 40-object manifest: a copy of object 0's folder."""
    shutil.copytree(responses / "0", responses / "40")
    (path,) = (responses / "40").glob("*.json")
    return path


def test_review_goes_past_an_unreadable_answer_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err, out, rejects, broken = _review_copied_job(tmp_path, capsys, _cut_short)
    assert code == 1
    assert "labels were lost: 1 worker answers not drawn (unreadable-answer 1)" in err
    assert [(r["file"], r["position"], r["reason"]) for r in rejects] == [
        (str(broken), "manifest line 21", "unreadable-answer")
    ]
    summary = json.loads((out / "review.json").read_text())
    assert summary["images"] == 40 and summary["rejected_answers"] == {"unreadable-answer": 1}
    assert {row["images"] for row in summary["quality"]} == {39}  # every other object's answers
    assert "1 worker answer(s) not drawn (unreadable-answer 1)" in (out / "report.html").read_text()


def test_review_reports_answers_beyond_the_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err, out, rejects, extra = _review_copied_job(tmp_path, capsys, _beyond)
    assert code == 1
    assert "1 worker answers not drawn (unknown-image 1)" in err
    assert [(r["file"], r["position"], r["reason"]) for r in rejects] == [
        (str(extra), "datasetObjectId 40", "unknown-image")
    ]
    summary = json.loads((out / "review.json").read_text())
    assert {row["images"] for row in summary["quality"]} == {40}  # object 0 counted once


@pytest.mark.parametrize("change", [_cut_short, _beyond])
def test_review_rejects_the_answers_the_gt_job_source_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Callable[[Path], Path]
) -> None:
    _code, _err, _out, rejects, _path = _review_copied_job(tmp_path, capsys, change)
    seen: list[CrowdReject] = []
    source = GtJobSource(
        tmp_path / "job", manifest=SAMPLES / "truth.manifest", on_reject=seen.append
    )
    assert len(list(source.items())) == 40
    assert [(r["file"], r["position"], r["reason"]) for r in rejects] == [
        (r.source, r.position, r.reason.value) for r in seen
    ]


# ---------------------------------------------------------------- what a new user trips on


def test_unlabeled_manifest_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "review"
    assert main(["review", str(SAMPLES / "input.manifest"), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "nothing to draw" in err and "40 lines" in err and "no-label: 40" in err
    assert not out.exists()


def test_an_output_folder_that_is_a_file_fails_before_drawing_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, _agreement = _write_job(tmp_path)
    (tmp_path / "taken").write_bytes(b"theirs")
    for out in (tmp_path / "taken", tmp_path / "taken" / "review"):
        argv = ["review", str(manifest), "-o", str(out), "--images-dir", str(IMAGES)]
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err == f"gt-convert: StorageError: cannot make the review folder {out}: " + (
            "File exists\n" if out.name == "taken" else "Not a directory\n"
        )
    assert (tmp_path / "taken").read_bytes() == b"theirs"


def test_rejected_lines_are_kept_beside_the_review(tmp_path: Path) -> None:
    manifest, _agreement = _write_job(tmp_path)
    with manifest.open("a") as fh:
        fh.write('{"source-ref": "s3://gt-toolkit-demo/images/unlabeled.jpg"}\nnot json\n')
    summary = write_review(manifest, tmp_path / "review", images_dir=SAMPLES / "images")
    assert summary.images == N_IMAGES
    assert sum(summary.rejected.values()) == 2
    rejects = [
        json.loads(x) for x in (tmp_path / "review" / "rejects.jsonl").read_text().splitlines()
    ]
    assert [r["line"] for r in rejects] == [N_IMAGES + 1, N_IMAGES + 2]
    assert "2 line(s) rejected" in (tmp_path / "review" / "report.html").read_text()


HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def test_an_image_on_two_lines_is_drawn_twice(tmp_path: Path) -> None:
    manifest, _agreement = _write_job(tmp_path)
    lines = manifest.read_text().splitlines()
    again = json.loads(lines[0])
    again["boxes-metadata"]["objects"] = [
        {"confidence": 0.01} for _ in again["boxes-metadata"]["objects"]
    ]
    manifest.write_text("\n".join([*lines, json.dumps(again)]) + "\n")
    summary = write_review(manifest, tmp_path / "review", images_dir=SAMPLES / "images")
    assert summary.images == N_IMAGES + 1 and len(summary.pictures) == N_IMAGES + 1
    source_ref, lowest = summary.lowest[0]
    assert source_ref == again["source-ref"] and lowest == pytest.approx(0.01)
    rows = _parse(tmp_path / "review" / "report.html").rows
    assert [r["data-source-ref"] for r in rows].count(again["source-ref"]) == 2
    assert len(list((tmp_path / "review" / "images").glob("*.png"))) == N_IMAGES + 1


def test_a_rerun_leaves_nothing_of_the_earlier_review(tmp_path: Path) -> None:
    manifest, _agreement = _write_job(tmp_path)
    first = manifest.read_text().splitlines()
    manifest.write_text("\n".join([*first, "not json"]) + "\n")
    out = tmp_path / "review"
    (out / "images").mkdir(parents=True)
    (out / "images" / "mine.png").write_bytes(b"not ours")  # the user's file stays
    write_review(manifest, out, images_dir=SAMPLES / "images")
    assert (out / "rejects.jsonl").exists()
    (out / "images" / "10000_img.png").write_bytes(b"")  # an earlier review's 10,000th image
    earlier = json.loads((out / "review.json").read_text())
    earlier["pictures"].append("images/10000_img.png")
    (out / "review.json").write_text(json.dumps(earlier))
    manifest.write_text(first[0] + "\n")
    summary = write_review(manifest, out, images_dir=SAMPLES / "images")
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        [PurePosixPath(summary.pictures[0]).name, "mine.png"]
    )
    assert not (out / "rejects.jsonl").exists()


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder``, with a file's bytes (``None`` for a folder)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


def _files(folder: Path) -> set[str]:
    """The files under ``folder``, as paths relative to it."""
    return {name for name, data in _tree(folder).items() if data is not None}


def test_a_review_that_cannot_write_its_report_leaves_none_of_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, _agreement = _write_job(tmp_path)
    out = tmp_path / "review"
    (out / "report.html").mkdir(parents=True)  # the report cannot be written
    args = ["review", str(manifest), "-o", str(out), "--images-dir", str(IMAGES)]
    assert main(args) == 1
    assert "report.html: it is a folder" in capsys.readouterr().err
    # Before: eight pictures and the contact sheet were left, and no review.json listed them.
    assert _tree(out) == {"report.html": None}


def test_a_failed_rerun_leaves_the_earlier_review_as_it_was(tmp_path: Path) -> None:
    manifest, _agreement = _write_job(tmp_path)
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join([*lines, "not json"]) + "\n")  # and a rejects file
    out = tmp_path / "review"
    write_review(manifest, out, images_dir=IMAGES)
    (out / "contact_sheet.png").unlink()
    (out / "contact_sheet.png").mkdir()  # the rerun's contact sheet cannot be written
    earlier = _tree(out)
    assert len(list((out / "images").iterdir())) == N_IMAGES and "rejects.jsonl" in earlier
    manifest.write_text(lines[0] + "\n")
    with pytest.raises(StorageError, match=r"contact_sheet\.png: it is a folder"):
        write_review(manifest, out, images_dir=IMAGES)
    # Before: the earlier pictures and rejects were removed first; one new picture stayed.
    assert _tree(out) == earlier


def test_a_failed_rerun_of_the_same_manifest_keeps_the_earlier_pictures(tmp_path: Path) -> None:
    manifest, _agreement = _write_job(tmp_path)
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join([*lines, "not json"]) + "\n")  # and a rejects file
    out = tmp_path / "review"
    write_review(manifest, out, images_dir=IMAGES)
    (out / "contact_sheet.png").unlink()
    (out / "contact_sheet.png").mkdir()  # the rerun's contact sheet cannot be written
    earlier = _tree(out)
    # The same objects at a larger size: every picture and the rejects file keep their
    # names, so the rerun replaces each of them before it fails.
    with pytest.raises(StorageError, match=r"contact_sheet\.png: it is a folder"):
        write_review(manifest, out, images_dir=IMAGES, min_width=700)
    # Before: the eight pictures were replaced, then removed with the failed run's files;
    # the earlier report and review.json named pictures that were gone.
    assert _tree(out) == earlier


_KILLED_RERUN = """
import os, sys
from gt_toolkit.evaluation import review

class Killed(review.AllOrNone):
    def open(self, location):
        os._exit(9)  # killed (SIGKILL) once the earlier files are kept aside

review.AllOrNone = Killed
review.write_review(sys.argv[1], sys.argv[2], images_dir=sys.argv[3], min_width=700)
"""


def test_a_killed_rerun_leaves_nothing_a_later_run_keeps(tmp_path: Path) -> None:
    manifest, _agreement = _write_job(tmp_path)
    out = tmp_path / "review"
    write_review(manifest, out, images_dir=IMAGES)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    args = [str(manifest), str(out), str(IMAGES)]
    killed = subprocess.run([sys.executable, "-c", _KILLED_RERUN, *args], env=env, check=False)
    assert killed.returncode == 9
    assert [p.name for p in out.iterdir() if p.name.startswith(".review-earlier")]
    later = "import sys; from gt_toolkit.cli import main; sys.exit(main(sys.argv[1:]))"
    cli = ["review", str(manifest), "-o", str(out), "--images-dir", str(IMAGES)]
    subprocess.run([sys.executable, "-c", later, *cli], env=env, check=True)  # a new process
    # Before: the folder of the killed run's kept files (mkdtemp's '.review-earlier-xyz')
    # was no temporary name a later run sweeps: every later review left it there.
    assert sorted(p.name for p in out.iterdir()) == [
        "contact_sheet.png",
        "images",
        "report.html",
        "review.json",
    ]


_KILLED_RUN = """
import os, signal, sys
from gt_toolkit.evaluation import review

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9 once every picture is drawn and staged

review._write_all = killed
review.write_review(sys.argv[1], sys.argv[2], images_dir=sys.argv[3])
"""


def test_a_run_killed_with_kill_9_leaves_nothing_after_the_next_run(tmp_path: Path) -> None:
    manifest, _agreement = _write_job(tmp_path)
    out = tmp_path / "review"
    temp = tmp_path / "temp"  # the system temporary folder, as the runs see it
    temp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "TMPDIR": str(temp)}
    # What the run did not make stays, whatever its name: the user's files, a part folder
    # of another host (whose process cannot be looked up) and of a process still running.
    out.mkdir()
    theirs = [
        ".review",
        ".review.notes",
        f".review.otherhost.1.{'0' * 16}.part/a.png",
        f"{part_name('.review')}/a.png",  # this test's process, which runs
        "images/mine.png",
    ]
    for name in theirs:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(b"theirs")
    run = [sys.executable, "-c", _KILLED_RUN, str(manifest), str(out), str(IMAGES)]
    killed = subprocess.Popen(run, env=env)
    assert killed.wait() == -signal.SIGKILL
    # Before: the killed run's pictures stayed in the temporary folder (tmpXXXXXXXX/) for
    # good: no later run looked there.
    assert list(temp.iterdir()) == []
    staged = _files(out) - set(theirs)  # in a part folder a later run here removes
    part = rf"\.review\.[\w-]+\.{killed.pid}\.[0-9a-f]{{16}}\.part"
    assert staged and all(re.fullmatch(rf"{part}/.+", name) for name in staged)
    assert sum(name.endswith(".png") for name in staged) == N_IMAGES
    later = "import sys; from gt_toolkit.cli import main; sys.exit(main(sys.argv[1:]))"
    cli = ["review", str(manifest), "-o", str(out), "--images-dir", str(IMAGES)]
    subprocess.run([sys.executable, "-c", later, *cli], env=env, check=True)  # a new process
    pictures = json.loads((out / "review.json").read_text())["pictures"]
    written = {"contact_sheet.png", "report.html", "review.json", *pictures}
    assert _files(out) == {*theirs, *written}
    assert all((out / name).read_bytes() == b"theirs" for name in theirs)
    assert list(temp.iterdir()) == []


def test_an_earlier_picture_that_cannot_be_put_back_is_kept_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, _agreement = _write_job(tmp_path)
    out = tmp_path / "review"
    write_review(manifest, out, images_dir=IMAGES)
    earlier = {p.name: p.read_bytes() for p in (out / "images").iterdir()}
    pages = {name: (out / name).read_bytes() for name in ("report.html", "review.json")}
    (out / "contact_sheet.png").unlink()
    (out / "contact_sheet.png").mkdir()  # the rerun's contact sheet cannot be written

    def blocked(copy: str, path: str) -> None:  # the fault that failed the run blocks this too
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("gt_toolkit.evaluation.review.shutil.move", blocked)
    with pytest.raises(StorageError) as failed:
        write_review(manifest, out, images_dir=IMAGES, min_width=700)
    notes = "\n".join(getattr(failed.value, "__notes__", []))
    kept = re.findall(r"is kept as (\S+) \(", notes)
    # Before: the copies were removed with their folder: nothing of the earlier pictures was left.
    assert len(kept) == N_IMAGES  # the pictures the rerun replaced before it failed
    assert {Path(k).read_bytes() for k in kept} == set(earlier.values())
    # the pages come after the contact sheet: never replaced, they are the earlier ones
    assert {name: (out / name).read_bytes() for name in pages} == pages


_BLOCKED_RERUN = """
import shutil, sys
from gt_toolkit.evaluation import review

def blocked(copy, path):  # the fault that failed the run blocks this too
    raise PermissionError(13, "Permission denied")

shutil.move = blocked
try:
    review.write_review(sys.argv[1], sys.argv[2], images_dir=sys.argv[3], min_width=700)
except review.StorageError as failed:
    print("\\n".join(failed.__notes__))
"""


def test_earlier_pictures_that_could_not_be_put_back_outlive_the_next_run(
    tmp_path: Path,
) -> None:
    # The error named where they were kept: a temporary folder (.review-earlier...part),
    # which the next run into the folder swept away with them (the failed run's process
    # was gone).
    manifest, _agreement = _write_job(tmp_path)
    out = tmp_path / "review"
    write_review(manifest, out, images_dir=IMAGES)
    earlier = {p.read_bytes() for p in (out / "images").iterdir()}
    (out / "contact_sheet.png").unlink()
    (out / "contact_sheet.png").mkdir()  # the rerun's contact sheet cannot be written
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    args = [str(manifest), str(out), str(IMAGES)]
    failed = subprocess.run(
        [sys.executable, "-c", _BLOCKED_RERUN, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    kept = re.findall(r"is kept as (\S+) \(", failed.stdout)
    assert len(kept) == N_IMAGES
    (out / "contact_sheet.png").rmdir()
    later = "import sys; from gt_toolkit.cli import main; sys.exit(main(sys.argv[1:]))"
    cli = ["review", str(manifest), "-o", str(out), "--images-dir", str(IMAGES)]
    subprocess.run([sys.executable, "-c", later, *cli], env=env, check=True)  # a new process
    assert {Path(k).read_bytes() for k in kept} == earlier


def test_the_command_says_where_an_earlier_picture_it_could_not_put_back_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The error's notes named each kept copy, but the command printed its one line without
    # them: the copies sat in a temporary folder nobody was told of, and the next run into
    # the folder swept it away (its process was gone), with the only earlier pictures.
    manifest, _agreement = _write_job(tmp_path)
    out = tmp_path / "review"
    argv = ["review", str(manifest), "-o", str(out), "--images-dir", str(IMAGES)]
    assert main(argv) == 0
    earlier = {p.read_bytes() for p in (out / "images").iterdir()}
    (out / "contact_sheet.png").unlink()
    (out / "contact_sheet.png").mkdir()  # the rerun's contact sheet cannot be written

    def blocked(copy: str, path: str) -> None:  # the fault that failed the run blocks this too
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("gt_toolkit.evaluation.review.shutil.move", blocked)
    capsys.readouterr()
    assert main([*argv, "--min-width", "700"]) == 1
    err = capsys.readouterr().err
    kept = re.findall(r"is kept as (\S+) \(", err)
    assert len(kept) == N_IMAGES
    assert {Path(k).read_bytes() for k in kept} == earlier


@pytest.mark.parametrize(
    "listing",
    [
        None,  # no earlier summary
        '{"pictures": ["images/0001_holiday.png", "../0002_x.png", "images/../0003_y.png"]}',
        "[1, 2]",  # not an object
        '{"pictures": "images/0001_holiday.png"}',  # not a list
        "not json",
    ],
)
def test_a_rerun_removes_only_pictures_an_earlier_review_listed(
    tmp_path: Path, listing: str | None
) -> None:
    """A file named like a picture that no earlier review listed is the user's: it stays.

    A listed name outside ``images/`` (a hand-edited summary) is never followed either.
    """
    manifest, _agreement = _write_job(tmp_path)
    manifest.write_text(manifest.read_text().splitlines()[0] + "\n")
    out = tmp_path / "review"
    (out / "images").mkdir(parents=True)
    theirs = {
        out / "images" / "0001_holiday.png": b"holiday",
        out / "0002_x.png": b"x",
        out / "0003_y.png": b"y",
    }
    for path, data in theirs.items():
        path.write_bytes(data)
    listed = listing is not None and listing.startswith('{"pictures": [')
    if listing is not None:
        (out / "review.json").write_text(listing)
    if listed:  # a picture of that review: it goes
        del theirs[out / "images" / "0001_holiday.png"]
    summary = write_review(manifest, out, images_dir=SAMPLES / "images")
    assert {path: path.read_bytes() for path in theirs} == theirs
    assert (out / "images" / "0001_holiday.png").exists() is not listed
    assert (out / summary.pictures[0]).exists()


@pytest.mark.parametrize(
    "name",
    [
        "images/0001_a\u0000.png",  # a NUL: 'embedded null byte' from unlink, a traceback
        "images/0001_" + "a" * 300 + ".png",  # 'File name too long'
        "images/0001_a b.png",  # a space: no picture is named so
    ],
    ids=["nul", "long", "space"],
)
def test_a_name_no_review_writes_in_a_hand_written_summary_is_ignored(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # the rerun failed after drawing everything, and wrote nothing
    out = tmp_path / "review"
    (out / "images").mkdir(parents=True)
    (out / "images" / "0001_a b.png").write_bytes(b"the user's")
    (out / "review.json").write_text(json.dumps({"pictures": [name]}))
    manifest = SAMPLES / "truth.manifest"
    assert main(["review", str(manifest), "-o", str(out), "--images-dir", str(IMAGES)]) == 0
    assert (out / "report.html").is_file() and "Traceback" not in capsys.readouterr().err
    assert (out / "images" / "0001_a b.png").read_bytes() == b"the user's"


def test_a_picture_of_an_image_with_a_long_cjk_name_fits_a_file_name(
    tmp_path: Path,
) -> None:
    # 80 letters of three or four bytes (CJK, U+20000) made a name the temporary file could
    # not hold: 'File name too long', after drawing everything; a rerun removes it too
    line = json.loads((SAMPLES / "truth.manifest").read_text().splitlines()[0])
    line["source-ref"] = PREFIX + "\u6f22\U00020000" * 45 + ".jpg"
    manifest = tmp_path / "wide.manifest"
    manifest.write_text(json.dumps(line) + "\n")
    out = tmp_path / "review"
    argv = ["-o", str(out), "--images-dir", str(IMAGES)]  # not there: drawn as a placeholder
    assert main(["review", str(manifest), *argv]) == 0
    (picture,) = (out / "images").iterdir()
    assert picture.name.startswith("0001_\u6f22\U00020000")
    manifest.write_text((SAMPLES / "truth.manifest").read_text().splitlines()[1] + "\n")
    assert main(["review", str(manifest), *argv]) == 0
    assert [p.name for p in (out / "images").iterdir()] == ["0001_img_001.png"]


def test_report_escapes_hostile_strings() -> None:
    item = ReviewItem(
        source_ref="s3://b/" + HOSTILE,
        boxes=[_box(HOSTILE, 0, 0, 5, 5, 0.5)],
        workers=[_answer(HOSTILE, [_box("x", 0, 0, 5, 5)])],
    )
    page = build_review_html(
        [item],
        [None],
        quality=[{"worker_id": HOSTILE, HOSTILE: 1.0}],
        title=HOSTILE,
        notes=[HOSTILE],
    )
    assert "<script>" not in page and "<img src=x" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6
    assert "&#34;&gt;&lt;script&gt;" in page  # attribute values too


# Reads, left to right on screen, the figures after a label or worker id in the report.
_FIGURE_ORDER_PROBE = """<script>
var seen = [];
document.querySelectorAll("#images td:nth-child(n+4)").forEach(function (cell) {
  var walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  for (var node = walker.nextNode(); node; node = walker.nextNode()) {
    ["0.93", "12"].forEach(function (figure) {
      var at = node.data.indexOf(figure);
      if (at < 0) { return; }
      var xs = [];
      for (var i = 0; i < figure.length; i++) {
        var range = document.createRange();
        range.setStart(node, at + i);
        range.setEnd(node, at + i + 1);
        xs.push([range.getBoundingClientRect().left, figure[i]]);
      }
      xs.sort(function (a, b) { return a[0] - b[0]; });
      seen.push(xs.map(function (x) { return x[1]; }).join(""));
    });
  }
});
document.body.dataset.probe = seen.join(",");
</script></body>"""


@pytest.mark.chromium
def test_right_to_left_names_cannot_reorder_the_figures(tmp_path: Path) -> None:
    # U+202E (right-to-left override) in a label or worker id would show 0.93 as 39.0.
    override = "\u202e"
    item = ReviewItem(
        source_ref="s3://bucket/img.jpg",
        boxes=[_box(f"car{override}", 0, 0, 5, 5, 0.93)],
        workers=[_answer(f"bob{override}", [_box("car", 0, 0, 1, 1)] * 12)],
    )
    page = build_review_html([item], [None])
    (tmp_path / "probe.html").write_text(page.replace("</body>", _FIGURE_ORDER_PROBE))
    dom = chromium(tmp_path, "--dump-dom", (tmp_path / "probe.html").as_uri()).stdout
    assert dom.split('data-probe="')[1].split('"')[0] == "0.93,12"


def test_captions_grow_with_the_picture() -> None:
    def tab_height(side: int) -> int:
        image = Image.new("RGB", (side * 4 // 3, side), WHITE)
        out = draw_boxes(
            image,
            [_box("ball", side // 4, side // 2, side // 3, side // 3)],
            RED,
            captions=["ball 0.93"],
        )
        column = [out.getpixel((side // 4 + 1, y)) for y in range(side)]
        return sum(1 for pixel in column[: side // 2] if pixel == RED)

    small, large = tab_height(240), tab_height(1200)
    assert small >= 12  # readable on the sample images
    assert large >= 3 * small  # and in proportion on a photo


def test_contact_sheet_captions_are_readable() -> None:
    images = [(Image.new("RGB", (320, 240), WHITE), "1. img_000.jpg 0.42")]
    sheet = contact_sheet(images, cell=(240, 120))
    rows = [
        y
        for y in range(120, sheet.height)
        if any(sheet.getpixel((x, y))[0] < 100 for x in range(sheet.width))
    ]
    assert rows and max(rows) - min(rows) >= 10  # glyphs at least 10 px tall


def test_cjk_label_renders_glyphs_not_missing_boxes() -> None:
    def caption_pixels(text: str) -> bytes:
        image = Image.new("RGB", (320, 240), WHITE)
        out = draw_boxes(image, [_box(text, 40, 120, 100, 80)], RED, captions=[text])
        return out.crop((40, 80, 200, 120)).tobytes()

    glyphs = caption_pixels("猫")
    assert glyphs != caption_pixels("\uffff")  # a missing-glyph box looks like this
    assert glyphs != caption_pixels(" ")  # and something was drawn
    assert fonts.missing_glyphs(["猫", "кошка", "ball"]) == []


def test_without_a_cjk_font_the_review_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fonts, "FONT_FILES", ())
    fonts._fonts.cache_clear()
    try:
        assert fonts.missing_glyphs(["猫", "ball"]) == ["猫"]
        manifest, _agreement = _write_job(tmp_path)
        text = manifest.read_text().replace('"0": "ball"', '"0": "猫"')
        manifest.write_text(text)
        summary = write_review(manifest, tmp_path / "review", images_dir=SAMPLES / "images")
    finally:
        monkeypatch.undo()
        fonts._fonts.cache_clear()
    assert summary.missing_glyphs == ["猫"]
    assert "install fonts-wqy-microhei" in (tmp_path / "review" / "report.html").read_text()


@pytest.mark.chromium
def test_report_fits_a_1280_px_window(tmp_path: Path) -> None:
    manifest, _agreement = _write_job(tmp_path)
    summary = write_review(
        manifest,
        tmp_path / "review",
        worker_responses=str(tmp_path / "job"),
        images_dir=SAMPLES / "images",
    )
    page = Path(summary.report).read_text()
    long_id = "private.us-east-1." + "0123456789abcdef" * 6
    page = page.replace(WORKERS[0], long_id)
    probe = (
        "<script>document.body.dataset.probe = [document.documentElement.scrollWidth,"
        " window.innerWidth].join(',')</script></body>"
    )
    (tmp_path / "probe.html").write_text(page.replace("</body>", probe))
    dom = chromium(
        tmp_path,
        "--window-size=1280,900",
        "--dump-dom",
        (tmp_path / "probe.html").as_uri(),
    ).stdout
    page_width, window = (int(v) for v in dom.split('data-probe="')[1].split('"')[0].split(","))
    assert window == 1280
    assert page_width <= window  # wide tables scroll inside their box, the page does not


def test_answers_pair_with_data_objects_not_physical_lines(tmp_path: Path) -> None:
    # A blank line is no data object: the object after it is still datasetObjectId 1, as
    # the gt-job source numbers it (docs/ground-truth-formats.md §2.3).
    job = tmp_path / "job"
    for i in range(3):
        answers = JOB / "annotations" / "worker-response" / "iteration-1" / str(i)
        shutil.copytree(answers, job / "annotations" / "worker-response" / "iteration-1" / str(i))
    lines = (SAMPLES / "truth.manifest").read_text().splitlines()[:3]
    reviews = {}
    for name, text in [
        ("plain", "\n".join(lines)),
        ("blank", f"{lines[0]}\n\n{lines[1]}\n{lines[2]}"),
    ]:
        (tmp_path / name).write_text(text + "\n")
        summary = write_review(
            tmp_path / name,
            tmp_path / f"review-{name}",
            worker_responses=str(job),
            images_dir=SAMPLES / "images",
        )
        reviews[name] = summary.quality
    assert {row["images"] for row in reviews["plain"]} == {3}
    assert reviews["blank"] == reviews["plain"]
    source = GtJobSource(job, manifest=tmp_path / "blank")
    read = [item.image.annotators for item in source.items()]
    assert len(read) == 3 and all(len(annotators) == 5 for annotators in read)


_REVIEW_LOADS = """
import sys
from gt_toolkit.cli import main
code = main(sys.argv[1:])
print("gt_toolkit.evaluation.metrics" in sys.modules)
sys.exit(code)
"""


def test_review_prints_names_without_loading_evaluate(tmp_path: Path) -> None:
    # printable was defined in evaluation/metrics.py (evaluate's scoring, numpy and all), so
    # `gt-convert review` loaded that module only to print a source-ref. It lives in
    # gt_toolkit/text.py now; the old import path still gives the same function.
    from gt_toolkit.evaluation import metrics
    from gt_toolkit.text import printable

    assert metrics.printable is printable
    manifest, _agreement = _write_job(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    cli = ["review", str(manifest), "-o", str(tmp_path / "review"), "--images-dir", str(IMAGES)]
    run = subprocess.run(
        [sys.executable, "-c", _REVIEW_LOADS, *cli],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "False"


# ------------------------------------------------ memory: large images, many images


@pytest.mark.parametrize("fmt", ["JPEG", "JPEG2000", "PNG"])
def test_a_large_image_is_drawn_reduced_with_its_boxes(tmp_path: Path, fmt: str) -> None:
    # Before: decoded and drawn whole (an 80-megapixel JPEG took 980 MB); now decoded at a
    # fraction (a JPEG's draft, a JPEG 2000's reduce; a PNG is shrunk once read) and drawn
    # at 4096 px on its longer side, boxes shrunk with it.
    photo = Image.new("RGB", (6000, 3000), WHITE)
    photo.paste(RED, (3000, 1500, 3600, 1800))
    box = _box("a", 3000, 1500, 600, 300)
    picture = _review_one(tmp_path, photo, box, {"width": 6000, "height": 3000}, format=fmt)
    scale = 4096 / 6000
    assert picture.width == 4096
    x, y = round(3000 * scale), round(1650 * scale)
    assert picture.getpixel((x, y)) == CONSENSUS_COLOUR  # the box's left edge
    assert _reddish(picture.getpixel((x + 20, y)))  # on its object


@pytest.mark.parametrize("resolutions", [1, 2])
def test_a_large_jpeg2000_with_few_resolutions_is_drawn(tmp_path: Path, resolutions: int) -> None:
    # A codestream halves as often as it has decomposition levels (num_resolutions - 1):
    # a 'reduce' past them fails the decode, and the image, readable whole, was drawn as
    # 'image not found' and listed missing (before: both sizes here).
    photo = Image.new("RGB", (17000, 300), WHITE)
    photo.paste(RED, (8000, 100, 9000, 200))
    box = _box("a", 8000, 100, 1000, 100)
    size = {"width": 17000, "height": 300}
    picture = _review_one(
        tmp_path, photo, box, size, format="JPEG2000", num_resolutions=resolutions
    )
    scale = 4096 / 17000
    assert picture.width == 4096
    x, y = round(8000 * scale), round(150 * scale)
    assert picture.getpixel((x, y)) == CONSENSUS_COLOUR
    assert _reddish(picture.getpixel((x + 30, y)))


def test_a_large_sideways_jpeg_is_turned_and_reduced(tmp_path: Path) -> None:
    # The EXIF turn is decided on the stored size, not the reduced one it is decoded at.
    upright = Image.new("RGB", (3000, 6000), WHITE)
    upright.paste(RED, (300, 4500, 1200, 5400))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    box = _box("a", 300, 4500, 900, 900)
    picture = _review_one(
        tmp_path, stored, box, {"width": 3000, "height": 6000}, format="JPEG", exif=exif
    )
    scale = 4096 / 6000
    assert picture.width == round(3000 * scale)
    x, y = round(300 * scale), round(4950 * scale)
    assert picture.getpixel((x, y)) == CONSENSUS_COLOUR
    assert _reddish(picture.getpixel((x + 30, y)))


def test_a_missing_large_image_has_a_reduced_placeholder(tmp_path: Path) -> None:
    # Before: a grey picture of the label's size (10,328 x 7,760 took 980 MB to draw).
    size = {"width": 8192, "height": 300}
    picture = _review_one(tmp_path, None, _box("a", 2000, 100, 400, 100), size)
    assert picture.width == 4096
    assert picture.getpixel((1000, 75)) == CONSENSUS_COLOUR  # the box, halved with it


def test_an_image_past_the_bomb_limit_is_not_decoded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 9,500 x 9,500 is past Pillow's limit (89 million pixels) but under twice it: Pillow
    # opened it with a DecompressionBombWarning only, and the review decoded it whole.
    import warnings

    from gt_toolkit.formats.detection_label import build_detection_label

    images = tmp_path / "images"
    images.mkdir()
    (images / "big.png").write_bytes(huge_png_header(9_500))
    pair = build_detection_label("boxes", [_box("a", 5, 5, 50, 50)], image_size=None, job_name="j")
    manifest = tmp_path / "out.manifest"
    manifest.write_text(json.dumps({"source-ref": "s3://bkt/big.png", **pair}) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        summary = write_review(manifest, tmp_path / "review", images_dir=images)
    assert summary.missing_images == summary.too_large_images == ["s3://bkt/big.png"]
    saved = json.loads((tmp_path / "review" / "review.json").read_text())
    assert saved["too_large_images"] == ["s3://bkt/big.png"]
    assert "decompression-bomb limit" in (tmp_path / "review" / "report.html").read_text()
    cli = ["review", str(manifest), "-o", str(tmp_path / "again"), "--images-dir", str(images)]
    assert main(cli) == 0
    err = capsys.readouterr().err
    assert "1 image(s) past Pillow's decompression-bomb limit, not decoded" in err
    assert "not found" not in err


def test_the_contact_sheet_is_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: one cell per image, 10,000 images made a 1,440 x 235,000 sheet (1.5 GB peak).
    from gt_toolkit.evaluation.review import SHEET_IMAGES
    from gt_toolkit.formats.detection_label import build_detection_label

    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (24, 16), WHITE).save(images / "x.png")
    pair = build_detection_label("boxes", [_box("a", 1, 1, 5, 5)], image_size=None, job_name="j")
    line = json.dumps({"source-ref": "s3://bkt/x.png", **pair})
    manifest = tmp_path / "out.manifest"
    manifest.write_text(f"{line}\n" * (SHEET_IMAGES + 3))
    out = tmp_path / "review"
    cli = ["review", str(manifest), "-o", str(out), "--images-dir", str(images)]
    assert main([*cli, "--min-width", "0"]) == 0
    assert f"shows the {SHEET_IMAGES} lowest-agreement images of {SHEET_IMAGES + 3}" in (
        capsys.readouterr().err
    )
    rows = math.ceil(SHEET_IMAGES / 6)
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size == (6 * 240, rows * (120 + contact_label_height((240, 120))))
    saved = json.loads((out / "review.json").read_text())
    assert saved["contact_sheet_images"] == SHEET_IMAGES
    assert len(saved["pictures"]) == len(list((out / "images").iterdir())) == SHEET_IMAGES + 3
    report = _parse(out / "report.html")
    assert len(report.srcs) == SHEET_IMAGES + 3  # every image is still in the report


def test_the_report_is_written_with_its_pictures_streamed_in(tmp_path: Path) -> None:
    # The page is rendered with a mark per picture and written a piece at a time; what it
    # writes is the page build_review_html makes with the pictures inlined whole.
    from gt_toolkit.evaluation.review import _review_page, _SpooledPage
    from gt_toolkit.storage.image_mirror import data_uri

    pictures = []
    for n, side in enumerate((1, 7, 300)):  # PNGs of sizes that are and are not 3k bytes
        buf = io.BytesIO()
        Image.frombytes("RGB", (side, side), random.Random(n).randbytes(side * side * 3)).save(
            buf, "PNG"
        )
        pictures.append(buf.getvalue())
        (tmp_path / f"{n}.png").write_bytes(buf.getvalue())
    items = [
        ReviewItem(source_ref=f"s3://bkt/{n}<b>gt-review-0-0</b>.jpg", boxes=[]) for n in range(3)
    ]
    page = _SpooledPage([tmp_path / f"{n}.png" for n in range(3)])
    page.text = _review_page(
        items, page.marks, quality=(), colours=None, title="Ground Truth review", notes=()
    )
    written = io.BytesIO()
    page.write(written)
    whole = build_review_html(items, pictures).encode()
    assert written.getvalue() == whole
    assert all(data_uri(p).encode() in whole for p in pictures)


def test_an_answer_without_a_worker_id_has_one_name_in_consolidate_and_review(
    tmp_path: Path,
) -> None:
    """a551366 named such answers by their manifest line, which is the job manifest's in
    consolidate and the output manifest's in review: after a blank line in the job's
    manifest, one unknown answerer had two names in the two quality tables."""
    from gt_toolkit.consolidation.reconsolidate import reconsolidate
    from gt_toolkit.formats.crowd.sources import open_crowd_source

    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    manifest = job / "manifests" / "output" / "output.manifest"
    manifest.write_text("\n" + manifest.read_text())  # datasetObjectIds do not count it
    path = next((job / "annotations" / "worker-response" / "iteration-1" / "0").iterdir())
    doc = json.loads(path.read_text())
    doc["answers"][0]["workerId"] = None
    path.write_text(json.dumps(doc))
    out = tmp_path / "out.manifest"
    with open_crowd_source(job) as source:
        report = reconsolidate(source, out, worker_model=None)
    assert report.complete
    table = json.loads((tmp_path / "out.manifest.worker-quality.json").read_text())
    consolidated = {row["worker_id"] for row in table if row["worker_id"].startswith("anon")}
    summary = write_review(out, tmp_path / "review", worker_responses=str(job), images_dir=IMAGES)
    reviewed = {row["worker_id"] for row in summary.quality if row["worker_id"].startswith("anon")}
    assert len(consolidated) == 1 and reviewed == consolidated


def test_a_picture_taller_than_a_jpeg_can_be_is_inlined_as_its_png(tmp_path: Path) -> None:
    """A JPEG holds at most 65,500 pixels a side: a 2 x 4,000 strip enlarged for
    ``--min-width 1000`` (to 45 x 89,443, within the pixel budget) made review exit 1
    ("OSError: broken data stream when writing image file") after reading everything,
    where its PNG was there to inline."""
    strip = Image.new("RGB", (2, 4_000), WHITE)
    picture = _review_one(tmp_path, strip, _box("a", 0, 3_000, 2, 30), min_width=1000)
    assert picture.height > 65_500
    (src,) = _parse(tmp_path / "review" / "report.html").srcs
    inline = _inlined(src)
    assert inline.format == "PNG" and inline.size == picture.size


def _files_and_links(root: Path) -> dict[str, bytes | str]:
    """Every file under ``root`` by its bytes, and every link by where it leads."""
    return {
        p.relative_to(root).as_posix(): str(p.readlink()) if p.is_symlink() else p.read_bytes()
        for p in root.rglob("*")
        if p.is_symlink() or p.is_file()
    }


@pytest.mark.parametrize(
    "leads", ["to an image it draws", "to another picture", "into a missing folder"]
)
def test_a_review_picture_that_is_a_link_it_cannot_follow_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], leads: str
) -> None:
    """A rerun writes each picture where its name's link leads (as every output). One that
    led to an image the review reads overwrote that input image with a PNG picture, and
    one that led to another picture of the run left one picture in both places, exit 0;
    one that led nowhere failed the run after the pictures were drawn. Each is refused in
    one line, and nothing is written."""
    images = tmp_path / "images"
    shutil.copytree(IMAGES, images)
    out = tmp_path / "review"
    argv = ["review", str(SAMPLES / "truth.manifest"), "-o", str(out), "--images-dir", str(images)]
    assert main(argv) == 0
    pictures = sorted((out / "images").iterdir())
    link = pictures[2]
    to = {
        "to an image it draws": images / "img_005.jpg",
        "to another picture": pictures[0],
        "into a missing folder": tmp_path / "gone" / "x.png",
    }[leads]
    link.unlink()
    link.symlink_to(to)
    said = {
        "to an image it draws": f"{link} (a link to {to}): the run reads that file",
        "to another picture": f"{link} (a link to {to}): the run writes {to} too",
        "into a missing folder": f"{link}: it is a link to {to}, whose folder {to.parent} does",
    }[leads]
    before = _files_and_links(tmp_path)
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"cannot write {said}" in err and err.count("\n") == 1, err
    assert _files_and_links(tmp_path) == before


def test_a_review_picture_that_is_a_link_to_a_file_not_there_yet_is_written_through(
    tmp_path: Path,
) -> None:
    """A picture whose name is a link to a file not there yet, in a folder that is: refused
    before ("it is a link to shared/0003.png, which does not exist"), every rerun. The
    picture is written where the link leads now, creating that file; the link stays."""
    images = tmp_path / "images"
    shutil.copytree(IMAGES, images)
    out = tmp_path / "review"
    argv = ["review", str(SAMPLES / "truth.manifest"), "-o", str(out), "--images-dir", str(images)]
    assert main(argv) == 0
    link = sorted((out / "images").iterdir())[2]
    picture = link.read_bytes()
    shared = tmp_path / "shared"
    shared.mkdir()
    link.unlink()
    link.symlink_to(Path("..", "..", "shared", link.name))  # relative
    for _ in range(2):  # the link to nowhere, then the file it created
        assert main(argv) == 0
        assert link.is_symlink() and (shared / link.name).read_bytes() == picture
    assert [p.name for p in shared.iterdir()] == [link.name]
    assert not [p for p in tmp_path.rglob("*") if ".part" in p.name]
