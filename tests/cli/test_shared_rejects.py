"""A ``--rejects`` path among the files a run reads or writes is refused before it starts.

The run replaces its rejects file when it rejects something and removes it when it rejects
nothing: a rejects path that is one of its files (by any name) destroys that file, and one
inside a folder it lists becomes one more source file for the next run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit.cli import main
from gt_toolkit.cli.options import refuse_shared_rejects
from gt_toolkit.errors import ValidationError
from tests.helpers import (
    CROWD,
    DATA,
    SAMPLES,
    answers_folder,
    file_tree,
    put_tree,
    refused_run,
    s3_keys,
)

JOB = SAMPLES / "job-output" / "samples-balls"
ANSWER = "annotations/worker-response/iteration-1/3/20261124T090900Z.json"


# (--from, the source to copy, where the rejects go inside it, the folder's name)
_FOLDERS = [
    ("cvat", CROWD / "cvat-replicas", "job_11_annotations.xml", "CVAT folder"),
    ("cvat", CROWD / "cvat-replicas", "rejects.jsonl", "CVAT folder"),
    ("cvat", CROWD / "cvat-replicas", "new/rejects.jsonl", "CVAT folder"),
    ("coco-per-annotator", CROWD / "coco-per-annotator", "alice.json", "COCO folder"),
    ("gt-job", JOB, ANSWER, "worker-response folder"),
    ("gt-job", JOB, "annotations/worker-response/rejects.jsonl", "worker-response folder"),
    ("answers-folder", None, "w1.jsonl", "answers folder"),
    ("answers-folder", None, "rejects.jsonl", "answers folder"),
]


@pytest.mark.parametrize("command", ["consolidate", "agreement"])
@pytest.mark.parametrize(
    ("kind", "original", "inside", "folder"),
    _FOLDERS,
    ids=[f"{k}-{i}" for k, _, i, _ in _FOLDERS],
)
def test_a_rejects_file_inside_a_folder_source_is_refused(
    command: str,
    kind: str,
    original: Path | None,
    inside: str,
    folder: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "source"
    if original is None:
        answers_folder(source)
    else:
        shutil.copytree(original, source)
    before = file_tree(source)
    out = tmp_path / "out"
    dest = (
        [str(out / "c.json"), "--output-format", "coco"] if command == "consolidate" else [str(out)]
    )
    argv = [command, str(source), "--from", kind, "-o", *dest]
    if kind == "answers-folder":
        argv += ["--manifest", str(JOB / "manifests" / "output" / "output.manifest")]
    refused_run([*argv, "--rejects", str(source / inside)], f"inside the {folder}", capsys)
    assert file_tree(source) == before
    assert not out.exists()


def test_answers_folder_option_refuses_a_rejects_file_inside_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = answers_folder(tmp_path / "answers")
    argv = ["consolidate", str(JOB), "--answers-folder", str(answers), "-o", str(tmp_path / "o")]
    refused_run([*argv, "--rejects", str(answers / "r.jsonl")], "inside the answers folder", capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers"]


def test_a_job_keeps_its_outputs_and_rejects_beside_its_answers(tmp_path: Path) -> None:
    # only the worker-response folder is listed: a job prefix is where outputs often go
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    before = file_tree(job / "annotations")
    argv = ["consolidate", str(job), "-o", str(job / "consolidated.manifest")]
    assert main([*argv, "--rejects", str(job / "rejects.jsonl")]) == 0
    assert (job / "consolidated.manifest").exists()
    assert file_tree(job / "annotations") == before


@pytest.mark.parametrize("slash", ["", "/"], ids=["no-slash", "slash"])
def test_a_rejects_key_under_an_s3_source_prefix_is_refused_not_under_a_sibling(
    slash: str,
    moto_endpoint: str,
    s3_client: Any,
    bucket: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    put_tree(s3_client, bucket, "jobs", CROWD / "cvat-replicas")
    before = s3_keys(s3_client, bucket)
    source = f"s3://{bucket}/jobs{slash}"
    argv = ["consolidate", source, "--from", "cvat", "-o", f"s3://{bucket}/out/c.json"]
    argv += ["--output-format", "coco", "--worker-model", "none", "--endpoint-url", moto_endpoint]
    for inside in ("job_11_annotations.xml", "rejects.jsonl"):
        rejects = f"s3://{bucket}/jobs/{inside}"
        refused_run([*argv, "--rejects", rejects], "inside the CVAT folder", capsys)
        assert s3_keys(s3_client, bucket) == before
    # jobs2/ only shares the start of the string: it is not in the folder
    assert main([*argv, "--rejects", f"s3://{bucket}/jobs2/rejects.jsonl"]) == 0
    written = ["c.json", *(f"c.json.{x}" for x in ("summary.json", "worker-quality.csv"))]
    written.append("c.json.worker-quality.json")  # a clean run: no rejects key anywhere
    assert s3_keys(s3_client, bucket) == sorted([*before, *(f"out/{x}" for x in written)])


_LINKED = [
    (["sample", "IN", "-o", "OUT/s.manifest", "--count", "3"], SAMPLES / "input.manifest", "input"),
    (["yolo", "IN", "-o", "OUT/yolo"], DATA / "outputs" / "api-job.manifest", "input"),
    (
        ["consolidate", "IN", "--from", "label-studio", "-o", "OUT/c"],
        CROWD / "label-studio.json",
        "source",
    ),
]


@pytest.mark.parametrize(("argv", "original", "shared"), _LINKED, ids=[a[0] for a, _, _ in _LINKED])
def test_a_hard_link_to_the_input_is_refused(
    argv: list[str],
    original: Path,
    shared: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # a second name for the same inode: no path comparison sees it
    given = tmp_path / "in" / original.name
    given.parent.mkdir()
    given.write_bytes(original.read_bytes())
    alias = tmp_path / "elsewhere" / "rejects.jsonl"
    alias.parent.mkdir()
    os.link(given, alias)
    args = [a.replace("IN", str(given)).replace("OUT", str(tmp_path / "out")) for a in argv]
    refused_run([*args, "--rejects", str(alias)], f"is also the {shared}", capsys)
    assert given.read_bytes() == original.read_bytes()
    assert not (tmp_path / "out").exists()


def test_a_hard_link_to_an_earlier_side_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.manifest"
    argv = ["consolidate", str(CROWD / "label-studio.json"), "--from", "label-studio"]
    argv += ["-o", str(out), "--worker-model", "none"]
    assert main(argv) == 0
    csv = tmp_path / "out.manifest.worker-quality.csv"
    kept = file_tree(tmp_path)
    alias = tmp_path / "elsewhere" / "rejects.jsonl"
    alias.parent.mkdir()
    os.link(csv, alias)
    capsys.readouterr()
    refused_run([*argv, "--rejects", str(alias)], "is also the worker-quality CSV", capsys)
    assert file_tree(tmp_path) == kept | {"elsewhere/rejects.jsonl": csv.read_bytes()}


@pytest.mark.parametrize(
    ("side", "name"),
    [
        ("out.manifest.worker-quality.json", "worker-quality table"),
        ("out.manifest.worker-model.json", "worker model"),
        ("out.manifest.summary.json", "summary"),
    ],
)
def test_a_rejects_file_named_like_a_consolidate_side_file_is_refused(
    side: str, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["consolidate", str(CROWD / "label-studio.json"), "--from", "label-studio"]
    argv += ["-o", str(tmp_path / "out.manifest"), "--rejects", str(tmp_path / side)]
    refused_run(argv, f"is also the {name}", capsys)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("page", "name"),
    [
        ("agreement.json", "agreement JSON"),
        ("agreement.html", "agreement page"),
        ("worker-model.json", "worker model"),
    ],
)
def test_a_rejects_file_named_like_an_agreement_page_is_refused(
    page: str, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "agreement"
    out.mkdir()
    for earlier in ("agreement.json", "agreement.html", "worker-model.json"):
        (out / earlier).write_text(f"an earlier run's {earlier}")
    before = file_tree(out)
    argv = ["agreement", str(CROWD / "label-studio.json"), "--from", "label-studio"]
    argv += ["-o", str(out), "--worker-model", "fit", "--rejects", str(out / page)]
    refused_run(argv, f"is also the {name}", capsys)
    assert file_tree(out) == before


@pytest.mark.parametrize("command", ["consolidate", "agreement"])
def test_a_rejects_file_named_like_the_worker_model_table_read_is_refused(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "model.json"
    table.write_text('{"a saved": "worker model"}')
    argv = [command, str(CROWD / "label-studio.json"), "--from", "label-studio"]
    argv += ["-o", str(tmp_path / "out"), "--worker-model", str(table), "--rejects", str(table)]
    refused_run(argv, "is also the worker model table", capsys)
    assert table.read_text() == '{"a saved": "worker model"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]


def test_a_rejects_file_beside_the_agreement_pages_is_kept(tmp_path: Path) -> None:
    tasks = json.loads((CROWD / "label-studio.json").read_text())
    del tasks[1]["annotations"][0]["result"][0]["value"]["x"]
    export, out = tmp_path / "export.json", tmp_path / "agreement"
    export.write_text(json.dumps(tasks))
    argv = ["agreement", str(export), "--from", "label-studio", "-o", str(out)]
    assert main([*argv, "--rejects", str(out / "broken.jsonl")]) == 1  # one broken record
    assert len((out / "broken.jsonl").read_text().splitlines()) == 1
    assert (out / "agreement.json").exists() and (out / "agreement.html").exists()


def test_from_yolo_refuses_a_rejects_file_inside_its_dataset_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "dataset"
    (dataset / "labels" / "train").mkdir(parents=True)
    (dataset / "data.yaml").write_text("names: [car]\n")
    before = file_tree(dataset)
    argv = ["from-yolo", str(dataset), "-o", str(tmp_path / "out.manifest")]
    for inside in ("labels/train/rejects.txt", "data.yaml"):
        refused_run([*argv, "--rejects", str(dataset / inside)], "inside the input folder", capsys)
        assert file_tree(dataset) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]


def test_from_coco_refuses_its_coco_reference_as_rejects_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = tmp_path / "reference.json"
    reference.write_text('{"images": [], "categories": []}')
    argv = ["from-coco", str(tmp_path / "results.json"), "-o", str(tmp_path / "out.manifest")]
    argv += ["--coco-reference", str(reference), "--rejects", str(reference)]
    refused_run(argv, "is also the COCO reference", capsys)
    assert reference.read_text() == '{"images": [], "categories": []}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reference.json"]


# the rule itself, for what the commands above do not reach


@pytest.mark.parametrize("folder", ["s3://b/jobs", "s3://b/jobs/"])
@pytest.mark.parametrize(
    ("rejects", "refused"),
    [
        ("s3://b/jobs/r.jsonl", True),
        ("s3://b/jobs/deeper/r.jsonl", True),
        ("s3://b/jobs", True),
        ("s3://b/jobs2/r.jsonl", False),
        ("s3://b/jobs.rejects.jsonl", False),
        ("s3://other/jobs/r.jsonl", False),
    ],
)
def test_an_s3_folder_holds_the_keys_under_its_prefix_only(
    folder: str, rejects: str, refused: bool
) -> None:
    if refused:
        with pytest.raises(ValidationError, match="inside the CVAT folder"):
            refuse_shared_rejects(rejects, {}, {"CVAT folder": folder})
    else:
        refuse_shared_rejects(rejects, {}, {"CVAT folder": folder})
        # the same pair is still told apart as files
        refuse_shared_rejects(rejects, {"source": folder})


def test_a_local_folder_is_found_through_a_symlink_and_not_by_its_name_start(
    tmp_path: Path,
) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (tmp_path / "link").symlink_to(jobs)
    (tmp_path / "jobs2").mkdir()
    with pytest.raises(ValidationError, match=f"inside the CVAT folder {jobs}"):
        refuse_shared_rejects(str(tmp_path / "link" / "r.jsonl"), {}, {"CVAT folder": str(jobs)})
    with pytest.raises(ValidationError, match="inside the CVAT folder"):
        refuse_shared_rejects(str(jobs / "r.jsonl"), {}, {"CVAT folder": str(tmp_path / "link")})
    refuse_shared_rejects(str(tmp_path / "jobs2" / "r.jsonl"), {}, {"CVAT folder": str(jobs)})
