"""The offline preview page in real headless Chromium: DOM after the shim ran, and pixels."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from gt_toolkit import render_bounding_box_template, render_image_classifier_template, write_preview
from tests.helpers import SAMPLES, chromium

pytestmark = pytest.mark.chromium

TRUTH_LINE = (SAMPLES / "truth.manifest").read_text().splitlines()[0]
LABELS = ["ball", '</script><b>"x"</b> {{ 1 | plus: 1 }}']


class _Elements(HTMLParser):
    """Flat list of (tag, attrs, text up to the next tag); enough for DOM assertions."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str], list[str]]] = []
        self.open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}, []))
        self.open = True

    def handle_endtag(self, tag: str) -> None:
        self.open = False

    def handle_data(self, data: str) -> None:
        if self.open:
            self.elements[-1][2].append(data)

    def by_class(self, cls: str) -> list[tuple[str, dict[str, str], str]]:
        return [
            (tag, attrs, "".join(text))
            for tag, attrs, text in self.elements
            if cls in attrs.get("class", "").split()
        ]


def dump_dom(tmp_path: Path, page: Path) -> _Elements:
    result = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    parser = _Elements()
    parser.feed(result.stdout)
    return parser


@pytest.fixture
def bbox_preview(tmp_path: Path) -> Path:
    template = render_bounding_box_template(
        LABELS,
        "Box every ball",
        "One tight box per ball.",
        "Box every ball, including cut ones.",
        [(SAMPLES / "examples" / "good_tight.jpg", "Tight: edges touch the ball")],
        [
            (SAMPLES / "examples" / "bad_loose.jpg", "Loose: gaps around the ball"),
            (SAMPLES / "examples" / "bad_missed.jpg", "Missed: a ball without a box"),
        ],
    )
    out = tmp_path / "preview.html"
    result = write_preview(template, TRUTH_LINE, out, images_dir=SAMPLES / "images")
    assert result.missing_images == []
    return out


def test_preview_dom_shows_task_labels_boxes_and_examples(
    tmp_path: Path, bbox_preview: Path
) -> None:
    dom = dump_dom(tmp_path, bbox_preview)
    html_tag = next(attrs for tag, attrs, _ in dom.elements if tag == "html")
    assert html_tag.get("data-gt-shim") == "ready"
    assert [text for _, _, text in dom.by_class("gt-shim-header")] == ["Box every ball"]
    [(_, image, _)] = dom.by_class("gt-shim-task-image")
    assert image["src"].startswith("data:image/jpeg;base64,")
    assert [text for _, _, text in dom.by_class("gt-shim-label")] == LABELS
    boxes = dom.by_class("gt-shim-box")
    truth = json.loads(TRUTH_LINE)["truth"]
    assert len(boxes) == len(truth["annotations"]) == 2
    first = truth["annotations"][0]
    style = boxes[0][1]["style"]  # percentages of the 160x120 image, set after it loaded
    assert f"left: {100 * first['left'] / 160}%" in style
    assert f"width: {100 * first['width'] / 160}%" in style
    captions = [  # <figcaption class="gt-example-description"><p>text</p></figcaption>
        "".join(dom.elements[i + 1][2])
        for i, (_, attrs, _) in enumerate(dom.elements)
        if attrs.get("class") == "gt-example-description"
    ]
    assert (
        captions
        == [
            "Tight: edges touch the ball",
            "Loose: gaps around the ball",
            "Missed: a ball without a box",
        ]
        * 2
    )
    examples = dom.by_class("gt-example-image")
    assert len(examples) == 6
    assert all(attrs["src"].startswith("data:image/jpeg") for _, attrs, _ in examples)
    assert [text for _, _, text in dom.by_class("gt-shim-submit")] == ["Submit"]
    assert not dom.by_class("gt-shim-problems")
    assert not [tag for tag, _, _ in dom.elements if tag == "b"]  # hostile label stayed text


def test_preview_screenshot_is_not_blank(tmp_path: Path, bbox_preview: Path) -> None:
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,900", bbox_preview.as_uri())
    with Image.open(shot) as img:
        rgb = img.convert("RGB")
        assert rgb.size == (1200, 900)
        assert max(ImageStat.Stat(rgb).stddev) > 20
        colours = rgb.getcolors(maxcolors=1_000_000) or []
        assert len(colours) > 500  # photographs, not flat page chrome
        pixels = rgb.load()
        assert pixels is not None
        width, height = rgb.size
        greens = sum(
            1
            for x in range(0, width, 2)
            for y in range(0, height, 2)
            if pixels[x, y][1] > 120 and pixels[x, y][0] < 60 and pixels[x, y][2] < 60
        )
        oranges = sum(
            1
            for x in range(0, width, 2)
            for y in range(0, height, 2)
            if pixels[x, y][0] > 230 and 130 < pixels[x, y][1] < 170 and pixels[x, y][2] < 40
        )
    assert greens > 50  # the good example's green frame (and heading)
    assert oranges > 50  # the initial boxes drawn over the task image


def test_classifier_preview_offers_categories(tmp_path: Path) -> None:
    template = render_image_classifier_template(
        ["ball", "no ball"],
        "Is there a ball?",
        "Pick one.",
        "Pick one answer.",
        [(SAMPLES / "examples" / "good_tight.jpg", "a ball")],
        [],
    )
    out = tmp_path / "classifier.html"
    write_preview(template, TRUTH_LINE, out, images_dir=SAMPLES / "images")
    dom = dump_dom(tmp_path, out)
    assert len(dom.by_class("gt-shim-label")) == 2
    radios = [(attrs["type"], "".join(text)) for tag, attrs, text in dom.elements if tag == "input"]
    assert radios == [("radio", "ball"), ("radio", "no ball")]  # <label><input>ball</label>
    assert not dom.by_class("gt-shim-box")
