"""Input manifests from an S3 prefix or a local folder, and S3 error handling."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit import NoMatchingObjectsError, StorageError, ValidationError, iter_input_records
from gt_toolkit.formats.input_manifest import iter_folder_keys, write_input_manifest
from gt_toolkit.storage.s3 import S3Store, make_s3_client
from tests.helpers import seed_objects


def test_lists_5000_objects_through_pagination(store: S3Store, bucket: str) -> None:
    keys = [f"imgs/{i:05d}.jpg" for i in range(5000)]
    seed_objects(bucket, keys)
    seed_objects(bucket, ["imgs/notes.txt", "other/0.jpg"])
    refs = [r["source-ref"] for r in iter_input_records(f"s3://{bucket}/imgs/", store=store)]
    assert refs == [f"s3://{bucket}/{k}" for k in keys]


def test_small_pages_stream_every_key(store: S3Store, bucket: str) -> None:
    keys = [f"p/{i:03d}.png" for i in range(250)]
    seed_objects(bucket, keys)
    listed = [o.key for o in store.iter_objects(f"s3://{bucket}/p/", page_size=100)]
    assert listed == keys


def test_extension_filter_is_case_insensitive_and_configurable(store: S3Store, bucket: str) -> None:
    seed_objects(bucket, ["a/1.JPG", "a/2.jpeg", "a/3.Png", "a/4.gif", "a/sub/5.jpg", "a/6.txt"])
    default = [r["source-ref"] for r in iter_input_records(f"s3://{bucket}/a/", store=store)]
    assert default == [f"s3://{bucket}/a/{k}" for k in ["1.JPG", "2.jpeg", "3.Png", "sub/5.jpg"]]
    gifs = list(iter_input_records(f"s3://{bucket}/a/", extensions=[".GIF"], store=store))
    assert [r["source-ref"] for r in gifs] == [f"s3://{bucket}/a/4.gif"]


def test_exclude_globs_and_extra_attributes(store: S3Store, bucket: str) -> None:
    seed_objects(bucket, ["a/keep.jpg", "a/thumbs/x.jpg", "a/skip_me.jpg"])
    records = list(
        iter_input_records(
            f"s3://{bucket}/a/",
            exclude=["thumbs/*", "*skip*"],
            extra={"site": "plant-7"},
            store=store,
        )
    )
    assert records == [{"source-ref": f"s3://{bucket}/a/keep.jpg", "site": "plant-7"}]


def test_empty_prefix_is_a_clear_error(store: S3Store, bucket: str) -> None:
    seed_objects(bucket, ["a/readme.txt"])
    with pytest.raises(NoMatchingObjectsError, match="no object under"):
        list(iter_input_records(f"s3://{bucket}/a/", store=store))


def test_missing_bucket_is_a_clear_error(store: S3Store) -> None:
    with pytest.raises(StorageError, match="bucket does not exist"):
        list(iter_input_records("s3://no-such-bucket-here/a/", store=store))


def test_access_denied_is_a_clear_error(moto_endpoint: str, store: S3Store, bucket: str) -> None:
    # moto checks IAM when asked to (in this process, where its server runs): a user with no
    # policy is denied, as on AWS.
    import boto3
    from moto.core.authorization import enable_iam_authentication

    seed_objects(bucket, ["a/1.jpg"])
    iam = boto3.client("iam", endpoint_url=moto_endpoint, region_name="us-east-1")
    iam.create_user(UserName=f"nobody-{bucket}")
    key = iam.create_access_key(UserName=f"nobody-{bucket}")["AccessKey"]
    session = boto3.session.Session(
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"]
    )
    denied = S3Store(
        make_s3_client(session=session, endpoint_url=moto_endpoint, region_name="us-east-1")
    )
    with enable_iam_authentication(), pytest.raises(StorageError, match="access denied"):
        list(iter_input_records(f"s3://{bucket}/a/", store=denied))
    assert [o.key for o in store.iter_objects(f"s3://{bucket}/a/")] == ["a/1.jpg"]


def test_local_folder_in_key_order(tmp_path: Path) -> None:
    for rel in ["b.jpg", "a/z.png", "a-b.jpg", "a/y/1.JPEG", "c.txt", "A.jpg"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    keys = list(iter_folder_keys(tmp_path))
    assert keys == sorted(["b.jpg", "a/z.png", "a-b.jpg", "a/y/1.JPEG", "A.jpg"])
    out = tmp_path / "out" / "in.manifest"
    n = write_input_manifest(tmp_path, out, s3_prefix="s3://my-bucket/data/")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert n == len(lines) == 5
    assert lines[0] == {"source-ref": "s3://my-bucket/data/A.jpg"}


def test_a_link_back_up_the_folder_is_not_walked_again(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "sub" / "b.jpg").write_bytes(b"x")
    (tmp_path / "sub" / "up").symlink_to(tmp_path)  # a loop: sub/up/sub/up/...
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "c.jpg").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "other")  # not a loop: followed
    assert list(iter_folder_keys(tmp_path)) == ["a.jpg", "link/c.jpg", "other/c.jpg", "sub/b.jpg"]


def test_a_file_name_that_is_not_utf8_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / os.fsdecode(b"\xff.jpg")).write_bytes(b"x")
    out = tmp_path / "out" / "in.manifest"
    with pytest.raises(StorageError, match=r"\\udcff\.jpg'.*not UTF-8"):
        write_input_manifest(tmp_path, out, s3_prefix="s3://my-bucket/data/")
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_local_folder_needs_an_s3_prefix(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(ValidationError, match="local folder"):
        list(iter_input_records(tmp_path))


@pytest.mark.parametrize("name", ["source-ref", "source", "$meta"])
def test_extra_attributes_cannot_break_the_manifest(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=repr(name).replace("$", "\\$")):
        list(iter_input_records(tmp_path, s3_prefix="s3://my-bucket/", extra={name: 1}))


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="not a folder"):
        list(iter_input_records(tmp_path / "nope", s3_prefix="s3://my-bucket/"))


def test_manifest_written_to_s3(store: S3Store, bucket: str) -> None:
    seed_objects(bucket, ["x/1.jpg", "x/2.jpg"])
    n = write_input_manifest(f"s3://{bucket}/x/", f"s3://{bucket}/m/in.manifest", store=store)
    body: Any = store.get_bytes(f"s3://{bucket}/m/in.manifest").decode()
    assert n == 2
    assert body.splitlines() == [
        json.dumps({"source-ref": f"s3://{bucket}/x/{i}.jpg"}, separators=(",", ":"))
        for i in (1, 2)
    ]


def test_writing_to_a_missing_bucket_is_a_clear_error(store: S3Store, tmp_path: Path) -> None:
    from gt_toolkit import write_manifest

    with pytest.raises(StorageError, match="bucket does not exist"):
        write_manifest(
            [{"source-ref": "s3://my-bucket/a.jpg"}], "s3://no-such-bkt-zz/m", store=store
        )
    with pytest.raises(StorageError, match="bucket does not exist"):
        store.put_bytes("s3://no-such-bkt-zz/m", b"x")


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ({"score": float("nan")}, r"\['score'\] is nan"),
        ({"deep": [1, {"x": float("-inf")}]}, r"\['deep'\]\[1\]\['x'\] is -inf"),
        ({"big": 2**70}, "64-bit"),
        ({"text": "\ud800"}, "surrogates"),
    ],
)
def test_extra_attributes_that_json_cannot_write_are_refused(
    extra: dict[str, object], said: str, tmp_path: Path
) -> None:
    """NaN was written as null on every line (a changed value, silently); a 70-bit integer or
    a lone surrogate failed in the writer with a TypeError traceback."""
    (tmp_path / "a.jpg").write_bytes(b"x")
    out = tmp_path / "in.manifest"
    with pytest.raises(ValidationError, match=said):
        write_input_manifest(tmp_path, out, s3_prefix="s3://my-bucket/", extra=extra)
    assert not out.exists()


@pytest.mark.parametrize(
    "pattern", ["thumbs/*", "raw/thumbs/*", "*/thumbs/*", "raw/a.jpg", "*.png", "raw/*/x.jpg"]
)
def test_a_folder_and_its_upload_exclude_the_same_keys(
    pattern: str, tmp_path: Path, store: S3Store, bucket: str
) -> None:
    """An S3 listing matches --exclude against the relative and the full key; the folder
    walk matched the relative key only, so 'raw/thumbs/*' or '*/thumbs/*' kept the
    thumbnails of the local folder and dropped those of the same files in S3."""
    keys = ["a.jpg", "b.png", "thumbs/a.jpg", "thumbs/x.jpg", "deep/x.jpg", "deep/thumbs/c.jpg"]
    for key in keys:
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(b"x")
    seed_objects(bucket, [f"raw/{key}" for key in keys])
    prefix = f"s3://{bucket}/raw/"
    from_s3 = list(iter_input_records(prefix, exclude=[pattern], store=store))
    from_folder = list(iter_input_records(tmp_path, s3_prefix=prefix, exclude=[pattern]))
    assert from_folder == from_s3
    assert len(from_s3) < len(keys)


def test_a_flat_folder_is_listed_in_little_memory_per_file(tmp_path: Path) -> None:
    """A folder must be sorted before its first key, but the walk held a DirEntry for every
    entry, sidecar files the extensions drop included: 270 bytes a file, 540 with a .json
    beside each image (half a gigabyte for a million). Now the kept names alone."""
    import tracemalloc

    for i in range(5_000):
        (tmp_path / f"{i:06d}.jpg").write_bytes(b"")
        (tmp_path / f"{i:06d}.json").write_bytes(b"")
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_folder_keys(tmp_path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 5_000
    assert peak / count < 200, f"{peak / count:.0f} bytes per listed file"
