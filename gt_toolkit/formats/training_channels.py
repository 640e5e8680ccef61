"""Training channels as the converters write them and the training builders read them.

The augmented-manifest channel (``AttributeNames`` order, RecordIO in Pipe mode), the File-mode
prefix channel, the ``label_width`` rule and the ``channels.json`` facts file are one contract
between :mod:`gt_toolkit.convert` (which writes the channels) and
:mod:`gt_toolkit.sagemaker.training` (which points a job at them); it lives here so neither
has to import the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from gt_toolkit.errors import ValidationError
from gt_toolkit.storage.files import Location, read_bytes
from gt_toolkit.storage.s3 import S3Store

__all__ = [
    "DEFAULT_OD_LABEL_WIDTH",
    "IMAGE_CONTENT_TYPE",
    "MULTI_LABEL_CONTENT_TYPE",
    "RECORDIO_CONTENT_TYPE",
    "ChannelFacts",
    "augmented_manifest_channel",
    "file_channel",
    "load_channel_facts",
    "min_label_width",
    "parse_channel_facts",
]

RECORDIO_CONTENT_TYPE: Final = "application/x-recordio"
MULTI_LABEL_CONTENT_TYPE: Final = "application/x-recordio; label-format=class-id"
IMAGE_CONTENT_TYPE: Final = "application/x-image"
DEFAULT_OD_LABEL_WIDTH: Final = 350


def min_label_width(max_boxes: int) -> int:
    """The smallest ``label_width`` that fits ``max_boxes`` boxes: header 2 + 5 per box."""
    return 2 + 5 * max_boxes


def augmented_manifest_channel(
    name: str,
    manifest_uri: str,
    label_attribute: str,
    *,
    source_attribute: str = "source-ref",
    content_type: str = RECORDIO_CONTENT_TYPE,
    shuffle_seed: int | None = None,
) -> dict[str, Any]:
    """One augmented-manifest channel as built-in vision algorithms need it.

    ``AttributeNames`` is built explicitly as ``[source, label]`` (image first, never the
    ``-metadata`` key; ``docs/ground-truth-formats.md`` §8 pitfall 1); RecordIO wrapping,
    ``application/x-recordio``, Pipe mode and ``FullyReplicated`` are set because the
    algorithms fail without them (pitfalls 2 and 3 there).
    """
    channel: dict[str, Any] = {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "AugmentedManifestFile",
                "S3Uri": manifest_uri,
                "S3DataDistributionType": "FullyReplicated",
                "AttributeNames": [source_attribute, label_attribute],
            }
        },
        "ContentType": content_type,
        "RecordWrapperType": "RecordIO",
        "CompressionType": "None",
        "InputMode": "Pipe",
    }
    if shuffle_seed is not None:
        channel["ShuffleConfig"] = {"Seed": shuffle_seed}
    return channel


def file_channel(
    name: str, s3_prefix: str, *, content_type: str = IMAGE_CONTENT_TYPE
) -> dict[str, Any]:
    """A File-mode S3 prefix channel (image classification ``.lst`` layout)."""
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": s3_prefix,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "ContentType": content_type,
        "CompressionType": "None",
        "InputMode": "File",
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelFacts:
    """What the converter counted while writing the training channels (``channels.json``).

    ``num_training_samples`` is the train channel's count; ``samples`` has every channel's.
    """

    num_training_samples: int
    num_classes: int
    label_width: int | None = None
    max_boxes: int | None = None
    label_attribute: str | None = None
    samples: dict[str, int] = field(default_factory=dict)
    class_map: dict[str, str] = field(default_factory=dict)
    input_data_config: list[dict[str, Any]] = field(default_factory=list)

    def manifest_uri(self, channel: str) -> str | None:
        """The S3 URI of ``channel`` in ``InputDataConfig``, when the converter wrote one."""
        for entry in self.input_data_config:
            if entry.get("ChannelName") == channel:
                uri = ((entry.get("DataSource") or {}).get("S3DataSource") or {}).get("S3Uri")
                return uri if isinstance(uri, str) else None
        return None


def _int_or_none(value: object) -> int | None:
    """An int from an int or a digit string (the converter writes hyperparameters as strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def parse_channel_facts(document: Mapping[str, Any]) -> ChannelFacts:
    """Read the converter's ``channels.json`` leniently (counts as an int or per channel).

    Understands what ``gt_toolkit.convert.augmented`` writes (``num_training_samples`` per
    channel, ``num_classes``, ``class_map``, ``hyperparameters.label_width`` as a string,
    ``max_boxes_per_image``, ``InputDataConfig``) and plain top-level ``label_width`` /
    ``max_boxes``.

    Raises:
        ValidationError: no usable ``num_training_samples`` or ``num_classes``.
    """
    problems: list[str] = []
    raw_samples = document.get("num_training_samples")
    samples: dict[str, int] = {}
    if isinstance(raw_samples, Mapping):
        samples = {str(k): int(v) for k, v in raw_samples.items() if isinstance(v, int)}
        train = samples.get("train")
    elif isinstance(raw_samples, int) and not isinstance(raw_samples, bool):
        train = raw_samples
        samples = {"train": raw_samples}
    else:
        train = None
    extra_counts = document.get("samples") or document.get("counts")
    if isinstance(extra_counts, Mapping):
        for k, v in extra_counts.items():
            if isinstance(v, int):
                samples.setdefault(str(k), v)
        train = train if train is not None else samples.get("train")
    if train is None:
        problems.append("channels.json has no num_training_samples for the train channel")
    class_map_raw = document.get("class_map") or document.get("class-map") or {}
    class_map = (
        {str(k): str(v) for k, v in class_map_raw.items()}
        if isinstance(class_map_raw, Mapping)
        else {str(i): str(v) for i, v in enumerate(class_map_raw)}
    )
    num_classes = document.get("num_classes")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool):
        num_classes = len(class_map) if class_map else None
    if num_classes is None:
        problems.append("channels.json has no num_classes (nor a class map to count)")
    if problems:
        raise ValidationError(problems, what="channels.json")
    config = document.get("InputDataConfig") or []
    hyper = document.get("hyperparameters")
    hyper = hyper if isinstance(hyper, Mapping) else {}
    label_width = _int_or_none(document.get("label_width", hyper.get("label_width")))
    max_boxes = _int_or_none(document.get("max_boxes", document.get("max_boxes_per_image")))
    attribute = document.get("label_attribute")
    return ChannelFacts(
        num_training_samples=int(train or 0),
        num_classes=int(num_classes or 0),
        label_width=label_width,
        max_boxes=max_boxes,
        label_attribute=attribute if isinstance(attribute, str) else None,
        samples=samples,
        class_map=class_map,
        input_data_config=[dict(c) for c in config if isinstance(c, Mapping)],
    )


def load_channel_facts(location: Location, *, store: S3Store | None = None) -> ChannelFacts:
    """Read ``channels.json`` from a local path or ``s3://`` URI."""
    try:
        document = orjson.loads(read_bytes(location, store=store))
    except orjson.JSONDecodeError as exc:
        raise ValidationError([f"{location}: not JSON: {exc}"], what="channels.json") from exc
    if not isinstance(document, Mapping):
        raise ValidationError([f"{location}: expected a JSON object"], what="channels.json")
    return parse_channel_facts(document)
