"""Worker task templates: Jinja renders crowd-HTML + Liquid for Ground Truth, once.

A Ground Truth worker template is Liquid that Ground Truth evaluates per task
(``{{ task.input.taskObject | grant_read_access }}``). We generate that Liquid from Jinja
templates in ``templates/`` through the one Jinja environment (:mod:`gt_toolkit.templating`),
whose ``[[ ]]`` delimiters never collide with Liquid's.

Safety rule: every user string (labels, header, instructions, descriptions, URLs) reaches the
page through one ``finalize`` hook that HTML-escapes it *and* turns ``{`` and ``}`` into the
character references ``&#123;``/``&#125;``. Browsers decode those back to braces (in text and
in attribute values), while Ground Truth's Liquid pass never sees a ``{{`` or ``{%`` in user
text, so a label such as ``{{ 7 | plus: 1 }}`` is shown literally instead of being run.
(``{% raw %}`` wrapping would also work, but breaks if the text itself contains
``{% endraw %}``; entity escaping has no such hole.) Labels are serialised with
:func:`json.dumps` and then escaped for the attribute, so quotes, ``&``, ``</script>`` and
non-ASCII labels arrive as valid JSON.

Labels and header: by default the template uses ``task.input.labels`` / ``task.input.header``
when the pre-annotation Lambda supplies them and falls back to the values baked in at render
time otherwise (``task_input_overrides=True``); ``False`` bakes them in unconditionally.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

from markupsafe import Markup, escape

from gt_toolkit.errors import TemplateError, ValidationError
from gt_toolkit.formats.label_categories import validate_labels
from gt_toolkit.storage.image_mirror import data_uri, eight_bit_colour_key, eight_bits
from gt_toolkit.storage.s3 import is_s3_uri, parse_s3_uri
from gt_toolkit.templating import render_page

__all__ = [
    "DEFAULT_MAX_IMAGE_SIDE",
    "Example",
    "LiquidExpression",
    "ResolvedExample",
    "example_image_src",
    "liquid_inert",
    "render_bounding_box_template",
    "render_image_classifier_template",
    "text_to_html",
]

DEFAULT_MAX_IMAGE_SIDE: Final = 480
"""Embedded example images are downscaled to this many pixels on their longer side.

