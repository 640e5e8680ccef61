"""Image file names in converted datasets: unique, stable, and always one plain file name."""

from __future__ import annotations

from pathlib import PurePosixPath

from hypothesis import given
from hypothesis import strategies as st

from gt_toolkit.convert.images import ImageNamer


def test_same_stems_get_a_hash_and_the_first_keeps_its_name() -> None:
    namer = ImageNamer()
    first = namer("s3://b/a/img.jpg")
    second = namer("s3://b/b/img.jpg")
    assert first == "img.jpg"
    assert second != first and second.startswith("img-") and second.endswith(".jpg")
    assert namer("s3://b/a/img.jpg") == first  # stable for a source-ref seen again


def test_a_key_ending_in_dot_dot_is_not_the_parent_folder() -> None:
    assert ImageNamer()("s3://b/a/..") == "image"


@given(st.lists(st.text(st.sampled_from("ab./-_"), min_size=1, max_size=12), max_size=20))
def test_every_name_is_one_plain_segment_and_distinct(keys: list[str]) -> None:
    namer = ImageNamer()
    refs = list(dict.fromkeys(f"s3://bucket/{k}" for k in keys))
    names = [namer(ref) for ref in refs]
    for name in names:
        assert name not in ("", ".", "..") and "/" not in name
        assert PurePosixPath(name).name == name
    assert len(set(names)) == len(names)
