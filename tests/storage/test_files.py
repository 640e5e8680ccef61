"""Local and S3 writes: atomic, with the modes open() gives, and nothing left after a kill."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gt_toolkit.errors import StorageError
from gt_toolkit.storage import files
from gt_toolkit.storage.files import (
    LineWriter,
    atomic_output,
    check_writable,
    read_bytes,
    remove_file,
    write_bytes,
    write_lines,
)
from gt_toolkit.storage.s3 import S3Store
from tests.helpers import REPO, s3_keys, unwritable_folder

# A child that starts an atomic write, says so, and waits to be killed mid-write.
_WRITER = """
import sys, time
from gt_toolkit.storage.files import atomic_output
with atomic_output(sys.argv[1]) as fh:
    fh.write(b"x" * 1_000_000)
    fh.flush()
    open(sys.argv[2], "w").close()
    time.sleep(60)
"""


@pytest.fixture
def umask_077() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def test_modes_follow_the_umask_while_threads_write(
    tmp_path: Path, umask_077: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reading the umask means setting it; any write that does so races with the others.
    umask_calls: list[int] = []
    real_umask = os.umask

    def spy(mask: int) -> int:
        umask_calls.append(mask)
        return real_umask(mask)

    monkeypatch.setattr(os, "umask", spy)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    try:
        errors: list[BaseException] = []

        def writer(n: int) -> None:
            try:
                for i in range(100):
                    write_bytes(tmp_path / f"t{n}-{i}.txt", b"x", durable=False)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    assert errors == []
    assert umask_calls == []
    modes = {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {0o600}


def test_a_new_file_gets_the_mode_open_would_give(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_bytes(tmp_path / "a.txt", b"x")
        with (tmp_path / "b.txt").open("wb"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o640


# A conversion stages a whole tree in a part folder and is killed before it moves it into place.
_CONVERTER = """
import sys, time
from gt_toolkit.convert.staging import StagedOutput
with StagedOutput(sys.argv[1]) as out:
    out.write_bytes(out.location("labels", "a.txt"), b"x" * 1_000_000)
    open(sys.argv[2], "w").close()
    time.sleep(60)
