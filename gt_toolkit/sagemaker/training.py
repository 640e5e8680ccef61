"""CreateTrainingJob requests for SageMaker's built-in object detection and image classification.

The expensive mistakes happen here: ``AttributeNames`` in the wrong order or with the
``-metadata`` key, a channel without RecordIO wrapping, File mode on an augmented manifest, an
off-by-one ``num_training_samples`` or a ``label_width`` too small for the busiest image
(``docs/ground-truth-formats.md`` §6 and §8 pitfalls 1–6). Each builder takes plain numbers
(what the converter or the pre-flight counted), writes every hyperparameter as the string the
algorithm expects, and refuses a bad request with every problem listed at once.
:func:`load_channel_facts` reads the ``channels.json`` the converter writes next to its output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

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
from gt_toolkit.sagemaker.regions import algorithm_image_uri
from gt_toolkit.sagemaker.service_validation import problems_as_strings, validate_request

__all__ = [
    "IC_OPTIMIZERS",
    "OD_BASE_NETWORKS",
    "OD_OPTIMIZERS",
    "build_image_classification_training_request",
    "build_object_detection_training_request",
    "channel_problems",
    "hyperparameter_str",
    "image_classification_hyperparameters",
    "object_detection_hyperparameters",
    "training_kwargs_from_facts",
]

OD_BASE_NETWORKS: Final = ("vgg-16", "resnet-50")
OD_OPTIMIZERS: Final = ("sgd", "adam", "rmsprop", "adadelta")
IC_OPTIMIZERS: Final = ("sgd", "adam", "rmsprop", "nag")
IC_NUM_LAYERS: Final = (18, 34, 50, 101, 152, 200, 20, 32, 44, 56, 110)
_SOURCE_ATTRIBUTES: Final = ("source-ref", "source")

Algorithm = Literal["object-detection", "image-classification"]


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


def _shared_problems(
    *,
    num_training_samples: int,
    num_classes: int,
    epochs: int,
    mini_batch_size: int,
    learning_rate: float,
    optimizer: str,
    optimizers: tuple[str, ...],
) -> list[str]:
    """Problems with the hyperparameters both built-in vision algorithms share, in one list."""
    problems: list[str] = []
    _positive_int("num_training_samples", num_training_samples, problems)
    _positive_int("num_classes", num_classes, problems)
    _positive_int("epochs", epochs, problems)
    _positive_int("mini_batch_size", mini_batch_size, problems)
    if optimizer not in optimizers:
        problems.append(f"optimizer {optimizer!r} is not one of: {', '.join(optimizers)}")
    if not 0 < learning_rate <= 1:
        problems.append(f"learning_rate must be in (0, 1], got {learning_rate}")
    return problems


def object_detection_hyperparameters(
    *,
    num_training_samples: int,
    num_classes: int,
    max_boxes: int | None = None,
    label_width: int | None = None,
    base_network: str = "resnet-50",
    use_pretrained_model: bool = True,
    epochs: int = 30,
    mini_batch_size: int = 32,
    learning_rate: float = 0.001,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0005,
    image_shape: int = 300,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Hyperparameters for built-in object detection, every value a string.

    ``label_width`` defaults to the algorithm's 350, raised to :func:`min_label_width` when
    ``max_boxes`` needs more; an explicit one smaller than that is an error (§8 pitfall 5).

    Raises:
        ValidationError: every out-of-range value at once.
    """
    problems = _shared_problems(
        num_training_samples=num_training_samples,
        num_classes=num_classes,
        epochs=epochs,
        mini_batch_size=mini_batch_size,
        learning_rate=learning_rate,
        optimizer=optimizer,
        optimizers=OD_OPTIMIZERS,
    )
    if base_network not in OD_BASE_NETWORKS:
        problems.append(
            f"base_network {base_network!r} is not one of: {', '.join(OD_BASE_NETWORKS)}"
        )
    if not 0 <= momentum < 1:
        problems.append(f"momentum must be in [0, 1), got {momentum}")
    if not 0 <= weight_decay < 1:
        problems.append(f"weight_decay must be in [0, 1), got {weight_decay}")
    if isinstance(image_shape, bool) or not isinstance(image_shape, int) or image_shape < 300:
        problems.append(f"image_shape must be an integer >= 300, got {image_shape!r}")
    needed = min_label_width(max_boxes) if max_boxes is not None else None
    if label_width is None:
        width = max(DEFAULT_OD_LABEL_WIDTH, needed or 0)
    else:
        width = label_width
        if needed is not None and label_width < needed:
            problems.append(
                f"label_width {label_width} is too small for {max_boxes} boxes in one image; "
                f"it needs >= 2 + 5 x {max_boxes} = {needed}"
            )
    if (
        isinstance(num_training_samples, int)
        and isinstance(mini_batch_size, int)
        and 0 < num_training_samples < mini_batch_size
    ):
        problems.append(
            f"mini_batch_size {mini_batch_size} is larger than the {num_training_samples} "
            "training samples; no full batch can be formed"
        )
    if problems:
        raise ValidationError(problems, what="object detection hyperparameters")
    params = {
        "num_training_samples": hyperparameter_str(num_training_samples),
        "num_classes": hyperparameter_str(num_classes),
        "base_network": base_network,
        "use_pretrained_model": hyperparameter_str(use_pretrained_model),
        "epochs": hyperparameter_str(epochs),
        "mini_batch_size": hyperparameter_str(mini_batch_size),
        "learning_rate": hyperparameter_str(learning_rate),
        "optimizer": optimizer,
        "momentum": hyperparameter_str(momentum),
        "weight_decay": hyperparameter_str(weight_decay),
        "image_shape": hyperparameter_str(image_shape),
        "label_width": hyperparameter_str(width),
    }
    params.update(extra or {})
    return params


