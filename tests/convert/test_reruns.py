"""A rerun into an earlier run's output replaces the files that run wrote, and only those.

A trainer that finds the labels (or copied images) of items the user removed trains on them,
so a rerun removes what the earlier run listed and it did not write again; a file of the
user's in the output is never removed.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit.cli import main
from gt_toolkit.convert import ConvertOptions, convert_output
from gt_toolkit.convert.staging import StagedOutput
from gt_toolkit.errors import ConversionError
from tests.helpers import REPO, SAMPLES, file_tree, s3_keys, s3_tree

LISTING = ".gt-toolkit-files.json"  # the documented name: users and other tools may read it
TRUTH = SAMPLES / "truth.manifest"  # 40 images
IMAGES = [
    "--images-dir",
    str(SAMPLES / "images"),
    "--images-prefix",
    "s3://gt-toolkit-demo/images/",
]
COPY = ConvertOptions(
    copy_images=True,
    images_dir=str(SAMPLES / "images"),
    images_prefix="s3://gt-toolkit-demo/images/",
)


def _small(tmp_path: Path, lines: int = 3, start: int = 0) -> Path:
    """``lines`` images of the samples' manifest, from image ``start`` on."""
    path = tmp_path / f"{start}-{lines}.manifest"
    kept = TRUTH.read_bytes().splitlines(keepends=True)[start : start + lines]
    path.write_bytes(b"".join(kept))
    return path


def _convert(target: str, manifest: Path, out: Path | str, *flags: str) -> None:
    assert main([target, str(manifest), "-o", str(out), *flags]) == 0


def _tree(root: Path) -> set[str]:
    """Every file and folder under ``root`` but the run's list and summary."""
    skip = {LISTING, "summary.json"}
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.name not in skip}


def _listed(listing: Path) -> list[str]:
    """Every file the list names, whatever kind of run wrote it."""
    runs: dict[str, list[str]] = json.loads(listing.read_bytes())["runs"]
    return [name for files in runs.values() for name in files]


def test_a_smaller_rerun_leaves_no_label_of_an_image_it_no_longer_has(tmp_path: Path) -> None:
    out = tmp_path / "y"
    _convert("yolo", TRUTH, out)
    assert len(list(out.rglob("*.txt"))) == 41  # 40 labels and classes.txt
    _convert("yolo", _small(tmp_path), out)
    assert len(list(out.rglob("*.txt"))) == 4  # was 41: 38 labels of images no longer there


def test_another_target_into_the_same_folder_keeps_the_first_targets_files(
    tmp_path: Path,
) -> None:
    """Each kind of run replaces its own files: ``augmented`` and ``yolo`` share a folder."""
    out = tmp_path / "ds"
    _convert("augmented", TRUTH, out)
    channels = {name: (out / name).read_bytes() for name in ("train.manifest", "channels.json")}
    _convert("yolo", TRUTH, out)
    _convert("yolo", _small(tmp_path), out)  # a rerun of yolo: yolo's stale labels go
    assert {name: (out / name).read_bytes() for name in channels} == channels
    assert len(list(out.rglob("*.txt"))) == 4
    runs = json.loads((out / LISTING).read_bytes())["runs"]
    assert sorted(runs) == ["augmented", "yolo"]
    assert "channels.json" in runs["augmented"] and "data.yaml" in runs["yolo"]


@pytest.mark.parametrize("target", ["yolo", "voc", "od-json", "jumpstart-od", "coco"])
def test_a_rerun_leaves_the_folder_a_fresh_run_writes(target: str, tmp_path: Path) -> None:
    """Labels and copied images alike, and no folder the removals left empty."""
    small = _small(tmp_path)
    _convert(target, TRUTH, tmp_path / "rerun", "--copy-images", *IMAGES)
    _convert(target, small, tmp_path / "rerun", "--copy-images", *IMAGES)
    _convert(target, small, tmp_path / "fresh", "--copy-images", *IMAGES)
    assert _tree(tmp_path / "rerun") == _tree(tmp_path / "fresh")
    assert sorted(_listed(tmp_path / "rerun" / LISTING)) == sorted(
        p for p in _tree(tmp_path / "fresh") if (tmp_path / "fresh" / p).is_file()
    )


