"""SageMaker Debugger rules and the Profiler: opt-in, checked, and honest about their end.

Nothing is attached unless asked for. :func:`attach_debugging` adds ``DebugHookConfig`` and
``DebugRuleConfigurations`` for tensor rules, and ``ProfilerConfig`` and
``ProfilerRuleConfigurations`` for system monitoring, with the rule-evaluator image of the
region, to any ``CreateTrainingJob`` request. It refuses what fails later and costs money:

- tensor rules on the built-in algorithms and on JumpStart images: no hook writes tensors
  there, and the rule ends in "No debugging data was saved by the training job";
- profiler rules together with ``DisableProfiler`` (an invalid request shape);
- unknown rule names and intervals the service does not offer.

Debugger closed to new customers on 2026-07-30 and the Profiler ends on 2027-06-30, so every
opt-in warns (:class:`~gt_toolkit.errors.ServiceClosureWarning`; Python shows it once per call
site unless told otherwise), and the Profiler is refused once its end date has passed. What to
use instead: the metrics and TensorBoard scalars the training script writes
(``TensorBoardOutputConfig``) and CloudWatch's instance metrics for utilisation (the README's
training section shows both).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from gt_toolkit.errors import ServiceClosureWarning, ValidationError
from gt_toolkit.sagemaker.job_kinds import JobKind, job_kind
from gt_toolkit.sagemaker.regions import rule_evaluator_image_uri

__all__ = [
    "DEBUGGER_CLOSED_TO_NEW_CUSTOMERS",
    "PROFILER_END_OF_SUPPORT",
    "PROFILER_INTERVALS_MS",
    "PROFILER_RULES",
    "TENSOR_RULES",
    "ProfilerSettings",
    "attach_debugging",
]

DEBUGGER_CLOSED_TO_NEW_CUSTOMERS: Final = "2026-07-30"
PROFILER_END_OF_SUPPORT: Final = "2027-06-30"

TENSOR_RULES: Final[dict[str, tuple[tuple[str, tuple[tuple[str, str], ...]], ...]]] = {
    "LossNotDecreasing": (("losses", (("save_interval", "500"),)),),
    "Overfit": (),
    "Overtraining": (),
    "VanishingGradient": (("gradients", (("save_interval", "500"),)),),
    "ExplodingTensor": (),
    "WeightUpdateRatio": (("weights", (("save_interval", "500"),)),),
    "StalledTrainingRule": (),
}
"""Built-in Debugger rules offered here -> the tensor collections each needs saved (name and
parameters, as the rules' published default configurations give them)."""

PROFILER_RULES: Final = (
    "ProfilerReport",
    "LowGPUUtilization",
    "CPUBottleneck",
    "GPUMemoryIncrease",
    "IOBottleneck",
    "LoadBalancing",
    "OverallSystemUsage",
    "BatchSize",
)
"""Built-in profiler rules that read system metrics (framework profiling is gone for PyTorch 2)."""

PROFILER_INTERVALS_MS: Final = (100, 200, 500, 1000, 5000, 60000)


@dataclass(frozen=True, slots=True)
class ProfilerSettings:
    """System monitoring for a training job.

    ``disabled=True`` sends ``DisableProfiler`` (no rules allowed then); ``s3_output_uri``
    defaults to the job's output path.
    """

    interval_ms: int = 500
    rules: tuple[str, ...] = ()
    disabled: bool = False
    s3_output_uri: str | None = None


def _today() -> dt.date:
    """The date the closure rules are judged on (a seam for the tests' fixed date)."""
    return dt.date.today()


def _warn(message: str) -> None:
    warnings.warn(message, ServiceClosureWarning, stacklevel=3)


def _tensor_rule_problems(rules: Sequence[str], kind: JobKind, image: str) -> list[str]:
    problems = [
        f"unknown Debugger rule {name!r}; one of: {', '.join(TENSOR_RULES)}"
        for name in rules
        if name not in TENSOR_RULES
    ]
    if len(set(rules)) != len(rules):
        problems.append(f"Debugger rules repeat: {list(rules)}")
    if rules and kind != "script":
        where = "a JumpStart image" if kind == "jumpstart" else f"the built-in image {image}"
        problems.append(
            f"Debugger tensor rules {list(rules)} need a hook that writes tensors; {where} has "
            "none, so the rules would end in 'No debugging data was saved'. Use the job's "
            "metrics instead, or train in script mode"
        )
    return problems


def _profiler_problems(profiler: ProfilerSettings) -> list[str]:
    problems = [
        f"unknown profiler rule {name!r}; one of: {', '.join(PROFILER_RULES)}"
        for name in profiler.rules
        if name not in PROFILER_RULES
    ]
    if len(set(profiler.rules)) != len(profiler.rules):
        problems.append(f"profiler rules repeat: {list(profiler.rules)}")
    if profiler.disabled and profiler.rules:
        problems.append(
            f"profiler rules {list(profiler.rules)} cannot run with the profiler disabled "
            "(ProfilerRuleConfigurations with DisableProfiler is an invalid request)"
        )
    if not profiler.disabled and profiler.interval_ms not in PROFILER_INTERVALS_MS:
        problems.append(
            f"profiler interval {profiler.interval_ms} ms is not one of: "
            f"{', '.join(map(str, PROFILER_INTERVALS_MS))}"
        )
    return problems


def _rule(name: str, image: str) -> dict[str, Any]:
    return {
        "RuleConfigurationName": name,
        "RuleEvaluatorImage": image,
        "RuleParameters": {"rule_to_invoke": name},
    }


def _hook_config(rules: Sequence[str], s3_output_uri: str) -> dict[str, Any]:
    """``DebugHookConfig`` saving the union of the collections ``rules`` read."""
    collections = {name: dict(params) for rule in rules for name, params in TENSOR_RULES[rule]}
    hook: dict[str, Any] = {"S3OutputPath": s3_output_uri}
    if collections:
        hook["CollectionConfigurations"] = [
            {"CollectionName": name, "CollectionParameters": params}
            for name, params in collections.items()
        ]
    return hook


def attach_debugging(
    request: Mapping[str, Any],
    *,
    region: str,
    debugger_rules: Sequence[str] = (),
    profiler: ProfilerSettings | None = None,
    debug_output_uri: str | None = None,
    today: dt.date | None = None,
) -> dict[str, Any]:
    """A copy of ``request`` with the asked-for Debugger rules and Profiler settings added.

    With no rules and no profiler the request comes back unchanged: nothing is attached by
    default. Opting in warns with the closure dates; after :data:`PROFILER_END_OF_SUPPORT`
    (``today``, default the date now) profiling is refused: the service is gone.

    Args:
        request: any CreateTrainingJob request (built-in, JumpStart or script mode).
        debugger_rules: names from :data:`TENSOR_RULES`, e.g. ``["LossNotDecreasing"]``.
        profiler: system monitoring and its rules (names from :data:`PROFILER_RULES`).
        debug_output_uri: where the hook writes tensors; default the job's output path.
        today: the date the Profiler's end is judged on (default: the date now).

    Raises:
        ValidationError: every refusal listed in the module docstring, at once.
    """
    out = dict(request)
    if not debugger_rules and profiler is None:
        return out
    kind = job_kind(request)
    image = str((request.get("AlgorithmSpecification") or {}).get("TrainingImage", ""))
    output = str((request.get("OutputDataConfig") or {}).get("S3OutputPath", ""))
    problems = _tensor_rule_problems(debugger_rules, kind, image)
    if profiler is not None:
        problems.extend(_profiler_problems(profiler))
        ended = dt.date.fromisoformat(PROFILER_END_OF_SUPPORT)
        if not profiler.disabled and (today or _today()) > ended:
            problems.append(
                f"the SageMaker Profiler ended on {PROFILER_END_OF_SUPPORT}: use CloudWatch's "
                "instance metrics instead"
            )
    evaluator = ""
    if debugger_rules or (profiler is not None and profiler.rules):
        try:
            evaluator = rule_evaluator_image_uri(region)
        except ValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ValidationError(problems, what="Debugger/Profiler settings")
    if debugger_rules:
        _warn(
            f"SageMaker Debugger closed to new customers on {DEBUGGER_CLOSED_TO_NEW_CUSTOMERS}; "
            "prefer the script's metrics and TensorBoard output (TensorBoardOutputConfig)",
        )
        out["DebugHookConfig"] = _hook_config(debugger_rules, debug_output_uri or output)
        out["DebugRuleConfigurations"] = [_rule(name, evaluator) for name in debugger_rules]
    if profiler is not None and profiler.disabled:
        out["ProfilerConfig"] = {"DisableProfiler": True}
    elif profiler is not None:
        _warn(
            f"the SageMaker Profiler ends on {PROFILER_END_OF_SUPPORT}; prefer CloudWatch's "
            "instance metrics (CPU, GPU, memory utilisation) for the same signals",
        )
        out["ProfilerConfig"] = {
            "S3OutputPath": profiler.s3_output_uri or output,
            "ProfilingIntervalInMilliseconds": profiler.interval_ms,
        }
        if profiler.rules:
            out["ProfilerRuleConfigurations"] = [_rule(name, evaluator) for name in profiler.rules]
    return out
