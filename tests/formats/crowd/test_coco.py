from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from gt_toolkit import iter_crowd_images
from gt_toolkit.consolidation.reconsolidate import reconsolidate
from gt_toolkit.errors import CrowdSourceError
from gt_toolkit.formats.crowd.report import CrowdReject
from gt_toolkit.formats.crowd.sources import open_crowd_source
from tests.helpers import CROWD, consolidated_boxes

RATERS = CROWD / "coco-raters.json"
PER_ANNOTATOR = CROWD / "coco-per-annotator"


def consolidate(location: Path, kind: str, tmp_path: Path, **kw: Any) -> tuple[Any, Any]:
    out = tmp_path / "out.manifest"
    with open_crowd_source(location, kind, **kw) as source:
        # the head count: the expected boxes are its arithmetic on a tiny crowd
        report = reconsolidate(source, out, image_prefix="s3://bkt/photos/", worker_model=None)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    return consolidated_boxes(lines), report


def write_raters(tmp_path: Path, coco: dict[str, Any]) -> Path:
    """``coco`` (the raters fixture, changed by a test) as ``raters.json`` in ``tmp_path``."""
    path = tmp_path / "raters.json"
    path.write_text(json.dumps(coco))
    return path


def test_raters_file_consolidates_box_by_box(tmp_path: Path) -> None:
    # r3 is listed on img_a and drew nothing there: three workers, two drew each object
    # (2/3 x (1 - (1 - IoU)/4)); on img_b r2 drew nothing. r9's box (not listed on img_b)
    # is a reject, r3's crowd region is skipped.
    rejects: list[CrowdReject] = []
    boxes, report = consolidate(RATERS, "coco-raters", tmp_path, on_reject=rejects.append)
    assert boxes == {
        "s3://bkt/photos/img_a.jpg": [
            ("car", 67, 48, 125, 96, 0.6583),
            ("person", 328, 240, 56, 112, 0.6),
        ],
        "s3://bkt/photos/img_b.jpg": [("car", 160, 123, 160, 120, 0.6508)],
    }
    assert report.labels == ["car", "person"]  # the categories, by name
    assert report.ingest.answers == 6 and report.ingest.annotators == {"r1", "r2", "r3"}
    assert dict(report.ingest.skipped) == {"crowd-region": 1, "rater-not-listed": 1}
    (reject,) = rejects
    assert str(reject).endswith(
        "annotations[7] (id 8): rater-not-listed: rater 'r9' is not in the image's rater_list"
    )
    assert not report.complete


def test_per_annotator_folder_consolidates_box_by_box(tmp_path: Path) -> None:
    # each file numbers images and categories its own way; carl saw img_b only, bea drew
    # nothing there: the same crowd as the Label Studio fixture
    boxes, report = consolidate(PER_ANNOTATOR, "coco-per-annotator", tmp_path)
    assert boxes == {
        "s3://bkt/photos/img_a.jpg": [
            ("car", 67, 48, 125, 96, 0.9875),
            ("person", 328, 240, 56, 112, 0.9),
        ],
        "s3://bkt/photos/img_b.jpg": [("car", 160, 123, 160, 120, 0.6508)],
    }
    images = list(iter_crowd_images(PER_ANNOTATOR, "coco-per-annotator"))
    assert [i.annotators for i in images] == [("alice", "bea"), ("alice", "bea", "carl")]
    assert report.complete and report.ingest.boxes == 6


def test_sessions_count_as_annotators(tmp_path: Path) -> None:
    coco = json.loads(RATERS.read_text())
    coco["images"][0]["rater_list"] = {"r1": [1, 2]}
    coco["images"][1]["rater_list"] = {"r1": [1], "r3": [1]}
    for ann in coco["annotations"]:
        ann["session_id"] = 2 if ann["rater_id"] == "r2" else 1
        ann["rater_id"] = "r1" if ann["rater_id"] == "r2" else ann["rater_id"]
    path = tmp_path / "sessions.json"
    path.write_text(json.dumps(coco))
    rejects: list[CrowdReject] = []
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        images = list(source.images())
    assert [i.annotators for i in images] == [("r1 (S1)", "r1 (S2)"), ("r1 (S1)", "r3 (S1)")]
    assert [len(b) for b in images[0].boxes] == [2, 2]
    assert [r.reason.value for r in rejects] == ["rater-not-listed"]  # r9


