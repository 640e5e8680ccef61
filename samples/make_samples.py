"""Make the shipped sample dataset, deterministically (run from the repo root).

40 small JPEG photos-to-be of a single class ("ball": shaded discs on a textured background),
1 to 4 per image, with their true boxes. Writes:

- ``samples/images/img_NNN.jpg``
- ``samples/input.manifest``: the Ground Truth input manifest (``source-ref`` lines) for the
  images as uploaded to ``s3://gt-toolkit-demo/images/``;
- ``samples/truth.manifest``: the true boxes, as a Ground Truth bounding-box output manifest
  (label attribute ``truth``);
- ``samples/ball-count.manifest``: the same images labelled by how many balls they show
  (``one``, ``two``, ``three-or-more``), as a Ground Truth image-classification output manifest
  (label attribute ``balls``): the classification flows' data (``lst``, ``class-folders``).

Re-running it rewrites the same bytes (fixed seed, fixed JPEG settings).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
BUCKET_PREFIX = "s3://gt-toolkit-demo/images/"
LABEL = "ball"
COUNT_CLASSES = ("one", "two", "three-or-more")
N_IMAGES = 40
SEED = 20261124


def _image(rng: random.Random, width: int, height: int) -> tuple[Image.Image, list[dict[str, int]]]:
    base = tuple(rng.randrange(90, 200) for _ in range(3))
    img = Image.new("RGB", (width, height), base)
    draw = ImageDraw.Draw(img)
    for _ in range(30):  # background texture: faint stripes and blobs
        x, y = rng.randrange(width), rng.randrange(height)
        shade = tuple(max(0, min(255, c + rng.randrange(-40, 40))) for c in base)
        draw.rectangle([x, y, x + rng.randrange(5, 40), y + rng.randrange(2, 8)], fill=shade)
    img = img.filter(ImageFilter.GaussianBlur(1.5))
    draw = ImageDraw.Draw(img)
    boxes: list[dict[str, int]] = []
    for _ in range(rng.randint(1, 4)):
        for _attempt in range(20):
            size = rng.randrange(18, 56)
            left, top = rng.randrange(0, width - size), rng.randrange(0, height - size)
            box = {"left": left, "top": top, "width": size, "height": size}
            if all(_separate(box, other) for other in boxes):
                break
        else:
            continue
        colour = (rng.randrange(150, 256), rng.randrange(0, 90), rng.randrange(0, 90))
        draw.ellipse(
            [left, top, left + size - 1, top + size - 1], fill=colour, outline=(40, 20, 20)
        )
        shine = size // 4
        draw.ellipse(
            [left + shine, top + shine, left + 2 * shine, top + 2 * shine], fill=(255, 230, 220)
        )
        boxes.append(box)
    return img, boxes


def _separate(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["left"] + a["width"] + 4 <= b["left"]
        or b["left"] + b["width"] + 4 <= a["left"]
        or a["top"] + a["height"] + 4 <= b["top"]
        or b["top"] + b["height"] + 4 <= a["top"]
    )


def _ball_count(truth: dict[str, Any]) -> dict[str, Any]:
    """One truth line as an image-classification label: how many balls the image shows."""
    class_id = min(len(truth["truth"]["annotations"]), len(COUNT_CLASSES)) - 1
    return {
        "source-ref": truth["source-ref"],
        "balls": class_id,
        "balls-metadata": {
            "class-name": COUNT_CLASSES[class_id],
            "confidence": 1.0,
            "type": "groundtruth/image-classification",
            "human-annotated": "yes",
            "creation-date": "2026-11-24T00:00:00.000000",
            "job-name": "labeling-job/samples-ball-count",
        },
    }


def main() -> None:
    rng = random.Random(SEED)
    images = HERE / "images"
    images.mkdir(exist_ok=True)
    inputs, truths = [], []
    for i in range(N_IMAGES):
        width, height = rng.choice([(160, 120), (200, 150), (240, 160)])
        img, boxes = _image(rng, width, height)
        name = f"img_{i:03d}.jpg"
        img.save(images / name, "JPEG", quality=85, optimize=True)
        ref = BUCKET_PREFIX + name
        inputs.append({"source-ref": ref})
        truths.append(
            {
                "source-ref": ref,
                "truth": {
                    "image_size": [{"width": width, "height": height, "depth": 3}],
                    "annotations": [{"class_id": 0, **b} for b in boxes],
                },
                "truth-metadata": {
                    "objects": [{"confidence": 1.0} for _ in boxes],
                    "class-map": {"0": LABEL},
                    "type": "groundtruth/object-detection",
                    "human-annotated": "yes",
                    "creation-date": "2026-11-24T00:00:00.000000",
                    "job-name": "labeling-job/samples-truth",
                },
            }
        )
    (HERE / "input.manifest").write_text("".join(json.dumps(r) + "\n" for r in inputs))
    (HERE / "truth.manifest").write_text("".join(json.dumps(r) + "\n" for r in truths))
    counts = [_ball_count(t) for t in truths]
    (HERE / "ball-count.manifest").write_text("".join(json.dumps(r) + "\n" for r in counts))
    total = sum(p.stat().st_size for p in images.glob("*.jpg"))
    print(f"wrote {N_IMAGES} images ({total / 1024:.0f} KiB) and manifests to {HERE}")


if __name__ == "__main__":
    main()
