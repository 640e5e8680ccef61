from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_toolkit import iter_crowd_images
from gt_toolkit.cli import main
from gt_toolkit.consolidation.reconsolidate import reconsolidate
from gt_toolkit.errors import CrowdSourceError
from gt_toolkit.formats.crowd.report import CrowdReject
from gt_toolkit.formats.crowd.sources import open_crowd_source
from tests.helpers import CROWD, consolidated_boxes

EXPORT = CROWD / "label-studio.json"
MINIMAL = CROWD / "label-studio-min.json"

# Annotator 7 and bea drew img_a (annotator 12 cancelled it); on img_b bea drew nothing.
# By hand: img_a car: IoU 121.6/128 = 0.95 between (64,48,128,96) and (70.4,48,121.6,96),
# fused (67.2,48,124.8,96), confidence 1 - 0.05/4; person: bea's 20% x 10% box turned 90
# degrees clockwise about its top-left corner (384,240) spans (336,240,48,128), IoU 0.6 with
# (320,240,64,96), fused (328,240,56,112), confidence 1 - 0.4/4; img_b car: IoU 18240/20160
# between (160,120) and (160,126), two of three workers: (2 - (1 - IoU)/2)/3.
EXPECTED = {
    "s3://bkt/photos/img_a.jpg": [
        ("car", 67, 48, 125, 96, 0.9875),
        ("person", 328, 240, 56, 112, 0.9),
    ],
    "s3://bkt/photos/img_b.jpg": [("car", 160, 123, 160, 120, 0.6508)],
    "s3://bkt/photos/img_c.jpg": "reconsolidate: no worker answers for this object",
}


def consolidate(location: Path, tmp_path: Path) -> tuple[dict[str, Any], Any]:
    out = tmp_path / "out.manifest"
    with open_crowd_source(location, "label-studio") as source:
        # the head count: the expected boxes are its arithmetic on a tiny crowd
        report = reconsolidate(source, out, worker_model=None)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    return consolidated_boxes(lines), report


@pytest.mark.parametrize("location", [EXPORT, MINIMAL], ids=["json", "json-min"])
def test_export_consolidates_box_by_box(location: Path, tmp_path: Path) -> None:
    boxes, report = consolidate(location, tmp_path)
    assert boxes == EXPECTED
    assert report.labels == ["car", "person"]
    ingest = report.ingest
    assert (ingest.images, ingest.answers, ingest.boxes, ingest.rotated) == (3, 5, 6, 1)
    assert ingest.annotators == {"7", "bea@example.com", "12"}
    assert report.complete


def test_json_export_counts_what_it_skips() -> None:
    with open_crowd_source(EXPORT, "label-studio") as source:
        images = list(source.images())
    assert dict(source.report.skipped) == {"cancelled-annotation": 1, "not-a-box": 1}
    assert "1 rotated boxes read as their axis-aligned envelope" in source.report.summary()
    a, b, c = images
    assert a.annotators == ("7", "bea@example.com")  # 12 cancelled img_a
    assert b.annotators == ("7", "bea@example.com", "12") and b.boxes[1] == []
    assert c.annotators == () and c.image_size is None


def test_rotated_rectangle_becomes_its_envelope() -> None:
    image = next(iter_crowd_images(EXPORT, "label-studio"))
    person = image.boxes[1][1]
    assert person["label"] == "person"
    got = [person[k] for k in ("left", "top", "width", "height")]  # type: ignore[literal-required]
    assert got == pytest.approx([336, 240, 48, 128])


def test_data_key_picks_the_image_field(tmp_path: Path) -> None:
    tasks = json.loads(EXPORT.read_text())
    for task in tasks:
        task["data"] = {"photo": task["data"]["image"]}
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    keys = [i.key for i in iter_crowd_images(path, "label-studio", data_key="photo")]
    assert keys == list(EXPECTED)
    with pytest.raises(CrowdSourceError, match=r"export\.json: task 0 \(id 101\): no-image"):
        next(iter_crowd_images(path, "label-studio"))


def test_old_completions_export_reads_like_annotations(tmp_path: Path) -> None:
    tasks = json.loads(EXPORT.read_text())
    for task in tasks:
        task["completions"] = task.pop("annotations")
    path = tmp_path / "old.json"
    path.write_text(json.dumps(tasks))
    boxes, _ = consolidate(path, tmp_path)
    assert boxes == EXPECTED


def mutate(tasks: list[Any], change: str) -> list[Any] | str:
    first = tasks[0]["annotations"][0]
    if change == "no-x":
        del first["result"][1]["value"]["x"]
    elif change == "string-width":
        first["result"][0]["value"]["width"] = "20"
    elif change == "no-label":
        first["result"][0]["value"]["rectanglelabels"] = []
    elif change == "no-size":  # no annotation of the task gives the size
        for annotation in tasks[0]["annotations"]:
            for result in annotation["result"]:
                del result["original_width"], result["original_height"]
    elif change == "half-size":
        del first["result"][0]["original_height"]
    elif change == "huge-size":
        first["result"][0]["original_width"] = 1e20
    elif change == "no-annotator":
        del first["completed_by"]
    elif change == "size-conflict":  # two annotators disagree on the image's size
        for result in tasks[0]["annotations"][1]["result"]:
            result["original_width"] = 800
    elif change == "size-conflict-within":
        tasks[0]["annotations"][1]["result"][0]["original_width"] = 800
    elif change == "not-a-list":
        return json.dumps({"tasks": tasks})
    elif change == "truncated":
        return json.dumps(tasks)[:700]
    return tasks


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no-x", r"task 0 \(id 101\), annotation 0, result 1: malformed: x, y, width, height"),
        ("string-width", r"task 0 \(id 101\), annotation 0, result 0: malformed"),
        ("no-label", r"task 0 \(id 101\), annotation 0, result 0: malformed: no rectanglelabels"),
        ("no-size", r"annotation 0, result 0: no-image-size"),
        ("half-size", r"annotation 0, result 0: malformed: original_width/original_height"),
        ("huge-size", r"annotation 0, result 0: malformed: .* from 1 to 2\*\*31 - 1"),
        ("no-annotator", r"task 0 \(id 101\), annotation 0: no-annotator"),
        (
            "size-conflict",
            r"annotation 1: image 's3://bkt/photos/img_a.jpg' is 800x480 for bea@example.com "
            r"but 640x480 for 7",
        ),
        ("size-conflict-within", r"annotation 1, result 1: image .* is 640x480 here but 800x480"),
        ("not-a-list", r"bad\.json: not a Label Studio export: expected a JSON list"),
        ("truncated", r"bad\.json: task 0: not JSON"),
    ],
)
def test_malformed_input_is_one_line_with_file_and_position(
    tmp_path: Path, change: str, message: str
) -> None:
    changed = mutate(json.loads(EXPORT.read_text()), change)
    path = tmp_path / "bad.json"
    path.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.raises(CrowdSourceError, match=message) as caught:
        list(iter_crowd_images(path, "label-studio"))
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_with_a_reject_handler_broken_boxes_are_kept_aside(tmp_path: Path) -> None:
    changed = mutate(json.loads(EXPORT.read_text()), "no-x")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(changed))
    rejects: list[CrowdReject] = []
    with open_crowd_source(path, "label-studio", on_reject=rejects.append) as source:
        images = list(source.images())
    (reject,) = rejects
    assert reject.to_json()["position"] == "task 0 (id 101), annotation 0, result 1"
    assert '"rectanglelabels": ["person"]' in reject.to_json()["raw"].replace('":[', '": [')
    assert [len(b) for b in images[0].boxes] == [1, 2]  # the annotator's other box stays
    assert source.report.rejected == 1


def test_an_annotator_whose_every_box_is_broken_did_not_draw_nothing(tmp_path: Path) -> None:
    tasks = json.loads(EXPORT.read_text())
    for result in tasks[0]["annotations"][0]["result"]:
        result["value"]["x"] = "left"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(tasks))
    rejects: list[CrowdReject] = []
    with open_crowd_source(path, "label-studio", on_reject=rejects.append) as source:
        first = next(source.images())
    assert len(rejects) == 2
    assert first.annotators == ("bea@example.com",)  # 7 is left out, not a "no" vote


