from __future__ import annotations

import json
from pathlib import Path

import pytest

from gt_toolkit.convert import ConvertOptions, convert_output
from gt_toolkit.errors import ConversionError
from tests.helpers import DATA, image_mirror

OUTPUTS = DATA / "outputs"
CONSOLE = OUTPUTS / "console-job.manifest"
API = OUTPUTS / "api-job.manifest"


def test_jumpstart_od_uses_xyxy_and_copies_images(tmp_path: Path) -> None:
    mirror = image_mirror(tmp_path, API)
    out = tmp_path / "js"
    convert_output("jumpstart-od", API, out, ConvertOptions(images_dir=str(mirror)))
    doc = json.loads((out / "annotations.json").read_text())
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "a.png",
        "b.png",
        "c.png",
        "d.png",
    ]
    a = next(i for i in doc["images"] if i["file_name"] == "a.png")
    boxes = [x["bbox"] for x in doc["annotations"] if x["image_id"] == a["id"]]
    assert boxes == [[12, 40, 112, 120], [200, 100, 255, 160]]
    assert {c["name"] for c in doc["categories"]} == {"car", "truck", "bike"}


def test_a_missing_image_fails_the_run_and_writes_nothing(tmp_path: Path) -> None:
    mirror = image_mirror(tmp_path, API)
    (mirror / "cars" / "b.png").unlink()
    out = tmp_path / "js"
    with pytest.raises(ConversionError, match=r"1 of 4 image copies.*b\.png"):
        convert_output(
            "jumpstart-od",
            API,
            out,
            ConvertOptions(images_dir=str(mirror), images_prefix="s3://gt-demo-bucket/"),
        )
    assert not out.exists()
    assert list(tmp_path.glob(".js.*")) == []  # the staging folder is gone too


def test_annotations_stream_out_instead_of_waiting_in_memory(tmp_path: Path) -> None:
    """Every image and box waited in two lists until the end: 100k images of 5 boxes took
    360 MB (coco, which streams, 54 MB). Measured as the growth per image of 60 boxes
    (36 kB before, 1 to 3 kB now)."""
    import gc
    import tracemalloc

    line = json.loads(API.read_text().splitlines()[0])
    box = line["boxes"]["annotations"][0]
    line["boxes"]["annotations"] = [box] * 60
    line["boxes-metadata"]["objects"] = [{"confidence": 0.5}] * 60

    def peak(images: int) -> int:
        src = tmp_path / f"{images}.manifest"
        with src.open("w") as fh:
            for i in range(images):
                line["source-ref"] = f"s3://gt-demo-bucket/cars/i{i}.png"
                fh.write(json.dumps(line) + "\n")
        gc.collect()
        tracemalloc.start()
        try:
            result = convert_output(
                "jumpstart-od", src, tmp_path / f"js{images}", ConvertOptions(copy_images=False)
            )
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            assert result.extra == {"images": images, "annotations": 60 * images}

    per_image = (peak(2500) - peak(500)) / 2000
    assert per_image < 8192, f"{per_image:.0f} bytes per image"


@pytest.mark.parametrize("copy", [False, True])
def test_file_names_are_the_images_own_unless_the_run_copies_them(
    tmp_path: Path, copy: bool
) -> None:
    """With ``--no-copy-images`` no image is written: ``aux.png`` and a 304-byte name got
    hashed names in annotations.json that no file has; copied, they must be renamed."""
    long = "\u00e9" * 150 + ".png"
    lines = [json.loads(x) for x in API.read_text().splitlines()]
    for line, name in zip(lines, [long, "aux.png"], strict=False):
        line["source-ref"] = f"s3://gt-demo-bucket/cars/{name}"
    src = tmp_path / "named.manifest"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    options = ConvertOptions(copy_images=False)
    if copy:
        lines[0]["source-ref"] = "s3://gt-demo-bucket/cars/short.png"  # no disk holds 304
        src.write_text("".join(json.dumps(x) + "\n" for x in lines))
        options = ConvertOptions(images_dir=str(image_mirror(tmp_path, src)))
    out = tmp_path / "js"
    convert_output("jumpstart-od", src, out, options)
    names = [i["file_name"] for i in json.loads((out / "annotations.json").read_text())["images"]]
    if copy:
        assert names[0] == "short.png" and names[1].startswith("aux-")
        assert sorted(p.name for p in (out / "images").iterdir()) == sorted(names)
    else:
        assert names[:2] == [long, "aux.png"]
        assert not (out / "images").exists()
