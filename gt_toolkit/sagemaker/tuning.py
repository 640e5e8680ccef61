"""Hyperparameter tuning requests for every training backend, and picking the best job.

A tuning job multiplies the cost of every mistake in its training definition by the number
of jobs, so :func:`build_tuning_request` starts from a request our training builders already
validated. For the built-in algorithms it adds the ranges AWS's tuning pages recommend
(``docs/training.md``, "Tuning"): ``learning_rate`` 1e-6..0.5 logarithmic,
``mini_batch_size`` an integer range (capped at the training set size), ``optimizer``
categorical, objective ``validation:mAP`` or ``validation:accuracy`` maximised, early stopping
``Auto``; a range over a hyperparameter the algorithm does not tune (:data:`TUNABLE`) is
refused. For script mode and JumpStart (``docs/training.md``) the ranges are ``learning_rate``
(logarithmic), ``batch_size`` and ``epochs``, names both take; the objective must be one of the
request's own ``MetricDefinitions`` (the failure "A metric is required for this hyperparameter
tuning job objective" otherwise comes after the jobs start), and categorical values are
JSON-encoded as the framework containers read every hyperparameter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TypeVar

from gt_toolkit.errors import GtToolkitError, ValidationError
from gt_toolkit.sagemaker.job_kinds import Algorithm, algorithm_of, job_kind
from gt_toolkit.sagemaker.regions import is_gpu_instance
from gt_toolkit.sagemaker.scripts.pytorch_classifier import contract
from gt_toolkit.sagemaker.service_validation import problems_as_strings, validate_request
from gt_toolkit.sagemaker.tags import tag_list, tag_map
from gt_toolkit.sagemaker.training import (
    IC_OPTIMIZERS,
    OD_OPTIMIZERS,
    ObjectDetectionHyperparameters,
    channel_problems,
    hyperparameter_str,
)

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

__all__ = [
    "OBJECTIVES",
    "TUNABLE",
    "BestTrainingJob",
    "CategoricalRange",
    "ContinuousRange",
    "IntegerRange",
    "ParameterRange",
    "best_training_job",
    "build_tuning_request",
    "default_ranges",
    "pick_best_training_job",
    "script_default_ranges",
]

Scaling = Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"]
Strategy = Literal["Bayesian", "Random"]
_N = TypeVar("_N", int, float)

OBJECTIVES: Final[dict[str, str]] = {
    "object-detection": "validation:mAP",
    "image-classification": "validation:accuracy",
}
"""The metric each built-in algorithm emits for tuning (both are maximised)."""

TUNABLE: Final[dict[str, tuple[str, ...]]] = {
    "object-detection": (
        "learning_rate",
        "mini_batch_size",
        "momentum",
        "optimizer",
        "weight_decay",
    ),
    "image-classification": (
        "beta_1",
        "beta_2",
        "eps",
        "gamma",
        "learning_rate",
        "mini_batch_size",
        "momentum",
        "optimizer",
        "weight_decay",
    ),
}
"""The hyperparameters each built-in algorithm lets a tuning job range over; the service
refuses a tuning request that ranges over any other (a typo such as ``learnig_rate``)."""

_MAX_TUNED: Final = 30
"""ParameterRanges' limit on its three lists together (the model checks each list alone)."""
_MAX_HYPERPARAMETERS: Final = 100
"""Static and tuned hyperparameters together (the model checks the static ones alone)."""

_TRAINING_DEFINITION_KEYS: Final = (
    "AlgorithmSpecification",
    "RoleArn",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "EnableManagedSpotTraining",
    "VpcConfig",
    "EnableNetworkIsolation",
    "CheckpointConfig",
    "EnableInterContainerTrafficEncryption",
)
_TUNING_ALGORITHM_KEYS: Final = (
    "TrainingImage",
    "TrainingInputMode",
    "AlgorithmName",
    "MetricDefinitions",
)
"""What a tuning job's ``AlgorithmSpecification`` takes (no metrics time series, for one)."""