def write(tmp_path: Path, tasks: Any, name: str = "export.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(tasks))
    return path


@pytest.mark.parametrize("sized_first", [True, False], ids=["sized-first", "sized-last"])
def test_an_annotation_without_the_size_takes_it_from_the_task(
    tmp_path: Path, sized_first: bool
) -> None:
    tasks = json.loads(EXPORT.read_text())
    annotations = tasks[0]["annotations"]
    for result in annotations[0]["result"]:  # 7 gives no size; bea gives 640x480
        del result["original_width"], result["original_height"]
    if not sized_first:
        annotations.reverse()
    want = {
        i.key: dict(zip(i.annotators, i.boxes, strict=True))
        for i in iter_crowd_images(EXPORT, "label-studio")
    }
    got = {
        i.key: dict(zip(i.annotators, i.boxes, strict=True))
        for i in iter_crowd_images(write(tmp_path, tasks), "label-studio")
    }
    assert got == want


def test_json_min_records_of_one_image_share_its_size(tmp_path: Path) -> None:
    records = json.loads(MINIMAL.read_text())
    for region in records[0]["label"]:  # 7's record first, without the size
        del region["original_width"], region["original_height"]
    got = list(iter_crowd_images(write(tmp_path, records), "label-studio"))
    assert [i.boxes for i in got] == [i.boxes for i in iter_crowd_images(MINIMAL, "label-studio")]


def by_annotator(path: Path) -> tuple[dict[str, Any], list[str]]:
    """Each image's size and boxes by annotator (order-free), and the rejects' reasons."""
    rejects: list[CrowdReject] = []
    with open_crowd_source(path, "label-studio", on_reject=rejects.append) as source:
        images = {
            i.key: (i.image_size, dict(zip(i.annotators, i.boxes, strict=True)))
            for i in source.images()
        }
    return images, sorted(r.reason.value for r in rejects)


def unsized(record: dict[str, Any]) -> dict[str, Any]:
    for region in record.get("label", []):
        del region["original_width"], region["original_height"]
    return record


@pytest.mark.slow  # 720 orders
@pytest.mark.parametrize("img_b_sized", [True, False], ids=["sized-elsewhere", "sized-nowhere"])
def test_json_min_image_size_does_not_depend_on_record_order(
    tmp_path: Path, img_b_sized: bool
) -> None:
    # img_a: 7 gives no size, bea does; img_b: 7 gives none, bea drew nothing, 12 gives it
    # (or not); img_c: nobody. The size comes from any record of the image, wherever it is
    # in the file: a record read before its image's size waited for the end of the file
    # (it was rejected as no-image-size when no earlier record of its image gave the size).
    records = json.loads(MINIMAL.read_text())
    unsized(records[0]), unsized(records[2])
    if not img_b_sized:
        unsized(records[4])
    want = by_annotator(MINIMAL)
    if not img_b_sized:  # its boxes are rejected: 7 and 12 are left out, bea drew nothing
        want = (
            {**want[0], "s3://bkt/photos/img_b.jpg": (None, {"bea@example.com": []})},
            ["no-image-size", "no-image-size"],
        )
    for order in itertools.permutations(records):
        assert by_annotator(write(tmp_path, list(order))) == want, order


def test_json_min_different_sizes_are_an_error_in_any_order(tmp_path: Path) -> None:
    records = json.loads(MINIMAL.read_text())[:3]  # img_a twice, then img_b
    for region in records[1]["label"]:
        region["original_width"] = 800
    records.append(unsized(json.loads(json.dumps(records[0])) | {"annotator": 12}))
    for order in itertools.permutations(records):
        with pytest.raises(CrowdSourceError, match=r"is (800|640)x480 for .* but (640|800)x480"):
            list(iter_crowd_images(write(tmp_path, list(order)), "label-studio"))


def test_json_export_takes_the_size_from_a_later_task_of_the_image(tmp_path: Path) -> None:
    tasks = json.loads(EXPORT.read_text())
    again = json.loads(json.dumps(tasks[0]))  # img_a again, in a later task, by someone else
    again["annotations"] = again["annotations"][1:2]
    again["annotations"][0]["completed_by"] = 99
    for annotation in tasks[0]["annotations"]:  # the first task of img_a gives no size
        for result in annotation.get("result", []):
            result.pop("original_width", None), result.pop("original_height", None)
    images, rejects = by_annotator(write(tmp_path, [*tasks, again]))
    size, boxes = images["s3://bkt/photos/img_a.jpg"]
    want = by_annotator(EXPORT)[0]["s3://bkt/photos/img_a.jpg"]
    assert (size, rejects) == (want[0], [])
    assert boxes == {**want[1], "99": want[1]["bea@example.com"]}


def test_a_held_answer_keeps_its_place_in_time(tmp_path: Path) -> None:
    # 7 answers img_a twice: first without the size (held till the end of the file), then
    # with it; the later answer supersedes the earlier, as if neither had waited
    records = json.loads(MINIMAL.read_text())
    first, later = unsized(json.loads(json.dumps(records[0]))), records[0]
    later["label"] = later["label"][:1]
    with open_crowd_source(write(tmp_path, [first, records[2], later]), "label-studio") as source:
        images = list(source.images())
    assert images[0].annotators == ("7",) and len(images[0].boxes[0]) == 1
    assert source.report.skipped["superseded-answer"] == 1


HUGE = 123456789012345678901234567890  # a task id some exporters write: past 64 bits


def read_all(path: Path) -> list[Any]:
    return [(i.key, i.annotators, i.boxes) for i in iter_crowd_images(path, "label-studio")]


@pytest.mark.parametrize("location", [EXPORT, MINIMAL], ids=["json", "json-min"])
def test_an_integer_past_64_bits_is_read(tmp_path: Path, location: Path) -> None:
    # yajl's float mode refused the whole file ("not JSON: parse error: integer overflow")
    tasks = json.loads(location.read_text())
    tasks[1]["id"] = HUGE  # after a task already read, which the read is not given twice
    tasks[2]["lead_time"] = HUGE
    assert read_all(write(tmp_path, tasks)) == read_all(location)


def test_after_a_huge_integer_positions_stay_right(tmp_path: Path) -> None:
    tasks = json.loads(EXPORT.read_text())
    tasks[0]["id"] = HUGE
    del tasks[1]["annotations"][0]["result"][0]["value"]["x"]
    path = write(tmp_path, tasks)
    with pytest.raises(CrowdSourceError, match=r"json: task 1 \(id 102\), annotation 0, result 0"):
        list(iter_crowd_images(path, "label-studio"))
    text = json.dumps(tasks[:2])
    path.write_text(text[:-1] + ', {"id": }]')  # the third task is not JSON
    rejects: list[CrowdReject] = []
    with (
        pytest.raises(CrowdSourceError, match=r"export\.json: task 2: not JSON"),
        open_crowd_source(path, "label-studio", on_reject=rejects.append) as source,
    ):
        list(source.images())
    assert [r.to_json()["position"] for r in rejects] == ["task 1 (id 102), annotation 0, result 0"]


# A rectangle dragged upwards, as Label Studio 1.x stores it (HumanSignal/label-studio#3140):
# 800x800 image, y 96.176%, height -60.729%: drawn from y 35.447% to 96.176%.
DRAGGED_UP = {
    "original_width": 800, "original_height": 800, "image_rotation": 0,
    "value": {
        "x": 16.3677871180938, "y": 96.17628384254151, "width": 52.96047307090268,
        "height": -60.72944286625309, "rotation": 0, "rectanglelabels": ["car"],
    },
    "id": "YKhsh44ARh", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
    "origin": "manual",
}  # fmt: skip


def on_image(to_name: str, x: float) -> dict[str, Any]:
    """A box of :data:`DRAGGED_UP`'s shape at ``x`` on the ``<Image>`` tag named ``to_name``."""
    result = json.loads(json.dumps(DRAGGED_UP))
    result["to_name"] = to_name
    result["value"].update(x=x, y=10.0, height=20.0)
    return result


@pytest.mark.parametrize("rotation", [0, 90])
def test_negative_width_or_height_is_read_flipped_and_counted(
    tmp_path: Path, rotation: float
) -> None:
    dragged = json.loads(json.dumps(DRAGGED_UP))
    dragged["value"]["rotation"] = rotation
    drawn = json.loads(json.dumps(dragged))  # the same rectangle dragged downwards
    drawn["value"]["y"] += drawn["value"]["height"]
    drawn["value"]["height"] *= -1
    task = {"id": 1589, "data": {"image": "s3://bkt/100_21.jpg"}, "annotations": []}
    for n, result in enumerate([dragged, drawn]):
        task["annotations"].append({"id": n, "completed_by": n, "result": [result]})
    with open_crowd_source(write(tmp_path, [task]), "label-studio") as source:
        (image,) = source.images()
    up, down = (b[0] for b in image.boxes)
    corners = [up[k] for k in ("left", "top", "width", "height")]  # type: ignore[literal-required]
    if rotation:  # turned about its stored corner (x, y), the bottom-left one: 90 degrees
        # clockwise takes its top edge to the right of (x, y), its left edge below it
        assert corners == pytest.approx([130.94, 769.41, 485.84, 423.68], abs=0.01)
    else:
        assert up == down and corners == pytest.approx([130.94, 283.57, 423.68, 485.84], abs=0.01)
    assert source.report.flipped == 1 and source.report.boxes == 2
    assert "1 boxes of negative width or height read flipped" in source.report.summary()


@pytest.mark.parametrize("rotation", ["90", [90], True, 1e400, {"deg": 90}])
def test_a_rotation_that_is_no_number_is_malformed_not_upright(
    tmp_path: Path, rotation: Any
) -> None:
    # read as 0, a box turned by "90" degrees was taken for the upright one, silently
    turned = json.loads(json.dumps(DRAGGED_UP))
    turned["value"]["rotation"] = rotation
    upright = json.loads(json.dumps(DRAGGED_UP))
    upright["value"]["rotation"] = None  # null, like an absent rotation: upright
    task = {"id": 7, "data": {"image": "s3://bkt/7.jpg"}, "annotations": []}
    for n, result in enumerate([turned, upright]):
        task["annotations"].append({"id": n, "completed_by": n, "result": [result]})
    path = tmp_path / "export.json"
    path.write_text(json.dumps([task]).replace("Infinity", "1e400"))
    rejects: list[CrowdReject] = []
    with open_crowd_source(path, "label-studio", on_reject=rejects.append) as source:
        (image,) = source.images()
    (reject,) = rejects
    assert (reject.reason.value, reject.detail) == ("malformed", "rotation is not a number")
    assert reject.to_json()["position"] == "task 0 (id 7), annotation 0, result 0"
    assert image.annotators == ("1",)  # 0 abstains: none of their regions was read
    assert source.report.rotated == 0 and source.report.abstained == {"malformed": 1}
    with pytest.raises(CrowdSourceError, match=r"result 0: malformed: rotation is not a number"):
        list(iter_crowd_images(path, "label-studio"))


@pytest.mark.parametrize("image_rotation", [90, 180, 270, -90, 45, "90", None])
def test_image_rotation_is_the_editors_view_and_leaves_the_box_as_drawn(
    tmp_path: Path, image_rotation: Any
) -> None:
    # ``image_rotation`` is how the annotator had turned the image in the editor. Label
    # Studio's editor turns its canvas, not the regions, and writes x, y, width, height and
    # original_width/original_height in the image's own frame whatever the turn (its e2e
    # test "Simple rotation" asserts the serialized results equal after every turn), so the
    # reader leaves the box as drawn. On a 640x480 image, mapped back by 90 degrees the box
    # would have moved and swapped its sides
    place = {"x": 10.0, "y": 20.0, "width": 30.0, "height": 10.0, "rotation": 0}
    sized = {"to_name": "image", "original_width": 640, "original_height": 480}
    task: dict[str, Any] = {"id": 3, "data": {"image": "s3://bkt/turned.jpg"}, "annotations": []}
    for n, turn in enumerate([0, image_rotation]):
        result = {
            "id": f"r{n}", "type": "rectanglelabels", "from_name": "label", **sized,
            "image_rotation": turn, "value": place | {"rectanglelabels": ["car"]},
        }  # fmt: skip
        task["annotations"].append({"id": n, "completed_by": n, "result": [result]})
    rejects: list[CrowdReject] = []
    path = write(tmp_path, [task])
    with open_crowd_source(path, "label-studio", on_reject=rejects.append) as source:
        (image,) = source.images()
    upright, turned = (b[0] for b in image.boxes)
    assert turned == upright == {"label": "car", "left": 64, "top": 96, "width": 192, "height": 48}
    assert image.image_size == {"width": 640, "height": 480}
    assert not rejects and source.report.rotated == 0


def test_a_task_of_several_images_reads_only_the_boxes_on_the_data_key_image(
    tmp_path: Path,
) -> None:
    # <Image name="image" value="$image"/> and <Image name="image2" value="$image2"/>: each
    # box names its image in to_name; read all, image2's boxes were put on image, silently
    task = {
        "id": 3,
        "data": {"image": "s3://bkt/front.jpg", "image2": "s3://bkt/back.jpg"},
        "annotations": [
            {
                "id": 1,
                "completed_by": 1,
                "result": [on_image("image", 10.0), on_image("image2", 40.0)],
            },
            {"id": 2, "completed_by": 2, "result": [on_image("image2", 41.0)]},
        ],
    }
    path = write(tmp_path, [task])
    for data_key, key, kept, lefts in (
        # annotator 2 drew only on image2: on image, an answer with no box (not an abstention)
        ("image", "s3://bkt/front.jpg", ("1", "2"), [[80.0], []]),
        ("image2", "s3://bkt/back.jpg", ("1", "2"), [[320.0], [328.0]]),
    ):
        rejects: list[CrowdReject] = []
        with open_crowd_source(
            path, "label-studio", data_key=data_key, on_reject=rejects.append
        ) as source:
            (image,) = source.images()
        assert (image.key, image.annotators) == (key, kept)
        assert [[round(b["left"], 6) for b in boxes] for boxes in image.boxes] == lefts
        other = "image2" if data_key == "image" else "image"
        assert {r.to_json()["position"] for r in rejects} == {
            f"task 0 (id 3), annotation {a}, result {r}"
            for a, r in ((0, 0), (0, 1), (1, 0))
            if rect_on(task, a, r) == other
        }
        assert all(r.reason.value == "malformed" and other in r.detail for r in rejects)
    with pytest.raises(CrowdSourceError, match=r"result 1: malformed: to_name 'image2'"):
        list(iter_crowd_images(path, "label-studio"))
    # a to_name of another JSON type is no image object's name: rejected, not a traceback
    task["annotations"][1]["result"][0]["to_name"] = ["image2"]  # type: ignore[index]
    odd: list[CrowdReject] = []
    (image,) = iter_crowd_images(write(tmp_path, [task]), "label-studio", on_reject=odd.append)
    assert image.annotators == ("1",)
    assert [r.to_json()["position"] for r in odd] == [
        "task 0 (id 3), annotation 0, result 1",
        "task 0 (id 3), annotation 1, result 0",
    ]
    # every box on image2 (one image object, but another field of the task's data): read
    # with --data-key image they were all put on front.jpg
    for annotation in task["annotations"]:  # type: ignore[attr-defined]
        for result in annotation["result"]:
            result["to_name"] = "image2"
    path = write(tmp_path, [task])
    elsewhere: list[CrowdReject] = []
    (image,) = iter_crowd_images(path, "label-studio", on_reject=elsewhere.append)
    assert (image.annotators, len(elsewhere)) == ((), 3)
    (image,) = iter_crowd_images(path, "label-studio", data_key="image2")
    assert (image.key, [len(b) for b in image.boxes]) == ("s3://bkt/back.jpg", [2, 1])
    # one image object named, whatever its name: every box is the image's, as before
    for annotation in task["annotations"]:  # type: ignore[attr-defined]
        for result in annotation["result"]:
            result["to_name"] = "photo"
    (image,) = iter_crowd_images(write(tmp_path, [task]), "label-studio")
    assert [len(b) for b in image.boxes] == [2, 1]


def test_image_tags_named_otherwise_than_their_data_fields_are_read_with_image_name(
    tmp_path: Path,
) -> None:
    # <Image name="img1" value="$url1"/> and <Image name="img2" value="$url2"/>: no to_name
    # equals a data field, so every box of the task was rejected whatever --data-key said,
    # and neither image could be read at all; --image-name names the tag of --data-key's
    task = {
        "id": 3,
        "data": {"url1": "s3://bkt/front.jpg", "url2": "s3://bkt/back.jpg"},
        "annotations": [
            {
                "id": 1,
                "completed_by": 1,
                "result": [on_image("img1", 10.0), on_image("img2", 40.0)],
            },
            {"id": 2, "completed_by": 2, "result": [on_image("img2", 41.0)]},
        ],
    }
    path = write(tmp_path, [task])
    unread: list[CrowdReject] = []
    (image,) = iter_crowd_images(path, "label-studio", data_key="url1", on_reject=unread.append)
    assert (image.annotators, len(unread)) == ((), 3)
    assert all("pass it as --image-name" in r.detail for r in unread)  # what to do
    for data_key, name, key, kept, lefts in (
        ("url1", "img1", "s3://bkt/front.jpg", ("1", "2"), [[80.0], []]),
        ("url2", "img2", "s3://bkt/back.jpg", ("1", "2"), [[320.0], [328.0]]),
    ):
        rejects: list[CrowdReject] = []
        with open_crowd_source(
            path, "label-studio", data_key=data_key, image_name=name, on_reject=rejects.append
        ) as source:
            (image,) = source.images()
        assert (image.key, image.annotators) == (key, kept)
        assert [[round(b["left"], 6) for b in boxes] for boxes in image.boxes] == lefts
        assert len(rejects) == 3 - sum(map(len, lefts))
        assert all("(--image-name)" in r.detail and name in r.detail for r in rejects)
    # one image whose tag is named as another field of the task's data (image_url shown by
    # <Image name="image">, and a field "image" holding its file name): every box was
    # rejected as on another image, with nothing to pass to read them
    single = {"id": 4, "data": {"image_url": "s3://bkt/a.jpg", "image": "a.jpg"}}
    single["annotations"] = [{"id": 1, "completed_by": 1, "result": [on_image("image", 10.0)]}]
    path = write(tmp_path, [single])
    (image,) = iter_crowd_images(path, "label-studio", data_key="image_url", image_name="image")
    assert [len(b) for b in image.boxes] == [1]
    # JSON_MIN has no to_name: --image-name cannot be kept there, so the read stops
    record = {"url1": "s3://bkt/front.jpg", "id": 3, "annotator": 1, "label": []}
    with pytest.raises(CrowdSourceError, match=r"record 0 .*no to_name.*--image-name"):
        list(iter_crowd_images(write(tmp_path, [record]), "label-studio", image_name="img1"))


def rect_on(task: dict[str, Any], annotation: int, result: int) -> str:
    return str(task["annotations"][annotation]["result"][result]["to_name"])


def test_a_utf8_byte_order_mark_is_read_past(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + EXPORT.read_bytes())
    got = [(i.key, i.annotators, i.boxes) for i in iter_crowd_images(path, "label-studio")]
    assert got == [
        (i.key, i.annotators, i.boxes) for i in iter_crowd_images(EXPORT, "label-studio")
    ]


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        ("latin-1", r"latin-1\.json: byte \d+: not UTF-8 text \(save the file as UTF-8\)$"),
        ("utf-16", r"utf-16\.json: byte 3: not UTF-8 text: a NUL byte \(UTF-16\?"),
    ],
)
def test_a_file_not_in_utf8_is_one_line_naming_it(
    tmp_path: Path, encoding: str, message: str
) -> None:
    text = EXPORT.read_text().replace("img_a.jpg", "img_\u00e9.jpg")
    path = tmp_path / f"{encoding}.json"
    path.write_bytes(text.encode(encoding))
    with pytest.raises(CrowdSourceError, match=message) as caught:
        list(iter_crowd_images(path, "label-studio"))
    assert "\n" not in str(caught.value) and "\\n" not in str(caught.value)


