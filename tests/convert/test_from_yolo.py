"""``from-yolo``: the layouts YOLO tools write, dotted stems, odd lines as rejects."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from gt_toolkit.convert import ConvertOptions, convert_output
from gt_toolkit.errors import ConversionError
from gt_toolkit.formats.output_manifest import iter_detection_records
from tests.helpers import SAMPLES, read_jsonl

PREFIX = "s3://bkt-x/ds/"


def _image(path: Path, size: tuple[int, int] = (200, 100)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)


def _text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _boxes(manifest: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {
        r.source_ref.removeprefix(PREFIX): [
            (b.label, b.left, b.top, b.width, b.height, b.score) for b in r.boxes
        ]
        for r in iter_detection_records(manifest)
    }


def _convert(root: Path, tmp_path: Path, **options: Any) -> tuple[Any, Path]:
    out = tmp_path / "prior.manifest"
    result = convert_output("from-yolo", root, out, ConvertOptions(image_prefix=PREFIX, **options))
    return result, out


# A centred box of half the image: 200x100 image -> left 50, top 25, 100 x 50.
LINE = "1 0.5 0.5 0.5 0.5\n"
BOX = ("dog", 50, 25, 100, 50, 1.0)


@pytest.mark.parametrize(
    "names",
    [
        "names: [cat, dog]\n",
        "names:\n  - cat\n  - dog\n",
        "names:\n  0: cat\n  1: dog\n",
        "nc: 2\nnames: {1: dog, 0: cat}\n",
    ],
    ids=["flow list", "block list", "map", "unordered map"],
)
def test_ultralytics_layout_with_names_as_a_list_or_a_map(tmp_path: Path, names: str) -> None:
    root = tmp_path / "ds"
    _text(root / "data.yaml", f"path: .\ntrain: images/train\nval: images/val\n{names}")
    _image(root / "images" / "train" / "x_ver1.0_640.jpg")  # a dotted stem
    _text(root / "labels" / "train" / "x_ver1.0_640.txt", LINE)
    _image(root / "images" / "val" / "neg.png")  # no label file: a negative image
    result, out = _convert(root, tmp_path)
    assert _boxes(out) == {"images/train/x_ver1.0_640.jpg": [BOX], "images/val/neg.png": []}
    assert result.extra["names"] == ["cat", "dog"]
    assert result.stats.empty_images == 1


def test_split_folders_with_images_and_labels_inside(tmp_path: Path) -> None:
    """Roboflow's export: train/images + train/labels, valid/images + valid/labels."""
    root = tmp_path / "ds"
    _text(
        root / "data.yaml",
        "train: ../train/images\nval: ../valid/images\nnc: 2\nnames: ['cat', 'dog']\n",
    )
    for split in ("train", "valid"):
        _image(root / split / "images" / f"{split}.a.jpg")
        _text(root / split / "labels" / f"{split}.a.txt", LINE)
    _, out = _convert(root, tmp_path)
    assert _boxes(out) == {"train/images/train.a.jpg": [BOX], "valid/images/valid.a.jpg": [BOX]}


def test_darknet_layout_with_obj_names(tmp_path: Path) -> None:
    """CVAT's YOLO 1.1 export: obj.names, obj.data, train.txt, labels beside the images."""
    root = tmp_path / "ds"
    _text(root / "obj.names", "cat\ndog\n")
    _text(root / "obj.data", "classes = 2\ntrain = data/train.txt\nnames = data/obj.names\n")
    _text(root / "train.txt", "data/obj_train_data/a.b.jpg\n")
    _image(root / "obj_train_data" / "a.b.jpg")
    _text(root / "obj_train_data" / "a.b.txt", LINE)
    _, out = _convert(root, tmp_path)
    assert _boxes(out) == {"obj_train_data/a.b.jpg": [BOX]}


def _one_image(tmp_path: Path, lines: str) -> Path:
    root = tmp_path / "ds"
    _text(root / "classes.txt", "cat\ndog\n")
    _image(root / "images" / "a.jpg")
    _text(root / "labels" / "a.txt", LINE + lines)
    return root


