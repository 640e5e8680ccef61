"""Local copies of S3 images: one lookup rule for every command, headers and data URIs."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

import pytest

from gt_toolkit.errors import StorageError
from gt_toolkit.storage.image_mirror import ImageMirror, data_uri, read_image_size
from tests.helpers import SAMPLES

IMG = SAMPLES / "images" / "img_000.jpg"


@pytest.fixture
def mirror_dir(tmp_path: Path) -> Path:
    for rel in ("cam1/a.jpg", "images/cam1/a.jpg", "b.jpg", "images/c.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(rel.encode())
    return tmp_path


@pytest.mark.parametrize(
    ("prefix", "reference", "found"),
    [
        ("s3://bkt/images/", "s3://bkt/images/cam1/a.jpg", "cam1/a.jpg"),  # after the prefix
        (None, "s3://bkt/images/cam1/a.jpg", "images/cam1/a.jpg"),  # the whole key
        ("s3://bkt/images/", "s3://other-bkt/x/b.jpg", "b.jpg"),  # the file name
        (None, "s3://bkt/images/c.jpg", "images/c.jpg"),
        (None, "s3://bkt/nowhere/d.jpg", None),
        (None, "images/c.jpg", "images/c.jpg"),  # a plain key
    ],
)
def test_lookup_order(
    mirror_dir: Path, prefix: str | None, reference: str, found: str | None
) -> None:
    path = ImageMirror(mirror_dir, prefix).local_path(reference)
    assert (path.relative_to(mirror_dir).as_posix() if path else None) == found


def test_a_missing_folder_is_an_error_not_a_silent_download(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"--images-dir .*not a folder"):
        ImageMirror(tmp_path / "typo")


def test_data_uris_name_the_type() -> None:
    jpeg = IMG.read_bytes()
    assert data_uri(jpeg).startswith("data:image/jpeg;base64,")
    assert base64.b64decode(data_uri(jpeg).split(",", 1)[1]) == jpeg
    assert data_uri(b"<svg/>", "image/svg+xml").startswith("data:image/svg+xml;base64,")
    assert data_uri(b"??", name="x.png").startswith("data:image/png;")
    assert data_uri(b"??").startswith("data:application/octet-stream;")


def test_image_size_from_a_header(tmp_path: Path) -> None:
    size = read_image_size(IMG)
    assert size is not None and size == read_image_size(IMG.read_bytes())
    assert size["width"] > 0 and size["height"] > 0
    (tmp_path / "not.jpg").write_bytes(b"not an image")
    assert read_image_size(tmp_path / "not.jpg") is None
    assert read_image_size(b"") is None


def _png_header(width: int, height: int) -> bytes:
    """A PNG's signature and header chunk, as a camera or tiler writes them."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("width", "height"), [(12_000, 9_000), (20_000, 20_000)], ids=["warned", "refused"]
)
def test_a_large_images_size_is_read_without_the_bomb_guard(
    tmp_path: Path, width: int, height: int
) -> None:
    # Pillow's Image.open warns above ~89 MP and refuses above ~179 MP; only the header is read
    data = _png_header(width, height)
    assert read_image_size(data) == {"width": width, "height": height}
    (tmp_path / "aerial.png").write_bytes(data)
    assert read_image_size(tmp_path / "aerial.png") == {"width": width, "height": height}


def test_a_wav_file_is_not_sniffed_as_webp() -> None:
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt "
    assert data_uri(wav).startswith("data:application/octet-stream;")
    webp = b"RIFF\x24\x00\x00\x00WEBPVP8 "
    assert data_uri(webp).startswith("data:image/webp;")


@pytest.mark.parametrize(
    "reference", ["s3://bkt/../secret.jpg", "../secret.jpg", "s3://bkt/a/../../secret.jpg"]
)
def test_a_key_with_dot_dot_never_reads_beside_the_folder(tmp_path: Path, reference: str) -> None:
    (tmp_path / "secret.jpg").write_bytes(b"not an image of the job")
    (tmp_path / "mirror").mkdir()
    assert ImageMirror(tmp_path / "mirror").local_path(reference) is None


def test_a_link_the_user_made_is_followed(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "a.jpg").write_bytes(b"shared copy")
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "images").symlink_to(tmp_path / "store")
    found = ImageMirror(tmp_path / "mirror").local_path("s3://bkt/images/a.jpg")
    assert found is not None and found.read_bytes() == b"shared copy"


def test_a_key_too_long_for_the_file_system_is_not_there(mirror_dir: Path) -> None:
    # S3 keys reach 1,024 bytes in one segment; most file systems stop names at 255.
    assert ImageMirror(mirror_dir).local_path("s3://bkt/" + "k" * 1000 + ".jpg") is None