"""


def _kill_mid_write(
    target: str, tmp_path: Path, env: dict[str, str], script: str = _WRITER
) -> None:
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", script, target, str(ready)], cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.poll() is None, "the writer died before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def test_a_write_killed_midway_leaves_nothing_after_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _kill_mid_write(str(out / "train.manifest"), tmp_path, dict(os.environ))
    assert [p.name for p in out.iterdir() if p.name.endswith(".part")]  # what the kill left
    assert not (out / "train.manifest").exists()  # and no partial output
    write_lines(out / "validation.manifest", [b"{}"])  # the next run, same folder
    assert sorted(p.name for p in out.iterdir()) == ["validation.manifest"]


def test_a_conversion_killed_midway_leaves_no_staging_folder_after_the_next_run(
    tmp_path: Path,
) -> None:
    parent = tmp_path / "exports"
    _kill_mid_write(str(parent / "yolo"), tmp_path, dict(os.environ), script=_CONVERTER)
    [left] = [p for p in parent.iterdir() if p.name.endswith(".part")]  # what the kill left
    assert left.is_dir() and not (parent / "yolo").exists()
    write_lines(parent / "coco.json", [b"{}"])  # the next run into the same folder
    assert sorted(p.name for p in parent.iterdir()) == ["coco.json"]


def test_an_s3_upload_killed_midway_leaves_no_staging_file(
    tmp_path: Path, store: S3Store, bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = dict(os.environ, TMPDIR=str(temp), AWS_ENDPOINT_URL=moto_endpoint)
    _kill_mid_write(f"s3://{bucket}/out/train.manifest", tmp_path, env)
    staged = [p for p in temp.rglob("*.part")]
    assert staged
    assert not store.exists(f"s3://{bucket}/out/train.manifest")
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    write_bytes(f"s3://{bucket}/out/validation.manifest", b"{}\n", store=store)
    assert list(temp.rglob("*.part")) == []
    assert read_bytes(f"s3://{bucket}/out/validation.manifest", store=store) == b"{}\n"


def test_another_hosts_temporary_files_are_left_alone(tmp_path: Path) -> None:
    other = tmp_path / ".a.manifest.other-host.1.0123456789abcdef.part"  # pid 1 runs here too
    dead = tmp_path / f".a.manifest.{files._HOST}.999999999.0123456789abcdef.part"
    other.write_bytes(b"x")
    dead.write_bytes(b"x")
    write_bytes(tmp_path / "b.manifest", b"x")
    assert other.exists() and not dead.exists()


def test_a_write_in_progress_elsewhere_is_left_alone(tmp_path: Path) -> None:
    with atomic_output(tmp_path / "a.manifest") as fh:
        fh.write(b"partial")
        write_bytes(tmp_path / "b.manifest", b"x")  # sweeps the folder: a live writer's file
        fh.write(b" and the rest")
    assert (tmp_path / "a.manifest").read_bytes() == b"partial and the rest"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.manifest", "b.manifest"]


def test_line_writer_batches_and_counts(tmp_path: Path) -> None:
    lines = [str(i).encode() for i in range(10_000)]
    with (tmp_path / "x").open("wb") as fh:
        writer = LineWriter(fh)
        for line in lines:
            writer.add(line)
        writer.flush()
    assert writer.count == 10_000
    assert (tmp_path / "x").read_bytes().split(b"\n") == [*lines, b""]
    assert write_lines(tmp_path / "y", iter(lines)) == 10_000


def test_a_folder_target_is_refused_in_one_line_and_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    (folder / "kept").mkdir(parents=True)
    with pytest.raises(StorageError, match=r"out: it is a folder"):
        write_bytes(folder, b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary file either
    assert [p.name for p in folder.iterdir()] == ["kept"]


def test_a_pipe_target_is_refused_not_replaced_by_a_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(StorageError, match="not a regular file"):
        write_bytes(fifo, b"x")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]


def test_a_failed_flush_is_one_storage_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(StorageError, match=r"a\.manifest: No space left on device"):
        write_bytes(tmp_path / "a.manifest", b"x")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_removes_the_folders_it_made_and_only_those(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "a" / "b" / "c" / "x.json") as fh:
        fh.write(b"half")
        raise RuntimeError("the run failed")
    assert [p.name for p in tmp_path.iterdir()] == ["a"]
    assert list((tmp_path / "a").iterdir()) == []
    with atomic_output(tmp_path / "a" / "b" / "y.json") as fh:
        with pytest.raises(RuntimeError), atomic_output(tmp_path / "a" / "b" / "z.json") as other:
            other.write(b"z")
            raise RuntimeError("this one failed")
        fh.write(b"y")  # the folder both made stays for the write that succeeds
    assert (tmp_path / "a" / "b" / "y.json").read_bytes() == b"y"


@given(
    data=st.binary(max_size=300).map(lambda b: b.replace(b"x", b"\n").replace(b"y", b"\r\n")),
    size=st.integers(1, 40),
)
def test_lines_come_whole_whatever_the_chunks(data: bytes, size: int) -> None:
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()  # a final newline ends the last line, it does not start one
    expected = [line.removesuffix(b"\r") for line in expected]
    with mock.patch.object(files, "iter_chunks", lambda location, store=None: iter(chunks)):
        assert list(files.iter_raw_lines("any")) == expected


def test_remove_file_deletes_local_and_s3_files_and_minds_no_missing_one(
    tmp_path: Path, store: S3Store, bucket: str
) -> None:
    for location in (str(tmp_path / "a.jsonl"), f"s3://{bucket}/a.jsonl"):
        write_bytes(location, b"x\n", store=store)
        remove_file(location, store=store)
        remove_file(location, store=store)  # gone already: no error
        with pytest.raises(StorageError):
            read_bytes(location, store=store)
    (tmp_path / "folder").mkdir()
    with pytest.raises(StorageError, match="cannot delete"):
        remove_file(tmp_path / "folder")


def test_check_writable_passes_a_path_whose_folders_a_write_would_make(tmp_path: Path) -> None:
    check_writable(tmp_path / "new" / "deeper" / "x.json")
    check_writable(tmp_path / "x.json")
    assert list(tmp_path.iterdir()) == []  # a check makes nothing


def test_check_writable_asks_s3_and_leaves_nothing_there(
    store: S3Store, bucket: str, s3_client: Any
) -> None:
    # it passed every s3:// location unasked: a summary in a missing bucket failed only
    # after the output had replaced the earlier one
    store.put_bytes(f"s3://{bucket}/any/key.json", b"earlier")
    check_writable(f"s3://{bucket}/any/key.json", store=store)
    check_writable(f"s3://{bucket}/new/key.json", store=store)
    assert s3_keys(s3_client, bucket) == ["any/key.json"]
    assert store.get_bytes(f"s3://{bucket}/any/key.json") == b"earlier"
    assert "Uploads" not in s3_client.list_multipart_uploads(Bucket=bucket)
    with pytest.raises(StorageError, match=r"^cannot write s3://no-such-bkt-x/k: the bucket"):
        check_writable("s3://no-such-bkt-x/k", store=store)


def test_check_writable_refuses_a_path_through_a_file_or_at_a_folder(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    target = tmp_path / "f" / "a" / "x.json"
    with pytest.raises(StorageError) as refused:
        check_writable(target)
    # one "cannot write" (the README quotes it so): the message was wrapped twice
    assert str(refused.value) == f"cannot write {target}: {tmp_path / 'f'} is not a folder"
    with pytest.raises(StorageError, match="it is a folder"):
        check_writable(tmp_path)


def test_check_writable_makes_the_writes_temporary_file_and_leaves_none(tmp_path: Path) -> None:
    # as root no mode bit stops a write, but a name too long does (and failed late); the
    # temporary file's name is cut to fit, so a legal name near the limit is writable
    with pytest.raises(StorageError, match="File name too long"):
        check_writable(tmp_path / ("s" * 251 + ".json"))
    check_writable(tmp_path / ("s" * 250 + ".json"))
    check_writable(tmp_path / ("s" * 200 + ".json"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("a", "b", "one"),
    [
        ("Cat", "cat", True),
        ("\u00c9T\u00c9", "\u00e9t\u00e9", True),
        ("e\u0301", "\u00e9", True),  # decomposed and composed: one name on APFS
        ("\u03a3\u03c3", "\u03c3\u03c2", True),  # sigma, final sigma
        ("Stra\u00dfe", "Strasse", False),
        ("\ufb01le", "file", False),
        ("\u0130", "i", False),  # dotted capital I: its lower case is two characters
    ],
)
def test_one_fold_for_every_name(a: str, b: str, one: bool) -> None:
    assert (files.folded(a) == files.folded(b)) is one


def test_a_target_named_near_the_limit_is_written(tmp_path: Path) -> None:
    # a 254-byte name is a legal file; its temporary file '.<name>.<host>.<pid>.<token>.part'
    # was not, and the write failed with "File name too long"
    target = tmp_path / ("\u00e9" * 125 + ".txt")
    assert len(target.name.encode()) == 254
    check_writable(target)
    write_bytes(target, b"label")
    assert target.read_bytes() == b"label"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_target_whose_name_is_not_utf8_is_written(tmp_path: Path) -> None:
    # a name of bytes that are not UTF-8 (argv gives it with surrogate escapes): cutting its
    # temporary file's name by str.encode() raised UnicodeEncodeError, a traceback
    target = tmp_path / os.fsdecode(b"label-\xff.txt")
    check_writable(target)
    write_bytes(target, b"label")
    assert [os.fsencode(p.name) for p in tmp_path.iterdir()] == [b"label-\xff.txt"]


@pytest.mark.parametrize("on_the_way", ["n" * 256 + "/x.json", "new/" + "n" * 256 + "/x.json"])
def test_check_writable_refuses_a_folder_name_too_long_on_the_way(
    tmp_path: Path, on_the_way: str
) -> None:
    with pytest.raises(StorageError, match="File name too long"):
        check_writable(tmp_path / on_the_way)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_run_leaves_another_runs_file_it_never_replaced(tmp_path: Path) -> None:
    # Two runs into one folder: this one kept the earlier out.json, then another run put its
    # own there while this one was still writing, and this one failed before its file was
    # in place. Before: the failure moved the earlier copy back over the other run's output,
    # a file this run had never replaced.
    out = tmp_path / "out.json"
    out.write_bytes(b"earlier")
    with pytest.raises(RuntimeError), files.AllOrNone() as together, together.open(out) as fh:
        fh.write(b"this run")
        files.write_bytes(out, b"another run")
        raise RuntimeError("failed before its file was in place")
    assert out.read_bytes() == b"another run"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_failed_run_leaves_a_file_another_run_placed_over_its_own(tmp_path: Path) -> None:
    # This run's out.json was in place, then another run replaced it: the failure left the
    # other run's file alone (and put no earlier copy over it).
    out, side = tmp_path / "out.json", tmp_path / "side.json"
    out.write_bytes(b"earlier")
    with pytest.raises(RuntimeError), files.AllOrNone() as together:
        with together.open(out) as fh:
            fh.write(b"this run")
        files.write_bytes(out, b"another run")
        with together.open(side) as fh:
            raise RuntimeError("the side file failed")
    assert out.read_bytes() == b"another run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_a_file_written_under_two_names_is_put_back_as_it_was_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One file by two names (relative and absolute). Before: the second open kept "the
    # earlier" copy of a file this run had already written, and the failure put that one
    # back: the failed run's output stayed.
    out = tmp_path / "out.json"
    out.write_bytes(b"earlier")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError), files.AllOrNone() as together:
        with together.open(out) as fh:
            fh.write(b"first")
        with together.open("out.json") as fh:
            fh.write(b"second")
        raise RuntimeError("a later file failed")
    assert out.read_bytes() == b"earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_two_outputs_that_are_links_of_one_file_are_both_put_back(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_bytes(b"earlier")
    os.link(a, b)
    with pytest.raises(RuntimeError), files.AllOrNone() as together:
        for path in (a, b):
            with together.open(path) as fh:
                fh.write(b"new")
        raise RuntimeError("a later file failed")
    assert a.read_bytes() == b.read_bytes() == b"earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


_SIZE_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
from gt_toolkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    ("lines", "count"),
    [
        (40, "30"),  # past the limit in the file's last flush
        (400, "300"),  # past it in a write of the sample's own (past the file's buffer)
        (40, "3"),  # within it
    ],
)
def test_a_write_that_runs_out_of_room_names_its_file(
    tmp_path: Path, lines: int, count: str
) -> None:
    # A file size limit (as a full disk or a quota) failed the sample's last flush; closing
    # the file flushed again, failed again, and that bare OSError replaced the error naming
    # the file: "gt-convert: OSError: File too large". A write of the caller's own failed
    # with that bare OSError too.
    src = tmp_path / "in.manifest"
    src.write_text(
        "".join(f'{{"source-ref": "s3://my-bucket/{n:04}.jpg"}}\n' for n in range(lines))
    )
    out = tmp_path / "s.manifest"
    argv = ["sample", str(src), "-o", str(out), "--count", count]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-c", _SIZE_LIMITED, *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if count == "3":  # small enough: written
        assert run.returncode == 0, run.stderr
        return
    assert run.returncode == 1
    assert f"gt-convert: StorageError: cannot write {out}: File too large" in run.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["in.manifest"]


def _no_copy_of(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No second name nor copy of ``path`` can be made: another user's file, unreadable to
    this one, where fs.protected_hardlinks forbids a link to it (root reads everything, so
    the refusals are made here)."""
    link, copy = os.link, files.shutil.copy2

    def no_link(src: Any, dst: Any, **kw: Any) -> None:
        if Path(src) == path:
            raise PermissionError(1, "Operation not permitted")
        link(src, dst, **kw)

    def no_copy(src: Any, dst: Any, **kw: Any) -> Any:
        if Path(src) == path:
            raise PermissionError(13, "Permission denied")
        return copy(src, dst, **kw)

    monkeypatch.setattr(files.os, "link", no_link)
    monkeypatch.setattr(files.shutil, "copy2", no_copy)


