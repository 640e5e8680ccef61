"""Outputs appear whole or not at all, locally and on S3."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gt_toolkit.convert import ConvertOptions, convert_output, staging
from gt_toolkit.convert.staging import LISTING, StagedOutput
from gt_toolkit.errors import ConversionError, StorageError
from gt_toolkit.storage import files
from gt_toolkit.storage.files import is_part_name, part_name
from gt_toolkit.storage.s3 import S3Store
from tests.helpers import SAMPLES, s3_tree, unwritable_folder

TRUTH = SAMPLES / "truth.manifest"  # 40 images


def _keys(store: Any, bucket: str) -> list[str]:
    resp = store.client.list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in resp.get("Contents", []))


def test_local_files_appear_only_on_commit(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    with StagedOutput(out) as staged:
        staged.write_bytes(staged.location("a", "b.txt"), b"x")
        with staged.open(staged.location("c.txt")) as fh:
            fh.write(b"y")
        assert not out.exists()
        [stage] = tmp_path.glob(".ds.*.part")
        assert (stage / "ds" / "a" / "b.txt").read_bytes() == b"x"
    assert (out / "a" / "b.txt").read_bytes() == b"x"
    assert (out / "c.txt").read_bytes() == b"y"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_an_error_removes_the_stage(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), StagedOutput(tmp_path / "ds") as staged:
        staged.write_bytes(staged.location("a.txt"), b"x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_file_output_and_its_neighbours(tmp_path: Path) -> None:
    with StagedOutput(tmp_path / "x.json") as staged:
        staged.write_bytes(staged.out, b"{}")
        staged.write_bytes(f"{staged.out}.categories.json", b"[]")
        staged.write_bytes(staged.beside("images") + "/i.jpg", b"img")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f".x.json{LISTING}",  # lists images/i.jpg: a rerun removes it if it does not write it
        "images",
        "x.json",
        "x.json.categories.json",
    ]


def test_nothing_outside_the_output_folder_is_written(tmp_path: Path) -> None:
    staged = StagedOutput(tmp_path / "ds")
    with pytest.raises(StorageError, match="outside the output"):
        staged.staged(str(tmp_path.parent / "elsewhere.txt"))


def test_s3_objects_appear_only_on_commit(store: Any, bucket: str) -> None:
    with StagedOutput(f"s3://{bucket}/ds/", store=store) as staged:
        staged.write_bytes(staged.location("a", "b.txt"), b"x")
        with staged.open(staged.location("c.txt")) as fh:
            fh.write(b"y")
        part = _keys(store, bucket)[0].split("/")[0]
        assert part.startswith(".ds.") and part.endswith(".part")
        assert _keys(store, bucket) == [f"{part}/ds/a/b.txt", f"{part}/ds/c.txt"]
    assert _keys(store, bucket) == [f"ds/{LISTING}", "ds/a/b.txt", "ds/c.txt"]
    assert store.get_bytes(f"s3://{bucket}/ds/a/b.txt") == b"x"


def test_a_failed_s3_run_leaves_the_earlier_objects_as_they_were(
    store: Any, bucket: str, s3_client: Any
) -> None:
    """It wrote the same keys: S3 has no rename, so they were staged, never replaced."""
    for rel in ("a.txt", "data.yaml", "keep.txt"):
        store.put_bytes(f"s3://{bucket}/ds/{rel}", b"older run")
    before = s3_tree(s3_client, bucket)
    with pytest.raises(RuntimeError), StagedOutput(f"s3://{bucket}/ds", store=store) as staged:
        staged.write_bytes(staged.location("a.txt"), b"x")
        staged.write_json(staged.location("b.json"), {"b": 1})
        staged.write_bytes(staged.location("data.yaml"), b"names: []")
        assert len(_keys(store, bucket)) == 3 + 3
        assert s3_tree(s3_client, bucket).items() >= before.items()
        raise RuntimeError("boom")
    assert s3_tree(s3_client, bucket) == before


def test_s3_objects_are_copied_into_place_the_last_one_last(
    bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    """``data.yaml``, written last, appears only once every label it names is there."""
    store = _CopyLog(s3_client)
    convert_output("yolo", TRUTH, f"s3://{bucket}/y", ConvertOptions(store=store))
    assert len(store.copied) == 40 + 3  # labels, classes.txt, sources.jsonl, data.yaml
    assert store.copied[-1] == f"s3://{bucket}/y/data.yaml"
    assert not [k for k in _keys(store, bucket) if ".part/" in k]


def test_an_s3_summary_is_copied_with_the_output_before_its_last_file(
    bucket: str, s3_client: Any
) -> None:
    """The CLI's summary (``along``) is staged with the output: copied into place before
    ``data.yaml``, and unlisted; a run that fails once it is staged leaves neither."""
    store = _CopyLog(s3_client)
    summary = f"s3://{bucket}/y/summary.json"
    nowhere = "s3://no-such-bucket-here/r.json"  # a second file that cannot be written
    with pytest.raises(StorageError):
        convert_output(
            "yolo",
            TRUTH,
            f"s3://{bucket}/y",
            ConvertOptions(store=store),
            along=lambda result: {summary: b"{}", nowhere: b"{}"},
        )
    assert s3_tree(s3_client, bucket) == {}
    convert_output(
        "yolo",
        TRUTH,
        f"s3://{bucket}/y",
        ConvertOptions(store=store),
        along=lambda r: {summary: b"{}"},
    )
    assert store.copied[-1] == f"s3://{bucket}/y/data.yaml"
    assert summary in store.copied
    assert store.get_bytes(summary) == b"{}"
    listed = orjson.loads(store.get_bytes(f"s3://{bucket}/y/{LISTING}"))["runs"]["yolo"]
    assert "summary.json" not in listed and "data.yaml" in listed


_COPIES = ConvertOptions(copy_images=True, images_dir=str(SAMPLES / "images"))


@pytest.mark.parametrize(
    ("target", "name", "options", "last", "files"),
    [
        ("yolo", "y", ConvertOptions(), "data.yaml", "labels/"),
        # x.json is opened first and names the images beside it: it goes after them
        ("coco", "x.json", _COPIES, "x.json", "images/"),
    ],
)
def test_a_local_rerun_moves_the_file_that_completes_the_output_last(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    name: str,
    options: ConvertOptions,
    last: str,
    files: str,
) -> None:
    """Into an earlier run's folder the move goes file by file: the completing file goes last.

    It went in folder order (and then, for a while, x.json before its last image), so a
    reader polling for it could start on half the files.
    """
    out = tmp_path / name
    convert_output(target, TRUTH, out, options)
    moved: list[str] = []
    replace = Path.replace

    def spy(self: Path, dst: Any) -> Path:
        if Path(dst).is_relative_to(tmp_path):  # a move into place (or the list, written there)
            moved.append(Path(dst).relative_to(tmp_path).as_posix())
        return replace(self, dst)

    monkeypatch.setattr(Path, "replace", spy)
    convert_output(target, TRUTH, out, options)
    inside = [m.removeprefix(f"{name}/") for m in moved if not is_part_name(Path(m).name)]
    assert len([m for m in inside if m.startswith(files)]) == 40
    listing = f"{name}/{LISTING}" if out.suffix != ".json" else f".{name}{LISTING}"
    assert inside[-2:] == [last, listing.removeprefix(f"{name}/")]


def test_a_held_back_file_meeting_a_folder_is_refused_naming_it(tmp_path: Path) -> None:
    out = tmp_path / "y"
    convert_output("yolo", TRUTH, out, ConvertOptions())
    (out / "data.yaml").unlink()
    (out / "data.yaml" / "keep").mkdir(parents=True)
    with pytest.raises(StorageError, match=r"y/data.yaml is a folder; the output has a file"):
        convert_output("yolo", TRUTH, out, ConvertOptions())
    assert [p.name for p in tmp_path.iterdir()] == ["y"]


def test_an_s3_file_output_is_copied_into_place_after_its_images(
    bucket: str, s3_client: Any
) -> None:
    store = _CopyLog(s3_client)
    options = ConvertOptions(store=store, copy_images=True, images_dir=str(SAMPLES / "images"))
    convert_output("coco", TRUTH, f"s3://{bucket}/x.json", options)
    assert len(store.copied) == 40 + 1
    assert store.copied[-1] == f"s3://{bucket}/x.json"


def test_a_copy_into_place_that_fails_says_how_many_were_made(bucket: str, s3_client: Any) -> None:
    store = _CopyLog(s3_client, fail="b.txt")
    with (
        pytest.raises(
            StorageError, match=r"cannot copy 1 of 3 files into place .* already made \(1\) stay"
        ),
        StagedOutput(f"s3://{bucket}/ds", store=store) as staged,
    ):
        for name in ("a.txt", "b.txt", "done.txt"):
            staged.write_bytes(staged.location(name), b"x")
    assert _keys(store, bucket) == ["ds/a.txt"]  # done.txt, last, waits for all the others


def test_an_s3_stage_outside_the_output_folder_is_refused(store: Any, bucket: str) -> None:
    staged = StagedOutput(f"s3://{bucket}/out/ds", store=store)
    with pytest.raises(StorageError, match="outside the output"):
        staged.staged(f"s3://{bucket}/elsewhere.txt")
    assert _keys(store, bucket) == []


def test_a_whole_bucket_output_stages_in_a_hidden_prefix(store: Any, bucket: str) -> None:
    with StagedOutput(f"s3://{bucket}/", store=store) as staged:
        staged.write_bytes(staged.location("a.txt"), b"x")
        [key] = _keys(store, bucket)
        assert key.startswith(".out.") and key.endswith(".part/a.txt")
    assert _keys(store, bucket) == [LISTING, "a.txt"]


@pytest.mark.parametrize("age", [timedelta(days=2), timedelta(hours=1)], ids=["stale", "live"])
def test_a_killed_s3_runs_part_prefix_is_removed_a_day_later(
    age: timedelta, store: Any, bucket: str
) -> None:
    """A live run beside this one writes more often than that: its prefix stays."""
    killed = f".ds.otherhost.4242.{'0' * 16}.part"
    old = [f"{killed}/ds/a.txt", f"{killed}/ds/b/c.txt"]
    mine = [".ds.notes/a.txt", ".ds.x.1.0.part/a.txt", f"ds/{killed}/a.txt"]  # not part prefixes
    mine.append(".backup.2024.0123456789abcdef.part/a.txt")  # shaped like one, of no output here
    _seed(bucket, [*old, *mine], age=age)
    with StagedOutput(f"s3://{bucket}/ds", store=store) as staged:
        staged.write_bytes(staged.location("new.txt"), b"x")
    kept = [] if age > timedelta(days=1) else old
    assert _keys(store, bucket) == sorted([*mine, *kept, f"ds/{LISTING}", "ds/new.txt"])


def test_a_clock_days_ahead_sweeps_no_live_runs_prefix(
    store: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ages are told by S3's clock alone.

    A machine whose clock ran two days ahead deleted the part prefix of a run that wrote
    beside it an hour before, by S3's clock: that run then failed, or lost those files.
    """

    class Ahead(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Ahead:
            return cls.fromtimestamp((datetime.now(tz) + timedelta(days=2)).timestamp(), tz)

    monkeypatch.setattr(staging, "datetime", Ahead, raising=False)
    live = [f".ds.otherhost.4242.{'0' * 16}.part/ds/a.txt"]
    _seed(bucket, live, age=timedelta(hours=1))
    with StagedOutput(f"s3://{bucket}/ds", store=store) as staged:
        staged.write_bytes(staged.location("new.txt"), b"x")
    assert _keys(store, bucket) == sorted([*live, f"ds/{LISTING}", "ds/new.txt"])


def _seed(bucket: str, keys: list[str], *, age: timedelta) -> None:
    """Objects last written ``age`` ago (moto's in-process backend)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for key in keys:
        obj = backend.put_object(bucket, key, b"x")
        obj.last_modified -= age


class _CopyLog(S3Store):
    """A store that logs its copies into place, and can fail the one of a key ending so."""

    def __init__(self, client: Any, fail: str | None = None) -> None:
        super().__init__(client)
        self.fail = fail
        self.copied: list[str] = []

    def copy(self, src: str, dst: str, *, size: int | None = None) -> None:
        if self.fail and dst.endswith(self.fail):
            raise StorageError(f"copying {src} to {dst}: access denied (AccessDenied)")
        super().copy(src, dst, size=size)
        self.copied.append(dst)


def test_a_failed_s3_to_s3_conversion_leaves_no_object(store: Any, bucket: str) -> None:
    rows = []
    for i in range(3):
        ref = f"s3://{bucket}/pets/p{i}.jpg"
        if i != 2:  # the third image is missing: its copy fails
            store.put_bytes(ref, b"image")
        rows.append(
            {
                "source-ref": ref,
                "pet": 0,
                "pet-metadata": {
                    "class-name": "cat",
                    "type": "groundtruth/image-classification",
                    "creation-date": "2024-01-01T00:00:00",
                },
            }
        )
    manifest = f"s3://{bucket}/job/output.manifest"
    store.put_bytes(manifest, b"\n".join(orjson.dumps(r) for r in rows))
    before = _keys(store, bucket)
    with pytest.raises(ConversionError, match="1 of 3 image copies"):
        convert_output(
            "class-folders", manifest, f"s3://{bucket}/train/", ConvertOptions(store=store)
        )
    assert _keys(store, bucket) == before


def test_a_staged_object_gone_by_the_commit_fails_the_run(
    store: Any, bucket: str, s3_client: Any
) -> None:
    """Deleted under the run (a lifecycle rule, a sweep by a clock a day ahead, by hand).

    The commit copied the others and listed them: the run exited 0 without b.txt, and removed
    the earlier run's b.txt as one it no longer wrote.
    """
    for rel in ("a.txt", "b.txt", LISTING):
        body = orjson.dumps({"runs": {"output": ["a.txt", "b.txt"]}}) if rel == LISTING else b"old"
        store.put_bytes(f"s3://{bucket}/ds/{rel}", body)
    before = s3_tree(s3_client, bucket)
    with (
        pytest.raises(StorageError, match=r"1 of 2 staged objects are gone \(such as .*b\.txt\)"),
        StagedOutput(f"s3://{bucket}/ds", store=store) as staged,
    ):
        for name in ("a.txt", "b.txt"):
            staged.write_bytes(staged.location(name), b"new")
        [gone] = [k for k in _keys(store, bucket) if ".part/" in k and k.endswith("b.txt")]
        s3_client.delete_object(Bucket=bucket, Key=gone)
    assert s3_tree(s3_client, bucket) == before


@pytest.mark.parametrize("out", ["..", "../", "../sub/.."])
def test_an_output_named_by_dot_dot_is_that_folder(
    out: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``yolo -o ..`` wrote its dataset into the working folder, unstaged and unlisted."""
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    convert_output("yolo", TRUTH, out)
    assert list((tmp_path / "sub").iterdir()) == []
    assert (tmp_path / "data.yaml").is_file()
    assert len(list((tmp_path / "labels").rglob("*.txt"))) == 40
    assert (tmp_path / LISTING).is_file()


def test_a_listed_file_the_run_reads_by_another_name_stays(tmp_path: Path) -> None:
    """The input manifest an earlier run wrote, given through a hard link."""
    out = tmp_path / "ds"
    out.mkdir()
    for name in ("in.manifest", "old.txt"):
        (out / name).write_bytes(b"an earlier run's")
    (out / LISTING).write_bytes(orjson.dumps({"runs": {"output": ["in.manifest", "old.txt"]}}))
    (tmp_path / "link.manifest").hardlink_to(out / "in.manifest")
    with StagedOutput(out, reads=[tmp_path / "link.manifest"]) as staged:
        staged.write_bytes(staged.location("new.txt"), b"x")
    assert sorted(p.name for p in out.iterdir()) == [LISTING, "in.manifest", "new.txt"]


def test_the_folders_of_stale_files_are_compared_with_the_inputs_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path takes most of a millisecond to compare: 100,000 stale images took minutes."""
    out = tmp_path / "ds"
    (out / "images").mkdir(parents=True)
    stale = [f"images/{i}.jpg" for i in range(500)]
    for rel in stale:
        (out / rel).write_bytes(b"")
    (out / LISTING).write_bytes(orjson.dumps({"runs": {"output": stale}}))
    compared: list[str] = []

    def inside(location: str, folder: str) -> bool:
        compared.append(location)
        return False

    monkeypatch.setattr(staging, "inside_location", inside)
    with StagedOutput(out, reads=[tmp_path / "in.manifest", tmp_path / "images"]) as staged:
        staged.write_bytes(staged.location("new.txt"), b"x")
    assert compared == [str(out / "images")] * 2
    assert not (out / "images").exists()


def test_a_stale_name_spelled_otherwise_on_disk_is_not_removed(tmp_path: Path) -> None:
    """On a case-insensitive disk IMG_1.txt opens this run's img_1.txt: only exact names go.

    This disk is case-sensitive, so the rule is checked where it decides: by the folder's
    own listing, which spells each name as it is.
    """
    from gt_toolkit.convert.staging import _FolderNames

    (tmp_path / "img_1.txt").write_bytes(b"this run's")
    names = _FolderNames()
    assert names.has(tmp_path / "img_1.txt")
    assert not names.has(tmp_path / "IMG_1.txt")
    assert not names.has(tmp_path / "gone" / "img_1.txt")


@given(st.text(alphabet="ab./é", max_size=12))
def test_a_records_name_is_made_absolute_as_abspath_makes_it(name: str) -> None:
    """The per-record shortcut (StagedOutput.read) and the full way agree on every name."""
    from gt_toolkit.convert.staging import _absolute, _plain_absolute

    assume(name)
    assert _plain_absolute(name, str(Path.cwd()).rstrip("/")) == str(_absolute(name))


def _tree(root: Path) -> dict[str, bytes | str]:
    """Every file under ``root`` by its bytes, and every link by where it leads."""
    return {
        p.relative_to(root).as_posix(): str(p.readlink()) if p.is_symlink() else p.read_bytes()
        for p in root.rglob("*")
        if p.is_symlink() or p.is_file()
    }


@pytest.mark.parametrize("leads", ["nowhere", "to another label", "to an input image"])
def test_a_file_of_the_output_that_is_a_link_it_cannot_follow_fails_the_run_before_anything_moves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], leads: str
) -> None:
    """A staged file whose name in the output folder is a link is moved in where the link
    leads. One to nowhere was found only mid-move: the run failed with the new summary
    beside the earlier labels. One to another label the run writes (a tool that replaces
    duplicates with links leaves them) put both labels in one file: img_001's were gone,
    exit 0. One to an image the run reads overwrote that input image with another's bytes,
    exit 0. Each is refused in one line, and nothing moves."""
    from gt_toolkit.cli import main

    raw = tmp_path / "raw"
    shutil.copytree(SAMPLES / "images", raw)
    out = tmp_path / "yolo"
    args = ["yolo", str(TRUTH), "-o", str(out), "--validation-fraction", "0", "--copy-images"]
    args += ["--images-dir", str(raw), "--images-prefix", "s3://gt-toolkit-demo/images/"]
    assert main(args) == 0
    for earlier in [*(out / "labels" / "train").iterdir(), out / "summary.json"]:
        earlier.write_text("earlier\n")  # an earlier run's output, to stay as it is
    if leads == "to an input image":
        link, to = out / "images" / "train" / "img_001.jpg", raw / "img_002.jpg"
        said = f"cannot write {link} (a link to {to}): the run reads that file"
    else:
        link = out / "labels" / "train" / "img_001.txt"
        to = link.parent / "img_002.txt" if leads == "to another label" else tmp_path / "gone/x"
        said = (
            f"cannot write {link} (a link to {to}): the run writes {to} too"
            if to.exists()
            else f"cannot write {link}: it is a link to {to}, whose folder {to.parent} does not"
        )
    link.unlink()
    link.symlink_to(to)
    before = _tree(tmp_path)
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("leads", ["a label", "a summary in the output"])
def test_a_file_of_the_output_that_is_a_link_to_a_file_not_there_yet_is_written_through(
    tmp_path: Path, leads: str
) -> None:
    """A label (or the summary) whose name in the output is a link to a file not there yet,
    in a folder that is (a run killed as it replaced that file leaves one): refused before,
    "it is a link to shared/img_001.txt, which does not exist", every rerun. Written where
    the link leads now, creating that file, as a shell's > does; the link stays."""
    from gt_toolkit.cli import main

    out = tmp_path / "yolo"
    args = ["yolo", str(TRUTH), "-o", str(out), "--validation-fraction", "0"]
    assert main(args) == 0
    shared = tmp_path / "shared"
    shared.mkdir()
    if leads == "a label":
        link, to = out / "labels" / "train" / "img_001.txt", shared / "img_001.txt"
    else:
        link, to = out / "summary.json", shared / "summary.json"
    expected = link.read_bytes()
    link.unlink()
    link.symlink_to(os.path.relpath(to, link.parent))  # relative, as ln -s ../x makes
    for _ in range(2):  # the link to nowhere, then the file it created
        assert main(args) == 0
        assert link.is_symlink() and to.read_bytes() == expected
        assert not [p for p in tmp_path.rglob("*") if is_part_name(p.name)]
    assert sorted(p.name for p in shared.iterdir()) == [to.name]


@pytest.fixture
def other_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on another disk than ``tmp_path`` (/dev/shm), or where renames into or out of
    it fail as the kernel's across disks do (``EXDEV``)."""
    shm = Path("/dev/shm")
    here = tmp_path.stat().st_dev
    if shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != here:
        real = Path(tempfile.mkdtemp(dir=shm))  # another disk indeed
    else:  # no second disk here: the kernel's answer to a rename across disks is made
        real = tmp_path / "other-disk"
        real.mkdir()
        rename = os.rename

        def across(src: Any, dst: Any, **kw: Any) -> None:
            inside = Path(os.path.realpath(dst)).is_relative_to(real)
            if inside != Path(os.path.realpath(src)).is_relative_to(real):
                raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(src), None, str(dst))
            rename(src, dst, **kw)

        def device(path: Path) -> int:
            return 2 if Path(os.path.realpath(path)).is_relative_to(real) else 1

        monkeypatch.setattr(os, "rename", across)
        monkeypatch.setattr(os, "replace", across)
        monkeypatch.setattr(staging, "_device", device)
    try:
        yield real
    finally:
        shutil.rmtree(real, ignore_errors=True)


