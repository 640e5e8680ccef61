"""Local copies of S3 images: one lookup rule for every command, headers and data URIs."""

from __future__ import annotations

import base64
import io
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


def _exif_jpeg(orientation: int, size: tuple[int, int] = (400, 300)) -> bytes:
    """A JPEG as a phone writes it: the pixels as the sensor read them, and which way is up."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    out = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_sideways_photo_has_the_size_a_browser_shows(tmp_path: Path, orientation: int) -> None:
    # stored 400 x 300; orientations 5-8 turn it a quarter, so it is shown 300 x 400
    shown = {"width": 300, "height": 400} if orientation >= 5 else {"width": 400, "height": 300}
    data = _exif_jpeg(orientation)
    assert read_image_size(data) == shown
    (tmp_path / "phone.jpg").write_bytes(data)
    assert read_image_size(tmp_path / "phone.jpg") == shown


def test_the_orientation_is_read_from_the_header_without_decoding(tmp_path: Path) -> None:
    # a file cut off right after its scan header: no pixel data to decode, yet sized upright
    data = _exif_jpeg(6)
    header = data[: data.index(b"\xff\xda") + 20]
    (tmp_path / "cut.jpg").write_bytes(header)
    assert read_image_size(tmp_path / "cut.jpg") == {"width": 300, "height": 400}


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_other_formats_exif_turns_the_size_too(fmt: str) -> None:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 8
    out = io.BytesIO()
    Image.new("RGB", (40, 30)).save(out, fmt, exif=exif.tobytes())
    assert read_image_size(out.getvalue()) == {"width": 30, "height": 40}


def test_a_tiff_is_turned_once() -> None:
    # Pillow's TIFF reader gives the upright size itself: turned again it was stored-size
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30)).save(out, "TIFF", tiffinfo={0x0112: 6})
    assert read_image_size(out.getvalue()) == {"width": 30, "height": 40}


def test_a_damaged_exif_block_gives_the_stored_size() -> None:
    data = _exif_jpeg(6)
    at = data.index(b"Exif\x00\x00") + 6
    broken = data[:at] + b"XX" + data[at + 2 :]  # no TIFF byte order: unreadable EXIF
    assert read_image_size(broken) == {"width": 400, "height": 300}


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_the_stored_size_on_request(fmt: str) -> None:
    # an endpoint gets the raw bytes: whether its decoder turns them is the model's
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    Image.new("RGB", (40, 30)).save(out, fmt, exif=exif.tobytes(), tiffinfo={0x0112: 6})
    assert read_image_size(out.getvalue(), upright=False) == {"width": 40, "height": 30}
    assert read_image_size(out.getvalue()) == {"width": 30, "height": 40}
