"""A ``--rejects`` path among the files a run reads or writes is refused before it starts.

The run replaces its rejects file when it rejects something and removes it when it rejects
nothing: a rejects path that is one of its files (by any name) destroys that file, and one
that a folder it lists would keep (a CVAT folder's ``.xml``) becomes one more source file for
the next run. Any other name in such a folder is no source, and is allowed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit.cli import main
from gt_toolkit.cli.options import refuse_overlap
from gt_toolkit.errors import ValidationError
from gt_toolkit.storage.files import ListedFolder
from tests.helpers import (
    CROWD,
    DATA,
    JOB,
    JOB_MANIFEST,
    SAMPLES,
    answers_folder,
    broken_export,
    file_tree,
    put_tree,
    refused_run,
    s3_keys,
)


def _refuse_rejects(
    rejects: str,
    files: dict[str, str | None],
    folders: dict[str, ListedFolder | None] | None = None,
) -> None:
    """How every command checks its rejects file (the last of its outputs)."""
    refuse_overlap("rejects file", rejects, "--rejects", files, folders)


ANSWER = "annotations/worker-response/iteration-1/3/20261124T090900Z.json"


def _folder_source(kind: str, original: Path | None, source: Path) -> list[str]:
    """Copy the source (``None``: an answers folder) to ``source``; the options it needs."""
    if original is None:
        answers_folder(source)
        return ["--manifest", str(JOB_MANIFEST)]
    shutil.copytree(original, source)
    return []


def _dest(command: str, out: Path) -> list[str]:
    """Where ``command`` writes, under ``out`` (a COCO file: the crowds' images are no URIs)."""
    if command == "consolidate":
        return [str(out / "c.json"), "--output-format", "coco"]
    return [str(out)]


# (--from, the source to copy, a rejects path inside it that the reader lists, the folder)
_LISTED = [
    ("cvat", CROWD / "cvat-replicas", "job_11_annotations.xml", "CVAT folder"),
    ("cvat", CROWD / "cvat-replicas", "new/export.ZIP", "CVAT folder"),
    ("coco-per-annotator", CROWD / "coco-per-annotator", "alice.json", "COCO folder"),
    ("coco-per-annotator", CROWD / "coco-per-annotator", "new/rejects.json", "COCO folder"),
    ("gt-job", JOB, ANSWER, "worker-response folder"),
    ("gt-job", JOB, "annotations/worker-response/rejects.json", "worker-response folder"),
    ("answers-folder", None, "w1.jsonl", "answers folder"),
    ("answers-folder", None, "rejects.jsonl", "answers folder"),
]


@pytest.mark.parametrize("command", ["consolidate", "agreement"])
@pytest.mark.parametrize(
    ("kind", "original", "inside", "folder"),
    _LISTED,
    ids=[f"{k}-{i}" for k, _, i, _ in _LISTED],
)
def test_a_rejects_file_the_folder_source_lists_is_refused(
    command: str,
    kind: str,
    original: Path | None,
    inside: str,
    folder: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "source"
    options = _folder_source(kind, original, source)
    before = file_tree(source)
    out = tmp_path / "out"
    argv = [command, str(source), "--from", kind, "-o", *_dest(command, out), *options]
    refused_run([*argv, "--rejects", str(source / inside)], f"inside the {folder}", capsys)
    assert file_tree(source) == before
    assert not out.exists()


# (--from, the source to copy, a rejects path inside it that the reader skips)
_SKIPPED = [
    ("cvat", CROWD / "cvat-replicas", "rejects.jsonl"),
    ("cvat", CROWD / "cvat-replicas", "new/rejects.jsonl"),
    ("coco-per-annotator", CROWD / "coco-per-annotator", "rejects.jsonl"),
    ("gt-job", JOB, "annotations/worker-response/rejects.jsonl"),
    ("answers-folder", None, "rejects.json"),
]


@pytest.mark.parametrize("command", ["consolidate", "agreement"])
@pytest.mark.parametrize(
    ("kind", "original", "inside"), _SKIPPED, ids=[f"{k}-{i}" for k, _, i in _SKIPPED]
)
def test_a_rejects_file_the_folder_source_skips_is_allowed(
    command: str, kind: str, original: Path | None, inside: str, tmp_path: Path
) -> None:
    # the reader lists other names only: an earlier run's rejects file there is no source,
    # and this clean run removes it
    source = tmp_path / "source"
    options = _folder_source(kind, original, source)
    before = file_tree(source)
    rejects = source / inside
    rejects.parent.mkdir(exist_ok=True)
    rejects.write_text("an earlier run's rejects, not a source\n")
    out = tmp_path / "out"
    argv = [command, str(source), "--from", kind, "-o", *_dest(command, out), *options]
    assert main([*argv, "--rejects", str(rejects)]) == 0
    assert file_tree(source) == before
    assert out.exists()


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
def test_a_listed_rejects_key_under_an_s3_source_prefix_is_refused_not_under_a_sibling(
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
    for inside in ("job_11_annotations.xml", "deeper/export.ZIP"):
        rejects = f"s3://{bucket}/jobs/{inside}"
        refused_run([*argv, "--rejects", rejects], "inside the CVAT folder", capsys)
        assert s3_keys(s3_client, bucket) == before
    # jobs2/ only shares the start of the string: it is not in the folder
    assert main([*argv, "--rejects", f"s3://{bucket}/jobs2/export.zip"]) == 0
    # a name the CVAT listing skips is no source: a clean run leaves no key there
    assert main([*argv, "--rejects", f"s3://{bucket}/jobs/rejects.jsonl"]) == 0
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


def test_from_yolo_refuses_a_rejects_file_its_dataset_folder_lists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "dataset"
    (dataset / "labels" / "train").mkdir(parents=True)
    (dataset / "data.yaml").write_text("names: [car]\n")
    before = file_tree(dataset)
    argv = ["from-yolo", str(dataset), "-o", str(tmp_path / "out.manifest")]
    for inside in ("labels/train/rejects.txt", "data.yaml", "images/x.PNG", "sources.jsonl"):
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

CVAT = (".xml", ".zip")


@pytest.mark.parametrize("folder", ["s3://b/jobs", "s3://b/jobs/"])
@pytest.mark.parametrize(
    ("rejects", "refused"),
    [
        ("s3://b/jobs/r.xml", True),
        ("s3://b/jobs/deeper/R.XML", True),
        ("s3://b/jobs/export.Zip", True),
        ("s3://b/jobs/r.jsonl", False),
        ("s3://b/jobs/r.xml.jsonl", False),
        ("s3://b/jobs2/r.xml", False),
        ("s3://b/jobs.rejects.xml", False),
        ("s3://other/jobs/r.xml", False),
    ],
)
def test_an_s3_folder_holds_the_listed_keys_under_its_prefix_only(
    folder: str, rejects: str, refused: bool
) -> None:
    listed = {"CVAT folder": ListedFolder(folder, CVAT)}
    if refused:
        with pytest.raises(ValidationError, match="inside the CVAT folder"):
            _refuse_rejects(rejects, {}, listed)
    else:
        _refuse_rejects(rejects, {}, listed)
        # the same pair is still told apart as files
        _refuse_rejects(rejects, {"source": folder})


def test_a_folder_listing_every_file_refuses_every_key_under_it() -> None:
    every = {"answers folder": ListedFolder("s3://b/answers")}
    for rejects in ("s3://b/answers/r.jsonl", "s3://b/answers/deeper/r.txt", "s3://b/answers"):
        with pytest.raises(ValidationError, match="answers folder s3://b/answers, which the run"):
            _refuse_rejects(rejects, {}, every)
    _refuse_rejects("s3://b/answers2/r.jsonl", {}, every)


def test_a_local_folder_is_found_through_a_symlink_and_not_by_its_name_start(
    tmp_path: Path,
) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (tmp_path / "link").symlink_to(jobs)
    (tmp_path / "jobs2").mkdir()
    listed = {"CVAT folder": ListedFolder(str(jobs), CVAT)}
    with pytest.raises(ValidationError, match=f"inside the CVAT folder {jobs}"):
        _refuse_rejects(str(tmp_path / "link" / "r.xml"), {}, listed)
    linked = {"CVAT folder": ListedFolder(str(tmp_path / "link"), CVAT)}
    with pytest.raises(ValidationError, match="inside the CVAT folder"):
        _refuse_rejects(str(jobs / "r.xml"), {}, linked)
    _refuse_rejects(str(tmp_path / "jobs2" / "r.xml"), {}, listed)


@pytest.mark.parametrize(
    ("extensions", "name", "refused"),
    [
        ((".xml", ".zip"), "x.XML", True),
        ((".XML", ".zip"), "x.xml", True),
        ((".xml", ".zip"), "deeper/x.Zip", True),
        ((".xml", ".zip"), "x.xml.rejects.jsonl", False),
        ((".xml", ".zip"), "xml", False),
        ((".JSONL",), "w1.jsonl", True),
        ((), "anything.at.all", True),
    ],
)
def test_a_local_folder_refuses_the_names_its_listing_keeps_in_any_case(
    extensions: tuple[str, ...], name: str, refused: bool, tmp_path: Path
) -> None:
    listed = {"CVAT folder": ListedFolder(str(tmp_path), extensions)}
    rejects = str(tmp_path / name)
    if refused:
        with pytest.raises(ValidationError, match="inside the CVAT folder"):
            _refuse_rejects(rejects, {}, listed)
    else:
        _refuse_rejects(rejects, {}, listed)
        # a file of the run is refused by any name, listed or not
        with pytest.raises(ValidationError, match="is also the output"):
            _refuse_rejects(rejects, {"output": rejects}, listed)


@pytest.mark.parametrize(
    ("extensions", "name", "said"),
    [
        ((".xml", ".zip"), "x.xml", "whose .xml and .zip files the run reads"),
        ((".json",), "alice.json", "whose .json files the run reads"),
        ((".jpg", ".png", ".txt"), "a.txt", "whose .jpg, .png and .txt files the run reads"),
        ((), "a.any", "which the run reads"),
    ],
)
def test_the_refusal_names_the_files_the_folder_lists(
    extensions: tuple[str, ...], name: str, said: str
) -> None:
    listed = {"CVAT folder": ListedFolder("cvat", extensions)}
    with pytest.raises(ValidationError) as caught:
        refuse_overlap("rejects file", f"cvat/{name}", "--rejects", {}, listed)
    expected = f"the rejects file cvat/{name} is inside the CVAT folder cvat, {said}"
    assert f"{expected}: give --rejects another path" in str(caught.value)


@pytest.mark.parametrize("command", ["consolidate", "agreement"])
def test_a_rejects_link_to_a_shared_file_stays_a_link_after_a_clean_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """``--rejects r.jsonl``, a link to ``shared/r.jsonl``: a run that rejected nothing removed
    the link as an earlier run's rejects file. The shared file stayed, naming a broken record,
    and the next run wrote a plain ``r.jsonl`` in the link's place: the shared file never
    changed again. Then the link and its stale file stayed, with a warning (a link to a file
    not there was refused by every later run). Now the link stays and its file goes, as any
    stale rejects file does; the next run that rejects something creates it again."""
    clean, broken = broken_export(tmp_path)
    shared = tmp_path / "shared" / "r.jsonl"
    shared.parent.mkdir()
    shared.write_text("")
    link = tmp_path / "r.jsonl"
    link.symlink_to(shared)
    out = ["-o", str(tmp_path / ("c.manifest" if command == "consolidate" else "agreement"))]
    argv = [command, "--from", "label-studio", *out, "--rejects", str(link)]
    assert main([*argv[:1], str(broken), *argv[1:]]) == 1
    assert json.loads(shared.read_text())["reason"] == "malformed"
    capsys.readouterr()
    assert main([*argv[:1], str(clean), *argv[1:]]) == 0
    assert "warning" not in capsys.readouterr().err
    assert link.is_symlink() and link.readlink() == shared and not shared.exists()
    assert main([*argv[:1], str(clean), *argv[1:]]) == 0  # through the link to no file
    assert main([*argv[:1], str(broken), *argv[1:]]) == 1
    assert link.is_symlink() and json.loads(shared.read_text())["reason"] == "malformed"
    assert sorted(p.name for p in shared.parent.iterdir()) == ["r.jsonl"]


def test_consolidate_writes_each_of_its_files_through_a_link_to_a_file_not_there_yet(
    tmp_path: Path,
) -> None:
    """The manifest, its summary, worker-quality tables, worker model and rejects file, each a
    link to a file not there yet in ``shared/`` (a run killed as it replaced them leaves such
    links): refused before ("it is a link to shared/c.manifest, which does not exist"), every
    run. Each is written through its link now, the file created and the link kept."""
    _, broken = broken_export(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    names = ["c.manifest", "r.jsonl"] + [
        f"c.manifest.{end}"
        for end in (
            "summary.json",
            "worker-model.json",
            "worker-quality.csv",
            "worker-quality.json",
        )
    ]
    for name in names:
        (tmp_path / name).symlink_to(Path("shared", name))  # relative
    argv = ["consolidate", str(broken), "--from", "label-studio", "-o", str(tmp_path / names[0])]
    assert main([*argv, "--rejects", str(tmp_path / "r.jsonl")]) == 1  # a broken box: lost
    assert sorted(p.name for p in shared.iterdir()) == sorted(names)
    assert all((tmp_path / name).is_symlink() for name in names)
    assert json.loads((shared / "r.jsonl").read_text())["reason"] == "malformed"
    assert json.loads((shared / "c.manifest.summary.json").read_text())
