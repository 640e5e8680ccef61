"""Pre-flight for the channels script mode and JumpStart read: class folders, detection data.

The augmented-manifest pre-flight (:mod:`gt_toolkit.sagemaker.preflight`) reads manifests; these
two read folders, local or on S3, before a job is paid for (``preflight_training_request``
calls them for script-mode and JumpStart requests):

- :func:`preflight_class_folders`: class folders that are empty, hold files the trainer skips
  (non-images, nested folders, files outside any class), or differ between train and
  validation. The rule is the training script's own
  (``contract.check_class_folders``), so the pre-flight and the job cannot disagree.
- :func:`preflight_jumpstart_detection`: ``images/`` plus ``annotations.json`` as
  ``gt-convert jumpstart-od`` writes it: annotations naming images that are not there, boxes
  that are not ``[xmin, ymin, xmax, ymax]`` inside the image, and class ids that are not dense
  (JumpStart's detectors count classes as ``0..K-1``).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from gt_toolkit.errors import NoMatchingObjectsError, StorageError
from gt_toolkit.sagemaker.preflight_report import Finding, PreflightReport, Severity
from gt_toolkit.sagemaker.scripts.pytorch_classifier import contract
from gt_toolkit.storage.files import Location, join_location, read_bytes
from gt_toolkit.storage.s3 import S3Store, is_s3_uri, parse_s3_uri

__all__ = ["list_folder", "preflight_class_folders", "preflight_jumpstart_detection"]

_SHOWN = 5


def list_folder(location: Location, *, store: S3Store | None = None) -> list[str]:
    """Every file under a local folder or ``s3://`` prefix, relative to it (sorted).

    Raises:
        StorageError: the folder does not exist, or the bucket cannot be listed.
    """
    text = os.fspath(location)
    if not is_s3_uri(text):
        if not Path(text).is_dir():
            raise StorageError(f"{text} is not a folder")
        return contract.list_channel(text)
    prefix = text if text.endswith("/") else text + "/"
    _, key_prefix = parse_s3_uri(prefix, require_key=False)
    try:
        objects = (store or S3Store()).iter_objects(prefix, extensions=None)
        return sorted(obj.key[len(key_prefix) :] for obj in objects)
    except NoMatchingObjectsError:
        return []


def _shown(items: list[Any]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(map(str, items[:_SHOWN])) + more


def preflight_class_folders(
    train: Location, validation: Location | None = None, *, store: S3Store | None = None
) -> PreflightReport:
    """Check ``train/`` (and ``validation/``) class folders; counts are images per channel."""
    report = PreflightReport()
    channels: dict[str, list[str]] = {}
    for name, where in (("train", train), ("validation", validation)):
        if where is None:
            continue
        try:
            channels[name] = list_folder(where, store=store)
        except StorageError as exc:
            report.findings.append(Finding(Severity.ERROR, str(exc), name))
            return report
        if not channels[name]:
            report.findings.append(Finding(Severity.ERROR, f"nothing under {where}", name))
    check = contract.check_class_folders(channels)
    report.findings += [Finding(Severity.ERROR, message) for message in check.errors]
    report.findings += [Finding(Severity.WARNING, message) for message in check.warnings]
    report.counts = check.counts
    report.class_ids = set(range(len(check.classes)))
    return report


def _box_problem(bbox: object, size: tuple[float, float] | None) -> tuple[Severity, str] | None:
    """What is wrong with one ``[xmin, ymin, xmax, ymax]`` box, if anything."""
    if not (
        isinstance(bbox, list)
        and len(bbox) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
        and all(math.isfinite(v) for v in bbox)
    ):
        return Severity.ERROR, f"bbox must be 4 numbers [xmin, ymin, xmax, ymax], got {bbox}"
    x0, y0, x1, y1 = bbox
    if x1 <= x0 or y1 <= y0:
        return Severity.ERROR, f"bbox {bbox} has no area (is it COCO's [x, y, w, h]?)"
    if size is not None and (x0 < 0 or y0 < 0 or x1 > size[0] or y1 > size[1]):
        return Severity.WARNING, f"bbox {bbox} reaches outside the {size[0]:g}x{size[1]:g} image"
    return None


def _images(
    document: Mapping[str, Any], on_disk: set[str], report: PreflightReport
) -> dict[Any, tuple[float, float] | None]:
    """Image id -> size for every ``images`` entry; errors for missing files and bad entries."""
    sizes: dict[Any, tuple[float, float] | None] = {}
    missing, duplicates = [], []
    for index, image in enumerate(document.get("images") or []):
        if not isinstance(image, Mapping) or "id" not in image or "file_name" not in image:
            report.findings.append(
                Finding(Severity.ERROR, f"images[{index}] needs id and file_name: {image}")
            )
            continue
        if image["id"] in sizes:
            duplicates.append(image["id"])
        width, height = image.get("width"), image.get("height")
        sizes[image["id"]] = (
            (float(width), float(height))
            if isinstance(width, int | float)
            and isinstance(height, int | float)
            and width > 0
            and height > 0
            else None
        )
        if str(image["file_name"]) not in on_disk:
            missing.append(image["file_name"])
    if missing:
        report.findings.append(
            Finding(
                Severity.ERROR,
                f"annotations.json names {len(missing)} image(s) not in images/: {_shown(missing)}",
            )
        )
    if duplicates:
        report.findings.append(Finding(Severity.ERROR, f"image ids repeat: {_shown(duplicates)}"))
    return sizes


def _annotations(
    document: Mapping[str, Any],
    sizes: Mapping[Any, tuple[float, float] | None],
    report: PreflightReport,
) -> Counter[Any]:
    """Boxes per image id; findings for unknown image ids, bad boxes and non-dense class ids."""
    boxes: Counter[Any] = Counter()
    problems: dict[tuple[Severity, str], list[int]] = {}
    for index, annotation in enumerate(document.get("annotations") or []):
        if not isinstance(annotation, Mapping):
            problems.setdefault((Severity.ERROR, "is not an object"), []).append(index)
            continue
        image_id, category = annotation.get("image_id"), annotation.get("category_id")
        if image_id not in sizes:
            problems.setdefault(
                (Severity.ERROR, f"names image id {image_id!r}, which is not in images"), []
            ).append(index)
            continue
        boxes[image_id] += 1
        if isinstance(category, bool) or not isinstance(category, int) or category < 0:
            problems.setdefault(
                (Severity.ERROR, f"has category_id {category!r}, not an id >= 0"), []
            ).append(index)
        else:
            report.class_ids.add(category)
        found = _box_problem(annotation.get("bbox"), sizes[image_id])
        if found is not None:
            problems.setdefault(found, []).append(index)
    for (severity, message), where in problems.items():
        report.findings.append(Finding(severity, f"annotations[{_shown(where)}] {message}"))
    expected = set(range(len(report.class_ids)))
    if report.class_ids and report.class_ids != expected:
        report.findings.append(
            Finding(
                Severity.ERROR,
                f"class ids are not dense: the annotations use {sorted(report.class_ids)}, "
                f"JumpStart counts classes as 0..{len(report.class_ids) - 1} "
                f"(missing {sorted(expected - report.class_ids)})",
            )
        )
    report.max_boxes = max(boxes.values(), default=0)
    return boxes


def preflight_jumpstart_detection(
    root: Location, *, store: S3Store | None = None
) -> PreflightReport:
    """Check ``root/images/`` and ``root/annotations.json`` (JumpStart object detection).

    Counts are ``images`` (entries in annotations.json) and ``annotations`` (boxes);
    ``class_ids`` and ``max_boxes`` are filled as for the augmented-manifest pre-flight.
    """
    report = PreflightReport()
    try:
        listing = list_folder(root, store=store)
    except StorageError as exc:
        report.findings.append(Finding(Severity.ERROR, str(exc)))
        return report
    if "annotations.json" not in listing:
        report.findings.append(
            Finding(Severity.ERROR, f"{root} has no annotations.json (gt-convert jumpstart-od)")
        )
        return report
    try:
        document = orjson.loads(read_bytes(join_location(root, "annotations.json"), store=store))
    except orjson.JSONDecodeError as exc:
        report.findings.append(Finding(Severity.ERROR, f"annotations.json is not JSON: {exc}"))
        return report
    if not isinstance(document, Mapping):
        report.findings.append(Finding(Severity.ERROR, "annotations.json is not a JSON object"))
        return report
    on_disk = {p.removeprefix("images/") for p in listing if p.startswith("images/")}
    sizes = _images(document, on_disk, report)
    boxes = _annotations(document, sizes, report)
    listed = {
        str(i.get("file_name")) for i in document.get("images") or [] if isinstance(i, Mapping)
    }
    unused = sorted(on_disk - listed)
    if unused:
        report.findings.append(
            Finding(
                Severity.WARNING,
                f"{len(unused)} file(s) in images/ are not in annotations.json: {_shown(unused)}",
            )
        )
    bare = [image_id for image_id in sizes if not boxes[image_id]]
    if bare:
        report.findings.append(
            Finding(Severity.WARNING, f"{len(bare)} image(s) have no box: ids {_shown(bare)}")
        )
    report.counts = {"images": len(sizes), "annotations": sum(boxes.values())}
    return report
