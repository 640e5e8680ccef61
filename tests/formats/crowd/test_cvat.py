from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit import iter_crowd_images
from gt_toolkit.consolidation.reconsolidate import reconsolidate
from gt_toolkit.errors import CrowdSourceError
from gt_toolkit.formats.crowd.sources import open_crowd_source
from tests.helpers import CROWD, consolidated_boxes

REPLICAS = CROWD / "cvat-replicas"

# Three replica jobs saw both frames; carol's job only tagged img_a, job 12 (no assignee)
# drew nothing on img_b. By hand: img_a car: IoU 0.95, two of three workers:
# 2/3 x (1 - 0.05/4); person: alice's 96x64 box turned 90 degrees about its centre
# (352,288) is (320,240,64,96), the same as job 12's: 2/3 x 1; img_b as in Label Studio.
EXPECTED = {
    "s3://bkt/photos/img_a.jpg": [
        ("car", 67, 48, 125, 96, 0.6583),
        ("person", 320, 240, 64, 96, 0.6667),
    ],
    "s3://bkt/photos/img_b.jpg": [("car", 160, 123, 160, 120, 0.6508)],
}


def test_three_replica_jobs_consolidate_box_by_box(tmp_path: Path) -> None:
    out = tmp_path / "out.manifest"
    with open_crowd_source(REPLICAS, "cvat") as source:
        # the head count: the expected boxes are its arithmetic on a tiny crowd
        report = reconsolidate(source, out, image_prefix="s3://bkt/photos/", worker_model=None)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert consolidated_boxes(lines) == EXPECTED
    assert report.labels == ["car", "person"]  # the jobs' label list
    assert report.ingest.annotators == {"alice", "job_12_annotations", "carol"}
    assert (report.ingest.images, report.ingest.answers, report.ingest.boxes) == (2, 6, 6)
    assert dict(report.ingest.skipped) == {"not-a-box": 2}  # job 12's polygon, carol's tag
    assert report.ingest.rotated == 1 and report.complete


def test_zipped_exports_and_job_folders_read_the_same(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    with zipfile.ZipFile(folder / "job_11.zip", "w") as archive:
        archive.write(REPLICAS / "job_11_annotations.xml", "annotations.xml")
    (folder / "job_12").mkdir()
    shutil.copy(REPLICAS / "job_12_annotations.xml", folder / "job_12" / "annotations.xml")
    shutil.copy(REPLICAS / "job_13_annotations.xml", folder / "job_13.xml")
    got = list(iter_crowd_images(folder, "cvat"))
    want = list(iter_crowd_images(REPLICAS, "cvat"))
    assert [i.annotators for i in got] == [("alice", "job_12", "carol")] * 2
    assert [i.boxes for i in got] == [i.boxes for i in want]


def edit(name: str, old: str, new: str, tmp_path: Path) -> Path:
    folder = tmp_path / "jobs"
    shutil.copytree(REPLICAS, folder)
    path = folder / name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return folder


@pytest.mark.parametrize(
    ("name", "old", "new", "message"),
    [
        (
            "job_12_annotations.xml",
            'xtl="70.40"',
            'xtl="left"',
            r"job_12_annotations\.xml: image 'img_a\.jpg' \(id 0\), shape 0: malformed",
        ),
        (
            "job_11_annotations.xml",
            'label="car" source="manual" occluded="0" xtl="64.00"',
            'source="manual" occluded="0" xtl="64.00"',
            r"job_11_annotations\.xml: image 'img_a\.jpg' \(id 0\), shape 0: malformed",
        ),
        (
            "job_13_annotations.xml",
            '<image id="1" name="img_b.jpg" width="640"',
            '<image id="1" name="img_b.jpg" width="800"',
            r"job_13_annotations\.xml: image 'img_b\.jpg' \(id 1\): image 'img_b\.jpg' is "
            r"800x480 for carol but 640x480 for alice",
        ),
        (
            "job_12_annotations.xml",
            "</annotations>",
            "</annotation>",
            r"job_12_annotations\.xml: line \d+, column \d+: not well-formed XML",
        ),
    ],
    ids=["coordinate", "label", "size-conflict", "xml"],
)
def test_malformed_input_is_one_line_with_file_and_position(
    tmp_path: Path, name: str, old: str, new: str, message: str
) -> None:
    folder = edit(name, old, new, tmp_path)
    with pytest.raises(CrowdSourceError, match=message) as caught:
        list(iter_crowd_images(folder, "cvat"))
    assert "\n" not in str(caught.value)


def test_task_export_assignee_by_email_when_no_user_name(tmp_path: Path) -> None:
    text = (REPLICAS / "job_11_annotations.xml").read_text()
    text = text.replace("<job>", "<task>").replace("</job>", "</task>")
    text = text.replace("<username>alice</username>", "<username></username>")
    (tmp_path / "anna.xml").write_text(text)
    images: list[Any] = list(iter_crowd_images(tmp_path, "cvat"))
    assert [i.annotators for i in images] == [("alice@example.com",)] * 2


def test_a_job_whose_every_box_on_an_image_is_broken_is_left_out(tmp_path: Path) -> None:
    folder = edit(
        "job_13_annotations.xml", 'xtl="160.00" ytl="126.00"', 'xtl="" ytl="126.00"', tmp_path
    )
    rejects: list[Any] = []
    with open_crowd_source(folder, "cvat", on_reject=rejects.append) as source:
        img_a, img_b = source.images()
    assert [r.position for r in rejects] == ["image 'img_b.jpg' (id 1), shape 0"]
    assert img_b.annotators == ("alice", "job_12_annotations")  # not a "no" from carol
    assert img_a.annotators == ("alice", "job_12_annotations", "carol")