def test_an_earlier_file_no_copy_can_be_made_of_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: keeping its copy raised PermissionError, so the run failed at its very end,
    # for a file the folder lets it replace (as it did before copies were kept).
    out = tmp_path / "out.json"
    out.write_bytes(b"another user's")
    _no_copy_of(out, monkeypatch)
    with files.AllOrNone() as together, together.open(out) as fh:
        fh.write(b"new")
    assert out.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_failed_run_says_an_earlier_file_it_could_not_keep_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.json"
    out.write_bytes(b"another user's")
    _no_copy_of(out, monkeypatch)
    with pytest.raises(RuntimeError) as failed, files.AllOrNone() as together:
        with together.open(out) as fh:
            fh.write(b"new")
        raise RuntimeError("a later file failed")
    assert not out.exists()
    notes = getattr(failed.value, "__notes__", [])
    assert notes == [f"the earlier {out} is gone: no copy of it could be kept (Permission denied)"]


def test_a_full_disk_elsewhere_in_the_block_is_not_blamed_on_the_output(tmp_path: Path) -> None:
    # reconsolidate spills COCO annotations to a temporary file inside the output's block:
    # a full temporary folder is that file's fault, not the output's ("cannot write out").
    out = tmp_path / "out.json"
    with pytest.raises(OSError, match="No space left") as failed, atomic_output(out) as fh:
        fh.write(b"{")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # the spill file's write
    assert not isinstance(failed.value, StorageError)
    assert list(tmp_path.iterdir()) == []


