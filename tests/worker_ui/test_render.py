"""Worker templates: Jinja output run through a real Liquid engine, then parsed as HTML."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liquid import Environment
from markupsafe import Markup
from PIL import Image

from gt_toolkit import Example, render_bounding_box_template, render_image_classifier_template
from gt_toolkit.errors import S3UriError, TemplateError, ValidationError
from gt_toolkit.templating import find_template_dir
from gt_toolkit.worker_ui.render import example_image_src, liquid_inert, text_to_html
from tests.helpers import REPO, huge_png_header, seen_by_worker

GOOD = REPO / "samples" / "examples" / "good_tight.jpg"
BAD = REPO / "samples" / "examples" / "bad_loose.jpg"
VOID = {"img", "br", "meta", "input", "link", "hr", "source"}


# --- a small DOM: stdlib html.parser, entities decoded as a browser would ------------------
@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str, cls: str | None = None) -> list[Node]:
        return [
            n
            for n in self.iter()
            if n.tag == tag and (cls is None or cls in n.attrs.get("class", "").split())
        ]

    def find(self, tag: str, cls: str | None = None) -> Node:
        found = self.find_all(tag, cls)
        assert found, f"no <{tag} class={cls}>"
        return found[0]

    @property
    def text(self) -> str:
        return "".join(self.text_parts) + "".join(c.text for c in self.children)


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(Node("#text", {}, text_parts=[data]))


def parse_html(text: str) -> Node:
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root


# --- Ground Truth's Liquid, configured here independently of gt_toolkit.worker_ui.preview
# ------------
def signed(uri: str) -> str:
    return "https://signed.example/get?u=" + uri + "&sig=1"


def gt_liquid(template: str, task_input: dict[str, Any]) -> str:
    env = Environment(autoescape=True)
    env.filters["grant_read_access"] = signed
    env.filters["to_json"] = lambda v: json.dumps(v)
    env.filters["skip_autoescape"] = lambda v: Markup(v)
    return str(env.from_string(template).render(task={"input": task_input}))


TASK = {"taskObject": "s3://bucket/images/img 1.jpg"}


def render_default(**overrides: Any) -> str:
    kwargs: dict[str, Any] = {
        "labels": ["ball", "cup"],
        "header": "Box every ball",
        "short_instructions": "One tight box per ball.",
        "full_instructions": "Draw one tight box around each ball.\n\n- include cut balls",
        "good_examples": [(GOOD, "tight boxes")],
        "bad_examples": [(BAD, "loose boxes"), ("s3://bucket/ex/missed.jpg", "missed one")],
    }
    kwargs.update(overrides)
    return render_bounding_box_template(**kwargs)


def test_bounding_box_template_structure() -> None:
    template = render_default()
    assert 'src="{{ task.input.taskObject | grant_read_access }}"' in template
    dom = parse_html(gt_liquid(template, TASK))
    assert dom.find_all("script")[0].attrs["src"] == (
        "https://assets.crowd.aws/crowd-html-elements.js"
    )
    form = dom.find("crowd-form")
    box = form.find("crowd-bounding-box")
    assert box.attrs["name"] == "boundingBox"
    assert box.attrs["src"] == signed(TASK["taskObject"])
    assert box.attrs["header"] == "Box every ball"
    assert json.loads(box.attrs["labels"]) == ["ball", "cup"]
    assert "initial-value" not in box.attrs
    full = box.find("full-instructions")
    short = box.find("short-instructions")
    assert full.attrs["header"] == "Full instructions"
    assert "Draw one tight box around each ball." in full.text
    assert [li.text for li in full.find_all("li")] == ["include cut balls"]
    assert "One tight box per ball." in short.text
    for region in (short, full):
        good = region.find_all("figure", "gt-example-good")
        bad = region.find_all("figure", "gt-example-bad")
        assert [f.find("figcaption").text for f in good] == ["tight boxes"]
        assert [f.find("figcaption").text for f in bad] == ["loose boxes", "missed one"]
        assert good[0].find("img").attrs["src"].startswith("data:image/jpeg;base64,")
        assert bad[1].find("img").attrs["src"] == signed("s3://bucket/ex/missed.jpg")
        headings = [h.text for h in region.find_all("h3")]
        assert headings == ["Good examples", "Bad examples"]


def test_embedded_example_is_the_file_itself_when_small() -> None:
    dom = parse_html(gt_liquid(render_default(), TASK))
    src = dom.find("figure", "gt-example-good").find("img").attrs["src"]
    assert base64.b64decode(src.split(",", 1)[1]) == GOOD.read_bytes()


def test_initial_value_from_task_input_round_trips() -> None:
    boxes = [{"label": 'a "b"', "left": 1, "top": 2, "width": 30, "height": 40}]
    dom = parse_html(gt_liquid(render_default(), {**TASK, "initialValue": boxes}))
    assert json.loads(dom.find("crowd-bounding-box").attrs["initial-value"]) == boxes


def test_initial_value_can_be_switched_off() -> None:
    template = render_default(initial_value=False)
    dom = parse_html(gt_liquid(template, {**TASK, "initialValue": [{"label": "a"}]}))
    assert "initial-value" not in dom.find("crowd-bounding-box").attrs


def test_task_input_labels_and_header_override_the_baked_ones() -> None:
    task = {**TASK, "labels": ["dog", "<cat>"], "header": "Dogs & cats"}
    box = parse_html(gt_liquid(render_default(), task)).find("crowd-bounding-box")
    assert json.loads(box.attrs["labels"]) == ["dog", "<cat>"]
    assert box.attrs["header"] == "Dogs & cats"


def test_static_labels_ignore_task_input() -> None:
    task = {**TASK, "labels": ["dog"], "header": "Dogs"}
    box = parse_html(gt_liquid(render_default(task_input_overrides=False), task)).find(
        "crowd-bounding-box"
    )
    assert json.loads(box.attrs["labels"]) == ["ball", "cup"]
    assert box.attrs["header"] == "Box every ball"


def test_labels_may_come_only_from_task_input() -> None:
    template = render_default(labels=[])
    box = parse_html(gt_liquid(template, TASK)).find("crowd-bounding-box")
    assert json.loads(box.attrs["labels"]) == []
    box = parse_html(gt_liquid(template, {**TASK, "labels": ["x"]})).find("crowd-bounding-box")
    assert json.loads(box.attrs["labels"]) == ["x"]
    with pytest.raises(ValidationError, match="at least 1 label"):
        render_default(labels=[], task_input_overrides=False)


HOSTILE = [
    ("html", "<b>bold</b> <img src=x onerror=alert(1)>"),
    ("liquid-output", "{{ 7 | plus: 1 }}"),
    ("liquid-tag", "{% if true %}X{% endif %}"),
    ("liquid-raw-escape", "{% endraw %}{{ task.input.taskObject }}"),
    ("liquid-comment", "{% comment %}gone{% endcomment %}"),
    ("lone-braces", "{ } {{ }} {%"),
    ("quotes", 'say "hi" it\'s `x`'),
    ("ampersands", "a & b &amp; c &#123; &lt;"),
    ("script-end", "</script><script>alert(1)</script>"),
    ("rtl", "עברית \u202eevil\u202c العربية"),
    ("emoji", "🏀 ball 👍🏽 ZWJ 👨‍👩‍👧"),
    ("json-ish", '["a", {"b": 1}]\\u003c'),
    ("jinja", "[[ header ]] [% if x %]"),
]


@pytest.mark.parametrize("hostile", [h for _, h in HOSTILE], ids=[i for i, _ in HOSTILE])
def test_hostile_strings_survive_as_literal_text(hostile: str) -> None:
    # a label may not hold a bidi override (it draws another label): there, an isolate
    label = hostile.replace("\u202e", "\u2067").replace("\u202c", "\u2069")
    template = render_default(
        labels=[label, "ball"],
        header=hostile,
        short_instructions=hostile,
        full_instructions=hostile,
        good_examples=[(GOOD, hostile)],
        bad_examples=[(BAD, hostile)],
        full_instructions_header=hostile,
    )
    # Whatever the input, the only live Liquid is what the template itself writes.
    baseline = render_default(good_examples=[(GOOD, "g")], bad_examples=[(BAD, "b")])
    assert template.count("{{") == baseline.count("{{")
    assert template.count("{%") == baseline.count("{%")
    dom = parse_html(gt_liquid(template, TASK))
    assert dom.find_all("script") == [dom.find("script")]  # only the crowd elements script
    box = dom.find("crowd-bounding-box")
    assert json.loads(box.attrs["labels"]) == [label, "ball"]
    assert box.attrs["header"] == hostile
    full = box.find("full-instructions")
    assert full.attrs["header"] == hostile
    assert full.find("div", "gt-instructions").text == hostile
    assert box.find("short-instructions").find("div", "gt-instructions").text == hostile
    captions = [f.text for f in dom.find_all("figcaption")]
    assert captions == [hostile] * 4
    assert all(img.attrs["alt"] == hostile for img in dom.find_all("img", "gt-example-image"))
    assert not dom.find_all("b")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text(min_size=1, max_size=30).filter(lambda s: s.strip() == s and seen_by_worker(s)),
        min_size=1,
        max_size=6,
        unique_by=seen_by_worker,  # labels workers can tell apart
    )
)
def test_any_labels_round_trip_through_jinja_liquid_and_html(labels: list[str]) -> None:
    template = render_bounding_box_template(labels, "h", "s", "f", task_input_overrides=False)
    box = parse_html(gt_liquid(template, TASK)).find("crowd-bounding-box")
    assert json.loads(box.attrs["labels"]) == labels


@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi-select"])
def test_image_classifier_template(multi: bool) -> None:
    template = render_image_classifier_template(
        ["cat", 'dog "good boy"'],
        "What animal?",
        "Pick one.",
        "Pick the animal.",
        [Example(GOOD, "a clear photo")],
        [Example(BAD, "blurred")],
        multi_label=multi,
    )
    tag = "crowd-image-classifier-multi-select" if multi else "crowd-image-classifier"
    dom = parse_html(gt_liquid(template, TASK))
    element = dom.find("crowd-form").find(tag)
    assert element.attrs["name"] == "category"
    assert element.attrs["src"] == signed(TASK["taskObject"])
    assert json.loads(element.attrs["categories"]) == ["cat", 'dog "good boy"']
    assert element.find("short-instructions").find("figcaption", None).text == "a clear photo"
    assert len(element.find_all("figure", "gt-example-bad")) == 2


def test_image_classifier_needs_two_labels() -> None:
    with pytest.raises(ValidationError, match="at least 2 labels"):
        render_image_classifier_template(["cat"], "h", "s", "f", task_input_overrides=False)


def test_large_local_example_is_downscaled(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.effect_noise((2000, 1200), 40).convert("RGB").save(path)
    src = example_image_src(path, max_side=300)
    assert src.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as img:
        assert img.size == (300, 180)


def test_transparent_example_stays_png(tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    Image.new("RGBA", (900, 300), (255, 0, 0, 128)).save(path)
    src = example_image_src(path, max_side=450)
    with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as img:
        assert (img.format, img.mode, img.size) == ("PNG", "RGBA", (450, 150))


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("https://example.com/a.jpg?x=1&y=2", "https://example.com/a.jpg?x=1&y=2"),
        ("data:image/png;base64,AAAA", "data:image/png;base64,AAAA"),
        ("s3://bucket/d/ex ample.png", '{{ "s3://bucket/d/ex ample.png" | grant_read_access }}'),
    ],
    ids=["https", "data-uri", "s3"],
)
def test_example_image_src_kinds(image: str, expected: str) -> None:
    assert example_image_src(image) == expected


def test_https_example_url_survives_escaping() -> None:
    url = "https://example.com/a.jpg?x=1&y={2}"
    template = render_default(good_examples=[(url, "remote")])
    img = parse_html(gt_liquid(template, TASK)).find("figure", "gt-example-good").find("img")
    assert img.attrs["src"] == url


@pytest.mark.parametrize(
    ("image", "error", "fragment"),
    [
        ("missing/nope.jpg", TemplateError, "example image not found: missing/nope.jpg"),
        (str(REPO / "pyproject.toml"), TemplateError, "is not a readable image"),
        ('s3://bucket/a"b.jpg', TemplateError, "contains quotes, braces"),
        ("s3://bucket/{{x}}.jpg", TemplateError, "contains quotes, braces"),
        ("s3://B!/x.jpg", S3UriError, "bad bucket name"),
    ],
    ids=["missing-file", "not-an-image", "quote-in-key", "liquid-in-key", "bad-bucket"],
)
def test_bad_example_images_are_clear_errors(
    image: str, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as info:
        render_default(good_examples=[(image, "x")])
    assert fragment in str(info.value)


def test_an_example_image_too_big_to_open_is_a_template_error(tmp_path: Path) -> None:
    huge = tmp_path / "huge.png"
    huge.write_bytes(huge_png_header())
    with pytest.raises(TemplateError, match=r"is not a readable image: .*decompression bomb"):
        render_default(good_examples=[(huge, "x")])


@pytest.mark.parametrize(
    ("overrides", "error", "fragment"),
    [
        ({"good_examples": [("a.jpg",)]}, TemplateError, "must be an (image, description) pair"),
        ({"good_examples": [(GOOD, 3)]}, TemplateError, "description must be text"),
        ({"element_name": 'box" onload="x'}, TemplateError, "element name"),
        ({"labels": ["a", "a"]}, ValidationError, "appears 2 times"),
        ({"labels": [f"l{i}" for i in range(51)]}, ValidationError, "at most 50"),
        ({"max_image_side": 4}, TemplateError, "at least 16 pixels"),
    ],
    ids=["not-a-pair", "non-text-description", "element-name", "duplicate", "51-labels", "tiny"],
)
def test_bad_arguments_are_clear_errors(
    overrides: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as info:
        render_default(**overrides)
    assert fragment in str(info.value)


def test_text_to_html_paragraphs_and_lists() -> None:
    html = text_to_html("First line\nsecond line\n\n1. one\n2) two\n\n* a\n- b")
    assert str(html) == (
        "<p>First line<br>second line</p><ol><li>one</li><li>two</li></ol>"
        "<ul><li>a</li><li>b</li></ul>"
    )


def test_trusted_markup_keeps_tags_but_not_liquid() -> None:
    template = render_default(short_instructions=Markup("<em>Tight</em> {{ x }}"))
    short = parse_html(gt_liquid(template, TASK)).find("short-instructions")
    assert short.find("em").text == "Tight"
    assert "{{ x }}" in short.text


def test_liquid_inert_examples() -> None:
    assert str(liquid_inert("{{a}}")) == "&#123;&#123;a&#125;&#125;"
    assert str(liquid_inert(Markup("<i>{%</i>"))) == "<i>&#123;%</i>"


def test_templates_found_and_replaceable(tmp_path: Path) -> None:
    assert (find_template_dir() / "bounding_box.html.j2").is_file()
    (tmp_path / "bounding_box.html.j2").write_text(
        "<crowd-form>[[ header ]]|[[ labels_json ]]</crowd-form>"
    )
    out = render_default(template_dir=tmp_path, header="<H>")
    assert out == "<crowd-form>&lt;H&gt;|[&#34;ball&#34;, &#34;cup&#34;]</crowd-form>"


def test_missing_template_is_a_template_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"cannot render bounding_box\.html\.j2"):
        render_default(template_dir=tmp_path)


def test_a_numbered_list_resumed_after_a_note_keeps_its_numbers() -> None:
    """'3. Submit.' after a note was rendered as an <ol> from 1: workers read '1. Submit.'."""
    html = text_to_html(
        "1. Find every ball.\n2. Draw a box.\n\nNote: cut balls count.\n\n3. Submit."
    )
    assert html == (
        "<ol><li>Find every ball.</li><li>Draw a box.</li></ol>"
        "<p>Note: cut balls count.</p>"
        '<ol start="3"><li>Submit.</li></ol>'
    )


def test_a_line_starting_with_a_huge_number_is_a_paragraph() -> None:
    """The list number is read with int(): 5,000 digits would exceed Python's int limit."""
    assert text_to_html("9" * 5000 + ". boxes") == "<p>" + "9" * 5000 + ". boxes</p>"


