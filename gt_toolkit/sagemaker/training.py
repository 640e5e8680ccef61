"""CreateTrainingJob requests for SageMaker's built-in object detection and image classification.

The expensive mistakes happen here: ``AttributeNames`` in the wrong order or with the
``-metadata`` key, a channel without RecordIO wrapping, File mode on an augmented manifest, an
off-by-one ``num_training_samples`` or a ``label_width`` too small for the busiest image
(``docs/ground-truth-formats.md`` §6 and §8 pitfalls 1–6). The hyperparameters are typed values
(:class:`ObjectDetectionHyperparameters`, :class:`ImageClassificationHyperparameters`) that
refuse a bad number when built and write every value as the string the algorithm expects; the
compute is a :class:`TrainingResources`. Each builder puts them around the channels and refuses
a bad request with every problem listed at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Final, Literal, Self

from gt_toolkit.errors import ValidationError
from gt_toolkit.formats.training_channels import (
    DEFAULT_OD_LABEL_WIDTH,
    MULTI_LABEL_CONTENT_TYPE,
    RECORDIO_CONTENT_TYPE,
    ChannelFacts,
    augmented_manifest_channel,
    file_channel,
    min_label_width,
)
from gt_toolkit.sagemaker.debugger import ProfilerSettings, attach_debugging
from gt_toolkit.sagemaker.job_kinds import Algorithm
from gt_toolkit.sagemaker.regions import algorithm_image_uri
from gt_toolkit.sagemaker.service_validation import problems_as_strings, validate_request
from gt_toolkit.sagemaker.tags import tag_list

__all__ = [
    "IC_OPTIMIZERS",
    "OD_BASE_NETWORKS",
    "OD_OPTIMIZERS",
    "ImageClassificationHyperparameters",
    "ObjectDetectionHyperparameters",
    "TrainingResources",
    "build_image_classification_training_request",
    "build_object_detection_training_request",
    "channel_problems",
    "finish_request",
    "hyperparameter_str",
    "training_kwargs_from_facts",
]

OD_BASE_NETWORKS: Final = ("vgg-16", "resnet-50")
OD_OPTIMIZERS: Final = ("sgd", "adam", "rmsprop", "adadelta")
IC_OPTIMIZERS: Final = ("sgd", "adam", "rmsprop", "nag")
IC_NUM_LAYERS: Final = (18, 34, 50, 101, 152, 200, 20, 32, 44, 56, 110)
_SOURCE_ATTRIBUTES: Final = ("source-ref", "source")


def hyperparameter_str(value: float) -> str:
    """A number as the algorithm reads it: ``0.001`` not ``1e-03``, ``30`` not ``30.0``."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1):
        return str(int(value))
    return format(float(value), ".10g") if abs(value) >= 1e-4 else repr(float(value))


