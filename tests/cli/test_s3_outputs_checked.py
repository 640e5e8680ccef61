"""An ``s3://`` output a run could only fail to write stops it before any output moves.

A run puts its main output in place first and writes its summary (and, for ``consolidate``
and ``agreement``, its rejects file) after it; the files of ``sample`` and ``template`` appear
together or not at all, so one that fails takes back those already in place. Local paths were
checked before the run (``check_writable``); ``s3://`` ones were not: a missing bucket or a
key this user may not write let the run replace the output and then exit 1. Each run here is
refused in one line and leaves the bucket as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from moto.core.authorization import enable_iam_authentication

from gt_toolkit.cli import main
from tests.helpers import SAMPLES, broken_export, refused_run, s3_tree

TRUTH = SAMPLES / "truth.manifest"
_TEMPLATE = ["template", "--labels", "ball", "--header", "Box every ball", "--no-s3-check"]
_TEMPLATE += ["--short-instructions", "Tight.", "--full-instructions", "One box per ball."]
_MISSING = "s3://no-such-bucket-for-gt"


def _few(tmp_path: Path) -> Path:
    """The first three lines of the truth manifest: a rerun that changes the output."""
    few = tmp_path / "few.manifest"
    few.write_text("".join(TRUTH.read_text().splitlines(keepends=True)[:3]))
    return few


def _refused_as(
    keys: dict[str, str] | None,
    argv: list[str],
    said: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run refused, as the user of ``keys`` (``None``: the fixtures' own, no IAM checks)."""
    capsys.readouterr()
    if keys is None:
        refused_run(argv, said, capsys)
        return
    with monkeypatch.context() as env, enable_iam_authentication():
        for name, value in keys.items():
            env.setenv(name, value)
        refused_run(argv, said, capsys)


