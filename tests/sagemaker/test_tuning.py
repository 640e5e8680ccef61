"""Tuning requests on moto's server; picking the best job (moto's canned answer and Stubber)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from gt_toolkit import GtToolkitError, ValidationError
from gt_toolkit.sagemaker.job_kinds import JUMPSTART_MODEL_ID_TAG
from gt_toolkit.sagemaker.service_validation import botocore_report, validate_request
from gt_toolkit.sagemaker.training import (
    ImageClassificationHyperparameters,
    ObjectDetectionHyperparameters,
    build_image_classification_training_request,
    build_object_detection_training_request,
)
from gt_toolkit.sagemaker.tuning import (
    CategoricalRange,
    ContinuousRange,
    IntegerRange,
    best_training_job,
    build_tuning_request,
    default_ranges,
    pick_best_training_job,
    script_default_ranges,
)
from tests.helpers import SAGEMAKER_ROLE as ROLE
from tests.helpers import od_request_args, pytorch_request_args


def od_training() -> dict[str, Any]:
    hp = ObjectDetectionHyperparameters(num_training_samples=40, num_classes=1, max_boxes=3)
    return build_object_detection_training_request(
        **od_request_args(job_name="balls-od", hyperparameters=hp)
    )


def test_object_detection_tuning_request(aws: Callable[[str], Any]) -> None:
    training = od_training()
    request = build_tuning_request(
        training, job_name="balls-od-hpo", max_jobs=12, max_parallel_jobs=3
    )
    assert botocore_report("CreateHyperParameterTuningJob", request) == []
    assert validate_request("CreateHyperParameterTuningJob", request) == []
    config = request["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian"
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Maximize",
        "MetricName": "validation:mAP",
    }
    assert config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 12, "MaxParallelTrainingJobs": 3}
    assert config["ParameterRanges"] == {
        "ContinuousParameterRanges": [
            {
                "Name": "learning_rate",
                "MinValue": "1e-06",
                "MaxValue": "0.5",
                "ScalingType": "Logarithmic",
            }
        ],
        "IntegerParameterRanges": [
            {"Name": "mini_batch_size", "MinValue": "8", "MaxValue": "40", "ScalingType": "Auto"}
        ],
        "CategoricalParameterRanges": [
            {"Name": "optimizer", "Values": ["sgd", "adam", "rmsprop", "adadelta"]}
        ],
    }
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    assert not {"learning_rate", "mini_batch_size", "optimizer"} & set(static)
    assert static["num_training_samples"] == "40"
    assert static["label_width"] == training["HyperParameters"]["label_width"]
    assert request["TrainingJobDefinition"]["InputDataConfig"] == training["InputDataConfig"]

    sm = aws("sagemaker")
    sm.create_hyper_parameter_tuning_job(**request)
    described = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="balls-od-hpo")
    assert (
        described["HyperParameterTuningJobConfig"]["ParameterRanges"] == config["ParameterRanges"]
    )
    assert described["TrainingJobDefinition"]["StaticHyperParameters"] == static
    best = best_training_job(sm, "balls-od-hpo")
    # moto answers with a canned BestTrainingJob: the helper must return exactly that one.
    assert best.name == described["BestTrainingJob"]["TrainingJobName"]
    assert (
        best.value
        == described["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    )


def test_image_classification_tuning_uses_accuracy_and_random(aws: Callable[[str], Any]) -> None:
    training = build_image_classification_training_request(
        job_name="ic",
        role_arn=ROLE,
        region="us-east-1",
        output_uri="s3://gt-toolkit-demo/models",
        hyperparameters=ImageClassificationHyperparameters(
            num_training_samples=1000, num_classes=3
        ),
        train_manifest_uri="s3://gt-toolkit-demo/t.manifest",
        validation_manifest_uri="s3://gt-toolkit-demo/v.manifest",
        label_attribute="category",
    )
    request = build_tuning_request(
        training, job_name="ic-hpo", strategy="Random", early_stopping="Off"
    )
    config = request["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"]["MetricName"] == "validation:accuracy"
    assert config["Strategy"] == "Random"
    assert config["ParameterRanges"]["IntegerParameterRanges"][0]["MaxValue"] == "512"
    assert config["ParameterRanges"]["CategoricalParameterRanges"][0]["Values"] == [
        "sgd",
        "adam",
        "rmsprop",
        "nag",
    ]
    aws("sagemaker").create_hyper_parameter_tuning_job(**request)
    adam = build_tuning_request(
        training, job_name="ic-adam", ranges=[ContinuousRange("beta_1", 0.5, 0.99)]
    )
    assert adam["HyperParameterTuningJobConfig"]["ParameterRanges"] == {
        "ContinuousParameterRanges": [
            {"Name": "beta_1", "MinValue": "0.5", "MaxValue": "0.99", "ScalingType": "Auto"}
        ]
    }


def test_reverse_logarithmic_scaling_may_start_at_zero() -> None:
    # the service's rule: a range entirely within 0 <= x < 1 (momentum near 1 is its use)
    request = build_tuning_request(
        od_training(),
        job_name="revlog",
        ranges=[ContinuousRange("momentum", 0.0, 0.99, "ReverseLogarithmic")],
    )
    ranges = request["HyperParameterTuningJobConfig"]["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"][0]["ScalingType"] == "ReverseLogarithmic"


def test_custom_ranges_replace_the_defaults() -> None:
    request = build_tuning_request(
        od_training(),
        job_name="custom",
        ranges=[
            ContinuousRange("momentum", 0.0, 0.999),
            ContinuousRange("weight_decay", 0.0, 0.999, "Linear"),
        ],
    )
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    assert "momentum" not in static
    assert static["learning_rate"] == "0.001"  # not tuned, so it stays static
    assert request["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"][
        1
    ] == {
        "Name": "weight_decay",
        "MinValue": "0.0",
        "MaxValue": "0.999",
        "ScalingType": "Linear",
    }
    assert default_ranges("object-detection", num_training_samples=20)[1] == IntegerRange(
        "mini_batch_size", 8, 20
    )


BAD: list[tuple[str, dict[str, Any], list[str]]] = [
    ("objective", {"objective_metric": "validation:accuracy"}, ["use 'validation:mAP'"]),
    (
        "parallel",
        {"max_jobs": 2, "max_parallel_jobs": 4},
        ["max_parallel_jobs 4 exceeds max_jobs 2"],
    ),
    (
        "name too long",
        {"job_name": "a" * 33},
        ["HyperParameterTuningJobName: length 33 is above the maximum 32"],
    ),
    (
        "log from zero",
        {"ranges": [ContinuousRange("learning_rate", 0.0, 0.5, "Logarithmic")]},
        ["Logarithmic scaling needs a low end above 0", "learning_rate range must lie in (0, 1]"],
    ),
    (
        "batch above the samples",
        {"ranges": [IntegerRange("mini_batch_size", 8, 64)]},
        ["mini_batch_size range reaches 64, above num_training_samples 40"],
    ),
    (
        "reverse log to one",
        {"ranges": [ContinuousRange("momentum", 0.5, 1.0, "ReverseLogarithmic")]},
        ["ReverseLogarithmic scaling needs a range within 0 <= x < 1"],
    ),
    (
        "reversed",
        {"ranges": [IntegerRange("mini_batch_size", 64, 8)]},
        ["the low end 64 must be below the high end 8"],
    ),
    (
        "bad optimizer",
        {"ranges": [CategoricalRange("optimizer", ("sgd", "nag"))]},
        ["optimizer values ['nag'] are not valid for object-detection"],
    ),
    (
        "empty categorical",
        {"ranges": [CategoricalRange("optimizer", ())]},
        ["needs at least one value"],
    ),
    (
        "duplicate",
        {"ranges": [IntegerRange("epochs", 5, 10), IntegerRange("epochs", 10, 20)]},
        ["'epochs' has more than one range"],
    ),
    (
        "typo",
        {"ranges": [ContinuousRange("learnig_rate", 1e-4, 0.1)]},
        ["'learnig_rate' is not tunable for object-detection; tune learning_rate, "],
    ),
    (
        "another algorithm's",
        {"ranges": [ContinuousRange("beta_1", 0.5, 0.9)]},
        ["'beta_1' is not tunable for object-detection"],
    ),
    ("zero jobs", {"max_jobs": 0, "max_parallel_jobs": 0}, ["MaxNumberOfTrainingJobs"]),
    ("strategy", {"strategy": "Grid"}, ["strategy 'Grid' is not one of"]),
]


@pytest.mark.parametrize(("case", "kwargs", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_tuning_inputs(case: str, kwargs: dict[str, Any], expected: list[str]) -> None:
    args: dict[str, Any] = {"job_name": "hpo"}
    args.update(kwargs)
    with pytest.raises(ValidationError) as info:
        build_tuning_request(od_training(), **args)
    for fragment in expected:
        assert fragment in str(info.value), f"{case}: {fragment!r} not in {info.value}"


def test_hand_edited_training_definition_is_rechecked() -> None:
    training = od_training()
    training["InputDataConfig"][0]["InputMode"] = "File"
    with pytest.raises(
        ValidationError,
        match="TrainingJobDefinition: channel 'train': AugmentedManifestFile works only in Pipe",
    ):
        build_tuning_request(training, job_name="hpo")


def summary(
    name: str, value: float | None, status: str = "Completed", objective: str = "Succeeded"
) -> dict[str, Any]:
    now = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    out: dict[str, Any] = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "CreationTime": now,
        "TrainingJobStatus": status,
        "TunedHyperParameters": {"learning_rate": "0.01", "mini_batch_size": "16"},
        "ObjectiveStatus": objective,
    }
    if value is not None:
        out["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "MetricName": "validation:mAP",
            "Value": value,
        }
    return out


def test_pick_best_training_job() -> None:
    jobs = [
        summary("a", 0.41),
        summary("b", 0.77),
        summary("c", 0.95, status="Failed"),
        summary("d", 0.99, objective="Failed"),
        summary("e", None),
    ]
    best = pick_best_training_job(jobs)
    assert best is not None
    assert (best.name, best.value, best.metric_name) == ("b", 0.77, "validation:mAP")
    assert best.hyperparameters == {"learning_rate": "0.01", "mini_batch_size": "16"}
    worst = pick_best_training_job(jobs, maximize=False)
    assert worst is not None and worst.name == "a"
    assert pick_best_training_job([summary("x", None)]) is None


def tuning_description(training: dict[str, Any], status: str) -> dict[str, Any]:
    request = build_tuning_request(training, job_name="hpo")
    now = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    return {
        "HyperParameterTuningJobName": "hpo",
        "HyperParameterTuningJobArn": (
            "arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/hpo"
        ),
        "HyperParameterTuningJobConfig": request["HyperParameterTuningJobConfig"],
        "HyperParameterTuningJobStatus": status,
        "CreationTime": now,
        "TrainingJobStatusCounters": {},
        "ObjectiveStatusCounters": {},
    }


def test_best_training_job_lists_jobs_when_sagemaker_names_none() -> None:
    client = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_response(
            "describe_hyper_parameter_tuning_job",
            tuning_description(od_training(), "InProgress"),
            {"HyperParameterTuningJobName": "hpo"},
        )
        stubber.add_response(
            "list_training_jobs_for_hyper_parameter_tuning_job",
            {
                "TrainingJobSummaries": [summary("j1", 0.3), summary("j2", 0.6)],
                "NextToken": "page-2",
            },
            {"HyperParameterTuningJobName": "hpo"},
        )
        stubber.add_response(
            "list_training_jobs_for_hyper_parameter_tuning_job",
            {
                "TrainingJobSummaries": [
                    summary("j3", 0.8),
                    summary("j4", None, status="InProgress"),
                ]
            },
            {"HyperParameterTuningJobName": "hpo", "NextToken": "page-2"},
        )
        best = best_training_job(client, "hpo")
        assert best.name == "j3"
        stubber.add_response(
            "describe_hyper_parameter_tuning_job",
            tuning_description(od_training(), "InProgress"),
            {"HyperParameterTuningJobName": "hpo"},
        )
        stubber.add_response(
            "list_training_jobs_for_hyper_parameter_tuning_job",
            {"TrainingJobSummaries": [summary("j5", None, status="InProgress")]},
            {"HyperParameterTuningJobName": "hpo"},
        )
        with pytest.raises(GtToolkitError, match="no training job with an objective value yet"):
            best_training_job(client, "hpo")
        stubber.assert_no_pending_responses()


# -- script mode and JumpStart ---------------------------------------------------------------


def script_training() -> dict[str, Any]:
    from gt_toolkit.sagemaker.pytorch import build_pytorch_training_request

    return build_pytorch_training_request(**pytorch_request_args())


def test_script_mode_tuning_finds_its_metric(aws: Callable[[str], Any]) -> None:
    training = script_training()
    request = build_tuning_request(training, job_name="dogs-hpo", max_jobs=6)
    config = request["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Maximize",
        "MetricName": "validation:accuracy",
    }
    ranges = config["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {
            "Name": "learning_rate",
            "MinValue": "1e-05",
            "MaxValue": "0.1",
            "ScalingType": "Logarithmic",
        }
    ]
    assert [r["Name"] for r in ranges["IntegerParameterRanges"]] == ["batch_size", "epochs"]
    definition = request["TrainingJobDefinition"]
    static = definition["StaticHyperParameters"]
    assert {"learning_rate", "batch_size", "epochs"}.isdisjoint(static)
    assert static["sagemaker_program"] == '"train.py"' and static["arch"] == '"resnet18"'
    spec = definition["AlgorithmSpecification"]
    assert "EnableSageMakerMetricsTimeSeries" not in spec
    assert spec["MetricDefinitions"] == training["AlgorithmSpecification"]["MetricDefinitions"]
    assert botocore_report("CreateHyperParameterTuningJob", request) == []
    sm = aws("sagemaker")
    sm.create_hyper_parameter_tuning_job(**request)
    described = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="dogs-hpo")
    assert described["TrainingJobDefinition"]["StaticHyperParameters"] == static


def test_a_loss_objective_is_minimised_and_categoricals_are_json() -> None:
    ranges = [
        ContinuousRange("learning_rate", 1e-4, 1e-2, "Logarithmic"),
        CategoricalRange("optimizer", ("sgd", "adamw")),
    ]
    request = build_tuning_request(
        script_training(), job_name="dogs-hpo", ranges=ranges, objective_metric="validation:loss"
    )
    config = request["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"]["Type"] == "Minimize"
    assert config["ParameterRanges"]["CategoricalParameterRanges"] == [
        {"Name": "optimizer", "Values": ['"sgd"', '"adamw"']}
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"objective_metric": "validation:mAP"},
            "objective 'validation:mAP' is none of the training job's metrics (it reports: "
            "train:loss, train:accuracy, validation:loss, validation:accuracy)",
        ),
        (
            {"ranges": [IntegerRange("mini_batch_size", 8, 64)]},
            "mini_batch_size is not a hyperparameter of this job; it takes: arch, batch_size",
        ),
        ({"ranges": [IntegerRange("epochs", 0, 5)]}, "epochs range must start at 1 or more"),
    ],
)
def test_bad_script_tuning(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        build_tuning_request(script_training(), job_name="dogs-hpo", **kwargs)
    assert any(message in p for p in info.value.problems), info.value.problems


def test_a_job_without_metric_definitions_cannot_be_tuned_on_a_metric() -> None:
    training = script_training()
    training["AlgorithmSpecification"] = {
        k: v for k, v in training["AlgorithmSpecification"].items() if k != "MetricDefinitions"
    }
    with pytest.raises(ValidationError, match="it defines no MetricDefinitions"):
        build_tuning_request(training, job_name="dogs-hpo")


def test_jumpstart_tuning_uses_the_specs_metric(aws: Callable[[str], Any]) -> None:
    """A JumpStart-shaped request (model tag, spec metric, network isolation, code channel)."""
    training = script_training()
    training["Tags"] = [{"Key": JUMPSTART_MODEL_ID_TAG, "Value": "pytorch-ic-resnet18"}]
    training["AlgorithmSpecification"]["MetricDefinitions"] = [
        {"Name": "pytorch-ic:val-accuracy", "Regex": "val_accuracy: ([0-9\\.]+)"}
    ]
    training["EnableNetworkIsolation"] = True
    training["EnableInterContainerTrafficEncryption"] = True
    request = build_tuning_request(training, job_name="hurricane-hpo")
    objective = request["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    assert objective == {"Type": "Maximize", "MetricName": "pytorch-ic:val-accuracy"}
    definition = request["TrainingJobDefinition"]
    assert definition["EnableNetworkIsolation"] is True
    assert definition["EnableInterContainerTrafficEncryption"] is True
    aws("sagemaker").create_hyper_parameter_tuning_job(**request)


def test_best_training_job_of_a_minimised_script_objective() -> None:
    training = script_training()
    request = build_tuning_request(
        training, job_name="hpo", objective_metric="validation:loss", ranges=script_default_ranges()
    )
    description = tuning_description(training, "Completed")
    description["HyperParameterTuningJobConfig"] = request["HyperParameterTuningJobConfig"]
    client = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_response(
            "describe_hyper_parameter_tuning_job",
            description,
            {"HyperParameterTuningJobName": "hpo"},
        )
        stubber.add_response(
            "list_training_jobs_for_hyper_parameter_tuning_job",
            {"TrainingJobSummaries": [summary("j1", 0.9), summary("j2", 0.4), summary("j3", 0.7)]},
            {"HyperParameterTuningJobName": "hpo"},
        )
        assert best_training_job(client, "hpo").name == "j2"
        stubber.assert_no_pending_responses()


def test_a_spot_script_jobs_checkpoint_config_reaches_every_tuning_job(
    aws: Callable[[str], Any],
) -> None:
    from gt_toolkit.sagemaker.pytorch import build_pytorch_training_request
    from gt_toolkit.sagemaker.training import TrainingResources

    spot = TrainingResources(instance_type="ml.g5.xlarge", spot=True)
    training = build_pytorch_training_request(**pytorch_request_args(resources=spot))
    request = build_tuning_request(training, job_name="dogs-spot-hpo")
    definition = request["TrainingJobDefinition"]
    assert definition["CheckpointConfig"] == training["CheckpointConfig"]
    assert definition["EnableManagedSpotTraining"] is True
    local = training["CheckpointConfig"]["LocalPath"]
    assert definition["StaticHyperParameters"]["checkpoint_dir"] == f'"{local}"'
    assert botocore_report("CreateHyperParameterTuningJob", request) == []
    aws("sagemaker").create_hyper_parameter_tuning_job(**request)


def tuned_checkpoint(static: dict[str, str], tuned: dict[str, str]) -> str:
    """The checkpoint file one training job of the tuning job writes, as its script names it.

    The service adds each job's values (plain numbers) and ``_tuning_objective_metric`` to the
    static hyperparameters; the container turns them into arguments for the script.
    """
    from gt_toolkit.sagemaker.pytorch import script_argv
    from gt_toolkit.sagemaker.scripts.pytorch_classifier import contract

    hyperparameters = {**static, **tuned, "_tuning_objective_metric": "validation:accuracy"}
    env = {"SM_CHANNEL_TRAIN": "/t", "SM_CHANNEL_VALIDATION": "/v", "SM_MODEL_DIR": "/m"}
    args = contract.build_parser(env).parse_args(script_argv(hyperparameters))
    return contract.checkpoint_name(contract.run_fingerprint(vars(args), ["cat", "dog"]))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"learning_rate": "0.001"}, {"learning_rate": "0.0011"}),
        ({"batch_size": "8"}, {"batch_size": "9"}),
        ({"epochs": "5"}, {"epochs": "6"}),
    ],
)
def test_tuning_jobs_sharing_one_checkpoint_prefix_write_different_files(
    first: dict[str, str], second: dict[str, str]
) -> None:
    """One CheckpointConfig serves every job; the file name keeps concurrent jobs apart."""
    defaults = {"learning_rate": "0.01", "batch_size": "32", "epochs": "10"}
    static = build_tuning_request(script_training(), job_name="dogs-hpo")["TrainingJobDefinition"][
        "StaticHyperParameters"
    ]
    one = tuned_checkpoint(static, {**defaults, **first})
    assert one != tuned_checkpoint(static, {**defaults, **second})
    assert one == tuned_checkpoint(static, {**defaults, **first})  # a restarted job finds its own


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        (
            [ContinuousRange("momentum", 0.5, 1.2)],
            "momentum range: train.py refuses '1.2' (momentum must be in [0, 0.999], got 1.2)",
        ),
        (
            [IntegerRange("epochs", 2, 5000)],
            "epochs range: train.py refuses '5000' (epochs must be in [1, 1000], got 5000)",
        ),
        (
            [IntegerRange("image_size", 8, 64)],
            "image_size range: train.py refuses '8' (image_size must be in [32, 1024], got 8)",
        ),
        (
            [ContinuousRange("epochs", 2, 20)],
            "epochs is an integer in train.py, and a ContinuousRange picks fractional values",
        ),
        (
            [CategoricalRange("optimizer", ("sgd", "adam"))],
            "optimizer range: train.py refuses 'adam' (optimizer 'adam' is not one of: sgd, adamw)",
        ),
        (
            [CategoricalRange("batch_size", ("16", "32.5"))],
            "batch_size range: train.py refuses '32.5' (batch_size '32.5' is not an integer)",
        ),
        (
            [CategoricalRange("pretrained", ("true", "maybe"))],
            "pretrained range: train.py refuses 'maybe' (pretrained 'maybe' is not true or false)",
        ),
        (
            [IntegerRange("pretrained", 0, 1)],
            "pretrained is not a number in train.py: tune it with a CategoricalRange",
        ),
        (
            [CategoricalRange("device", ("cpu", "cuda"))],
            "device range: 'cuda' needs a GPU instance, not ml.m5.xlarge",
        ),
    ],
)
def test_a_range_the_shipped_script_refuses_is_refused(ranges: list[Any], message: str) -> None:
    """Every training job that picked such a value would exit at start-up, instance paid."""
    from gt_toolkit.sagemaker.pytorch import build_pytorch_training_request
    from gt_toolkit.sagemaker.training import TrainingResources

    cpu = TrainingResources(instance_type="ml.m5.xlarge")
    training = build_pytorch_training_request(**pytorch_request_args(resources=cpu))
    with pytest.raises(ValidationError) as info:
        build_tuning_request(training, job_name="dogs-hpo", ranges=ranges)
    assert any(message in problem for problem in info.value.problems), info.value.problems


def test_ranges_the_shipped_script_takes_pass_its_parser() -> None:
    """The picks a range allows (its ends, every categorical value) parse in train.py."""
    from gt_toolkit.sagemaker.pytorch import script_argv
    from gt_toolkit.sagemaker.scripts.pytorch_classifier import contract

    ranges: list[Any] = [
        ContinuousRange("momentum", 0.0, 0.999),
        IntegerRange("image_size", 32, 1024, "Logarithmic"),
        CategoricalRange("optimizer", ("sgd", "adamw")),
        CategoricalRange("pretrained", ("true", "false")),
        CategoricalRange("batch_size", ("16", "32")),
    ]
    request = build_tuning_request(script_training(), job_name="dogs-hpo", ranges=ranges)
    config = request["HyperParameterTuningJobConfig"]["ParameterRanges"]
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    picks = [
        {r["Name"]: r[end] for r in config[kind]}
        for kind in ("ContinuousParameterRanges", "IntegerParameterRanges")
        for end in ("MinValue", "MaxValue")
    ]
    categorical = config["CategoricalParameterRanges"]
    picks += [{r["Name"]: value} for r in categorical for value in r["Values"]]
    for pick in picks:
        args = contract.build_parser({}).parse_args(
            [
                *script_argv({**static, **pick}),
                "--train",
                "t",
                "--validation",
                "v",
                "--model_dir",
                "m",
            ]
        )
        chosen = {name: getattr(args, name) for name in contract.KINDS}
        assert contract.Hyperparameters(**chosen).problems() == [], pick


def test_the_service_limits_on_ranges_together_are_checked() -> None:
    """The model allows 30 ranges per kind and 100 static values; the API pages count them
    together (all ranges: 30; static and tuned: 100), so only these two lines object."""
    training = script_training()
    names = [f"extra_{i}" for i in range(90)]
    training["HyperParameters"].update({name: "1" for name in names})
    ranges: list[Any] = [IntegerRange(name, 1, 5) for name in names[:20]]
    ranges += [ContinuousRange(name, 0.1, 0.5) for name in names[20:32]]
    with pytest.raises(ValidationError) as info:
        build_tuning_request(training, job_name="dogs-hpo", ranges=ranges)
    static = len(training["HyperParameters"]) - 32
    assert info.value.problems == [
        "32 ranges: a tuning job searches at most 30 hyperparameters, integer, continuous and "
        "categorical ranges together",
        f"32 tuned + {static} static hyperparameters: a tuning job takes at most 100 in all",
    ]


def ic_training() -> dict[str, Any]:
    return build_image_classification_training_request(
        job_name="ic",
        role_arn=ROLE,
        region="us-east-1",
        output_uri="s3://gt-toolkit-demo/models",
        hyperparameters=ImageClassificationHyperparameters(
            num_training_samples=1000, num_classes=3
        ),
        train_manifest_uri="s3://gt-toolkit-demo/t.manifest",
        validation_manifest_uri="s3://gt-toolkit-demo/v.manifest",
        label_attribute="category",
    )


@pytest.mark.parametrize(
    ("training", "ranges", "expected"),
    [
        (
            od_training,
            [ContinuousRange("momentum", 0.5, 1.5), ContinuousRange("weight_decay", 0.0, 2.0)],
            [
                "momentum range: momentum must be in [0, 1), got 1.5",
                "weight_decay range: weight_decay must be in [0, 1), got 2.0",
            ],
        ),
        (
            ic_training,
            [ContinuousRange("beta_1", -0.1, 0.5), ContinuousRange("eps", 1e-8, 2.0)],
            [
                "beta_1 range: beta_1 must be in [0, 1], got -0.1",
                "eps range: eps must be in [0, 1], got 2.0",
            ],
        ),
    ],
)
def test_a_builtin_range_reaching_values_the_algorithm_refuses_is_refused(
    training: Callable[[], dict[str, Any]], ranges: list[Any], expected: list[str]
) -> None:
    """The training builder refuses momentum 1.5 as a value; a range to 1.5 went through."""
    with pytest.raises(ValidationError) as info:
        build_tuning_request(training(), job_name="hpo", ranges=ranges)
    assert info.value.problems == expected


def test_the_documented_builtin_ranges_pass() -> None:
    """docs/ground-truth-formats.md §6: AWS's recommended ranges of both algorithms."""
    od = [ContinuousRange("momentum", 0.0, 0.999), ContinuousRange("weight_decay", 0.0, 0.999)]
    build_tuning_request(od_training(), job_name="od-hpo", ranges=od)
    ic = [
        ContinuousRange("momentum", 0.0, 0.999),
        ContinuousRange("weight_decay", 0.0, 0.999),
        ContinuousRange("beta_1", 1e-6, 0.999),
        ContinuousRange("beta_2", 1e-6, 0.999),
        ContinuousRange("eps", 1e-8, 1.0),
        ContinuousRange("gamma", 1e-8, 0.999),
    ]
    build_tuning_request(ic_training(), job_name="ic-hpo", ranges=ic)
