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

from gt_toolkit.convert._common import (
    ANY,
    ConversionResult,
    ConvertOptions,
    out_path,
    planned_splitter,
    read_records,
)
from gt_toolkit.formats.detection_label import DETECTION_TYPE
from gt_toolkit.formats.label_attributes import MULTILABEL_TYPE
from gt_toolkit.formats.output_manifest import DetectionRecord, EmptyPolicy, OutputStats
from gt_toolkit.formats.training_channels import (
    DEFAULT_OD_LABEL_WIDTH,
    MULTI_LABEL_CONTENT_TYPE,
    RECORDIO_CONTENT_TYPE,
    augmented_manifest_channel,
    min_label_width,
)
from gt_toolkit.storage.files import LineWriter, Location, atomic_output, write_json
from gt_toolkit.storage.s3 import is_s3_uri

__all__ = ["to_augmented"]


def to_augmented(source: Location, out: Location, options: ConvertOptions) -> ConversionResult:
    """Write ``train.manifest``, ``validation.manifest`` and ``channels.json`` under ``out``.

    Lines keep ``source-ref`` and the label attribute (checked, clipped, integer class ids)
    and, with ``include_metadata``, its ``-metadata``. Empty images are rejected by default:
    built-in object detection drops batches over them (§8 pitfall 4).
    """
    stats = OutputStats()
    splitter = planned_splitter(source, options, kinds=ANY, default_empty=EmptyPolicy.REJECT)
    train_loc = out_path(out, "train.manifest")
    val_loc = out_path(out, "validation.manifest")
    dumps = orjson.dumps
    meta_on = options.include_metadata
    max_id = -1
    with (
        atomic_output(train_loc, store=options.store) as ft,
        atomic_output(val_loc, store=options.store) as fv,
    ):
        sinks = {"train": LineWriter(ft), "validation": LineWriter(fv)}
        for rec in read_records(
            source, options, kinds=ANY, stats=stats, default_empty=EmptyPolicy.REJECT
        ):
            attr = rec.attribute
            line: dict[str, Any] = {"source-ref": rec.source_ref, attr: rec.label}
            if meta_on:
                line[attr + "-metadata"] = _metadata(rec)
            sinks[splitter(rec)].add(dumps(line))
        for sink in sinks.values():
            sink.flush()
    if len(stats.class_map):
        max_id = max(stats.class_map.names)
    counts = {name: sink.count for name, sink in sinks.items()}
    attr = stats.attribute or (options.label_attribute or "")
    detection = stats.label_type == DETECTION_TYPE
    multi = stats.label_type == MULTILABEL_TYPE
    content_type = MULTI_LABEL_CONTENT_TYPE if multi else RECORDIO_CONTENT_TYPE
    base = options.channel_prefix or (os.fspath(out) if is_s3_uri(os.fspath(out)) else None)
    uri = {
        name: (out_path(base, f"{name}.manifest") if base else out_path(out, f"{name}.manifest"))
        for name in counts
    }
    num_classes = max_id + 1
    hyper: dict[str, str] = {
        "num_classes": str(num_classes),
        "num_training_samples": str(counts["train"]),
    }
    facts: dict[str, Any] = {
        "algorithm": "object-detection" if detection else "image-classification",
        "label_attribute": attr,
        "attribute_names": ["source-ref", attr],
        "InputDataConfig": [
            augmented_manifest_channel(name, uri[name], attr, content_type=content_type)
            for name in counts
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
    notes = []
    if base is None:
        notes.append(
            "S3Uri values are local paths: upload train.manifest and validation.manifest "
            "and replace them (or pass --channel-prefix s3://bucket/prefix)"
        )
    if counts["validation"] == 0 or counts["train"] == 0:
        notes.append("one channel is empty: training needs both train and validation")
    if num_classes > len(stats.class_map):
        notes.append(
            f"class ids are not contiguous: num_classes is {num_classes} (max id + 1) for "
            f"{len(stats.class_map)} named classes"
        )
    facts["notes"] = notes
    channels_loc = out_path(out, "channels.json")
    write_json(channels_loc, facts, store=options.store)
    return ConversionResult(
        target="augmented",
        stats=stats,
        outputs={"train": train_loc, "validation": val_loc, "channels": channels_loc},
        extra={"num_training_samples": counts, "hyperparameters": hyper},
        notes=notes,
    )


def _metadata(rec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = dict(rec.data.get(rec.attribute + "-metadata") or {})
    if isinstance(rec, DetectionRecord) and len(meta.get("objects") or []) != len(rec.boxes):
        meta["objects"] = [{"confidence": b.score or 0.0} for b in rec.boxes]
    return meta