def test_an_output_folder_that_is_a_link_to_another_disk_is_written_there(
    tmp_path: Path, other_disk: Path
) -> None:
    """``-o ds``, a link to a folder on another disk: the stage is made beside the link, and
    each staged file was renamed into the folder the link leads to: 'Invalid cross-device
    link', exit 1, every run. Across disks the file is copied beside its place first."""
    from gt_toolkit.cli import main

    real = other_disk
    (tmp_path / "ds").symlink_to(real)
    args = ["yolo", str(TRUTH), "-o", str(tmp_path / "ds"), "--validation-fraction", "0"]
    for _ in range(2):  # into an empty folder, then over the earlier run's files
        assert main(args) == 0
        labels = sorted(p.name for p in (real / "labels" / "train").iterdir())
        assert len(labels) == 40 and (real / "data.yaml").is_file()
        assert not [p for p in real.rglob("*") if is_part_name(p.name)]
    assert (tmp_path / "ds").is_symlink()
    assert [p.name for p in tmp_path.iterdir() if p != real] == ["ds"]  # no stage left


@pytest.mark.parametrize("left", ["labels/train/.img_001.txt", ".ds"])
def test_a_copy_a_killed_run_left_on_the_other_disk_is_swept_by_the_next_run(
    tmp_path: Path, other_disk: Path, left: str
) -> None:
    """A run killed (kill -9) while it copied labels into ``-o ds`` on another disk leaves
    ``labels/train/.img_001.txt.<host>.<pid>.<token>.part`` (copied file by file) or
    ``.ds.<host>.<pid>.<token>.part/`` (the tree copied whole): no atomic write of a later run
    goes into ``labels/train`` (the stage is beside the link), so none swept it, ever. The
    copies into it sweep it first now, as every temporary name's folder is swept."""
    from gt_toolkit.cli import main

    real = other_disk
    (tmp_path / "ds").symlink_to(real)
    args = ["yolo", str(TRUTH), "-o", str(tmp_path / "ds"), "--validation-fraction", "0"]
    assert main(args) == 0
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    name = part_name(Path(left).name).replace(f".{os.getpid()}.", f".{dead.stdout.strip()}.")
    leftover = real / Path(left).parent / name
    if left == ".ds":  # the whole tree, half copied
        (leftover / "ds" / "labels" / "train").mkdir(parents=True)
        (leftover / "ds" / "labels" / "train" / "img_001.txt").write_text("half a copy")
    else:
        leftover.write_text("half a copy")
    files._swept.clear()  # a new process: no folder swept yet
    assert main(args) == 0
    assert not [p for p in real.rglob("*") if is_part_name(p.name)]
    assert len(list((real / "labels" / "train").iterdir())) == 40


