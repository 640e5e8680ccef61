"""Pre-flight check of augmented-manifest training channels, before any GPU time is paid for.

Every defect found here is one that otherwise surfaces minutes into a paid training job as
"Got empty batch from pipe", "Invalid parameter value 'label_width'" or "Expected number of
batches … did not match" (``docs/ground-truth-formats.md`` §6, §8 pitfalls 1–7, 20). The
check streams each channel once, in constant memory apart from the per-bucket cache, and
reports errors and warnings with the channel and line number.

Bucket regions are looked up with ``get_bucket_location`` through an injected S3 client (one
call per distinct bucket), so tests run against moto's server and users against AWS.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from gt_toolkit.errors import GtToolkitError, StorageError
from gt_toolkit.formats.detection_label import label_image_size, parse_annotation, parse_class_id
from gt_toolkit.formats.manifest import ManifestLine, RejectedLine, parse_manifest_lines
from gt_toolkit.formats.training_channels import min_label_width
from gt_toolkit.sagemaker.job_kinds import JUMPSTART_MODEL_ID_TAG, Algorithm, algorithm_of, job_kind
from gt_toolkit.sagemaker.jumpstart import TASK_LAYOUTS, model_task
from gt_toolkit.sagemaker.preflight_data import (
    preflight_class_folders,
    preflight_jumpstart_detection,
)
from gt_toolkit.sagemaker.preflight_report import Finding, PreflightReport, Severity
from gt_toolkit.sagemaker.training import channel_problems
from gt_toolkit.storage.files import Location, iter_raw_lines
from gt_toolkit.storage.s3 import S3Store, is_s3_uri, parse_s3_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "bucket_region",
    "preflight_channels",
    "preflight_training_request",
]

_ECR_REGION_RE: Final = re.compile(r"\.dkr\.ecr\.([a-z0-9\-]+)\.amazonaws\.com")
_MAX_FINDINGS_PER_KIND: Final = 20


class _Collector:
    """Adds findings, keeping at most a few of each repeated kind so reports stay readable."""

    def __init__(self, report: PreflightReport) -> None:
        self.report = report
        self.seen: Counter[str] = Counter()

    def add(
        self,
        severity: Severity,
        message: str,
        *,
        channel: str | None = None,
        line_no: int | None = None,
        kind: str | None = None,
    ) -> None:
        key = kind or message
        self.seen[key] += 1
        if self.seen[key] > _MAX_FINDINGS_PER_KIND:
            self.report.suppressed[key] += 1
            return
        self.report.findings.append(Finding(severity, message, channel, line_no))

    def error(self, message: str, **where: Any) -> None:
        self.add(Severity.ERROR, message, **where)

    def warn(self, message: str, **where: Any) -> None:
        self.add(Severity.WARNING, message, **where)


def bucket_region(client: S3Client, bucket: str) -> str:
    """A bucket's region by ``get_bucket_location`` (``None``: us-east-1, ``EU``: eu-west-1).

    Raises:
        StorageError: the bucket does not exist or cannot be asked.
    """
    try:
        answer = client.get_bucket_location(Bucket=bucket)
    except (ClientError, BotoCoreError) as exc:
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
        raise StorageError(f"cannot get the region of bucket {bucket}: {code or exc}") from exc
    location = answer.get("LocationConstraint")
    if not location:
        return "us-east-1"
    if location == "EU":
        return "eu-west-1"
    return str(location)


def _class_ids(
    value: Any, algorithm: Algorithm, multi_label: bool
) -> tuple[list[int] | None, int, str | None]:
    """``(class ids, box count, problem)`` of one label value; ids ``None`` when unreadable.

    Boxes and class ids are read by the formats' one check of them
    (:func:`~gt_toolkit.formats.detection_label.parse_annotation`).
    """
    if algorithm == "object-detection":
        if not isinstance(value, Mapping):
            return None, 0, f"label is a {type(value).__name__}, not an object-detection label"
        annotations = value.get("annotations")
        if not isinstance(annotations, list):
            return None, 0, "label has no 'annotations' list"
        ids: list[int] = []
        for i, ann in enumerate(annotations):
            try:
                class_id, _left, _top, width, height = parse_annotation(ann)
            except ValueError as exc:
                return None, 0, f"annotation {i} is malformed: {exc}"
            ids.append(class_id)
            if width <= 0 or height <= 0:
                return ids, len(annotations), f"annotation {i} has no area ({width} x {height})"
        return ids, len(annotations), None
    if multi_label and not isinstance(value, list):
        return None, 0, f"multi-label value is a {type(value).__name__}, not a list of class ids"
    try:
        return [parse_class_id(v) for v in (value if multi_label else [value])], 0, None
    except ValueError as exc:
        return None, 0, str(exc)


def _boxes_outside(value: Mapping[str, Any]) -> bool:
    """True when a box leaves the image by more than a pixel (the image size is known)."""
    try:
        size = label_image_size(value.get("image_size"))
        boxes = [parse_annotation(a)[1:] for a in value.get("annotations") or []]
    except (ValueError, TypeError):
        return False
    if size is None:
        return False
    width, height = size["width"], size["height"]
    return any(
        left < -1 or top < -1 or left + w > width + 1 or top + h > height + 1
        for left, top, w, h in boxes
    )


def preflight_channels(
    channels: Mapping[str, Location],
    *,
    label_attribute: str,
    algorithm: Algorithm = "object-detection",
    class_map: Mapping[str, str] | Sequence[str] | None = None,
    region: str | None = None,
    s3_client: S3Client | None = None,
    store: S3Store | None = None,
    num_training_samples: int | None = None,
    num_classes: int | None = None,
    label_width: int | None = None,
    multi_label: bool = False,
    allow_empty_images: bool = False,
    request: Mapping[str, Any] | None = None,
) -> PreflightReport:
    """Check augmented-manifest channels (``{"train": uri, "validation": uri}``) line by line.

    Finds: lines missing ``source-ref`` or the label (failed objects), unreadable lines and
    labels, ``-ref`` label attributes (video frames; not trainable), empty images, class ids not
    contiguous from 0 or absent from ``class_map``, boxes without area or outside the image,
    duplicate images, images in buckets of another region than ``region`` (needs
    ``s3_client``), and, against the given hyperparameter values, a wrong
    ``num_training_samples`` or ``num_classes`` or a ``label_width`` below 2 + 5 x max boxes.
    With ``request``, also the channel settings of
    :func:`gt_toolkit.sagemaker.training.channel_problems`.
    """
    report = PreflightReport()
    out = _Collector(report)
    _check_names(out, label_attribute, channels)
    scan = _Scan(out, label_attribute, algorithm, multi_label, allow_empty_images)
    for channel, location in channels.items():
        _scan_channel(scan, channel, location, store)
    report.class_ids = set(scan.per_class)
    _check_classes(out, scan.per_class, _class_names(class_map), num_classes, algorithm)
    _check_hyperparameters(out, report, algorithm, num_training_samples, label_width)
    if region is not None and s3_client is not None:
        _check_regions(out, report, scan.buckets, region, s3_client)
        _check_job_bucket_regions(out, report, channels, request, region, s3_client)
    if request is not None:
        _check_request(out, request, label_attribute, algorithm)
    return report


def _check_names(out: _Collector, label_attribute: str, channels: Mapping[str, Location]) -> None:
    """The label attribute is a trainable label key; both channels are there."""
    if label_attribute.endswith("-ref"):
        out.error(
            f"label attribute {label_attribute!r} is a -ref (video-frame or 3D output, a pointer "
            "to a sequence file): built-in algorithms cannot train on it"
        )
    if label_attribute.endswith("-metadata"):
        out.error(f"label attribute {label_attribute!r} is the metadata key; use the label key")
    for required in ("train", "validation"):
        if required not in channels:
            out.error(f"no {required!r} channel given; training needs train and validation")


@dataclass(slots=True)
class _Scan:
    """The settings every line is checked with, and what the lines so far have shown."""

    out: _Collector
    label_attribute: str
    algorithm: Algorithm
    multi_label: bool
    allow_empty_images: bool
    buckets: dict[str, tuple[str, int]] = field(default_factory=dict)  # first (channel, line)
    seen_refs: dict[str, tuple[str, int]] = field(default_factory=dict)
    per_class: Counter[int] = field(default_factory=Counter)


def _scan_channel(scan: _Scan, channel: str, location: Location, store: S3Store | None) -> None:
    """Check every line of one channel; count the usable ones and the blank ones."""
    out = scan.out
    count = 0
    blank: list[int] = []
    try:
        items: Iterable[ManifestLine | RejectedLine] = parse_manifest_lines(
            iter_raw_lines(location, store=store),
            source=str(location),
            require_source=False,
            blank=blank,
        )
        for item in items:
            if isinstance(item, RejectedLine):
                out.error(
                    f"unreadable line ({item.reason.value}: {item.detail})",
                    channel=channel,
                    line_no=item.line_no,
                    kind="unreadable",
                )
                continue
            count += 1
            _check_line(item, channel, scan)
    except GtToolkitError as exc:
        out.error(f"cannot read {location}: {exc}", channel=channel)
    out.report.counts[channel] = count
    if blank:
        out.warn(
            f"{len(blank)} blank line(s) (first at line {blank[0]}); they are not samples, "
            "so do not count them in num_training_samples",
            channel=channel,
        )
    if count == 0:
        out.error("the channel has no usable lines", channel=channel)


def _check_hyperparameters(
    out: _Collector,
    report: PreflightReport,
    algorithm: Algorithm,
    num_training_samples: int | None,
    label_width: int | None,
) -> None:
    """The counted train lines and the busiest image against the hyperparameters given."""
    counted = report.counts.get("train")
    if num_training_samples is not None and counted is not None and num_training_samples != counted:
        out.error(
            f"num_training_samples is {num_training_samples}, but the train channel has "
            f"{counted} lines"
        )
    if algorithm == "object-detection" and report.max_boxes:
        need = min_label_width(report.max_boxes)
        if label_width is not None and label_width < need:
            out.error(
                f"label_width {label_width} is too small: the busiest image has "
                f"{report.max_boxes} boxes, which needs >= 2 + 5 x {report.max_boxes} = {need}"
            )


def _class_names(class_map: Mapping[str, str] | Sequence[str] | None) -> dict[int, str] | None:
    if class_map is None:
        return None
    if isinstance(class_map, Mapping):
        return {int(k): str(v) for k, v in class_map.items()}
    return dict(enumerate(class_map))


def _check_line(item: ManifestLine, channel: str, scan: _Scan) -> None:
    """One manifest line: its image, its label, its classes and boxes."""
    out, label_attribute = scan.out, scan.label_attribute
    data, line_no = item.data, item.line_no
    where = {"channel": channel, "line_no": line_no}
    ref = data.get("source-ref")
    if not isinstance(ref, str):
        out.error(
            "no 'source-ref': built-in algorithms stream the image first", **where, kind="no-source"
        )
    else:
        try:
            bucket, _ = parse_s3_uri(ref)
            scan.buckets.setdefault(bucket, (channel, line_no))
        except GtToolkitError:
            out.error(f"source-ref {ref[:80]!r} is not an s3:// URI", **where, kind="bad-ref")
        if ref in scan.seen_refs:
            first = scan.seen_refs[ref]
            out.warn(
                f"image {ref} already appears at {first[0]}:{first[1]} (duplicate, or in both "
                "train and validation)",
                **where,
                kind="duplicate",
            )
        else:
            scan.seen_refs[ref] = (channel, line_no)
    meta = data.get(f"{label_attribute}-metadata")
    reason = meta.get("failure-reason") if isinstance(meta, Mapping) else None
    if label_attribute not in data or reason is not None:  # a failed object's label is empty
        detail = f" (failed object: {str(reason)[:100]})" if reason else ""
        out.error(f"no {label_attribute!r} label{detail}", **where, kind="no-label")
        return
    ids, boxes, problem = _class_ids(data[label_attribute], scan.algorithm, scan.multi_label)
    if problem is not None:
        out.error(problem, **where, kind="bad-label")
    if ids is None:
        return
    scan.per_class.update(ids)
    if scan.algorithm == "object-detection":
        out.report.max_boxes = max(out.report.max_boxes, boxes)
        if boxes == 0:
            message = "empty image (no boxes): object detection drops batches over it"
            if scan.allow_empty_images:
                out.warn(message, **where, kind="empty")
            else:
                out.error(message + "; filter it out", **where, kind="empty")
        elif _boxes_outside(data[label_attribute]):
            out.warn("a box extends outside the image", **where, kind="outside")


def _check_classes(
    out: _Collector,
    per_class: Counter[int],
    names: dict[int, str] | None,
    num_classes: int | None,
    algorithm: Algorithm,
) -> None:
    if not per_class:
        return
    ids = sorted(per_class)
    if ids[0] < 0:
        out.error(f"negative class ids: {[i for i in ids if i < 0]}")
    missing = sorted(set(range(max(ids) + 1)) - set(ids))
    if missing:
        out.error(
            f"class ids are not contiguous from 0: {missing} never appear (seen {ids}); "
            "remap them, or the model learns classes with no examples"
        )
    if names is not None:
        unknown = [i for i in ids if i not in names]
        if unknown:
            out.error(f"class ids {unknown} are not in the class map {names}")
    expected = max(ids) + 1
    if num_classes is not None and num_classes != expected:
        out.error(f"num_classes is {num_classes}, but the labels use ids 0..{max(ids)}")
    if len(per_class) > 1:
        rare = [i for i, n in per_class.items() if n * 20 < max(per_class.values())]
        if rare:
            what = "boxes" if algorithm == "object-detection" else "images"
            out.warn(f"classes {sorted(rare)} have under 5% of the {what} of the largest class")


def _check_regions(
    out: _Collector,
    report: PreflightReport,
    buckets: Mapping[str, tuple[str, int]],
    region: str,
    s3_client: S3Client,
) -> None:
    for bucket, (channel, line_no) in sorted(buckets.items()):
        try:
            where = bucket_region(s3_client, bucket)
        except StorageError as exc:
            out.warn(str(exc), channel=channel, line_no=line_no)
            continue
        report.bucket_regions[bucket] = where
        if where != region:
            out.error(
                f"images in bucket {bucket} are in {where}, but the training job runs in "
                f"{region} (first used here)",
                channel=channel,
                line_no=line_no,
            )


def _check_job_bucket_regions(
    out: _Collector,
    report: PreflightReport,
    channels: Mapping[str, Location],
    request: Mapping[str, Any] | None,
    region: str,
    s3_client: S3Client,
    *,
    what: str = "manifest",
) -> None:
    """The channels' ``what`` (manifest, data) and the model output must be in the job's region."""
    places = [(f"the {name} channel's {what}", str(loc)) for name, loc in channels.items()]
    output = ((request or {}).get("OutputDataConfig") or {}).get("S3OutputPath")
    if isinstance(output, str):
        places.append(("the training output", output))
    for what, uri in places:
        if not is_s3_uri(uri):
            continue
        bucket = parse_s3_uri(uri, require_key=False)[0]
        where = report.bucket_regions.get(bucket)
        if where is None:
            try:
                where = bucket_region(s3_client, bucket)
            except StorageError as exc:
                out.warn(f"{what}: {exc}")
                continue
            report.bucket_regions[bucket] = where
        if where != region:
            out.error(f"{what} is in bucket {bucket} in {where}, but the job runs in {region}")


def _check_request(
    out: _Collector, request: Mapping[str, Any], label_attribute: str, algorithm: Algorithm
) -> None:
    for problem in channel_problems(request, algorithm=algorithm):
        out.error(f"request: {problem}")
    for channel in request.get("InputDataConfig") or []:
        source = ((channel.get("DataSource") or {}).get("S3DataSource")) or {}
        attributes = source.get("AttributeNames") or []
        if len(attributes) == 2 and attributes[1] != label_attribute:
            out.error(
                f"request: channel {channel.get('ChannelName')!r} streams {attributes[1]!r}, "
                f"but the manifests' label is {label_attribute!r}"
            )


def _hyper_int(request: Mapping[str, Any], name: str) -> int | None:
    value = (request.get("HyperParameters") or {}).get(name)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _preflight_folders(request: Mapping[str, Any], *, store: S3Store | None) -> PreflightReport:
    """The folder pre-flight a script-mode or JumpStart request's channels need."""
    prefixes = {
        str(c.get("ChannelName")): str(
            ((c.get("DataSource") or {}).get("S3DataSource") or {}).get("S3Uri")
        )
        for c in request.get("InputDataConfig") or []
    }
    tags = {str(t.get("Key")): str(t.get("Value")) for t in request.get("Tags") or []}
    model_id = tags.get(JUMPSTART_MODEL_ID_TAG)
    wanted = "training" if model_id else "train"
    if wanted not in prefixes:
        report = PreflightReport()
        report.findings.append(Finding(Severity.ERROR, f"the request has no {wanted!r} channel"))
        return report
    if model_id and TASK_LAYOUTS.get(model_task(model_id)) == "jumpstart-od":
        return preflight_jumpstart_detection(prefixes[wanted], store=store)
    return preflight_class_folders(prefixes[wanted], prefixes.get("validation"), store=store)