@dataclass(frozen=True, slots=True)
class _NumericRange(Generic[_N]):
    """A range from ``low`` to ``high``; the subclass says whether the values are whole."""

    name: str
    low: _N
    high: _N
    scaling: Scaling = "Auto"


class ContinuousRange(_NumericRange[float]):
    """A real-valued hyperparameter range (Logarithmic needs ``low > 0``)."""

    __slots__ = ()


class IntegerRange(_NumericRange[int]):
    """An integer hyperparameter range."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class CategoricalRange:
    """A hyperparameter chosen from a list of strings."""

    name: str
    values: tuple[str, ...]


ParameterRange = ContinuousRange | IntegerRange | CategoricalRange


def default_ranges(
    algorithm: Algorithm, *, num_training_samples: int | None = None
) -> list[ParameterRange]:
    """The documented most influential ranges: learning rate, batch size, optimizer.

    ``mini_batch_size``'s upper bound is capped at ``num_training_samples`` (a batch larger
    than the data set cannot be formed).
    """
    high = 64 if algorithm == "object-detection" else 512
    if num_training_samples is not None:
        high = min(high, num_training_samples)
    optimizers = OD_OPTIMIZERS if algorithm == "object-detection" else IC_OPTIMIZERS
    return [
        ContinuousRange("learning_rate", 1e-6, 0.5, "Logarithmic"),
        IntegerRange("mini_batch_size", 8, high, "Auto"),
        CategoricalRange("optimizer", tuple(optimizers)),
    ]


def script_default_ranges() -> list[ParameterRange]:
    """Script mode and JumpStart: learning rate (logarithmic), batch size and epochs.

    Both the shipped PyTorch script and JumpStart's fine-tuning scripts name them
    ``learning_rate``, ``batch_size`` and ``epochs``.
    """
    return [
        ContinuousRange("learning_rate", 1e-5, 0.1, "Logarithmic"),
        IntegerRange("batch_size", 8, 64, "Auto"),
        IntegerRange("epochs", 2, 20, "Auto"),
    ]


def _range_problems(ranges: Sequence[ParameterRange], algorithm: Algorithm | None) -> list[str]:
    """Ranges the service or the algorithm would refuse (``algorithm`` for built-ins only)."""
    problems: list[str] = []
    names = [r.name for r in ranges]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"hyperparameter {name!r} has more than one range")
    optimizers = OD_OPTIMIZERS if algorithm == "object-detection" else IC_OPTIMIZERS
    if algorithm is not None:
        tunable = TUNABLE[algorithm]
        problems += [
            f"{name!r} is not tunable for {algorithm}; tune {', '.join(tunable)}"
            for name in dict.fromkeys(names)
            if name not in tunable
        ]
    for r in ranges:
        if isinstance(r, CategoricalRange):
            if not r.values:
                problems.append(f"{r.name}: a categorical range needs at least one value")
            if r.name == "optimizer" and algorithm is not None:
                bad = [v for v in r.values if v not in optimizers]
                if bad:
                    problems.append(
                        f"optimizer values {bad} are not valid for {algorithm}; "
                        f"use {', '.join(optimizers)}"
                    )
            continue
        if not r.low < r.high:
            problems.append(f"{r.name}: the low end {r.low} must be below the high end {r.high}")
        if r.scaling == "Logarithmic" and r.low <= 0:
            problems.append(f"{r.name}: Logarithmic scaling needs a low end above 0, got {r.low}")
        if r.scaling == "ReverseLogarithmic" and not (r.low >= 0 and r.high < 1):
            problems.append(
                f"{r.name}: ReverseLogarithmic scaling needs a range within 0 <= x < 1, got "
                f"{r.low}..{r.high}"
            )
        if isinstance(r, IntegerRange) and (
            isinstance(r.low, bool) or not isinstance(r.low, int) or not isinstance(r.high, int)
        ):
            problems.append(f"{r.name}: an integer range needs integer ends")
        if r.name == "learning_rate" and (r.low <= 0 or r.high > 1):
            problems.append(f"learning_rate range must lie in (0, 1], got {r.low}..{r.high}")
        if r.name in ("mini_batch_size", "batch_size", "epochs") and r.low < 1:
            problems.append(f"{r.name} range must start at 1 or more, got {r.low}")
    return problems


def _builtin_limit_problems(
    ranges: Sequence[ParameterRange], static: Mapping[str, str]
) -> list[str]:
    """Ranges the job's own data rules out: a batch above ``num_training_samples``."""
    samples = str(static.get("num_training_samples", ""))
    return [
        f"mini_batch_size range reaches {r.high}, above num_training_samples {samples}"
        for r in ranges
        if isinstance(r, IntegerRange)
        and r.name == "mini_batch_size"
        and samples.isdigit()
        and r.high > int(samples)
    ]


