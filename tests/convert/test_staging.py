"""Outputs appear whole or not at all, locally and on S3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from gt_toolkit.convert import ConvertOptions, convert_output
from gt_toolkit.convert.staging import LISTING, StagedOutput
from gt_toolkit.errors import ConversionError, StorageError


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


def test_s3_objects_of_a_failed_run_are_deleted(store: Any, bucket: str) -> None:
    store.put_bytes(f"s3://{bucket}/ds/keep.txt", b"older run")
    with pytest.raises(RuntimeError), StagedOutput(f"s3://{bucket}/ds", store=store) as staged:
        staged.write_bytes(staged.location("a.txt"), b"x")
        staged.write_json(staged.location("b.json"), {"b": 1})
        assert _keys(store, bucket) == ["ds/a.txt", "ds/b.json", "ds/keep.txt"]
        raise RuntimeError("boom")
    assert _keys(store, bucket) == ["ds/keep.txt"]


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