def test_the_users_own_files_in_the_output_stay(tmp_path: Path) -> None:
    out = tmp_path / "voc"
    _convert("voc", TRUTH, out)
    mine = {
        "notes.md": b"mine",
        "Annotations/extra.xml": b"<mine/>",  # named like a label, in a folder of labels
        "Annotations/img_039.xml.bak": b"a copy the user made",
        "mine/a.txt": b"mine",
    }
    for rel, data in mine.items():
        (out / rel).parent.mkdir(exist_ok=True)
        (out / rel).write_bytes(data)
    _convert("voc", _small(tmp_path), out)
    assert {rel: (out / rel).read_bytes() for rel in mine} == mine
    assert len(list((out / "Annotations").glob("*.xml"))) == 3 + 1


def test_a_listed_path_outside_the_output_is_never_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out, elsewhere = tmp_path / "ds", tmp_path / "elsewhere"
    (out / "was-a-file").mkdir(parents=True)
    (out / "was-a-file" / "mine.txt").write_bytes(b"mine")
    elsewhere.mkdir()
    (elsewhere / "a.txt").write_bytes(b"not the output's")
    (out / "link").symlink_to(elsewhere)  # inside by name, outside on disk
    (tmp_path / "outside.txt").write_bytes(b"not the output's")
    listed = ["../outside.txt", str(tmp_path / "outside.txt"), "x/../../outside.txt"]
    listed += ["old.txt\u0000", "link/a.txt", "was-a-file", "old.txt"]  # no file has a NUL
    (out / LISTING).write_text(json.dumps({"runs": {"output": listed}}))
    (out / "old.txt").write_bytes(b"an earlier run's")
    with caplog.at_level(logging.WARNING), StagedOutput(out) as staged:
        staged.write_bytes(staged.location("new.txt"), b"this run's")
    assert not (out / "old.txt").exists()  # the one plain path is followed
    assert (tmp_path / "outside.txt").read_bytes() == b"not the output's"
    assert (elsewhere / "a.txt").read_bytes() == b"not the output's"
    assert (out / "was-a-file" / "mine.txt").read_bytes() == b"mine"
    [warning] = caplog.messages
    assert "4 listed paths outside the output ignored" in warning
    assert _listed(out / LISTING) == ["new.txt"]


def test_a_file_outputs_list_reaches_only_the_folders_it_writes_beside_it(
    tmp_path: Path,
) -> None:
    """``coco -o x.json`` lists ``images/``; its list sits in a folder of the user's."""
    for rel in ("notes.txt", "Documents/thesis.tex", "images/old.jpg"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    listed = ["notes.txt", "Documents/thesis.tex", "x.json", "images/old.jpg"]
    (tmp_path / f".x.json{LISTING}").write_text(json.dumps({"runs": {"output": listed}}))
    with StagedOutput(tmp_path / "x.json") as staged:
        staged.write_bytes(staged.out, b"{}")
        staged.write_bytes(staged.beside("images") + "/new.jpg", b"img")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        f".x.json{LISTING}",
        "Documents",
        "Documents/thesis.tex",
        "images",
        "images/new.jpg",
        "notes.txt",
        "x.json",
    ]


def test_coco_file_output_reruns_replace_its_copied_images(tmp_path: Path) -> None:
    out, images = tmp_path / "x.json", tmp_path / "images"
    convert_output("coco", TRUTH, out, COPY)
    assert len(list(images.iterdir())) == 40
    convert_output("coco", _small(tmp_path), out, COPY)
    assert len(list(images.iterdir())) == 3
    convert_output("coco", _small(tmp_path), out, ConvertOptions())  # no copies now
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0-3.manifest", "x.json"]


@pytest.mark.parametrize("via", ["path", "symlink"])
def test_a_rerun_leaves_the_images_it_reads(via: str, tmp_path: Path) -> None:
    """``--images-dir`` at the images an earlier ``--copy-images`` run wrote: the run's input.

    The rerun did not copy them again, so they were stale: it removed all 40 images it had
    just read and that its x.json names (``coco -o x.json --images-dir images``).
    """
    out, images = tmp_path / "x.json", tmp_path / "images"
    convert_output("coco", TRUTH, out, COPY)
    if via == "symlink":
        images = tmp_path / "link"
        images.symlink_to(tmp_path / "images")
    options = replace(COPY, copy_images=False, images_dir=str(images))
    convert_output("coco", TRUTH, out, options)
    assert len(list((tmp_path / "images").iterdir())) == 40
    assert not (tmp_path / f".x.json{LISTING}").exists()  # read by a run: the user's now
    convert_output("coco", TRUTH, out)
    assert len(list((tmp_path / "images").iterdir())) == 40


