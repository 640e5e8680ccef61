"""Reading images the way training and serving must agree on (Pillow only, no torch).

``train.py`` and ``inference.py`` both read images through :func:`rgb_image`, so a picture
looks the same to the model when it learns and when it answers. Pillow's ``convert("RGB")``
alone clips a 16-bit grayscale PNG (mode ``I;16``, values up to 65535) to 255, turning it
white; here such images are scaled to 8 bits first. CMYK, palette and grayscale images convert
as usual; an alpha channel is dropped (as torchvision's own folder loader does).

:func:`unreadable_images` opens every image's header before training, so a file that is not
an image (an empty download, an HTML error page saved as ``.jpg``) stops the job at start-up
with every such file named, not as a traceback somewhere in the first epoch.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, UnidentifiedImageError, features

__all__ = ["decode_rgb", "read_rgb", "require_codecs", "rgb_image", "unreadable_images"]

_SIXTEEN_BIT_SCALE = 1 / 256
_UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
"""What Pillow raises for bytes that are not a readable image (truncated, corrupt, too large)."""


def rgb_image(img: Image.Image) -> Image.Image:
    """``img`` as 8-bit RGB; 32-bit integer modes (16-bit PNGs) are scaled, not clipped."""
    if img.mode.startswith("I"):  # "I", "I;16", "I;16B", …: PNG's 16-bit grayscale
        img = img.convert("I").point(lambda value: value * _SIXTEEN_BIT_SCALE).convert("L")
    return img.convert("RGB")


def read_rgb(path: Path) -> Image.Image:
    """The image at ``path`` as 8-bit RGB (see :func:`rgb_image`).

    Raises:
        OSError: the file is not a readable image (truncated, corrupt); the message names it.
    """
    try:
        with Image.open(path) as img:
            return rgb_image(img)
    except _UNREADABLE as exc:
        raise OSError(f"cannot read the image {path}: {exc}") from exc


_CODECS = {"jpg": "JPEG", "zlib": "PNG"}
"""The Pillow codecs the endpoint's two image types need (``features.check_codec`` names)."""


def require_codecs() -> None:
    """Fail at start-up when Pillow cannot decode JPEG or PNG (built without libjpeg or zlib).

    Without this, every request would fail in :func:`decode_rgb` with "decoder ... not
    available", an ``OSError`` the endpoint answers as the client's bad image (400) when
    it is the server's fault.

    Raises:
        RuntimeError: naming the missing decoders.
    """
    missing = [kind for codec, kind in _CODECS.items() if not features.check_codec(codec)]
    if missing:
        raise RuntimeError(f"Pillow here cannot decode {' or '.join(missing)}: reinstall Pillow")


def decode_rgb(data: bytes) -> Image.Image:
    """Image bytes (an endpoint request's) as 8-bit RGB (see :func:`rgb_image`).

    Raises:
        OSError: the bytes are not a readable image; the message says why.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            return rgb_image(img)
    except UnidentifiedImageError as exc:  # its text names the buffer's memory address
        raise OSError("Pillow cannot identify the image format") from exc
    except _UNREADABLE as exc:
        raise OSError(str(exc)) from exc


def unreadable_images(paths: Iterable[Path]) -> list[str]:
    """``"<path>: <reason>"`` for each file whose header Pillow cannot read (cheap: no decoding)."""
    problems = []
    for path in paths:
        try:
            with Image.open(path):
                pass
        except _UNREADABLE as exc:
            problems.append(f"{path}: {exc}")
    return problems