def preflight_training_request(
    request: Mapping[str, Any],
    *,
    store: S3Store | None = None,
    s3_client: S3Client | None = None,
    region: str | None = None,
    class_map: Mapping[str, str] | Sequence[str] | None = None,
    algorithm: Algorithm | None = None,
    allow_empty_images: bool = False,
) -> PreflightReport:
    """Pre-flight a CreateTrainingJob request: read its channels and check.

    Built-in requests have their augmented-manifest channels read; the label attribute,
    hyperparameters and (unless given) the region come from the request itself (the region
    from the ECR image URI), so a hand-written request is checked as is. Script-mode requests
    have their class folders checked (:func:`preflight_class_folders`); JumpStart requests
    the layout their model's task reads (class folders, or :func:`preflight_jumpstart_detection`).
    With ``s3_client``, every channel's and the output's bucket must be in the job's region
    (``region``, else the training image's), whichever kind of job it is.
    """
    if region is None:
        match = _ECR_REGION_RE.search(
            str((request.get("AlgorithmSpecification") or {}).get("TrainingImage", ""))
        )
        region = match.group(1) if match else None
    if job_kind(request) != "builtin":
        report = _preflight_folders(request, store=store)
        if region is not None and s3_client is not None:
            prefixes: dict[str, Location] = {
                str(c.get("ChannelName")): str(
                    ((c.get("DataSource") or {}).get("S3DataSource") or {}).get("S3Uri")
                )
                for c in request.get("InputDataConfig") or []
            }
            _check_job_bucket_regions(
                _Collector(report), report, prefixes, request, region, s3_client, what="data"
            )
        return report
    channels: dict[str, str] = {}
    label_attribute = ""
    content_multi = False
    for channel in request.get("InputDataConfig") or []:
        source = ((channel.get("DataSource") or {}).get("S3DataSource")) or {}
        if source.get("S3DataType") != "AugmentedManifestFile":
            continue
        channels[str(channel.get("ChannelName"))] = str(source.get("S3Uri"))
        attributes = source.get("AttributeNames") or []
        if len(attributes) >= 2 and not label_attribute:
            label_attribute = str(attributes[1])
        content_multi = content_multi or "label-format=class-id" in str(channel.get("ContentType"))
    algorithm = algorithm or algorithm_of(request)
    if not channels:
        report = PreflightReport()
        report.findings.append(
            Finding(Severity.ERROR, "the request has no AugmentedManifestFile channels to check")
        )
        return report
    return preflight_channels(
        channels,
        label_attribute=label_attribute,
        algorithm=algorithm,
        class_map=class_map,
        region=region,
        s3_client=s3_client,
        store=store,
        num_training_samples=_hyper_int(request, "num_training_samples"),
        num_classes=_hyper_int(request, "num_classes"),
        label_width=_hyper_int(request, "label_width"),
        multi_label=content_multi or _hyper_int(request, "multi_label") == 1,
        allow_empty_images=allow_empty_images,
        request=request,
    )