_IC_UNIT_RANGE: Final = ("beta_1", "beta_2", "eps", "gamma", "momentum", "weight_decay")
"""Built-in image classification's real-valued tunables, each "Range in [0, 1]" (AWS's
IC-Hyperparameter page)."""


def _builtin_value_problems(ranges: Sequence[ParameterRange], algorithm: Algorithm) -> list[str]:
    """Range ends the built-in algorithm refuses as a value, as its training builder does.

    Object detection's ``momentum`` and ``weight_decay`` are checked by
    :class:`ObjectDetectionHyperparameters` itself, so a range cannot reach what one value may
    not; ``learning_rate`` and ``mini_batch_size`` have their own rules above.
    """
    problems: list[str] = []
    for r in ranges:
        if isinstance(r, CategoricalRange):
            continue
        for end in dict.fromkeys((r.low, r.high)):
            if algorithm == "object-detection" and r.name in ("momentum", "weight_decay"):
                try:
                    value: dict[str, Any] = {r.name: end}
                    ObjectDetectionHyperparameters(
                        num_training_samples=1, num_classes=1, mini_batch_size=1, **value
                    )
                except ValidationError as exc:
                    problems += [f"{r.name} range: {p}" for p in exc.problems]
            elif (
                algorithm == "image-classification"
                and r.name in _IC_UNIT_RANGE
                and not 0 <= end <= 1
            ):
                problems.append(f"{r.name} range: {r.name} must be in [0, 1], got {end}")
    return problems


def _shipped_script_problems(
    ranges: Sequence[ParameterRange], static: Mapping[str, str], instance_type: str
) -> list[str]:
    """Values a range lets the tuner pick that the shipped ``train.py`` refuses at start-up.

    Each training job the tuner starts hands the script its picks as text (``--epochs 12``);
    one outside the script's type or limits (a fractional ``epochs`` from a continuous range,
    ``momentum`` 1.2, an optimizer it lacks, ``device`` ``cuda`` on a CPU instance) fails that
    job after its instance is paid for.
    Only a request for the shipped script is checked: ``sagemaker_program`` ``train.py`` and
    every other hyperparameter one of its own.
    """
    try:
        program = json.loads(static.get("sagemaker_program", '""'))
    except json.JSONDecodeError:
        program = static.get("sagemaker_program")
    takes = {k for k in static if not contract.is_toolkit_key(k)}
    if program != contract.TRAIN_SCRIPT or not takes <= set(contract.KINDS):
        return []
    problems: list[str] = []
    for r in ranges:
        kind = contract.KINDS.get(r.name)
        if kind is None:
            continue  # refused as a name the job does not take
        if isinstance(r, CategoricalRange):
            picks: tuple[str, ...] = r.values
        elif kind in (bool, str):
            problems.append(
                f"{r.name} is not a number in {contract.TRAIN_SCRIPT}: tune it with a "
                "CategoricalRange"
            )
            continue
        elif kind is int and not isinstance(r, IntegerRange):
            problems.append(
                f"{r.name} is an integer in {contract.TRAIN_SCRIPT}, and a ContinuousRange "
                "picks fractional values: use an IntegerRange"
            )
            continue
        else:
            picks = (hyperparameter_str(r.low), hyperparameter_str(r.high))
        problems += [
            f"{r.name} range: {contract.TRAIN_SCRIPT} refuses {pick!r} ({problem})"
            for pick in picks
            if (problem := contract.argument_problem(r.name, pick))
        ]
        if r.name == "device" and "cuda" in picks and not is_gpu_instance(instance_type):
            problems.append(f"device range: 'cuda' needs a GPU instance, not {instance_type}")
    return problems


