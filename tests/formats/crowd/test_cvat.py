from __future__ import annotations

import io
import itertools
import json
import shutil
import tempfile
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gt_toolkit import iter_crowd_images
from gt_toolkit.cli import main
from gt_toolkit.consolidation.reconsolidate import reconsolidate
from gt_toolkit.errors import CrowdSourceError, GtToolkitError
from gt_toolkit.formats.crowd.cvat import _events
from gt_toolkit.formats.crowd.sources import open_crowd_source
from gt_toolkit.formats.detection_label import parse_image_size
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
        (
            "job_12_annotations.xml",
            'xtl="70.40" ytl="48.00" xbr="192.00"',
            'xtl="192.00" ytl="48.00" xbr="70.40"',
            r"job_12_annotations\.xml: image 'img_a\.jpg' \(id 0\), shape 0: malformed: xbr < xtl",
        ),
        (
            "job_13_annotations.xml",
            '<image id="1" name="img_b.jpg" width="640"',
            '<image id="1" name="img_b.jpg" width="1e20"',
            r"job_13_annotations\.xml: image 'img_b\.jpg' \(id 1\): malformed: .*2\*\*31",
        ),
    ],
    ids=["coordinate", "label", "size-conflict", "xml", "corners", "huge-size"],
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


def test_files_named_alike_without_assignee_are_told_apart_by_their_folder(
    tmp_path: Path,
) -> None:
    # job 12 names no assignee: three such replica jobs exported as <person>/export.xml
    text = (REPLICAS / "job_12_annotations.xml").read_text()
    for n, person in enumerate(("alice", "bob", "carl")):
        (tmp_path / person).mkdir()
        job = text.replace("<id>12</id>", f"<id>{12 + n}</id>", 1)  # each replica its own job
        (tmp_path / person / "export.xml").write_text(job)
    with open_crowd_source(tmp_path, "cvat") as source:
        images = list(source.images())
    assert [i.annotators for i in images] == [("alice/export", "bob/export", "carl/export")] * 2
    assert "superseded-answer" not in source.report.skipped


def test_one_assignee_in_two_job_files_is_one_annotator_who_may_not_answer_twice(
    tmp_path: Path,
) -> None:
    # alice's replica of a second job: img_b again (a duplicate) and a new frame img_c
    text = (REPLICAS / "job_11_annotations.xml").read_text()
    head, _, tail = text.partition('  <image id="0" name="img_a.jpg"')
    frames = tail[tail.index('  <image id="1"') :].replace('xtl="160.00"', 'xtl="100.00"')
    frames = frames.replace(
        "</annotations>",
        '  <image id="2" name="img_c.jpg" width="640" height="480">\n  </image>\n</annotations>',
    )
    (tmp_path / "job_11.xml").write_text(text)
    (tmp_path / "job_21.xml").write_text(head + frames)
    rejects: list[Any] = []
    with open_crowd_source(tmp_path, "cvat", on_reject=rejects.append) as source:
        images = list(source.images())
    assert [(i.key, i.annotators) for i in images] == [
        ("img_a.jpg", ("alice",)),
        ("img_b.jpg", ("alice",)),
        ("img_c.jpg", ("alice",)),
    ]
    assert [(r.source, r.position, r.reason.value) for r in rejects] == [
        (str(tmp_path / "job_21.xml"), "image 'img_b.jpg' (id 1)", "duplicate-answer")
    ]
    assert "job_11.xml: image 'img_b.jpg' (id 1)" in rejects[0].detail
    car = {"label": "car", "left": 160.0, "top": 120.0, "width": 160.0, "height": 120.0}
    assert images[1].boxes == ([car],)  # the first answer stays, not job 21's xtl="100.00"
    assert source.report.skipped == {"duplicate-answer": 1}


