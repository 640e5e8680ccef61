"""gt-convert as a whole: every subcommand has help, user errors are one line."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import gt_toolkit
from gt_toolkit import cli
from gt_toolkit.cli import COMMAND_MODULES, build_parser, main
from tests.helpers import CROWD, DATA, REPO, SAMPLES


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(action.choices)


def test_the_issue_named_subcommands_exist() -> None:
    names = set(_subcommands())
    expected = {
        "manifest",
        "sample",
        "consolidate",
        "agreement",
        "template",
        "augmented",
        "od-json",
        "lst",
        "class-folders",
        "jumpstart-od",
        "coco",
        "yolo",
        "voc",
        "from-coco",
        "from-yolo",
        "evaluate",
        "review",
    }
    assert expected <= names


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: gt-convert {command}")
    assert "-o" in out or "--out" in out or command == "evaluate"


def _output_options() -> dict[str, list[str]]:
    """Each subcommand's ``-o`` option strings (demo has only ``--out``, no ``-o``)."""
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        name: a.option_strings
        for name, sub in action.choices.items()
        for a in sub._actions
        if "-o" in a.option_strings
    }


def test_the_output_option_takes_both_spellings() -> None:
    # half the subcommands said --out and half --output; a user should not have to remember
    options = _output_options()
    assert len(options) >= len(_subcommands()) - 1
    assert {
        name for name, spelled in options.items() if not {"--out", "--output"} <= set(spelled)
    } == set()