The instruction panel is about 300-400 px wide, and each image is embedded twice (short and
full instructions), so small images keep the template near the 128,000-character
``TemplateContent`` limit of the HumanTaskUi APIs.
"""

_MAX_EMBED_BYTES: Final = 96 * 1024  # an image already this small and narrow is embedded as is
_BRACES: Final = str.maketrans({"{": "&#123;", "}": "&#125;"})
_ELEMENT_NAME_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
# Characters that would end or corrupt the Liquid string literal we put an s3:// URI in.
_UNSAFE_IN_LIQUID_STRING: Final = re.compile(r"[\"'{}%<>\\\x00-\x1f\x7f]")
_NUMBER_RE: Final = re.compile(r"^(\d{1,9})[.)]\s+")
_MIME: Final[Mapping[str, str]] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}


class LiquidExpression(Markup):
    """Liquid that render.py itself writes (e.g. ``grant_read_access`` on an s3:// example).

    The finalize hook passes it through untouched; nothing a user passes is ever one.
    """


class Example(NamedTuple):
    """One good or bad example: an image and a description of what it shows.

    ``image`` is an ``https://`` URL, an ``s3://`` URI (resolved by Ground Truth's
    ``grant_read_access`` at task time), a ``data:image/...`` URI, or a local file (embedded).
    """

    image: str | os.PathLike[str]
    description: str


@dataclass(frozen=True, slots=True)
class ResolvedExample:
    """An example ready for the page: ``src`` is a URL, data URI or Liquid expression."""

    src: str
    description: Markup
    alt: str


def liquid_inert(value: object) -> Markup:
    """HTML-escape a value and neutralise Liquid delimiters; the finalize hook of our Jinja env.

    :class:`LiquidExpression` passes unchanged; other :class:`~markupsafe.Markup` (trusted
    HTML from the caller) keeps its tags but still has its braces neutralised.

    Examples:
        >>> str(liquid_inert("{{ a }} & <b>"))
        '&#123;&#123; a &#125;&#125; &amp; &lt;b&gt;'
    """
    if isinstance(value, LiquidExpression):
        return value
    if isinstance(value, Markup):
        return Markup(str.translate(str(value), _BRACES))
    return Markup(str.translate(str(escape(value)), _BRACES))


def text_to_html(text: str) -> Markup:
    """Plain instruction text to simple HTML: blank lines separate paragraphs.

    A paragraph whose lines all start with ``- `` or ``* `` becomes a bullet list, one whose
    lines all start with ``1.``-style numbers a numbered list that starts at the first one's
    number; other line breaks are kept.
    :class:`~markupsafe.Markup` input is trusted HTML and returned as is.
    """
    if isinstance(text, Markup):
        return text
    blocks: list[str] = []
    for para in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()):
        lines = [line.strip() for line in para.split("\n") if line.strip()]
        if not lines:
            continue
        numbers = [m for line in lines if (m := _NUMBER_RE.match(line))]
        if all(line[:2] in ("- ", "* ") for line in lines):
            items = "".join(f"<li>{escape(line[2:].strip())}</li>" for line in lines)
            blocks.append(f"<ul>{items}</ul>")
        elif len(numbers) == len(lines):
            items = "".join(
                f"<li>{escape(line[m.end() :])}</li>"
                for line, m in zip(lines, numbers, strict=True)
            )
            # a list resumed after a note ("3. Submit.") keeps its number, as Markdown does
            first = int(numbers[0][1])
            blocks.append(
                f'<ol start="{first}">{items}</ol>' if first != 1 else f"<ol>{items}</ol>"
            )
        else:
            blocks.append("<p>" + "<br>".join(str(escape(line)) for line in lines) + "</p>")
    return Markup("".join(blocks))


def _carries_metadata(img: Any, data: bytes) -> bool:
    """Whether an image says more than its pixels (EXIF, XMP, a comment, PNG text).

    EXIF holds a phone photo's GPS position and the camera owner's name. An image embedded
    byte for byte carries them to every worker who opens the task; a re-encoded one (what
    :func:`_embed_local_image` does otherwise) does not.
    """
    if img.getexif() or _METADATA_KEYS & img.info.keys() or getattr(img, "text", None):
        return True
    if _trailing_bytes(data, img.format):
        return True
    # a GIF's comment or XMP may sit before any frame or after the last: Pillow reads one
    # into the info of the frame it comes before (one before the second frame was missed)
    # and one after the last image not at all, so the file's blocks are read
    return img.format == "GIF" and _gif_extras(data)


def _trailing_bytes(data: bytes, fmt: str | None) -> bool:
    """Whether a PNG, JPEG or WebP holds more than its picture: a block no viewer draws.

    Viewers stop at the image's end (IEND, EOI, the RIFF size) and show nothing of what
    follows, but a file embedded byte for byte takes it along to every worker: a phone's
    trailer (Samsung's holds the original of an edited photo), a zip or a second picture
    appended. Its end is found by walking its blocks, not by how the file ends: an appended
    JPEG or PNG ends as the first one does. Inside the file, only blocks that say how to
    draw the picture are plain; any other (a private PNG chunk, a JPEG's C2PA or extended
    XMP segment, a WebP chunk its VP8X flags do not announce, which Pillow never reads)
    counts as metadata. A GIF's are found by :func:`_gif_extras`.
    """
    if fmt == "PNG":
        return _png_extras(data)
    if fmt == "JPEG":
        return _jpeg_extras(data)
    if fmt == "WEBP":
        return _webp_without_metadata(data) != data
    return False


_PNG_PLAIN_CHUNKS: Final = frozenset(
    {b"IHDR", b"PLTE", b"IDAT", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB"}
    | {b"cICP", b"mDCV", b"cLLI", b"bKGD", b"pHYs", b"acTL", b"fcTL", b"fdAT"}
)
"""PNG chunks that say how to draw the picture (APNG's included); text, tIME, eXIf, a
private chunk say something else."""


def _png_extras(data: bytes) -> bool:
    """Whether a PNG has a chunk other than :data:`_PNG_PLAIN_CHUNKS` or bytes after IEND."""
    return _png_without_metadata(data) != data


def _png_without_metadata(data: bytes) -> bytes | None:
    """A PNG (or APNG) of its :data:`_PNG_PLAIN_CHUNKS` and IEND only, each as it was.

    Saved again by Pillow instead, it lost its gamma and chromaticities (gAMA, cHRM, which
    browsers apply: the picture was drawn lighter or darker) and a 16-bit PNG its low
    bits. ``None`` when the file is cut short (no IEND).
    """
    kept, at = [data[:8]], 8
    while at + 12 <= len(data):
        size, kind = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8]
        if at + 12 + size > len(data):
            return None
        if kind == b"IEND" or kind in _PNG_PLAIN_CHUNKS:
            kept.append(data[at : at + 12 + size])
        if kind == b"IEND":
            return b"".join(kept)
        at += 12 + size
    return None


_JPEG_SCAN_END: Final = re.compile(rb"\xff[^\x00\xd0-\xd7]")
"""Where a JPEG scan's entropy-coded data ends: a marker (0xFF 0x00 is a stuffed 0xFF)."""


def _jpeg_plain_segment(marker: int, body: bytes) -> bool:
    """A JFIF header without a thumbnail, a colour profile, Adobe's colour transform.

    The JFIF and Adobe segments are of their own length: bytes after their fields are no
    part of the picture (a JFIF thumbnail may show the photo before it was cropped).
    """
    if marker == 0xE0:
        return body.startswith(b"JFIF\0") and len(body) == 14 and body[12:14] == b"\0\0"
    if marker == 0xE2:
        return body.startswith(b"ICC_PROFILE\0")
    return marker == 0xEE and body.startswith(b"Adobe") and len(body) == 12


def _jpeg_extras(data: bytes) -> bool:
    """Whether a JPEG has an APPn or comment segment but the plain ones, or a byte past EOI.

    The end (EOI) is found by walking the segments and, past each scan's header, its coded
    data to the next marker.
    """
    at = 2
    while at + 2 <= len(data):
        if data[at] != 0xFF:
            return True
        marker = data[at + 1]
        if marker == 0xFF:  # a fill byte before a marker
            at += 1
            continue
        if marker == 0xD9:
            return at + 2 != len(data)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            at += 2
            continue
        size = int.from_bytes(data[at + 2 : at + 4], "big")
        if (0xE0 <= marker <= 0xEF or marker == 0xFE) and not _jpeg_plain_segment(
            marker, data[at + 4 : at + 2 + size]
        ):
            return True
        at += 2 + size
        if marker == 0xDA:  # a scan: its coded data runs to the next marker
            found = _JPEG_SCAN_END.search(data, at)
            at = found.start() if found else len(data)
    return True  # cut short: no EOI


def _gif_extras(data: bytes) -> bool:
    """Whether a GIF holds a comment, another application's extension or a trailing byte.

    See :func:`_gif_blocks` for what is plain. A GIF cut short (no trailer) holds nothing
    more than Pillow read of it.
    """
    walked = _gif_blocks(data)
    if walked is None:
        return True
    blocks, end = walked
    return any(not plain for _, _, plain in blocks) or (end is not None and end != len(data))


def _gif_without_metadata(data: bytes) -> bytes | None:
    """A GIF without its comments and other extensions, every image block as it was.

    Saved again by Pillow instead, an animation whose frames have their own colour tables
    was quantised anew (a frame of 384 colours came out of 256). ``None`` when the file is
    not laid out as GIF89a says, or is cut short.
    """
    walked = _gif_blocks(data)
    if walked is None:
        return None
    blocks, end = walked
    if end is None:
        return None
    header = data[: blocks[0][0] if blocks else end - 1]  # and the global colour table
    return header + b"".join(data[a:b] for a, b, plain in blocks if plain) + b"\x3b"


def _gif_blocks(data: bytes) -> tuple[list[tuple[int, int, bool]], int | None] | None:
    """Each block of a GIF after its header as ``(start, end, plain)``, and its trailer's end.

    The trailer's end is ``None`` in a GIF cut short before one. Blocks are walked as GIF89a
    lays them out: image descriptors (with their colour table and data sub-blocks) and
    extensions (label, sub-blocks), up to the trailer. Plain are the images, their graphic
    controls (timing, transparency) and the application extensions of looping and the
    colour profile; a comment, a plain-text extension (whose words no browser draws), XMP
    or another application's data are not. ``None``: a byte that starts no block, where
    Pillow read what it could and what else is there is unknown.
    """

    def skip_table(flags: int, at: int) -> int:
        return at + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)

    def skip_sub_blocks(at: int) -> int:
        while at < len(data) and data[at]:
            at += data[at] + 1
        return at + 1

    blocks: list[tuple[int, int, bool]] = []
    at = skip_table(data[10], 13) if len(data) > 13 else len(data)
    while at < len(data):
        block, start = data[at], at
        if block == 0x2C and at + 10 <= len(data):  # an image
            at = skip_sub_blocks(skip_table(data[at + 9], at + 10) + 1)
            blocks.append((start, min(at, len(data)), True))
        elif block == 0x21 and at + 2 <= len(data):  # an extension
            label = data[at + 1]
            name = data[at + 3 : at + 3 + data[at + 2]] if at + 3 <= len(data) else b""
            plain = label == 0xF9 or (label == 0xFF and name in _GIF_PLAIN_APPS)
            before = blocks[-1][0] if blocks else None
            if label == 0x01 and before is not None and data[before : before + 2] == b"\x21\xf9":
                # the graphic control of the plain text goes with it: left, it would time
                # the next image instead
                blocks[-1] = (*blocks[-1][:2], False)
            at = skip_sub_blocks(at + 2)
            blocks.append((start, min(at, len(data)), plain))
        elif block == 0x3B:  # the trailer: the file ends here, or bytes follow it
            return blocks, at + 1
        else:
            return None
    return blocks, None


_GIF_PLAIN_APPS: Final = frozenset({b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012"})
"""Application extensions that say how to show the picture: looping, its colour profile."""


_METADATA_KEYS: Final = frozenset({"xmp", "XML:com.adobe.xmp", "comment", "photoshop"})


_FRAME_INFO: Final[Mapping[str, tuple[str, ...]]] = {
    "GIF": ("duration", "disposal", "transparency", "background", "loop"),
    "PNG": ("duration", "loop", "transparency"),  # APNG: frames come composited
    "WEBP": ("duration", "loop", "background"),
}
"""What a frame's info says about the animation, not about who made it, per format."""


def _animation_without_metadata(img: Any, fmt: str) -> bytes:
    """A small animation (GIF, APNG, WebP) saved again, every frame, without its metadata.

    Re-encoded as a still image (to drop a comment, XMP, EXIF or PNG text), an animation
    that shows workers how to draw lost every frame but the first.
    """
    from PIL import ImageSequence

    frames = []
    for frame in ImageSequence.Iterator(img):
        copy = frame.copy()
        copy.info = {k: v for k, v in frame.info.items() if k in _FRAME_INFO[fmt]}
        frames.append(copy)
    options: dict[str, Any] = {}
    if fmt != "GIF":  # each frame's own timing (GIF's writer reads it from each frame)
        options["duration"] = [f.info.get("duration", 0) for f in frames]
        options["loop"] = img.info.get("loop", 0)
    if fmt == "WEBP":
        options["lossless"] = True
    clear = any(f.mode in ("RGBA", "LA", "PA") or "transparency" in f.info for f in frames)
    if fmt == "GIF" and clear:
        # the frames come whole (composited): a frame drawn over the last one without
        # clearing it first left what it had made transparent showing, a box moved across a
        # clear background left a trail; cleared to the background, each frame is itself
        options["disposal"] = 2
    if fmt == "PNG" and img.info.get("default_image"):
        # the APNG's first image is a still for viewers that read no animation, not a frame
        # of it (the frames' timings are then the others'): saved as a frame, it was
        # played too, before the first, with no duration (0 ms, which browsers draw as 100)
        options["default_image"] = True
        options["duration"] = options["duration"][1:]
    out = io.BytesIO()
    frames[0].save(out, format=fmt, save_all=True, append_images=frames[1:], **options)
    return out.getvalue()


_WEBP_PLAIN_CHUNKS: Final = frozenset(
    {b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF", b"ICCP"}
)
"""WebP chunks that say how to draw the picture; an EXIF or XMP chunk (read by Pillow only
where the VP8X flags announce it) and any chunk of another name say something else."""


def _webp_without_metadata(data: bytes) -> bytes | None:
    """A WebP file without its EXIF, XMP and unknown chunks, every other byte as it was.

    Its frames stay the very bitstreams they were: saved again (losslessly, so as not to
    lose quality twice), a 50 KB lossy animation came out at 1 MB, embedded twice in the
    template. ``None`` when the file is not laid out as the RIFF container says.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    end = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    chunks, at = [], 12
    while at + 8 <= end:
        kind, size = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], "little")
        whole = data[at : at + 8 + size + (size & 1)]
        if len(whole) < 8 + size:
            return None
        whole += b"\0" * (len(whole) & 1)  # the pad byte of an odd chunk, if it was left off
        if kind == b"VP8X" and size >= 1:  # its flags say EXIF (0x08) and XMP (0x04) follow
            whole = whole[:8] + bytes([whole[8] & ~0x0C]) + whole[9:]
        if kind in _WEBP_PLAIN_CHUNKS:
            chunks.append(whole)
        at += len(whole)
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def _embed_local_image(path: Path, max_side: int) -> str:
    """A local image as a data URI, downscaled (and re-encoded) when it is large."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TemplateError(f"example image not found: {path}") from None
    except OSError as exc:
        raise TemplateError(f"cannot read example image {path}: {exc.strerror or exc}") from exc
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            small_already = max(img.size) <= max_side and len(data) <= _MAX_EMBED_BYTES
            # a picture stored sideways is turned upright by its EXIF orientation, which
            # goes with the EXIF: cut out, the example showed sideways; it is re-encoded
            cut = small_already and img.getexif().get(0x0112, 1) == 1
            if fmt in _MIME and small_already and not _carries_metadata(img, data):
                return data_uri(data, _MIME[fmt])
            if fmt == "WEBP" and cut and (bare := _webp_without_metadata(data)):
                return data_uri(bare, _MIME[fmt])
            if fmt == "GIF" and small_already and (bare := _gif_without_metadata(data)):
                return data_uri(bare, _MIME[fmt])
            if fmt == "PNG" and cut and (bare := _png_without_metadata(data)):
                return data_uri(bare, _MIME[fmt])
            animated = getattr(img, "n_frames", 1) > 1
            if fmt in _FRAME_INFO and small_already and animated:
                return data_uri(_animation_without_metadata(img, fmt), _MIME[fmt])
            eight_bit_colour_key(img, data)
            small = ImageOps.exif_transpose(img)
            if small.mode.startswith("I"):  # 16 bits: convert("RGB") clipped them white
                small = eight_bits(small)
            small.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            alpha = small.mode in ("RGBA", "LA") or "transparency" in small.info
            pixels = small.convert("RGBA" if alpha else "RGB")
            # the colour profile stays; a comment, EXIF or text would be saved along
            pixels.info = {k: v for k, v in pixels.info.items() if k == "icc_profile"}
            # a small PNG or still GIF re-encoded only to drop its metadata stays lossless
            if alpha or (fmt in ("PNG", "GIF") and small_already):
                pixels.save(out, format="PNG", optimize=True)
                mime = "image/png"
            else:
                pixels.save(out, format="JPEG", quality=85, optimize=True)
                mime = "image/jpeg"
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise TemplateError(f"example image {path} is not a readable image: {exc}") from exc
    return data_uri(out.getvalue(), mime)


def example_image_src(
    image: str | os.PathLike[str], *, max_side: int = DEFAULT_MAX_IMAGE_SIDE
) -> str:
    """What goes in an example ``<img src>``: URL as is, s3:// as Liquid, local file embedded.

    Raises:
        TemplateError: a local file that is missing or not an image, or an s3:// key with
            characters that cannot sit inside a Liquid string.
        S3UriError: a malformed ``s3://`` URI.
    """
    text = os.fspath(image)
    if text.startswith(("https://", "http://", "data:image/")):
        return text
    if is_s3_uri(text):
        parse_s3_uri(text)
        if _UNSAFE_IN_LIQUID_STRING.search(text):
            raise TemplateError(
                f"example image URI {text!r} contains quotes, braces, %, <, >, backslash or "
                "control characters; rename the object or pass an https:// URL"
            )
        return LiquidExpression(f'{{{{ "{text}" | grant_read_access }}}}')
    return _embed_local_image(Path(text), max_side)


def _resolve_examples(
    examples: Sequence[tuple[str | os.PathLike[str], str]], max_side: int, kind: str
) -> list[ResolvedExample]:
    resolved: list[ResolvedExample] = []
    for index, pair in enumerate(examples):
        try:
            image, description = pair
        except (TypeError, ValueError):
            raise TemplateError(
                f"{kind} example #{index + 1} must be an (image, description) pair, got {pair!r}"
            ) from None
        if not isinstance(description, str):
            raise TemplateError(
                f"{kind} example #{index + 1}: the description must be text, "
                f"got {type(description).__name__}"
            )
        plain = re.sub(r"\s+", " ", str(description)).strip()
        resolved.append(
            ResolvedExample(
                src=example_image_src(image, max_side=max_side),
                description=text_to_html(description),
                alt=plain[:125] or f"{kind} example {index + 1}",
            )
        )
    return resolved


def _version() -> str:
    from gt_toolkit import __version__

    return __version__


def _render(
    template_name: str, context: Mapping[str, Any], template_dir: str | os.PathLike[str] | None
) -> str:
    folder = Path(template_dir) if template_dir is not None else None
    return render_page(template_name, context, template_dir=folder, finalize=liquid_inert)


def _common_context(
    *,
    labels: Sequence[str],
    task_type: str,
    header: str,
    short_instructions: str,
    full_instructions: str,
    good_examples: Sequence[tuple[str | os.PathLike[str], str]],
    bad_examples: Sequence[tuple[str | os.PathLike[str], str]],
    element_name: str,
    task_input_overrides: bool,
    full_instructions_header: str,
    good_heading: str,
    bad_heading: str,
    max_image_side: int,
    include_script: bool,
) -> dict[str, Any]:
    labels = list(labels)
    if labels or not task_input_overrides:
        problems = validate_labels(labels, task_type=task_type)
        if problems:
            raise ValidationError(problems, what="label list")
    if not _ELEMENT_NAME_RE.match(element_name):
        raise TemplateError(
            f"element name {element_name!r} must be letters, digits, '_' or '-' "
            "(it becomes the key in every worker answer)"
        )
    if max_image_side < 16:
        raise TemplateError(f"max_image_side must be at least 16 pixels, got {max_image_side}")
    return {
        "version": _version(),
        "include_script": include_script,
        "element_name": element_name,
        "header": header,
        "labels_json": json.dumps(labels, ensure_ascii=False),
        "task_input_overrides": task_input_overrides,
        "full_instructions_header": full_instructions_header,
        "short_instructions": text_to_html(short_instructions),
        "full_instructions": text_to_html(full_instructions),
        "good_heading": good_heading,
        "bad_heading": bad_heading,
        "good_examples": _resolve_examples(good_examples, max_image_side, "good"),
        "bad_examples": _resolve_examples(bad_examples, max_image_side, "bad"),
    }


def render_bounding_box_template(
    labels: Sequence[str],
    header: str,
    short_instructions: str,
    full_instructions: str,
    good_examples: Sequence[tuple[str | os.PathLike[str], str]] = (),
    bad_examples: Sequence[tuple[str | os.PathLike[str], str]] = (),
    *,
    element_name: str = "boundingBox",
    task_input_overrides: bool = True,
    initial_value: bool = True,
    full_instructions_header: str = "Full instructions",
    good_heading: str = "Good examples",
    bad_heading: str = "Bad examples",
    max_image_side: int = DEFAULT_MAX_IMAGE_SIDE,
    include_script: bool = True,
    template_dir: str | os.PathLike[str] | None = None,
) -> str:
    """A crowd-bounding-box worker template (crowd-HTML + Liquid) for ``UiTemplateS3Uri``.

    Args:
        labels: the label names; may be empty only when ``task_input_overrides`` is on and the
            pre-annotation Lambda supplies ``taskInput.labels``.
        header: the question above the image.
        short_instructions: plain text (blank lines = paragraphs, ``- `` lines = bullets) or
            trusted :class:`~markupsafe.Markup`; shown in the side panel.
        full_instructions: as ``short_instructions``; shown behind "View full instructions".
        good_examples: ``(image, description)`` pairs; see :class:`Example`.
        bad_examples: as ``good_examples``.
        element_name: the key of each worker answer (``boundingBox`` like the built-in task).
        task_input_overrides: use ``task.input.labels``/``task.input.header`` when present.
        initial_value: pass ``task.input.initialValue`` (a list of
            ``{label, left, top, width, height}``) as pre-drawn boxes when present.
        max_image_side: longer side, in pixels, of embedded local example images.
        include_script: include the ``crowd-html-elements.js`` script tag.
        template_dir: a folder of replacement templates (default: the packaged ones).

    Raises:
        ValidationError: invalid labels (duplicates, too long, more than 50, ...).
        TemplateError: a missing or unreadable example image, a bad element name.

    Examples:
        >>> html = render_bounding_box_template(
        ...     ["ball"], "Box every ball", "One tight box per ball.", "Box every ball.")
        >>> 'name="boundingBox"' in html
        True
    """
    context = _common_context(
        labels=labels,
        task_type="BoundingBox",
        header=header,
        short_instructions=short_instructions,
        full_instructions=full_instructions,
        good_examples=good_examples,
        bad_examples=bad_examples,
        element_name=element_name,
        task_input_overrides=task_input_overrides,
        full_instructions_header=full_instructions_header,
        good_heading=good_heading,
        bad_heading=bad_heading,
        max_image_side=max_image_side,
        include_script=include_script,
    )
    context["initial_value"] = initial_value
    return _render("bounding_box.html.j2", context, template_dir)


def render_image_classifier_template(
    labels: Sequence[str],
    header: str,
    short_instructions: str,
    full_instructions: str,
    good_examples: Sequence[tuple[str | os.PathLike[str], str]] = (),
    bad_examples: Sequence[tuple[str | os.PathLike[str], str]] = (),
    *,
    multi_label: bool = False,
    element_name: str = "category",
    task_input_overrides: bool = True,
    full_instructions_header: str = "Full instructions",
    good_heading: str = "Good examples",
    bad_heading: str = "Bad examples",
    max_image_side: int = DEFAULT_MAX_IMAGE_SIDE,
    include_script: bool = True,
    template_dir: str | os.PathLike[str] | None = None,
) -> str:
    """A crowd-image-classifier worker template (``-multi-select`` with ``multi_label``).

    Arguments as :func:`render_bounding_box_template`; the labels fill ``categories`` and
    need at least two (Ground Truth's classification rule).
    """
    context = _common_context(
        labels=labels,
        task_type="ImageMultiClassMultiLabel" if multi_label else "ImageMultiClass",
        header=header,
        short_instructions=short_instructions,
        full_instructions=full_instructions,
        good_examples=good_examples,
        bad_examples=bad_examples,
        element_name=element_name,
        task_input_overrides=task_input_overrides,
        full_instructions_header=full_instructions_header,
        good_heading=good_heading,
        bad_heading=bad_heading,
        max_image_side=max_image_side,
        include_script=include_script,
    )
    context["element"] = (
        "crowd-image-classifier-multi-select" if multi_label else "crowd-image-classifier"
    )
    return _render("image_classifier.html.j2", context, template_dir)
