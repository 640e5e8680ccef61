"""Debugger and Profiler: nothing by default, refusals that save money, one closure warning."""

from __future__ import annotations

import datetime as dt
import warnings
from typing import Any

import pytest

from gt_toolkit import ValidationError
from gt_toolkit.errors import ServiceClosureWarning
from gt_toolkit.sagemaker import debugger
from gt_toolkit.sagemaker.debugger import ProfilerSettings, attach_debugging
from gt_toolkit.sagemaker.job_kinds import job_kind
from gt_toolkit.sagemaker.regions import DEBUGGER_RULE_ACCOUNTS, rule_evaluator_image_uri
from gt_toolkit.sagemaker.service_validation import botocore_report, validate_request
from gt_toolkit.sagemaker.training import build_object_detection_training_request
from tests.helpers import od_request_args, pytorch_request_args

SCRIPT = pytorch_request_args()
WRITTEN = dt.date(2026, 12, 4)  # the Profiler still runs: tests judge the rules on this date


@pytest.fixture(autouse=True)
def a_fixed_date(monkeypatch: pytest.MonkeyPatch) -> None:
    """The closure rules depend on the date; these tests must not change on 2027-07-01."""
    monkeypatch.setattr(debugger, "_today", lambda: WRITTEN)


def script_request() -> dict[str, Any]:
    from gt_toolkit.sagemaker.pytorch import build_pytorch_training_request

    return build_pytorch_training_request(**SCRIPT)


def builtin_request() -> dict[str, Any]:
    return build_object_detection_training_request(**od_request_args())


def jumpstart_like(request: dict[str, Any]) -> dict[str, Any]:
    tags = [{"Key": "sagemaker-sdk:jumpstart-model-id", "Value": "pytorch-ic-resnet18"}]
    return {**request, "Tags": tags}


def test_nothing_is_attached_by_default() -> None:
    request = script_request()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert attach_debugging(request, region="us-east-1") == request


def test_tensor_rules_on_script_mode() -> None:
    with pytest.warns(ServiceClosureWarning, match="2026-07-30"):
        out = attach_debugging(
            script_request(), region="eu-west-1", debugger_rules=["LossNotDecreasing", "Overfit"]
        )
    hook = out["DebugHookConfig"]
    assert hook["S3OutputPath"] == SCRIPT["output_uri"]
    assert hook["CollectionConfigurations"] == [
        {"CollectionName": "losses", "CollectionParameters": {"save_interval": "500"}}
    ]
    rules = out["DebugRuleConfigurations"]
    assert [r["RuleParameters"]["rule_to_invoke"] for r in rules] == [
        "LossNotDecreasing",
        "Overfit",
    ]
    assert {r["RuleEvaluatorImage"] for r in rules} == {rule_evaluator_image_uri("eu-west-1")}
    assert "ProfilerConfig" not in out
    assert validate_request("CreateTrainingJob", out) == []
    assert botocore_report("CreateTrainingJob", out) == []


def test_profiler_with_rules() -> None:
    settings = ProfilerSettings(interval_ms=1000, rules=("LowGPUUtilization", "ProfilerReport"))
    with pytest.warns(ServiceClosureWarning, match="2027-06-30"):
        out = attach_debugging(builtin_request(), region="us-west-2", profiler=settings)
    assert out["ProfilerConfig"]["ProfilingIntervalInMilliseconds"] == 1000
    names = [r["RuleConfigurationName"] for r in out["ProfilerRuleConfigurations"]]
    assert names == ["LowGPUUtilization", "ProfilerReport"]
    assert "DebugHookConfig" not in out
    assert validate_request("CreateTrainingJob", out) == []


def test_disabling_the_profiler_is_explicit_and_silent() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = attach_debugging(
            builtin_request(), region="us-east-1", profiler=ProfilerSettings(disabled=True)
        )
    assert out["ProfilerConfig"] == {"DisableProfiler": True}
    assert "ProfilerRuleConfigurations" not in out


