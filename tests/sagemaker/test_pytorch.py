"""PyTorch script mode: the script's contract (without torch) and the request builder on moto."""

from __future__ import annotations

import ast
import io
import json
import math
import re
import tarfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gt_toolkit import ValidationError
from gt_toolkit.sagemaker.debugger import ProfilerSettings
from gt_toolkit.sagemaker.pytorch import (
    SCRIPT_DIR,
    PyTorchClassifierHyperparameters,
    build_pytorch_training_request,
    pack_pytorch_source,
    script_argv,
    upload_pytorch_source,
)
from gt_toolkit.sagemaker.regions import DLC_ACCOUNTS, pytorch_image_uri
from gt_toolkit.sagemaker.scripts.pytorch_classifier import contract
from gt_toolkit.sagemaker.service_validation import botocore_report
from gt_toolkit.sagemaker.training import TrainingResources
from gt_toolkit.storage.s3 import S3Store
from tests.helpers import DATA, pytorch_request_args

TRAIN_LOG = DATA / "training" / "pytorch_classifier_train.log"


def parsed(request: dict[str, Any]) -> Any:
    """What train.py's parser makes of the arguments the container derives from the request."""
    env = {"SM_CHANNEL_TRAIN": "/t", "SM_CHANNEL_VALIDATION": "/v", "SM_MODEL_DIR": "/m"}
    env["SM_OUTPUT_DATA_DIR"] = "/o"
    return contract.build_parser(env).parse_args(script_argv(request["HyperParameters"]))


# -- the contract between builder and script -------------------------------------------------


def test_every_hyperparameter_the_builder_sends_is_accepted_by_the_script() -> None:
    values = {"arch": "resnet50", "learning_rate": 0.0003, "epochs": 4, "pretrained": False}
    chosen = PyTorchClassifierHyperparameters(**values)
    args = parsed(build_pytorch_training_request(**pytorch_request_args(hyperparameters=chosen)))
    for f in fields(contract.Hyperparameters):
        assert getattr(args, f.name) == values.get(f.name, f.default), f.name
    assert (args.train, args.model_dir) == ("/t", "/m")


@settings(max_examples=60, deadline=None)  # builds and validates a whole request per example
@given(
    arch=st.sampled_from(contract.ARCHITECTURES),
    lr=st.floats(min_value=1e-9, max_value=1.0, allow_nan=False),
    batch=st.integers(min_value=1, max_value=4096),
    epochs=st.integers(min_value=1, max_value=1000),
    top_layer=st.booleans(),
)
def test_any_valid_hyperparameters_round_trip_through_the_container(
    arch: str, lr: float, batch: int, epochs: int, top_layer: bool
) -> None:
    chosen = PyTorchClassifierHyperparameters(
        arch=arch, learning_rate=lr, batch_size=batch, epochs=epochs, train_only_top_layer=top_layer
    )
    args = parsed(build_pytorch_training_request(**pytorch_request_args(hyperparameters=chosen)))
    assert (args.arch, args.learning_rate, args.batch_size) == (arch, lr, batch)
    assert (args.epochs, args.train_only_top_layer) == (epochs, top_layer)


def test_the_parser_refuses_a_name_the_script_does_not_know() -> None:
    with pytest.raises(SystemExit):
        contract.build_parser({}).parse_args(["--train", "t", "--validation", "v"])  # no model_dir
    env = {"SM_CHANNEL_TRAIN": "/t", "SM_CHANNEL_VALIDATION": "/v", "SM_MODEL_DIR": "/m"}
    with pytest.raises(SystemExit):
        contract.build_parser(env).parse_args(["--lr", "0.1"])


@pytest.mark.parametrize("text", ["True", "true", "1", "yes", "False", "false", "0", "no"])
def test_booleans_as_sagemaker_sends_them(text: str) -> None:
    assert contract.parse_bool(text) is (text.lower() in ("true", "1", "yes"))


def test_a_boolean_that_is_neither_is_refused() -> None:
    with pytest.raises(Exception, match="expected true or false"):
        contract.parse_bool("maybe")


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(
    epoch=st.integers(min_value=1, max_value=10_000),
    values=st.tuples(finite, finite, finite, finite),
)
def test_every_metric_regex_reads_its_value_back_from_the_metric_line(
    epoch: int, values: tuple[float, float, float, float]
) -> None:
    line = contract.metric_line(epoch, dict(zip(contract.METRIC_NAMES, values, strict=True)))
    for definition, value in zip(contract.metric_definitions(), values, strict=True):
        match = re.search(definition["Regex"], line)
        assert match is not None, (definition, line)
        assert float(match.group(1)) == pytest.approx(value, rel=1e-5, abs=1e-300)