def test_a_ctrl_c_while_the_output_is_copied_to_another_disk_leaves_the_earlier_output(
    tmp_path: Path, other_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """-o ds, a link to a folder on another disk, over an earlier run's dataset: each label
    was copied into place one by one, and a Ctrl-C among the copies (exit 130) left 8 new
    labels beside 32 of the earlier run's. The new tree is copied whole onto that disk first
    now, and only then renamed into place: stopped in the copy, the earlier output stays
    whole, and no copy is left there."""
    from gt_toolkit.cli import main

    real = other_disk
    (tmp_path / "ds").symlink_to(real)
    args = ["yolo", str(TRUTH), "-o", str(tmp_path / "ds"), "--validation-fraction", "0"]
    assert main(args) == 0
    for label in (real / "labels" / "train").iterdir():
        label.write_text("earlier\n")
    before = {p.relative_to(real): p.read_bytes() for p in real.rglob("*") if p.is_file()}
    copyfile, copies = shutil.copyfile, []

    def interrupted(src: Any, dst: Any, **kw: Any) -> Any:
        copies.append(src)
        if len(copies) == 10:
            raise KeyboardInterrupt
        return copyfile(src, dst, **kw)

    monkeypatch.setattr(shutil, "copyfile", interrupted)
    assert main(args) == 130
    monkeypatch.setattr(shutil, "copyfile", copyfile)
    assert {p.relative_to(real): p.read_bytes() for p in real.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir() if p != real] == ["ds"]  # no stage left
    assert main(args) == 0
    assert "earlier\n" not in {p.read_text() for p in (real / "labels" / "train").iterdir()}


@pytest.mark.parametrize(
    ("what", "said"),
    [
        ("a file", "{O}/labels is a file; the output has a folder of that name"),
        ("a link to nowhere", "{O}/labels is a link to {T}/gone, which does not exist; the"),
        ("a folder", "{O}/labels/train/img_001.txt is a folder; the output has a file of"),
    ],
)
def test_a_place_of_the_other_shape_fails_the_run_before_anything_moves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, said: str
) -> None:
    """The merge met a file (or a link leading nowhere) where the output has the folder
    labels, or a folder where it has a label file, only on its way: the run failed with the
    files merged before it in place (the new summary beside the earlier labels). Refused
    now, before any file moves."""
    from gt_toolkit.cli import main

    out = tmp_path / "ds"
    args = ["yolo", str(TRUTH), "-o", str(out), "--validation-fraction", "0"]
    assert main(args) == 0
    (out / "summary.json").write_text("earlier\n")
    if what == "a folder":
        (out / "labels" / "train" / "img_001.txt").unlink()
        (out / "labels" / "train" / "img_001.txt").mkdir()
    else:
        shutil.rmtree(out / "labels")
        if what == "a file":
            (out / "labels").write_text("a user's file\n")
        else:
            (out / "labels").symlink_to(tmp_path / "gone")
    before = _tree(tmp_path)
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    said = said.replace("{O}", str(out)).replace("{T}", str(tmp_path))
    assert said in err and err.count("\n") == 1, err
    assert _tree(tmp_path) == before


