"""JumpStart fine-tuning requests, built from the model specs JumpStart publishes.

JumpStart keeps, per region, a public bucket ``jumpstart-cache-prod-<region>`` with a
``models_manifest.json`` (one entry per model id and version, naming its ``spec_key``) and one
spec JSON per model version. A spec names the training and hosting images per instance family
(``training_instance_type_variants`` with regional aliases), the pretrained artefact
(``training_artifact_key``), the fine-tuning script bundle (``training_prepacked_script_key`` or
``training_script_key``), the hyperparameters with their defaults and ranges, the
``MetricDefinitions`` and the serving environment. :func:`read_jumpstart_spec` reads both files
through an injected :class:`~gt_toolkit.storage.s3.S3Store`, the same shape the SageMaker SDK
reads, so tests serve a spec from moto.

:func:`build_jumpstart_training_request` turns a spec into ``CreateTrainingJob`` kwargs as the
SDK's JumpStart estimator would: the pretrained weights in a ``model`` channel, the script as
``sagemaker_submit_directory`` (through a ``code`` channel when the model trains network
isolated), JSON-encoded hyperparameters, and the model-id tags that deployment reads back. It
looks at the data before anything is paid for: an object detector (task ``od``/``od1``) needs
``images/`` plus ``annotations.json`` (``gt-convert jumpstart-od``), an image classifier (``ic``)
one folder per class (``gt-convert class-folders``, its ``train/``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from gt_toolkit.errors import StorageError, ValidationError
from gt_toolkit.sagemaker.debugger import ProfilerSettings
from gt_toolkit.sagemaker.job_kinds import JUMPSTART_MODEL_ID_TAG
from gt_toolkit.sagemaker.pytorch import encode_hyperparameters, prefix_channel
from gt_toolkit.sagemaker.tags import tag_list
from gt_toolkit.sagemaker.training import TrainingResources, finish_request
from gt_toolkit.storage.files import join_location
from gt_toolkit.storage.s3 import S3Store, is_s3_uri

__all__ = [
    "MANIFEST_KEY",
    "MODEL_VERSION_TAG",
    "TASK_LAYOUTS",
    "JumpStartSpec",
    "build_jumpstart_training_request",
    "jumpstart_bucket",
    "jumpstart_hyperparameters",
    "jumpstart_serving_container",
    "model_task",
    "read_jumpstart_spec",
]

MANIFEST_KEY: Final = "models_manifest.json"
MODEL_VERSION_TAG: Final = "sagemaker-sdk:jumpstart-model-version"
CODE_CHANNEL_SOURCEDIR: Final = "/opt/ml/input/data/code/sourcedir.tar.gz"
MODEL_CONTENT_TYPE: Final = "application/x-sagemaker-model"

Layout = Literal["class-folders", "jumpstart-od"]
TASK_LAYOUTS: Final[dict[str, Layout]] = {
    "ic": "class-folders",
    "od": "jumpstart-od",
    "od1": "jumpstart-od",
}
"""JumpStart task (the second part of a model id, ``pytorch-ic-resnet18``) -> the data it reads."""


def model_task(model_id: str) -> str:
    """``ic``, ``od``, ``od1``, ``tc``…: JumpStart's ``framework-task-name`` model-id scheme."""
    parts = model_id.split("-")
    return parts[1] if len(parts) >= 3 else ""


def jumpstart_bucket(region: str) -> str:
    """The public bucket holding JumpStart's manifest, specs, scripts and weights."""
    return f"jumpstart-cache-prod-{region}"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in version.split("."))


def _family(instance_type: str) -> str:
    """``ml.g5.xlarge`` -> ``g5``: the key of a spec's instance-type variants."""
    parts = instance_type.split(".")
    return parts[1] if len(parts) == 3 else ""


