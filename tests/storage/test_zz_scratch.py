from typing import Any
import pytest
from gt_toolkit.storage.files import check_writable, write_json
from gt_toolkit.errors import StorageError

KEYS = ["a b.json", "ü/ñ.json", "x%2F.json", "p+q.json", "dir/", "//x.json", "/lead.json",
        "a?b#c.json", "tab\there", "x" * 1024, "\u00e9\u0301.json", "../x.json", "./x"]

@pytest.mark.parametrize("key", KEYS)
def test_keys(store: Any, s3_client: Any, bucket: str, key: str) -> None:
    uri = f"s3://{bucket}/{key}"
    try:
        check_writable(uri, store=store)
        ok = True
    except StorageError as e:
        ok = False
        print("CHECK REFUSED", key, e)
    try:
        write_json(uri, {"a": 1}, store=store)
        w = True
    except Exception as e:
        w = False
        print("WRITE FAILED", key, type(e), e)
    ups = s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    print(key[:30], ok, w, ups)
    assert ok == w
    assert not ups

def test_versioned(store: Any, s3_client: Any, bucket: str) -> None:
    s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    check_writable(f"s3://{bucket}/s.json", store=store)
    v = s3_client.list_object_versions(Bucket=bucket)
    print(v)
    assert "Versions" not in v and "DeleteMarkers" not in v
    assert not s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads")

def test_missing_bucket(store: Any) -> None:
    with pytest.raises(StorageError) as e:
        check_writable("s3://gt-no-such-bucket-zz/s.json", store=store)
    print(e.value)