def test_all_or_none_refuses_a_name_too_long_as_a_write_does(tmp_path: Path) -> None:
    # d45a0ac looked for an earlier file first: Path.is_file raised a bare OSError ("File name
    # too long") where the write says "cannot write <name>: File name too long".
    name = tmp_path / ("x" * 300)
    too_long = r"cannot write .*: File name too long"
    with (
        pytest.raises(StorageError, match=too_long),
        files.AllOrNone() as together,
        together.open(name) as fh,
    ):
        fh.write(b"1")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("n", [0, 1, files._BATCH - 1, files._BATCH, 2 * files._BATCH + 3])
def test_write_lines_writes_every_line_across_batches(tmp_path: Path, n: int) -> None:
    """add_all queues in one loop and flushes at each full batch: no line lost or doubled."""
    lines = [f'{{"i":{i}}}'.encode() for i in range(n)]
    out = tmp_path / "x.manifest"
    assert write_lines(out, iter(lines)) == n
    assert out.read_bytes() == b"".join(line + b"\n" for line in lines)
    with out.open("wb") as fh:  # add and add_all mixed, as a caller may
        writer = LineWriter(fh)
        writer.add(b"first")
        writer.add_all(iter(lines))
        writer.flush()
    assert writer.count == n + 1
    assert out.read_bytes() == b"first\n" + b"".join(line + b"\n" for line in lines)


