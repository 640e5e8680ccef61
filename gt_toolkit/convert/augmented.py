"""``augmented``: train/validation augmented manifests plus a ready ``channels.json``.

Built-in object detection and image classification read an AugmentedManifestFile in Pipe
mode with RecordIO wrapping and ``AttributeNames=[source-ref, <attr>]`` in that order
(``docs/ground-truth-formats.md`` §6 and §8 pitfalls 1-6). This target writes exactly
those lines, streams in constant memory, and computes the hyperparameter facts that trip
jobs up: ``num_training_samples`` (non-empty lines only), ``num_classes`` and the
``label_width`` that fits the busiest image.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from gt_toolkit.convert.options import ConversionResult, ConvertOptions
from gt_toolkit.convert.records import ANY, once, read_records
from gt_toolkit.convert.splits import RecordSplitter, planned_splitter
from gt_toolkit.convert.staging import StagedOutput
from gt_toolkit.formats.detection_label import DETECTION_TYPE
from gt_toolkit.formats.label_attributes import MULTILABEL_TYPE
from gt_toolkit.formats.output_manifest import (
    ClassificationRecord,
    DetectionRecord,
    EmptyPolicy,
    OutputStats,
)
from gt_toolkit.formats.training_channels import (
    DEFAULT_OD_LABEL_WIDTH,
    MULTI_LABEL_CONTENT_TYPE,
    RECORDIO_CONTENT_TYPE,
    augmented_manifest_channel,
    min_label_width,
)
from gt_toolkit.storage.files import LineWriter, Location, join_location
from gt_toolkit.storage.s3 import is_s3_uri

__all__ = ["to_augmented"]

_SPLITS = ("train", "validation")


def to_augmented(source: Location, out: StagedOutput, options: ConvertOptions) -> ConversionResult:
    """Write ``train.manifest``, ``validation.manifest`` and ``channels.json`` under ``out``.

    Lines keep ``source-ref`` and the label attribute (checked, clipped, integer class ids)
    and, with ``include_metadata``, its ``-metadata``. Empty images are rejected by default:
    built-in object detection drops batches over them (§8 pitfall 4). A second line of one
    image is a ``duplicate-source-ref`` reject: it trained on that image twice, perhaps
    under two labels, and nothing said so.
    """
    stats = OutputStats()
    splitter = planned_splitter(source, options, kinds=ANY, default_empty=EmptyPolicy.REJECT)
    manifests = {name: out.location(f"{name}.manifest") for name in _SPLITS}
    counts = _write_manifests(source, out, options, stats, splitter, manifests)
    facts = _channel_facts(out, options, stats, counts)
    channels = out.location("channels.json")
    out.write_json(channels, facts)  # last: its presence says the channels are complete
    return ConversionResult(
        target="augmented",
        stats=stats,
        outputs={**{n: manifests[n] for n in _SPLITS}, "channels": channels},
        extra={"num_training_samples": counts, "hyperparameters": facts["hyperparameters"]},
        notes=facts["notes"],
    )


def _write_manifests(
    source: Location,
    out: StagedOutput,
    options: ConvertOptions,
    stats: OutputStats,
    splitter: RecordSplitter,
    manifests: dict[str, str],
) -> dict[str, int]:
    """Stream every record into its split's manifest; return the line count per split."""
    dumps = orjson.dumps
    meta_on = options.include_metadata
    with out.open(manifests["train"]) as ft, out.open(manifests["validation"]) as fv:
        writers = {"train": LineWriter(ft), "validation": LineWriter(fv)}
        adds = {name: writer.add for name, writer in writers.items()}  # bound once, not a line
        records = read_records(
            source,
            options,
            kinds=ANY,
            stats=stats,
            default_empty=EmptyPolicy.REJECT,
            check=once(),
            out=out,
        )
        for rec in records:
            attr = rec.attribute
            line: dict[str, Any] = {"source-ref": rec.source_ref, attr: rec.label}
            if meta_on:
                line[attr + "-metadata"] = _metadata(rec)
            adds[splitter(rec)](dumps(line))
        for writer in writers.values():
            writer.flush()
    return {name: writer.count for name, writer in writers.items()}


def _channel_facts(
    out: StagedOutput, options: ConvertOptions, stats: OutputStats, counts: dict[str, int]
) -> dict[str, Any]:
    """``channels.json``: the InputDataConfig and the hyperparameters the data implies."""
    attr = stats.attribute or (options.label_attribute or "")
    detection = stats.label_type == DETECTION_TYPE
    multi = stats.label_type == MULTILABEL_TYPE
    content_type = MULTI_LABEL_CONTENT_TYPE if multi else RECORDIO_CONTENT_TYPE
    base = options.channel_prefix or (out.out if is_s3_uri(out.out) else None)
    num_classes = max(stats.class_map.names, default=-1) + 1
    hyper = {"num_classes": str(num_classes), "num_training_samples": str(counts["train"])}
    facts: dict[str, Any] = {
        "algorithm": "object-detection" if detection else "image-classification",
        "label_attribute": attr,
        "attribute_names": ["source-ref", attr],
        "InputDataConfig": [
            augmented_manifest_channel(
                name,
                join_location(base or os.fspath(out.out), f"{name}.manifest"),
                attr,
                content_type=content_type,
            )
            for name in _SPLITS
        ],
        "num_training_samples": counts,
        "num_classes": num_classes,
        "class_map": stats.class_map.to_json(),
        "hyperparameters": hyper,
    }
    if detection:
        need = min_label_width(stats.max_boxes)
        hyper["label_width"] = str(max(DEFAULT_OD_LABEL_WIDTH, need))
        facts["label_width_required"] = need
        facts["max_boxes_per_image"] = stats.max_boxes
    if multi:
        hyper["multi_label"] = "1"
    facts["notes"] = _notes(base, counts, num_classes, len(stats.class_map))
    return facts


def _notes(base: str | None, counts: dict[str, int], num_classes: int, named: int) -> list[str]:
    notes = []
    if base is None:
        notes.append(
            "S3Uri values are local paths: upload train.manifest and validation.manifest "
            "and replace them (or pass --channel-prefix s3://bucket/prefix)"
        )
    if counts["validation"] == 0 or counts["train"] == 0:
        notes.append("one channel is empty: training needs both train and validation")
    if num_classes > named:
        notes.append(
            f"class ids are not contiguous: num_classes is {num_classes} (max id + 1) for "
            f"{named} named classes"
        )
    return notes


def _metadata(rec: DetectionRecord | ClassificationRecord) -> dict[str, Any]:
    meta: dict[str, Any] = dict(rec.data.get(rec.attribute + "-metadata") or {})
    if isinstance(rec, DetectionRecord) and len(meta.get("objects") or []) != len(rec.boxes):
        meta["objects"] = [{"confidence": b.score or 0.0} for b in rec.boxes]
    return meta