def test_without_rater_list_the_raters_are_those_who_drew(tmp_path: Path) -> None:
    coco = json.loads(RATERS.read_text())
    for image in coco["images"]:
        del image["rater_list"]
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(coco))
    images = list(iter_crowd_images(path, "coco-raters"))
    assert [i.annotators for i in images] == [("r1", "r2"), ("r1", "r3", "r9")]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("image", r"raters\.json: annotations\[0\] \(id 1\): unknown-image: image_id 99"),
        ("category", r"raters\.json: annotations\[0\] \(id 1\): unknown-category: category_id 42"),
        ("bbox", r"raters\.json: annotations\[0\] \(id 1\): malformed: bbox is not \[x, y, "),
        ("rater", r"raters\.json: annotations\[0\] \(id 1\): no-annotator: no rater_id"),
        ("file_name", r"raters\.json: images\[1\]: malformed: no id or file_name"),
        ("truncated", r"raters\.json: images\[1\]: not JSON: "),  # cut in the second image
        # the categories pass read it first, and named its own place: categories[0]
        ("broken annotation", r"raters\.json: annotations\[1\]: not JSON: "),
    ],
)
def test_malformed_input_is_one_line_with_file_and_position(
    tmp_path: Path, change: str, message: str
) -> None:
    coco = json.loads(RATERS.read_text())
    first = coco["annotations"][0]
    text = None
    if change == "image":
        first["image_id"] = 99
    elif change == "category":
        first["category_id"] = 42
    elif change == "bbox":
        first["bbox"] = [64, 48, "wide", 96]
    elif change == "rater":
        del first["rater_id"]
    elif change == "file_name":
        del coco["images"][1]["file_name"]
    elif change == "truncated":
        text = json.dumps(coco)
        text = text[: text.index(json.dumps(coco["images"][1])) + 20]
    else:
        text = json.dumps(coco)
        second = json.dumps(coco["annotations"][1])
        text = text.replace(second, second.replace(", ", ",, ", 1), 1)
    path = tmp_path / "raters.json"
    path.write_text(text if text is not None else json.dumps(coco))
    with pytest.raises(CrowdSourceError, match=message) as caught:
        list(iter_crowd_images(path, "coco-raters"))
    assert "\n" not in str(caught.value)


def test_per_annotator_size_conflict_names_both(tmp_path: Path) -> None:
    folder = tmp_path / "coco"
    shutil.copytree(PER_ANNOTATOR, folder)
    carl = json.loads((folder / "carl.json").read_text())
    carl["images"][0]["height"] = 500
    (folder / "carl.json").write_text(json.dumps(carl))
    with pytest.raises(
        CrowdSourceError,
        match=r"carl\.json: images\[0\]: image 'img_b\.jpg' is 640x500 for carl but 640x480 "
        r"for alice",
    ):
        list(iter_crowd_images(folder, "coco-per-annotator"))


def test_a_rater_whose_every_box_is_broken_is_left_out(tmp_path: Path) -> None:
    coco = json.loads(RATERS.read_text())
    coco["annotations"][0]["bbox"] = [64, 48, None, 96]  # r1's car on img_a
    coco["annotations"][1]["category_id"] = 77  # r1's person on img_a
    path = write_raters(tmp_path, coco)
    rejects: list[CrowdReject] = []
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        img_a, img_b = source.images()
    assert [r.reason.value for r in rejects] == [
        "malformed",
        "unknown-category",
        "rater-not-listed",
    ]
    assert img_a.annotators == ("r2", "r3")  # r3 drew nothing; r1's boxes could not be read
    assert img_b.annotators == ("r1", "r2", "r3")


def cvat_coco(coco: dict[str, Any]) -> dict[str, Any]:
    """``coco`` as CVAT's "COCO 1.0" export writes it (datumaro's field set)."""
    return {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "url": "",
                 "version": "", "year": ""},
        "categories": [{**c, "supercategory": ""} for c in coco["categories"]],
        "images": [
            {**i, "license": 0, "flickr_url": "", "coco_url": "", "date_captured": 0}
            for i in coco["images"]
        ],
        "annotations": [
            {**a, "segmentation": [], "attributes": {"occluded": False, "rotation": 0.0}}
            for a in coco["annotations"]
        ],
    }  # fmt: skip


def test_per_annotator_files_sharing_a_stem_are_named_by_their_path(tmp_path: Path) -> None:
    # CVAT's COCO export unzipped once per annotator: every file is instances_default.json
    folder = tmp_path / "coco"
    for person in ("alice", "bea", "carl"):
        target = folder / person / "annotations" / "instances_default.json"
        target.parent.mkdir(parents=True)
        coco = json.loads((PER_ANNOTATOR / f"{person}.json").read_text())
        target.write_text(json.dumps(cvat_coco(coco)))
    boxes, report = consolidate(folder, "coco-per-annotator", tmp_path)
    flat, _ = consolidate(PER_ANNOTATOR, "coco-per-annotator", tmp_path)
    assert boxes == flat  # three annotators, not one who drew everything twice
    assert report.ingest.annotators == {
        "alice/annotations/instances_default",
        "bea/annotations/instances_default",
        "carl/annotations/instances_default",
    }