@pytest.mark.parametrize(
    "listing",
    [b"{not json", b'{"runs": {"yolo": "labels/train/img_001.txt"}}', b"[]", None],
    ids=["not-json", "not-a-list", "not-an-object", "a-folder"],
)
def test_an_unreadable_list_removes_nothing(
    listing: bytes | None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "y"
    convert_output("yolo", TRUTH, out)
    (out / LISTING).unlink()
    if listing is None:
        (out / LISTING).mkdir()
    else:
        (out / LISTING).write_bytes(listing)
    with caplog.at_level(logging.WARNING):
        convert_output("yolo", _small(tmp_path), out)
    assert len(list(out.rglob("*.txt"))) == 41
    assert f"{out / LISTING}: cannot read it" in caplog.messages[0]
    if listing is None:  # and this run's list cannot be written there either
        assert "a later run into this output will not remove" in caplog.messages[1]
    else:
        assert len(caplog.messages) == 1


def test_an_unreadable_list_is_one_warning_line_on_stderr(tmp_path: Path) -> None:
    out = tmp_path / "y"
    out.mkdir()
    (out / LISTING).write_bytes(b"{not json")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "gt_toolkit", "yolo", str(_small(tmp_path)), "-o", str(out)]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if LISTING in line]
    assert len(said) == 1 and said[0].startswith("warning: "), result.stderr
    assert "none of the files it lists was removed" in said[0]
    assert _listed(out / LISTING)  # replaced by this run's


def test_a_failed_run_leaves_the_earlier_output_and_its_list(tmp_path: Path) -> None:
    out = tmp_path / "y"
    _convert("yolo", TRUTH, out, "--copy-images", *IMAGES)
    before = file_tree(out)
    broken = tmp_path / "broken.manifest"  # its fourth image does not exist: the copy fails
    lines = _small(tmp_path).read_bytes() + TRUTH.read_bytes().splitlines(keepends=True)[3]
    broken.write_bytes(lines.replace(b"img_003.jpg", b"img_999.jpg"))
    with pytest.raises(ConversionError, match="image cop"):
        convert_output("yolo", broken, out, COPY)
    assert file_tree(out) == before
    assert LISTING in before