def test_an_export_nested_too_deep_is_refused_in_one_line(tmp_path: Path) -> None:
    # ijson's memory grows with the square of the depth: the guard stops it first
    path = tmp_path / "deep.json"
    path.write_text("[" + '{"annotations": [' * 5000)
    with pytest.raises(CrowdSourceError, match=r"deep\.json: .*nested more than 64 levels"):
        list(iter_crowd_images(path, "label-studio"))


POLYGON = {
    "id": "p1",
    "type": "polygonlabels",
    "from_name": "outline",
    "to_name": "image",
    "original_width": 640,
    "original_height": 480,
    "image_rotation": 0,
    "value": {
        "points": [[20.0, 30.0], [40.0, 30.0], [30.0, 50.0]],
        "closed": True,
        "polygonlabels": ["car"],
    },
}


KEYPOINT = {
    "id": "k1",
    "type": "keypointlabels",
    "from_name": "joints",
    "to_name": "image",
    "original_width": 640,
    "original_height": 480,
    "image_rotation": 0,
    "value": {"x": 30.0, "y": 40.0, "width": 0.5, "keypointlabels": ["person"]},
}


def test_an_annotator_of_polygons_and_keypoints_only_abstains_not_a_no_vote(
    tmp_path: Path,
) -> None:
    # bea outlined img_b's car as a polygon and marked a keypoint: she was read as having
    # drawn nothing there, a vote against the car 7 and 12 boxed (two of three, not two of two)
    tasks = json.loads(EXPORT.read_text())
    tasks[1]["annotations"][1]["result"] = [POLYGON, KEYPOINT]
    with open_crowd_source(write(tmp_path, tasks), "label-studio") as source:
        _, b, _ = list(source.images())
    assert b.annotators == ("7", "12")  # 12's choices beside a box: keeps the box
    assert source.report.abstained == {"not-a-box": 1}
    assert source.report.skipped["not-a-box"] == 3  # 12's choices, bea's two regions
    assert source.report.to_json()["abstained"] == {"not-a-box": 1}
    assert "answers without a box read, left out: not-a-box 1" in source.report.summary()
    _, report = consolidate(write(tmp_path, tasks), tmp_path)
    assert report.ingest.answers == 4  # img_a 2, img_b 2


