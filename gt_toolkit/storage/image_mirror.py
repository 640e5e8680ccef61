"""Images offline: a local mirror of S3 images, image headers, and ``data:`` URIs.

Converters, the review report and the template preview all read images that a manifest names
by ``s3://`` URI. When the images are also on disk (the folder that was uploaded, or a
``aws s3 sync`` copy), :class:`ImageMirror` finds them there: every command takes the same
pair of options for it, ``--images-dir`` (the folder) and ``--images-prefix`` (the
``s3://`` prefix that folder mirrors).
"""

from __future__ import annotations

import base64
import io
import mimetypes
import os
import struct
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from gt_toolkit.errors import StorageError
from gt_toolkit.storage.s3 import is_s3_uri, parse_s3_uri
from gt_toolkit.types import ImageSize

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "TURNED",
    "ImageMirror",
    "data_uri",
    "eight_bit_colour_key",
    "eight_bits",
    "read_image_size",
]

_SNIFF = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF8", "image/gif"),
)


class ImageMirror:
    """A local folder holding copies of images that manifests name by ``source-ref``.

    A reference is looked up in the folder as: the part after ``images_prefix`` (when the
    reference starts with it), then the object key, then the key's file name; the first file
    that exists wins. A key with ``..`` parts (S3 allows them) never reads a file outside the
    folder, and a name the file system cannot hold (a 1,024-byte key) is simply not there.

    Args:
        images_dir: the folder (``--images-dir``).
        images_prefix: the ``s3://bucket/prefix/`` the folder mirrors (``--images-prefix``).

    Raises:
        StorageError: ``images_dir`` is not a folder (a typo would otherwise send every
            lookup to S3, or show every image as missing).
    """

    def __init__(self, images_dir: str | os.PathLike[str], images_prefix: str | None = None):
        self.root = Path(images_dir)
        if not self.root.is_dir():
            raise StorageError(f"--images-dir {os.fspath(images_dir)}: not a folder")
        self.prefix = images_prefix

    def local_path(self, reference: str) -> Path | None:
        """The local copy of ``reference`` (an ``s3://`` URI or a key), if there is one."""
        key = parse_s3_uri(reference)[1] if is_s3_uri(reference) else reference
        candidates = []
        if self.prefix and reference.startswith(self.prefix):
            candidates.append(reference[len(self.prefix) :])
        candidates += [key, PurePosixPath(key).name]
        for rel in candidates:
            rel = rel.lstrip("/")
            if rel and (path := self._inside(rel)) is not None:
                return path
        return None

    def _inside(self, rel: str) -> Path | None:
        """``root/rel`` when it is a file and ``rel`` stays inside the folder.

        The check is on the name, not on resolved links: a link the user put in the folder
        (to a shared image store, say) is theirs to follow; a ``..`` in a manifest is not.
        """
        normal = os.path.normpath(rel)
        if normal == ".." or normal.startswith("../"):  # rel has no leading "/" here
            return None
        path = self.root / normal
        try:
            return path if path.is_file() else None
        except OSError:  # ENAMETOOLONG and kin: no such file can be here
            return None


def data_uri(data: bytes, mime: str | None = None, *, name: str = "") -> str:
    """A ``data:`` URI; the type is ``mime``, else sniffed from the bytes, else from ``name``."""
    mime = mime or next((m for magic, m in _SNIFF if data.startswith(magic)), None)
    if mime is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":  # not WAV or AVI
        mime = "image/webp"
    mime = mime or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def eight_bits(image: Image.Image) -> Image.Image:
    """A 16-bit grayscale image (``I;16`` PNGs, ``I`` TIFFs) as 8-bit ``L``, scaled, not clipped.

    ``convert("RGB")`` alone clips such values at 255: a depth map or an X-ray came out
    white but for its darkest pixels. ``LA`` when a value is transparent: a 16-bit PNG's
    ``transparency`` is a 16-bit value, and kept on the 8-bit copy it made every pixel
    whose low byte matched it clear, and not the one it names; so the clear pixels are
    found before the values are scaled.
    """
    import numpy as np
    from PIL import Image

    wide = image.convert("I")
    clear = wide.info.pop("transparency", None)
    gray = wide.point(lambda value: value * (1 / 256)).convert("L")
    gray.info.pop("transparency", None)
    if not isinstance(clear, int) or isinstance(clear, bool):
        return gray
    opaque = np.asarray(wide) != clear
    gray.putalpha(Image.fromarray(np.where(opaque, 255, 0).astype(np.uint8)))
    return gray


