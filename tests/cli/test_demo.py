"""`make demo` runs in CI: the same entry point, outputs checked for content."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit.cli import build_parser, main
from gt_toolkit.cli.demo import how_to_run, local_config
from gt_toolkit.cli.demo_flow import bucket_location, labeling_request

# One worker runs the whole module, so the demo (a module fixture) runs once, not per worker.
pytestmark = pytest.mark.xdist_group("demo")


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run the whole demo once (its own moto server) and keep what it printed."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo")
    before = dict(os.environ)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["demo", "--out", str(out)])
    assert code == 0, printed.getvalue()
    # The demo restores the environment it borrowed for its local AWS.
    assert {k: v for k, v in os.environ.items() if k.startswith("AWS_")} == {
        k: v for k, v in before.items() if k.startswith("AWS_")
    }
    return out, printed.getvalue()


def test_prints_every_step_with_its_output(demo_out: tuple[Path, str]) -> None:
    out, text = demo_out
    assert "moto server on http://127.0.0.1:" in text
    assert text.count("     -> ") == 14
    assert "gt-toolkit demo: 14 steps" in text
    assert "train.manifest, validation.manifest" in text
    assert str(out / "review" / "report.html") in text


def test_manifest_and_sample(demo_out: tuple[Path, str]) -> None:
    out, _ = demo_out
    everything = _lines(out / "all.manifest")
    sample = _lines(out / "sample.manifest")
    assert len(everything) == 40 and len(sample) == 8  # round(20% of 40)
    assert all(x in everything for x in sample)
    chosen = json.loads((out / "sample.manifest.sample.json").read_text())
    assert [everything[n - 1] for n in chosen["lines"]] == sample


def test_template_and_preview(demo_out: tuple[Path, str]) -> None:
    out, _ = demo_out
    template = (out / "template.liquid.html").read_text()
    assert "<crowd-bounding-box" in template and "grant_read_access" in template
    assert template.count("data:image/") >= 3  # one good and two bad examples
    preview = (out / "template.preview.html").read_text()
    assert "{{" not in preview  # the Liquid was rendered
    assert "data:image/jpeg" in preview or "data:image/png" in preview


def test_labeling_request_uses_the_deployed_lambdas(demo_out: tuple[Path, str]) -> None:
    out, _ = demo_out
    request = json.loads((out / "labeling_job_request.json").read_text())
    task = request["HumanTaskConfig"]
    assert task["PreHumanTaskLambdaArn"].endswith("SageMaker-pre-annotation")
    consolidation = task["AnnotationConsolidationConfig"]["AnnotationConsolidationLambdaArn"]
    assert consolidation.endswith("SageMaker-post-annotation")
    assert task["NumberOfHumanWorkersPerDataObject"] == 5
    assert request["LabelAttributeName"] == "balls"


def test_output_manifest_is_consolidated_and_accurate(demo_out: tuple[Path, str]) -> None:
    out, _ = demo_out
    lines = _lines(out / "output.manifest")
    assert [x["source-ref"] for x in lines] == [
        x["source-ref"] for x in _lines(out / "sample.manifest")
    ]
    for line in lines:
        meta = line["balls-metadata"]
        assert meta["type"] == "groundtruth/object-detection"
        assert len(meta["objects"]) == len(line["balls"]["annotations"])
        assert all(0 <= o["confidence"] <= 1 for o in meta["objects"])
    evaluation = json.loads((out / "evaluation.json").read_text())
    # Five simulated workers of ordinary skill: consolidation should find every ball.
    assert evaluation["recall"] >= 0.9
    assert evaluation["map50"] >= 0.9


def test_channels_and_training_requests_agree(demo_out: tuple[Path, str]) -> None:
    out, _ = demo_out
    channels = json.loads((out / "channels.json").read_text())
    training = json.loads((out / "training_request.json").read_text())
    tuning = json.loads((out / "tuning_request.json").read_text())
    hp = training["HyperParameters"]
    assert int(hp["num_training_samples"]) == channels["num_training_samples"]["train"]
    assert sum(channels["num_training_samples"].values()) == 8
    assert hp["num_classes"] == "1"
    names = [c["DataSource"]["S3DataSource"]["AttributeNames"] for c in training["InputDataConfig"]]
    assert names == [["source-ref", "balls"], ["source-ref", "balls"]]
    assert (
        tuning["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
        == "validation:mAP"
    )


def test_review_report(demo_out: tuple[Path, str]) -> None:
    out, _ = demo_out
    report = (out / "review" / "report.html").read_text()
    assert report.count("<img") >= 8
    review = json.loads((out / "review" / "review.json").read_text())
    assert review["images"] == 8 and len(review["pictures"]) == 8
    assert not review["missing_images"]
    assert len(review["quality"]) == 5  # one row per simulated worker
    agreement = [score for _, score in review["lowest"]]
    assert agreement == sorted(agreement)
    assert (out / "review" / "contact_sheet.png").stat().st_size > 10_000


def test_real_aws_run_needs_the_account_specific_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--profile", "someone", "--bucket", "b-b-b"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--role-arn is required" in err and "--workteam-arn is required" in err


def test_submit_without_profile_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--submit"]) == 1
    assert "--submit only applies" in capsys.readouterr().err


def test_another_region_and_bucket() -> None:
    # Checked on the builders the run uses, not by a second full run of the demo.
    args = build_parser().parse_args(
        ["demo", "--out", "x", "--region", "eu-west-1", "--bucket", "my-demo-eu"]
    )
    config = local_config(args)
    assert (config.region, config.bucket) == ("eu-west-1", "my-demo-eu")
    assert bucket_location("eu-west-1") == {
        "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}
    }
    assert bucket_location("us-east-1") == {}  # the one region that refuses a constraint
    region_arn = "arn:aws:lambda:eu-west-1:123456789012:function:gt-toolkit-demo-SageMaker-{}"
    request = labeling_request(
        config,
        "s3://my-demo-eu/labeling/balls-demo/input/sample.manifest",
        pre_annotation_arn=region_arn.format("pre"),
        consolidation_arn=region_arn.format("post"),
    )
    assert request["HumanTaskConfig"]["WorkteamArn"].startswith("arn:aws:sagemaker:eu-west-1:")
    assert request["OutputConfig"]["S3OutputPath"].startswith("s3://my-demo-eu/")
    assert request["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"].startswith(
        "s3://my-demo-eu/"
    )


def test_local_copies_of_the_training_channels(demo_out: tuple[Path, str]) -> None:
    out, _ = demo_out
    channels = json.loads((out / "channels.json").read_text())
    for name in ("train", "validation"):
        lines = _lines(out / f"{name}.manifest")
        assert len(lines) == channels["num_training_samples"][name]
        assert all(set(line) == {"source-ref", "balls"} for line in lines)


def test_summary_says_how_to_run_gt_convert(
    demo_out: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, text = demo_out
    assert "gt-convert" in text.splitlines()[-1]
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # a shell where the virtualenv is not active
    bin_dir = Path(sys.executable).parent
    hint = how_to_run()
    assert "activate`" in hint and f"{bin_dir.name}/gt-convert --help" in hint
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin")
    assert (
        how_to_run() == "Next: gt-convert --help (every step above is a subcommand or an API call)"
    )


def test_label_studio_export_is_consolidated_with_its_agreement(
    demo_out: tuple[Path, str],
) -> None:
    out, text = demo_out
    lines = _lines(out / "label-studio.manifest")
    assert len(lines) == 40 and all("consolidated" in x for x in lines)
    agreement = json.loads((out / "agreement" / "agreement.json").read_text())
    assert 0.3 < agreement["alpha"] < 1 and len(agreement["per_annotator"]) == 5
    assert str(out / "agreement" / "agreement.html") in text


def test_every_output_the_summary_names_was_written(demo_out: tuple[Path, str]) -> None:
    out, text = demo_out
    listing = text.split(f"Outputs in {out}/:", 1)[1].split("\n\n", 1)[0]
    names = [n.strip() for n in listing.replace("\n", " ").split(",")]
    names = [n.replace("/.txt", "") for n in names] + ["evaluation.txt"]  # evaluation.json/.txt
    assert len(names) == 18
    assert [n for n in names if not (out / n).is_file()] == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--samples", "no-such-folder"], "not the samples folder (no images, truth.manifest"),
        (["--out", "{file}"], "a file is in the way of the output folder"),
    ],
)
def test_a_wrong_samples_or_out_folder_is_one_line_before_any_step(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("x")
    args = [a.replace("{file}", str(tmp_path / "file")) for a in argv]
    out = ["--out", str(tmp_path / "out")] if "--out" not in args else []
    assert main(["demo", *out, *args]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no step ran, not even the local AWS
    assert message in captured.err and captured.err.count("\n") == 1
    assert not (tmp_path / "out").exists()