def _embedded(path: Path) -> bytes:
    src = example_image_src(path)
    assert src.startswith("data:image/")
    return base64.b64decode(src.split(",", 1)[1])


def test_a_small_example_photo_does_not_carry_its_gps_position(tmp_path: Path) -> None:
    """A phone photo small enough to embed as is went into the template byte for byte, EXIF
    and all: every worker who opened the task could read where it was taken (larger photos
    were re-encoded without it)."""
    exif = Image.Exif()
    exif[0x010F] = "CameraOwnerPhone"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 1.0)}
    photo = tmp_path / "good.jpg"
    Image.new("RGB", (64, 48), "blue").save(photo, exif=exif.tobytes())
    data = _embedded(photo)
    assert b"CameraOwnerPhone" not in data
    with Image.open(io.BytesIO(data)) as img:
        assert not img.getexif().get_ifd(0x8825)
        assert img.size == (64, 48)


@pytest.mark.parametrize("side", [60, 1000])
def test_example_comments_and_text_chunks_are_not_embedded(tmp_path: Path, side: int) -> None:
    """A JPEG comment reached the template whatever the size (Pillow saves im.info's comment
    when re-encoding too); a small PNG's text chunks went in as is."""
    jpeg = tmp_path / "c.jpg"
    Image.new("RGB", (side, side), "red").save(jpeg, comment=b"internal ticket 1234")
    assert b"ticket" not in _embedded(jpeg)
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Private")
    png = tmp_path / "t.png"
    Image.new("RGB", (side, side), "red").save(png, pnginfo=info)
    data = _embedded(png)
    assert b"Jane Private" not in data
    if side <= 480:  # re-encoded only to drop the text: still a lossless PNG
        assert data.startswith(b"\x89PNG")