@given(name=st.sampled_from(contract.METRIC_NAMES), bad=st.sampled_from([math.nan, math.inf]))
def test_a_non_finite_metric_is_left_out_so_no_regex_reads_a_wrong_value(
    name: str, bad: float
) -> None:
    line = contract.metric_line(1, {name: bad})
    assert re.search(contract.metric_regex(name), line) is None


def test_metric_regexes_do_not_read_a_neighbour() -> None:
    line = contract.metric_line(2, {"validation:loss": 0.5, "train:loss": 0.25})
    assert re.search(contract.metric_regex("train:loss"), line).group(1) == "0.25"  # type: ignore[union-attr]
    assert re.search(contract.metric_regex("train:accuracy"), line) is None


def test_unknown_metric_names_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        contract.metric_line(1, {"val_acc": 0.5})
    with pytest.raises(ValueError, match="unknown metric"):
        contract.metric_regex("val_acc")


def test_the_regexes_match_the_lines_the_script_really_printed() -> None:
    """A log captured from ``make train-smoke`` (torch, CPU): every metric on every epoch."""
    lines = TRAIN_LOG.read_text(encoding="utf-8").splitlines()
    epochs = [line for line in lines if line.startswith(contract.METRIC_PREFIX)]
    assert epochs, "the captured log has no metric line"
    for definition in contract.metric_definitions():
        for line in epochs:
            match = re.search(definition["Regex"], line)
            assert match is not None, (definition["Name"], line)
            assert math.isfinite(float(match.group(1)))


def test_train_py_prints_metrics_only_through_the_contract() -> None:
    """No second, hand-written copy of the metric format in the script."""
    source = (SCRIPT_DIR / contract.TRAIN_SCRIPT).read_text(encoding="utf-8")
    tree = ast.parse(source)
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "metric_line"
    ]
    assert len(calls) == 1
    assert contract.METRIC_PREFIX not in source


# -- the source bundle ------------------------------------------------------------------------


def test_source_bundle_holds_the_shipped_scripts_and_is_reproducible() -> None:
    bundle = pack_pytorch_source()
    assert bundle == pack_pytorch_source()
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        names = tar.getnames()
        assert names == list(contract.SOURCE_FILES)
        for name in names:
            member = tar.extractfile(name)
            assert member is not None
            assert member.read() == (SCRIPT_DIR / name).read_bytes()


def test_upload_and_train_on_moto(store: S3Store, bucket: str, aws: Callable[[str], Any]) -> None:
    uri = upload_pytorch_source(store, f"s3://{bucket}/code/sourcedir.tar.gz")
    assert store.get_bytes(uri) == pack_pytorch_source()
    request = build_pytorch_training_request(**pytorch_request_args(source_dir_uri=uri))
    assert botocore_report("CreateTrainingJob", request) == []
    sm = aws("sagemaker")
    sm.create_training_job(**request)
    job = sm.describe_training_job(TrainingJobName="dogs-pt-1")
    assert json.loads(job["HyperParameters"]["sagemaker_submit_directory"]) == uri
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith(
        "pytorch-training:2.6.0-gpu-py312"
    )
    # (moto replaces MetricDefinitions with its own sample, so they are checked offline above)


def test_upload_refuses_a_uri_that_is_not_a_tarball(store: S3Store) -> None:
    with pytest.raises(ValidationError, match=r"tar\.gz"):
        upload_pytorch_source(store, "s3://bkt/code/")


# -- the request ------------------------------------------------------------------------------


def test_request_shape() -> None:
    cpu = TrainingResources(instance_type="ml.m5.xlarge", volume_size_gb=30)
    request = build_pytorch_training_request(**pytorch_request_args(resources=cpu))
    spec = request["AlgorithmSpecification"]
    assert spec["TrainingImage"] == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6.0-cpu-py312"
    )
    assert [m["Name"] for m in spec["MetricDefinitions"]] == list(contract.METRIC_NAMES)
    hps = request["HyperParameters"]
    assert json.loads(hps["sagemaker_program"]) == "train.py"
    assert all(isinstance(json.loads(v), str | int | float | bool) for v in hps.values())
    channels = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    assert set(channels) == {"train", "validation"}
    assert channels["train"]["DataSource"]["S3DataSource"]["S3Uri"].endswith("/train/")
    for absent in ("DebugHookConfig", "ProfilerConfig", "DebugRuleConfigurations"):
        assert absent not in request