def image_classification_hyperparameters(
    *,
    num_training_samples: int,
    num_classes: int,
    num_layers: int = 18,
    image_shape: str = "3,224,224",
    use_pretrained_model: bool = True,
    epochs: int = 30,
    mini_batch_size: int = 32,
    learning_rate: float = 0.1,
    optimizer: str = "sgd",
    multi_label: bool = False,
    resize: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Hyperparameters for built-in image classification, every value a string.

    Raises:
        ValidationError: every out-of-range value at once.
    """
    problems = _shared_problems(
        num_training_samples=num_training_samples,
        num_classes=num_classes,
        epochs=epochs,
        mini_batch_size=mini_batch_size,
        learning_rate=learning_rate,
        optimizer=optimizer,
        optimizers=IC_OPTIMIZERS,
    )
    if num_layers not in IC_NUM_LAYERS:
        problems.append(
            f"num_layers {num_layers} is not one of: {', '.join(map(str, IC_NUM_LAYERS))}"
        )
    parts = image_shape.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        problems.append(f"image_shape must be 'channels,height,width', got {image_shape!r}")
    if resize is not None:
        _positive_int("resize", resize, problems)
    if problems:
        raise ValidationError(problems, what="image classification hyperparameters")
    params = {
        "num_training_samples": hyperparameter_str(num_training_samples),
        "num_classes": hyperparameter_str(num_classes),
        "num_layers": hyperparameter_str(num_layers),
        "image_shape": image_shape.replace(" ", ""),
        "use_pretrained_model": hyperparameter_str(use_pretrained_model),
        "epochs": hyperparameter_str(epochs),
        "mini_batch_size": hyperparameter_str(mini_batch_size),
        "learning_rate": hyperparameter_str(learning_rate),
        "optimizer": optimizer,
    }
    if multi_label:
        params["multi_label"] = "1"
    if resize is not None:
        params["resize"] = hyperparameter_str(resize)
    params.update(extra or {})
    return params


def _base_request(
    *,
    job_name: str,
    role_arn: str,
    image_uri: str,
    input_mode: str,
    channels: list[dict[str, Any]],
    hyperparameters: dict[str, str],
    output_uri: str,
    instance_type: str,
    instance_count: int,
    volume_size_gb: int,
    max_runtime_seconds: int,
    spot: bool,
    max_wait_seconds: int | None,
    tags: Mapping[str, str] | None,
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": {"TrainingImage": image_uri, "TrainingInputMode": input_mode},
        "RoleArn": role_arn,
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ResourceConfig": {
            "InstanceType": instance_type,
            "InstanceCount": instance_count,
            "VolumeSizeInGB": volume_size_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_seconds},
        "HyperParameters": hyperparameters,
    }
    if spot:
        request["EnableManagedSpotTraining"] = True
        request["StoppingCondition"]["MaxWaitTimeInSeconds"] = (
            max_wait_seconds or max_runtime_seconds
        )
    if tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return request


def channel_problems(
    request: Mapping[str, Any], *, algorithm: Algorithm = "object-detection"
) -> list[str]:
    """Channel settings that the built-in algorithms reject (RecordIO, ContentType, Pipe, …).

    Works on any CreateTrainingJob (or tuning ``TrainingJobDefinition``) dict, so the pre-flight
    can check hand-written requests too.
    """
    problems: list[str] = []
    channels = request.get("InputDataConfig") or []
    algo_mode = (request.get("AlgorithmSpecification") or {}).get("TrainingInputMode")
    names = [c.get("ChannelName") for c in channels if isinstance(c, Mapping)]
    augmented = False
    for channel in channels:
        if not isinstance(channel, Mapping):
            continue
        name = channel.get("ChannelName")
        source = (channel.get("DataSource") or {}).get("S3DataSource") or {}
        mode = channel.get("InputMode") or algo_mode
        where = f"channel {name!r}"
        if source.get("S3DataType") == "AugmentedManifestFile":
            augmented = True
            attributes = source.get("AttributeNames")
            if not attributes:
                problems.append(
                    f"{where}: an augmented manifest needs AttributeNames [source-ref, <label>] "
                    "(else 'Got empty batch from pipe')"
                )
            else:
                if len(attributes) != 2:
                    problems.append(
                        f"{where}: AttributeNames must be exactly [source-ref, <label>], "
                        f"got {attributes}"
                    )
                if attributes[0] not in _SOURCE_ATTRIBUTES:
                    problems.append(
                        f"{where}: AttributeNames must start with the image (source-ref), "
                        f"got {attributes}"
                    )
                for attr in attributes:
                    if isinstance(attr, str) and attr.endswith("-metadata"):
                        problems.append(f"{where}: AttributeNames must not include {attr!r}")
            if mode != "Pipe":
                problems.append(
                    f"{where}: AugmentedManifestFile works only in Pipe mode, not {mode}"
                )
            if channel.get("RecordWrapperType") != "RecordIO":
                problems.append(
                    f"{where}: RecordWrapperType must be RecordIO for built-in algorithms "
                    "(else 'Record IO header does not start with the magic number')"
                )
            content = channel.get("ContentType")
            if not (isinstance(content, str) and content.startswith(RECORDIO_CONTENT_TYPE)):
                problems.append(
                    f"{where}: ContentType must be {RECORDIO_CONTENT_TYPE}, got {content!r}"
                )
            if source.get("S3DataDistributionType", "FullyReplicated") != "FullyReplicated":
                problems.append(f"{where}: use S3DataDistributionType FullyReplicated")
        elif (
            channel.get("RecordWrapperType") == "RecordIO"
            and source.get("S3DataType") == "S3Prefix"
        ):
            problems.append(f"{where}: RecordWrapperType RecordIO is for augmented manifests only")
    required = ["train", "validation"]
    if algorithm == "image-classification" and not augmented and channels:
        required += ["train_lst", "validation_lst"]
    for name in required:
        if name not in names:
            problems.append(f"missing the {name!r} channel")
    if len(set(names)) != len(names):
        problems.append(f"channel names repeat: {names}")
    return problems


def _finish(request: dict[str, Any], algorithm: Algorithm, problems: list[str]) -> dict[str, Any]:
    problems.extend(problems_as_strings(validate_request("CreateTrainingJob", request)))
    problems.extend(channel_problems(request, algorithm=algorithm))
    if problems:
        raise ValidationError(list(dict.fromkeys(problems)), what="training job request")
    return request


def build_object_detection_training_request(
    *,
    job_name: str,
    role_arn: str,
    region: str,
    train_manifest_uri: str,
    validation_manifest_uri: str,
    label_attribute: str,
    output_uri: str,
    num_training_samples: int,
    num_classes: int,
    max_boxes: int | None = None,
    label_width: int | None = None,
    base_network: str = "resnet-50",
    use_pretrained_model: bool = True,
    epochs: int = 30,
    mini_batch_size: int = 32,
    learning_rate: float = 0.001,
    optimizer: str = "sgd",
    image_shape: int = 300,
    extra_hyperparameters: Mapping[str, str] | None = None,
    instance_type: str = "ml.p3.2xlarge",
    instance_count: int = 1,
    volume_size_gb: int = 50,
    max_runtime_seconds: int = 86_400,
    spot: bool = False,
    max_wait_seconds: int | None = None,
    image_uri: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Built-in object detection trained on Ground Truth's augmented manifests (Pipe, RecordIO).

    ``num_training_samples`` must be the exact non-empty line count of the train manifest
    (§8 pitfall 6); ``num_classes`` comes from the class map; ``max_boxes`` (most boxes on one
    image) sizes ``label_width``.

    Raises:
        ValidationError: every problem with the hyperparameters, channels and service model.

    Examples:
        >>> req = build_object_detection_training_request(
        ...     job_name="balls-od", role_arn="arn:aws:iam::123456789012:role/sm",
        ...     region="us-east-1", train_manifest_uri="s3://bkt/train.manifest",
        ...     validation_manifest_uri="s3://bkt/validation.manifest", label_attribute="boxes",
        ...     output_uri="s3://bkt/models", num_training_samples=32, num_classes=1, max_boxes=3)
        >>> req["InputDataConfig"][0]["DataSource"]["S3DataSource"]["AttributeNames"]
        ['source-ref', 'boxes']
    """
    problems: list[str] = []
    try:
        hyperparameters = object_detection_hyperparameters(
            num_training_samples=num_training_samples,
            num_classes=num_classes,
            max_boxes=max_boxes,
            label_width=label_width,
            base_network=base_network,
            use_pretrained_model=use_pretrained_model,
            epochs=epochs,
            mini_batch_size=mini_batch_size,
            learning_rate=learning_rate,
            optimizer=optimizer,
            image_shape=image_shape,
            extra=extra_hyperparameters,
        )
    except ValidationError as exc:
        problems.extend(exc.problems)
        hyperparameters = {}
    if label_attribute.endswith("-metadata"):
        problems.append(
            f"label_attribute {label_attribute!r} is the metadata key; pass the label key"
        )
    image = image_uri or _image_or_problem(region, "object-detection", problems)
    request = _base_request(
        job_name=job_name,
        role_arn=role_arn,
        image_uri=image,
        input_mode="Pipe",
        channels=[
            augmented_manifest_channel("train", train_manifest_uri, label_attribute),
            augmented_manifest_channel("validation", validation_manifest_uri, label_attribute),
        ],
        hyperparameters=hyperparameters,
        output_uri=output_uri,
        instance_type=instance_type,
        instance_count=instance_count,
        volume_size_gb=volume_size_gb,
        max_runtime_seconds=max_runtime_seconds,
        spot=spot,
        max_wait_seconds=max_wait_seconds,
        tags=tags,
    )
    if not instance_type.startswith(("ml.p", "ml.g")):
        problems.append(
            f"built-in object detection trains on GPU instances (ml.p*/ml.g*), not {instance_type}"
        )
    return _finish(request, "object-detection", problems)


def _image_or_problem(region: str, algorithm: Algorithm, problems: list[str]) -> str:
    try:
        return algorithm_image_uri(region, algorithm)
    except ValidationError as exc:
        problems.extend(exc.problems)
        return ""


def build_image_classification_training_request(
    *,
    job_name: str,
    role_arn: str,
    region: str,
    output_uri: str,
    num_training_samples: int,
    num_classes: int,
    train_manifest_uri: str | None = None,
    validation_manifest_uri: str | None = None,
    label_attribute: str | None = None,
    train_uri: str | None = None,
    validation_uri: str | None = None,
    train_lst_uri: str | None = None,
    validation_lst_uri: str | None = None,
    multi_label: bool = False,
    num_layers: int = 18,
    image_shape: str = "3,224,224",
    use_pretrained_model: bool = True,
    epochs: int = 30,
    mini_batch_size: int = 32,
    learning_rate: float = 0.1,
    optimizer: str = "sgd",
    resize: int | None = None,
    extra_hyperparameters: Mapping[str, str] | None = None,
    instance_type: str = "ml.p3.2xlarge",
    instance_count: int = 1,
    volume_size_gb: int = 50,
    max_runtime_seconds: int = 86_400,
    spot: bool = False,
    max_wait_seconds: int | None = None,
    image_uri: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Built-in image classification from augmented manifests (Pipe) or ``.lst`` files (File).

    Give either ``train_manifest_uri`` + ``validation_manifest_uri`` + ``label_attribute``, or
    the four ``.lst`` layout prefixes (``train_uri``, ``validation_uri``, ``train_lst_uri``,
    ``validation_lst_uri``). In ``.lst`` mode ``resize`` defaults to the image height, since the
    algorithm requires it for raw image files.

    Raises:
        ValidationError: every problem with the inputs, hyperparameters and service model.
    """
    problems: list[str] = []
    manifest_args = (train_manifest_uri, validation_manifest_uri, label_attribute)
    lst_args = (train_uri, validation_uri, train_lst_uri, validation_lst_uri)
    use_manifest = any(a is not None for a in manifest_args)
    use_lst = any(a is not None for a in lst_args)
    channels: list[dict[str, Any]] = []
    if use_manifest and use_lst:
        problems.append("give either augmented manifests or .lst prefixes, not both")
    if use_manifest:
        if None in manifest_args:
            problems.append(
                "augmented-manifest mode needs train_manifest_uri, validation_manifest_uri and "
                "label_attribute"
            )
        content = MULTI_LABEL_CONTENT_TYPE if multi_label else RECORDIO_CONTENT_TYPE
        attr = label_attribute or ""
        channels = [
            augmented_manifest_channel(
                "train", train_manifest_uri or "", attr, content_type=content
            ),
            augmented_manifest_channel(
                "validation", validation_manifest_uri or "", attr, content_type=content
            ),
        ]
        mode = "Pipe"
    elif use_lst:
        if None in lst_args:
            problems.append(
                ".lst mode needs train_uri, validation_uri, train_lst_uri and validation_lst_uri"
            )
        channels = [
            file_channel(name, uri or "")
            for name, uri in zip(
                ("train", "validation", "train_lst", "validation_lst"), lst_args, strict=True
            )
        ]
        mode = "File"
        if resize is None:
            parts = image_shape.split(",")
            resize = int(parts[1]) if len(parts) == 3 and parts[1].strip().isdigit() else None
    else:
        problems.append(
            "no input: give train_manifest_uri/validation_manifest_uri/label_attribute or the "
            "four .lst prefixes"
        )
        mode = "Pipe"
    try:
        hyperparameters = image_classification_hyperparameters(
            num_training_samples=num_training_samples,
            num_classes=num_classes,
            num_layers=num_layers,
            image_shape=image_shape,
            use_pretrained_model=use_pretrained_model,
            epochs=epochs,
            mini_batch_size=mini_batch_size,
            learning_rate=learning_rate,
            optimizer=optimizer,
            multi_label=multi_label,
            resize=resize,
            extra=extra_hyperparameters,
        )
    except ValidationError as exc:
        problems.extend(exc.problems)
        hyperparameters = {}
    image = image_uri or _image_or_problem(region, "image-classification", problems)
    request = _base_request(
        job_name=job_name,
        role_arn=role_arn,
        image_uri=image,
        input_mode=mode,
        channels=channels,
        hyperparameters=hyperparameters,
        output_uri=output_uri,
        instance_type=instance_type,
        instance_count=instance_count,
        volume_size_gb=volume_size_gb,
        max_runtime_seconds=max_runtime_seconds,
        spot=spot,
        max_wait_seconds=max_wait_seconds,
        tags=tags,
    )
    return _finish(request, "image-classification", problems)


def training_kwargs_from_facts(facts: ChannelFacts) -> dict[str, Any]:
    """Builder kwargs the converter already knows: counts, classes, label width, manifests.

    Examples:
        >>> facts = parse_channel_facts({"num_training_samples": {"train": 30, "validation": 8},
        ...                              "num_classes": 2, "label_width": 52})
        >>> training_kwargs_from_facts(facts)
        {'num_training_samples': 30, 'num_classes': 2, 'label_width': 52}
    """
    kwargs: dict[str, Any] = {
        "num_training_samples": facts.num_training_samples,
        "num_classes": facts.num_classes,
    }
    if facts.label_width is not None:
        kwargs["label_width"] = facts.label_width
    if facts.max_boxes is not None:
        kwargs["max_boxes"] = facts.max_boxes
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