def test_a_polygon_beside_a_box_keeps_the_box_and_choices_alone_drew_nothing(
    tmp_path: Path,
) -> None:
    tasks = json.loads(EXPORT.read_text())
    box = tasks[1]["annotations"][0]["result"][0]
    tasks[1]["annotations"][0]["result"] = [POLYGON, box]  # 7: a polygon and a box
    choices = tasks[1]["annotations"][2]["result"][1]
    tasks[1]["annotations"][1]["result"] = [choices]  # bea: the weather, no region
    with open_crowd_source(write(tmp_path, tasks), "label-studio") as source:
        _, b, _ = list(source.images())
    assert b.annotators == ("7", "bea@example.com", "12")
    assert len(b.boxes[0]) == 1 and b.boxes[1] == []
    assert not source.report.abstained


def test_json_min_an_annotator_of_polygons_only_abstains(tmp_path: Path) -> None:
    records = json.loads(MINIMAL.read_text())
    polygon = {**POLYGON["value"], "original_width": 640, "original_height": 480}
    records[3]["outline"] = [polygon]  # bea's img_b record: a polygon control's region
    with open_crowd_source(write(tmp_path, records), "label-studio") as source:
        _, b, _ = list(source.images())
    assert b.annotators == ("7", "12")
    assert source.report.abstained == {"not-a-box": 1}


def test_a_later_answer_of_polygons_only_supersedes_an_earlier_box(tmp_path: Path) -> None:
    # the annotator's later answer is the one that counts, whatever it holds
    tasks = json.loads(EXPORT.read_text())
    again = {**tasks[1]["annotations"][0], "id": 1099, "result": [POLYGON]}
    tasks[1]["annotations"].append(again)
    with open_crowd_source(write(tmp_path, tasks), "label-studio") as source:
        _, b, _ = list(source.images())
    assert b.annotators == ("bea@example.com", "12")
    assert source.report.skipped["superseded-answer"] == 1
    assert source.report.abstained == {"not-a-box": 1}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(["box", "polygon", "keypoint", "choices"]), max_size=4),
        min_size=1,
        max_size=5,
    )
)
def test_who_answers_an_image_is_who_drew_a_box_or_placed_nothing(
    answers: list[list[str]],
) -> None:
    # the one rule, whatever mix of results each annotator gave: a box keeps them; regions
    # of other shapes alone leave them out (counted); nothing placed at all is a "no"
    box = json.loads(EXPORT.read_text())[1]["annotations"][0]["result"][0]
    choices = json.loads(EXPORT.read_text())[1]["annotations"][2]["result"][1]
    made = {"box": box, "polygon": POLYGON, "keypoint": KEYPOINT, "choices": choices}
    task = {
        "id": 1,
        "data": {"image": "s3://bkt/photos/img_x.jpg"},
        "annotations": [
            {"id": 10 + n, "completed_by": n, "result": [made[k] for k in kinds]}
            for n, kinds in enumerate(answers)
        ],
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.json"
        path.write_text(json.dumps([task]))
        with open_crowd_source(path, "label-studio") as source:
            [image] = list(source.images())
    placed = {"box", "polygon", "keypoint"}
    expected = [str(n) for n, k in enumerate(answers) if "box" in k or not placed & set(k)]
    assert list(image.annotators) == expected
    assert [len(b) for b in image.boxes] == [answers[int(a)].count("box") for a in expected]
    abstained = sum(1 for k in answers if placed & set(k) and "box" not in k)
    assert sum(source.report.abstained.values()) == abstained


@pytest.mark.parametrize(("extra", "counted"), [(["truck"], 1), (["truck", "bus"], 1), ([], 0)])
def test_a_region_of_several_labels_is_read_with_its_first_and_counted(
    extra: list[str], counted: int, tmp_path: Path
) -> None:
    # RectangleLabels with choice="multiple": the box is one object of one class, so it
    # takes its first label, but the others are said, not dropped without a word; its own
    # label given twice is one label
    tasks = json.loads(EXPORT.read_text())
    value = tasks[0]["annotations"][0]["result"][0]["value"]
    first = value["rectanglelabels"][0]
    value["rectanglelabels"] = [first, first, *extra]
    path = tmp_path / "multi.json"
    path.write_text(json.dumps(tasks))
    with open_crowd_source(path, "label-studio") as source:
        images = list(source.images())
    assert images[0].boxes[0][0]["label"] == first
    assert source.report.several_labels == source.report.to_json()["several_labels"] == counted
    said = "1 boxes of several labels read with their first" in source.report.summary()
    assert said is bool(counted)


@pytest.mark.parametrize(
    ("field", "value", "kind", "placed"),
    [
        ("quality", {"rating": 4}, "rating", False),
        ("count", {"number": 3}, "number", False),
        ("when", {"datetime": "2026-11-02"}, "datetime", False),
        ("tree", {"taxonomy": [["vehicle", "car"]]}, "taxonomy", False),
        ("weather", {"choices": ["rain", "fog"]}, "choices", False),
        (
            "note",
            {"x": 1.0, "y": 2.0, "width": 3.0, "height": 4.0, "rotation": 0, "text": ["dent"]},
            "textarea",
            False,
        ),
        (
            "outline",
            {"points": [[1.0, 1.0], [5.0, 5.0], [1.0, 5.0]], "closed": True},
            "polygon",
            True,
        ),
        (
            "area",
            {"x": 1.0, "y": 2.0, "width": 3.0, "height": 4.0, "rotation": 0},
            "rectangle",
            True,
        ),
        ("spot", {"x": 1.0, "y": 2.0, "width": 0.5}, "keypoint", True),
        (  # the generic Labels control beside a shape tag: a region of that shape
            "tag",
            {"points": [[1.0, 1.0], [5.0, 5.0], [1.0, 5.0]], "labels": ["car"]},
            "labels",
            True,
        ),
    ],
)
def test_json_min_whole_image_results_drew_nothing_as_in_the_json_export(
    tmp_path: Path, field: str, value: dict[str, Any], kind: str, placed: bool
) -> None:
    # JSON_MIN writes a Rating (Number, DateTime, Taxonomy, several Choices) as a list of
    # one value without its type: bea, who only rated img_b, was read as a region of another
    # shape and abstained there, where the JSON export of the same answer drew nothing
    records = json.loads(MINIMAL.read_text())
    records[3][field] = [{**value, "original_width": 640, "original_height": 480}]
    tasks = json.loads(EXPORT.read_text())
    bea = tasks[1]["annotations"][1]
    assert bea["completed_by"]["email"] == "bea@example.com" and bea["result"] == []
    bea["result"] = [
        {"type": kind, "from_name": field, "to_name": "image", "value": value}
        | {"original_width": 640, "original_height": 480}
    ]
    read = []
    for name, export in (("min.json", records), ("export.json", tasks)):
        with open_crowd_source(write(tmp_path, export, name), "label-studio") as source:
            _, b, _ = list(source.images())
        read.append((b.annotators, dict(source.report.abstained)))
    drew_nothing = ("7", "bea@example.com", "12")
    expected = (("7", "12"), {"not-a-box": 1}) if placed else (drew_nothing, {})
    assert read == [expected, expected]


_RESULTS: dict[str, tuple[str, str, dict[str, Any]]] = {  # kind: (type, from_name, value)
    "box": (
        "rectanglelabels",
        "label",
        {"x": 25, "y": 25, "width": 25, "height": 25, "rotation": 0, "rectanglelabels": ["car"]},
    ),
    "polygon": ("polygonlabels", "outline", POLYGON["value"]),
    "keypoint": ("keypointlabels", "joints", KEYPOINT["value"]),
    "choice": ("choices", "weather", {"choices": ["rain"]}),
    "choices": ("choices", "weather", {"choices": ["rain", "fog"]}),
    "rating": ("rating", "quality", {"rating": 4}),
    "area": ("rectangle", "area", {"x": 1, "y": 2, "width": 3, "height": 4, "rotation": 0}),
    "tagged": (  # a Labels control's box beside a <Rectangle> (the OCR template)
        "labels",
        "tag",
        {"x": 50, "y": 50, "width": 10, "height": 10, "rotation": 0, "labels": ["person"]},
    ),
}


def _json_min_record(annotator: int, kinds: list[str]) -> dict[str, Any]:
    """One annotation as Label Studio's JSON_MIN converter writes it (prettify_result)."""
    record: dict[str, Any] = {"image": "s3://bkt/photos/img_x.jpg", "id": 1}
    grouped: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for kind in kinds:
        kind_type, name, value = _RESULTS[kind]
        grouped.setdefault(name, []).append((kind_type, value))
    for name, values in grouped.items():
        out: list[Any] = []
        for kind_type, value in values:
            if kind_type == "choices" and len(value["choices"]) == 1:
                out.append(value["choices"][0])
            else:
                sized = kind_type.endswith("labels") or kind_type == "rectangle"
                size = {"original_width": 640, "original_height": 480} if sized else {}
                out.append({**value, **size})
        single = values[-1][0] == "choices" and len(out) == 1
        record[name] = out[0] if single else out
    return record | {"annotator": annotator, "annotation_id": 100 + annotator, "lead_time": 1.0}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from(sorted(_RESULTS)), max_size=4), min_size=1, max_size=4))
