"""``gt-convert``'s summary is committed with the output: a failed run leaves neither."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from gt_toolkit.cli import main
from gt_toolkit.convert.options import ConversionResult
from gt_toolkit.convert.staging import LISTING, StagedOutput
from gt_toolkit.storage import files
from tests.helpers import CROWD, DATA, refused_run, unwritable_folder

API = DATA / "outputs" / "api-job.manifest"


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones too: a part folder left behind shows)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _case(tmp_path: Path, where: str, source: Path = API) -> tuple[list[str], Path]:
    """The command of one summary placement, and where its summary goes."""
    if where == "file output":
        return [
            "coco",
            str(source),
            "-o",
            str(tmp_path / "x.json"),
        ], tmp_path / "x.json.summary.json"
    args = ["yolo", str(source), "-o", str(tmp_path / "out")]
    if where == "elsewhere":
        summary = tmp_path / "reports" / "s.json"
        return [*args, "--summary", str(summary)], summary
    return args, tmp_path / "out" / "summary.json"


@pytest.mark.parametrize("where", ["in the output", "file output", "elsewhere"])
def test_a_run_stopped_as_its_summary_is_made_leaves_the_earlier_output_and_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Ctrl-C after the output was in place and before its summary was written (exit 130)
    left the new output beside the earlier run's summary, or none."""
    fewer = tmp_path / "in" / "fewer.manifest"  # the rerun's input: its first 3 lines
    fewer.parent.mkdir()
    fewer.write_bytes(b"".join(API.read_bytes().splitlines(keepends=True)[:3]))
    args, summary = _case(tmp_path, where)
    assert main(args) == 0
    before = _tree(tmp_path)
    assert summary.relative_to(tmp_path).as_posix() in before

    def interrupted(self: ConversionResult) -> dict[str, object]:
        raise KeyboardInterrupt

    monkeypatch.setattr(ConversionResult, "to_json", interrupted)
    assert main(_case(tmp_path, where, fewer)[0]) == 130
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("where", ["in the output", "elsewhere"])
def test_a_commit_that_fails_takes_its_summary_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """The summary written before the commit (one outside the output's folder) goes again
    when the commit fails, the earlier one put back; one in the output never moves in."""
    args, summary = _case(tmp_path, where)
    assert main([*args, "--validation-fraction", "0"]) == 0
    before = _tree(tmp_path)

    def failing(self: StagedOutput) -> None:
        self.abort()
        raise KeyboardInterrupt

    monkeypatch.setattr(StagedOutput, "commit", failing)
    assert main([*args, "--validation-fraction", "1"]) == 130
    assert _tree(tmp_path) == before
    assert summary.read_bytes() == before[summary.relative_to(tmp_path).as_posix()]


def test_the_summary_moves_in_with_the_output_and_before_its_last_file(tmp_path: Path) -> None:
    """Staged with the output, the summary must not take the place of the file that says
    the output is complete (``data.yaml``), which moves in after every other file."""
    out = tmp_path / "out"
    assert main(["yolo", str(API), "-o", str(out)]) == 0
    order: list[str] = []
    real = Path.replace

    def noting(self: Path, target: str | Path) -> Path:
        order.append(Path(target).name)
        return real(self, target)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "replace", noting)
        assert main(["yolo", str(API), "-o", str(out), "--validation-fraction", "1"]) == 0
    moved = [name for name in order if name != LISTING]  # the list is written after the commit
    assert "summary.json" in moved
    assert moved[-1] == "data.yaml"
    assert '"validation": 4' in (out / "summary.json").read_text().replace("\n", "")