def eight_bit_colour_key(image: Image.Image, data: bytes) -> None:
    """A 16-bit RGB PNG's transparent colour as the 8-bit colour Pillow reads its pixels as.

    Pillow reads such a PNG as 8-bit RGB (each sample's high byte) but keeps its ``tRNS``
    colour in 16 bits: the transparent pixels, (200, 200, 200) of 65535, were drawn black,
    and the light grey ones that read as (200, 200, 200) were cleared. Matched on the high
    bytes, the transparent colour clears its pixels (and those within 1/256 of it, which
    Pillow cannot tell from it: it has no 16-bit RGB mode).
    """
    key = image.info.get("transparency")
    sixteen_bit_rgb = data[12:16] == b"IHDR" and data[24:26] == b"\x10\x02"
    if image.format == "PNG" and sixteen_bit_rgb and isinstance(key, tuple):
        image.info["transparency"] = tuple(int(value) >> 8 for value in key)


def read_image_size(image: bytes | Path, *, upright: bool = True) -> ImageSize | None:
    """Pixel size from an image's header (no decode at all), as a browser shows the image.

    A phone photo stored sideways carries an EXIF orientation (5 to 8: a quarter turn);
    browsers, and so Ground Truth's, Label Studio's and CVAT's labeling pages, show it
    upright, and workers label it so: its size here is the upright one (width and height
    swapped), or an upright box past the stored height was clipped or dropped as outside
    the image. ``gt-convert review`` draws such images upright too. ``upright=False``: the
    stored size, for a reader of the raw pixels that may ignore the orientation.

    ``None`` when the bytes or file are not an image Pillow can read. Pillow's plugins read
    the header directly rather than through ``Image.open``, whose guard against decompression
    bombs refuses (or warns about) images over ~90-180 megapixels: a large aerial photo has a
    size to report, and nothing here decodes its pixels.
    """
    from PIL import Image

    Image.init()
    try:
        with io.BytesIO(image) if isinstance(image, bytes) else image.open("rb") as fh:
            prefix = fh.read(16)
            for factory, accept in (Image.OPEN[fmt] for fmt in Image.ID):
                fh.seek(0)
                try:  # the errors Image.open skips a plugin on: the next one may read it
                    verdict = accept(prefix) if accept is not None else True
                    if not verdict or isinstance(verdict, str):  # a str says why it is not
                        continue
                    with factory(fh, "") as img:
                        width, height = img.width, img.height
                        # Pillow's TIFF reader turns its size itself (_UPRIGHT)
                        turn = upright != (img.format in _UPRIGHT)
                        if turn and _orientation(img) in TURNED:
                            width, height = height, width
                        return {"width": width, "height": height}
                except (SyntaxError, IndexError, TypeError, ValueError, struct.error, OSError):
                    continue
    except OSError:
        return None
    return None


TURNED = frozenset({5, 6, 7, 8})
"""EXIF orientations that turn the picture a quarter: its upright size is height x width."""

_UPRIGHT = frozenset({"TIFF"})
"""Formats whose Pillow reader gives the upright size itself (it turns the pixels on load)."""


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation in ``img``'s header (1, as stored, when it has none or a bad one).

    A PNG's ``getexif()`` decodes the whole image to look for an ``eXIf`` chunk after the
    pixels; only one before them (in the header Pillow has read) is asked here.
    """
    from PIL import Image

    try:
        if img.format == "PNG":
            data = img.info.get("exif")
            if not isinstance(data, bytes):
                return 1
            exif = Image.Exif()
            exif.load(data)
        else:
            exif = img.getexif()
        value = exif.get(_ORIENTATION, 1)
    except (SyntaxError, IndexError, TypeError, ValueError, KeyError, struct.error, OSError):
        return 1  # a damaged EXIF block: the size as stored, as a browser falls back to
    return value if isinstance(value, int) else 1


_ORIENTATION = 0x0112  # ExifTags.Base.Orientation, without importing Pillow at import time