def test_per_annotator_a_unique_stem_stays_the_name(tmp_path: Path) -> None:
    folder = tmp_path / "coco"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    shutil.copy(PER_ANNOTATOR / "alice.json", folder / "alice.json")
    shutil.copy(PER_ANNOTATOR / "bea.json", folder / "a" / "x.json")
    shutil.copy(PER_ANNOTATOR / "carl.json", folder / "b" / "x.json")
    seen = {i.key: i.annotators for i in iter_crowd_images(folder, "coco-per-annotator")}
    assert seen["img_b.jpg"] == ("a/x", "alice", "b/x")  # carl's is b/x


def test_per_annotator_files_naming_one_annotator_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "coco"
    folder.mkdir()
    shutil.copy(PER_ANNOTATOR / "alice.json", folder / "alice.json")
    shutil.copy(PER_ANNOTATOR / "bea.json", folder / "alice.JSON")
    with pytest.raises(
        CrowdSourceError, match=r"alice\.json: names the same annotator 'alice' as "
    ):
        list(iter_crowd_images(folder, "coco-per-annotator"))


@pytest.mark.parametrize("bbox", [[110, 60, -100, -50], [10, 10, 5, -1]])
def test_a_box_of_negative_width_or_height_is_malformed(tmp_path: Path, bbox: list[float]) -> None:
    coco = json.loads(RATERS.read_text())
    coco["annotations"][0]["bbox"] = bbox  # r1's car on img_a
    path = write_raters(tmp_path, coco)
    rejects: list[CrowdReject] = []
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        img_a, _ = source.images()
    assert str(rejects[0]).endswith(
        "annotations[0] (id 1): malformed: bbox width and height must not be negative"
    )
    assert img_a.annotators == ("r1", "r2", "r3")  # r1's person still counts
    assert [b["label"] for b in img_a.boxes[0]] == ["person"]


def duplicate_first_image(coco: dict[str, Any]) -> dict[str, Any]:
    """A second ``images`` entry with the first one's id and another file."""
    first = coco["images"][0]
    coco["images"].append({**first, "file_name": "img_z.jpg"})
    return coco


def test_raters_duplicate_image_id_moves_no_box(tmp_path: Path) -> None:
    coco = duplicate_first_image(json.loads(RATERS.read_text()))
    first_id = coco["images"][0]["id"]
    on_first = sum(a["image_id"] == first_id for a in coco["annotations"])
    path = write_raters(tmp_path, coco)
    rejects: list[CrowdReject] = []
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        images = list(source.images())
    assert str(rejects[0]).endswith(
        f"images[2]: malformed: duplicate image id {first_id}, first at images[0]"
    )
    ambiguous = [r for r in rejects if "names both" in r.detail]
    assert len(ambiguous) == on_first  # r3's crowd region included: which image is it on?
    assert ambiguous[0].detail == (
        f"image_id {first_id} names both 'img_a.jpg' at images[0] and 'img_z.jpg' at images[2]"
    )
    assert [i.key for i in images] == ["img_a.jpg", "img_b.jpg"]
    # r3 drew nothing under that id; r1's and r2's boxes could be on either image
    assert images[0].annotators == ("r3",)


def test_per_annotator_duplicate_image_id_moves_no_box(tmp_path: Path) -> None:
    folder = tmp_path / "coco"
    shutil.copytree(PER_ANNOTATOR, folder)
    alice = duplicate_first_image(json.loads((folder / "alice.json").read_text()))
    (folder / "alice.json").write_text(json.dumps(alice))
    rejects: list[CrowdReject] = []
    with open_crowd_source(folder, "coco-per-annotator", on_reject=rejects.append) as source:
        images = list(source.images())
    assert [r.position for r in rejects] == [
        "images[2]",
        "annotations[0] (id 1)",
        "annotations[1] (id 2)",
    ]
    assert all(r.source.endswith("alice.json") for r in rejects)
    assert [i.key for i in images] == ["img_a.jpg", "img_b.jpg"]
    assert images[0].annotators == ("bea",)


