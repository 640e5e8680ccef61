"""``from-coco``: what a COCO file says is kept, what cannot be kept is said."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import orjson
import pytest

from gt_toolkit.cli import main
from gt_toolkit.convert import ConvertOptions, convert_output
from gt_toolkit.errors import ConversionError, LabelFormatError, ValidationError
from gt_toolkit.evaluation.metrics import evaluate_detections, read_detection_set
from gt_toolkit.formats.detection_label import parse_image_size
from gt_toolkit.formats.output_manifest import iter_detection_records
from tests.helpers import read_jsonl

PREFIX = "s3://bkt-x/imgs/"
CATEGORIES = [
    {"id": 90, "name": "toothbrush"},  # used by no annotation, listed first on purpose
    {"id": 1, "name": "person"},
    {"id": 3, "name": "car"},
]
IMAGES = [
    {"id": 10, "file_name": "a.jpg", "width": 64, "height": 48},
    {"id": 11, "file_name": "b.jpg", "width": 64, "height": 48},
]
ANNOTATIONS = [
    {"id": 1, "image_id": 10, "category_id": 1, "bbox": [10.4, 10.6, 4.2, 5.3], "iscrowd": 0},
    {"id": 2, "image_id": 10, "category_id": 3, "bbox": [30.25, 2.5, 7.75, 6.125]},
    {"id": 3, "image_id": 11, "category_id": 3, "bbox": [1.0, 1.0, 20.5, 20.5]},
]


def _write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))  # json, not orjson: it writes integers of any size
    return path


def _coco(tmp_path: Path, annotations: list[Any] | None = None) -> Path:
    doc = {"images": IMAGES, "annotations": annotations or ANNOTATIONS, "categories": CATEGORIES}
    return _write(tmp_path / "gt.json", doc)


def _convert(src: Path, out: Path, **options: Any) -> Any:
    return convert_output("from-coco", src, out, ConvertOptions(image_prefix=PREFIX, **options))


def test_coordinates_are_kept_exactly(tmp_path: Path) -> None:
    out = tmp_path / "prior.manifest"
    _convert(_coco(tmp_path), out)
    boxes = {
        r.source_ref: [(b.label, b.left, b.top, b.width, b.height) for b in r.boxes]
        for r in iter_detection_records(out)
    }
    assert boxes == {
        PREFIX + "a.jpg": [("person", 10.4, 10.6, 4.2, 5.3), ("car", 30.25, 2.5, 7.75, 6.125)],
        PREFIX + "b.jpg": [("car", 1, 1, 20.5, 20.5)],
    }


def test_the_summary_counts_images_not_input_lines(tmp_path: Path) -> None:
    result = _convert(_coco(tmp_path), tmp_path / "prior.manifest")
    counts = result.stats.summary_lines()[1]
    assert counts.startswith("2 objects converted, 0 empty")  # was "0 lines, 2 objects..."


def test_every_category_is_kept_with_a_written_mapping(tmp_path: Path) -> None:
    out = tmp_path / "prior.manifest"
    result = _convert(_coco(tmp_path), out)
    mapping = json.loads((tmp_path / "prior.manifest.categories.json").read_text())
    assert mapping == [
        {"class_id": 0, "coco_id": 1, "name": "person"},
        {"class_id": 1, "coco_id": 3, "name": "car"},
        {"class_id": 2, "coco_id": 90, "name": "toothbrush"},
    ]
    assert result.stats.class_map.to_json() == {"0": "person", "1": "car", "2": "toothbrush"}
    assert any("evaluate by name" in note for note in result.notes)
    first = read_jsonl(out)[0]
    assert first["prior-boxes-metadata"]["class-map"] == {"0": "person", "1": "car"}


def test_two_categories_with_one_name_are_refused(tmp_path: Path) -> None:
    doc = {
        "images": IMAGES,
        "annotations": [],
        "categories": [*CATEGORIES, {"id": 4, "name": "car"}],
    }
    with pytest.raises(ConversionError, match="both named 'car'"):
        _convert(_write(tmp_path / "c.json", doc), tmp_path / "o.manifest")


def test_crowd_regions_are_skipped_and_counted(tmp_path: Path) -> None:
    crowd = {"id": 9, "image_id": 11, "category_id": 1, "bbox": [0, 0, 60, 40], "iscrowd": 1}
    result = _convert(_coco(tmp_path, [*ANNOTATIONS, crowd]), tmp_path / "o.manifest")
    assert result.extra["crowd_regions_skipped"] == 1
    assert result.stats.boxes == 3
    assert "1 iscrowd regions skipped" in " ".join(result.notes)


ODD = [
    ({"image_id": 99}, "orphan-annotation"),
    ({"category_id": 2}, "unknown-category"),
    ({"category_id": 2**64}, "unknown-category"),
    ({"category_id": True}, "unknown-category"),
    ({"bbox": [1, 2, 3]}, "invalid-bbox"),
    ({"bbox": [True, 2, 3, 4]}, "invalid-bbox"),
    ({"bbox": [1, 2, 0, 4]}, "invalid-bbox"),
    ({"bbox": [1, 2, 3, "4"]}, "invalid-bbox"),
    ({"bbox": [1, 2, 3, 10**400]}, "invalid-bbox"),
    # past any image: a whole-valued 1e20 was written as an integer orjson cannot (TypeError)
    ({"bbox": [1e20, 2, 3, 4]}, "invalid-bbox"),
    ({"bbox": [-1e308, 2, 3, 4]}, "invalid-bbox"),
    ({"bbox": [1, 2, 1e308, 4]}, "invalid-bbox"),
    ({"bbox": [1, 10**20, 3, 4]}, "invalid-bbox"),
    ({"bbox": [1, 2, 3, 2**31]}, "invalid-bbox"),
    ({"bbox": [9.3e18, 2, 3, 4]}, "invalid-bbox"),
    ({"score": 1.5}, "invalid-bbox"),
    ({"score": False}, "invalid-bbox"),
    # read by truth, "0" was a crowd region: a real box skipped, exit 0 (as the crowd reader
    # and evaluate, only 0 and 1 are iscrowd values)
    ({"iscrowd": "0"}, "invalid-annotation"),
    ({"iscrowd": "false"}, "invalid-annotation"),
    ({"iscrowd": 2}, "invalid-annotation"),
]


@pytest.mark.parametrize(("change", "reason"), ODD, ids=[r + str(c) for c, r in ODD])
def test_annotations_that_cannot_be_boxes_are_rejects(
    tmp_path: Path, change: dict[str, Any], reason: str
) -> None:
    odd = {**ANNOTATIONS[2], "id": 4, **change}
    rejects = tmp_path / "rejects.jsonl"
    result = _convert(
        _coco(tmp_path, [*ANNOTATIONS, odd]), tmp_path / "o.manifest", rejects=rejects
    )
    assert result.stats.boxes == 3
    assert result.stats.rejected == {reason: 1}
    [item] = read_jsonl(rejects)
    assert (item["file"], item["position"], item["reason"]) == (
        str(tmp_path / "gt.json"),
        "annotations[3]",
        reason,
    )
    assert '"id": 4' in item["raw"]


def test_the_strict_policy_stops_at_the_first_reject(tmp_path: Path) -> None:
    orphan = {**ANNOTATIONS[0], "image_id": 99}
    with pytest.raises(ConversionError, match=r"annotations\[3\]: orphan-annotation"):
        _convert(_coco(tmp_path, [*ANNOTATIONS, orphan]), tmp_path / "o.manifest", policy="strict")
    assert not (tmp_path / "o.manifest").exists()


def test_a_results_list_becomes_predictions_that_evaluate_by_name(tmp_path: Path) -> None:
    gt = _coco(tmp_path)
    results = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": s}
        for a, s in zip(ANNOTATIONS, (0.9, 0.8, 0.7), strict=True)
    ]
    results.append({"image_id": 11, "category_id": 1, "bbox": [40, 30, 5, 5], "score": 0.1})
    preds = _write(tmp_path / "results.json", results)
    with pytest.raises(ConversionError, match="--coco-reference"):
        _convert(preds, tmp_path / "p.manifest")
    result = _convert(preds, tmp_path / "p.manifest", coco_reference=gt)
    assert result.extra["results_list"] is True
    _convert(gt, tmp_path / "gt.manifest")
    scores = [
        o["confidence"]
        for o in read_jsonl(tmp_path / "p.manifest")[1]["prior-boxes-metadata"]["objects"]
    ]
    assert scores == [0.7, 0.1]
    evaluation = evaluate_detections(
        read_detection_set(tmp_path / "p.manifest").boxes,
        read_detection_set(tmp_path / "gt.manifest").boxes,
    )
    # Exact boxes: AP is 1 at every IoU up to 0.95 (whole-pixel rounding broke the small boxes).
    assert evaluation.map == pytest.approx(1.0)


def test_a_coco_file_from_s3(store: Any, bucket: str, tmp_path: Path) -> None:
    store.put_bytes(f"s3://{bucket}/gt.json", _coco(tmp_path).read_bytes())
    out = f"s3://{bucket}/prior.manifest"
    convert_output(
        "from-coco", f"s3://{bucket}/gt.json", out, ConvertOptions(image_prefix=PREFIX, store=store)
    )
    assert len(store.get_bytes(out).splitlines()) == 2
    assert store.exists(f"{out}.categories.json")


def test_from_coco_needs_a_prefix_for_relative_file_names(tmp_path: Path) -> None:
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4], "score": 0.4}
        ],
        "categories": [{"id": 7, "name": "cat"}],
    }
    src = _write(tmp_path / "c.json", doc)
    with pytest.raises(ConversionError, match="--image-prefix"):
        convert_output("from-coco", src, tmp_path / "o.manifest", ConvertOptions())
    _convert(src, tmp_path / "o.manifest")
    line = read_jsonl(tmp_path / "o.manifest")[0]
    assert line["source-ref"] == PREFIX + "a.jpg"
    assert line["prior-boxes"]["annotations"] == [
        {"class_id": 0, "left": 1, "top": 2, "width": 3, "height": 4}
    ]
    assert line["prior-boxes-metadata"]["objects"] == [{"confidence": 0.4}]


def test_a_byte_order_mark_is_read_past_and_deep_nesting_refused(tmp_path: Path) -> None:
    plain, marked = tmp_path / "plain.manifest", tmp_path / "marked.manifest"
    src = _coco(tmp_path)
    _convert(src, plain)
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + src.read_bytes())
    _convert(bom, marked)

    def boxes(path: Path) -> list[Any]:
        return [(r.source_ref, r.boxes) for r in iter_detection_records(path)]

    assert boxes(marked) == boxes(plain) and len(boxes(plain)) == 2
    deep = tmp_path / "deep.json"
    deep.write_text('{"images": ' + "[" * 5000)
    with pytest.raises(ConversionError, match=r"deep\.json: .*nested more than 64 levels"):
        _convert(deep, tmp_path / "deep.manifest")
    assert not (tmp_path / "deep.manifest").exists()


def test_a_label_attribute_that_would_break_the_manifest_is_refused(tmp_path: Path) -> None:
    src = _coco(tmp_path)
    with pytest.raises(ConversionError, match="must not end with '-metadata'"):
        _convert(src, tmp_path / "prior.manifest", label_attribute="prior-metadata")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.json"]


@pytest.mark.parametrize(
    ("number", "said"),
    [
        # ijson's exact mode crashed the process on it (a segmentation fault, exit 139)
        ("7" * 5000, "an integer of more than 4300 digits"),
        # Decimal raised InvalidOperation out of the reader: a traceback
        ("1e" + "7" * 5000, "a number whose exponent no reader holds"),
    ],
    ids=["5000 digits", "5000-digit exponent"],
)
def test_a_number_no_reader_holds_is_one_error_not_a_crash(
    tmp_path: Path, number: str, said: str
) -> None:
    text = json.dumps({"images": IMAGES, "annotations": ANNOTATIONS, "categories": CATEGORIES})
    path = tmp_path / "gt.json"
    path.write_text(text.replace('"width": 64', f'"width": {number}', 1))
    with pytest.raises(ConversionError, match=said):
        _convert(path, tmp_path / "o.manifest")
    assert not (tmp_path / "o.manifest").exists()


@pytest.mark.parametrize(
    ("cut", "where", "said"),
    [
        ('"bbox": [1.0', "annotations[2]", "parse error"),  # a stray ] in the third
        (None, "annotations[2]", "parse error: premature EOF"),  # it ends in the third
    ],
    ids=["syntax", "truncated"],
)
def test_a_file_that_is_not_json_names_the_entry_in_one_line(
    tmp_path: Path, cut: str | None, where: str, said: str
) -> None:
    # yajl's message held its caret over a mangled copy of the line and named no entry
    text = json.dumps({"images": IMAGES, "categories": CATEGORIES, "annotations": ANNOTATIONS})
    if cut is None:
        broken = text[: text.index('"id": 3, "image_id": 11')]
    else:
        broken = text.replace(cut, cut + "]]", 1)
    path = tmp_path / "gt.json"
    path.write_text(broken)
    with pytest.raises(ConversionError) as info:
        _convert(path, tmp_path / "o.manifest")
    message = str(info.value)
    assert f"gt.json: not valid JSON at {where}: {said}" in message
    assert "\n" not in message and "right here" not in message
    assert not (tmp_path / "o.manifest").exists()


def test_a_broken_results_list_names_its_entry(tmp_path: Path) -> None:
    results = [{"image_id": 10, "category_id": 1, "bbox": [1, 1, 2, 2], "score": 0.5}] * 3
    text = json.dumps(results)
    third = [i for i, c in enumerate(text) if c == "{"][2]  # the entries hold no objects
    path = tmp_path / "results.json"
    path.write_text(text[:third] + "x" + text[third:])
    with pytest.raises(ConversionError, match=r"results\.json: not valid JSON at \[2\]: lexical"):
        _convert(path, tmp_path / "p.manifest", coco_reference=_coco(tmp_path))


@pytest.mark.parametrize("prefix", ["s3://b/", "s3://Bkt/x/", "http://bkt-x/"])
def test_an_image_prefix_no_source_ref_can_have_is_refused_before_anything(
    tmp_path: Path, prefix: str
) -> None:
    # s3://b/ made every source-ref one the manifest readers reject, and exited 0
    out = tmp_path / "prior.manifest"
    with pytest.raises(ValidationError, match=r"image_prefix (bad bucket name|must be an s3)"):
        convert_output("from-coco", _coco(tmp_path), out, ConvertOptions(image_prefix=prefix))
    assert not out.exists()


@pytest.mark.parametrize("field", ["file_name", "source_ref"])
def test_an_image_uri_with_a_bucket_s3_refuses_stops_the_run(tmp_path: Path, field: str) -> None:
    images = [dict(IMAGES[0], **{field: "s3://b/a.jpg"}), IMAGES[1]]
    path = _write(
        tmp_path / "gt.json", {**json.loads(_coco(tmp_path).read_text()), "images": images}
    )
    with pytest.raises(ConversionError, match=r"images\[0\]: bad bucket name 'b'"):
        _convert(path, tmp_path / "o.manifest")
    assert not (tmp_path / "o.manifest").exists()


def test_two_images_entries_of_one_file_are_one_line_and_a_reject(tmp_path: Path) -> None:
    """Two ids of one file_name (a merged dataset) made two lines of one source-ref: a
    labeling job made two tasks of the image, and every training target refused the second."""
    again = {"id": 12, "file_name": "a.jpg", "width": 64, "height": 48}
    extra = {"id": 5, "image_id": 12, "category_id": 1, "bbox": [1, 2, 3, 4]}
    doc = {"images": [*IMAGES, again], "annotations": [*ANNOTATIONS, extra]}
    src = _write(tmp_path / "gt.json", doc | {"categories": CATEGORIES})
    rejects = tmp_path / "rejects.jsonl"
    out = tmp_path / "prior.manifest"
    result = _convert(src, out, rejects=rejects)
    assert [r.source_ref for r in iter_detection_records(out)] == [
        PREFIX + "a.jpg",
        PREFIX + "b.jpg",
    ]
    assert result.stats.rejected == {"duplicate-source-ref": 1}
    assert result.stats.lost_total == 1  # the run exits 1: the entry's box is not in the output
    [item] = read_jsonl(rejects)
    assert (item["file"], item["position"], item["reason"]) == (
        str(src),
        "images[2]",
        "duplicate-source-ref",
    )
    assert '"left": 1' in item["raw"]


@pytest.mark.parametrize("target", ["yolo", "voc", "od-json", "jumpstart-od", "coco"])
def test_file_names_that_differ_only_in_case_stay_two_images(
    tmp_path: Path, target: str, store: Any, bucket: str
) -> None:
    """``IMG_1.jpg``, ``img_1.jpg`` and ``sub/Img_1.JPG``: two S3 objects and three images,
    but one file on a case-insensitive disk (APFS, NTFS) where a dataset is copied."""
    names = ["IMG_1.jpg", "img_1.jpg", "sub/Img_1.JPG"]
    images = [{"id": i, "file_name": n, "width": 64, "height": 48} for i, n in enumerate(names)]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 2, 3, 4]} for i in range(3)]
    src = _write(
        tmp_path / "gt.json", {"images": images, "annotations": anns, "categories": CATEGORIES}
    )
    prefix = f"s3://{bucket}/imgs/"
    for n in names:
        store.put_bytes(prefix + n, n.encode())
    prior = tmp_path / "prior.manifest"
    convert_output("from-coco", src, prior, ConvertOptions(image_prefix=prefix))
    out = tmp_path / target
    convert_output(target, prior, out, ConvertOptions(store=store, copy_images=True))
    files = [p for p in out.rglob("*") if p.is_file() and p.suffix.lower() == ".jpg"]
    assert sorted(p.read_bytes().decode() for p in files) == sorted(names)
    assert len({p.stem.lower() for p in files}) == 3  # no two are one file there


def test_a_lone_surrogate_escape_is_a_one_line_error(tmp_path: Path) -> None:
    """A file_name of "a\\udce9.jpg" (JSON's grammar allows an escape of half a character)
    stopped from-coco with a UnicodeDecodeError traceback from yajl; it is its one-line
    ConversionError."""
    coco = {
        "images": [{"id": 1, "file_name": "a@.jpg", "width": 100, "height": 100}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 1, "name": "car"}],
    }
    src = tmp_path / "coco.json"
    src.write_text(json.dumps(coco).replace("@", "\\udce9"))
    with pytest.raises(ConversionError, match="escapes half a character"):
        _convert(src, tmp_path / "out.manifest")


@pytest.mark.parametrize(
    ("key", "number", "shown"),
    [
        ("width", str(2**31), "width 2147483648"),
        ("height", str(2**62 - 1), f"height {2**62 - 1}"),  # the old bound's last side
        ("width", "2147483648.0", "width Decimal('2147483648.0')"),
        ("width", "1e12", "width Decimal('1E+12')"),
        ("height", "9" * 400, "height 99999"),  # an integer no float holds
    ],
)
def test_an_image_larger_than_any_reader_takes_is_a_reject_with_its_boxes(
    tmp_path: Path, key: str, number: str, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """from-coco took sides up to 2**62 and wrote them: every manifest reader downstream
    refuses a side of 2**31 or more, so the line was lost there, and from-coco exited 0.
    A side past 2**31 - 1 pixels is a reject now, its boxes kept with it (exit 1)."""
    text = json.dumps({"images": IMAGES, "annotations": ANNOTATIONS, "categories": CATEGORIES})
    path = tmp_path / "gt.json"
    path.write_text(text.replace(f'"{key}": {IMAGES[0][key]}', f'"{key}": {number}', 1))
    out, rejects = tmp_path / "o.manifest", tmp_path / "r.jsonl"
    argv = ["from-coco", str(path), "-o", str(out), "--image-prefix", PREFIX]
    assert main([*argv, "--rejects", str(rejects)]) == 1
    assert "invalid-image: 1" in capsys.readouterr().err
    assert [r.source_ref for r in iter_detection_records(out)] == [PREFIX + "b.jpg"]
    [item] = read_jsonl(rejects)
    assert (item["file"], item["position"], item["reason"]) == (
        str(path),
        "images[0]",
        "invalid-image",
    )
    assert item["detail"].startswith(shown)
    assert item["detail"].endswith("beyond 2147483647 pixels, no image is that large")
    raw = json.loads(item["raw"])
    assert raw["source-ref"] == PREFIX + "a.jpg"
    assert [b["label"] for b in raw["boxes"]] == ["person", "car"]  # lost with it: said
    summary = json.loads((tmp_path / "o.manifest.summary.json").read_text())
    assert summary["rejected_by_reason"] == {"invalid-image": 1}


def test_an_image_of_the_largest_side_every_reader_takes_is_written(tmp_path: Path) -> None:
    side = 2**31 - 1
    images = [{**IMAGES[0], "width": side, "height": side}, IMAGES[1]]
    doc = {"images": images, "annotations": ANNOTATIONS, "categories": CATEGORIES}
    out = tmp_path / "o.manifest"
    result = _convert(_write(tmp_path / "gt.json", doc), out)
    assert result.stats.rejected == {}
    [line, _] = read_jsonl(out)
    assert line["prior-boxes"]["image_size"] == [{"width": side, "height": side, "depth": 3}]
    assert next(r.image_size for r in iter_detection_records(out)) == {
        "width": side,
        "height": side,
        "depth": 3,
    }


def test_an_output_that_is_a_link_is_written_where_it_leads(tmp_path: Path) -> None:
    # Staged beside the output and moved in by a rename, the manifest and its categories
    # file replaced their links with plain files; the shared files kept the earlier run's.
    shared = tmp_path / "shared"
    shared.mkdir()
    out = tmp_path / "prior.manifest"
    for name in ("prior.manifest", "prior.manifest.categories.json"):
        (shared / name).write_text("earlier\n")
        (tmp_path / name).symlink_to(shared / name)
    _convert(_coco(tmp_path), out)
    for name in ("prior.manifest", "prior.manifest.categories.json"):
        assert (tmp_path / name).readlink() == shared / name
    assert [r.source_ref for r in iter_detection_records(shared / "prior.manifest")] == [
        PREFIX + "a.jpg",
        PREFIX + "b.jpg",
    ]
    assert json.loads((shared / "prior.manifest.categories.json").read_text())[0]["coco_id"] == 1
    assert sorted(p.name for p in shared.iterdir()) == [
        "prior.manifest",
        "prior.manifest.categories.json",
    ]


def test_a_box_turned_in_its_attributes_is_written_as_the_crowd_reader_reads_it(
    tmp_path: Path,
) -> None:
    # CVAT's COCO export keeps a turned box upright in bbox and its turn (degrees clockwise
    # about the centre) in attributes.rotation: read without it, the box turned 30 degrees
    # was written upright, silently, where the coco-per-annotator reader reads its envelope
    from gt_toolkit.formats.crowd.sources import open_crowd_source

    turned = {**ANNOTATIONS[2], "bbox": [20.0, 10.0, 20.5, 20.5]}  # inside b.jpg turned too
    turned["attributes"] = {"occluded": False, "rotation": 30.0}
    level = [{**a, "attributes": {"occluded": False, "rotation": r}} for a, r in
             zip(ANNOTATIONS[:2], (0.0, 360), strict=True)]  # fmt: skip
    src = _coco(tmp_path, [*level, turned])
    out = tmp_path / "prior.manifest"
    result = _convert(src, out)
    written = {
        r.source_ref: [(b.left, b.top, b.width, b.height) for b in r.boxes]
        for r in iter_detection_records(out)
    }
    (tmp_path / "crowd").mkdir()
    crowd = tmp_path / "crowd" / "alice.json"
    crowd.write_text(src.read_text())
    with open_crowd_source(crowd.parent, "coco-per-annotator") as source:
        read = {i.key: i.boxes[0] for i in source.images()}
    (envelope,) = read["b.jpg"]
    assert written[PREFIX + "b.jpg"] == [
        (envelope["left"], envelope["top"], envelope["width"], envelope["height"])
    ]
    side = 20.5 * (math.cos(math.pi / 6) + 0.5)  # a square turned 30 degrees about its centre
    assert written[PREFIX + "b.jpg"][0] == pytest.approx(
        (30.25 - side / 2, 20.25 - side / 2, side, side)
    )
    assert written[PREFIX + "a.jpg"] == [(10.4, 10.6, 4.2, 5.3), (30.25, 2.5, 7.75, 6.125)]
    assert "1 boxes turned in attributes.rotation written as their axis-aligned envelope" in (
        result.notes
    )
    # counted in the summary as a number too, as crowd_regions_skipped is (only a note was)
    assert result.extra["rotated_boxes"] == 1
    assert result.to_json()["rotated_boxes"] == 1  # what summary.json holds


def test_a_turned_box_of_a_rejected_image_is_not_counted_as_written(tmp_path: Path) -> None:
    # b.jpg's width is past any image: the image is rejected with its boxes (kept in the
    # rejects file). Its one turned box was still counted in rotated_boxes and in the note
    # "1 boxes turned ... written as their axis-aligned envelope": none was written
    turned = {**ANNOTATIONS[2], "bbox": [20.0, 10.0, 20.5, 20.5]}
    turned["attributes"] = {"occluded": False, "rotation": 30.0}
    images = [IMAGES[0], {**IMAGES[1], "width": 10**12}]
    doc = {"images": images, "annotations": [*ANNOTATIONS[:2], turned], "categories": CATEGORIES}
    out = tmp_path / "prior.manifest"
    result = _convert(_write(tmp_path / "gt.json", doc), out)
    assert result.stats.rejected == {"invalid-image": 1}
    assert [r.source_ref for r in iter_detection_records(out)] == [PREFIX + "a.jpg"]
    assert result.extra["rotated_boxes"] == result.to_json()["rotated_boxes"] == 0
    assert not any("turned" in note for note in result.notes)


def test_a_turned_box_of_a_second_line_of_one_image_is_not_counted_as_written(
    tmp_path: Path,
) -> None:
    # two COCO images of one file_name: the second line is a duplicate-source-ref reject,
    # its boxes with it; its turned box was still counted as written as an envelope
    turned = {**ANNOTATIONS[2], "bbox": [20.0, 10.0, 20.5, 20.5]}
    turned["attributes"] = {"occluded": False, "rotation": 30.0}
    images = [IMAGES[0], {**IMAGES[1], "file_name": "a.jpg"}]
    doc = {"images": images, "annotations": [*ANNOTATIONS[:2], turned], "categories": CATEGORIES}
    result = _convert(_write(tmp_path / "gt.json", doc), tmp_path / "prior.manifest")
    assert result.stats.rejected == {"duplicate-source-ref": 1}
    assert result.extra["rotated_boxes"] == 0


@pytest.mark.parametrize(
    "turn",
    ["30", [30], True, {"deg": 30}, 10**400, "1e400"],
    ids=["text", "list", "true", "object", "int-past-floats", "1e400"],
)
def test_a_rotation_attribute_that_is_no_number_is_a_reject(tmp_path: Path, turn: Any) -> None:
    odd = {**ANNOTATIONS[2], "id": 4, "attributes": {"rotation": turn}}
    src = _coco(tmp_path, [*ANNOTATIONS, odd])
    if turn == "1e400":  # a number past the largest float, as JSON text
        src.write_text(src.read_text().replace('"1e400"', "1e400"))
    rejects = tmp_path / "rejects.jsonl"
    result = _convert(src, tmp_path / "o.manifest", rejects=rejects)
    assert (result.stats.boxes, result.stats.rejected) == (3, {"invalid-bbox": 1})
    [item] = read_jsonl(rejects)
    assert item["position"] == "annotations[3]"
    assert item["detail"].startswith("attributes.rotation must be a finite number")


@pytest.mark.parametrize(
    "attributes",
    [[{"rotation": 30}], "rotation=30", 30, False, [], {}, None],
    ids=["list", "text", "number", "false", "empty-list", "empty-object", "null"],
)
def test_attributes_that_are_not_an_object_are_a_reject_not_none(
    tmp_path: Path, attributes: Any
) -> None:
    # attributes that are a list, a string or a number were read as none: the box was
    # written upright whatever turn they held, silently (the coco-* crowd readers reject
    # it as malformed by the same rule). null, {} and [] are no attributes
    odd = {**ANNOTATIONS[2], "id": 4, "attributes": attributes}
    rejects = tmp_path / "rejects.jsonl"
    result = _convert(
        _coco(tmp_path, [*ANNOTATIONS, odd]), tmp_path / "o.manifest", rejects=rejects
    )
    if attributes in ([], {}, None):
        assert (result.stats.boxes, result.stats.rejected) == (4, {})
        return
    assert (result.stats.boxes, result.stats.rejected) == (3, {"invalid-bbox": 1})
    [item] = read_jsonl(rejects)
    assert item["position"] == "annotations[3]"
    assert item["detail"].startswith("attributes must be an object, got ")


@pytest.mark.parametrize(
    "number", ["640.00000000000000000001", "2147483647.00000000001", "1E3", "640.5", "48"]
)
def test_an_image_side_is_read_as_the_manifest_readers_read_its_text(
    tmp_path: Path, number: str
) -> None:
    """from-coco reads fractions exactly (``Decimal``); every other reader parses them as
    floats. ``640.00000000000000000001`` is 640.0 to those, and was 640 here before one
    image_side rule compared the Decimal exactly: the line was written without a size, and
    with it from a manifest. The size written is what the manifest reader makes of the text."""
    text = json.dumps({"images": IMAGES, "annotations": ANNOTATIONS, "categories": CATEGORIES})
    path = tmp_path / "gt.json"
    path.write_text(text.replace('"width": 64', f'"width": {number}', 1))
    out = tmp_path / "o.manifest"
    result = _convert(path, out)
    assert result.stats.rejected == {}
    line = json.loads(out.read_text().splitlines()[0])
    written = line["prior-boxes"]["image_size"]
    try:
        expected = [parse_image_size({**orjson.loads(f'{{"width": {number}}}'), "height": 48})]
    except LabelFormatError:
        expected = []  # no whole number: the line goes without a size
    assert written == [{**size, "depth": 3} for size in expected]