def test_channel_prefixes_get_their_slash() -> None:
    request = build_pytorch_training_request(**pytorch_request_args(train_uri="s3://b/dogs/train"))
    uri = request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    assert uri == "s3://b/dogs/train/"


def test_tensorboard_output_points_the_script_at_the_local_path() -> None:
    request = build_pytorch_training_request(
        **pytorch_request_args(tensorboard_output_uri="s3://b/tb")
    )
    config = request["TensorBoardOutputConfig"]
    assert config["S3OutputPath"] == "s3://b/tb"
    assert parsed(request).tensorboard_dir == config["LocalPath"]


def test_more_than_one_instance_is_refused() -> None:
    """The script trains on one machine; a second one would pay for the same work again."""
    two = TrainingResources(instance_type="ml.g5.xlarge", instance_count=2)
    with pytest.raises(ValidationError, match="not distributed"):
        build_pytorch_training_request(**pytorch_request_args(resources=two))


def test_spot_and_tags() -> None:
    spot = TrainingResources(instance_type="ml.g5.xlarge", spot=True, max_runtime_seconds=3600)
    request = build_pytorch_training_request(
        **pytorch_request_args(resources=spot, tags={"team": "vision"})
    )
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"]["MaxWaitTimeInSeconds"] == 3600
    assert request["Tags"] == [{"Key": "team", "Value": "vision"}]


@pytest.mark.parametrize("region", sorted(DLC_ACCOUNTS))
def test_training_image_per_region(region: str) -> None:
    uri = pytorch_image_uri(region, "2.5.1", instance_type="ml.p3.2xlarge")
    assert uri == (
        f"{DLC_ACCOUNTS[region]}.dkr.ecr.{region}.amazonaws.com/pytorch-training:2.5.1-gpu-py311"
    )


BAD_HYPERPARAMETERS: list[tuple[dict[str, Any], str]] = [
    ({"arch": "resnet101"}, "arch 'resnet101' is not one of"),
    ({"learning_rate": 0}, r"learning_rate must be in \(0"),
    ({"epochs": 2.5}, "epochs must be an integer"),
    ({"pretrained": "yes"}, "pretrained must be true or false"),
    ({"batch_size": True}, "batch_size must be an integer"),
    ({"optimizer": "adam"}, "optimizer 'adam' is not one of: sgd, adamw"),
    ({"momentum": 1.0}, r"momentum must be in \[0, 0.999\]"),
    # torch.manual_seed refuses it: the job would fail at start-up, not here
    ({"seed": 2**64}, r"seed must be in \[0, 18446744073709551615\], got 18446744073709551616"),
]


@pytest.mark.parametrize(("values", "message"), BAD_HYPERPARAMETERS)
def test_bad_hyperparameters_fail_where_they_are_written(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        PyTorchClassifierHyperparameters(**values)


def test_an_unknown_hyperparameter_name_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="lr"):
        PyTorchClassifierHyperparameters(lr=0.1)  # type: ignore[call-arg]


