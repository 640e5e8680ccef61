"""``from-yolo``: a local YOLO dataset folder as a Ground Truth prior label.

Three layouts are read, told apart per image:

* Ultralytics: ``images/<split>/x.jpg`` with ``labels/<split>/x.txt``, or the
  ``<split>/images`` + ``<split>/labels`` layout Roboflow exports; a label file is the image
  path with its last ``images`` folder read as ``labels``;
* Darknet (``obj.names``, ``obj_train_data/``): the label file beside its image.

Class names come from ``data.yaml`` (or another ``.yaml`` at the top with ``names``, as a
list or an ``id: name`` map), else ``obj.names``, else ``classes.txt``. An image without a
label file is a negative (empty) image, as YOLO trainers read it. YOLO coordinates are
normalised, so every image is opened for its size. File stems may contain dots
(``x_ver1.0_640.jpg``): only the extension is replaced.

Lines that cannot be boxes are rejects with ``file:line``: a class id that is negative, not
an integer or not in the names; coordinates outside [0, 1], not finite or with no area; and
segmentation (polygon) lines, unless ``polygon_boxes`` takes their bounding box.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from pathlib import Path

import orjson

from gt_toolkit.convert.options import ConversionResult, ConvertOptions
from gt_toolkit.convert.prior_label import PriorManifest, source_ref_for, unique_labels
from gt_toolkit.convert.staging import StagedOutput
from gt_toolkit.errors import ConversionError, RejectedRecordError
from gt_toolkit.storage.files import Location
from gt_toolkit.storage.image_mirror import read_image_size
from gt_toolkit.storage.s3 import is_s3_uri
from gt_toolkit.text import not_utf8_at
from gt_toolkit.types import ConsolidatedBox, ImageSize

__all__ = ["DATASET_READS", "from_yolo", "read_yolo_names"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
_LABELS = ".txt"
_YAML = (".yaml", ".yml")
_NAMES_FILES = ("obj.names", "classes.txt")
_SOURCES = "sources.jsonl"
# how the name of every file the reader takes from a dataset folder ends: a file put there
# under one of them changes the next run's images, labels or class names
DATASET_READS = (*sorted(IMAGE_EXTENSIONS), _LABELS, *_YAML, ".names", _SOURCES)
_CLASS_ID = re.compile(r"\d+")


def from_yolo(source: Location, out: StagedOutput, options: ConvertOptions) -> ConversionResult:
    """Write a manifest with one line per image of the dataset and its boxes as a prior label."""
    text = os.fspath(source)
    root = Path(text)
    if is_s3_uri(text) or not root.is_dir():
        raise ConversionError(f"{text}: from-yolo reads a local YOLO dataset folder")
    labels = unique_labels(read_yolo_names(root), f"{root}: class names")
    refs = _sources(root)
    touched = 0
    with PriorManifest("from-yolo", out, options, labels) as prior:
        images, orphans = _pairs(root)
        for orphan in orphans:
            prior.reject(_shown(orphan), "file", "no-image", "no image for this label file", "")
        for image, label_file in images:
            if not all(_utf8(p) for p in (image, label_file) if p is not None):
                detail = "the file name is not UTF-8, so no manifest line can name it"
                prior.reject(_shown(image), "file", "name-not-utf8", detail, "")
                continue
            size = read_image_size(image)
            if size is None:
                prior.reject(str(image), "file", "unreadable-image", "not an image", "")
                continue
            width, height = size["width"], size["height"]
            boxes: list[ConsolidatedBox] = []
            if label_file is not None:
                boxes, bad = _read_label_file(label_file, width, height, labels, options, prior)
                touched += bad
            # an image whose label file was removed (now a negative) keeps the source-ref that
            # sources.jsonl gives the label path the yolo target wrote for it
            where = label_file or next(_label_candidates(root, image))
            ref = refs.get(where.relative_to(root).as_posix()) or source_ref_for(
                image.relative_to(root).as_posix(), options.image_prefix, str(image)
            )
            sized: ImageSize = {"width": width, "height": height, "depth": 3}
            prior.add(ref, boxes, sized, file=str(image), where="file")
    return prior.result(names=labels, images_with_rejected_boxes=touched)


def _utf8(path: Path) -> bool:
    """Whether a file's name is text: one that is not UTF-8 decodes to surrogates."""
    return not_utf8_at(str(path)) is None