def test_a_summary_elsewhere_is_not_in_place_while_the_output_moves_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A summary outside the output's folder was written in place before the commit: a run
    killed while the output moved in (an S3 output's copies take minutes) left the new
    summary, describing an output that was not there. It now comes after the output, as
    the file that says an output is complete does; the earlier one is out of the way."""
    summary = tmp_path / "reports" / "s.json"  # outside the output's folder and its parent's
    args = ["yolo", str(API), "-o", str(tmp_path / "runs" / "out"), "--summary", str(summary)]
    assert main(args) == 0
    earlier = summary.read_bytes()
    seen: list[bool] = []
    real = StagedOutput.commit

    def watched(self: StagedOutput) -> None:
        seen.append(summary.exists())  # what a kill at this moment leaves
        real(self)

    monkeypatch.setattr(StagedOutput, "commit", watched)
    assert main([*args, "--validation-fraction", "1"]) == 0
    assert seen == [False]
    assert summary.read_bytes() != earlier
    assert '"validation": 4' in summary.read_text().replace("\n", "")


def test_a_failed_commit_puts_back_the_earlier_summary_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of the way while the output moves in, the earlier summary outside the output's
    folder comes back when the commit fails, and nothing else is left beside it."""
    summary = tmp_path / "reports" / "s.json"
    args = ["yolo", str(API), "-o", str(tmp_path / "runs" / "out"), "--summary", str(summary)]
    assert main(args) == 0
    before = _tree(tmp_path)

    def failing(self: StagedOutput) -> None:
        assert not summary.exists()
        self.abort()
        raise KeyboardInterrupt

    monkeypatch.setattr(StagedOutput, "commit", failing)
    assert main([*args, "--validation-fraction", "1"]) == 130
    assert _tree(tmp_path) == before


def test_a_summary_elsewhere_that_fails_after_the_commit_leaves_no_earlier_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written once the output is in place, a summary outside its folder can still fail
    (Ctrl-C, a full disk): the earlier run's summary was put back, beside the new output it
    does not describe (exit 130, 'validation': 0 beside 4 validation labels). The output
    stays (it is in place), the run fails, and no summary speaks for it."""
    summary = tmp_path / "reports" / "s.json"
    out = tmp_path / "runs" / "out"
    args = ["yolo", str(API), "-o", str(out), "--summary", str(summary)]
    assert main([*args, "--validation-fraction", "0"]) == 0
    assert summary.exists()
    real = files.atomic_output

    @contextlib.contextmanager
    def interrupted(location: object, **kwargs: Any) -> Iterator[IO[bytes]]:
        if Path(str(location)) == summary:
            assert (out / "labels" / "val").is_dir()  # the output is in place
            raise KeyboardInterrupt
        with real(location, **kwargs) as fh:  # type: ignore[arg-type]
            yield fh

    monkeypatch.setattr(files, "atomic_output", interrupted)
    assert main([*args, "--validation-fraction", "1"]) == 130
    assert len(list((out / "labels" / "val").iterdir())) == 4  # the new output
    assert not summary.exists()  # not the earlier one, which says 'validation': 0
    assert [p.name for p in summary.parent.iterdir()] == []  # no keep-aside folder left


def _linked_summary(tmp_path: Path, where: str) -> tuple[list[str], Path, Path]:
    """A yolo run whose summary is a link to ``shared/latest.json``: the command, link, file."""
    shared = tmp_path / "shared" / "latest.json"
    shared.parent.mkdir()
    shared.write_text('{"earlier": true}\n')
    out = tmp_path / "out"
    args = ["yolo", str(API), "-o", str(out)]
    if where == "in the output":  # the default summary's name, a link kept in the output
        link = out / "summary.json"
    else:
        link = tmp_path / "reports" / "s.json"
        args += ["--summary", str(link)]
    link.parent.mkdir()
    link.symlink_to(shared)
    return args, link, shared


@pytest.mark.parametrize("where", ["in the output", "elsewhere"])
def test_a_summary_that_is_a_link_is_written_where_the_link_leads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A link pointed at a shared file: the summary's temporary file was renamed over the
    link, which became a plain file, and the shared file never changed. A failed rerun puts
    the shared file's earlier summary back and leaves the link."""
    args, link, shared = _linked_summary(tmp_path, where)
    assert main([*args, "--validation-fraction", "0"]) == 0
    assert link.is_symlink() and link.readlink() == shared
    assert json.loads(shared.read_text())["target"] == "yolo"
    before = _tree(tmp_path)

    def failing(self: StagedOutput) -> None:
        self.abort()
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StagedOutput, "commit", failing)
        assert main([*args, "--validation-fraction", "1"]) == 130
    assert _tree(tmp_path) == before
    assert link.is_symlink() and link.readlink() == shared
    assert main([*args, "--validation-fraction", "1"]) == 0
    assert '"validation": 4' in shared.read_text().replace("\n", "")
    assert link.is_symlink() and link.readlink() == shared