def _positive_int(name: str, value: object, problems: list[str]) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class _VisionHyperparameters:
    """What both built-in vision algorithms take; a subclass adds its own and its defaults.

    Built values are valid: ``__post_init__`` raises :class:`ValidationError` with every
    out-of-range value at once, so a bad number fails where it is written.
    """

    _WHAT: ClassVar[str]
    _OPTIMIZERS: ClassVar[tuple[str, ...]]

    num_training_samples: int
    num_classes: int
    use_pretrained_model: bool = True
    epochs: int = 30
    mini_batch_size: int = 32
    learning_rate: float
    optimizer: str = "sgd"
    extra: Mapping[str, str] = field(default_factory=dict)
    """More hyperparameters, passed through as written (they override the typed ones)."""

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ValidationError(problems, what=self._WHAT)

    def _problems(self) -> list[str]:
        problems: list[str] = []
        _positive_int("num_training_samples", self.num_training_samples, problems)
        _positive_int("num_classes", self.num_classes, problems)
        _positive_int("epochs", self.epochs, problems)
        _positive_int("mini_batch_size", self.mini_batch_size, problems)
        if self.optimizer not in self._OPTIMIZERS:
            problems.append(
                f"optimizer {self.optimizer!r} is not one of: {', '.join(self._OPTIMIZERS)}"
            )
        if not 0 < self.learning_rate <= 1:
            problems.append(f"learning_rate must be in (0, 1], got {self.learning_rate}")
        return problems

    def _shared_strings(self) -> dict[str, str]:
        return {
            "num_training_samples": hyperparameter_str(self.num_training_samples),
            "num_classes": hyperparameter_str(self.num_classes),
            "use_pretrained_model": hyperparameter_str(self.use_pretrained_model),
            "epochs": hyperparameter_str(self.epochs),
            "mini_batch_size": hyperparameter_str(self.mini_batch_size),
            "learning_rate": hyperparameter_str(self.learning_rate),
            "optimizer": self.optimizer,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectDetectionHyperparameters(_VisionHyperparameters):
    """Hyperparameters of built-in object detection.

    ``num_training_samples`` must be the exact non-empty line count of the train manifest
    (§8 pitfall 6) and ``num_classes`` comes from the class map. ``label_width`` defaults to
    the algorithm's 350, raised to :func:`min_label_width` when ``max_boxes`` (most boxes on one
    image) needs more; an explicit one smaller than that is an error (§8 pitfall 5).

    Raises:
        ValidationError: every out-of-range value at once.

    Examples:
        >>> hp = ObjectDetectionHyperparameters(num_training_samples=40, num_classes=2,
        ...                                     max_boxes=100, learning_rate=1e-4)
        >>> hp.as_strings()["label_width"], hp.as_strings()["learning_rate"]
        ('502', '0.0001')
    """

    _WHAT: ClassVar[str] = "object detection hyperparameters"
    _OPTIMIZERS: ClassVar[tuple[str, ...]] = OD_OPTIMIZERS

    learning_rate: float = 0.001
    max_boxes: int | None = None
    label_width: int | None = None
    base_network: str = "resnet-50"
    momentum: float = 0.9
    weight_decay: float = 0.0005
    image_shape: int = 300

    @classmethod
    def from_facts(cls, facts: ChannelFacts, **overrides: Any) -> Self:
        """The counts, classes, label width and busiest image the converter wrote, + overrides."""
        known = {
            "num_training_samples": facts.num_training_samples,
            "num_classes": facts.num_classes,
            "label_width": facts.label_width,
            "max_boxes": facts.max_boxes,
        }
        return cls(**(known | overrides))

    def _needed_width(self) -> int | None:
        return min_label_width(self.max_boxes) if self.max_boxes is not None else None

    def _problems(self) -> list[str]:
        problems = _VisionHyperparameters._problems(self)
        if self.base_network not in OD_BASE_NETWORKS:
            problems.append(
                f"base_network {self.base_network!r} is not one of: {', '.join(OD_BASE_NETWORKS)}"
            )
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1), got {self.momentum}")
        if not 0 <= self.weight_decay < 1:
            problems.append(f"weight_decay must be in [0, 1), got {self.weight_decay}")
        shape = self.image_shape
        if isinstance(shape, bool) or not isinstance(shape, int) or shape < 300:
            problems.append(f"image_shape must be an integer >= 300, got {shape!r}")
        needed = self._needed_width()
        if self.label_width is not None and needed is not None and self.label_width < needed:
            problems.append(
                f"label_width {self.label_width} is too small for {self.max_boxes} boxes in one "
                f"image; it needs >= 2 + 5 x {self.max_boxes} = {needed}"
            )
        samples, batch = self.num_training_samples, self.mini_batch_size
        if isinstance(samples, int) and isinstance(batch, int) and 0 < samples < batch:
            problems.append(
                f"mini_batch_size {batch} is larger than the {samples} training samples; "
                "no full batch can be formed"
            )
        return problems

    def as_strings(self) -> dict[str, str]:
        """The ``HyperParameters`` map: every value as the string the algorithm reads."""
        width = self.label_width
        if width is None:
            width = max(DEFAULT_OD_LABEL_WIDTH, self._needed_width() or 0)
        return {
            **self._shared_strings(),
            "base_network": self.base_network,
            "momentum": hyperparameter_str(self.momentum),
            "weight_decay": hyperparameter_str(self.weight_decay),
            "image_shape": hyperparameter_str(self.image_shape),
            "label_width": hyperparameter_str(width),
            **self.extra,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageClassificationHyperparameters(_VisionHyperparameters):
    """Hyperparameters of built-in image classification.

    ``multi_label`` also switches the augmented-manifest channels to the class-id content type;
    ``resize`` defaults to ``image_shape``'s larger side in ``.lst`` File mode (see the
    builder); a smaller one is refused.

    Raises:
        ValidationError: every out-of-range value at once.
    """

    _WHAT: ClassVar[str] = "image classification hyperparameters"
    _OPTIMIZERS: ClassVar[tuple[str, ...]] = IC_OPTIMIZERS

    learning_rate: float = 0.1
    num_layers: int = 18
    image_shape: str = "3,224,224"
    multi_label: bool = False
    resize: int | None = None

    @classmethod
    def from_facts(cls, facts: ChannelFacts, **overrides: Any) -> Self:
        """The counts and classes the converter wrote, plus ``overrides``."""
        known = {
            "num_training_samples": facts.num_training_samples,
            "num_classes": facts.num_classes,
        }
        return cls(**(known | overrides))

    def image_height(self) -> int | None:
        """The height of ``image_shape`` (``channels,height,width``), when it reads as one.

        Public since the class was (f51dac6): the toolkit no longer calls it, a caller may.
        """
        parts = self.image_shape.split(",")
        return int(parts[1]) if len(parts) == 3 and parts[1].strip().isdigit() else None

    def largest_side(self) -> int | None:
        """The larger of ``image_shape``'s height and width, when it reads as a shape.

        The least ``resize`` that works: the algorithm crops ``image_shape`` out of the image
        resized to ``resize`` on its shortest side (AWS: it "should be larger than both").
        """
        parts = [p.strip() for p in self.image_shape.split(",")]
        if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
            return None
        return max(int(parts[1]), int(parts[2]))

    def _problems(self) -> list[str]:
        problems = _VisionHyperparameters._problems(self)
        if self.num_layers not in IC_NUM_LAYERS:
            problems.append(
                f"num_layers {self.num_layers} is not one of: {', '.join(map(str, IC_NUM_LAYERS))}"
            )
        parts = self.image_shape.split(",")
        if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
            problems.append(
                f"image_shape must be 'channels,height,width', got {self.image_shape!r}"
            )
        if self.resize is not None:
            _positive_int("resize", self.resize, problems)
            side = self.largest_side()
            if isinstance(self.resize, int) and side is not None and 0 < self.resize < side:
                problems.append(
                    f"resize {self.resize} is smaller than image_shape {self.image_shape!r}: "
                    f"the algorithm crops that shape out of the resized image; use >= {side}"
                )
        return problems

    def as_strings(self) -> dict[str, str]:
        """The ``HyperParameters`` map: every value as the string the algorithm reads."""
        params = {
            **self._shared_strings(),
            "num_layers": hyperparameter_str(self.num_layers),
            "image_shape": self.image_shape.replace(" ", ""),
        }
        if self.multi_label:
            params["multi_label"] = "1"
        if self.resize is not None:
            params["resize"] = hyperparameter_str(self.resize)
        return params | dict(self.extra)


MAX_RUNTIME_SECONDS: Final = 28 * 24 * 3600
"""The longest MaxRuntimeInSeconds CreateTrainingJob takes (the service's documentation)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingResources:
    """Where and how long a training job runs: ``ResourceConfig`` and ``StoppingCondition``.

    With ``spot``, ``max_wait_seconds`` (default: ``max_runtime_seconds``) bounds the wait for
    spot capacity plus the run. Built values are valid: ``__post_init__`` raises
    :class:`ValidationError` with every rule of the service's documentation a value breaks
    (its model states only some of them).
    """

    instance_type: str = "ml.p3.2xlarge"
    instance_count: int = 1
    volume_size_gb: int = 50
    max_runtime_seconds: int = 86_400
    spot: bool = False
    max_wait_seconds: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.instance_count < 1:
            problems.append(f"instance_count must be at least 1, got {self.instance_count}")
        if self.volume_size_gb < 1:
            problems.append(f"volume_size_gb must be at least 1, got {self.volume_size_gb}")
        if not 1 <= self.max_runtime_seconds <= MAX_RUNTIME_SECONDS:
            problems.append(
                f"max_runtime_seconds must be 1 to {MAX_RUNTIME_SECONDS} (28 days), got "
                f"{self.max_runtime_seconds}"
            )
        if self.max_wait_seconds is not None and not self.spot:
            problems.append("max_wait_seconds bounds a spot job's wait: give spot=True too")
        if self.max_wait_seconds is not None and self.max_wait_seconds < self.max_runtime_seconds:
            problems.append(
                f"max_wait_seconds ({self.max_wait_seconds}) must be at least "
                f"max_runtime_seconds ({self.max_runtime_seconds}): it bounds the wait plus "
                "the run"
            )
        if problems:
            raise ValidationError(problems, what="training resources")

    def request_fields(self) -> dict[str, Any]:
        """The CreateTrainingJob members these settings fill."""
        stopping: dict[str, int] = {"MaxRuntimeInSeconds": self.max_runtime_seconds}
        fields: dict[str, Any] = {
            "ResourceConfig": {
                "InstanceType": self.instance_type,
                "InstanceCount": self.instance_count,
                "VolumeSizeInGB": self.volume_size_gb,
            },
            "StoppingCondition": stopping,
        }
        if self.spot:
            fields["EnableManagedSpotTraining"] = True
            stopping["MaxWaitTimeInSeconds"] = self.max_wait_seconds or self.max_runtime_seconds
        return fields


def _augmented_channel_problems(channel: Mapping[str, Any], algo_mode: object) -> list[str]:
    """What built-in algorithms refuse in one AugmentedManifestFile channel."""
    problems: list[str] = []
    where = f"channel {channel.get('ChannelName')!r}"
    source = (channel.get("DataSource") or {}).get("S3DataSource") or {}
    attributes = source.get("AttributeNames")
    if not attributes:
        problems.append(
            f"{where}: an augmented manifest needs AttributeNames [source-ref, <label>] "
            "(else 'Got empty batch from pipe')"
        )
    else:
        if len(attributes) != 2:
            problems.append(
                f"{where}: AttributeNames must be exactly [source-ref, <label>], got {attributes}"
            )
        if attributes[0] not in _SOURCE_ATTRIBUTES:
            problems.append(
                f"{where}: AttributeNames must start with the image (source-ref), got {attributes}"
            )
        problems.extend(
            f"{where}: AttributeNames must not include {attr!r}"
            for attr in attributes
            if isinstance(attr, str) and attr.endswith("-metadata")
        )
    mode = channel.get("InputMode") or algo_mode
    if mode != "Pipe":
        problems.append(f"{where}: AugmentedManifestFile works only in Pipe mode, not {mode}")
    if channel.get("RecordWrapperType") != "RecordIO":
        problems.append(
            f"{where}: RecordWrapperType must be RecordIO for built-in algorithms "
            "(else 'Record IO header does not start with the magic number')"
        )
    content = channel.get("ContentType")
    if not (isinstance(content, str) and content.startswith(RECORDIO_CONTENT_TYPE)):
        problems.append(f"{where}: ContentType must be {RECORDIO_CONTENT_TYPE}, got {content!r}")
    if source.get("S3DataDistributionType", "FullyReplicated") != "FullyReplicated":
        problems.append(f"{where}: use S3DataDistributionType FullyReplicated")
    return problems


def channel_problems(
    request: Mapping[str, Any], *, algorithm: Algorithm = "object-detection"
) -> list[str]:
    """Channel settings that the built-in algorithms reject (RecordIO, ContentType, Pipe, …).

    Works on any CreateTrainingJob (or tuning ``TrainingJobDefinition``) dict, so the pre-flight
    can check hand-written requests too.
    """
    problems: list[str] = []
    channels = [c for c in request.get("InputDataConfig") or [] if isinstance(c, Mapping)]
    algo_mode = (request.get("AlgorithmSpecification") or {}).get("TrainingInputMode")
    names = [c.get("ChannelName") for c in channels]
    augmented = False
    for channel in channels:
        source = (channel.get("DataSource") or {}).get("S3DataSource") or {}
        if source.get("S3DataType") == "AugmentedManifestFile":
            augmented = True
            problems.extend(_augmented_channel_problems(channel, algo_mode))
        elif channel.get("RecordWrapperType") == "RecordIO" and source.get("S3DataType") == (
            "S3Prefix"
        ):
            problems.append(
                f"channel {channel.get('ChannelName')!r}: RecordWrapperType RecordIO is for "
                "augmented manifests only"
            )
    required = ["train", "validation"]
    if algorithm == "image-classification" and not augmented and channels:
        required += ["train_lst", "validation_lst"]
    problems.extend(f"missing the {name!r} channel" for name in required if name not in names)
    if len(set(names)) != len(names):
        problems.append(f"channel names repeat: {names}")
    return problems


def _training_request(
    *,
    job_name: str,
    role_arn: str,
    region: str,
    algorithm: Algorithm,
    input_mode: str,
    channels: list[dict[str, Any]],
    hyperparameters: dict[str, str],
    output_uri: str,
    resources: TrainingResources,
    image_uri: str | None,
    tags: Mapping[str, str] | None,
    debugger_rules: Sequence[str],
    profiler: ProfilerSettings | None,
    problems: list[str],
) -> dict[str, Any]:
    """The request around the builder's parts, or every problem (the builder's ones first)."""
    if image_uri is None:
        try:
            image_uri = algorithm_image_uri(region, algorithm)
        except ValidationError as exc:
            problems.extend(exc.problems)
            image_uri = ""
    request: dict[str, Any] = {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": {"TrainingImage": image_uri, "TrainingInputMode": input_mode},
        "RoleArn": role_arn,
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": output_uri},
        **resources.request_fields(),
        "HyperParameters": hyperparameters,
    }
    if tags:
        request["Tags"] = tag_list(tags)
    problems.extend(channel_problems(request, algorithm=algorithm))
    return finish_request(
        request,
        region=region,
        debugger_rules=debugger_rules,
        profiler=profiler,
        problems=problems,
        what="training job request",
    )


def build_object_detection_training_request(
    *,
    job_name: str,
    role_arn: str,
    region: str,
    train_manifest_uri: str,
    validation_manifest_uri: str,
    label_attribute: str,
    output_uri: str,
    hyperparameters: ObjectDetectionHyperparameters,
    resources: TrainingResources = TrainingResources(),
    image_uri: str | None = None,
    tags: Mapping[str, str] | None = None,
    debugger_rules: Sequence[str] = (),
    profiler: ProfilerSettings | None = None,
) -> dict[str, Any]:
    """Built-in object detection trained on Ground Truth's augmented manifests (Pipe, RecordIO).

    ``debugger_rules`` and ``profiler`` opt into SageMaker Debugger and the Profiler (see
    :func:`~gt_toolkit.sagemaker.debugger.attach_debugging`): the built-in algorithms write no
    tensors, so tensor rules are refused here; profiler rules are accepted.

    Raises:
        ValidationError: every problem with the channels, resources and service model.

    Examples:
        >>> req = build_object_detection_training_request(
        ...     job_name="balls-od", role_arn="arn:aws:iam::123456789012:role/sm",
        ...     region="us-east-1", train_manifest_uri="s3://bkt/train.manifest",
        ...     validation_manifest_uri="s3://bkt/validation.manifest", label_attribute="boxes",
        ...     output_uri="s3://bkt/models", hyperparameters=ObjectDetectionHyperparameters(
        ...         num_training_samples=32, num_classes=1, max_boxes=3))
        >>> req["InputDataConfig"][0]["DataSource"]["S3DataSource"]["AttributeNames"]
        ['source-ref', 'boxes']
    """
    problems: list[str] = []
    if label_attribute.endswith("-metadata"):
        problems.append(
            f"label_attribute {label_attribute!r} is the metadata key; pass the label key"
        )
    if not resources.instance_type.startswith(("ml.p", "ml.g")):
        problems.append(
            "built-in object detection trains on GPU instances (ml.p*/ml.g*), not "
            f"{resources.instance_type}"
        )
    return _training_request(
        job_name=job_name,
        role_arn=role_arn,
        region=region,
        algorithm="object-detection",
        input_mode="Pipe",
        channels=[
            augmented_manifest_channel("train", train_manifest_uri, label_attribute),
            augmented_manifest_channel("validation", validation_manifest_uri, label_attribute),
        ],
        hyperparameters=hyperparameters.as_strings(),
        output_uri=output_uri,
        resources=resources,
        image_uri=image_uri,
        tags=tags,
        debugger_rules=debugger_rules,
        profiler=profiler,
        problems=problems,
    )


_LST_CHANNELS: Final = ("train", "validation", "train_lst", "validation_lst")


def _image_classification_channels(
    manifest_args: tuple[str | None, str | None, str | None],
    lst_args: tuple[str | None, str | None, str | None, str | None],
    *,
    multi_label: bool,
    problems: list[str],
) -> tuple[list[dict[str, Any]], Literal["Pipe", "File"]]:
    """The channels and input mode of either input layout; a missing or mixed one is a problem."""
    use_manifest = any(a is not None for a in manifest_args)
    use_lst = any(a is not None for a in lst_args)
    if use_manifest and use_lst:
        problems.append("give either augmented manifests or .lst prefixes, not both")
    if use_manifest:
        if None in manifest_args:
            problems.append(
                "augmented-manifest mode needs train_manifest_uri, validation_manifest_uri and "
                "label_attribute"
            )
        train, validation, attribute = (a or "" for a in manifest_args)
        content = MULTI_LABEL_CONTENT_TYPE if multi_label else RECORDIO_CONTENT_TYPE
        channels = [
            augmented_manifest_channel("train", train, attribute, content_type=content),
            augmented_manifest_channel("validation", validation, attribute, content_type=content),
        ]
        return channels, "Pipe"
    if use_lst:
        if None in lst_args:
            problems.append(
                ".lst mode needs train_uri, validation_uri, train_lst_uri and validation_lst_uri"
            )
        channels = [
            file_channel(name, uri or "") for name, uri in zip(_LST_CHANNELS, lst_args, strict=True)
        ]
        return channels, "File"
    problems.append(
        "no input: give train_manifest_uri/validation_manifest_uri/label_attribute or the "
        "four .lst prefixes"
    )
    return [], "Pipe"


def build_image_classification_training_request(
    *,
    job_name: str,
    role_arn: str,
    region: str,
    output_uri: str,
    hyperparameters: ImageClassificationHyperparameters,
    train_manifest_uri: str | None = None,
    validation_manifest_uri: str | None = None,
    label_attribute: str | None = None,
    train_uri: str | None = None,
    validation_uri: str | None = None,
    train_lst_uri: str | None = None,
    validation_lst_uri: str | None = None,
    resources: TrainingResources = TrainingResources(),
    image_uri: str | None = None,
    tags: Mapping[str, str] | None = None,
    debugger_rules: Sequence[str] = (),
    profiler: ProfilerSettings | None = None,
) -> dict[str, Any]:
    """Built-in image classification from augmented manifests (Pipe) or ``.lst`` files (File).

    Give either ``train_manifest_uri`` + ``validation_manifest_uri`` + ``label_attribute``, or
    the four ``.lst`` layout prefixes (``train_uri``, ``validation_uri``, ``train_lst_uri``,
    ``validation_lst_uri``). In ``.lst`` mode ``resize`` defaults to ``image_shape``'s larger
    side (:meth:`ImageClassificationHyperparameters.largest_side`), since the
    algorithm requires it for raw image files.

    Raises:
        ValidationError: every problem with the inputs, resources and service model.
    """
    problems: list[str] = []
    channels, mode = _image_classification_channels(
        (train_manifest_uri, validation_manifest_uri, label_attribute),
        (train_uri, validation_uri, train_lst_uri, validation_lst_uri),
        multi_label=hyperparameters.multi_label,
        problems=problems,
    )
    if mode == "File" and hyperparameters.resize is None:
        hyperparameters = replace(hyperparameters, resize=hyperparameters.largest_side())
    return _training_request(
        job_name=job_name,
        role_arn=role_arn,
        region=region,
        algorithm="image-classification",
        input_mode=mode,
        channels=channels,
        hyperparameters=hyperparameters.as_strings(),
        output_uri=output_uri,
        resources=resources,
        image_uri=image_uri,
        tags=tags,
        debugger_rules=debugger_rules,
        profiler=profiler,
        problems=problems,
    )


def training_kwargs_from_facts(facts: ChannelFacts) -> dict[str, str]:
    """The channel kwargs of a builder that the converter wrote: manifests and label attribute.

    The counts go into the hyperparameters (``ObjectDetectionHyperparameters.from_facts``).

    Examples:
        >>> facts = parse_channel_facts({"num_training_samples": 30, "num_classes": 2,
        ...                              "label_attribute": "boxes"})
        >>> training_kwargs_from_facts(facts)
        {'label_attribute': 'boxes'}
    """
    kwargs: dict[str, str] = {}
    if facts.label_attribute is not None:
        kwargs["label_attribute"] = facts.label_attribute
    for channel, key in (
        ("train", "train_manifest_uri"),
        ("validation", "validation_manifest_uri"),
    ):
        uri = facts.manifest_uri(channel)
        if uri is not None:
            kwargs[key] = uri
    return kwargs


def finish_request(
    request: dict[str, Any],
    *,
    region: str,
    debugger_rules: Sequence[str],
    profiler: ProfilerSettings | None,
    problems: list[str],
    what: str,
) -> dict[str, Any]:
    """Attach the opted-in Debugger/Profiler, check the service model, raise every problem.

    ``problems`` are the builder's own, listed first.
    """
    try:
        request = attach_debugging(
            request, region=region, debugger_rules=debugger_rules, profiler=profiler
        )
    except ValidationError as exc:
        problems.extend(exc.problems)
    problems.extend(problems_as_strings(validate_request("CreateTrainingJob", request)))
    if problems:
        raise ValidationError(list(dict.fromkeys(problems)), what=what)
    return request
