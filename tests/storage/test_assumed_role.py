from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gt_toolkit.errors import S3UriError
from gt_toolkit.storage.assumed_role import read_prefix_policy

_FOLDER = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}(/[a-z0-9_.-]{1,20}){0,3}", fullmatch=True)


@given(_FOLDER)
def test_a_read_prefix_is_a_folder_with_or_without_its_slash(folder: str) -> None:
    # "jobs" must not grant "jobs-old/...": the policy always ends the prefix with "/"
    with_slash = read_prefix_policy(f"s3://bkt/{folder}/")
    assert read_prefix_policy(f"s3://bkt/{folder}") == with_slash
    get, listing = with_slash["Statement"]
    assert get["Resource"] == f"arn:aws:s3:::bkt/{folder}/*"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"{folder}/*"]}}


def test_the_whole_bucket_and_wildcards() -> None:
    assert read_prefix_policy("s3://bkt/")["Statement"][0]["Resource"] == "arn:aws:s3:::bkt/*"
    with pytest.raises(S3UriError, match="wildcards"):
        read_prefix_policy("s3://bkt/jobs*")