def test_json_min_reads_every_mix_of_results_as_the_json_export_does(
    answers: list[list[str]],
) -> None:
    # the two exports of one project are one crowd: who drew, who drew nothing, who abstained
    task = {
        "id": 1,
        "data": {"image": "s3://bkt/photos/img_x.jpg"},
        "annotations": [
            {
                "id": 100 + n,
                "completed_by": n,
                "result": [
                    {"type": t, "from_name": f, "to_name": "image", "value": v}
                    | ({"original_width": 640, "original_height": 480} if t != "choices" else {})
                    for t, f, v in (_RESULTS[k] for k in kinds)
                ],
            }
            for n, kinds in enumerate(answers)
        ],
    }
    records = [_json_min_record(n, kinds) for n, kinds in enumerate(answers)]
    read = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, export in (("export.json", [task]), ("min.json", records)):
            path = Path(tmp) / name
            path.write_text(json.dumps(export))
            with open_crowd_source(path, "label-studio") as source:
                [image] = list(source.images())
            # JSON_MIN groups an annotation's regions by control: the boxes of two controls
            # (RectangleLabels, Labels) come in another order than the JSON export's
            boxes = [sorted(b, key=lambda box: sorted(box.items())) for b in image.boxes]
            read.append((image.annotators, boxes, dict(source.report.abstained)))
    assert read[0] == read[1]


def test_a_labels_control_box_beside_a_rectangle_tag_is_a_box_in_both_exports(
    tmp_path: Path,
) -> None:
    # Label Studio's OCR template (<Labels name="label"> and <Rectangle name="bbox"> on one
    # image) writes each labelled rectangle as a "rectangle" result, a "labels" result with
    # the same place and a per-region "textarea": read as regions of another shape, every
    # box of such a project was lost (all annotators abstained, exit 0)
    place = {"x": 10.0, "y": 20.0, "width": 30.0, "height": 10.0, "rotation": 0}

    def region(n: int, label: str, also: str = "rectangle") -> list[dict[str, Any]]:
        common = {"id": f"r{n}", "to_name": "image", "original_width": 200}
        common |= {"original_height": 100, "image_rotation": 0}
        return [
            common
            | {"type": also, "from_name": "bbox", "value": dict(place)}
            | ({"value": place | {"rectanglelabels": [label]}} if also != "rectangle" else {}),
            common | {"type": "labels", "from_name": "label", "value": place | {"labels": [label]}},
            common | {"type": "textarea", "from_name": "text", "value": place | {"text": ["STOP"]}},
        ]

    task = {
        "id": 5,
        "data": {"image": "s3://bkt/sign.jpg"},
        "annotations": [
            {"id": 1, "completed_by": 1, "result": region(1, "Text")},
            # a region drawn with RectangleLabels that a Labels control labelled too: one box
            {"id": 2, "completed_by": 2, "result": region(2, "Text", also="rectanglelabels")},
        ],
    }
    records = [
        {"image": "s3://bkt/sign.jpg", "id": 5, "annotator": 1, "label": [
            place | {"labels": ["Text"], "original_width": 200, "original_height": 100}
        ], "bbox": [place | {"original_width": 200, "original_height": 100}],
         "text": [place | {"text": ["STOP"]}]},
    ]  # fmt: skip
    box = {"label": "Text", "left": 20.0, "top": 20.0, "width": 60.0, "height": 10.0}
    with open_crowd_source(write(tmp_path, [task]), "label-studio") as source:
        (image,) = source.images()
    assert image.annotators == ("1", "2") and image.boxes == ([box], [box])
    assert source.report.boxes == 2 and not source.report.abstained
    # annotator 2's region as JSON_MIN writes it: under each control's name, without ids
    # (read apart, it was two boxes where the JSON export reads one)
    sized = {"original_width": 200, "original_height": 100}
    records.append(
        {"image": "s3://bkt/sign.jpg", "id": 5, "annotator": 2, "annotation_id": 2,
         "bbox": [place | {"rectanglelabels": ["Text"]} | sized],
         "label": [place | {"labels": ["Text"]} | sized], "text": "STOP"}
    )  # fmt: skip
    with open_crowd_source(write(tmp_path, records, "min.json"), "label-studio") as source:
        (image,) = source.images()
    assert image.annotators == ("1", "2") and image.boxes == ([box], [box])
    assert source.report.boxes == 2 and not source.report.abstained


@pytest.mark.parametrize("nobody", [None, "None"])
def test_json_min_an_annotation_that_names_nobody_is_rejected_not_dropped(
    tmp_path: Path, nobody: Any
) -> None:
    # "annotator": null is also what JSON_MIN writes for a completed_by without an email;
    # read as "a task nobody annotated", its boxes were dropped unsaid (the JSON export's
    # completed_by null is a no-annotator reject)
    records = json.loads(MINIMAL.read_text())
    assert records[0]["annotator"] == 7 and records[-1]["annotator"] is None
    # "None": what the converter writes for completed_by null (str(None))
    records[0]["annotator"] = nobody
    rejects: list[CrowdReject] = []
    path = write(tmp_path, records, "min.json")
    with open_crowd_source(path, "label-studio", on_reject=rejects.append) as source:
        images = list(source.images())
    assert [(r.position, r.reason.value) for r in rejects] == [
        ("record 0 (id 101)", "no-annotator")
    ]
    assert images[0].annotators == ("bea@example.com",)
    assert images[2].annotators == ()  # the task nobody annotated: still no answer, no reject
    with pytest.raises(CrowdSourceError, match=r"record 0 \(id 101\): no-annotator"):
        list(iter_crowd_images(path, "label-studio"))


def test_json_min_newest_first_records_read_as_the_json_export(tmp_path: Path) -> None:
    # Label Studio's converter writes a task's annotations to JSON_MIN newest first (sorted
    # by created_at, reversed); the JSON export lists them oldest first. Read in file order,
    # an annotator's older annotation superseded their newer one in JSON_MIN only
    tasks = json.loads(EXPORT.read_text())
    task = tasks[1]
    older = task["annotations"][0]
    newer = json.loads(json.dumps(older)) | {"id": 2001}
    newer["result"][0]["value"]["x"] += 5.0
    older["created_at"], newer["created_at"] = "2026-11-02T10:00:00Z", "2026-11-03T09:00:00Z"
    task["annotations"].append(newer)
    records = json.loads(MINIMAL.read_text())
    at = next(n for n, r in enumerate(records) if r["id"] == task["id"])
    first = records[at] | {"created_at": older["created_at"]}
    again = json.loads(json.dumps(first)) | {"annotation_id": 2001}
    again["created_at"] = newer["created_at"]
    again["label"][0]["x"] += 5.0
    records[at] = first
    records.insert(at, again)  # newest first, as the converter writes them
    read = []
    for name, export in (("export.json", tasks), ("min.json", records)):
        with open_crowd_source(write(tmp_path, export, name), "label-studio") as source:
            image = list(source.images())[1]
        read.append(image.boxes[image.annotators.index("7")])
        assert source.report.skipped["superseded-answer"] == 1
    assert read[0] == read[1] and read[0][0]["left"] == round(
        (older["result"][0]["value"]["x"] + 5) * 6.4, 6
    )