def test_a_file_of_the_output_linked_into_a_folder_this_user_may_not_write_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """labels/train/img_001.txt, a link into a folder this user may not write: the move
    there failed mid-merge (for root, as here, it went through into that folder). It is
    asked before anything moves, as a summary link is (check_writable's probe there)."""
    from gt_toolkit.cli import main

    out = tmp_path / "yolo"
    args = ["yolo", str(TRUTH), "-o", str(out), "--validation-fraction", "0"]
    assert main(args) == 0
    (out / "summary.json").write_text("earlier\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "img_001.txt").write_text("shared\n")
    link = out / "labels" / "train" / "img_001.txt"
    link.unlink()
    link.symlink_to(shared / "img_001.txt")
    before = _tree(tmp_path)
    unwritable_folder(shared, monkeypatch)
    try:
        capsys.readouterr()
        assert main(args) == 1
        err = capsys.readouterr().err
        real = os.path.realpath(shared / "img_001.txt")
        said = f"cannot write {link} (a link to {real}): Permission denied"
        assert said in err and err.count("\n") == 1, err
        assert _tree(tmp_path) == before
    finally:
        shared.chmod(0o755)


def test_a_ctrl_c_while_a_linked_subfolder_is_copied_across_leaves_the_earlier_output(
    tmp_path: Path, other_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ds/Annotations and ds/JPEGImages links to folders on another disk (a dataset kept on a
    big disk): the merge copied one of them across and renamed its files into place, and
    only then copied the other, minutes with images; a Ctrl-C in that copy left the new
    annotations beside the earlier images. Every copy across disks is made before anything
    moves in now."""
    out = tmp_path / "ds"
    out.mkdir()
    for folder in ("Annotations", "JPEGImages"):
        (other_disk / folder).mkdir()
        (out / folder).symlink_to(other_disk / folder)
    for name in ("Annotations/a.xml", "JPEGImages/a.jpg", "JPEGImages/b.jpg"):
        (out / name).write_text("earlier\n")
    before = _followed_tree(out)
    copyfile, into = shutil.copyfile, set()

    def interrupted(src: Any, dst: Any, **kw: Any) -> Any:
        into.add(Path(dst).parts[-3])  # the part folder the tree is copied into
        if len(into) == 2:  # the second folder's copy
            raise KeyboardInterrupt
        return copyfile(src, dst, **kw)

    monkeypatch.setattr(shutil, "copyfile", interrupted)
    with pytest.raises(KeyboardInterrupt), StagedOutput(out) as staged:
        for name in ("a.jpg", "b.jpg"):
            staged.write_bytes(staged.location("JPEGImages", name), b"new\n")
        for name in ("a.xml", "b.xml"):  # b.xml, the last file, moves in last
            staged.write_bytes(staged.location("Annotations", name), b"new\n")
    assert _followed_tree(out) == before
    assert not [p for p in other_disk.rglob("*") if is_part_name(p.name)]
    monkeypatch.setattr(shutil, "copyfile", copyfile)
    with StagedOutput(out) as staged:
        for name in ("Annotations/a.xml", "JPEGImages/a.jpg", "JPEGImages/b.jpg"):
            staged.write_bytes(staged.location(*name.split("/")), b"new\n")
    assert _followed_tree(out) == {name: b"new\n" for name in before} | {
        Path(LISTING): (out / LISTING).read_bytes()
    }
    assert (out / "JPEGImages").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def _followed_tree(folder: Path) -> dict[Path, bytes]:
    """The files under ``folder``, its links to folders followed (``rglob`` follows none)."""
    return {
        Path(top, name).relative_to(folder): Path(top, name).read_bytes()
        for top, _dirs, names in os.walk(folder, followlinks=True)
        for name in names
    }


@pytest.mark.parametrize("sub", ["", "labels"], ids=["top", "in-a-folder"])
def test_a_ctrl_c_while_linked_files_are_copied_across_leaves_the_earlier_output(
    tmp_path: Path, other_disk: Path, monkeypatch: pytest.MonkeyPatch, sub: str
) -> None:
    """Labels linked one by one into a shared folder on another disk: each was copied beside
    the file its link leads to and renamed onto it as the merge met it, so a Ctrl-C among
    the copies left some shared labels new and the others the earlier run's. Each is
    copied there before anything moves in now."""
    out = tmp_path / "ds"
    (out / sub).mkdir(parents=True)  # a folder of the output on the stage's disk, or none
    names = [f"img_{i:03}.txt" for i in range(4)]
    for name in names:
        (other_disk / name).write_text("earlier\n")
        (out / sub / name).symlink_to(other_disk / name)
    before = _followed_tree(out)
    copyfile, copies = shutil.copyfile, []

    def interrupted(src: Any, dst: Any, **kw: Any) -> Any:
        copies.append(dst)
        if len(copies) == 3:  # past the first rename, were copies made as the merge met them
            raise KeyboardInterrupt
        return copyfile(src, dst, **kw)

    monkeypatch.setattr(shutil, "copyfile", interrupted)
    with pytest.raises(KeyboardInterrupt), StagedOutput(out) as staged:
        for name in names:
            staged.write_bytes(staged.location(*filter(None, [sub, name])), b"new\n")
    assert _followed_tree(out) == before
    assert sorted(p.name for p in other_disk.iterdir()) == names
    monkeypatch.setattr(shutil, "copyfile", copyfile)
    with StagedOutput(out) as staged:
        for name in names:
            staged.write_bytes(staged.location(*filter(None, [sub, name])), b"new\n")
    assert {p.name: p.read_bytes() for p in other_disk.iterdir()} == dict.fromkeys(names, b"new\n")
    assert all((out / sub / name).is_symlink() for name in names)
