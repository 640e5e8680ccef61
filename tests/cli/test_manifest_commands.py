"""gt-convert manifest / sample / split, in-process through main()."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from gt_toolkit.cli import main
from gt_toolkit.convert.staging import LISTING
from gt_toolkit.storage.s3 import S3Store
from tests.helpers import REPO, SAMPLES, seed_objects
from tests.storage.fault_proxy import FaultProxy


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_manifest_from_s3_prefix_to_s3(
    moto_endpoint: str, store: S3Store, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_objects(bucket, [f"raw/{i}.jpg" for i in range(12)] + ["raw/x.txt"])
    out = f"s3://{bucket}/manifests/input.manifest"
    code = main(["manifest", f"s3://{bucket}/raw/", "-o", out, "--endpoint-url", moto_endpoint])
    assert code == 0
    lines = store.get_bytes(out).decode().splitlines()
    assert len(lines) == 12
    assert "wrote 12 lines" in capsys.readouterr().err


def test_manifest_from_folder(tmp_path: Path) -> None:
    out = tmp_path / "input.manifest"
    code = main(
        [
            "manifest",
            str(SAMPLES / "images"),
            "-o",
            str(out),
            "--s3-prefix",
            "s3://gt-toolkit-demo/images/",
        ]
    )
    assert code == 0
    assert out.read_text() == (SAMPLES / "input.manifest").read_text().replace(", ", ",").replace(
        ": ", ":"
    )


def test_missing_bucket_is_one_line_and_exit_1(
    moto_endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "manifest",
            "s3://no-such-bucket-zz/",
            "-o",
            str(tmp_path / "m"),
            "--endpoint-url",
            moto_endpoint,
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "StorageError" in err and "bucket does not exist" in err
    assert not (tmp_path / "m").exists()


def test_sample_by_percent_records_the_choice(tmp_path: Path) -> None:
    out = tmp_path / "sample.manifest"
    assert (
        main(
            [
                "sample",
                str(SAMPLES / "input.manifest"),
                "-o",
                str(out),
                "--percent",
                "20",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    sample = _lines(out)
    everything = _lines(SAMPLES / "input.manifest")
    assert len(sample) == 8  # round(0.2 * 40)
    record = json.loads((tmp_path / "sample.manifest.sample.json").read_text())
    assert record["total"] == 40 and record["selected"] == 8 and record["seed"] == 3
    assert [everything[n - 1] for n in record["lines"]] == sample
    again = tmp_path / "again.manifest"
    assert (
        main(
            [
                "sample",
                str(SAMPLES / "input.manifest"),
                "-o",
                str(again),
                "--percent",
                "20",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    assert again.read_text() == out.read_text()


def test_sample_by_count_collects_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.manifest"
    good = [json.dumps({"source-ref": f"s3://my-bucket/{i}.jpg"}) for i in range(10)]
    src.write_text("\n".join([*good[:5], "{broken", *good[5:]]) + "\n")
    out = tmp_path / "s.manifest"
    assert main(["sample", str(src), "-o", str(out), "--count", "4"]) == 1  # a line lost
    assert len(_lines(out)) == 4
    rejects = _lines(tmp_path / "s.manifest.rejects.jsonl")
    assert rejects[0]["line"] == 6 and rejects[0]["reason"] == "invalid-json"
    err = capsys.readouterr().err
    assert "1 rejected" in err and "rejects written to" in err
    assert "labels were lost: 1 rejected lines" in err.splitlines()[-1]


def test_sample_strict_policy_fails_on_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.manifest"
    src.write_text('{"source-ref": "s3://my-bucket/1.jpg"}\n[1]\n')
    code = main(
        ["sample", str(src), "-o", str(tmp_path / "o"), "--count", "1", "--policy", "strict"]
    )
    assert code == 1
    assert f"{src}:2: not-an-object" in capsys.readouterr().err


def test_split_writes_both_sides(tmp_path: Path) -> None:
    out = tmp_path / "split"
    assert (
        main(
            [
                "split",
                str(SAMPLES / "input.manifest"),
                "-o",
                str(out),
                "--validation-percent",
                "25",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    train, val = _lines(out / "train.manifest"), _lines(out / "validation.manifest")
    assert len(train) + len(val) == 40 and 0 < len(val) < 20
    assert not {json.dumps(x) for x in train} & {json.dumps(x) for x in val}


@pytest.mark.parametrize(
    ("command", "out"),
    [
        (["split"], "in.manifest"),  # -o names a file where a folder must go
        (["sample", "--count", "1"], "."),  # -o names a folder where a file must go
    ],
)
def test_an_output_that_cannot_be_written_is_one_line_and_exit_1(
    command: list[str], out: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.manifest"
    src.write_text('{"source-ref": "s3://my-bucket/1.jpg"}\n')
    code = main([command[0], str(src), "-o", str(tmp_path / out), *command[1:]])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "StorageError: cannot write" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]


@pytest.mark.parametrize("command", ["manifest", "sample", "split"])
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: gt-convert " + command in capsys.readouterr().out


def test_installed_console_script_runs() -> None:
    exe = Path(sys.executable).parent / "gt-convert"
    result = subprocess.run(
        [str(exe), "--help"], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert result.returncode == 0
    assert "manifest" in result.stdout and "sample" in result.stdout


def test_sample_keeps_the_chosen_lines_as_bytes_not_parsed(tmp_path: Path) -> None:
    # Lines with many boxes, as labeled manifests have: parsed, each costs ten times its bytes.
    src = tmp_path / "in.manifest"
    boxes = [{"left": j + 0.5, "top": 1.5, "width": 2.5, "height": 3.5} for j in range(20)]
    with src.open("w") as fh:
        for i in range(2000):
            line = {"source-ref": f"s3://my-bucket/{i}.jpg", "boxes": boxes}
            fh.write(json.dumps(line, separators=(",", ":")) + "\n")
    size = src.stat().st_size
    tracemalloc.start()
    try:
        assert main(["sample", str(src), "-o", str(tmp_path / "s"), "--percent", "100"]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (tmp_path / "s").read_bytes() == src.read_bytes()
    assert peak < 6 * size  # measured: 10 times the file when parsed, 4 as bytes


@pytest.mark.parametrize(
    ("command", "rejects"), [("sample", "OUT.rejects.jsonl"), ("split", "OUT/split.rejects.jsonl")]
)
def test_the_rejects_file_is_where_help_says(
    command: str, rejects: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, argv = _run_with_a_broken_line(command, tmp_path)
    assert _lines(Path(rejects.replace("OUT", argv[3])))[0]["line"] == 2
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert f"(default: {rejects})" in " ".join(capsys.readouterr().out.split())


def test_split_to_s3_writes_both_manifests_or_neither(
    store: S3Store, bucket: str, fault_proxy: FaultProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    # the train upload fails past the retries after validation's went up: neither may stay
    fault_proxy.plan(*["error500"] * 20, method="PUT", path="train.manifest")
    out = f"s3://{bucket}/split"
    args = ["split", str(SAMPLES / "input.manifest"), "-o", out, "--endpoint-url"]
    assert main([*args, fault_proxy.url]) == 1
    assert "train.manifest" in capsys.readouterr().err
    assert _keys(store, bucket) == []
    fault_proxy.clear()
    assert main([*args, fault_proxy.url]) == 0  # no fault left: both appear
    assert _keys(store, bucket) == [
        f"split/{LISTING}",
        "split/train.manifest",
        "split/validation.manifest",
    ]


@pytest.mark.parametrize(
    ("command", "rejects"), [("sample", "OUT.rejects.jsonl"), ("split", "OUT/split.rejects.jsonl")]
)
def test_a_clean_rerun_removes_the_rejects_file_an_earlier_run_left(
    command: str, rejects: str, tmp_path: Path
) -> None:
    # left there, it would name a broken line the fixed input no longer has
    src, argv = _run_with_a_broken_line(command, tmp_path)
    left = Path(rejects.replace("OUT", argv[3]))
    assert left.exists()
    src.write_text('{"source-ref": "s3://my-bucket/1.jpg"}\n')
    assert main(argv) == 0
    assert not left.exists()


def _run_with_a_broken_line(command: str, tmp_path: Path) -> tuple[Path, list[str]]:
    """Run ``sample`` or ``split`` on a manifest whose second line is broken (exit 1)."""
    src = tmp_path / "in.manifest"
    src.write_text('{"source-ref": "s3://my-bucket/1.jpg"}\n{broken\n')
    argv = [command, str(src), "-o", str(tmp_path / "out")]
    argv += ["--count", "1"] if command == "sample" else []
    assert main(argv) == 1
    return src, argv


def test_a_clean_run_to_s3_deletes_no_rejects_file_that_is_not_there(
    bucket: str, fault_proxy: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a delete of nothing needs the right to delete (a warning on every clean run without
    # it) and leaves a delete marker in a versioned bucket: every delete here fails
    fault_proxy.plan(*["error500"] * 20, method="POST", path="?delete")
    src = tmp_path / "in.manifest"
    src.write_text('{"source-ref": "s3://my-bucket/1.jpg"}\n')
    out = f"s3://{bucket}/s.manifest"
    argv = ["sample", str(src), "-o", out, "--count", "1", "--endpoint-url", fault_proxy.url]
    assert main(argv) == 0
    assert "rejects file stays" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "last_write", "placed"),
    [
        (
            ["sample", "-o", "OUT/picked.manifest", "--count", "3"],
            "picked.manifest.sample.json",
            ["picked.manifest", "picked.manifest.rejects.jsonl", "picked.manifest.sample.json"],
        ),
        (
            ["split", "-o", "OUT/split"],
            "train.manifest",
            [
                f"split/{LISTING}",
                "split/split.rejects.jsonl",
                "split/train.manifest",
                "split/validation.manifest",
            ],
        ),
    ],
    ids=["sample", "split"],
)
def test_a_write_that_fails_after_the_read_takes_the_rejects_file_with_it(
    argv: list[str],
    last_write: str,
    placed: list[str],
    store: S3Store,
    bucket: str,
    fault_proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    # the read publishes its rejects file when it ends; a failure after that must not leave
    # it behind as if the run had written something
    src = tmp_path / "in.manifest"
    src.write_text((SAMPLES / "input.manifest").read_text() + "{broken\n")
    fault_proxy.plan(*["error500"] * 20, method="PUT", path=last_write)
    cmd = [argv[0], str(src), *(a.replace("OUT", f"s3://{bucket}") for a in argv[1:])]
    assert main([*cmd, "--endpoint-url", fault_proxy.url]) == 1
    assert _keys(store, bucket) == []
    fault_proxy.clear()
    assert main([*cmd, "--endpoint-url", fault_proxy.url]) == 1  # the broken line: exit 1
    assert _keys(store, bucket) == placed


def _keys(store: S3Store, bucket: str) -> list[str]:
    listed = store.client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(o["Key"] for o in listed)


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ('{"score": NaN}', "NaN is not JSON"),
        ('{"score": -Infinity}', "-Infinity is not JSON"),
        ('{"score": 1e999}', "1e999 is too large"),
        ('{"id": 123456789012345678901234}', "64-bit"),
        ('{"note": "\\ud800"}', "surrogates"),
    ],
)
def test_manifest_extra_must_be_json_the_writer_keeps(
    extra: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--extra '{"score": NaN}' wrote "score":null on every line and exited 0 (Python's
    parser takes NaN and Infinity; JSON has neither); a 24-digit id or a lone surrogate
    ended in a TypeError traceback from the writer."""
    out = tmp_path / "in.manifest"
    args = ["manifest", str(SAMPLES / "images"), "-o", str(out)]
    try:
        code = main([*args, "--s3-prefix", "s3://my-bucket/raw/", "--extra", extra])
    except SystemExit as stop:  # argparse refuses the option itself
        code = stop.code
    err = capsys.readouterr().err
    assert code not in (0, None)
    assert said in err
    assert "Traceback" not in err
    assert not out.exists()


