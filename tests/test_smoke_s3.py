from gt_toolkit.s3 import S3Store


def test_moto_roundtrip(store: S3Store, bucket: str) -> None:
    store.put_bytes(f"s3://{bucket}/a.txt", b"hello")
    assert store.get_bytes(f"s3://{bucket}/a.txt") == b"hello"