def test_an_s3_rerun_removes_the_earlier_runs_objects_and_no_other(
    store: Any, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    mine = "y/labels/train/mine.txt"
    store.put_bytes(f"s3://{bucket}/{mine}", b"the user's")
    convert_output("yolo", TRUTH, f"s3://{bucket}/y/", ConvertOptions(store=store))
    assert len([k for k in s3_keys(s3_client, bucket) if k.startswith("y/labels/")]) == 41
    convert_output("yolo", _small(tmp_path), f"s3://{bucket}/y", ConvertOptions(store=store))
    keys = s3_keys(s3_client, bucket)
    assert [k for k in keys if k.startswith("y/labels/")] == [
        "y/labels/train/img_001.txt",
        "y/labels/train/img_002.txt",
        mine,
        "y/labels/val/img_000.txt",
    ]
    listed = json.loads(store.get_bytes(f"s3://{bucket}/y/{LISTING}"))["runs"]["yolo"]
    assert [f"y/{rel}" for rel in listed] == [k for k in keys if k not in (mine, f"y/{LISTING}")]


@pytest.mark.parametrize("target", ["yolo", "voc", "od-json", "jumpstart-od", "coco"])
def test_an_s3_rerun_leaves_the_objects_a_fresh_run_writes(
    target: str, store: Any, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    """The same keys with the same bytes, and no staged object left over."""
    options, small = replace(COPY, store=store), _small(tmp_path)
    convert_output(target, TRUTH, f"s3://{bucket}/rerun", options)
    convert_output(target, small, f"s3://{bucket}/rerun/", options)
    convert_output(target, small, f"s3://{bucket}/fresh", options)
    tree = s3_tree(s3_client, bucket)
    rerun, fresh = (
        {k.split("/", 1)[1]: v for k, v in tree.items() if k.startswith(f"{d}/")}
        for d in ("rerun", "fresh")
    )
    assert rerun == fresh
    assert sorted(tree) == sorted([*(f"rerun/{k}" for k in rerun), *(f"fresh/{k}" for k in fresh)])
    assert sorted(json.loads(rerun[LISTING])["runs"][target]) == sorted(set(fresh) - {LISTING})


def test_a_failed_s3_rerun_leaves_every_earlier_object_as_it_was(
    store: Any, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    """The failed run wrote img_000's label and image too, before its img_999 copy failed."""
    out, options = f"s3://{bucket}/y", replace(COPY, store=store)
    convert_output("yolo", _small(tmp_path, 5), out, options)
    before = s3_tree(s3_client, bucket)
    broken = tmp_path / "broken.manifest"
    broken.write_bytes(_small(tmp_path, 3).read_bytes().replace(b"img_002", b"img_999"))
    with pytest.raises(ConversionError, match="image cop"):
        convert_output("yolo", broken, out, options)
    assert s3_tree(s3_client, bucket) == before


def _shared_images_rerun(tmp_path: Path, folder: str, options: ConvertOptions) -> None:
    """``a.json`` (images 0-3) and ``b.json`` (1-2) share ``images/``; ``a.json`` is rerun on 0."""
    for name, manifest in (("a", _small(tmp_path, 4)), ("b", _small(tmp_path, 2, start=1))):
        convert_output("coco", manifest, f"{folder}/{name}.json", options)
    convert_output("coco", _small(tmp_path, 1), f"{folder}/a.json", options)


def test_an_image_another_file_output_lists_stays(tmp_path: Path) -> None:
    _shared_images_rerun(tmp_path, str(tmp_path / "c"), COPY)
    images = sorted(p.name for p in (tmp_path / "c" / "images").iterdir())
    assert images == ["img_000.jpg", "img_001.jpg", "img_002.jpg"]  # img_003 was a's alone


def test_an_s3_file_outputs_rerun_replaces_its_copied_images(
    store: Any, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    _shared_images_rerun(tmp_path, f"s3://{bucket}/c", replace(COPY, store=store))
    assert s3_keys(s3_client, bucket) == [
        f"c/.a.json{LISTING}",
        f"c/.b.json{LISTING}",
        "c/a.json",
        "c/b.json",
        "c/images/img_000.jpg",
        "c/images/img_001.jpg",
        "c/images/img_002.jpg",
    ]


def test_a_failed_s3_run_leaves_the_earlier_list(
    store: Any, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    out, options = f"s3://{bucket}/y", replace(COPY, store=store)
    convert_output("yolo", _small(tmp_path, 5), out, options)
    listing = store.get_bytes(f"{out}/{LISTING}")
    broken = tmp_path / "broken.manifest"
    broken.write_bytes(_small(tmp_path, 2).read_bytes().replace(b"img_001", b"img_999"))
    with pytest.raises(ConversionError, match="image cop"):
        convert_output("yolo", broken, out, options)
    assert store.get_bytes(f"{out}/{LISTING}") == listing
    # img_002..004, which the failed run did not write, are still there
    assert {"y/images/train/img_002.jpg", "y/labels/train/img_002.txt"} <= set(
        s3_keys(s3_client, bucket)
    )


def test_an_s3_rerun_leaves_the_images_its_records_name(
    store: Any, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    """A manifest of the images an earlier ``--copy-images`` run wrote, converted without copies.

    The rerun removed the three images its own records (and its x.json's ``source_ref``) name.
    """
    out = f"s3://{bucket}/c/x.json"
    convert_output("coco", _small(tmp_path), out, replace(COPY, store=store))
    images = [key for key in s3_keys(s3_client, bucket) if key.startswith("c/images/")]
    relabeled = tmp_path / "relabeled.manifest"
    relabeled.write_bytes(
        _small(tmp_path)
        .read_bytes()
        .replace(b"gt-toolkit-demo/images/", f"{bucket}/c/images/".encode())
    )
    convert_output("coco", relabeled, out, ConvertOptions(store=store))
    assert s3_keys(s3_client, bucket) == [*images, "c/x.json"]  # the images: the user's now