POLYGON = "0 0.1 0.2 0.3 0.2 0.3 0.6 0.1 0.6\n"


def test_polygon_lines_are_rejects_unless_their_box_is_asked_for(tmp_path: Path) -> None:
    root = _one_image(tmp_path, POLYGON)
    rejects = tmp_path / "rejects.jsonl"
    result, out = _convert(root, tmp_path, rejects=rejects)
    assert _boxes(out) == {"images/a.jpg": [BOX]}
    [item] = read_jsonl(rejects)
    label_file = str(root / "labels" / "a.txt")
    assert (item["file"], item["position"], item["reason"]) == (label_file, "2", "polygon-line")
    assert "--polygon-boxes" in item["detail"]
    assert result.extra["images_with_rejected_boxes"] == 1
    _, out = _convert(root, tmp_path, polygon_boxes=True)
    assert _boxes(out) == {"images/a.jpg": [BOX, ("cat", 20, 20, 40, 40, 1.0)]}


ODD = [
    ("-1 0.5 0.5 0.1 0.1", "invalid-class-id"),
    ("1.5 0.5 0.5 0.1 0.1", "invalid-class-id"),
    (f"{2**64} 0.5 0.5 0.1 0.1", "unknown-class-id"),
    ("2 0.5 0.5 0.1 0.1", "unknown-class-id"),
    ("0 0.5 0.5 0.1", "invalid-box"),
    ("0 0.5 0.5 0.1 x", "invalid-box"),
    ("0 0.5 0.5 0 0.1", "invalid-box"),
    ("0 1.5 0.5 0.1 0.1", "invalid-box"),
    ("0 nan 0.5 0.1 0.1", "invalid-box"),
    ("0 0.5 0.5 0.1 0.1 1.2", "invalid-box"),
]


@pytest.mark.parametrize(("line", "reason"), ODD, ids=[o[0] for o in ODD])
def test_lines_that_cannot_be_boxes_are_rejects(tmp_path: Path, line: str, reason: str) -> None:
    rejects = tmp_path / "rejects.jsonl"
    result, out = _convert(_one_image(tmp_path, line + "\n"), tmp_path, rejects=rejects)
    assert _boxes(out) == {"images/a.jpg": [BOX]}
    assert [(r["position"], r["reason"], r["raw"]) for r in read_jsonl(rejects)] == [
        ("2", reason, line)
    ]
    assert result.stats.rejected == {reason: 1}


def test_a_score_column_is_the_confidence(tmp_path: Path) -> None:
    _, out = _convert(_one_image(tmp_path, "0 0.5 0.5 0.5 0.5 0.25\n"), tmp_path)
    assert _boxes(out)["images/a.jpg"][1] == ("cat", 50, 25, 100, 50, 0.25)


def test_a_label_file_without_its_image_is_a_reject(tmp_path: Path) -> None:
    root = _one_image(tmp_path, "")
    _text(root / "labels" / "lost.txt", LINE)
    rejects = tmp_path / "rejects.jsonl"
    _convert(root, tmp_path, rejects=rejects)
    [item] = read_jsonl(rejects)
    assert (item["file"], item["reason"]) == (str(root / "labels" / "lost.txt"), "no-image")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"data.yaml": "names: {0: cat, 2: dog}\n"}, "every id 0..1"),
        ({"classes.txt": "cat\n\ndog\n"}, "blank line"),
        ({"classes.txt": "cat\ncat\n"}, "both named 'cat'"),
        ({}, "no class names"),
    ],
)
def test_class_names_that_would_misnumber_are_refused(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    root = tmp_path / "ds"
    for name, text in files.items():
        _text(root / name, text)
    _image(root / "images" / "a.jpg")
    with pytest.raises(ConversionError, match=message):
        _convert(root, tmp_path)


def test_a_sideways_phone_photo_is_sized_upright(tmp_path: Path) -> None:
    """Stored 200 x 100 with EXIF orientation 6: YOLO tools load it upright (100 x 200) and
    its normalised boxes are fractions of that; the stored size put the box at 50, 25, 100 x 50
    and the line's image_size at 200 x 100."""
    root = tmp_path / "ds"
    _text(root / "data.yaml", "names: [cat, dog]\n")
    (root / "images").mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (200, 100)).save(root / "images" / "phone.jpg", exif=exif.tobytes())
    _text(root / "labels" / "phone.txt", LINE)
    _, out = _convert(root, tmp_path)
    assert _boxes(out) == {"images/phone.jpg": [("dog", 25, 50, 50, 100, 1.0)]}
    [rec] = list(iter_detection_records(out))
    assert rec.image_size is not None
    assert (rec.image_size["width"], rec.image_size["height"]) == (100, 200)