def test_the_same_image_listed_twice_keeps_its_boxes(tmp_path: Path) -> None:
    coco = json.loads(RATERS.read_text())
    coco["images"].append(coco["images"][0])  # a repeated entry: the id is not ambiguous
    path = write_raters(tmp_path, coco)
    rejects: list[CrowdReject] = []
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        img_a, _ = source.images()
    assert [r.detail for r in rejects][:1] == ["duplicate image id 20, first at images[0]"]
    assert img_a.annotators == ("r1", "r2", "r3") and sum(map(len, img_a.boxes)) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"annotations": {"1": {"id": 1}}}, "'annotations' is an object, not a list"),
        ({"images": {"1": {"id": 1}}}, "'images' is an object, not a list"),
        ({"annotations": None}, "'annotations' is null, not a list"),
        ({"images": 3}, "'images' is a number, not a list"),
        ({"categories": "car"}, "'categories' is a string, not a list"),
        ({"images": ...}, "no 'images' list"),
        ({"annotations": ...}, "no 'annotations' list"),
    ],
)
def test_a_section_that_is_not_a_list_is_an_error(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    coco = json.loads(RATERS.read_text())
    for name, value in change.items():
        if value is ...:
            del coco[name]
        else:
            coco[name] = value
    path = write_raters(tmp_path, coco)
    with pytest.raises(CrowdSourceError, match=rf"raters\.json: not a COCO file: {message}$"):
        list(iter_crowd_images(path, "coco-raters"))


def test_an_empty_object_is_not_an_empty_export(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text("{}")
    with pytest.raises(CrowdSourceError, match=r"a\.json: not a COCO file: no 'images' list"):
        list(iter_crowd_images(path, "coco-raters"))


def test_empty_lists_and_no_categories_are_an_export_of_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"images": [], "annotations": []}))
    assert list(iter_crowd_images(path, "coco-raters")) == []


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        ({"width": 1e20}, "width 1e+20, height 480"),
        ({"width": 2**31}, "width 2147483648, height 480"),
        ({"width": -640}, "width -640, height 480"),
        ({"width": 0}, "width 0, height 480"),
        ({"width": 640.5}, "width 640.5, height 480"),
        ({"width": "640"}, "width '640', height 480"),
        ({"height": None}, "width 640, height None"),
    ],
)
def test_an_image_size_off_whole_pixels_is_malformed(
    tmp_path: Path, size: dict[str, Any], shown: str
) -> None:
    coco = json.loads(RATERS.read_text())
    coco["images"][0].update(size)
    path = write_raters(tmp_path, coco)
    rejects: list[CrowdReject] = []
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        images = list(source.images())
    assert str(rejects[0]).endswith(
        f"images[0]: malformed: {shown}: not whole numbers from 1 to 2**31 - 1"
    )
    assert [i.key for i in images] == ["img_b.jpg"]
    assert {r.reason.value for r in rejects[1:]} <= {"unknown-image", "rater-not-listed"}


@pytest.mark.parametrize(
    "rater_list", [{"r1": 1, "r2": [1]}, 7, "r1", [["r1"]], [True], {"r1": [[1]]}]
)
def test_a_rater_list_of_another_shape_is_malformed(tmp_path: Path, rater_list: Any) -> None:
    coco = json.loads(RATERS.read_text())
    coco["images"][0]["rater_list"] = rater_list
    path = write_raters(tmp_path, coco)
    with pytest.raises(
        CrowdSourceError,
        match=r"raters\.json: images\[0\]: malformed: rater_list is neither a list of raters "
        r"nor an object of session lists$",
    ):
        list(iter_crowd_images(path, "coco-raters"))


HUGE = 123456789012345678901234567890  # past 64 bits


def read_raters(path: Path) -> list[Any]:
    """Each image's key, annotators and boxes (r9's box not listed on img_b is a reject)."""
    with open_crowd_source(path, "coco-raters", on_reject=lambda _: None) as source:
        return [(i.key, i.annotators, i.boxes) for i in source.images()]


def test_an_integer_past_64_bits_is_read(tmp_path: Path) -> None:
    # yajl's float mode refused the whole file ("not JSON: parse error: integer overflow")
    coco = json.loads(RATERS.read_text())
    coco["images"][1]["id"] = HUGE  # img_b, after img_a: the second read skips img_a
    for ann in coco["annotations"]:
        ann["area"] = HUGE
        if ann["image_id"] == 21:
            ann["image_id"] = HUGE
    assert read_raters(write_raters(tmp_path, coco)) == read_raters(RATERS)


def test_an_integer_coordinate_past_64_bits_is_the_float_it_denotes(tmp_path: Path) -> None:
    coco = json.loads(RATERS.read_text())
    coco["annotations"][0]["bbox"] = [64, 48, HUGE, 96]
    (_, annotators, boxes), _ = read_raters(write_raters(tmp_path, coco))
    assert annotators[0] == "r1"
    assert boxes[0][0] == {
        "label": "car",
        "left": 64,
        "top": 48,
        "width": 1.2345678901234568e29,
        "height": 96,
    }


def test_a_reject_holding_an_integer_past_64_bits_is_written(tmp_path: Path) -> None:
    coco = json.loads(RATERS.read_text())
    coco["annotations"][7]["id"] = HUGE  # r9's box, not listed on img_b: a reject
    rejects: list[CrowdReject] = []
    path = write_raters(tmp_path, coco)
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        list(source.images())
    (reject,) = rejects
    record = reject.to_json()  # orjson raised "Integer exceeds 64-bit range"
    assert record["position"] == "annotations[7] (id 123456789012345678901234567890)"
    assert json.loads(record["raw"])["id"] == HUGE