@pytest.mark.parametrize("region", [["r1"], {"id": "r1"}, None, 7])
def test_a_region_id_of_any_json_type_is_read_without_a_traceback(
    tmp_path: Path, region: Any
) -> None:
    # the ids pair a Labels result with its region's RectangleLabels one: a list or an
    # object there stopped the read with "unhashable type"
    place = {"x": 10.0, "y": 20.0, "width": 30.0, "height": 10.0, "rotation": 0}
    sized = {"original_width": 200, "original_height": 100, "to_name": "image", "id": region}
    results = [
        sized | {"type": "rectanglelabels", "value": place | {"rectanglelabels": ["car"]}},
        sized | {"type": "labels", "value": place | {"labels": ["car"]}},
    ]
    task = {"id": 1, "data": {"image": "s3://bkt/a.jpg"}, "annotations": []}
    task["annotations"] = [{"id": 1, "completed_by": 1, "result": results}]
    (image,) = iter_crowd_images(write(tmp_path, [task]), "label-studio")
    # one region (the same string or integer id) is one box; ids that name none are two
    assert [len(b) for b in image.boxes] == [1 if isinstance(region, str | int) else 2]


def test_an_image_every_answer_abstained_on_fails_saying_so_not_unanswered(
    tmp_path: Path,
) -> None:
    # img_b's three annotators outlined its car as polygons: its output line said "no worker
    # answers for this object", as for img_c, which nobody answered
    tasks = json.loads(EXPORT.read_text())
    for annotation in tasks[1]["annotations"]:
        annotation["result"] = [POLYGON]
    found, report = consolidate(write(tmp_path, tasks), tmp_path)
    assert found["s3://bkt/photos/img_b.jpg"] == (
        "reconsolidate: no box read: the 3 answers for this object hold only regions of other"
        " shapes (polygons, keypoints, crowd regions) or boxes that were rejected, which are"
        " no vote for or against a box"
    )
    assert found["s3://bkt/photos/img_c.jpg"] == EXPECTED["s3://bkt/photos/img_c.jpg"]
    assert report.ingest.abstained == {"not-a-box": 3}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 3), st.integers(0, 10_000)),
        min_size=1,
        max_size=8,
        unique_by=lambda a: a[1],
    )
)
def test_json_and_json_min_of_repeated_annotations_read_alike(
    annotations: list[tuple[int, int]],
) -> None:
    # each (annotator, minute) is one annotation of the task; the JSON export lists them as
    # Label Studio does, oldest first, and the converter writes JSON_MIN newest first
    annotations.sort(key=lambda a: a[1])

    def created(minute: int) -> str:
        return (
            f"2026-11-{1 + minute // 1440:02d}T{minute // 60 % 24:02d}:{minute % 60:02d}:00.000000Z"
        )

    def value(n: int) -> dict[str, Any]:
        return {"x": float(n % 90), "y": 5.0, "width": 10.0, "height": 10.0, "rotation": 0,
                "rectanglelabels": ["car"]}  # fmt: skip

    task = {"id": 1, "data": {"image": "s3://bkt/x.jpg"}, "annotations": [
        {"id": 100 + n, "completed_by": who, "created_at": created(minute), "result": [
            {"type": "rectanglelabels", "from_name": "label", "to_name": "image",
             "original_width": 200, "original_height": 100, "value": value(n)}]}
        for n, (who, minute) in enumerate(annotations)
    ]}  # fmt: skip
    records = [
        {"image": "s3://bkt/x.jpg", "id": 1,
         "label": [value(n) | {"original_width": 200, "original_height": 100}],
         "annotator": who, "annotation_id": 100 + n, "created_at": created(minute)}
        for n, (who, minute) in reversed(list(enumerate(annotations)))
    ]  # fmt: skip
    read = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, export in (("export.json", [task]), ("min.json", records)):
            path = Path(tmp) / name
            path.write_text(json.dumps(export))
            with open_crowd_source(path, "label-studio") as source:
                (image,) = source.images()
            read.append(dict(zip(image.annotators, image.boxes, strict=True)))
    newest = {who: n for n, (who, _) in enumerate(annotations)}
    assert read[0] == read[1]
    assert {who: boxes[0]["left"] for who, boxes in read[0].items()} == {
        str(who): float(n % 90) * 2 for who, n in newest.items()
    }


def _as_json_min(task: dict[str, Any]) -> list[dict[str, Any]]:
    """A JSON export's task as Label Studio's converter writes it in JSON_MIN: one record per
    annotation, each result's value (with the image size) under its control's name, no ids."""
    records = []
    for ann in task["annotations"]:
        record = {**task["data"], "id": task["id"]}
        for result in ann["result"]:
            sized = {k: result[k] for k in ("original_width", "original_height")}
            record.setdefault(result["from_name"], []).append(result["value"] | sized)
        record |= {"annotator": ann["completed_by"], "annotation_id": ann["id"]}
        records.append(record)
    return records


@pytest.mark.parametrize(
    ("regions", "labels"),
    [
        # one region labelled by RectangleLabels and Labels: one box
        ([("a", "rectanglelabels", "bbox", "Car"), ("a", "labels", "label", "Text")], ["Car"]),
        # that region duplicated, the copy relabelled with the Labels control only: two
        # regions at one place (JSON_MIN paired both labels values with the one box)
        ([("a", "rectanglelabels", "bbox", "Car"), ("a", "labels", "label", "Text"),
          ("b", "labels", "label", "Sign")], ["Car", "Sign"]),
        # a <Rectangle> region labelled by two Labels controls: one region, one box (it was
        # two boxes of one annotator in both exports), labelled by the control whose name
        # sorts first ("kind"), whatever order an export lists the controls in
        ([("a", "labels", "label", "Text"), ("a", "labels", "kind", "Printed")], ["Printed"]),
        ([("a", "labels", "label", "Text"), ("a", "labels", "kind", "Printed"),
          ("b", "labels", "label", "Sign"), ("b", "labels", "kind", "Painted")],
         ["Printed", "Painted"]),
        # two regions of RectangleLabels at one place, a Labels control on both: two boxes
        ([("a", "rectanglelabels", "bbox", "Car"), ("a", "labels", "label", "Text"),
          ("b", "rectanglelabels", "bbox", "Bus"), ("b", "labels", "label", "Sign")],
         ["Car", "Bus"]),
    ],
    ids=["one-region", "duplicated-region", "two-labels-controls", "two-by-two", "two-boxes"],
)  # fmt: skip
def test_regions_at_one_place_read_as_one_box_each_in_both_exports(
    tmp_path: Path, regions: list[tuple[str, str, str, str]], labels: list[str]
) -> None:
    # Label Studio's data model: a region is one result per control, all with its id. The
    # JSON export pairs them by id; JSON_MIN drops ids and is read by place, one value of
    # each control per region
    place = {"x": 10.0, "y": 20.0, "width": 30.0, "height": 10.0, "rotation": 0}
    sized = {"to_name": "image", "original_width": 200, "original_height": 100}
    result = [
        {"id": rid, "type": kind, "from_name": control, **sized, "value": place | {kind: [label]}}
        for rid, kind, control, label in regions
    ]
    task = {"id": 5, "data": {"image": "s3://bkt/sign.jpg"}}
    task["annotations"] = [{"id": 1, "completed_by": 1, "result": result}]
    for name, tasks in (("export.json", [task]), ("min.json", _as_json_min(task))):
        with open_crowd_source(write(tmp_path, tasks, name), "label-studio") as source:
            (image,) = source.images()
        assert [[b["label"] for b in boxes] for boxes in image.boxes] == [labels], name
        assert source.report.boxes == len(labels), name


@pytest.mark.parametrize(
    ("regions", "label", "counted"),
    [
        ([("rectanglelabels", "bbox", "Car"), ("labels", "label", "Text")], "Car", 1),
        ([("rectanglelabels", "bbox", "Car"), ("labels", "label", "Car")], "Car", 0),
        ([("labels", "label", "Text"), ("labels", "kind", "Printed")], "Printed", 1),
        ([("labels", "label", "Sign"), ("labels", "kind", "Sign")], "Sign", 0),
    ],
    ids=["rectangle-and-labels", "the-same-label", "two-labels-controls", "same-twice"],
)
def test_a_region_labelled_by_two_controls_is_read_with_one_label_and_counted(
    tmp_path: Path, regions: list[tuple[str, str, str]], label: str, counted: int
) -> None:
    # the docs' rule for a region of several labels: one box, one class, the others counted
    # in the summary (several_labels). A region labelled "Text" by one control and
    # "Printed" by another was read with one of them and the other said only as a skipped
    # result "not-a-box", never as a region of several labels
    place = {"x": 10.0, "y": 20.0, "width": 30.0, "height": 10.0, "rotation": 0}
    sized = {"to_name": "image", "original_width": 200, "original_height": 100}
    result = [
        {"id": "a", "type": kind, "from_name": control, **sized, "value": place | {kind: [name]}}
        for kind, control, name in regions
    ]
    task = {"id": 5, "data": {"image": "s3://bkt/sign.jpg"}}
    task["annotations"] = [{"id": 1, "completed_by": 1, "result": result}]
    for name, tasks in (("export.json", [task]), ("min.json", _as_json_min(task))):
        with open_crowd_source(write(tmp_path, tasks, name), "label-studio") as source:
            (image,) = source.images()
        assert [[b["label"] for b in boxes] for boxes in image.boxes] == [[label]], name
        assert source.report.several_labels == counted, name
        said = "1 boxes of several labels read with their first" in source.report.summary()
        assert said is bool(counted), name


