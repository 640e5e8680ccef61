"""CreateTrainingJob requests for the shipped PyTorch classifier in script mode.

The training script (:mod:`gt_toolkit.sagemaker.scripts.pytorch_classifier`) ships inside the
wheel. :func:`pack_pytorch_source` packs it as ``sourcedir.tar.gz`` (byte-for-byte the same for
the same files, so re-uploads are idempotent), :func:`upload_pytorch_source` puts that on S3,
and :func:`build_pytorch_training_request` points a job at it:

- the PyTorch Deep Learning Container for the region, framework version and instance (CPU or
  GPU build, :func:`gt_toolkit.sagemaker.regions.pytorch_image_uri`);
- ``sagemaker_program`` / ``sagemaker_submit_directory`` and every hyperparameter JSON-encoded,
  which is how the framework container reads them (it JSON-decodes each value and passes
  ``--name value`` to the script; :func:`script_argv` does the same, for tests and the smoke run);
- ``train`` and ``validation`` channels over the class folders ``gt-convert class-folders``
  writes;
- ``MetricDefinitions`` made from the script's own metric line format, so they cannot drift;
- ``CheckpointConfig`` when asked (``checkpoint_uri``) or when the job runs on spot capacity, with
  the script pointed at its local path, so an interrupted job resumes after its last epoch.

Hyperparameter names, types and ranges are the script's (``contract.Hyperparameters``): an
out-of-range value is refused where it is written (:class:`PyTorchClassifierHyperparameters`),
before the job is paid for.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from gt_toolkit.errors import ValidationError
from gt_toolkit.sagemaker.debugger import ProfilerSettings
from gt_toolkit.sagemaker.regions import (
    PYTORCH_INFERENCE_VERSIONS,
    is_gpu_instance,
    pytorch_image_uri,
)
from gt_toolkit.sagemaker.scripts.pytorch_classifier import contract
from gt_toolkit.sagemaker.tags import tag_list
from gt_toolkit.sagemaker.training import TrainingResources, finish_request
from gt_toolkit.storage.s3 import S3Store, is_s3_uri

__all__ = [
    "CHECKPOINT_LOCAL_PATH",
    "DEFAULT_PYTORCH_RESOURCES",
    "DEFAULT_PYTORCH_VERSION",
    "SCRIPT_DIR",
    "TENSORBOARD_LOCAL_PATH",
    "PyTorchClassifierHyperparameters",
    "build_pytorch_training_request",
    "default_checkpoint_uri",
    "encode_hyperparameters",
    "pack_pytorch_source",
    "prefix_channel",
    "pytorch_serving_container",
    "script_argv",
    "upload_pytorch_source",
]

SCRIPT_DIR: Final = Path(contract.__file__).resolve().parent
DEFAULT_PYTORCH_VERSION: Final = "2.6.0"
TENSORBOARD_LOCAL_PATH: Final = "/opt/ml/output/tensorboard"
CHECKPOINT_LOCAL_PATH: Final = "/opt/ml/checkpoints"
_CHECKPOINT_URI_MAX: Final = 1024  # CheckpointConfig.S3Uri's length limit in the service model
"""``CheckpointConfig``'s ``LocalPath`` (the service's default), the script's ``checkpoint_dir``."""
SERVING_CODE_DIR: Final = f"/opt/ml/model/{contract.CODE_DIR}"
_TRAINING_IMAGE_RE: Final = re.compile(
    r"^\d{12}\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/pytorch-training:"
    r"(?P<version>\d+(?:\.\d+)+)-(?:cpu|gpu)-py\d+"
)
DEFAULT_PYTORCH_RESOURCES: Final = TrainingResources(
    instance_type="ml.g5.xlarge", volume_size_gb=30
)