def test_a_byte_order_mark_is_read_past(tmp_path: Path) -> None:
    path = tmp_path / "raters.json"
    path.write_bytes(b"\xef\xbb\xbf" + RATERS.read_bytes())
    read = []
    for location in (path, RATERS):
        rejects: list[CrowdReject] = []
        with open_crowd_source(location, "coco-raters", on_reject=rejects.append) as source:
            read.append((list(source.images()), [r.detail for r in rejects]))
    assert read[0] == read[1] and read[0][0]


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        ("utf-16", r"byte 3: not UTF-8 text: a NUL byte \(UTF-16\? save the file as UTF-8\)"),
        ("utf-16-le", r"byte 1: not UTF-8 text: a NUL byte"),
        ("latin-1", r"byte \d+: not UTF-8 text \(save the file as UTF-8\)"),
    ],
)
def test_a_file_not_in_utf8_is_one_line_naming_it(
    tmp_path: Path, encoding: str, message: str
) -> None:
    coco = json.loads(RATERS.read_text())
    coco["images"][0]["file_name"] = "café.jpg"
    path = tmp_path / "raters.json"
    path.write_bytes(json.dumps(coco, ensure_ascii=False).encode(encoding))
    with pytest.raises(CrowdSourceError, match=rf"raters\.json: {message}") as caught:
        list(iter_crowd_images(path, "coco-raters"))
    assert "\n" not in str(caught.value)


def test_a_deeply_nested_file_is_refused(tmp_path: Path) -> None:
    # 60 KB nested 30,000 deep took ijson 2 GB before the guard
    coco = json.loads(RATERS.read_text())
    coco["categories"][0]["keypoints"] = "@"
    text = json.dumps(coco).replace('"@"', "[" * 30_000 + "]" * 30_000)
    path = tmp_path / "raters.json"
    path.write_text(text)
    with pytest.raises(
        CrowdSourceError, match=r"raters\.json: before byte \d+: nested more than 64 levels deep$"
    ):
        list(iter_crowd_images(path, "coco-raters"))


def test_a_box_of_no_size_is_read_and_left_to_the_engine(tmp_path: Path) -> None:
    # as from CVAT or Label Studio: read, then dropped by consolidation, not a broken record
    coco = json.loads(RATERS.read_text())
    coco["annotations"][0]["bbox"] = [10, 10, 0, 5]
    path = write_raters(tmp_path, coco)
    rejects: list[CrowdReject] = []
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        img_a, _ = source.images()
    assert [r.reason for r in rejects] == ["rater-not-listed"]  # the fixture's own one
    assert {"label": "car", "left": 10, "top": 10, "width": 0, "height": 5} in img_a.boxes[0]


def test_a_reject_holding_an_integer_past_64_bits_and_an_infinity_is_strict_json(
    tmp_path: Path,
) -> None:
    # the standard library, which writes the big integer, wrote the infinity as Infinity,
    # which no strict reader of the rejects file takes; orjson writes null
    coco = json.loads(RATERS.read_text())
    coco["annotations"][7]["id"] = HUGE
    coco["annotations"][7]["area"] = math.inf
    path = tmp_path / "raters.json"
    path.write_text(json.dumps(coco).replace("Infinity", "1e400"))  # JSON has no Infinity
    rejects: list[CrowdReject] = []
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        list(source.images())
    (reject,) = rejects
    raw = reject.to_json()["raw"]
    assert "Infinity" not in raw
    assert orjson.loads(raw)["area"] is None and json.loads(raw)["id"] == HUGE


def test_raters_duplicate_category_id_gives_no_label(tmp_path: Path) -> None:
    # a later entry reusing id 3 ("car") for "truck" relabelled every car box, silently
    coco = json.loads(RATERS.read_text())
    coco["categories"].append({"id": 3, "name": "truck"})
    on_car = sum(a["category_id"] == 3 and not a["iscrowd"] for a in coco["annotations"])
    rejects: list[CrowdReject] = []
    path = write_raters(tmp_path, coco)
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        images = list(source.images())
    assert str(rejects[0]).endswith(
        "categories[2]: malformed: duplicate category id 3, first at categories[0]"
    )
    ambiguous = [r for r in rejects if "names both" in r.detail]
    assert len(ambiguous) == on_car
    assert ambiguous[0].detail == (
        "category_id 3 names both 'car' at categories[0] and 'truck' at categories[2]"
    )
    labels = {b["label"] for i in images for boxes in i.boxes for b in boxes}
    assert labels == {"person"}
    assert source.labels == ["car", "person"]