@dataclass(frozen=True, slots=True)
class JumpStartSpec:
    """One model version's published spec (``raw``) and the region it was read for."""

    model_id: str
    version: str
    region: str
    raw: Mapping[str, Any]

    @property
    def task(self) -> str:
        """The model's task (:func:`model_task`)."""
        return model_task(self.model_id)

    def _uri(self, key_field: str) -> str | None:
        key = self.raw.get(key_field)
        return f"s3://{jumpstart_bucket(self.region)}/{key}" if key else None

    @property
    def training_artifact_uri(self) -> str | None:
        """The pretrained weights the fine-tuning starts from."""
        return self._uri("training_artifact_key")

    @property
    def training_script_uri(self) -> str | None:
        """The fine-tuning bundle; the prepacked one also packs inference code into the model."""
        return self._uri("training_prepacked_script_key") or self._uri("training_script_key")

    def image_uri(self, instance_type: str, *, scope: Literal["training", "hosting"]) -> str | None:
        """The image for ``instance_type`` (exact type first, then its family), or ``None``."""
        variants = self.raw.get(f"{scope}_instance_type_variants") or {}
        aliases = (variants.get("regional_aliases") or {}).get(self.region) or {}
        table = variants.get("variants") or {}
        for key in (instance_type, _family(instance_type)):
            alias = ((table.get(key) or {}).get("regional_properties") or {}).get("image_uri")
            if isinstance(alias, str) and alias.startswith("$") and alias[1:] in aliases:
                return str(aliases[alias[1:]])
        return None

    def metric_definitions(self, instance_type: str) -> list[dict[str, str]]:
        """The spec's metrics plus any the instance family adds (by name, first wins)."""
        table = (self.raw.get("training_instance_type_variants") or {}).get("variants") or {}
        extra = ((table.get(_family(instance_type)) or {}).get("properties") or {}).get("metrics")
        merged: dict[str, dict[str, str]] = {}
        for metric in [*(self.raw.get("metrics") or []), *(extra or [])]:
            merged.setdefault(
                str(metric["Name"]), {"Name": metric["Name"], "Regex": metric["Regex"]}
            )
        return list(merged.values())

    def hyperparameter_specs(self, scope: str = "algorithm") -> dict[str, Mapping[str, Any]]:
        """The spec's hyperparameters of one scope (``algorithm`` or ``container``), by name."""
        return {
            str(hp["name"]): hp
            for hp in self.raw.get("hyperparameters") or []
            if hp.get("scope") == scope
        }

    def inference_environment(self) -> dict[str, str]:
        """The serving container's environment: the spec's container-scope defaults, as text."""
        return {
            str(var["name"]): str(var["default"])
            for var in self.raw.get("inference_environment_variables") or []
            if var.get("scope") == "container"
        }


def read_jumpstart_spec(
    store: S3Store, *, region: str, model_id: str, version: str = "*"
) -> JumpStartSpec:
    """The published spec of ``model_id`` (newest version for ``"*"``) in ``region``.

    Raises:
        ValidationError: the model id or version is not in the region's manifest (the message
            names close model ids).
        StorageError: the bucket, manifest or spec cannot be read.
    """
    bucket = jumpstart_bucket(region)
    manifest = json.loads(store.get_bytes(f"s3://{bucket}/{MANIFEST_KEY}"))
    entries = [e for e in manifest if isinstance(e, Mapping) and e.get("model_id") == model_id]
    if version != "*":
        entries = [e for e in entries if e.get("version") == version]
    if not entries:
        task = model_task(model_id)
        near = sorted(
            {
                str(e.get("model_id"))
                for e in manifest
                if task and f"-{task}-" in str(e.get("model_id"))
            }
        )[:10]
        hint = f"; models of the same task: {', '.join(near)}" if near else ""
        wanted = model_id if version == "*" else f"{model_id} version {version}"
        raise ValidationError(
            [f"JumpStart has no {wanted} in {region}{hint}"], what="JumpStart model"
        )
    entry = max(entries, key=lambda e: _version_key(str(e.get("version", ""))))
    raw = json.loads(store.get_bytes(f"s3://{bucket}/{entry['spec_key']}"))
    return JumpStartSpec(model_id=model_id, version=str(entry["version"]), region=region, raw=raw)