def test_a_cvat_for_video_export_is_an_error_not_an_annotator_who_drew_nothing(
    tmp_path: Path,
) -> None:
    text = (REPLICAS / "job_12_annotations.xml").read_text()
    frames = text[text.index("  <image") : text.index("</annotations>")]
    track = (
        '  <track id="0" label="car" source="manual">\n'
        '    <box frame="0" keyframe="1" outside="0" occluded="0" xtl="70.40" ytl="48.00"'
        ' xbr="192.00" ybr="144.00" z_order="0">\n    </box>\n  </track>\n'
    )
    folder = tmp_path / "jobs"
    shutil.copytree(REPLICAS, folder)
    (folder / "job_12_annotations.xml").write_text(text.replace(frames, track))
    with pytest.raises(CrowdSourceError, match=r'job_12_annotations\.xml: .*"CVAT for images'):
        list(iter_crowd_images(folder, "cvat"))


def test_a_byte_order_mark_is_read_past(tmp_path: Path) -> None:
    data = (REPLICAS / "job_11_annotations.xml").read_bytes()
    (tmp_path / "job_11.xml").write_bytes(b"\xef\xbb\xbf" + data)
    assert [i.annotators for i in iter_crowd_images(tmp_path, "cvat")] == [("alice",)] * 2


def test_a_file_not_in_utf8_is_one_line_naming_it(tmp_path: Path) -> None:
    text = (REPLICAS / "job_11_annotations.xml").read_text().replace("img_a", "img_\u00e9")
    (tmp_path / "job_11.xml").write_bytes(text.encode("latin-1"))  # declared utf-8
    with pytest.raises(
        CrowdSourceError, match=r"job_11\.xml: line 52, column \d+: not well-formed"
    ):
        list(iter_crowd_images(tmp_path, "cvat"))


def with_doctype(doctype: str, label: str = "car", prolog: str = "") -> str:
    """Job 11's export with a DOCTYPE after ``prolog`` and its first label written as ``label``."""
    text = (REPLICAS / "job_11_annotations.xml").read_text()
    text = text.replace('label="car"', f'label="{label}"', 1)
    return text.replace("<annotations>", f"{prolog}{doctype}\n<annotations>", 1)


def laughs(last: str) -> str:
    """Entities b to ``last``, each ten of the one before (``&e;``: 10,000 times ``&a;``)."""
    names = "abcdefghi"[: "abcdefghi".index(last) + 1]
    return "".join(f'<!ENTITY {n} "{("&" + p + ";") * 10}">' for p, n in itertools.pairwise(names))


@pytest.mark.parametrize(
    ("doctype", "label"),
    [
        ('<!DOCTYPE annotations [<!ENTITY c "car">]>', "&c;"),
        (f'<!DOCTYPE annotations [<!ENTITY a "{"a" * 1000}">{laughs("e")}]>', "&e;"),
        (f'<!DOCTYPE annotations [<!ENTITY a "aaaaaaaaaa">{laughs("i")}]>', "&i;"),
        ('<!DOCTYPE annotations [<!ENTITY c SYSTEM "file:///etc/hostname">]>', "&c;"),
        ('<!DOCTYPE annotations SYSTEM "http://127.0.0.1:9/cvat.dtd">', "car"),
        ('<!DOCTYPE annotations [<!ENTITY % p SYSTEM "file:///etc/hostname"> %p;]>', "car"),
    ],
    ids=["entity", "ten-megabyte-label", "billion-laughs", "external-entity", "dtd", "param"],
)
def test_a_doctype_is_refused_not_expanded(tmp_path: Path, doctype: str, label: str) -> None:
    # CVAT writes none; expat's own guard let a 1 KB entity tree become a 10 MB label
    (tmp_path / "job_11.xml").write_text(with_doctype(doctype, label))
    with pytest.raises(CrowdSourceError, match=r"job_11\.xml: a DOCTYPE .*refused"):
        list(iter_crowd_images(tmp_path, "cvat"))