def test_every_opt_in_warns_and_the_profiler_is_refused_after_its_end() -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(3):
            attach_debugging(script_request(), region="us-east-1", debugger_rules=["Overfit"])
    assert [type(w.message) for w in record] == [ServiceClosureWarning] * 3
    profiler = ProfilerSettings(rules=("LowGPUUtilization",))
    last_day = dt.date.fromisoformat(debugger.PROFILER_END_OF_SUPPORT)
    with pytest.warns(ServiceClosureWarning):
        attach_debugging(script_request(), region="us-east-1", profiler=profiler, today=last_day)
    with pytest.raises(ValidationError, match="Profiler ended on 2027-06-30"):
        attach_debugging(
            script_request(),
            region="us-east-1",
            profiler=profiler,
            today=last_day + dt.timedelta(days=1),
        )
    off = ProfilerSettings(disabled=True)  # turning it off stays possible
    later = last_day + dt.timedelta(days=400)
    out = attach_debugging(script_request(), region="us-east-1", profiler=off, today=later)
    assert out["ProfilerConfig"] == {"DisableProfiler": True}


@pytest.mark.parametrize(
    ("make", "rules", "profiler", "message"),
    [
        (builtin_request, ["LossNotDecreasing"], None, "the built-in image .*object-detection:1"),
        (
            lambda: jumpstart_like(script_request()),
            ["VanishingGradient"],
            None,
            "a JumpStart image has none",
        ),
        (script_request, ["DeadPixel"], None, "unknown Debugger rule 'DeadPixel'"),
        (script_request, ["Overfit", "Overfit"], None, "Debugger rules repeat"),
        (
            script_request,
            [],
            ProfilerSettings(disabled=True, rules=("LowGPUUtilization",)),
            "cannot run with the profiler disabled",
        ),
        (script_request, [], ProfilerSettings(rules=("GPUHappiness",)), "unknown profiler rule"),
        (script_request, [], ProfilerSettings(interval_ms=250), "250 ms is not one of"),
    ],
)
def test_refusals(make: Any, rules: list[str], profiler: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        attach_debugging(make(), region="us-east-1", debugger_rules=rules, profiler=profiler)


def test_a_region_without_the_rule_image_is_refused_only_when_rules_need_it() -> None:
    request = script_request()
    with pytest.raises(ValidationError, match="Debugger rule evaluator"):
        attach_debugging(request, region="il-central-1", debugger_rules=["Overfit"])
    with pytest.warns(ServiceClosureWarning):
        out = attach_debugging(request, region="il-central-1", profiler=ProfilerSettings())
    assert "ProfilerRuleConfigurations" not in out


def test_job_kind() -> None:
    assert job_kind(builtin_request()) == "builtin"
    assert job_kind(script_request()) == "script"
    assert job_kind(jumpstart_like(script_request())) == "jumpstart"


@pytest.mark.parametrize("region", sorted(DEBUGGER_RULE_ACCOUNTS))
def test_rule_image_per_region(region: str) -> None:
    assert rule_evaluator_image_uri(region) == (
        f"{DEBUGGER_RULE_ACCOUNTS[region]}.dkr.ecr.{region}.amazonaws.com/"
        "sagemaker-debugger-rules:latest"
    )


def test_the_built_in_builders_take_the_same_opt_ins() -> None:
    # tensor rules are refused where no hook writes tensors, through the builder's own keywords
    with pytest.raises(ValidationError, match="LossNotDecreasing"):
        build_object_detection_training_request(
            **od_request_args(), debugger_rules=["LossNotDecreasing"]
        )
    # profiler rules need no hook: accepted, with the closure warning
    profiler = ProfilerSettings(rules=["LowGPUUtilization"])
    with pytest.warns(ServiceClosureWarning, match="2027-06-30"):
        out = build_object_detection_training_request(**od_request_args(), profiler=profiler)
    assert out["ProfilerConfig"]["ProfilingIntervalInMilliseconds"] == profiler.interval_ms
    [rule] = out["ProfilerRuleConfigurations"]
    assert rule["RuleConfigurationName"] == "LowGPUUtilization"
    assert "DebugHookConfig" not in out