def _coerce(name: str, spec: Mapping[str, Any], value: Any) -> tuple[Any, str | None]:
    """``value`` as the spec's type (``int``/``float``/``text``), or a problem."""
    kind = spec.get("type")
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        return value, f"{name} must be an integer, got {value!r}"
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value, f"{name} must be a number, got {value!r}"
        value = float(value)
        if not math.isfinite(value):  # NaN passes any min/max comparison
            return value, f"{name} must be finite, got {value}"
    if kind == "text":
        value = ("True" if value else "False") if isinstance(value, bool) else value
        if not isinstance(value, str):
            return value, f"{name} must be text, got {value!r}"
        options = spec.get("options")
        if options and value not in options:
            return value, f"{name} {value!r} is not one of: {', '.join(map(str, options))}"
        return value, None
    low, high = spec.get("min"), spec.get("max")
    if (low is not None and value < low) or (high is not None and value > high):
        return value, f"{name} must be in [{low}, {high}], got {value}"
    return value, None


def jumpstart_hyperparameters(
    spec: JumpStartSpec, values: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The spec's algorithm defaults overridden by ``values`` (checked against the spec).

    Raises:
        ValidationError: names the model does not take and values out of its range.
    """
    known = spec.hyperparameter_specs()
    merged = {name: hp["default"] for name, hp in known.items()}
    problems = []
    for name, value in (values or {}).items():
        if name not in known:
            problems.append(
                f"{spec.model_id} takes no hyperparameter {name!r}; it takes: {', '.join(known)}"
            )
            continue
        merged[name], problem = _coerce(name, known[name], value)
        if problem:
            problems.append(problem)
    if problems:
        raise ValidationError(problems, what=f"{spec.model_id} hyperparameters")
    return merged


def _layout_problem(store: S3Store, spec: JumpStartSpec, train_uri: str) -> str | None:
    """Why the data under ``train_uri`` does not suit the model's task, or ``None``."""
    wanted = TASK_LAYOUTS.get(spec.task)
    if wanted is None:
        return (
            f"{spec.model_id} is a {spec.task or 'unknown'}-task model; JumpStart fine-tuning "
            f"here covers image classification (ic) and object detection (od, od1)"
        )
    try:
        has_annotations = store.exists(join_location(train_uri, "annotations.json"))
    except StorageError as exc:
        return f"cannot look at the training data {train_uri}: {exc}"
    if wanted == "jumpstart-od" and not has_annotations:
        return (
            f"{spec.model_id} is an object detector: it needs images/ plus annotations.json "
            f"(gt-convert jumpstart-od), and {train_uri} has no annotations.json "
            "(class folders are for image classifiers)"
        )
    if wanted == "class-folders" and has_annotations:
        return (
            f"{spec.model_id} is an image classifier: it needs one folder per class "
            f"(gt-convert class-folders), and {train_uri} holds detection data (annotations.json)"
        )
    return None


def _spec_problems(spec: JumpStartSpec, instance_type: str, validation: bool) -> list[str]:
    raw = spec.raw
    problems = []
    if not raw.get("training_supported"):
        problems.append(f"{spec.model_id} {spec.version} cannot be fine-tuned (training_supported)")
    if raw.get("deprecated"):
        problems.append(
            f"{spec.model_id} {spec.version} is deprecated: {raw.get('deprecated_message') or ''}"
        )
    if raw.get("training_vulnerable"):
        problems.append(
            f"{spec.model_id} {spec.version}'s training script has known vulnerabilities"
        )
    supported = raw.get("supported_training_instance_types") or []
    if supported and instance_type not in supported:
        problems.append(f"{spec.model_id} trains on {', '.join(supported)}, not {instance_type}")
    if validation and not raw.get("validation_supported"):
        problems.append(
            f"{spec.model_id} takes no validation channel (it holds out part of the training data)"
        )
    if not (spec.training_artifact_uri and spec.training_script_uri):
        problems.append(f"the {spec.model_id} spec names no training artefact or script")
    return problems


def _object_channel(name: str, uri: str, content_type: str | None = None) -> dict[str, Any]:
    """A File-mode channel over one object (the weights or the script bundle)."""
    channel: dict[str, Any] = {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "InputMode": "File",
    }
    if content_type is not None:
        channel["ContentType"] = content_type
    return channel


def _channels(
    spec: JumpStartSpec, train_uri: str, validation_uri: str | None, isolated: bool
) -> list[dict[str, Any]]:
    """``training`` (+ ``validation``), the weights as ``model``, the script as ``code``."""
    channels = [prefix_channel("training", train_uri)]
    if validation_uri is not None:
        channels.append(prefix_channel("validation", validation_uri))
    channels.append(_object_channel("model", spec.training_artifact_uri or "", MODEL_CONTENT_TYPE))
    if isolated:
        channels.append(_object_channel("code", spec.training_script_uri or ""))
    return channels


def _data_problems(
    store: S3Store, spec: JumpStartSpec, train_uri: str, output_uri: str
) -> list[str]:
    """Locations that are not S3 URIs, and training data off the layout the model's task reads."""
    problems = [
        f"{n} must be an s3:// URI, got {u!r}"
        for n, u in (("train_uri", train_uri), ("output_uri", output_uri))
        if not is_s3_uri(u)
    ]
    if is_s3_uri(train_uri) and (layout := _layout_problem(store, spec, train_uri)):
        problems.append(layout)
    return problems


def _container_hyperparameters(
    spec: JumpStartSpec, isolated: bool, job_name: str, region: str
) -> dict[str, Any]:
    """The ``sagemaker_*`` entries the framework container reads to find and run the script."""
    container = spec.hyperparameter_specs("container")
    program = (container.get("sagemaker_program") or {}).get("default", "transfer_learning.py")
    log_level = (container.get("sagemaker_container_log_level") or {}).get("default", "20")
    return {
        "sagemaker_program": program,
        "sagemaker_submit_directory": CODE_CHANNEL_SOURCEDIR
        if isolated
        else spec.training_script_uri,
        "sagemaker_container_log_level": log_level,
        "sagemaker_job_name": job_name,
        "sagemaker_region": region,
    }


def build_jumpstart_training_request(
    *,
    store: S3Store,
    model_id: str,
    region: str,
    job_name: str,
    role_arn: str,
    train_uri: str,
    output_uri: str,
    validation_uri: str | None = None,
    model_version: str = "*",
    hyperparameters: Mapping[str, Any] | None = None,
    resources: TrainingResources | None = None,
    debugger_rules: Sequence[str] = (),
    profiler: ProfilerSettings | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Fine-tune a JumpStart model (``pytorch-ic-resnet18``, ``pytorch-od1-…``) on our data.

    Args:
        store: reads the model's spec from ``jumpstart-cache-prod-<region>`` and checks that
            ``train_uri`` holds the layout the model's task needs.
        train_uri: ``s3://…/`` with class folders (``ic``) or ``images/`` + ``annotations.json``
            (``od``, ``od1``).
        hyperparameters: the model's own names (``epochs``, ``learning_rate``,
            ``batch_size``…), checked against the spec's types and ranges.
        resources: default one of the spec's ``default_training_instance_type`` with the
            spec's ``training_volume_size`` (or 30 GB), a day at most.
        debugger_rules, profiler: see :func:`gt_toolkit.sagemaker.debugger.attach_debugging`
            (tensor rules are refused: no hook writes tensors in JumpStart's scripts).

    Raises:
        ValidationError: an unknown model, a task that does not match the data, and every
            problem with the spec, the hyperparameters and the service model.
    """
    spec = read_jumpstart_spec(store, region=region, model_id=model_id, version=model_version)
    raw = spec.raw
    if resources is None:
        resources = TrainingResources(
            instance_type=str(raw.get("default_training_instance_type") or ""),
            volume_size_gb=int(raw.get("training_volume_size") or 30),
        )
    instance = resources.instance_type
    problems = _spec_problems(spec, instance, validation_uri is not None)
    problems += _data_problems(store, spec, train_uri, output_uri)
    try:
        merged = jumpstart_hyperparameters(spec, hyperparameters)
    except ValidationError as exc:
        problems.extend(exc.problems)
        merged = {}
    image = spec.image_uri(instance, scope="training")
    if image is None:
        problems.append(
            f"the {spec.model_id} spec has no training image for {instance} in {region}"
        )
    isolated = bool(raw.get("training_enable_network_isolation"))
    request: dict[str, Any] = {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": {
            "TrainingImage": image or "",
            "TrainingInputMode": "File",
            "MetricDefinitions": spec.metric_definitions(instance),
        },
        "RoleArn": role_arn,
        "InputDataConfig": _channels(spec, train_uri, validation_uri, isolated),
        "OutputDataConfig": {"S3OutputPath": output_uri},
        **resources.request_fields(),
        "HyperParameters": encode_hyperparameters(
            {**merged, **_container_hyperparameters(spec, isolated, job_name, region)}
        ),
        "EnableNetworkIsolation": isolated,
        "Tags": tag_list(
            {JUMPSTART_MODEL_ID_TAG: spec.model_id, MODEL_VERSION_TAG: spec.version, **(tags or {})}
        ),
    }
    if (raw.get("estimator_kwargs") or {}).get("encrypt_inter_container_traffic"):
        request["EnableInterContainerTrafficEncryption"] = True
    return finish_request(
        request,
        region=region,
        debugger_rules=debugger_rules,
        profiler=profiler,
        problems=problems,
        what="JumpStart training request",
    )


def jumpstart_serving_container(
    store: S3Store, *, region: str, tags: Mapping[str, str], instance_type: str
) -> tuple[dict[str, Any], bool]:
    """``PrimaryContainer`` (less ``ModelDataUrl``) and network isolation for a fine-tuned model.

    The spec is found again from the job's model-id and version tags. Fine-tuning with the
    prepacked script writes the inference code into the model archive, so the serving image
    and the spec's environment (``SAGEMAKER_PROGRAM=inference.py``, code in
    ``/opt/ml/model/code``) are all it needs.

    Raises:
        ValidationError: no model-id tag, a model trained without the prepacked script (its
            archive lacks inference code: the SageMaker SDK repacks those), an ``instance_type``
            outside the spec's ``supported_inference_instance_types`` (its image table names
            whole families, so an image alone does not make a type supported), or no serving
            image for it.
    """
    model_id = tags.get(JUMPSTART_MODEL_ID_TAG)
    if not model_id:
        raise ValidationError(
            [f"the training job has no {JUMPSTART_MODEL_ID_TAG} tag"], what="deployment"
        )
    version = tags.get(MODEL_VERSION_TAG, "*")
    spec = read_jumpstart_spec(store, region=region, model_id=model_id, version=version)
    problems = []
    if not spec.raw.get("training_prepacked_script_key"):
        problems.append(
            f"{model_id} {spec.version} fine-tunes without a prepacked script, so its model "
            "archive holds no inference code; deploy it with the SageMaker SDK, which repacks it"
        )
    supported = spec.raw.get("supported_inference_instance_types") or []
    if supported and instance_type not in supported:
        problems.append(f"{model_id} serves on {', '.join(supported)}, not {instance_type}")
    image = spec.image_uri(instance_type, scope="hosting")
    if image is None:
        problems.append(f"the {model_id} spec has no serving image for {instance_type} in {region}")
    if problems:
        raise ValidationError(problems, what="deployment")
    container = {"Image": image, "Environment": spec.inference_environment()}
    return container, bool(spec.raw.get("inference_enable_network_isolation"))