@pytest.mark.parametrize("leads", ["into a missing folder", "unwritable"])
def test_a_summary_link_that_cannot_be_followed_stops_the_run_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], leads: str
) -> None:
    """A link to nowhere was replaced by a plain file (exit 0); one into a folder this user
    may not write passed the check, made beside the link, and failed after the output was in
    place. Both are refused in one line, and nothing is written."""
    args, link, shared = _linked_summary(tmp_path, "elsewhere")
    if leads == "into a missing folder":
        shared.unlink()
        shared.parent.rmdir()
        said = (
            f"cannot write {link}: it is a link to {shared}, whose folder {shared.parent} "
            "does not exist"
        )
    else:
        unwritable_folder(shared.parent, monkeypatch)
        real = Path(os.path.realpath(shared))
        said = f"cannot write {link} (a link to {real}): Permission denied"
    before = _tree(tmp_path), sorted(p.name for p in tmp_path.iterdir())
    try:
        refused_run(args, said, capsys)
        assert (_tree(tmp_path), sorted(p.name for p in tmp_path.iterdir())) == before
        assert link.is_symlink() and link.readlink() == shared
    finally:
        if shared.parent.exists():
            shared.parent.chmod(0o755)


@pytest.mark.parametrize("where", ["in the output", "elsewhere"])
def test_a_summary_link_whose_file_a_killed_run_removed_is_written_through(
    tmp_path: Path, where: str
) -> None:
    """A run killed (kill -9) while its summary elsewhere moved in had removed the file the
    link leads to and kept its earlier copy in a .earlier.<host>.<pid>.<token>.part folder
    beside it: the link led nowhere, and every later run refused it ("it is a link to
    shared/latest.json, which does not exist"). The next run writes through the link,
    creating that file, as a shell's > does, and sweeps the killed run's folder."""
    args, link, shared = _linked_summary(tmp_path, where)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    leftover = shared.parent / files.part_name(".earlier").replace(
        f".{os.getpid()}.", f".{int(dead.stdout)}."
    )
    leftover.mkdir()
    os.link(shared, leftover / "0")
    shared.unlink()
    files._swept.clear()  # a new process: no folder swept yet
    assert main([*args, "--validation-fraction", "0"]) == 0
    assert link.is_symlink() and link.readlink() == shared
    assert json.loads(shared.read_text())["target"] == "yolo"
    assert sorted(p.name for p in shared.parent.iterdir()) == ["latest.json"]


LOOP = "loop: it is a link to back, a loop of links"


@pytest.mark.parametrize(
    ("command", "option", "said"),
    [
        (["yolo", str(API), "-o", "out"], "--summary", LOOP),
        (["yolo", str(API)], "-o", "loop/summary.json: loop is not a folder"),
        (["from-coco", "COCO"], "-o", LOOP),
        (["consolidate", str(CROWD / "label-studio.json"), "--from", "label-studio"], "-o", LOOP),
        (
            ["agreement", str(CROWD / "label-studio.json"), "--from", "label-studio"],
            "-o",
            "loop/agreement.json: loop is not",
        ),
    ],
)
def test_an_output_that_is_a_loop_of_links_is_refused_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    option: str,
    said: str,
) -> None:
    """``loop -> back -> loop``: the clash checks compared outputs by ``Path.resolve()``,
    which raised ``RuntimeError: Symlink loop`` there, a traceback instead of the refusal
    each command gives a link to nowhere."""
    coco = tmp_path / "coco.json"
    coco.write_text('{"images": [{"id": 1, "file_name": "s3://bkt-x/a.jpg"}], "categories": []}')
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(run)
    Path("loop").symlink_to("back")
    Path("back").symlink_to("loop")
    argv = [str(coco) if arg == "COCO" else arg for arg in command]
    refused_run([*argv, option, "loop"], f"cannot write {said}", capsys)
    assert sorted(p.name for p in run.iterdir()) == ["back", "loop"]