def _ranges_json(
    ranges: Sequence[ParameterRange], *, json_values: bool
) -> dict[str, list[dict[str, Any]]]:
    """``ParameterRanges`` as the service reads them: every bound a string.

    ``json_values`` JSON-encodes categorical values (``adamw`` as ``"adamw"``, quotes kept),
    as framework containers decode every hyperparameter.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for r in ranges:
        if isinstance(r, CategoricalRange):
            values = [json.dumps(v) for v in r.values] if json_values else list(r.values)
            out.setdefault("CategoricalParameterRanges", []).append(
                {"Name": r.name, "Values": values}
            )
            continue
        key = (
            "IntegerParameterRanges" if isinstance(r, IntegerRange) else "ContinuousParameterRanges"
        )
        out.setdefault(key, []).append(
            {
                "Name": r.name,
                "MinValue": hyperparameter_str(r.low),
                "MaxValue": hyperparameter_str(r.high),
                "ScalingType": r.scaling,
            }
        )
    return out


def build_tuning_request(
    training_request: Mapping[str, Any],
    *,
    job_name: str,
    algorithm: Algorithm | None = None,
    strategy: Strategy = "Bayesian",
    ranges: Sequence[ParameterRange] | None = None,
    max_jobs: int = 20,
    max_parallel_jobs: int = 2,
    early_stopping: Literal["Auto", "Off"] = "Auto",
    objective_metric: str | None = None,
    objective_type: Literal["Maximize", "Minimize"] | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A CreateHyperParameterTuningJob request around a (validated) training request.

    Tuned hyperparameters are removed from the static ones; every other hyperparameter of the
    training request (``num_training_samples``, ``num_classes``, ``label_width``…) is kept.
    For the shipped PyTorch script, every value a range lets the tuner pick must pass the
    script's own types and limits (``contract.argument_problem``).

    Args:
        training_request: from any of our training builders (built-in, JumpStart, PyTorch
            script mode) or any CreateTrainingJob dict.
        job_name: the tuning job name: at most 32 characters (SageMaker appends suffixes).
        algorithm: a built-in request's algorithm; inferred from the training image when not
            given.
        ranges: default :func:`default_ranges` (built-in) or :func:`script_default_ranges`.
        objective_metric: default the built-in algorithm's metric, ``validation:accuracy``
            when the request reports it, or the request's only metric.
        objective_type: default ``Minimize`` for a metric named like a loss, else ``Maximize``.
        tags: added to the training request's own ``Tags`` (and winning on a shared key). The
            tuning job gives its tags to every training job it starts, so a JumpStart
            request's model-id tags reach the jobs that ``deploy_training_job`` reads them
            from, as the SageMaker SDK's tuner carries them.

    Raises:
        ValidationError: every problem at once (ranges, limits, objective, service model).
    """
    builtin = job_kind(training_request) == "builtin"
    algorithm = (algorithm or algorithm_of(training_request)) if builtin else None
    static = dict(training_request.get("HyperParameters") or {})
    if ranges is None and algorithm is not None:
        samples = str(static.get("num_training_samples", ""))
        ranges = default_ranges(
            algorithm, num_training_samples=int(samples) if samples.isdigit() else None
        )
    ranges = script_default_ranges() if ranges is None else ranges
    problems = _range_problems(ranges, algorithm)
    if builtin:
        problems += _builtin_limit_problems(ranges, static)
    if algorithm is not None:
        problems += _builtin_value_problems(ranges, algorithm)
    if not builtin:
        takes = sorted(k for k in static if not k.startswith("sagemaker_"))
        problems += [
            f"{r.name} is not a hyperparameter of this job; it takes: {', '.join(takes)}"
            for r in ranges
            if r.name not in static
        ]
        instance = str((training_request.get("ResourceConfig") or {}).get("InstanceType", ""))
        problems += _shipped_script_problems(ranges, static, instance)
    for r in ranges:
        static.pop(r.name, None)
    metric = objective_metric or _default_objective(training_request, algorithm)
    definition = _definition(training_request, static)
    objective = {
        "Type": objective_type or ("Minimize" if "loss" in metric.lower() else "Maximize"),
        "MetricName": metric,
    }
    request: dict[str, Any] = {
        "HyperParameterTuningJobName": job_name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": objective,
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": max_jobs,
                "MaxParallelTrainingJobs": max_parallel_jobs,
            },
            "ParameterRanges": _ranges_json(ranges, json_values=not builtin),
            "TrainingJobEarlyStoppingType": early_stopping,
        },
        "TrainingJobDefinition": definition,
    }
    merged_tags = tag_map(training_request.get("Tags")) | dict(tags or {})  # passed on
    if merged_tags:
        request["Tags"] = tag_list(merged_tags)
    problems += _config_problems(request, algorithm)
    problems.extend(problems_as_strings(validate_request("CreateHyperParameterTuningJob", request)))
    if algorithm is not None:
        problems.extend(
            f"TrainingJobDefinition: {p}" for p in channel_problems(definition, algorithm=algorithm)
        )
    if problems:
        raise ValidationError(list(dict.fromkeys(problems)), what="tuning job request")
    return request