@pytest.mark.parametrize("side", [60, 1000])
def test_a_16_bit_grayscale_example_is_scaled_not_clipped_white(tmp_path: Path, side: int) -> None:
    """A 16-bit X-ray or depth map (``I;16``) re-encoded for the template went through
    ``convert("RGB")``, which clips its values at 255: the embedded example was white but
    for its darkest pixels (a large one always, a small one once it had a text chunk)."""
    from PIL import PngImagePlugin

    ramp = Image.new("I;16", (side, 8))
    ramp.putdata([x * 65535 // (side - 1) for _ in range(8) for x in range(side)])
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "scanner 2.1")  # a small one is re-encoded to drop it
    path = tmp_path / "xray.png"
    ramp.save(path, pnginfo=info)
    if side <= 480:  # a small one loses its text chunk only: its 16 bits stay as they were
        with Image.open(io.BytesIO(_embedded(path))) as img, Image.open(path) as before:
            assert not img.info.get("Software") and img.mode == before.mode
            assert img.tobytes() == before.tobytes()
        return
    with Image.open(io.BytesIO(_embedded(path))) as img:
        gray = img.convert("L")
        width = gray.width
        shades = [gray.getpixel((width * k // 4, gray.height // 2)) for k in range(4)]
    assert shades == sorted(shades) and shades[-1] - shades[0] > 150
    assert 40 < shades[1] < 100 and 100 < shades[2] < 160  # a quarter, a half of the way


def test_a_small_animated_example_keeps_its_frames_without_its_comment(tmp_path: Path) -> None:
    """A small animated GIF with a comment was re-encoded to drop it as a still JPEG: the
    animation that showed workers how to draw a box was its first frame only."""
    from PIL import ImageSequence

    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (40, 30), c).convert("P") for c in colours]
    gif = tmp_path / "how-to.gif"
    frames[0].save(
        gif, save_all=True, append_images=frames[1:], duration=200, loop=0, comment=b"ticket 99"
    )
    data = _embedded(gif)
    assert b"ticket" not in data
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "GIF"
        shown = [f.convert("RGB").getpixel((5, 5)) for f in ImageSequence.Iterator(img)]
    assert shown == colours


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_a_small_animated_png_or_webp_example_keeps_its_frames_without_its_text(
    tmp_path: Path, fmt: str
) -> None:
    """An APNG with a text chunk was re-encoded as a still PNG, an animated WebP with XMP
    as a still JPEG: the animation became its first frame (f7a14a3 kept GIF's frames only)."""
    from PIL import ImageSequence, PngImagePlugin

    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (40, 30), c) for c in colours]
    path = tmp_path / f"how-to.{fmt.lower()}"
    extra: dict[str, Any] = {"xmp": b"<x:xmpmeta>ticket 99</x:xmpmeta>", "lossless": True}
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "ticket 99")
        extra = {"pnginfo": info}
    frames[0].save(
        path, save_all=True, append_images=frames[1:], duration=[100, 200, 300], loop=0, **extra
    )
    data = _embedded(path)
    assert b"ticket" not in data
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == fmt
        shown = [
            (f.convert("RGB").getpixel((5, 5)), f.info.get("duration"))
            for f in ImageSequence.Iterator(img)
        ]
    assert shown == list(zip(colours, [100, 200, 300], strict=True))


