"""Make the good and bad example images for the worker instructions (run from the repo root).

Takes sample images and their true boxes (``samples/truth.manifest``) and draws:

- ``good_tight.jpg``: every ball boxed tightly (green);
- ``bad_loose.jpg``: boxes with a wide margin around each ball (red);
- ``bad_missed.jpg``: a ball left without a box (red).

Images are enlarged 3x so the boxes are visible in the instruction panel. Deterministic:
re-running rewrites the same bytes. ``examples.json`` lists them with their descriptions, in
the (image, description) form ``render_bounding_box_template`` and ``gt-convert template``
take.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parent
SCALE = 3
GREEN = (0, 160, 0)
RED = (230, 0, 0)


def _truth() -> dict[str, list[dict[str, int]]]:
    boxes: dict[str, list[dict[str, int]]] = {}
    for line in (SAMPLES / "truth.manifest").read_text().splitlines():
        data = json.loads(line)
        name = data["source-ref"].rsplit("/", 1)[-1]
        boxes[name] = data["truth"]["annotations"]
    return boxes


def _draw(
    name: str, boxes: list[dict[str, int]], colour: tuple[int, int, int], margin: int
) -> Image.Image:
    with Image.open(SAMPLES / "images" / name) as src:
        img = src.convert("RGB").resize(
            (src.width * SCALE, src.height * SCALE), Image.Resampling.BICUBIC
        )
    draw = ImageDraw.Draw(img)
    for box in boxes:
        left, top = (box["left"] - margin) * SCALE, (box["top"] - margin) * SCALE
        right = (box["left"] + box["width"] + margin) * SCALE
        bottom = (box["top"] + box["height"] + margin) * SCALE
        draw.rectangle([left, top, right, bottom], outline=colour, width=4)
    return img


def main() -> None:
    truth = _truth()
    # Pick images with at least 2 balls so a "missed" example exists; sorted = deterministic.
    names = [n for n in sorted(truth) if len(truth[n]) >= 2]
    good, loose, missed = names[0], names[1], names[2]
    outputs = {
        "good_tight.jpg": _draw(good, truth[good], GREEN, 0),
        "bad_loose.jpg": _draw(loose, truth[loose], RED, 8),
        "bad_missed.jpg": _draw(missed, truth[missed][1:], RED, 0),
    }
    for filename, img in outputs.items():
        img.save(HERE / filename, format="JPEG", quality=88, optimize=True)
    listing = {
        "good": [
            [
                "samples/examples/good_tight.jpg",
                "Every ball has its own box, touching the ball's edges on all four sides.",
            ],
        ],
        "bad": [
            [
                "samples/examples/bad_loose.jpg",
                "Too loose: the boxes leave a wide gap around each ball.",
            ],
            [
                "samples/examples/bad_missed.jpg",
                "Incomplete: one ball has no box. Box every ball, even small ones.",
            ],
        ],
    }
    (HERE / "examples.json").write_text(json.dumps(listing, indent=2) + "\n")


if __name__ == "__main__":
    main()
