"""A font for every caption: class names and worker ids in any script, sized to the picture.

Pillow's built-in font has Latin glyphs only, so a class named ``猫`` or ``кошка`` would be
drawn as empty boxes. We look for a font file that has every glyph of the text among the
usual system fonts (Debian's ``fonts-wqy-microhei``, which ``scripts/install-system-deps.sh``
installs, Noto CJK, Droid Sans Fallback, DejaVu, and the CJK fonts of macOS and Windows),
then fall back to Pillow's own. Nothing is shipped, so the wheel stays small; text that no
font on the machine can draw is reported by :func:`missing_glyphs` instead of failing.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Final

from PIL import ImageFont

__all__ = ["FONT_FILES", "Font", "caption_size", "font_for", "missing_glyphs"]

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

FONT_FILES: Final = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/arialuni.ttf",
)
"""Font files tried in order; the first that has every glyph of a caption draws it."""

_NOT_A_CHARACTER: Final = "\uffff"  # never mapped: renders as the font's missing-glyph box


def caption_size(width: int, height: int) -> int:
    """Caption font size in pixels for a picture of ``width`` x ``height``.

    A twenty-fifth of the shorter side, at least 12 px (readable on a small picture) and
    at most 48 px.
    """
    return max(12, min(48, round(min(width, height) / 25)))


@functools.cache
def _fonts(size: int) -> tuple[Font, ...]:
    found: list[Font] = []
    for name in FONT_FILES:
        try:
            found.append(ImageFont.truetype(name, size))
        except OSError:  # not on this machine
            continue
    found.append(ImageFont.load_default(size=size))
    return tuple(found)


def _mask(font: Font, char: str) -> tuple[tuple[int, int, int, int] | None, bytes]:
    mask = font.getmask(char)
    return mask.getbbox(), bytes(mask)


@functools.cache
def _has_glyph(font: Font, char: str) -> bool:
    if char.isspace() or not char.isprintable():
        return True
    return _mask(font, char) != _mask(font, _NOT_A_CHARACTER)


def _covers(font: Font, text: str) -> bool:
    return all(_has_glyph(font, char) for char in text)


def font_for(text: str, size: int) -> Font:
    """The first font of :data:`FONT_FILES` (then Pillow's own) with every glyph of ``text``.

    When none has them all, Pillow's own font: the text then shows missing-glyph boxes,
    which :func:`missing_glyphs` reports beforehand.
    """
    fonts = _fonts(size)
    return next((font for font in fonts if _covers(font, text)), fonts[-1])


def missing_glyphs(texts: Iterable[str]) -> list[str]:
    """The texts that no font on this machine can draw completely, sorted."""
    return sorted({t for t in texts if not any(_covers(f, t) for f in _fonts(12))})