def test_per_annotator_duplicate_category_id_gives_no_label(tmp_path: Path) -> None:
    folder = tmp_path / "coco"
    shutil.copytree(PER_ANNOTATOR, folder)
    alice = json.loads((folder / "alice.json").read_text())
    first = alice["categories"][0]
    alice["categories"].append({"id": first["id"], "name": first["name"]})  # the same again
    alice["categories"].append({"id": first["id"], "name": "truck"})
    (folder / "alice.json").write_text(json.dumps(alice))
    on_first = sum(a["category_id"] == first["id"] for a in alice["annotations"])
    rejects: list[CrowdReject] = []
    with open_crowd_source(folder, "coco-per-annotator", on_reject=rejects.append) as source:
        images = list(source.images())
    n = len(alice["categories"])
    assert [(r.position, r.reason.value) for r in rejects[:2]] == [
        (f"categories[{n - 2}]", "malformed"),
        (f"categories[{n - 1}]", "malformed"),
    ]
    assert len(rejects) == 2 + on_first >= 3
    alice_boxes = [
        b
        for i in images
        for a, bs in zip(i.annotators, i.boxes, strict=True)
        for b in bs
        if a == "alice"
    ]
    assert first["name"] not in {b["label"] for b in alice_boxes}
    assert "truck" not in (source.labels or [])


@pytest.mark.parametrize("iscrowd", ["0", "false", 2, [0]])
def test_an_iscrowd_other_than_0_or_1_is_malformed_not_a_crowd_region(
    tmp_path: Path, iscrowd: Any
) -> None:
    # read by truth, "0" skipped a real box as a crowd region: counted, yet exit 0
    coco = json.loads(RATERS.read_text())
    coco["annotations"][0]["iscrowd"] = iscrowd
    rejects: list[CrowdReject] = []
    path = write_raters(tmp_path, coco)
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        list(source.images())
    assert [(r.position, r.reason.value) for r in rejects] == [
        ("annotations[0] (id 1)", "malformed"),
        ("annotations[7] (id 8)", "rater-not-listed"),  # the fixture's own
    ]
    assert rejects[0].detail == f"iscrowd {iscrowd!r} is not 0 or 1"
    assert source.report.skipped["crowd-region"] == 1  # the fixture's own, r3's


@pytest.mark.parametrize("iscrowd", [0, 1, True, False, 0.0, None])
def test_an_iscrowd_of_0_or_1_is_read(tmp_path: Path, iscrowd: Any) -> None:
    coco = json.loads(RATERS.read_text())
    coco["annotations"][0]["iscrowd"] = iscrowd
    rejects: list[CrowdReject] = []
    path = write_raters(tmp_path, coco)
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        list(source.images())
    assert source.report.skipped["crowd-region"] == 1 + bool(iscrowd)
    assert [r.reason.value for r in rejects] == ["rater-not-listed"]  # the fixture's own


def one_image(image_id: Any, ann_image_id: Any, cat_id: Any = 1, ann_cat_id: Any = 1) -> Any:
    """A raters file of one image and one box (``...``: the annotation has no such field)."""
    ann = {"id": 1, "image_id": ann_image_id, "category_id": ann_cat_id, "rater_id": "r1"}
    ann = {k: v for k, v in ann.items() if v is not ...}
    return {
        "images": [{"id": image_id, "file_name": "a.jpg", "width": 10, "height": 10}],
        "annotations": [{**ann, "bbox": [1, 1, 2, 2]}],
        "categories": [{"id": cat_id, "name": "car"}],
    }


@pytest.mark.parametrize(
    ("coco", "want"),
    [
        (one_image(None, ...), ["images[0]: malformed", "annotations[0] (id 1): unknown-image"]),
        (one_image([1], [1]), ["images[0]: malformed", "annotations[0] (id 1): unknown-image"]),
        (one_image(True, True), ["images[0]: malformed", "annotations[0] (id 1): unknown-image"]),
        (
            one_image(1, 1, None, ...),
            ["categories[0]: malformed", "annotations[0] (id 1): unknown-category"],
        ),
        (
            one_image(1, 1, {"a": 1}, {"a": 1}),
            ["categories[0]: malformed", "annotations[0] (id 1): unknown-category"],
        ),
    ],
    ids=["null-and-missing", "list", "boolean", "null-category", "object-category"],
)
def test_an_id_that_is_no_integer_or_string_matches_nothing(
    tmp_path: Path, coco: Any, want: list[str]
) -> None:
    # read as text, an annotation without image_id went onto the image whose id was null
    rejects: list[CrowdReject] = []
    path = write_raters(tmp_path, coco)
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        images = list(source.images())
    assert [f"{r.position}: {r.reason.value}" for r in rejects] == want
    assert all(not i.annotators for i in images)


def test_an_integral_float_id_matches_the_integer(tmp_path: Path) -> None:
    # a float-typed column (pandas) writes 7.0 for 7
    coco = one_image(7.0, 7, 3, 3.0)
    with open_crowd_source(write_raters(tmp_path, coco), "coco-raters") as source:
        (image,) = source.images()
    assert image.annotators == ("r1",) and [b["label"] for b in image.boxes[0]] == ["car"]