def test_a_comment_with_a_later_gif_frame_is_dropped_too(tmp_path: Path) -> None:
    """A GIF may carry a comment before any frame; Pillow reads one that comes before the
    second frame into that frame's info only, so the check of the first frame's saw none and
    the small animation went into the template byte for byte, comment and all."""
    from PIL import ImageSequence

    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (40, 30), c).convert("P") for c in colours]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=200)
    data = buf.getvalue()
    second = data.index(b"\x21\xf9", data.index(b"\x21\xf9") + 1)  # its control extension
    text = b"taken at 52.5N 13.4E by J. Doe"
    comment = b"\x21\xfe" + bytes([len(text)]) + text + b"\x00"  # a comment extension block
    gif = tmp_path / "how-to.gif"
    gif.write_bytes(data[:second] + comment + data[second:])
    with Image.open(gif) as img:  # what the file is: the comment rides on the second frame
        img.seek(1)
        assert img.info["comment"] == text
    embedded = _embedded(gif)
    assert b"J. Doe" not in embedded
    with Image.open(io.BytesIO(embedded)) as img:
        assert img.format == "GIF"
        shown = [f.convert("RGB").getpixel((5, 5)) for f in ImageSequence.Iterator(img)]
    assert shown == colours


def test_an_apng_example_keeps_its_default_image_out_of_the_animation(tmp_path: Path) -> None:
    """An APNG's default image is a still for viewers that read no animation, not a frame:
    saved again to drop a text chunk, it was played too, as an extra first frame (0 ms)."""
    from PIL import ImageSequence, PngImagePlugin

    colours = [(255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (40, 30), c) for c in colours]
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "J. Doe")
    png = tmp_path / "how-to.png"
    frames[0].save(
        png,
        save_all=True,
        append_images=frames[1:],
        default_image=True,
        duration=[300, 200, 100],  # the animation's three frames
        loop=0,
        pnginfo=text,
    )
    embedded = _embedded(png)
    assert b"J. Doe" not in embedded

    def played(image: Image.Image) -> list[tuple[Any, Any]]:
        assert image.info.get("default_image")
        shown = [
            (f.convert("RGB").getpixel((5, 5)), f.info.get("duration"))
            for f in ImageSequence.Iterator(image)
        ]
        return shown[1:]  # Pillow reads the default image first

    with Image.open(png) as img:
        before = played(img)
    with Image.open(io.BytesIO(embedded)) as img:
        assert played(img) == before == [((255, 0, 0), 300), ((0, 255, 0), 200), ((0, 0, 255), 100)]