BAD_INPUTS: list[tuple[dict[str, Any], str]] = [
    ({"train_uri": "data/train"}, "train_uri must be an s3:// URI"),
    ({"source_dir_uri": "s3://b/code/"}, "must name a .tar.gz bundle"),
    ({"framework_version": "1.8.1"}, "no PyTorch training image for version '1.8.1'"),
    ({"resources": TrainingResources(instance_type="ml.trn1.2xlarge")}, "needs a Neuron image"),
    ({"region": "mars-north-1"}, "no known Deep Learning Containers"),
    ({"job_name": "dogs_pt"}, "TrainingJobName"),
    (
        {
            "hyperparameters": PyTorchClassifierHyperparameters(device="cuda"),
            "resources": TrainingResources(instance_type="ml.m5.xlarge"),
        },
        "device 'cuda' needs a GPU instance",
    ),
    ({"debugger_rules": ["DeadPixel"]}, "unknown Debugger rule 'DeadPixel'"),
    (
        {"profiler": ProfilerSettings(disabled=True, rules=("LowGPUUtilization",))},
        "cannot run with the profiler disabled",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_INPUTS)
def test_bad_pytorch_inputs(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build_pytorch_training_request(**pytorch_request_args(**overrides))


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        build_pytorch_training_request(
            **pytorch_request_args(
                source_dir_uri="s3://b/x.zip", train_uri="here", region="nowhere"
            )
        )
    assert len(info.value.problems) >= 3


def test_hyperparameter_defaults_are_the_scripts() -> None:
    merged = PyTorchClassifierHyperparameters(learning_rate=1).values()
    assert merged["learning_rate"] == 1.0 and isinstance(merged["learning_rate"], float)
    assert {k: v for k, v in merged.items() if k != "learning_rate"} == {
        f.name: f.default
        for f in fields(contract.Hyperparameters)
        if f.name != "learning_rate" and f.default != ""
    }


@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_a_learning_rate_outside_its_range_is_refused(value: float) -> None:
    assume(not (math.isfinite(value) and 0 < value <= 1))
    with pytest.raises(ValidationError, match="learning_rate"):
        PyTorchClassifierHyperparameters(learning_rate=value)


def test_script_argv_mirrors_the_container() -> None:
    argv = script_argv({"b": '"x y"', "a": "3", "sagemaker_program": '"train.py"', "c": "true"})
    assert argv == ["-a", "3", "-b", "x y", "-c", "True"]
    # a value that is not JSON stays raw; the others are still decoded
    assert script_argv({"lr": "0.1", "arch": "resnet18"}) == ["--arch", "resnet18", "--lr", "0.1"]
    assert script_argv({"arch": '"resnet18"', "xy": "raw"}) == ["--arch", "resnet18", "--xy", "raw"]
    assert script_argv({"m": '{"k": 1}', "n": "null"}) == ["-m", "k=1", "-n", ""]


def test_the_scripts_import_nothing_from_gt_toolkit() -> None:
    """They run in a container where gt_toolkit is not installed."""
    for name in contract.SOURCE_FILES:
        tree = ast.parse((SCRIPT_DIR / name).read_text(encoding="utf-8"))
        modules = [
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [m for m in modules if m.startswith("gt_toolkit")], name


def test_a_tuning_jobs_training_job_parses_in_the_script() -> None:
    """A tuning job adds ``_tuning_objective_metric`` (raw text) to each job's hyperparameters."""
    request = build_pytorch_training_request(**pytorch_request_args())
    hyperparameters = {
        **request["HyperParameters"],
        "_tuning_objective_metric": "validation:accuracy",
        "learning_rate": "0.0042",
    }
    args = parsed({**request, "HyperParameters": hyperparameters})
    assert (args.arch, args.learning_rate) == ("resnet18", 0.0042)


def test_listing_a_local_channel(tmp_path: Path) -> None:
    for folder in ("cat", "dog", ".ipynb_checkpoints", "empty"):
        (tmp_path / folder).mkdir()
    (tmp_path / "cat" / "a.JPG").write_bytes(b"x")
    (tmp_path / "cat" / "notes.txt").write_text("x")
    (tmp_path / "README.md").write_text("x")
    assert contract.list_channel(tmp_path) == [
        ".ipynb_checkpoints/",
        "README.md",
        "cat/a.JPG",
        "cat/notes.txt",
        "dog/",
        "empty/",
    ]
    assert [p.name for p in contract.image_files(tmp_path / "cat")] == ["a.JPG"]


def test_the_trainer_reads_the_images_the_check_counts(tmp_path: Path) -> None:
    """A macOS resource fork (``._a.jpg``) is no image: the check skips it, so must training."""
    for name in ("a.jpg", "._a.jpg", ".hidden.png", "b.png"):
        (tmp_path / "cat" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "cat" / name).write_bytes(b"x")
    check = contract.check_class_folders({"train": contract.list_channel(tmp_path)})
    read = contract.image_files(tmp_path / "cat")
    assert [p.name for p in read] == ["a.jpg", "b.png"]
    assert check.counts["train"] == len(read)


GOOD = ["cat/a.jpg", "cat/b.png", "dog/c.jpeg"]
CLASS_FOLDER_CASES: list[tuple[dict[str, list[str]], list[str], list[str]]] = [
    ({"train": GOOD, "validation": GOOD}, [], []),
    (
        {"train": GOOD, "validation": ["cat/x.jpg"]},
        ["validation: needs at least two", "differ"],
        [],
    ),
    (
        {"train": [*GOOD, "bird/"], "validation": GOOD},
        ["train: class folders without images: ['bird']", "only in train ['bird']"],
        [],
    ),
    ({"train": [*GOOD, "bird/readme.txt"]}, ["without images: ['bird']"], ["1 file(s) not images"]),
    ({"train": [*GOOD, "labels.csv"]}, [], ["1 file(s) outside skipped: labels.csv"]),
    ({"train": [*GOOD, "cat/more/d.jpg"]}, [], ["1 file(s) nested skipped"]),
    ({"train": [*GOOD, ".DS_Store", "cat/.hidden.jpg", ".cache/x.jpg"]}, [], []),
    ({"train": []}, ["needs at least two class folders, found []"], []),
]


@pytest.mark.parametrize(("channels", "errors", "warnings"), CLASS_FOLDER_CASES)
def test_class_folder_rules(
    channels: dict[str, list[str]], errors: list[str], warnings: list[str]
) -> None:
    check = contract.check_class_folders(channels)
    assert len(check.errors) == len(errors), check.errors
    for got, want in zip(check.errors, errors, strict=True):
        assert want in got
    assert len(check.warnings) == len(warnings), check.warnings
    for got, want in zip(check.warnings, warnings, strict=True):
        assert want in got
    if not errors:
        assert check.classes == ["cat", "dog"]


@pytest.mark.parametrize(
    ("accept", "ok"),
    [
        ("", True),
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/json, text/plain", True),  # was refused: read as one media type
        ("text/html, application/xhtml+xml, */*;q=0.8", True),  # a browser
        ("application/*", True),
        ("text/csv", False),
        ("text/csv, application/json;q=0", False),  # JSON explicitly not acceptable
        ("text/plain, */*; q=0.0", False),
    ],
)
def test_the_endpoint_reads_every_media_range_of_accept(accept: str, ok: bool) -> None:
    assert contract.accepts_json(accept) is ok


# -- checkpoints: which run a file belongs to -------------------------------------------------

CLASSES = ["cat", "dog"]
SM_ENV = {"SM_CHANNEL_TRAIN": "/t", "SM_CHANNEL_VALIDATION": "/v", "SM_MODEL_DIR": "/m"}


def script_values(*argv: str) -> dict[str, Any]:
    """What train.py passes to the fingerprint: its parsed arguments."""
    return vars(contract.build_parser(SM_ENV).parse_args(list(argv)))


def fingerprint(values: dict[str, Any], classes: list[str] = CLASSES) -> str:
    return contract.run_fingerprint(values, classes)


def another_value(name: str, value: Any) -> Any:
    """A different value the script accepts for ``name``."""
    limits = next(f for f in fields(contract.Hyperparameters) if f.name == name).metadata["limits"]
    kind = contract.KINDS[name]
    if kind is bool:
        return not value
    if kind is str:
        return next(choice for choice in limits.choices if choice != value)
    if kind is int:
        return value + 1 if limits.high is None or value < limits.high else value - 1
    return value / 2


def test_only_paths_and_the_serving_default_are_left_out_of_a_runs_identity() -> None:
    """Written out by hand: adding a name here decides that it cannot change the weights."""
    assert {"checkpoint_dir", "tensorboard_dir", "top_k"} == contract.NOT_TRAINING
    names = {f.name for f in fields(contract.Hyperparameters)}
    assert set(contract.TRAINING_KEYS) == names - contract.NOT_TRAINING
    assert {"epochs", "learning_rate", "seed", "num_workers", "device"} <= set(
        contract.TRAINING_KEYS
    )


@pytest.mark.parametrize("name", contract.TRAINING_KEYS)
def test_every_training_hyperparameter_changes_the_fingerprint(name: str) -> None:
    values = script_values()
    changed = {**values, name: another_value(name, values[name])}
    chosen = {k: changed[k] for k in contract.KINDS}
    assert contract.Hyperparameters(**chosen).problems() == []  # a value the script takes
    assert fingerprint(changed) != fingerprint(values)


@pytest.mark.parametrize(
    "extra",
    [
        {"checkpoint_dir": "/opt/ml/checkpoints"},
        {"tensorboard_dir": "/opt/ml/output/tensorboard"},
        {"top_k": 1},
        {"model_dir": "/elsewhere", "train": "/t2", "output_data_dir": None},
        {"sagemaker_job_name": "other", "_tuning_objective_metric": "validation:loss"},
    ],
)
def test_bookkeeping_keys_do_not_change_the_fingerprint(extra: dict[str, Any]) -> None:
    values = script_values()
    assert fingerprint({**values, **extra}) == fingerprint(values)


@pytest.mark.parametrize(
    "classes",
    [["cat"], ["cat", "dog", "emu"], ["cat", "fox"], ["dog", "cat"], ["Cat", "dog"]],
)
def test_the_class_list_changes_the_fingerprint(classes: list[str]) -> None:
    """Another class, a renamed one, or another order (other class ids) is another run."""
    values = script_values()
    assert fingerprint(values, classes) != fingerprint(values)


@settings(max_examples=50, deadline=None)  # slow under a loaded run
@given(data=st.data())
def test_the_fingerprint_does_not_depend_on_key_order(data: st.DataObject) -> None:
    values = {**script_values(), "sagemaker_region": "us-east-1"}
    order = data.draw(st.permutations(list(values)))
    assert fingerprint({k: values[k] for k in order}) == fingerprint(values)


@given(
    lr=st.floats(min_value=1e-9, max_value=1.0, allow_nan=False),
    other=st.floats(min_value=1e-9, max_value=1.0, allow_nan=False),
)
def test_the_fingerprint_tells_learning_rates_apart(lr: float, other: float) -> None:
    assume(lr != other)
    a, b = script_values("--learning_rate", repr(lr)), script_values("--learning_rate", repr(other))
    assert fingerprint(a) != fingerprint(b)


@settings(max_examples=30, deadline=None)  # builds and validates a whole request per example
@given(lr=st.floats(min_value=1e-9, max_value=1.0, allow_nan=False), epochs=st.integers(1, 1000))
def test_the_builder_side_and_the_script_side_agree_on_the_fingerprint(
    lr: float, epochs: int
) -> None:
    """The values written in Python and the ones the script parses from the request name one run."""
    chosen = PyTorchClassifierHyperparameters(learning_rate=lr, epochs=epochs)
    request = build_pytorch_training_request(**pytorch_request_args(hyperparameters=chosen))
    assert fingerprint(vars(parsed(request))) == fingerprint(chosen.values())


def test_a_number_written_another_way_is_the_same_run() -> None:
    assert fingerprint(script_values("--learning_rate", "1e-3")) == fingerprint(
        script_values("--learning_rate", "0.001")
    )


def test_checkpoint_names() -> None:
    run = fingerprint(script_values())
    assert re.fullmatch(r"[0-9a-f]{16}", run)
    name = contract.checkpoint_name(run)
    assert run in name and contract.is_checkpoint_name(name)
    partial = contract.partial_checkpoint_name(name)
    assert partial.startswith(".") and not contract.is_checkpoint_name(partial)
    for other in ("checkpoint-abc.pt", f"{name}.partial", "model.pth", name.upper()):
        assert not contract.is_checkpoint_name(other), other


def test_train_py_names_and_judges_checkpoints_only_through_the_contract() -> None:
    """No second copy of the file naming or of the resume rules in the script."""
    tree = ast.parse((SCRIPT_DIR / contract.TRAIN_SCRIPT).read_text(encoding="utf-8"))
    called = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "contract"
    }
    assert {
        "run_fingerprint",
        "checkpoint_name",
        "partial_checkpoint_name",
        "plan_resume",
    } <= called
    texts = [
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]
    assert not [t for t in texts if "checkpoint-" in t or ".partial" in t or t.endswith(".pt")]


# -- checkpoints: the resume decision ---------------------------------------------------------

RUN = "0123456789abcdef"
OTHER_RUN = "fedcba9876543210"


def saved(epoch: int, run: str = RUN, **changes: Any) -> dict[str, Any]:
    """A checkpoint's content as train.py writes it (plain data standing in for tensors)."""
    content: dict[str, Any] = {key: None for key in contract.CHECKPOINT_KEYS}
    content.update(format=contract.CHECKPOINT_FORMAT, fingerprint=run, epoch=epoch, best_epoch=1)
    return {**content, **changes}


def write(folder: Path, run: str, content: Any) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / contract.checkpoint_name(run)
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_no_checkpoint_folder_or_an_empty_one_starts_from_scratch(tmp_path: Path) -> None:
    for folder in (tmp_path / "absent", tmp_path):
        plan = contract.plan_resume(folder, RUN, 10, read_json)
        assert (plan.start_epoch, plan.checkpoint, plan.notes) == (1, None, ())
        assert plan.resumed_line() is None


def test_this_runs_checkpoint_is_resumed_after_its_epoch(tmp_path: Path) -> None:
    write(tmp_path, RUN, saved(3))
    plan = contract.plan_resume(tmp_path, RUN, 10, read_json)
    assert plan.start_epoch == 4 and plan.notes == ()
    assert plan.checkpoint is not None and plan.checkpoint["epoch"] == 3
    assert plan.resumed_line() == f"#info resumed from epoch 3 of 10 (checkpoint-{RUN}.pt)"


def test_a_finished_run_is_not_trained_again(tmp_path: Path) -> None:
    write(tmp_path, RUN, saved(10, best_epoch=7))
    plan = contract.plan_resume(tmp_path, RUN, 10, read_json)
    assert plan.start_epoch == 11
    line = plan.resumed_line()
    assert line is not None
    assert "already holds all 10 epochs" in line and "(epoch 7)" in line


def test_another_runs_checkpoint_is_ignored_and_left_alone(tmp_path: Path) -> None:
    theirs = write(tmp_path, OTHER_RUN, saved(5, run=OTHER_RUN))
    before = theirs.read_bytes()
    read: list[Path] = []

    def spy(path: Path) -> Any:
        read.append(path)
        return read_json(path)

    plan = contract.plan_resume(tmp_path, RUN, 10, spy)
    assert (plan.start_epoch, plan.checkpoint, read) == (1, None, [])
    assert plan.notes == (
        f"#info ignored 1 checkpoint(s) of other runs (other hyperparameters or classes): "
        f"checkpoint-{OTHER_RUN}.pt",
    )
    assert theirs.read_bytes() == before
    # beside this run's own file: resumed, and the other one still named
    write(tmp_path, RUN, saved(2))
    plan = contract.plan_resume(tmp_path, RUN, 10, spy)
    assert plan.start_epoch == 3 and len(plan.notes) == 1
    assert read == [tmp_path / contract.checkpoint_name(RUN)]


def test_many_other_runs_are_named_in_one_line(tmp_path: Path) -> None:
    for i in range(8):
        write(tmp_path, f"{i:016x}", saved(1, run=f"{i:016x}"))
    (note,) = contract.plan_resume(tmp_path, RUN, 10, read_json).notes
    assert "ignored 8 checkpoint(s)" in note and note.endswith("and 3 more")


def test_a_partial_write_is_never_taken_for_a_checkpoint(tmp_path: Path) -> None:
    name = contract.partial_checkpoint_name(contract.checkpoint_name(RUN))
    (tmp_path / name).write_text(json.dumps(saved(4)), encoding="utf-8")
    plan = contract.plan_resume(tmp_path, RUN, 10, read_json)
    assert (plan.start_epoch, plan.notes) == (1, ())


UNUSABLE: list[tuple[Any, str]] = [
    ([1, 2], "holds a list"),
    ({k: v for k, v in saved(3).items() if k not in ("rng", "model")}, "lacks model, rng"),
    (saved(3, format=contract.CHECKPOINT_FORMAT + 1), "format"),
    (saved(3, fingerprint=OTHER_RUN), f"written by run '{OTHER_RUN}'"),
    (saved(0), "epoch 0 is not 1 to 10"),
    (saved(11), "epoch 11 is not 1 to 10"),
    (saved(True), "epoch True"),
    (saved("3"), "epoch '3'"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("content", "why"), UNUSABLE)
def test_an_unusable_checkpoint_is_reported_and_training_starts_over(
    tmp_path: Path, content: Any, why: str
) -> None:
    path = write(tmp_path, RUN, content)
    plan = contract.plan_resume(tmp_path, RUN, 10, read_json)
    assert (plan.start_epoch, plan.checkpoint) == (1, None)
    (note,) = plan.notes
    assert note.startswith(f"#warning checkpoint {path.name} cannot be read (")
    assert why in note and note.endswith("training from scratch")
    assert path.exists()


def test_a_checkpoint_the_reader_cannot_load_is_reported_not_raised(tmp_path: Path) -> None:
    path = write(tmp_path, RUN, saved(3))
    path.write_bytes(path.read_bytes()[:10])  # a truncated upload
    plan = contract.plan_resume(tmp_path, RUN, 10, read_json)
    (note,) = plan.notes
    assert (plan.start_epoch, plan.checkpoint) == (1, None)
    assert "cannot be read (JSONDecodeError:" in note


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("PytorchStreamReader failed reading zip archive"),  # torch, truncated file
        EOFError("Ran out of input"),
        OSError("Input/output error"),
        KeyError("model"),
    ],
)
def test_whatever_the_reader_raises_the_job_starts_over(tmp_path: Path, error: Exception) -> None:
    path = write(tmp_path, RUN, saved(3))

    def broken(_: Path) -> Any:
        raise error

    plan = contract.plan_resume(tmp_path, RUN, 10, broken)
    (note,) = plan.notes
    assert (plan.start_epoch, plan.checkpoint) == (1, None)
    assert note.startswith(
        f"#warning checkpoint {path.name} cannot be read ({type(error).__name__}"
    )


def test_an_unreadable_checkpoint_is_one_line_however_long_the_reason() -> None:
    line = contract.unreadable_line("checkpoint-x.pt", "first\nsecond " + "y" * 1000)
    assert "\n" not in line and "first second y" in line and len(line) < 400


# -- checkpoints: the request -----------------------------------------------------------------


def test_a_checkpoint_uri_adds_checkpoint_config_and_points_the_script_at_it() -> None:
    request = build_pytorch_training_request(
        **pytorch_request_args(checkpoint_uri="s3://bkt/ckpt/dogs")
    )
    assert request["CheckpointConfig"] == {
        "S3Uri": "s3://bkt/ckpt/dogs",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert parsed(request).checkpoint_dir == "/opt/ml/checkpoints"
    assert botocore_report("CreateTrainingJob", request) == []


@pytest.mark.parametrize(
    ("output_uri", "expected"),
    [
        ("s3://gt-toolkit-demo/models", "s3://gt-toolkit-demo/models/dogs-pt-1/checkpoints"),
        ("s3://gt-toolkit-demo/models/", "s3://gt-toolkit-demo/models/dogs-pt-1/checkpoints"),
    ],
)
def test_a_spot_job_checkpoints_beside_its_output_by_default(
    output_uri: str, expected: str
) -> None:
    spot = TrainingResources(instance_type="ml.g5.xlarge", spot=True)
    request = build_pytorch_training_request(
        **pytorch_request_args(resources=spot, output_uri=output_uri)
    )
    assert request["CheckpointConfig"]["S3Uri"] == expected
    assert parsed(request).checkpoint_dir == request["CheckpointConfig"]["LocalPath"]
    explicit = build_pytorch_training_request(
        **pytorch_request_args(resources=spot, checkpoint_uri="s3://bkt/mine")
    )
    assert explicit["CheckpointConfig"]["S3Uri"] == "s3://bkt/mine"


def test_a_default_checkpoint_location_too_long_for_the_service_says_where_it_came_from() -> None:
    spot = TrainingResources(instance_type="ml.g5.xlarge", spot=True)
    output_uri = "s3://bkt/" + "x" * 1000  # valid alone; with /<job>/checkpoints over 1,024
    assert (
        botocore_report(
            "CreateTrainingJob",
            build_pytorch_training_request(**pytorch_request_args(output_uri=output_uri)),
        )
        == []
    )
    with pytest.raises(ValidationError) as caught:
        build_pytorch_training_request(
            **pytorch_request_args(resources=spot, output_uri=output_uri)
        )
    (problem,) = caught.value.problems
    assert "default checkpoint location" in problem and "give checkpoint_uri" in problem
    shorter = pytorch_request_args(resources=spot, output_uri=output_uri, checkpoint_uri="s3://b/c")
    assert build_pytorch_training_request(**shorter)["CheckpointConfig"]["S3Uri"] == "s3://b/c"


def test_without_spot_or_a_uri_there_are_no_checkpoints() -> None:
    request = build_pytorch_training_request(**pytorch_request_args())
    assert "CheckpointConfig" not in request
    assert "checkpoint_dir" not in request["HyperParameters"]
    assert parsed(request).checkpoint_dir == ""


@pytest.mark.parametrize("uri", ["checkpoints/dogs", "https://bkt.s3.amazonaws.com/ckpt", ""])
def test_a_checkpoint_uri_that_is_not_s3_is_refused(uri: str) -> None:
    with pytest.raises(ValidationError, match="checkpoint_uri must be an s3:// URI"):
        build_pytorch_training_request(**pytorch_request_args(checkpoint_uri=uri))