@pytest.mark.parametrize("rater", [["r1"], {"name": "r1"}, True, ""])
def test_a_rater_id_that_is_no_id_is_no_annotator(tmp_path: Path, rater: Any) -> None:
    # without rater_list, ["r1"] was an annotator named "['r1']"
    coco = one_image(1, 1)
    coco["annotations"][0]["rater_id"] = rater
    rejects: list[CrowdReject] = []
    path = write_raters(tmp_path, coco)
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        (image,) = source.images()
    assert [f"{r.position}: {r.reason.value}" for r in rejects] == [
        "annotations[0] (id 1): no-annotator"
    ]
    assert image.annotators == ()


def test_a_rater_id_of_an_integral_float_is_the_integer_rater(tmp_path: Path) -> None:
    coco = one_image(1, 1)
    coco["images"][0]["rater_list"] = [4]
    coco["annotations"][0]["rater_id"] = 4.0
    with open_crowd_source(write_raters(tmp_path, coco), "coco-raters") as source:
        (image,) = source.images()
    assert image.annotators == ("4",) and len(image.boxes[0]) == 1


def test_a_rater_list_of_integral_floats_lists_the_integer_raters(tmp_path: Path) -> None:
    # the column that writes rater_id 4.0 writes rater_list [4.0]: the image was malformed
    # (rater_list held to integers and strings) while rater_id 4.0 was read as rater 4
    coco = one_image(1, 1)
    coco["images"][0]["rater_list"] = [4.0, 5.0]
    coco["annotations"][0]["rater_id"] = 4.0
    rejects: list[CrowdReject] = []
    path = write_raters(tmp_path, coco)
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        (image,) = source.images()
    assert rejects == []
    assert image.annotators == ("4", "5") and [len(b) for b in image.boxes] == [1, 0]


def test_a_session_list_of_integral_floats_names_the_integer_sessions(tmp_path: Path) -> None:
    coco = one_image(1, 1)
    coco["images"][0]["rater_list"] = {"r1": [1.0, 2.0]}
    coco["annotations"][0]["rater_id"] = "r1"
    coco["annotations"][0]["session_id"] = 2.0
    rejects: list[CrowdReject] = []
    path = write_raters(tmp_path, coco)
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        (image,) = source.images()
    assert rejects == []
    assert image.annotators == ("r1 (S1)", "r1 (S2)") and [len(b) for b in image.boxes] == [0, 1]


def test_a_rater_of_crowd_regions_only_abstains_not_a_no_vote(tmp_path: Path) -> None:
    # r3, listed on img_a, marked a crowd of people there (iscrowd 1) and no box: read as a
    # rater who drew nothing, a vote against r1's and r2's boxes
    coco = json.loads(RATERS.read_text())
    crowd = {"id": 9, "image_id": 20, "category_id": 1, "bbox": [300, 200, 200, 200],
             "area": 40000, "iscrowd": 1, "rater_id": "r3"}  # fmt: skip
    coco["annotations"].append(crowd)
    rejects: list[CrowdReject] = []  # r9's box on img_b: not listed
    path = write_raters(tmp_path, coco)
    with open_crowd_source(path, "coco-raters", on_reject=rejects.append) as source:
        img_a, img_b = source.images()
    assert [r.reason.value for r in rejects] == ["rater-not-listed"]
    assert img_a.annotators == ("r1", "r2")
    assert img_b.annotators == ("r1", "r2", "r3")  # r3's box beside its crowd region stays
    assert len(img_b.boxes[2]) == 1
    assert source.report.abstained == {"crowd-region": 1}
    assert source.report.skipped["crowd-region"] == 2


def test_per_annotator_crowd_regions_only_abstain(tmp_path: Path) -> None:
    # bea saw img_b and drew nothing there (a "no"); a crowd region there is not a "no"
    folder = tmp_path / "coco"
    shutil.copytree(PER_ANNOTATOR, folder)
    bea = json.loads((folder / "bea.json").read_text())
    bea["annotations"].append(
        {"id": 99, "image_id": 41, "category_id": 8, "bbox": [0, 0, 640, 200], "area": 128000,
         "iscrowd": 1}
    )  # fmt: skip
    (folder / "bea.json").write_text(json.dumps(bea))
    with open_crowd_source(folder, "coco-per-annotator") as source:
        images = list(source.images())
    assert [i.annotators for i in images] == [("alice", "bea"), ("alice", "carl")]
    assert source.report.abstained == {"crowd-region": 1}


# One replica job exported twice by CVAT: "CVAT for images 1.1" (rotation about the centre,
# in degrees clockwise) and "COCO 1.0", where datumaro keeps the box upright in bbox and its
# turn in attributes.rotation (cvat bindings: anno_attr["rotation"] = shape_obj.rotation)
_CVAT_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><job><id>7</id><labels><label><name>car</name></label></labels></job></meta>
  <image id="0" name="day1/a.jpg" width="640" height="480">
    <box label="car" source="manual" occluded="0" xtl="100.00" ytl="100.00" xbr="300.00"
         ybr="140.00" rotation="30.00" z_order="0"></box>
    <box label="car" source="manual" occluded="0" xtl="400.00" ytl="300.00" xbr="500.00"
         ybr="350.00" z_order="0"></box>
  </image>
