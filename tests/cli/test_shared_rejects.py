"""A ``--rejects`` path among the files a run reads or writes is refused before it starts.

The run replaces its rejects file when it rejects something and removes it when it rejects
nothing: a rejects path that is one of its files (by any name) destroys that file, and one
inside a folder it lists becomes one more source file for the next run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gt_toolkit.cli import main
from gt_toolkit.cli.options import refuse_shared_rejects
from gt_toolkit.errors import ValidationError
from tests.helpers import CROWD, DATA, SAMPLES

JOB = SAMPLES / "job-output" / "samples-balls"
ANSWER = "annotations/worker-response/iteration-1/3/20261124T090900Z.json"


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: what a refused run must leave as it was."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _refused(argv: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The run exits 1 with one line saying ``said``."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err


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
    _refused([*args, "--rejects", str(alias)], f"is also the {shared}", capsys)
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
    kept = _tree(tmp_path)
    alias = tmp_path / "elsewhere" / "rejects.jsonl"
    alias.parent.mkdir()
    os.link(csv, alias)
    capsys.readouterr()
    _refused([*argv, "--rejects", str(alias)], "is also the worker-quality CSV", capsys)
    assert _tree(tmp_path) == kept | {"elsewhere/rejects.jsonl": csv.read_bytes()}


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