@pytest.mark.parametrize("where", ["missing bucket", "denied key"])
def test_convert_refuses_a_summary_it_cannot_write_before_the_dataset_moves(
    where: str,
    tmp_path: Path,
    moto_endpoint: str,
    s3_client: Any,
    bucket: str,
    keys_denied: Callable[..., dict[str, str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aws = ["--endpoint-url", moto_endpoint]
    out = f"s3://{bucket}/y"
    assert main(["yolo", str(TRUTH), "-o", out, *aws]) == 0
    earlier = s3_tree(s3_client, bucket)
    if where == "missing bucket":
        summary, keys, said = f"{_MISSING}/s.json", None, "the bucket does not exist"
    else:
        summary = f"s3://{bucket}/locked/s.json"
        keys, said = keys_denied(f"arn:aws:s3:::{bucket}/locked/*"), "access denied"
    argv = ["yolo", str(_few(tmp_path)), "-o", out, *aws, "--summary"]
    _refused_as(keys, [*argv, summary], f"cannot write {summary}: {said}", capsys, monkeypatch)
    assert s3_tree(s3_client, bucket) == earlier
    # a summary it can write: the same run goes through
    assert main([*argv, f"s3://{bucket}/s.json"]) == 0
    assert s3_tree(s3_client, bucket) != earlier


@pytest.mark.parametrize("command", ["consolidate", "agreement"])
def test_a_crowd_run_refuses_a_rejects_file_it_cannot_write_before_its_output_moves(
    command: str,
    tmp_path: Path,
    moto_endpoint: str,
    s3_client: Any,
    bucket: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the rejects file was published after the output (consolidate) or the pages (agreement)
    clean, broken = broken_export(tmp_path)
    out = f"s3://{bucket}/{'c.manifest' if command == 'consolidate' else 'agreement'}"
    common = ["--from", "label-studio", "-o", out, "--endpoint-url", moto_endpoint]
    assert main([command, str(clean), *common]) == 0
    earlier = s3_tree(s3_client, bucket)
    rejects = f"{_MISSING}/rejects.jsonl"
    argv = [command, str(broken), *common, "--rejects", rejects]
    said = f"cannot write {rejects}: the bucket does not exist"
    _refused_as(None, argv, said, capsys, monkeypatch)
    assert s3_tree(s3_client, bucket) == earlier


def test_sample_refuses_a_selection_record_it_cannot_write_and_keeps_the_earlier_sample(
    tmp_path: Path,
    moto_endpoint: str,
    s3_client: Any,
    bucket: str,
    keys_denied: Callable[..., dict[str, str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the sample and its record appear together: the denied record took the new sample back
    # out, and the earlier run's sample was gone with it
    out = f"s3://{bucket}/s.manifest"
    argv = ["sample", str(TRUTH), "-o", out, "--count", "5", "--endpoint-url", moto_endpoint]
    assert main(argv) == 0
    earlier = s3_tree(s3_client, bucket)
    keys = keys_denied(f"arn:aws:s3:::{bucket}/s.manifest.sample.json")
    argv[argv.index("5")] = "3"
    said = f"cannot write {out}.sample.json: access denied"
    _refused_as(keys, argv, said, capsys, monkeypatch)
    assert s3_tree(s3_client, bucket) == earlier


def test_template_refuses_a_page_it_cannot_write_and_keeps_the_earlier_label_config(
    moto_endpoint: str,
    s3_client: Any,
    bucket: str,
    keys_denied: Callable[..., dict[str, str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page, config = f"s3://{bucket}/ui/t.html", f"s3://{bucket}/ui/labels.json"
    argv = [*_TEMPLATE, "-o", page, "--write-label-config", config]
    argv += ["--endpoint-url", moto_endpoint]
    assert main(argv) == 0
    earlier = s3_tree(s3_client, bucket)
    keys = keys_denied(f"arn:aws:s3:::{bucket}/ui/t.html")
    argv[argv.index("ball")] = "cone"
    _refused_as(keys, argv, f"cannot write {page}: access denied", capsys, monkeypatch)
    assert s3_tree(s3_client, bucket) == earlier


@pytest.mark.parametrize(
    ("summary", "said"),
    [
        ("s3://bucket", "no object key after the bucket in 's3://bucket'"),
        ("s3://Bad_Bucket/s.json", "bad bucket name 'Bad_Bucket'"),
    ],
)
def test_a_summary_uri_that_names_no_object_stops_the_run_before_a_local_output(
    summary: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # only the write parsed it: the dataset was in place, then the run exited 1
    out = tmp_path / "y"
    refused_run(["yolo", str(TRUTH), "-o", str(out), "--summary", summary], said, capsys)
    assert list(tmp_path.iterdir()) == []


def test_agreement_pages_that_fail_to_upload_leave_no_mismatched_pair(
    tmp_path: Path, fault_proxy: Any, s3_client: Any, bucket: str
) -> None:
    # agreement.json was written, then agreement.html failed: the run exited 1 with the new
    # figures beside the earlier run's page
    clean, broken = broken_export(tmp_path)
    out = f"s3://{bucket}/agreement"
    common = ["--from", "label-studio", "-o", out, "--endpoint-url", fault_proxy.url]
    assert main(["agreement", str(broken), *common, "--rejects", str(tmp_path / "r")]) == 1
    earlier = s3_tree(s3_client, bucket)
    fault_proxy.plan(*["error500"] * 12, method="PUT", path="agreement.html")
    assert main(["agreement", str(clean), *common]) == 1
    fault_proxy.clear()
    assert s3_tree(s3_client, bucket) == earlier


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_summary_named_as_a_folder_is_refused_not_written_as_a_file(
    where: str,
    tmp_path: Path,
    moto_endpoint: str,
    s3_client: Any,
    bucket: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # --summary reports/ wrote a file named 'reports', and s3://b/reports/ an object whose
    # key ends with '/' (a folder to S3 consoles, left out of listings): both exited 0
    out = tmp_path / "y"
    summary = str(tmp_path / "reports") + "/" if where == "local" else f"s3://{bucket}/reports/"
    argv = ["yolo", str(TRUTH), "-o", str(out), "--summary", summary]
    said = f"cannot write {summary}: it names a folder (give a file name)"
    refused_run([*argv, "--endpoint-url", moto_endpoint], said, capsys)
    assert list(tmp_path.iterdir()) == []
    assert s3_tree(s3_client, bucket) == {}


@pytest.mark.parametrize("command", ["evaluate", "manifest"])
def test_a_single_output_is_checked_before_the_run_reads(
    command: str,
    tmp_path: Path,
    moto_endpoint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # evaluate's report and manifest's listing were never checked: '-o report/' wrote a file
    # named 'report' (exit 0), and a missing bucket failed only once everything was read
    images = SAMPLES / "images"
    given = [str(TRUTH), str(TRUTH)] if command == "evaluate" else [str(images)]
    local = str(tmp_path / "report") + "/"
    refused_run(
        [command, *given, "-o", local],
        f"cannot write {local}: it names a folder (give a file name)",
        capsys,
    )
    assert list(tmp_path.iterdir()) == []
    missing = f"{_MISSING}/report.json"
    argv = [command, *given, "-o", missing, "--endpoint-url", moto_endpoint]
    refused_run(argv, f"cannot write {missing}: the bucket does not exist", capsys)


def test_an_earlier_summary_elsewhere_that_cannot_be_removed_is_named(
    tmp_path: Path, fault_proxy: Any, s3_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A summary in another bucket whose put fails after the commit is removed with the
    earlier run's object there (e6281ba); when S3 refuses that delete too (the network is
    down for both), the earlier summary stayed, describing the earlier output ('validation'
    0 beside the new run's validation labels), and only the put's error was said."""
    s3_client.create_bucket(Bucket="reports-elsewhere")
    summary = "s3://reports-elsewhere/runs/s.json"
    args = ["yolo", str(TRUTH), "-o", str(tmp_path / "y"), "--summary", summary]
    args += ["--endpoint-url", fault_proxy.url]
    assert main([*args, "--validation-fraction", "0"]) == 0
    caplog.clear()
    fault_proxy.plan(*["error500"] * 12, method="PUT", path="runs/s.json")
    fault_proxy.plan(*["error500"] * 12, method="POST", path="?delete")
    assert main([*args, "--validation-fraction", "1"]) == 1
    fault_proxy.clear()
    body = s3_client.get_object(Bucket="reports-elsewhere", Key="runs/s.json")["Body"]
    earlier = json.loads(body.read())
    assert earlier["images_per_split"]["validation"] == 0  # the earlier run's, not removed
    said = [m for m in caplog.messages if summary in m]
    assert len(said) == 1 and "the earlier run's file could not be removed" in said[0]


@pytest.mark.parametrize(
    ("target", "out", "option", "where", "said"),
    [
        # the dataset's folder ds/, and an object ds beside it
        ("yolo", "ds/", "--summary", "ds", "differs from the output s3://{B}/ds/ only by a"),
        ("yolo", "ds", "--summary", "ds/", "differs from the output s3://{B}/ds only by a"),
        ("yolo", "ds/", "--rejects", "ds", "differs from the output s3://{B}/ds/ only by a"),
        # an object under another: x.json and the folder x.json/
        ("coco", "x.json", "--summary", "x.json/s.json", "is under the output file s3://{B}/x"),
        ("yolo", "ds/", "--summary", "ds/data.yaml/s.json", "is under the output file"),
    ],
)
def test_convert_refuses_an_s3_output_that_is_another_outputs_key_or_under_it(
    target: str,
    out: str,
    option: str,
    where: str,
    said: str,
    tmp_path: Path,
    moto_endpoint: str,
    s3_client: Any,
    bucket: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # -o s3://b/ds/ --summary s3://b/ds wrote the summary as an object ds beside the dataset's
    # folder ds/ and exited 0 (locally the same is refused: a key may be a prefix too, so
    # the overlap checks were skipped on S3); aws s3 sync cannot make both on a disk
    aws = ["--endpoint-url", moto_endpoint]
    argv = [target, str(TRUTH), "-o", f"s3://{bucket}/{out}", *aws]
    assert main(argv) == 0
    earlier = s3_tree(s3_client, bucket)
    place = f"s3://{bucket}/{where}"
    what = "rejects file" if option == "--rejects" else option.removeprefix("--")
    said = f"the {what} {place} {said.replace('{B}', bucket)}"
    _refused_as(None, [*argv, option, place], said, capsys, monkeypatch)
    assert s3_tree(s3_client, bucket) == earlier
    # elsewhere, the same run goes through
    assert main([*argv, option, f"s3://{bucket}/elsewhere/{where.strip('/')}"]) == 0


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (
            ["-o", "c", "--quality", "c/q"],
            "the worker-quality table {B}/c/q.json is under the output file {B}/c: give --quality",
        ),
        (
            ["-o", "c.manifest", "--rejects", "c.manifest/r.jsonl"],
            "the rejects file {B}/c.manifest/r.jsonl is under the output file {B}/c.manifest",
        ),
    ],
)
def test_consolidate_refuses_an_s3_output_under_another_outputs_key(
    options: list[str],
    said: str,
    tmp_path: Path,
    moto_endpoint: str,
    s3_client: Any,
    bucket: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # consolidate -o s3://b/c --quality s3://b/c/q wrote the manifest as the object c and the
    # worker-quality tables as c/q.json and c/q.csv under it (exit 0 on a clean source): a
    # console shows c twice, aws s3 sync cannot make both on a disk, and locally the same
    # failed only after the whole source was read
    _, broken = broken_export(tmp_path)  # a rejects file to write
    base = ["consolidate", str(broken), "--from", "label-studio", "--endpoint-url", moto_endpoint]
    s3 = [o if o.startswith("-") else f"s3://{bucket}/{o}" for o in options]
    earlier = s3_tree(s3_client, bucket)
    _refused_as(None, [*base, *s3], said.replace("{B}", f"s3://{bucket}"), capsys, monkeypatch)
    assert s3_tree(s3_client, bucket) == earlier
    # the same, locally: refused before the read, not after it
    monkeypatch.chdir(tmp_path)
    local = said.replace("{B}/", "")
    _refused_as(None, [*base, *options], local, capsys, monkeypatch)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.json", "clean.json"]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["split", str(TRUTH), "-o", "{B}/split/", "--rejects", "{B}/split"],
            "the rejects file {B}/split is a file, and the train manifest {B}/split/train.manifest"
            " goes under it: give --rejects another path",
        ),
        (
            ["split", str(TRUTH), "-o", "{B}/split/", "--rejects", "{B}/split/train.manifest/r"],
            "the rejects file {B}/split/train.manifest/r is under the output file "
            "{B}/split/train.manifest",
        ),
        (
            ["sample", str(TRUTH), "-o", "{B}/s.manifest", "--rejects", "{B}/s.manifest/r.jsonl"],
            "the rejects file {B}/s.manifest/r.jsonl is under the output file {B}/s.manifest",
        ),
        (
            [*_TEMPLATE, "-o", "{B}/t.html", "--write-label-config", "{B}/t.html/labels.json"],
            "the label category config {B}/t.html/labels.json is under the output file {B}/t.html",
        ),
    ],
)
def test_manifest_and_template_commands_refuse_an_s3_output_under_another(
    argv: list[str],
    said: str,
    moto_endpoint: str,
    s3_client: Any,
    bucket: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # split -o s3://b/split/ --rejects s3://b/split wrote its rejects as an object split
    # beside the folder split/ (sample, template: an object under the output's key): the
    # converters refuse the same, and locally the run failed after the read
    uri = f"s3://{bucket}"
    argv = [arg.replace("{B}", uri) for arg in argv]
    if "--count" not in argv and argv[0] == "sample":
        argv += ["--count", "3"]
    if argv[0] == "split":
        argv += ["--validation-percent", "20"]
    earlier = s3_tree(s3_client, bucket)
    args = [*argv, "--endpoint-url", moto_endpoint]
    _refused_as(None, args, said.replace("{B}", uri), capsys, monkeypatch)
    assert s3_tree(s3_client, bucket) == earlier