</annotations>
"""


def _cvat_coco(rotations: list[Any]) -> dict[str, Any]:
    """The same job as CVAT's COCO 1.0 export writes it (instances_default.json)."""
    boxes = [[100.0, 100.0, 200.0, 40.0], [400.0, 300.0, 100.0, 50.0]]
    return {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "url": "",
                 "version": "", "year": ""},
        "categories": [{"id": 1, "name": "car", "supercategory": ""}],
        "images": [{"id": 1, "width": 640, "height": 480, "file_name": "day1/a.jpg",
                    "license": 0, "flickr_url": "", "coco_url": "", "date_captured": 0}],
        "annotations": [
            {"id": n + 1, "image_id": 1, "category_id": 1, "segmentation": [],
             "area": bbox[2] * bbox[3], "bbox": bbox, "iscrowd": 0,
             "attributes": {"occluded": False} | ({} if turn is None else {"rotation": turn})}
            for n, (bbox, turn) in enumerate(zip(boxes, rotations, strict=True))
        ],
    }  # fmt: skip


@pytest.mark.parametrize("upright", [0.0, None, 360.0])
def test_a_cvat_coco_box_turned_in_its_attributes_reads_as_in_cvat_xml(
    tmp_path: Path, upright: Any
) -> None:
    # read without attributes.rotation, the turned box was taken for the upright one:
    # the same answer gave another box from CVAT's COCO export than from its XML
    (tmp_path / "xml").mkdir()
    (tmp_path / "xml" / "alice.xml").write_text(_CVAT_XML)
    target = tmp_path / "coco" / "alice" / "annotations" / "instances_default.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(_cvat_coco([30.0, upright])))
    with open_crowd_source(tmp_path / "xml", "cvat") as source:
        (from_xml,) = source.images()
    with open_crowd_source(tmp_path / "coco", "coco-per-annotator") as source:
        (from_coco,) = source.images()
    turned, level = from_coco.boxes[0]
    assert turned == pytest.approx(from_xml.boxes[0][0])
    assert turned["width"] == pytest.approx(200 * math.cos(math.pi / 6) + 40 * 0.5)
    assert level == {"label": "car", "left": 400.0, "top": 300.0, "width": 100.0, "height": 50.0}
    assert source.report.rotated == 1


@pytest.mark.parametrize("turn", ["30", [30], True, {"deg": 30}])
def test_a_rotation_attribute_that_is_no_number_is_malformed(tmp_path: Path, turn: Any) -> None:
    path = tmp_path / "coco" / "alice.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_cvat_coco([turn, None])))
    rejects: list[CrowdReject] = []
    with open_crowd_source(path.parent, "coco-per-annotator", on_reject=rejects.append) as source:
        (image,) = source.images()
    assert [(r.position, r.reason.value, r.detail) for r in rejects] == [
        ("annotations[0] (id 1)", "malformed", "attributes.rotation is not a number")
    ]
    assert [len(b) for b in image.boxes] == [1]


@pytest.mark.parametrize("kind", ["coco-per-annotator", "coco-raters"])
@pytest.mark.parametrize(
    "attributes",
    [[{"rotation": 30.0}], "rotation=30", 30, True, [], {}, None],
    ids=["list", "text", "number", "true", "empty-list", "empty-object", "null"],
)
def test_attributes_that_are_not_an_object_are_malformed_not_none(
    tmp_path: Path, kind: str, attributes: Any
) -> None:
    # an annotation's attributes that are a list, a string or a number were read as no
    # attributes: the box was read upright whatever turn they held, silently. null, {} and
    # [] (what some tools write for none) are no attributes: the box is read upright
    doc = _cvat_coco([None, None])
    doc["annotations"][0]["attributes"] = attributes
    if kind == "coco-raters":
        for ann in doc["annotations"]:
            ann["rater_id"] = "r1"
    path = tmp_path / "coco" / "alice.json"
    path.parent.mkdir()
    path.write_text(json.dumps(doc))
    rejects: list[CrowdReject] = []
    location = path.parent if kind == "coco-per-annotator" else path
    with open_crowd_source(location, kind, on_reject=rejects.append) as source:
        (image,) = source.images()
    if attributes in ([], {}, None):
        assert not rejects
        assert image.boxes[0][0] == {
            "label": "car", "left": 100.0, "top": 100.0, "width": 200.0, "height": 40.0
        }  # fmt: skip
        return
    assert [(r.to_json()["file"], r.position, r.reason.value, r.detail) for r in rejects] == [
        (str(path), "annotations[0] (id 1)", "malformed", "attributes is not an object")
    ]
    assert [len(b) for b in image.boxes] == [1]