@pytest.mark.parametrize("extension", ["comment", "xmp"])
def test_a_gif_comment_or_xmp_after_its_image_is_dropped_too(
    tmp_path: Path, extension: str
) -> None:
    """GIF89a allows a comment or an application extension (XMP) after the last image,
    before the trailer; Pillow does not read it into any info, so the small GIF went into
    the template byte for byte, comment and all."""
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).convert("P").save(buf, format="GIF")
    data = buf.getvalue()
    assert data.endswith(b";")
    text = b"taken at 52.5N 13.4E by J. Doe"
    if extension == "comment":
        block = b"\x21\xfe" + bytes([len(text)]) + text + b"\x00"
    else:  # an XMP packet as Adobe's tools write it in a GIF: an application extension
        block = b"\x21\xff\x0bXMP DataXMP" + bytes([len(text)]) + text + b"\x00"
    gif = tmp_path / "still.gif"
    gif.write_bytes(data[:-1] + block + b";")
    embedded = _embedded(gif)
    assert b"J. Doe" not in embedded
    with Image.open(gif) as img:
        before = img.convert("RGB").tobytes()
    with Image.open(io.BytesIO(embedded)) as img:  # kept lossless: the GIF but the block
        assert img.format == "GIF"
        assert img.convert("RGB").tobytes() == before


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 255))
def test_the_gif_block_walk_ends_on_any_bytes(tail: bytes, flags: int) -> None:
    """Cut short or malformed, a GIF's blocks are walked to an answer, never an IndexError."""
    from gt_toolkit.worker_ui.render import _gif_extras

    header = b"GIF89a" + bytes([1, 0, 1, 0, flags, 0, 0])
    assert _gif_extras(header + tail) in (True, False)
    for cut in (b"\x21", b"\x21\xff", b"\x2c" + bytes(8)):
        assert _gif_extras(header + cut) in (True, False)