def test_validation_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    code = main(
        [
            "manifest",
            str(tmp_path),
            "-o",
            str(tmp_path / "m"),
            "--extra",
            '{"source": 1, "$x": 2}',
            "--s3-prefix",
            "s3://my-bucket/",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert "'source'" in err and "'$x'" in err and err.startswith("gt-convert: ValidationError:")


@pytest.mark.parametrize(
    "argv",
    [
        ["sample", "in.manifest", "-o", "out", "--percent", "150"],
        ["sample", "in.manifest", "-o", "out"],
        ["coco"],
        ["no-such-command"],
    ],
)
def test_usage_errors_are_one_line_and_exit_1(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert err.count("\n") == 1 and "error:" in err and "--help" in err


def test_unknown_profile_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "m"
    manifest.write_text('{"source-ref": "s3://my-bucket/a.jpg"}\n')
    code = main(
        [
            "sample",
            str(manifest),
            "-o",
            str(tmp_path / "o"),
            "--count",
            "1",
            "--profile",
            "no-such-profile-zz",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "no-such-profile-zz" in err


def test_long_problem_lists_are_shortened() -> None:
    from gt_toolkit import ValidationError

    exc = ValidationError([f"problem {i}" for i in range(30)], what="thing")
    assert "... and 10 more" in str(exc) and "problem 19" in str(exc)
    assert "problem 20" not in str(exc)
    assert exc.one_line() == (
        "30 problem(s) in the thing: problem 0; problem 1; problem 2; problem 3; problem 4; "
        "and 25 more"
    )
    assert len(exc.problems) == 30


def test_nothing_converted_or_drawn_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unlabeled = tmp_path / "in.manifest"
    unlabeled.write_text('{"source-ref": "s3://my-bucket/a.jpg"}\n')
    assert main(["coco", str(unlabeled), "-o", str(tmp_path / "c.json")]) == 1
    assert "nothing was converted" in capsys.readouterr().err
    assert main(["review", str(unlabeled), "-o", str(tmp_path / "r")]) == 1
    assert "nothing to draw" in capsys.readouterr().err


def test_review_refuses_an_s3_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["review", "samples/truth.manifest", "-o", "s3://my-bucket/review/"])
    assert code == 1 and "local -o" in capsys.readouterr().err


def test_missing_images_dir_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "yolo",
            "samples/truth.manifest",
            "-o",
            str(tmp_path / "y"),
            "--copy-images",
            "--images-dir",
            str(tmp_path / "nope"),
        ]
    )
    assert code == 1 and "not a folder" in capsys.readouterr().err


def test_missing_local_source_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["manifest", str(tmp_path / "nope"), "-o", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 1 and "not a folder" in err and err.count("\n") == 1


HEAVY = ("numpy", "boto3", "botocore", "PIL", "jinja2", "liquid", "shapely")


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_registering_a_command_imports_nothing_heavy(module: str) -> None:
    # `gt-convert --help` registers every command: each must leave its API until it runs.
    probe = (
        "import argparse, importlib, sys;"
        f"m = importlib.import_module('gt_toolkit.cli.{module}');"
        "m.register(argparse.ArgumentParser().add_subparsers());"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"gt-convert {gt_toolkit.__version__}\n"
    assert gt_toolkit.__version__ == importlib.metadata.version("gt-toolkit")


def test_spelled_out_choices_match_the_api(capsys: pytest.CaptureFixture[str]) -> None:
    from gt_toolkit.cli.manifest import IMAGE_EXTENSIONS_HELP, REJECT_POLICIES
    from gt_toolkit.formats.manifest import RejectPolicy
    from gt_toolkit.storage.s3 import DEFAULT_IMAGE_EXTENSIONS
    from gt_toolkit.worker_ui.render import DEFAULT_MAX_IMAGE_SIDE

    assert tuple(p.value for p in RejectPolicy) == REJECT_POLICIES
    assert IMAGE_EXTENSIONS_HELP.split() == list(DEFAULT_IMAGE_EXTENSIONS)
    with pytest.raises(SystemExit):
        main(["template", "--help"])
    assert f"(default {DEFAULT_MAX_IMAGE_SIDE})" in " ".join(capsys.readouterr().out.split())


def test_sample_count_must_not_be_negative(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["sample", "samples/input.manifest", "-o", str(tmp_path / "s"), "--count", "-1"])
    assert info.value.code == 1 and "--count: must be >= 0" in capsys.readouterr().err


def _gt_convert(*args: str, fsize: int | None = None, **popen: Any) -> subprocess.Popen[str]:
    """``gt-convert ARGS`` in a child; ``fsize`` caps the bytes one file may hold (EFBIG).

    The child takes Ctrl-C as a terminal's command would: a suite started in the background
    (``.ci/run &``) passes SIGINT on ignored, and Python then never raises
    KeyboardInterrupt (the Ctrl-C tests waited out their timeout).
    """

    def limit() -> None:  # pragma: no cover - runs in the child
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the cap fails instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.Popen(
        [sys.executable, "-m", "gt_toolkit", *args],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit,
        **popen,
    )


def _manifest(path: Path, lines: int) -> Path:
    text = "".join(f'{{"source-ref": "s3://my-bucket/img_{i:06d}.jpg"}}\n' for i in range(lines))
    path.write_text(text)
    return path


def test_a_full_disk_is_one_line_exit_1_and_no_output(tmp_path: Path) -> None:
    big = _manifest(tmp_path / "in.manifest", 5_000)  # about 250 kB of output
    out = tmp_path / "out"
    child = _gt_convert(
        "sample", str(big), "-o", str(out / "s.manifest"), "--count", "5000", fsize=64_000
    )
    _, err = child.communicate(timeout=120)
    assert child.returncode == 1, err
    assert err.count("\n") == 1 and "File too large" in err and "Traceback" not in err
    assert not out.exists()  # not even the folder the output would have gone to


def test_a_full_temporary_folder_is_one_line(tmp_path: Path) -> None:
    # The crowd sources index answers in SQLite in the temporary folder; it is the first to fill.
    out = tmp_path / "c.manifest"
    child = _gt_convert(
        "consolidate",
        "samples/crowd/label-studio.json",
        "--from",
        "label-studio",
        "-o",
        str(out),
        fsize=8_000,
    )
    _, err = child.communicate(timeout=120)
    assert child.returncode == 1, err
    assert err.count("\n") == 1 and "temporary index" in err and "TMPDIR" in err
    assert not out.exists()


def test_an_sql_mistake_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise sqlite3.OperationalError("no such column: x")  # a bug, not the machine

    parser = build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    action.choices["sample"].set_defaults(func=broken)
    with pytest.raises(sqlite3.OperationalError):
        main(["sample", "x", "-o", "y", "--count", "1"])


def test_a_closed_stdout_pipe_exits_141_without_a_traceback(tmp_path: Path) -> None:
    manifest = tmp_path / "truth.manifest"
    line = (SAMPLES / "truth.manifest").read_text().splitlines()[0]
    manifest.write_text(
        "".join(line.replace("img_000", f"img_{i:05d}") + "\n" for i in range(3000))
    )
    child = _gt_convert(
        "evaluate", str(manifest), str(manifest), "--worst", "3000", stdout=subprocess.PIPE
    )
    assert child.stdout is not None and child.stderr is not None
    assert child.stdout.read(10)  # the table has begun: about 300 kB more are on the way
    child.stdout.close()  # as `| head -1` does
    err = child.stderr.read()
    assert child.wait(timeout=120) == cli.EXIT_BROKEN_PIPE, err
    assert err == ""


def test_main_gives_back_the_callers_sigterm_handler(tmp_path: Path) -> None:
    # In-process callers (a notebook, a test runner) keep their own SIGTERM behaviour.
    mine = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        manifest = tmp_path / "in.manifest"
        manifest.write_text((SAMPLES / "truth.manifest").read_text())
        assert (
            main(["sample", str(manifest), "-o", str(tmp_path / "s.manifest"), "--count", "1"]) == 0
        )
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, mine)


@pytest.mark.parametrize(
    ("sent", "code", "said"),
    [
        (signal.SIGINT, cli.EXIT_INTERRUPTED, "interrupted"),  # Ctrl-C
        (signal.SIGTERM, cli.EXIT_TERMINATED, "terminated"),  # kill, docker stop
    ],
    ids=["ctrl-c", "sigterm"],
)
@pytest.mark.parametrize(
    "argv",
    [
        ["sample", "IN", "-o", "OUT/s.manifest", "--percent", "10"],
        ["split", "IN", "-o", "OUT"],
        ["coco", "IN", "-o", "OUT"],
        ["augmented", "IN", "-o", "OUT"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_stop_midway_exits_128_plus_the_signal_in_one_line_and_leaves_nothing(
    argv: list[str], sent: signal.Signals, code: int, said: str, tmp_path: Path
) -> None:
    # The input is a pipe the test feeds: the command is surely midway when Ctrl-C comes.
    fifo = tmp_path / "in.manifest"
    os.mkfifo(fifo)
    args = [a.replace("IN", str(fifo)).replace("OUT", str(tmp_path / "out")) for a in argv]
    child = _gt_convert(*args)
    truth = (SAMPLES / "truth.manifest").read_text().splitlines()
    with fifo.open("w") as fh:
        for i in range(20):
            fh.writelines(line.replace("img_0", f"img{i}_0") + "\n" for line in truth)
        fh.flush()
        time.sleep(1.0)  # let it read, convert and stage what it has
        child.send_signal(sent)
        _, err = child.communicate(timeout=60)
    assert child.returncode == code
    assert err == f"gt-convert: {said}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["in.manifest"]


@pytest.mark.parametrize(
    ("argv", "original", "shared"),
    [
        (["sample", "IN", "-o", "OUT/s.manifest", "--count", "3"], "input.manifest", "input"),
        (["split", "IN", "-o", "OUT/split"], "input.manifest", "input"),
        (["yolo", "IN", "-o", "OUT/yolo"], "api-job.manifest", "input"),
        (["consolidate", "IN", "--from", "label-studio", "-o", "OUT/c"], "ls.json", "source"),
        (["agreement", "IN", "--from", "label-studio", "-o", "OUT/a"], "ls.json", "source"),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_a_rejects_file_named_like_the_input_is_refused_before_anything_runs(
    argv: list[str], original: str, shared: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a clean run removes its rejects file and a run with rejects replaces it: either would
    # destroy the input (a dirty run used to overwrite it, a clean one to delete it)
    source = {
        "input.manifest": SAMPLES / "input.manifest",
        "api-job.manifest": DATA / "outputs" / "api-job.manifest",
        "ls.json": CROWD / "label-studio.json",
    }[original]
    given = tmp_path / original
    given.write_bytes(source.read_bytes())
    args = [a.replace("IN", str(given)).replace("OUT", str(tmp_path / "out")) for a in argv]
    # the same file by another spelling is still the same file
    assert main([*args, "--rejects", str(tmp_path / "." / original)]) == 1
    assert f"is also the {shared}" in capsys.readouterr().err
    assert given.read_bytes() == source.read_bytes()
    assert not (tmp_path / "out").exists()


def test_a_rejects_file_named_like_an_output_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.manifest"
    argv = ["sample", str(SAMPLES / "input.manifest"), "-o", str(out), "--count", "3"]
    assert main([*argv, "--rejects", str(out)]) == 1
    assert "is also the output" in capsys.readouterr().err
    assert not out.exists()


def _path_arguments() -> list[tuple[str, str, list[str]]]:
    """Every subcommand's path arguments, each as (command, its name, an argv with it "")."""
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    cases = []
    for command, sub in sorted(action.choices.items()):
        positionals = [a for a in sub._actions if not a.option_strings]
        for arg in sub._actions:
            if arg.dest not in cli._PATHS:
                continue
            # every other positional a real-looking path, so only this one is empty
            argv = [command] + ["" if a is arg else "x.json" for a in positionals]
            for other in sub._actions:  # the required options, so only this one fails
                if other.required and other.option_strings and other is not arg:
                    argv += [other.option_strings[0], "x.out"]
            for group in sub._mutually_exclusive_groups:
                if group.required:  # sample's --count or --percent
                    argv += [group._group_actions[0].option_strings[0], "1"]
            if arg.option_strings:
                argv += [arg.option_strings[0], ""]
            name = "/".join(arg.option_strings) or arg.metavar or arg.dest
            cases.append((command, str(name), argv))
    return cases


@pytest.mark.parametrize(("command", "name", "argv"), _path_arguments())
def test_an_empty_path_is_a_usage_error_that_writes_nothing(
    command: str,
    name: str,
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # "" named the working folder: split -o "" wrote its manifests there, and an empty
    # input was "cannot read : Is a directory"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 1
    assert capsys.readouterr().err == (
        f"gt-convert {command}: error: argument {name}: the path is empty "
        f"(see gt-convert {command} --help)\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("option", "given"),
    [
        ("--good", ["--good", "good.png", "a car", "--good", "", "a car"]),
        ("--bad", ["--bad", "", "a car"]),
        ("--preview", ["--preview", ""]),
    ],
)
def test_an_empty_example_image_or_preview_is_a_usage_error(
    option: str,
    given: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # --good "" DESCRIPTION was "cannot read example image .: Is a directory" (TemplateError);
    # --preview "" wrote the template without a preview and exited 0
    monkeypatch.chdir(tmp_path)
    argv = ["template", "-o", "t.html", "--labels", "car", "--allow-lint-errors"]
    with pytest.raises(SystemExit) as info:
        main([*argv, *given])
    assert info.value.code == 1
    assert capsys.readouterr().err == (
        f"gt-convert template: error: argument {option}: the path is empty "
        "(see gt-convert template --help)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_the_path_arguments_are_the_ones_named() -> None:
    # a renamed dest would silently drop out of the check: each listed one still exists
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    dests = {a.dest for sub in action.choices.values() for a in sub._actions}
    assert dests >= cli._PATHS | cli._PAIRED_PATHS