def pack_pytorch_source(script_dir: Path = SCRIPT_DIR) -> bytes:
    """``sourcedir.tar.gz`` of the shipped scripts: reproducible (fixed order, times, owners)."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        for name in contract.SOURCE_FILES:
            data = (script_dir / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def upload_pytorch_source(store: S3Store, uri: str) -> str:
    """Upload :func:`pack_pytorch_source` to ``uri`` (``s3://…/sourcedir.tar.gz``); the URI."""
    if not (is_s3_uri(uri) and uri.endswith(".tar.gz")):
        raise ValidationError([f"the source bundle goes to an s3://….tar.gz URI, got {uri!r}"])
    store.put_bytes(uri, pack_pytorch_source(), content_type="application/gzip")
    return uri


def encode_hyperparameters(values: Mapping[str, Any]) -> dict[str, str]:
    """Every value JSON-encoded: ``resnet50`` as ``"resnet50"`` (quotes included), ``0.001``.

    The framework container JSON-decodes each value and keeps one that is not JSON as it is,
    so a raw ``resnet50`` would work too; but a raw text that happens to be JSON (``"1"``,
    ``"true"``, ``"null"``) would change type on the way, and encoded it cannot.
    """
    return {str(k): json.dumps(v) for k, v in values.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class PyTorchClassifierHyperparameters(contract.Hyperparameters):
    """The shipped script's hyperparameters, refused where they are written when out of range.

    The fields, defaults and limits are the script's own (``contract.Hyperparameters``); an
    integer given for a real-valued field is taken as that number.

    Raises:
        ValidationError: every bad value at once.

    Examples:
        >>> PyTorchClassifierHyperparameters(arch="resnet50", learning_rate=1).as_strings()["arch"]
        '"resnet50"'
    """

    def __post_init__(self) -> None:
        for name, kind in contract.KINDS.items():
            value = getattr(self, name)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        problems = self.problems()
        if problems:
            raise ValidationError(problems, what="PyTorch classifier hyperparameters")

    def as_strings(self) -> dict[str, str]:
        """``HyperParameters`` as the framework container reads them (JSON-encoded values)."""
        return encode_hyperparameters(self.values())


def prefix_channel(name: str, s3_prefix: str) -> dict[str, Any]:
    """A File-mode channel over an S3 prefix, made to end in ``/``.

    Without the slash, ``s3://b/train`` would also pull in ``s3://b/train_old/``.
    """
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": s3_prefix if s3_prefix.endswith("/") else s3_prefix + "/",
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "InputMode": "File",
    }


def pytorch_serving_container(
    training_job: Mapping[str, Any], *, instance_type: str
) -> dict[str, Any]:
    """``PrimaryContainer`` (less ``ModelDataUrl``) serving a model the shipped script trained.

    The inference image matches the training image's version (or the newest serving version
    before it; the serving images trail the training ones) and the endpoint's instance (CPU or
    GPU build). The model archive already holds ``code/inference.py`` (``train.py`` copies it
    there), so the environment points the server at it and nothing is repacked.

    Args:
        training_job: ``describe_training_job``'s answer (or the training request).

    Raises:
        ValidationError: a job not trained by the shipped ``train.py`` in a PyTorch image, or
            in one older than every known serving image.
    """
    hyperparameters = training_job.get("HyperParameters") or {}
    image = str((training_job.get("AlgorithmSpecification") or {}).get("TrainingImage", ""))
    try:
        program = json.loads(hyperparameters.get("sagemaker_program", '""'))
    except json.JSONDecodeError:
        program = hyperparameters.get("sagemaker_program")
    match = _TRAINING_IMAGE_RE.match(image)
    if program != contract.TRAIN_SCRIPT or match is None:
        raise ValidationError(
            [
                f"{training_job.get('TrainingJobName')} was not trained by the shipped "
                f"{contract.TRAIN_SCRIPT} in a PyTorch training image ({program!r}, {image}); "
                "build its model with build_model_request and its own serving image"
            ],
            what="deployment",
        )
    version, region = match.group("version"), match.group("region")
    serving = [v for v in PYTORCH_INFERENCE_VERSIONS if _version_key(v) <= _version_key(version)]
    if not serving:  # an older image given as image_uri: no serving image is known for it
        raise ValidationError(
            [
                f"{training_job.get('TrainingJobName')} trained in PyTorch {version}, older than "
                f"every known serving image ({', '.join(PYTORCH_INFERENCE_VERSIONS)}); build "
                "its model with build_model_request and a pytorch-inference image of its version"
            ],
            what="deployment",
        )
    chosen = version if version in PYTORCH_INFERENCE_VERSIONS else max(serving, key=_version_key)
    return {
        "Image": pytorch_image_uri(region, chosen, instance_type=instance_type, scope="inference"),
        "Environment": {
            "SAGEMAKER_PROGRAM": contract.INFERENCE_SCRIPT,
            "SAGEMAKER_SUBMIT_DIRECTORY": SERVING_CODE_DIR,
            "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
            "SAGEMAKER_REGION": region,
        },
    }


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def script_argv(hyperparameters: Mapping[str, str]) -> list[str]:
    """The arguments the framework container gives the entry script for these hyperparameters.

    Restates the SageMaker training toolkit's rule: decode each value as JSON (one that is not
    JSON stays the raw string), drop the keys the toolkit keeps for itself (``sagemaker_*``, and
    ``_tuning_objective_metric``, which a tuning job adds to each of its training jobs), and pass
    ``--key value`` in sorted key order with ``str(value)`` (so ``true`` arrives as ``True``).
    """
    argv: list[str] = []
    for key in sorted(hyperparameters):
        if contract.is_toolkit_key(key):
            continue
        try:
            value: Any = json.loads(hyperparameters[key])
        except (json.JSONDecodeError, TypeError):
            value = hyperparameters[key]
        if isinstance(value, Mapping):
            text = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        else:
            text = "" if value is None else str(value)
        argv += [f"--{key}" if len(key) > 1 else f"-{key}", text]
    return argv


def _uri_problems(**uris: str) -> list[str]:
    return [
        f"{name} must be an s3:// URI, got {uri!r}"
        for name, uri in uris.items()
        if not is_s3_uri(uri)
    ]


def default_checkpoint_uri(output_uri: str, job_name: str) -> str:
    """``<output_uri>/<job_name>/checkpoints``: beside the job's ``output/model.tar.gz``.

    Where a spot job's checkpoints go when no ``checkpoint_uri`` is given. The job's name is in
    it, so a new job starts clean; to resume another job's run, pass that job's URI.
    """
    return f"{output_uri.rstrip('/')}/{job_name}/checkpoints"


def build_pytorch_training_request(
    *,
    job_name: str,
    role_arn: str,
    region: str,
    train_uri: str,
    validation_uri: str,
    output_uri: str,
    source_dir_uri: str,
    hyperparameters: PyTorchClassifierHyperparameters = PyTorchClassifierHyperparameters(),
    resources: TrainingResources = DEFAULT_PYTORCH_RESOURCES,
    framework_version: str = DEFAULT_PYTORCH_VERSION,
    tensorboard_output_uri: str | None = None,
    debugger_rules: Sequence[str] = (),
    profiler: ProfilerSettings | None = None,
    image_uri: str | None = None,
    tags: Mapping[str, str] | None = None,
    checkpoint_uri: str | None = None,
) -> dict[str, Any]:
    """Fine-tune the shipped ResNet classifier on class folders in script mode.

    Args:
        train_uri: ``s3://…/train/`` holding one folder per class (``gt-convert class-folders``).
        validation_uri: the same classes for validation.
        source_dir_uri: where :func:`upload_pytorch_source` put ``sourcedir.tar.gz``.
        hyperparameters: e.g. ``PyTorchClassifierHyperparameters(arch="resnet50", epochs=5)``.
        resources: default one ``ml.g5.xlarge`` with 30 GB, a day at most.
        tensorboard_output_uri: adds ``TensorBoardOutputConfig``; the script writes its
            scalars there.
        checkpoint_uri: adds ``CheckpointConfig``: the script saves a checkpoint after every
            epoch and a job (re)started with the same URI and hyperparameters resumes from it.
            Default for a spot job (``resources.spot``): :func:`default_checkpoint_uri`; none
            otherwise.
        debugger_rules, profiler: opt-in; see
            :func:`gt_toolkit.sagemaker.debugger.attach_debugging`.

    Raises:
        ValidationError: every problem with the inputs, hyperparameters and service model.

    Examples:
        >>> req = build_pytorch_training_request(
        ...     job_name="dogs", role_arn="arn:aws:iam::123456789012:role/sm", region="us-east-1",
        ...     train_uri="s3://bkt/dogs/train", validation_uri="s3://bkt/dogs/validation",
        ...     output_uri="s3://bkt/models", source_dir_uri="s3://bkt/code/sourcedir.tar.gz",
        ...     hyperparameters=PyTorchClassifierHyperparameters(arch="resnet50"))
        >>> req["AlgorithmSpecification"]["TrainingImage"].rsplit("/", 1)[1]
        'pytorch-training:2.6.0-gpu-py312'
        >>> req["HyperParameters"]["arch"], req["HyperParameters"]["sagemaker_program"]
        ('"resnet50"', '"train.py"')
    """
    problems = _uri_problems(
        train_uri=train_uri,
        validation_uri=validation_uri,
        output_uri=output_uri,
        source_dir_uri=source_dir_uri,
        **({} if checkpoint_uri is None else {"checkpoint_uri": checkpoint_uri}),
    )
    if checkpoint_uri is None and resources.spot:
        default = default_checkpoint_uri(output_uri, job_name)
        if len(default) <= _CHECKPOINT_URI_MAX:
            checkpoint_uri = default
        else:  # say where it came from: the caller never named a checkpoint location
            problems.append(
                f"a spot job's default checkpoint location ({len(default)} characters: "
                f"output_uri/job_name/checkpoints) is longer than the {_CHECKPOINT_URI_MAX} "
                "the service takes: give checkpoint_uri a shorter s3:// URI"
            )
    if is_s3_uri(source_dir_uri) and not source_dir_uri.endswith(".tar.gz"):
        problems.append(f"source_dir_uri must name a .tar.gz bundle, got {source_dir_uri!r}")
    if resources.instance_count != 1:
        problems.append(
            f"the shipped {contract.TRAIN_SCRIPT} is not distributed: each of "
            f"{resources.instance_count} instances would train the same model on the same data; "
            "use instance_count=1"
        )
    if hyperparameters.device == "cuda" and not is_gpu_instance(resources.instance_type):
        problems.append(
            f"device 'cuda' needs a GPU instance (ml.p*/ml.g*), not {resources.instance_type}: "
            f"{contract.TRAIN_SCRIPT} would stop at start-up seeing no GPU; use device 'auto'"
        )
    if tensorboard_output_uri is not None:
        hyperparameters = replace(hyperparameters, tensorboard_dir=TENSORBOARD_LOCAL_PATH)
    if checkpoint_uri is not None:
        hyperparameters = replace(hyperparameters, checkpoint_dir=CHECKPOINT_LOCAL_PATH)
    image = image_uri
    if image is None:
        try:
            image = pytorch_image_uri(
                region, framework_version, instance_type=resources.instance_type
            )
        except ValidationError as exc:
            problems.extend(exc.problems)
            image = ""
    request: dict[str, Any] = {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": contract.metric_definitions(),
            "EnableSageMakerMetricsTimeSeries": True,
        },
        "RoleArn": role_arn,
        "InputDataConfig": [
            prefix_channel("train", train_uri),
            prefix_channel("validation", validation_uri),
        ],
        "OutputDataConfig": {"S3OutputPath": output_uri},
        **resources.request_fields(),
        "HyperParameters": encode_hyperparameters(
            {
                **hyperparameters.values(),
                "sagemaker_program": contract.TRAIN_SCRIPT,
                "sagemaker_submit_directory": source_dir_uri,
                "sagemaker_container_log_level": 20,
                "sagemaker_job_name": job_name,
                "sagemaker_region": region,
            }
        ),
    }
    if tensorboard_output_uri is not None:
        request["TensorBoardOutputConfig"] = {
            "S3OutputPath": tensorboard_output_uri,
            "LocalPath": TENSORBOARD_LOCAL_PATH,
        }
    if checkpoint_uri is not None:
        request["CheckpointConfig"] = {"S3Uri": checkpoint_uri, "LocalPath": CHECKPOINT_LOCAL_PATH}
    if tags:
        request["Tags"] = tag_list(tags)
    return finish_request(
        request,
        region=region,
        debugger_rules=debugger_rules,
        profiler=profiler,
        problems=problems,
        what="PyTorch training request",
    )