def test_a_small_lossy_webp_animation_loses_its_metadata_not_its_size(tmp_path: Path) -> None:
    """897cb1a saved a small animated WebP with XMP again, losslessly: a 50 KB lossy
    animation came out at about 1 MB, embedded twice in the template. Its EXIF and XMP
    chunks are dropped instead, the frames kept as they were, byte for byte."""
    import numpy as np
    from PIL import ImageSequence

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:240, 0:320]
    frames = []
    for k in range(6):
        rgb = np.stack([(xx + 10 * k) % 256, (yy * 2 + 5 * k) % 256, (xx + yy) // 2 % 256], -1)
        noisy = np.clip(rgb + rng.integers(-20, 20, rgb.shape), 0, 255).astype(np.uint8)
        frames.append(Image.fromarray(noisy))
    exif = Image.Exif()
    exif[0x013B] = "J. Doe"
    webp = tmp_path / "how-to.webp"
    frames[0].save(
        webp,
        save_all=True,
        append_images=frames[1:],
        duration=[100, 120, 140, 160, 180, 200],
        loop=3,
        quality=20,
        xmp=b"<x:xmpmeta>J. Doe</x:xmpmeta>",
        exif=exif,
    )
    embedded = _embedded(webp)
    assert b"J. Doe" not in embedded
    assert len(embedded) <= webp.stat().st_size

    def shown(image: Image.Image) -> list[tuple[bytes, Any]]:
        return [
            (f.convert("RGB").tobytes(), f.info.get("duration"))
            for f in ImageSequence.Iterator(image)
        ]

    with Image.open(webp) as before, Image.open(io.BytesIO(embedded)) as after:
        assert after.format == "WEBP" and after.info.get("loop") == 3
        assert not after.getexif() and "xmp" not in after.info
        assert shown(after) == shown(before)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([b"VP8X", b"EXIF", b"XMP ", b"ANMF"]), st.binary(max_size=9)),
        max_size=5,
    ),
    st.binary(max_size=6),
)
def test_the_webp_chunk_walk_ends_on_any_bytes(
    chunks: list[tuple[bytes, bytes]], tail: bytes
) -> None:
    """Well formed or cut short, a WebP's chunks are walked to an answer, never an error;
    what it keeps holds no EXIF or XMP chunk."""
    from gt_toolkit.worker_ui.render import _webp_without_metadata

    body = b"WEBP" + b"".join(
        kind + len(payload).to_bytes(4, "little") + payload + b"\0" * (len(payload) & 1)
        for kind, payload in chunks
    )
    for data in (
        b"RIFF" + len(body).to_bytes(4, "little") + body,
        b"RIFF" + bytes(4) + body + tail,
    ):
        bare = _webp_without_metadata(data)
        if bare is None:
            continue
        assert int.from_bytes(bare[4:8], "little") == len(bare) - 8
        kinds, at = [], 12
        while at < len(bare):  # what it keeps is whole chunks, none of them EXIF or XMP
            size = int.from_bytes(bare[at + 4 : at + 8], "little")
            kinds.append(bare[at : at + 4])
            at += 8 + size + (size & 1)
        assert at == len(bare) and not {b"EXIF", b"XMP "} & set(kinds)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_bytes_after_a_small_example_image_are_not_embedded(tmp_path: Path, fmt: str) -> None:
    """Viewers stop at a PNG's IEND, a JPEG's EOI, a GIF's trailer, a WebP's RIFF size, and
    show nothing of what follows; a small file embedded byte for byte took it along to every
    worker (a phone's trailer, a zip appended to the picture)."""
    buf = io.BytesIO()
    picture = Image.new("RGB", (40, 30), (200, 30, 30))
    (picture.convert("P") if fmt == "GIF" else picture).save(buf, format=fmt)
    secret = b"PK\x03\x04 payroll.xlsx of J. Doe"
    path = tmp_path / f"example.{fmt.lower()}"
    path.write_bytes(buf.getvalue() + secret)
    with Image.open(path) as img:  # the picture reads as it was
        before = img.convert("RGB").getpixel((5, 5))
    embedded = _embedded(path)
    assert b"J. Doe" not in embedded
    with Image.open(io.BytesIO(embedded)) as img:
        assert img.convert("RGB").getpixel((5, 5)) == pytest.approx(before, abs=8)


def test_a_gif_animation_over_a_clear_background_is_saved_frame_for_frame(tmp_path: Path) -> None:
    """A box moving across a transparent background, each frame cleared to it (disposal 2):
    saved again to drop a comment, each frame was drawn over the last one, and the box left
    a trail of itself where the original showed the background."""
    from PIL import ImageDraw, ImageSequence

    frames = []
    for k in range(4):
        frame = Image.new("P", (60, 40), 0)
        frame.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
        ImageDraw.Draw(frame).rectangle([5 + 10 * k, 5, 15 + 10 * k, 15], fill=1 + k % 2)
        frames.append(frame)
    gif = tmp_path / "moving-box.gif"
    frames[0].save(
        gif,
        save_all=True,
        append_images=frames[1:],
        duration=100,
        loop=0,
        transparency=0,
        disposal=2,
        comment=b"J. Doe",
    )
    embedded = _embedded(gif)
    assert b"J. Doe" not in embedded

    def shown(image: Image.Image) -> list[bytes]:
        return [f.convert("RGBA").tobytes() for f in ImageSequence.Iterator(image)]

    with Image.open(gif) as before, Image.open(io.BytesIO(embedded)) as after:
        assert after.format == "GIF" and shown(after) == shown(before)


_SECRET = b"J. Doe, 52.51N 13.40E"


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + len(body).to_bytes(4, "little") + body + b"\0" * (len(body) & 1)