def test_two_images_that_sources_jsonl_names_one_source_ref_are_one_line(tmp_path: Path) -> None:
    """a.jpg and a.png share labels/a.txt, which sources.jsonl maps to one source-ref: two
    lines of one image (two tasks of a job on it), and nothing said so."""
    root = tmp_path / "ds"
    _text(root / "data.yaml", "names: [cat, dog]\n")
    _image(root / "images" / "a.jpg")
    _image(root / "images" / "a.png")
    _text(root / "labels" / "a.txt", LINE)
    _text(root / "sources.jsonl", '{"label": "labels/a.txt", "source-ref": "s3://bkt-x/a.jpg"}\n')
    rejects = tmp_path / "rejects.jsonl"
    result, out = _convert(root, tmp_path, rejects=rejects)
    assert [r.source_ref for r in iter_detection_records(out)] == ["s3://bkt-x/a.jpg"]
    assert result.stats.rejected == {"duplicate-source-ref": 1}
    [item] = read_jsonl(rejects)
    assert (item["file"], item["reason"]) == (
        str(root / "images" / "a.png"),
        "duplicate-source-ref",
    )


def test_an_image_whose_label_file_was_removed_keeps_its_source_ref(tmp_path: Path) -> None:
    """A yolo dataset with its images, one label file deleted to make that image a negative:
    from-yolo gave it --image-prefix plus its path (s3://bkt-x/ds/images/train/img_001.jpg)
    while every other line kept the source-ref sources.jsonl maps its label path to."""
    ds = tmp_path / "yolo"
    mirror = ConvertOptions(
        copy_images=True,
        images_dir=str(SAMPLES / "images"),
        images_prefix="s3://gt-toolkit-demo/images/",
    )
    convert_output("yolo", str(SAMPLES / "truth.manifest"), str(ds), mirror)
    [removed] = [p for p in sorted((ds / "labels").rglob("*.txt")) if p.stem == "img_001"]
    removed.unlink()
    _, out = _convert(ds, tmp_path)
    refs = {r.source_ref: r.boxes for r in iter_detection_records(out)}
    assert len(refs) == 40
    assert all(ref.startswith("s3://gt-toolkit-demo/images/img_") for ref in refs)
    assert refs["s3://gt-toolkit-demo/images/img_001.jpg"] == []  # the negative


def test_an_image_or_label_file_whose_name_is_not_utf8_is_a_reject(tmp_path: Path) -> None:
    """A file name of bytes that are not UTF-8 (a Latin-1 'café') decodes to surrogates: the
    run stopped with 'TypeError: str is not valid UTF-8' writing its line or its reject, a
    traceback, no summary. The image is a reject, named with its bytes escaped; the other
    images are read."""
    root = _one_image(tmp_path, LINE)
    latin1 = os.fsdecode(b"caf\xe9")
    _image(root / "images" / f"{latin1}.jpg")
    _text(root / "labels" / f"{latin1}.txt", LINE)
    _text(root / "labels" / os.fsdecode(b"lost\xff.txt"), LINE)
    rejects = tmp_path / "rejects.jsonl"
    result, out = _convert(root, tmp_path, rejects=rejects)
    assert list(_boxes(out)) == ["images/a.jpg"]
    found = {(item["file"], item["reason"]) for item in read_jsonl(rejects)}
    assert found == {
        (f"{root}/images/caf\\xe9.jpg", "name-not-utf8"),
        (f"{root}/labels/lost\\xff.txt", "no-image"),
    }
    assert result.stats.rejected == {"name-not-utf8": 1, "no-image": 1}