def test_sample_percent_rounds_an_exact_half_to_even(tmp_path: Path) -> None:
    """--percent 7 of 150 lines is 10.5 lines: the documented round (half to even) says 10;
    the sample held 11 (0.07 * 150 is 10.500000000000002 in floats)."""
    src = tmp_path / "in.manifest"
    src.write_text("".join(f'{{"source-ref": "s3://my-bucket/{i}.jpg"}}\n' for i in range(150)))
    out = tmp_path / "s.manifest"
    assert main(["sample", str(src), "-o", str(out), "--percent", "7"]) == 0
    assert len(out.read_text().splitlines()) == 10
    record = json.loads((tmp_path / "s.manifest.sample.json").read_text())
    assert (record["total"], record["selected"]) == (150, 10)


@pytest.mark.parametrize(
    ("command", "last_write"),
    [("sample", "s.manifest.sample.json"), ("split", "train.manifest")],
)
def test_a_failed_rerun_puts_the_earlier_rejects_file_back(
    command: str,
    last_write: str,
    store: S3Store,
    bucket: str,
    fault_proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    # The rerun's read published its rejects file over the earlier run's, then a later
    # write failed and the run took its files back: the rejects file too, and with it the
    # earlier run's (AllOrNone.adopt keeps nothing), while the earlier outputs stayed.
    src, rejects = tmp_path / "in.manifest", tmp_path / "rejects.jsonl"
    good = (SAMPLES / "input.manifest").read_text()
    src.write_text(good + "{broken\n")
    out = f"s3://{bucket}/{'s.manifest' if command == 'sample' else 'split'}"
    argv = [command, str(src), "-o", out, "--rejects", str(rejects)]
    argv += ["--count", "3"] if command == "sample" else []
    argv += ["--endpoint-url", fault_proxy.url]
    assert main(argv) == 1  # the broken line
    earlier = rejects.read_bytes()
    src.write_text(good + "{broken again\n")
    fault_proxy.plan(*["error500"] * 20, method="PUT", path=last_write)
    assert main(argv) == 1
    fault_proxy.clear()
    assert rejects.read_bytes() == earlier
    assert [p.name for p in tmp_path.iterdir() if p.name != "in.manifest"] == ["rejects.jsonl"]


def test_a_manifest_output_that_is_a_link_into_the_image_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # all.manifest, a link to images/img_000.jpg: the listing check looked at the link's
    # name (.manifest, no image), and the manifest was written where the link leads,
    # replacing that image with JSON lines, which the manifest then listed (exit 0)
    images = tmp_path / "images"
    images.mkdir()
    for image in sorted((SAMPLES / "images").iterdir())[:3]:
        (images / image.name).write_bytes(image.read_bytes())
    earlier = {p.name: p.read_bytes() for p in images.iterdir()}
    out = tmp_path / "all.manifest"
    out.symlink_to(images / "img_000.jpg")
    argv = ["manifest", str(images), "-o", str(out), "--s3-prefix", "s3://bkt-x/raw/"]
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    real = os.path.realpath(images / "img_000.jpg")
    said = f"the output {out} (a link to {real}) is inside the image folder {images}"
    assert said in err and err.count("\n") == 1, err
    assert {p.name: p.read_bytes() for p in images.iterdir()} == earlier
    assert out.is_symlink()