def _saved(fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(out, format=fmt, **options)
    return out.getvalue()


def _png_with_private_chunk() -> bytes:
    png = _saved("PNG")  # C2PA's content credentials sit in a caBX chunk
    return png[:33] + _png_chunk(b"caBX", _SECRET) + png[33:]


def _jpeg_with_segment(marker: int, body: bytes) -> bytes:
    jpeg = _saved("JPEG")
    return jpeg[:2] + bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body + jpeg[2:]


def _webp_with_chunk(kind: bytes) -> bytes:
    vp8 = _saved("WEBP")[12:]  # the simple format's one VP8 chunk
    vp8x = bytes(4) + (39).to_bytes(3, "little") + (29).to_bytes(3, "little")  # no flags
    body = b"WEBP" + _riff_chunk(b"VP8X", vp8x) + vp8 + _riff_chunk(kind, _SECRET)
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def _gif_with_extension(label: int) -> bytes:
    gif = _saved("GIF")
    header = bytes(12) if label == 0x01 else b""  # a plain-text extension's grid and colours
    block = b"\x21" + bytes([label]) + bytes([len(header)]) * bool(header) + header
    return gif[:-1] + block + bytes([len(_SECRET)]) + _SECRET + b"\0" + gif[-1:]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("private-chunk.png", _png_with_private_chunk()),
        ("c2pa-app11.jpg", _jpeg_with_segment(0xEB, b"JP\0\x01" + _SECRET)),
        (
            "extended-xmp.jpg",
            _jpeg_with_segment(0xE1, b"http://ns.adobe.com/xmp/extension/\0" + _SECRET),
        ),
        ("ducky-app12.jpg", _jpeg_with_segment(0xEC, b"Ducky" + _SECRET)),
        (  # a JFIF header with more after its fields than it says (no thumbnail)
            "long-jfif.jpg",
            _jpeg_with_segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0" + _SECRET),
        ),
        ("long-adobe.jpg", _jpeg_with_segment(0xEE, b"Adobe\0\x64\0\0\0\0\x01" + _SECRET)),
        ("unannounced-exif.webp", _webp_with_chunk(b"EXIF")),
        ("unannounced-xmp.webp", _webp_with_chunk(b"XMP ")),
        ("unknown-chunk.webp", _webp_with_chunk(b"C2PA")),
        ("plain-text.gif", _gif_with_extension(0x01)),
        ("unknown-extension.gif", _gif_with_extension(0x42)),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_a_small_example_keeps_no_block_pillow_does_not_read(
    tmp_path: Path, name: str, data: bytes
) -> None:
    """The metadata check asked Pillow what the file said, and Pillow reads only the blocks
    it knows: a PNG's private chunk (C2PA's caBX), a JPEG's APP11 (C2PA), extended XMP or
    Photoshop's Ducky segment, a WebP's EXIF or XMP chunk that its VP8X flags do not announce
    (libwebp skips it), a GIF's plain-text extension: each went into the template byte for
    byte, for every worker to read. Only blocks that say how to draw the picture stay."""
    path = tmp_path / name
    path.write_bytes(data)
    with Image.open(path) as original:
        assert original.size == (40, 30)  # a readable picture, as viewers show it
    embedded = _embedded(path)
    assert _SECRET not in embedded
    with Image.open(io.BytesIO(embedded)) as shown:
        assert shown.size == (40, 30)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_picture_appended_to_a_small_example_is_not_embedded(tmp_path: Path, fmt: str) -> None:
    """e155fa6 looked for bytes after the end by how the file ended (IEND, EOI): a second
    picture appended (the original of an edited photo) ends the same way, and went into the
    template whole. The end is found by walking the blocks."""
    original = Image.new("RGB", (300, 200), (1, 2, 3))
    hidden = io.BytesIO()
    original.save(hidden, format=fmt)
    path = tmp_path / f"edited.{fmt.lower()}"
    path.write_bytes(_saved(fmt) + hidden.getvalue())
    embedded = _embedded(path)
    assert hidden.getvalue() not in embedded
    with Image.open(io.BytesIO(embedded)) as shown:
        assert shown.size == (40, 30)


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("JPEG", {}),
        ("JPEG", {"progressive": True, "quality": 70}),
        ("JPEG", {"icc_profile": b"\0" * 128, "restart_marker_blocks": 1}),
        ("PNG", {"dpi": (72, 72)}),
        ("WEBP", {"lossless": True}),
        ("WEBP", {"quality": 50, "icc_profile": b"\0" * 128}),
        ("GIF", {}),
    ],
)
def test_a_plain_small_example_is_still_embedded_as_is(
    tmp_path: Path, fmt: str, options: dict[str, Any]
) -> None:
    """The block walks take nothing a writer puts in a plain picture for metadata."""
    path = tmp_path / f"plain.{fmt.lower()}"
    path.write_bytes(_saved(fmt, **options))
    assert _embedded(path) == path.read_bytes()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.integers(0, 700))
def test_the_png_and_jpeg_block_walks_end_on_any_bytes(tail: bytes, cut: int) -> None:
    """Well formed, cut short or garbled, a PNG's chunks and a JPEG's segments are walked to
    an answer, never an error or an endless loop; a plain file cut short has no end."""
    from gt_toolkit.worker_ui.render import _jpeg_extras, _png_extras

    for walk, data in ((_png_extras, _saved("PNG")), (_jpeg_extras, _saved("JPEG"))):
        assert walk(data) is False
        assert walk(data + tail) is bool(tail)
        assert walk(data[:cut] + tail) in (True, False)
        if cut < len(data) - 1:
            assert walk(data[:cut]) is True


