"""gt-convert as a whole: every subcommand has help, user errors are one line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gt_toolkit.cli import build_parser, main


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