def test_a_doctype_after_a_long_prolog_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    # past the first 64 KiB expat's guard would allow a hundred times the bytes before it
    doctype = f'<!DOCTYPE annotations [<!ENTITY a "{"a" * 1000}">{laughs("e")}]>'
    padding = f"<!-- {'x' * 200_000} -->\n"
    (tmp_path / "job_11.xml").write_text(with_doctype(doctype, "&e;", padding))
    with pytest.raises(CrowdSourceError, match=r"job_11\.xml: no root element in the first"):
        list(iter_crowd_images(tmp_path, "cvat"))


@pytest.mark.parametrize("rotation", ["ninety", "nan", "inf", ""])
def test_a_rotation_that_is_not_a_number_is_malformed_not_upright(
    tmp_path: Path, rotation: str
) -> None:
    folder = edit("job_11_annotations.xml", 'rotation="90.00"', f'rotation="{rotation}"', tmp_path)
    rejects: list[Any] = []
    with open_crowd_source(folder, "cvat", on_reject=rejects.append) as source:
        img_a = next(source.images())
    assert [(r.position, r.reason.value, r.detail) for r in rejects] == [
        ("image 'img_a.jpg' (id 0), shape 1", "malformed", "rotation is not a number")
    ]
    alice = img_a.boxes[img_a.annotators.index("alice")]
    assert [b["label"] for b in alice] == ["car"]  # the turned person box is not read upright