def test_a_region_whose_first_control_gives_no_label_takes_the_other_controls(
    tmp_path: Path,
) -> None:
    # a region labelled by "label" and by "kind" that gives it none ("labels": [], a Labels
    # control with allowEmpty): read with "kind", the name that sorts first, the box was
    # rejected (no labels) and its annotator abstained, though "label" labels it "Text"
    place = {"x": 10.0, "y": 20.0, "width": 30.0, "height": 10.0, "rotation": 0}
    sized = {"to_name": "image", "original_width": 200, "original_height": 100}
    result = [
        {"id": "a", "type": "labels", "from_name": control, **sized, "value": place | labels}
        for control, labels in (("label", {"labels": ["Text"]}), ("kind", {"labels": []}))
    ]
    task = {"id": 5, "data": {"image": "s3://bkt/sign.jpg"}}
    task["annotations"] = [{"id": 1, "completed_by": 1, "result": result}]
    for name, tasks in (("export.json", [task]), ("min.json", _as_json_min(task))):
        rejects: list[CrowdReject] = []
        path = write(tmp_path, tasks, name)
        with open_crowd_source(path, "label-studio", on_reject=rejects.append) as source:
            (image,) = source.images()
        assert [[b["label"] for b in boxes] for boxes in image.boxes] == [["Text"]], name
        assert not rejects and not source.report.abstained, name


def _one_region_in_both_exports(
    tmp_path: Path, result: list[dict[str, Any]], read: str | None, *, several: bool
) -> None:
    """One annotation's ``result`` (one region at 10, 20, 30 x 10 % of 200 x 100) read in
    both exports: the one box labelled ``read``, or (``None``) one malformed reject."""
    task = {"id": 5, "data": {"image": "s3://bkt/sign.jpg"}}
    task["annotations"] = [{"id": 1, "completed_by": 1, "result": result}]
    for name, tasks in (("export.json", [task]), ("min.json", _as_json_min(task))):
        rejects: list[CrowdReject] = []
        path = write(tmp_path, tasks, name)
        with open_crowd_source(path, "label-studio", on_reject=rejects.append) as source:
            (image,) = source.images()
        if read is None:
            assert image.annotators == () and source.report.abstained == {"malformed": 1}, name
            assert [r.reason.value for r in rejects] == ["malformed"], name
            continue
        want = {"label": read, "left": 20.0, "top": 20.0, "width": 60.0, "height": 10.0}
        assert [list(boxes) for boxes in image.boxes] == [[want]], name
        assert not rejects and not source.report.abstained, name
        assert source.report.several_labels == several, name


@pytest.mark.parametrize(
    ("rectangle", "labels", "read"),
    [
        ({"rectanglelabels": []}, ["Text"], "Text"),
        ({}, ["Text"], "Text"),  # no key at all: JSON_MIN read it as the Labels box already
        ({"rectanglelabels": None}, ["Text"], "Text"),
        ({"rectanglelabels": ["Car"]}, ["Text"], "Car"),  # its own label stays the box's
        ({"rectanglelabels": []}, [], None),  # no control labels it: still no label
        ({"rectanglelabels": [5]}, ["Text"], None),  # a broken list is no empty choice
    ],
    ids=["empty", "absent", "null", "own-label", "no-label-anywhere", "broken"],
)
def test_a_rectangle_labelled_only_by_its_labels_control_is_that_box_in_both_exports(
    tmp_path: Path, rectangle: dict[str, Any], labels: list[str], read: str | None
) -> None:
    # <RectangleLabels name="bbox"> and <Labels name="label"> on one image: a region the
    # annotator labelled with "label" only is written as a rectanglelabels result with no
    # label and a labels result of the same id (JSON_MIN: each value under its control's
    # name). The empty result was taken for the box and rejected ("no rectanglelabels"), so
    # its annotator abstained; and where the key was absent JSON_MIN read the box (as the
    # labels value's) and the JSON export rejected it
    place = {"x": 10.0, "y": 20.0, "width": 30.0, "height": 10.0, "rotation": 0}
    sized = {"to_name": "image", "original_width": 200, "original_height": 100}
    result = [
        {"id": "a", "type": "rectanglelabels", "from_name": "bbox", **sized,
         "value": place | rectangle},
        {"id": "a", "type": "labels", "from_name": "label", **sized,
         "value": place | {"labels": labels}},
    ]  # fmt: skip
    _one_region_in_both_exports(tmp_path, result, read, several=read != "Text")


@pytest.mark.parametrize(
    ("controls", "read", "several"),
    [
        # Label Studio puts a second RectangleLabels control's label on the selected
        # rectangle: one region, a result of each control with its id
        ([("bbox", {"rectanglelabels": ["Car"]}), ("bbox2", {"rectanglelabels": ["Dent"]})],
         "Car", True),
        # the same, listed the other way (JSON_MIN groups values by control): the same box
        ([("bbox2", {"rectanglelabels": ["Dent"]}), ("bbox", {"rectanglelabels": ["Car"]})],
         "Car", True),
        # the first control's label unselected, the region keeps the other's
        ([("bbox", {"rectanglelabels": []}), ("bbox2", {"rectanglelabels": ["Dent"]})],
         "Dent", False),
        ([("bbox", {"rectanglelabels": None}), ("bbox2", {"rectanglelabels": ["Dent"]})],
         "Dent", False),
        # and a Labels control's label beside it: still the one box, of several labels
        ([("bbox", {"rectanglelabels": []}), ("bbox2", {"rectanglelabels": ["Dent"]}),
          ("label", {"labels": ["Text"]})], "Dent", True),
        # no control labels it: one reject for the one region
        ([("bbox", {"rectanglelabels": []}), ("bbox2", {"rectanglelabels": []})], None, False),
    ],
    ids=["both", "both-reversed", "one-empty", "one-null", "one-empty-and-labels", "none"],
)  # fmt: skip
def test_a_region_of_two_rectanglelabels_controls_is_one_box_in_both_exports(
    tmp_path: Path,
    controls: list[tuple[str, dict[str, Any]]],
    read: str | None,
    several: bool,
) -> None:
    # <RectangleLabels name="bbox"> and <RectangleLabels name="bbox2"> on one image. Each
    # RectangleLabels result was read as a box: the region was two boxes of one annotator
    # on one object (both exports), an empty one beside the other's label a reject of a
    # region read (JSON export, exit 1), and with a Labels result too JSON_MIN (which
    # counted both controls' values at a place as two regions) read two boxes where the
    # JSON export read one
    place = {"x": 10.0, "y": 20.0, "width": 30.0, "height": 10.0, "rotation": 0}
    sized = {"to_name": "image", "original_width": 200, "original_height": 100}
    result = [
        {"id": "a", "type": "labels" if name == "label" else "rectanglelabels",
         "from_name": name, **sized, "value": place | labels}
        for name, labels in controls
    ]  # fmt: skip
    _one_region_in_both_exports(tmp_path, result, read, several=several)


@pytest.mark.parametrize(
    "labels_place",
    [
        {"x": 10.0, "y": 20.0, "width": 30.0, "height": 10.0},  # no rotation
        {"x": 10.0, "y": 20.0, "width": 30.0, "height": 10.0, "rotation": None},
        {"x": 10, "y": 20, "width": 30, "height": 10, "rotation": 0.0},  # whole numbers
    ],
    ids=["rotation-absent", "rotation-null", "integers"],
)
def test_json_min_pairs_a_regions_values_at_one_place_as_the_reader_reads_it(
    tmp_path: Path, labels_place: dict[str, Any]
) -> None:
    # one region (id a) labelled by RectangleLabels and Labels, its Labels value written
    # (by an import script) without rotation, or with 10 for 10.0: the reader reads both
    # places as the same box, but JSON_MIN paired them by their text and read two boxes of
    # one annotator where the JSON export reads one
    sized = {"to_name": "image", "original_width": 200, "original_height": 100}
    place = {"x": 10.0, "y": 20.0, "width": 30.0, "height": 10.0, "rotation": 0}
    result = [
        {"id": "a", "type": "rectanglelabels", "from_name": "bbox", **sized,
         "value": place | {"rectanglelabels": ["Car"]}},
        {"id": "a", "type": "labels", "from_name": "label", **sized,
         "value": labels_place | {"labels": ["Car"]}},
    ]  # fmt: skip
    task = {"id": 5, "data": {"image": "s3://bkt/sign.jpg"}}
    task["annotations"] = [{"id": 1, "completed_by": 1, "result": result}]
    for name, tasks in (("export.json", [task]), ("min.json", _as_json_min(task))):
        with open_crowd_source(write(tmp_path, tasks, name), "label-studio") as source:
            (image,) = source.images()
        assert [[b["label"] for b in boxes] for boxes in image.boxes] == [["Car"]], name