def _shown(path: Path) -> str:
    """A file's name as rejects can hold it, its bytes that are not UTF-8 as escapes.

    The rejects file and summary are JSON text: a name of surrogates stopped the run with
    a traceback writing them.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def read_yolo_names(root: Path) -> list[str]:
    """The class names of a YOLO dataset folder (see the module docstring for the order)."""
    for yaml_file in (p for ext in _YAML for p in sorted(root.glob(f"*{ext}"))):
        names = _yaml_names(yaml_file)
        if names is not None:
            return names
    for name in _NAMES_FILES:
        if (root / name).is_file():
            return _names_file(root / name)
    raise ConversionError(f"{root}: no class names (data.yaml 'names', obj.names or classes.txt)")


def _yaml_names(path: Path) -> list[str] | None:
    import yaml  # only this target reads YAML

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConversionError(f"{path}: not valid YAML ({exc})") from exc
    names = doc.get("names") if isinstance(doc, dict) else None
    if names is None:
        return None
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict) and all(k.__class__ is int for k in names):
        if sorted(names) != list(range(len(names))):
            raise ConversionError(f"{path}: 'names' must map every id 0..{len(names) - 1}")
        return [str(names[i]) for i in range(len(names))]
    raise ConversionError(f"{path}: 'names' must be a list or an 'id: name' map")


def _names_file(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not all(line.strip() for line in lines):
        raise ConversionError(f"{path}: a blank line would shift every class id after it")
    return lines


def _sources(root: Path) -> dict[str, str]:
    """``sources.jsonl`` (written by the ``yolo`` target): label file -> source-ref."""
    path = root / _SOURCES
    if not path.is_file():
        return {}
    refs = {}
    for n, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            item = orjson.loads(raw)
            refs[str(item["label"])] = str(item["source-ref"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConversionError(f"{path}:{n}: not a sources line ({exc})") from exc
    return refs


def _pairs(root: Path) -> tuple[list[tuple[Path, Path | None]], list[Path]]:
    """Every image with its label file (or ``None``), and the label files with no image."""
    images = sorted(
        p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )
    claimed: set[Path] = set()
    pairs: list[tuple[Path, Path | None]] = []
    folders = set()
    for image in images:
        folders.add(image.parent)
        label = next((c for c in _label_candidates(root, image) if c.is_file()), None)
        if label is not None:
            claimed.add(label)
        pairs.append((image, label))
    orphans = [
        p
        for p in sorted(root.rglob(f"*{_LABELS}"))
        if p not in claimed and ("labels" in p.relative_to(root).parts[:-1] or p.parent in folders)
    ]
    return pairs, orphans


def _label_candidates(root: Path, image: Path) -> Iterator[Path]:
    parts = list(image.relative_to(root).parts)
    name = image.with_suffix(_LABELS).name
    if "images" in parts[:-1]:
        i = len(parts) - 2 - parts[-2::-1].index("images")
        yield root.joinpath(*parts[:i], "labels", *parts[i + 1 : -1], name)
    yield image.with_suffix(_LABELS)


def _read_label_file(
    path: Path,
    width: int,
    height: int,
    labels: list[str],
    options: ConvertOptions,
    prior: PriorManifest,
) -> tuple[list[ConsolidatedBox], int]:
    """The boxes of one label file, and 1 when one of its lines was rejected (else 0)."""
    boxes: list[ConsolidatedBox] = []
    bad = 0
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            cls, (cx, cy, w, h), conf = _parse_line(text.split(), len(labels), options)
        except RejectedRecordError as rej:
            prior.reject(str(path), str(n), rej.reason, rej.detail, text)
            bad = 1
            continue
        x0, y0 = max(0.0, cx - w / 2), max(0.0, cy - h / 2)
        x1, y1 = min(1.0, cx + w / 2), min(1.0, cy + h / 2)
        if (x0, y0, x1, y1) != (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2):
            prior.stats.clipped_boxes += 1  # centre and size in [0, 1], a corner outside
        boxes.append(
            ConsolidatedBox(
                label=labels[cls],
                # YOLO keeps 6 decimals of the image size: 3 in pixels lose nothing it had
                left=round(x0 * width, 3),
                top=round(y0 * height, 3),
                width=round((x1 - x0) * width, 3),
                height=round((y1 - y0) * height, 3),
                confidence=conf,
            )
        )
    return boxes, bad


def _parse_line(
    parts: list[str], n_classes: int, options: ConvertOptions
) -> tuple[int, tuple[float, float, float, float], float]:
    """``(class, (cx, cy, w, h), confidence)`` of one label line."""
    if not _CLASS_ID.fullmatch(parts[0]):
        raise RejectedRecordError(
            "invalid-class-id", f"class id {parts[0]!r:.40} is not an integer >= 0"
        )
    cls = int(parts[0])
    if cls >= n_classes:
        raise RejectedRecordError(
            "unknown-class-id", f"class id {cls} is not in the {n_classes} names"
        )
    try:
        values = [float(v) for v in parts[1:]]
    except ValueError as exc:
        raise RejectedRecordError("invalid-box", f"not a number: {exc}") from None
    conf = 1.0
    if len(values) in (4, 5):
        box = (values[0], values[1], values[2], values[3])
        conf = values[4] if len(values) == 5 else 1.0
    elif len(values) >= 6 and options.polygon_boxes:
        box, conf = _polygon_box(values)
    elif len(values) >= 6:
        raise RejectedRecordError(
            "polygon-line",
            f"a YOLO segmentation line ({len(values) // 2} points); pass --polygon-boxes to "
            "take its bounding box",
        )
    else:
        raise RejectedRecordError("invalid-box", f"{len(values)} numbers after the class, need 4")
    problem = _box_problem(box, conf)
    if problem:
        raise RejectedRecordError("invalid-box", problem)
    return cls, box, conf


def _polygon_box(values: list[float]) -> tuple[tuple[float, float, float, float], float]:
    """The bounding box (cx, cy, w, h) of ``x1 y1 x2 y2 ...`` (an odd count ends in a score)."""
    conf = values.pop() if len(values) % 2 else 1.0
    xs, ys = values[0::2], values[1::2]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    return ((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0), conf


def _box_problem(box: tuple[float, float, float, float], conf: float) -> str | None:
    w, h = box[2], box[3]
    if not all(map(math.isfinite, (*box, conf))):
        return "not finite"
    if w <= 0 or h <= 0:
        return f"no area (width {w}, height {h})"
    if not all(0 <= v <= 1 for v in box):
        return f"normalised values {list(box)} must lie within [0, 1]"
    if not 0 <= conf <= 1:
        return f"confidence {conf} is not in [0, 1]"
    return None