def test_an_earlier_file_a_failed_run_removed_in_its_block_is_put_back(tmp_path: Path) -> None:
    # consolidate keeps an earlier run's rejects file and worker model, removes them as
    # stale, then writes its summary: a failure there had left them gone, though kept
    stale = tmp_path / "out.worker-model.json"
    stale.write_bytes(b"earlier model")
    with pytest.raises(RuntimeError), files.AllOrNone() as together:
        together.keep_earlier([stale])
        files.remove_file(stale)
        raise RuntimeError("the summary could not be written")
    assert stale.read_bytes() == b"earlier model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.worker-model.json"]


def test_temporary_names_are_cut_to_the_limit_the_check_applies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a disk of 143-byte names (eCryptfs), check_writable let a 120-byte name through
    by the disk's limit, and its temporary name was cut to 255 bytes: "File name too long"
    at the write (here the disk's answer is faked, and each name made is measured)."""
    real = os.pathconf
    monkeypatch.setattr(os, "pathconf", lambda p, n: 143 if n == "PC_NAME_MAX" else real(p, n))
    target = tmp_path / ("n" * 116 + ".txt")
    check_writable(target)
    with pytest.raises(StorageError, match="File name too long"):
        check_writable(tmp_path / ("n" * 140 + ".txt"))
    with files.atomic_output(target) as fh:
        fh.write(b"label")
        made = [os.fsencode(p.name) for p in tmp_path.iterdir()]
    folder = files.make_part_folder(tmp_path, "s" * 200)
    assert all(len(name) <= 143 for name in made) and len(made) == 1
    assert len(os.fsencode(folder.name)) <= 143
    assert target.read_bytes() == b"label"


def test_a_relative_folders_name_limit_is_asked_again_after_a_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit was remembered by the folder's path as given: "." in a folder on a disk of
    143-byte names (eCryptfs), then "." after a chdir to a disk of 255, and a 200-byte name
    that fits there was refused "File name too long" (the disks' answers are faked here)."""
    small, large = tmp_path / "ecryptfs", tmp_path / "ext4"
    small.mkdir()
    large.mkdir()
    real = os.pathconf

    def pathconf(path: Any, name: str) -> int:
        if name == "PC_NAME_MAX":
            return 143 if Path(path).resolve().is_relative_to(small) else 255
        return real(path, name)

    monkeypatch.setattr(os, "pathconf", pathconf)
    monkeypatch.chdir(small)
    with pytest.raises(StorageError, match="File name too long"):
        check_writable("n" * 196 + ".txt")
    monkeypatch.chdir(large)
    check_writable("n" * 196 + ".txt")
    with files.atomic_output("n" * 196 + ".txt") as fh:
        fh.write(b"label")
    assert (large / ("n" * 196 + ".txt")).read_bytes() == b"label"


def test_the_name_limits_remembered_stay_few(tmp_path: Path) -> None:
    """Every folder written into was remembered for the life of the process: each run
    stages into folders of new names, so a long-lived process (a notebook, a warm Lambda)
    grew by a few entries a run, without end."""
    before = set(files._NAME_MAXES)
    for k in range(1000):
        folder = tmp_path / f"run{k}"
        folder.mkdir()
        with files.atomic_output(folder / "label.txt") as fh:
            fh.write(b"x")
    assert (folder / "label.txt").read_bytes() == b"x"
    assert len(set(files._NAME_MAXES) - before) <= 300


def test_the_folders_remembered_as_swept_stay_few(tmp_path: Path) -> None:
    """Every folder a temporary file was made in was remembered as swept for the life of
    the process (a set that only grew): a long-lived process grew by a few paths a run."""
    before = set(files._swept)
    for k in range(3000):
        folder = tmp_path / f"run{k}"
        folder.mkdir()
        with files.atomic_output(folder / "label.txt") as fh:
            fh.write(b"x")
    assert (folder / "label.txt").read_bytes() == b"x"
    assert len(files._swept - before) <= 1100


def _shared(tmp_path: Path, content: bytes = b"earlier") -> tuple[Path, Path]:
    """``link.json`` in ``mine/`` leading, through a second link, to ``shared/run.json``."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "shared").mkdir()
    real = tmp_path / "shared" / "run.json"
    real.write_bytes(content)
    (tmp_path / "mine" / "hop.json").symlink_to(real)
    link = tmp_path / "mine" / "link.json"
    link.symlink_to("hop.json")  # relative, and to a link: followed to the end
    return link, Path(os.path.realpath(real))


def _names(tmp_path: Path) -> list[str]:
    return sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("how", ["write_bytes", "write_lines", "all_or_none"])
def test_a_write_to_a_link_changes_the_file_it_leads_to_and_the_link_stays(
    tmp_path: Path, how: str
) -> None:
    # Before: the temporary file was renamed over the link, which became a plain file;
    # the shared file it led to kept the earlier run's bytes.
    link, real = _shared(tmp_path)
    names = _names(tmp_path)
    if how == "write_bytes":
        write_bytes(link, b"new\n")
    elif how == "write_lines":
        assert write_lines(link, [b"new"]) == 1
    else:
        with files.AllOrNone() as together, together.open(link) as fh:
            fh.write(b"new\n")
    assert link.is_symlink() and link.readlink() == Path("hop.json")
    assert real.read_bytes() == b"new\n"
    assert _names(tmp_path) == names  # no temporary file left, in either folder


def test_a_failed_run_puts_back_the_file_a_link_leads_to(tmp_path: Path) -> None:
    link, real = _shared(tmp_path)
    names = _names(tmp_path)
    with pytest.raises(RuntimeError), files.AllOrNone() as together:
        with together.open(link) as fh:
            fh.write(b"new\n")
        assert real.read_bytes() == b"new\n"
        raise RuntimeError("a later file failed")
    assert link.is_symlink() and real.read_bytes() == b"earlier"
    assert _names(tmp_path) == names


@pytest.mark.parametrize("how", ["write_bytes", "all_or_none", "all_or_none failed"])
def test_a_link_to_a_file_not_there_yet_is_written_through_and_creates_it(
    tmp_path: Path, how: str
) -> None:
    # Before: refused ("it is a link to ../shared/run.json, which does not exist"), where a
    # shell's > and open(O_CREAT) create the file; a run killed while it replaced a shared
    # summary left such a link, and every later run refused it.
    link, real = _shared(tmp_path)
    real.unlink()
    names = _names(tmp_path)
    check_writable(link)
    assert _names(tmp_path) == names
    if how == "write_bytes":
        write_bytes(link, b"new\n")
    else:
        with contextlib.ExitStack() as stack:
            if how == "all_or_none failed":
                stack.enter_context(pytest.raises(RuntimeError))
            together = stack.enter_context(files.AllOrNone())
            with together.open(link) as fh:
                fh.write(b"new\n")
            assert real.read_bytes() == b"new\n"
            if how == "all_or_none failed":
                raise RuntimeError("a later file failed")
    assert link.is_symlink() and link.readlink() == Path("hop.json")
    if how == "all_or_none failed":  # the file it created goes again; the link stays
        assert not real.exists() and _names(tmp_path) == names
    else:
        assert real.read_bytes() == b"new\n"
        assert _names(tmp_path) == sorted([*names, "shared/run.json"])


@pytest.mark.parametrize(
    ("leads", "why"),
    [
        ("missing/x.json", "whose folder {T}/missing does not exist"),
        ("loop.json", "a loop of links"),
        ("newdir/", "which names a folder, not a file"),
        ("plain.txt/x.json", "which cannot be followed (Not a directory)"),
    ],
)
def test_a_link_that_cannot_lead_to_a_file_is_refused_in_one_line_and_left_as_it_is(
    tmp_path: Path, leads: str, why: str
) -> None:
    # Before: a link through a file said "which does not exist", of a file that may well;
    # one to "newdir/" was refused so too, and would now have made a file named newdir.
    link = tmp_path / "link.json"
    link.symlink_to(leads)
    if leads == "loop.json":
        (tmp_path / "loop.json").symlink_to("link.json")
    (tmp_path / "plain.txt").write_text("a file, no folder\n")
    said = f"cannot write {link}: it is a link to {leads}, {why.replace('{T}', str(tmp_path))}"
    names = _names(tmp_path)
    for attempt in (lambda: check_writable(link), lambda: write_bytes(link, b"x")):
        with pytest.raises(StorageError) as refused:
            attempt()
        assert str(refused.value).startswith(said) and "\n" not in str(refused.value)
    assert link.readlink() == Path(leads)
    assert _names(tmp_path) == names


def test_a_link_to_a_file_not_there_yet_in_a_folder_this_user_may_not_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link, real = _shared(tmp_path)
    real.unlink()
    unwritable_folder(real.parent, monkeypatch)
    names = _names(tmp_path)
    try:
        for attempt in (lambda: check_writable(link), lambda: write_bytes(link, b"x")):
            with pytest.raises(StorageError) as refused:
                attempt()
            assert (
                str(refused.value) == f"cannot write {link} (a link to {real}): Permission denied"
            )
        assert link.is_symlink() and _names(tmp_path) == names
    finally:
        real.parent.chmod(0o755)


def test_a_killed_runs_earlier_copy_beside_a_link_to_nowhere_is_swept_by_the_next_write(
    tmp_path: Path,
) -> None:
    # A run killed (kill -9) while it replaced the file a link leads to: that file was
    # removed, its earlier copy kept in a .earlier.<host>.<pid>.<token>.part folder beside
    # it; the link leads nowhere. The next write goes through the link, and the killed
    # run's folder is swept as other temporary files are.
    link, real = _shared(tmp_path)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    leftover = real.parent / files.part_name(".earlier").replace(
        f".{os.getpid()}.", f".{int(dead.stdout)}."
    )
    leftover.mkdir()
    os.link(real, leftover / "0")
    real.unlink()
    files._swept.discard(str(real.parent))  # a new run: no folder swept yet
    write_bytes(link, b"new\n")
    assert real.read_bytes() == b"new\n" and link.is_symlink()
    assert not leftover.exists()


def test_a_link_into_a_folder_this_user_may_not_write_is_refused_and_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: the check made its probe beside the link, where it may write, and passed;
    # the write then replaced the link with a plain file.
    link, real = _shared(tmp_path)
    unwritable_folder(real.parent, monkeypatch)
    names = _names(tmp_path)
    said = f"cannot write {link} (a link to {real}): Permission denied"
    try:
        for attempt in (lambda: check_writable(link), lambda: write_bytes(link, b"x")):
            with pytest.raises(StorageError) as refused:
                attempt()
            assert str(refused.value) == said
        assert link.is_symlink() and real.read_bytes() == b"earlier"
        assert _names(tmp_path) == names
    finally:
        real.parent.chmod(0o755)


def _outcome(attempt: Any) -> str:
    """What a check says: ``ok``, or its refusal's line."""
    try:
        attempt()
    except StorageError as exc:
        return str(exc)
    return "ok"


@pytest.mark.parametrize(
    "leads",
    [
        "../shared/a.txt",  # a file there, relative
        "{T}/shared/gone.txt",  # a file not there yet, absolute
        "../shared/hop.txt",  # a chain: to a link to a file
        "../linked/a.txt",  # through a folder that is a link
        "../linked/gone.txt",
        "../shared",  # a folder
        "../missing/a.txt",  # into a folder not there
        "../shared/a.txt/x",  # through a file
        "../shared/",  # names a folder
        "../shared/../shared/gone.txt",
        "b.txt",  # to another file the run writes
        "../linked/../out/b.txt",
        "self.txt",  # to itself: a loop
        "../shared/read.txt",  # a file the run reads
        "../shared/x" + "y" * 300,  # a name too long
    ],
)
def test_check_links_says_of_each_link_what_its_write_would_meet(
    tmp_path: Path, leads: str
) -> None:
    """check_links tells most links' ends by their folders' real paths, asked once a folder
    (see the next test); what it says of each must be what following the whole way says."""
    out, shared = tmp_path / "out", tmp_path / "shared"
    out.mkdir()
    shared.mkdir()
    (shared / "a.txt").write_text("a\n")
    (shared / "read.txt").write_text("input\n")
    (shared / "hop.txt").symlink_to("a.txt")
    (tmp_path / "linked").symlink_to("shared")
    written = [str(out / name) for name in ("a.txt", "b.txt", "c.txt")]
    link = out / ("self.txt" if leads == "self.txt" else "a.txt")
    written[0] = str(link)
    link.symlink_to(leads.replace("{T}", str(tmp_path)))
    reads = {str(shared / "read.txt")}

    def whole_way() -> None:
        check_writable(link)
        real = files.link_target(link)
        if real in {os.path.realpath(w) for w in written if w != str(link)}:
            raise StorageError(f"cannot write {link} (a link to {real}): the run writes")
        if real in reads:
            raise StorageError(f"cannot write {link} (a link to {real}): the run reads")

    said = _outcome(lambda: files.check_links(written, reads=reads.__contains__))
    assert said.startswith(_outcome(whole_way)), said
    assert [p for p in tmp_path.rglob("*") if files.is_part_name(p.name)] == []


def test_check_links_asks_each_folder_once_not_each_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One link among 100,000 labels made check_links take realpath() of every one (4 s);
    100,000 links into one shared folder a probe file and two realpath()s each (40 s)."""
    out, shared = tmp_path / "out", tmp_path / "shared"
    (out / "labels").mkdir(parents=True)
    shared.mkdir()
    written = []
    for i in range(2_000):
        label = out / "labels" / f"img_{i:04d}.txt"
        if i % 2:
            label.symlink_to(shared / label.name)  # there, or not yet
            if i % 4 == 1:
                (shared / label.name).write_text("shared\n")
        written.append(str(label))
    calls = {"realpath": 0, "probe": 0}
    realpath, opener = os.path.realpath, os.open

    def counted_realpath(path: Any, **kw: Any) -> str:
        calls["realpath"] += 1
        return realpath(path, **kw)

    def counted_open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        calls["probe"] += bool(flags & os.O_CREAT)
        return opener(path, flags, mode, **kw)

    monkeypatch.setattr(os.path, "realpath", counted_realpath)
    monkeypatch.setattr(os, "open", counted_open)
    files.check_links(written, reads=lambda real: False)
    assert calls["realpath"] <= 10 and calls["probe"] <= 2, calls


@pytest.mark.parametrize(
    "leads",
    [
        "a.txt/../gone.txt",  # through the link itself: a loop
        "../missing/../shared/gone.txt",  # through a folder not there
        "../shared/a.txt/",  # a file that is there, named as a folder
        "../shared/a.txt/.",
    ],
)
def test_a_link_the_kernel_cannot_follow_to_a_file_is_refused_not_written_around(
    tmp_path: Path, leads: str
) -> None:
    """realpath() tidies what the kernel does not: "missing/.." and a final "/" or "/." away,
    and a loop on the way left as spelt. check_links said these links led to shared/gone.txt
    or shared/a.txt, and the write made or replaced that file, the link leading nowhere still
    (or, the loop, the run failed with part of its output moved in)."""
    out, shared = tmp_path / "out", tmp_path / "shared"
    out.mkdir()
    shared.mkdir()
    (shared / "a.txt").write_text("a\n")
    link = out / "a.txt"
    link.symlink_to(leads)
    with pytest.raises(OSError):  # what the kernel says of a write through it
        os.close(os.open(link, os.O_WRONLY | os.O_CREAT | os.O_APPEND))
    names = _names(tmp_path)
    written = [str(link), str(out / "b.txt")]
    for attempt in (
        lambda: files.check_links(written, reads=lambda real: False),
        lambda: check_writable(link),
        lambda: write_bytes(link, b"new\n"),
    ):
        with pytest.raises(StorageError, match=r"it is a link to .*\(the link is followed"):
            attempt()
    assert _names(tmp_path) == names
    assert (shared / "a.txt").read_text() == "a\n" and link.is_symlink()