def _definition(training_request: Mapping[str, Any], static: dict[str, str]) -> dict[str, Any]:
    """The ``TrainingJobDefinition``: what a tuning job's training definition takes."""
    definition: dict[str, Any] = {
        k: training_request[k] for k in _TRAINING_DEFINITION_KEYS if k in training_request
    }
    spec = definition.get("AlgorithmSpecification") or {}
    definition["AlgorithmSpecification"] = {
        k: v for k, v in spec.items() if k in _TUNING_ALGORITHM_KEYS
    }
    definition["StaticHyperParameters"] = static
    return definition


def _metric_names(request: Mapping[str, Any]) -> list[str]:
    spec = request.get("AlgorithmSpecification") or {}
    return [str(m.get("Name")) for m in spec.get("MetricDefinitions") or []]


def _default_objective(training_request: Mapping[str, Any], algorithm: Algorithm | None) -> str:
    """The built-in algorithm's metric, else ``validation:accuracy`` or the only metric."""
    if algorithm is not None:
        return OBJECTIVES[algorithm]
    names = _metric_names(training_request)
    if "validation:accuracy" in names or len(names) != 1:
        return "validation:accuracy"
    return names[0]


def _config_problems(request: Mapping[str, Any], algorithm: Algorithm | None) -> list[str]:
    """Objective, limits and strategy the algorithm, the job's metrics or the service refuse."""
    problems: list[str] = []
    config = request["HyperParameterTuningJobConfig"]
    metric = config["HyperParameterTuningJobObjective"]["MetricName"]
    if algorithm is not None and metric != OBJECTIVES[algorithm]:
        problems.append(
            f"objective {metric!r} is not what built-in {algorithm} reports; "
            f"use {OBJECTIVES[algorithm]!r}"
        )
    names = _metric_names(request["TrainingJobDefinition"])
    if algorithm is None and metric not in names:
        reports = f"it reports: {', '.join(names)}" if names else "it defines no MetricDefinitions"
        problems.append(
            f"objective {metric!r} is none of the training job's metrics ({reports}); no job "
            "would report a value to tune on"
        )
    tuned = sum(len(v) for v in config["ParameterRanges"].values())
    static = len(request["TrainingJobDefinition"]["StaticHyperParameters"])
    if tuned > _MAX_TUNED:
        problems.append(
            f"{tuned} ranges: a tuning job searches at most {_MAX_TUNED} hyperparameters, "
            "integer, continuous and categorical ranges together"
        )
    if tuned + static > _MAX_HYPERPARAMETERS:
        problems.append(
            f"{tuned} tuned + {static} static hyperparameters: a tuning job takes at most "
            f"{_MAX_HYPERPARAMETERS} in all"
        )
    max_jobs = config["ResourceLimits"]["MaxNumberOfTrainingJobs"]
    max_parallel = config["ResourceLimits"]["MaxParallelTrainingJobs"]
    if isinstance(max_jobs, int) and isinstance(max_parallel, int) and max_parallel > max_jobs:
        problems.append(f"max_parallel_jobs {max_parallel} exceeds max_jobs {max_jobs}")
    if config["Strategy"] not in ("Bayesian", "Random"):
        problems.append(f"strategy {config['Strategy']!r} is not one of: Bayesian, Random")
    return problems