def test_who_drew_only_on_another_image_of_the_task_drew_nothing_on_this_one(
    tmp_path: Path,
) -> None:
    # a task showing a product's front (img1) and back (img2): annotator 1 marks a defect on
    # the front, annotators 2 and 3 only on the back. Made to abstain on the front, 2 and 3
    # left annotator 1 alone, and the one box was kept as the crowd's (support 1 of 1)
    task = {"id": 3, "data": {"url1": "s3://bkt/front.jpg", "url2": "s3://bkt/back.jpg"}}
    task["annotations"] = [
        {"id": 1, "completed_by": 1, "result": [on_image("img1", 10.0)]},
        {"id": 2, "completed_by": 2, "result": [on_image("img2", 40.0)]},
        {"id": 3, "completed_by": 3, "result": [on_image("img2", 41.0)]},
    ]
    path = write(tmp_path, [task])
    rejects: list[CrowdReject] = []
    with open_crowd_source(
        path, "label-studio", data_key="url1", image_name="img1", on_reject=rejects.append
    ) as source:
        (image,) = source.images()
        assert not source.report.abstained
    assert image.annotators == ("1", "2", "3")
    assert [len(b) for b in image.boxes] == [1, 0, 0]
    assert len(rejects) == 2  # the boxes on img2 are still kept in the rejects file
    out = tmp_path / "front.manifest"
    argv = ["consolidate", str(path), "--from", "label-studio", "--data-key", "url1"]
    assert main([*argv, "--image-name", "img1", "-o", str(out)]) == 1  # the rejects
    (line,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert line["consolidated"]["annotations"] == []  # one of three saw a defect
    # a region of another shape on the other image says nothing of this one either
    polygon = {
        "type": "polygonlabels",
        "from_name": "outline",
        "to_name": "img2",
        "value": {"points": [[1, 1], [5, 1], [5, 5]], "polygonlabels": ["car"]},
    }
    task["annotations"][2]["result"] = [polygon]  # fmt: skip
    path = write(tmp_path, [task])
    with open_crowd_source(
        path, "label-studio", data_key="url1", image_name="img1", on_reject=rejects.append
    ) as source:
        (image,) = source.images()
        assert not source.report.abstained
    assert image.annotators == ("1", "2", "3") and [len(b) for b in image.boxes] == [1, 0, 0]


@pytest.mark.parametrize("image_name", [None, "image"], ids=["rule", "image-name"])
def test_a_polygon_on_the_second_image_is_no_abstention_without_image_name_either(
    tmp_path: Path, image_name: str | None
) -> None:
    # a task showing $image (boxes) and $image2 (outlines): annotator 2 outlined a part on
    # image2 and drew nothing on image. All boxes are on image, so the reader read them all
    # without --image-name, and there 2 abstained (not-a-box); with --image-name image, the
    # same export read 2 as an answer with no box: the crowd's output hung on the flag
    def rect(n: int, x: float) -> dict[str, Any]:
        value = {"x": x, "y": 10.0, "width": 20.0, "height": 20.0, "rotation": 0,
                 "rectanglelabels": ["car"]}  # fmt: skip
        return {"id": f"r{n}", "type": "rectanglelabels", "from_name": "label",
                "to_name": "image", "original_width": 100, "original_height": 100,
                "value": value}  # fmt: skip

    points = [[1, 1], [5, 1], [5, 5]]
    outline = {"id": "p", "type": "polygonlabels", "from_name": "outline", "to_name": "image2",
               "value": {"points": points, "polygonlabels": ["dent"]}}  # fmt: skip
    task = {"id": 4, "data": {"image": "s3://bkt/a.jpg", "image2": "s3://bkt/b.jpg"}}
    task["annotations"] = [
        {"id": 1, "completed_by": 1, "result": [rect(1, 10.0)]},
        {"id": 2, "completed_by": 2, "result": [outline]},
        {"id": 3, "completed_by": 3, "result": [rect(3, 11.0)]},
    ]
    path = write(tmp_path, [task])
    with open_crowd_source(path, "label-studio", image_name=image_name) as source:
        (image,) = source.images()
        assert not source.report.abstained
    assert image.annotators == ("1", "2", "3")
    assert [len(b) for b in image.boxes] == [1, 0, 1]
    # a polygon on the image read still makes its maker abstain there
    task["annotations"][1]["result"] = [outline | {"to_name": "image"}]
    with open_crowd_source(write(tmp_path, [task]), "label-studio") as source:
        (image,) = source.images()
        assert dict(source.report.abstained) == {"not-a-box": 1}
    assert image.annotators == ("1", "3")


_CONTROLS = (("bbox", "rectanglelabels"), ("label", "labels"), ("kind", "labels"))


@settings(max_examples=60, deadline=None)
@given(
    regions=st.lists(
        st.tuples(
            st.integers(0, 2),  # its place, of three: several regions may share one
            st.sets(st.sampled_from(range(3)), min_size=1),  # the controls labelling it
            st.sampled_from(["Car", "Bus", "Sign"]),
        ),
        max_size=8,
    )
)
def test_json_and_json_min_read_the_same_boxes_where_places_tell_regions_apart(
    regions: list[tuple[int, set[int], str]],
) -> None:
    # Property: regions are one result per control, paired by id in the JSON export and by
    # place in JSON_MIN. Where every region at a place is labelled by the same controls
    # (the one case JSON_MIN cannot tell apart is a place holding a region of some controls
    # beside one of others), both exports read one box per region, the same boxes
    controls_at: dict[int, frozenset[int]] = {}
    for place, controls, _ in regions:
        controls_at.setdefault(place, frozenset(controls))
    sized = {"to_name": "image", "original_width": 200, "original_height": 100}
    result = []
    for n, (place, _, label) in enumerate(regions):
        value = {"x": 10.0 * place, "y": 5.0, "width": 8.0, "height": 4.0, "rotation": 0}
        for c in sorted(controls_at[place]):
            name, kind = _CONTROLS[c]
            result.append({"id": f"r{n}", "type": kind, "from_name": name, **sized,
                           "value": value | {kind: [f"{label}-{name}"]}})  # fmt: skip
    task = {"id": 5, "data": {"image": "s3://bkt/sign.jpg"}}
    task["annotations"] = [{"id": 1, "completed_by": 1, "result": result}]
    read = []
    with tempfile.TemporaryDirectory() as folder:
        for name, tasks in (("export.json", [task]), ("min.json", _as_json_min(task))):
            path = Path(folder) / name
            path.write_text(json.dumps(tasks))
            (image,) = iter_crowd_images(path, "label-studio", on_reject=lambda _: None)
            read.append(sorted((b["label"], b["left"]) for boxes in image.boxes for b in boxes))
    assert read[0] == read[1]
    assert len(read[0]) == len(regions)  # one box per region


def test_a_broken_rectanglelabels_result_beside_another_controls_box_stays_a_reject(
    tmp_path: Path,
) -> None:
    # a region of two RectangleLabels controls is one box, read by the control that labels
    # it; the other's result is no box only where it gives no label ([]) or another one: a
    # broken list ([5]) is a broken record, rejected with its position, as it always was
    place = {"x": 10.0, "y": 20.0, "width": 30.0, "height": 10.0, "rotation": 0}
    sized = {"to_name": "image", "original_width": 200, "original_height": 100}
    result = [
        {"id": "a", "type": "rectanglelabels", "from_name": name, **sized, "value": place | v}
        for name, v in (
            ("bbox", {"rectanglelabels": [5]}),
            ("bbox2", {"rectanglelabels": ["Dent"]}),
        )
    ]
    task = {"id": 5, "data": {"image": "s3://bkt/sign.jpg"}}
    task["annotations"] = [{"id": 1, "completed_by": 1, "result": result}]
    for name, tasks in (("export.json", [task]), ("min.json", _as_json_min(task))):
        rejects: list[CrowdReject] = []
        path = write(tmp_path, tasks, name)
        with open_crowd_source(path, "label-studio", on_reject=rejects.append) as source:
            (image,) = source.images()
        assert [[b["label"] for b in boxes] for boxes in image.boxes] == [["Dent"]], name
        assert [(r.reason.value, r.detail) for r in rejects] == [
            ("malformed", "no rectanglelabels")
        ], name


_REGION_CONTROLS = (
    ("bbox", "rectanglelabels"),
    ("bbox2", "rectanglelabels"),
    ("label", "labels"),
    ("kind", "labels"),
)


@settings(max_examples=80, deadline=None)
@given(
    regions=st.lists(
        st.dictionaries(  # the controls of a region, each giving a label or none ([])
            st.sampled_from(range(len(_REGION_CONTROLS))),
            st.sampled_from(["Car", "Bus", ""]),
            min_size=1,
        ).filter(lambda controls: any(controls.values())),  # some control labels it
        max_size=6,
    )
)
def test_a_region_of_any_mix_of_controls_is_one_box_in_both_exports(
    regions: list[dict[int, str]],
) -> None:
    # Property: a region is one box, whichever RectangleLabels and Labels controls label it
    # and whichever of them give no label (an unselected one writes []): the same box in
    # the JSON export (results paired by id) and in JSON_MIN (by place, each its own here),
    # and nothing rejected
    sized = {"to_name": "image", "original_width": 200, "original_height": 100}
    result = []
    for n, controls in enumerate(regions):
        value = {"x": 10.0 * n, "y": 5.0, "width": 8.0, "height": 4.0, "rotation": 0}
        for c, label in sorted(controls.items()):
            name, kind = _REGION_CONTROLS[c]
            result.append({"id": f"r{n}", "type": kind, "from_name": name, **sized,
                           "value": value | {kind: [label] if label else []}})  # fmt: skip
    task = {"id": 5, "data": {"image": "s3://bkt/sign.jpg"}}
    task["annotations"] = [{"id": 1, "completed_by": 1, "result": result}]
    read = []
    with tempfile.TemporaryDirectory() as folder:
        for name, tasks in (("export.json", [task]), ("min.json", _as_json_min(task))):
            path = Path(folder) / name
            path.write_text(json.dumps(tasks))
            rejects: list[CrowdReject] = []
            (image,) = iter_crowd_images(path, "label-studio", on_reject=rejects.append)
            assert not rejects, name
            read.append(sorted((b["left"], b["label"]) for boxes in image.boxes for b in boxes))
    assert read[0] == read[1]
    assert [left for left, _ in read[0]] == [20.0 * n for n in range(len(regions))]