def test_a_gif_animation_of_local_colour_tables_keeps_its_colours(tmp_path: Path) -> None:
    """f7a14a3 dropped a small animated GIF's comment by saving its frames again with
    Pillow: a frame drawn over the last with its own colour table (384 colours once
    composited) was quantised to 256, 2784 of its 8192 pixels changed. The comment's block
    is dropped instead, every image block kept as it was."""
    import struct

    import numpy as np
    from PIL import ImageSequence

    def gif_of(width: int, palette: list[int], step: int) -> bytes:
        index = (np.arange(width * 64).reshape(64, width) * step) % 256
        picture = Image.fromarray(index.astype(np.uint8), "P")
        picture.putpalette(palette)
        out = io.BytesIO()
        picture.save(out, format="GIF", optimize=False)
        return out.getvalue()

    reds = [c for i in range(256) for c in (i, 0, 255 - i)]
    greens = [c for i in range(256) for c in (0, i, i * 7 % 256)]
    first, second = gif_of(128, reds, 1), gif_of(64, greens, 3)
    header = 13 + 768  # and the global colour table
    image = second.index(b"\x2c", header)
    control = b"\x21\xf9\x04\x04" + struct.pack("<H", 10) + b"\x00\x00"  # kept, 100 ms
    # the right half, drawn with its own colour table of 256 greens
    right = b"\x2c" + struct.pack("<HHHH", 64, 0, 64, 64) + b"\x87" + bytes(greens)
    gif = tmp_path / "two-palettes.gif"
    gif.write_bytes(
        first[:header]
        + b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
        + control
        + first[first.index(b"\x2c", header) : -1]
        + b"\x21\xfe\x0aJ. Doe etc\x00"  # a comment
        + control
        + right
        + second[image + 10 : -1]
        + b"\x3b"
    )
    embedded = _embedded(gif)
    assert b"J. Doe" not in embedded

    def shown(picture: Image.Image) -> list[bytes]:
        return [f.convert("RGB").tobytes() for f in ImageSequence.Iterator(picture)]

    with Image.open(gif) as before, Image.open(io.BytesIO(embedded)) as after:
        assert len(before.convert("RGB").getcolors(1000) or []) == 256
        before.seek(1)
        assert len(before.convert("RGB").getcolors(1000) or []) == 384
        before.seek(0)
        assert after.format == "GIF" and shown(after) == shown(before)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0x21, 0x2C]), st.integers(0, 255), st.binary(max_size=12)),
        max_size=5,
    ),
    st.integers(0, 255),
)
def test_a_gif_without_metadata_holds_only_plain_blocks(
    blocks: list[tuple[int, int, bytes]], flags: int
) -> None:
    """Whatever its blocks, a GIF stripped of its metadata is walked to an answer, and what
    it keeps holds no block but plain ones, ending at its trailer."""
    from gt_toolkit.worker_ui.render import _gif_blocks, _gif_extras, _gif_without_metadata

    header = b"GIF89a" + bytes([1, 0, 1, 0, flags & 0x7F, 0, 0])
    body = b"".join(bytes([kind, label]) + payload for kind, label, payload in blocks)
    for data in (header + body, header + body + b";", header + body + b"; tail"):
        bare = _gif_without_metadata(data)
        if bare is None:
            continue
        assert not _gif_extras(bare)
        walked = _gif_blocks(bare)
        assert walked is not None and walked[1] == len(bare)


def test_a_small_png_loses_its_text_not_its_gamma(tmp_path: Path) -> None:
    """A small PNG re-encoded to drop a text chunk was saved again by Pillow, which writes
    no gAMA or cHRM: browsers apply them, so the example was drawn lighter than the file.
    Its text chunk is cut instead, every other chunk kept as it was."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "J. Doe")
    path = tmp_path / "dark.png"
    Image.new("RGB", (40, 30), (90, 90, 90)).save(path, pnginfo=info)
    data = path.read_bytes()
    gamma = _png_chunk(b"gAMA", (100000).to_bytes(4, "big"))  # linear: drawn darker
    path.write_bytes(data[:33] + gamma + data[33:])
    embedded = _embedded(path)
    assert b"J. Doe" not in embedded and gamma in embedded
    with Image.open(io.BytesIO(embedded)) as img:
        assert img.info["gamma"] == 1.0


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_a_small_example_stored_sideways_is_embedded_upright(tmp_path: Path, fmt: str) -> None:
    """Cutting a small PNG's or WebP's EXIF out (19446af, 9414bf5) cut its orientation too:
    a picture stored sideways, drawn upright by its EXIF orientation, was embedded sideways.
    Such a one is re-encoded upright, as a larger one is."""
    exif = Image.Exif()
    exif[0x0112] = 6  # turned a quarter clockwise to be seen
    exif[0x013B] = "J. Doe"
    path = tmp_path / f"sideways.{fmt.lower()}"
    Image.new("RGB", (40, 20), (200, 10, 10)).save(path, format=fmt, exif=exif)
    embedded = _embedded(path)
    assert b"J. Doe" not in embedded
    with Image.open(io.BytesIO(embedded)) as img:
        assert img.size == (20, 40) and img.getexif().get(0x0112, 1) == 1


def test_an_image_at_left_249_before_a_plain_text_extension_stays() -> None:
    """The graphic control before a plain-text extension goes with it; the test read the
    second byte of the block before, so an image whose left edge is 249 (0xF9) was taken
    for one and cut: the GIF was embedded without its picture (found in the read-through)."""
    from gt_toolkit.worker_ui.render import _gif_blocks, _gif_without_metadata

    header = b"GIF89a" + bytes([1, 0, 1, 0, 0, 0, 0])
    image = b"\x2c" + (249).to_bytes(2, "little") + bytes(2) + bytes([1, 0, 1, 0, 0])
    image += b"\x02\x02\x44\x01\x00"  # LZW minimum code size, one sub-block, its end
    plain_text = b"\x21\x01\x0c" + bytes(12) + b"\x03abc\x00"
    data = header + image + plain_text + b";"
    walked = _gif_blocks(data)
    assert walked is not None
    blocks, _ = walked
    assert [plain for _, _, plain in blocks] == [True, False]
    bare = _gif_without_metadata(data)
    assert bare is not None and image in bare and plain_text not in bare