@dataclass(frozen=True, slots=True)
class BestTrainingJob:
    """The winning training job of a tuning job and what it scored."""

    name: str
    metric_name: str | None
    value: float | None
    hyperparameters: dict[str, str]
    status: str | None


def _best_from(summary: Mapping[str, Any]) -> BestTrainingJob:
    metric = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    value = metric.get("Value")
    return BestTrainingJob(
        name=str(summary["TrainingJobName"]),
        metric_name=metric.get("MetricName"),
        value=float(value) if value is not None else None,
        hyperparameters={
            str(k): str(v) for k, v in (summary.get("TunedHyperParameters") or {}).items()
        },
        status=summary.get("TrainingJobStatus"),
    )


def pick_best_training_job(
    summaries: Iterable[Mapping[str, Any]], *, maximize: bool = True
) -> BestTrainingJob | None:
    """The completed job with the best final objective value, or ``None`` when none has one.

    Jobs that failed, were stopped early by a failure, or have no objective value are skipped.
    """
    best: tuple[float, Mapping[str, Any]] | None = None
    for summary in summaries:
        if summary.get("TrainingJobStatus") not in ("Completed", "Stopped"):
            continue
        if summary.get("ObjectiveStatus", "Succeeded") != "Succeeded":
            continue
        value = (summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value")
        if value is None:
            continue
        score = float(value) if maximize else -float(value)
        if best is None or score > best[0]:
            best = (score, summary)
    return _best_from(best[1]) if best is not None else None


def best_training_job(sagemaker: SageMakerClient, tuning_job_name: str) -> BestTrainingJob:
    """The best training job of a tuning job (``BestTrainingJob``, else the listed jobs).

    Raises:
        GtToolkitError: no training job has reported an objective value yet.
    """
    description = sagemaker.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_job_name
    )
    best = description.get("BestTrainingJob")
    if best:
        return _best_from(best)
    objective = description["HyperParameterTuningJobConfig"].get(
        "HyperParameterTuningJobObjective"
    ) or {"Type": "Maximize"}
    paginator = sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
    summaries = (
        summary
        for page in paginator.paginate(HyperParameterTuningJobName=tuning_job_name)
        for summary in page["TrainingJobSummaries"]
    )
    picked = pick_best_training_job(summaries, maximize=objective.get("Type") != "Minimize")
    if picked is None:
        status = description.get("HyperParameterTuningJobStatus")
        raise GtToolkitError(
            f"tuning job {tuning_job_name} ({status}) has no training job with an objective "
            "value yet"
        )
    return picked