def zipped(folder: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    folder.mkdir()
    with zipfile.ZipFile(folder / "job_11.zip", "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return folder / "job_11.zip"


def test_a_damaged_archive_is_one_line_naming_it(tmp_path: Path) -> None:
    data = (REPLICAS / "job_11_annotations.xml").read_bytes()
    path = zipped(tmp_path / "jobs", {"annotations.xml": data})
    raw = bytearray(path.read_bytes())
    at = raw.index(b"annotations.xml") + len("annotations.xml") + 200  # compressed bytes
    raw[at : at + 20] = bytes(20)
    path.write_bytes(bytes(raw))
    with pytest.raises(CrowdSourceError, match=r"job_11\.zip: broken archive") as caught:
        list(iter_crowd_images(tmp_path / "jobs", "cvat"))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("method", [zipfile.ZIP_LZMA, zipfile.ZIP_BZIP2], ids=["lzma", "bzip2"])
def test_a_damaged_member_compressed_otherwise_is_one_line_naming_the_archive(
    tmp_path: Path, method: int
) -> None:
    # a zip re-packed by another tool: its damaged member raised lzma's LZMAError (a
    # traceback) or bz2's bare OSError('Invalid data stream'), which named no file
    data = (REPLICAS / "job_11_annotations.xml").read_bytes()
    path = zipped(tmp_path / "jobs", {"annotations.xml": data}, method)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"annotations.xml") + len("annotations.xml") + 100  # compressed bytes
    raw[at : at + 20] = bytes(20)
    path.write_bytes(bytes(raw))
    with pytest.raises(GtToolkitError, match=r"job_11\.zip: ") as caught:
        list(iter_crowd_images(tmp_path / "jobs", "cvat"))
    assert "\n" not in str(caught.value)


def test_an_export_with_images_is_not_read_into_memory(tmp_path: Path) -> None:
    # "CVAT for images 1.1" with images: the frames sit beside annotations.xml in the zip
    data = (REPLICAS / "job_11_annotations.xml").read_bytes()
    frames = {f"images/img_{n}.jpg": bytes(4_000_000) for n in range(5)}
    zipped(tmp_path / "jobs", {**frames, "annotations.xml": data}, zipfile.ZIP_STORED)
    tracemalloc.start()
    try:
        images = list(iter_crowd_images(tmp_path / "jobs", "cvat"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [i.annotators for i in images] == [("alice",)] * 2
    assert peak < 5_000_000, peak  # the archive is 20 MB


def test_an_archive_on_s3_reads_like_a_local_one(
    s3_client: Any, store: Any, bucket: str, tmp_path: Path
) -> None:
    data = (REPLICAS / "job_11_annotations.xml").read_bytes()
    path = zipped(tmp_path / "jobs", {"annotations.xml": data})
    s3_client.put_object(Bucket=bucket, Key="jobs/job_11.zip", Body=path.read_bytes())
    with open_crowd_source(f"s3://{bucket}/jobs", "cvat", store=store) as source:
        remote = list(source.images())
    assert remote == list(iter_crowd_images(tmp_path / "jobs", "cvat"))
    assert [i.annotators for i in remote] == [("alice",)] * 2


class Trickle(io.RawIOBase):
    """A stream that gives at most 16 bytes a read (a pipe, a socket), before its end too."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        piece, self._data = self._data[:16], self._data[16:]
        return piece


def test_a_doctype_is_found_in_a_stream_that_gives_a_little_at_a_time() -> None:
    text = with_doctype('<!DOCTYPE annotations [<!ENTITY c "car">]>', "&c;", "<!-- job 11 -->")
    with pytest.raises(CrowdSourceError, match=r"job\.xml: a DOCTYPE"):
        list(_events(Trickle(text.encode()), "job.xml"))


def test_an_archive_beside_its_extracted_copy_is_refused_not_two_annotators(
    tmp_path: Path,
) -> None:
    # job 12 names no assignee; unzipped where it lies, it was read as two annotators
    # (job_12.zip, job_12/annotations.xml) whose two votes were one person's boxes
    folder = tmp_path / "jobs"
    folder.mkdir()
    with zipfile.ZipFile(folder / "job_12.zip", "w") as archive:
        archive.write(REPLICAS / "job_12_annotations.xml", "annotations.xml")
    (folder / "job_12").mkdir()
    shutil.copy(REPLICAS / "job_12_annotations.xml", folder / "job_12" / "annotations.xml")
    shutil.copy(REPLICAS / "job_13_annotations.xml", folder / "job_13.xml")
    with pytest.raises(
        CrowdSourceError, match=r"names the same annotator 'job_12' as .*job_12\.zip"
    ):
        list(iter_crowd_images(folder, "cvat"))


def test_a_job_saved_twice_without_an_assignee_is_refused_not_two_annotators(
    tmp_path: Path,
) -> None:
    # a browser saves a second download as "... (1)": job 12 (no assignee) twice had two votes
    folder = tmp_path / "jobs"
    shutil.copytree(REPLICAS, folder)
    shutil.copy(folder / "job_12_annotations.xml", folder / "job_12_annotations (1).xml")
    with pytest.raises(
        CrowdSourceError,
        match=r"job_12_annotations\.xml: job 12 is exported in .*job_12_annotations \(1\)\.xml",
    ):
        list(iter_crowd_images(folder, "cvat"))


def test_one_job_saved_twice_with_its_assignee_is_one_annotator_answering_twice(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "jobs"
    shutil.copytree(REPLICAS, folder)
    shutil.copy(folder / "job_11_annotations.xml", folder / "job_11_annotations (1).xml")
    rejects: list[Any] = []
    with open_crowd_source(folder, "cvat", on_reject=rejects.append) as source:
        images = list(source.images())
    assert [i.annotators for i in images] == [("alice", "job_12_annotations", "carol")] * 2
    assert {r.reason.value for r in rejects} == {"duplicate-answer"} and len(rejects) == 2


def test_elements_the_reader_does_not_know_are_not_kept(tmp_path: Path) -> None:
    # only <meta> and <image> were let go once read: anything else under the root stayed
    text = (REPLICAS / "job_11_annotations.xml").read_text()
    notes = "<note>x</note>" * 100_000
    (tmp_path / "job_11.xml").write_text(text.replace("</meta>", f"</meta>{notes}", 1))
    tracemalloc.start()
    try:
        images = list(iter_crowd_images(tmp_path, "cvat"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [i.annotators for i in images] == [("alice",)] * 2
    assert peak < 3_000_000, peak


def test_a_label_name_with_a_space_is_declared_as_the_boxes_spell_it(tmp_path: Path) -> None:
    # the declared name was stripped and the boxes' was not: "car " boxes were unknown labels
    folder = tmp_path / "jobs"
    shutil.copytree(REPLICAS, folder)
    for path in folder.iterdir():
        text = path.read_text().replace("<name>car</name>", "<name>car </name>")
        path.write_text(text.replace('label="car"', 'label="car "'))
    out = tmp_path / "out.manifest"
    with open_crowd_source(folder, "cvat") as source:
        report = reconsolidate(source, out, image_prefix="s3://bkt/photos/", worker_model=None)
    boxes = consolidated_boxes([json.loads(x) for x in out.read_text().splitlines()])
    assert report.labels == ["car ", "person"]
    assert [b[0] for b in boxes["s3://bkt/photos/img_a.jpg"]] == ["car ", "person"]
    assert report.complete


def test_skeleton_point_and_tag_labels_are_not_box_classes(tmp_path: Path) -> None:
    # CVAT 2.x lists a skeleton's points as labels with a <parent>, and tag-only labels with
    # <type>tag</type>: declared as box labels they were categories of the COCO output
    # (nose, blurry) that no box can have
    folder = tmp_path / "jobs"
    shutil.copytree(REPLICAS, folder)
    extra = (
        "<label><name>pose</name><type>skeleton</type></label>"
        "<label><name>nose</name><type>points</type><parent>pose</parent></label>"
        "<label><name>blurry</name><type>tag</type></label>"
        "<label><name>truck</name><type>any</type></label>"
        # a label CVAT draws only as another shape: no box carries it either
        "<label><name>road</name><type>polygon</type></label>"
        "<label><name>lane</name><type>polyline</type></label>"
        "<label><name>wheel</name><type>ellipse</type></label>"
        "<label><name>mask</name><type>mask</type></label>"
        "<label><name>bus</name><type>rectangle</type></label>"
        "<label><name>van</name><type>bbox</type></label></labels>"
    )
    for path in folder.iterdir():
        text = path.read_text()
        assert text.count("</labels>") == 1
        path.write_text(text.replace("</labels>", extra))
    with open_crowd_source(folder, "cvat") as source:
        assert source.labels == ["car", "person", "truck", "bus", "van"]


@pytest.mark.parametrize("encoding", ["bogus", "shift_jis", "utf-32"])
def test_an_encoding_expat_cannot_read_is_one_line_naming_the_file(
    tmp_path: Path, encoding: str
) -> None:
    # a LookupError or ValueError traceback out of the parser
    text = (REPLICAS / "job_11_annotations.xml").read_text()
    (tmp_path / "job_11.xml").write_text(text.replace('"utf-8"', f'"{encoding}"', 1))
    with pytest.raises(CrowdSourceError, match=r"job_11\.xml: an encoding expat cannot read"):
        list(iter_crowd_images(tmp_path, "cvat"))


JOB_11 = (REPLICAS / "job_11_annotations.xml").read_bytes()
PIECES = [b'"', b"<", b">", b"&", b"=", b"\xff", b"1e999", b"nan", b"<box/>", b'encoding="x"']


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(
            st.integers(0, len(JOB_11) - 1),
            st.integers(0, 20),
            st.one_of(st.binary(max_size=3), st.sampled_from(PIECES)),
        ),
        min_size=1,
        max_size=4,
    ),
    zipped=st.booleans(),
)
def test_a_damaged_export_is_read_or_refused_in_one_line(
    edits: list[tuple[int, int, bytes]], zipped: bool
) -> None:
    data = bytearray(JOB_11)
    for at, cut, new in edits:
        data[at : at + cut] = new
    with tempfile.TemporaryDirectory() as folder:
        if zipped:
            with zipfile.ZipFile(Path(folder) / "job_11.zip", "w") as archive:
                archive.writestr("annotations.xml", bytes(data))
        else:
            (Path(folder) / "job_11.xml").write_bytes(bytes(data))
        rejects: list[Any] = []
        try:
            with open_crowd_source(folder, "cvat", on_reject=rejects.append) as source:
                images = list(source.images())
        except CrowdSourceError as exc:
            assert "\n" not in str(exc) and "job_11" in str(exc)
            return
        assert all(len(i.annotators) == len(i.boxes) for i in images)
        assert source.report.rejected == len(rejects)


def test_a_parent_job_s_export_after_a_consensus_merge_is_refused_not_an_annotator(
    tmp_path: Path,
) -> None:
    # CVAT's merge writes the replicas' merged shapes into their parent job, each marked
    # source="consensus"; exported beside the replicas, the parent job was one more
    # annotator ("lead") who agreed with every majority: 4 answers to an image of 3 people
    folder = tmp_path / "jobs"
    shutil.copytree(REPLICAS, folder)
    shutil.copy(CROWD / "cvat-consensus" / "job_10_annotations.xml", folder)
    with pytest.raises(
        CrowdSourceError,
        match=r"job_10_annotations\.xml: image .img_a\.jpg. \(id 0\), shape 0:"
        r' <box source="consensus">.* parent job\'s export, not an annotator',
    ):
        list(iter_crowd_images(folder, "cvat"))
    # through the command: no output, exit 1, the file named
    out = tmp_path / "out.manifest"
    args = ["consolidate", str(folder), "--from", "cvat", "--image-prefix", "s3://bkt/p/"]
    assert main([*args, "-o", str(out)]) == 1
    assert not out.exists()


def test_a_job_of_other_shapes_only_on_an_image_abstains_and_a_tag_drew_nothing(
    tmp_path: Path,
) -> None:
    # alice outlined img_b's car as a polygon: read as a job that drew nothing there, a vote
    # against job 12's and carol's boxes; carol only tagged img_a, which places nothing
    polygon = (
        '<polygon label="car" source="manual" occluded="1"'
        ' points="160.00,120.00;320.00,120.00;320.00,240.00;160.00,240.00" z_order="0">'
        '\n      <attribute name="parked">true</attribute>\n    </polygon>'
    )
    box = (
        '<box label="car" source="manual" occluded="1" xtl="160.00" ytl="120.00"'
        ' xbr="320.00" ybr="240.00" z_order="0">\n'
        '      <attribute name="parked">true</attribute>\n    </box>'
    )
    folder = edit("job_11_annotations.xml", box, polygon, tmp_path)
    with open_crowd_source(folder, "cvat") as source:
        img_a, img_b = source.images()
    assert img_b.annotators == ("job_12_annotations", "carol")
    assert img_a.annotators == ("alice", "job_12_annotations", "carol")  # carol's tag: no box
    assert source.report.abstained == {"not-a-box": 1}
    assert dict(source.report.skipped) == {"not-a-box": 3}


def test_a_label_of_another_shape_type_that_boxes_carry_stays_a_box_class(
    tmp_path: Path,
) -> None:
    # CVAT's API and imports do not hold a shape to its label's type: a label typed polygon
    # that boxes carry all the same was left out of the label list, and every such box was
    # an unknown-label drop (the whole run refused where most boxes had one)
    folder = tmp_path / "jobs"
    shutil.copytree(REPLICAS, folder)
    for path in folder.iterdir():
        text = path.read_text()
        typed = "<name>person</name>\n          <color>#33ddff</color>\n          <type>"
        assert text.count(typed + "rectangle</type>") == 1
        text = text.replace(typed + "rectangle</type>", typed + "polygon</type>")
        path.write_text(text.replace("</labels>", "<label><name>road</name><type>polygon"
                                     "</type></label></labels>"))  # fmt: skip
    with open_crowd_source(folder, "cvat") as source:
        carried = {b["label"] for image in source.images() for a in image.boxes for b in a}
        assert "person" in carried
        assert source.labels == ["car", "person"]  # road: no box carries it
    found = []
    for jobs in (REPLICAS, folder):
        out = tmp_path / f"{jobs.name}.manifest"
        argv = ["consolidate", str(jobs), "--from", "cvat", "-o", str(out)]
        assert main([*argv, "--image-prefix", "s3://bkt-x/x/"]) == 0
        found.append(consolidated_boxes([json.loads(x) for x in out.read_text().splitlines()]))
    assert found[0] == found[1] and found[0]


def _read_width(folder: Path, width: str) -> tuple[list[Any], list[Any]]:
    """The images' sizes and the rejects, alice's img_b ``width`` written as given."""
    text = (REPLICAS / "job_11_annotations.xml").read_text()
    old = '<image id="1" name="img_b.jpg" width="640"'
    assert old in text
    (folder / "alice.xml").write_text(text.replace(old, old.replace("640", width)), "utf-8")
    rejects: list[Any] = []
    with open_crowd_source(folder, "cvat", on_reject=rejects.append) as source:
        images = list(source.images())
    return [i.image_size for i in images], rejects


@pytest.mark.parametrize("width", [" 640", "640 ", "６４０", "٦٤٠", "6_40", "+640", "640.0", "1e3"])
def test_an_image_size_in_another_spelling_than_digits_is_malformed(
    tmp_path: Path, width: str
) -> None:
    # float() took " 640", "６４０" (full-width digits), "6_40" and "1e3", where the manifest
    # and answers readers (and every JSON reader) refuse a size so written: one rule now
    sizes, rejects = _read_width(tmp_path, width)
    assert [(r.position, r.reason.value) for r in rejects] == [
        ("image 'img_b.jpg' (id 1)", "malformed")
    ]
    assert sizes == [{"width": 640, "height": 480}]  # img_a; img_b's one record is rejected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(width=st.text(st.sampled_from("0123456789٠٦６ .e+-_"), min_size=1, max_size=12))
def test_cvat_reads_an_image_side_as_the_manifest_reader_reads_its_text(width: str) -> None:
    # the one size rule: a CVAT width is read where a manifest's "width" string is, and as
    # the same number; refused (malformed) where the manifest refuses it
    try:
        want = parse_image_size({"width": width, "height": 480})
    except ValueError:
        want = None
    with tempfile.TemporaryDirectory() as folder:
        sizes, rejects = _read_width(Path(folder), width)
    assert sizes[1:] == ([] if want is None else [want])
    assert len(rejects) == (want is None)


@pytest.mark.parametrize(
    ("xtl", "read"),
    [
        ("70.40", 70.4), ("7.04e1", 70.4), ("+70.4", 70.4),
        (" 70.40", None), ("70.40 ", None), ("７０.４０", None), ("٧٠.٤", None), ("7_0.40", None),
        ("inf", None), ("-infinity", None), ("0x46", None),
    ],
)  # fmt: skip
def test_a_coordinate_in_another_spelling_than_a_decimal_number_is_malformed(
    tmp_path: Path, xtl: str, read: float | None
) -> None:
    # float() took " 70.40", "７０.４０" (full-width digits) and "7_0.40" as 70.4: boxes here
    # that no JSON reader would read, where CVAT writes "70.40"
    folder = edit("job_12_annotations.xml", 'xtl="70.40"', f'xtl="{xtl}"', tmp_path)
    rejects: list[Any] = []
    with open_crowd_source(folder, "cvat", on_reject=rejects.append) as source:
        images = list(source.images())
    if read is None:
        assert [(r.position, r.reason.value) for r in rejects] == [
            ("image 'img_a.jpg' (id 0), shape 0", "malformed")
        ]
        return
    assert not rejects
    job_12 = images[0].annotators.index("job_12_annotations")  # no assignee: the file's stem
    assert images[0].boxes[job_12][0]["left"] == pytest.approx(read)
