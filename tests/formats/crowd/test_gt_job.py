from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit import iter_crowd_images
from gt_toolkit.errors import CrowdSourceError, ValidationError
from gt_toolkit.formats.crowd.gt_job import parse_worker_response
from gt_toolkit.formats.crowd.report import CrowdReject
from gt_toolkit.formats.crowd.sources import open_crowd_source
from tests.helpers import SAMPLES

JOB = SAMPLES / "job-output" / "samples-balls"
MANIFEST = JOB / "manifests" / "output" / "output.manifest"
RESPONSES = JOB / "annotations" / "worker-response" / "iteration-1"


def test_every_manifest_line_in_order_with_its_workers() -> None:
    with open_crowd_source(JOB) as source:
        items = list(source.items())
        assert source.labels == ["ball"]
    refs = [json.loads(x)["source-ref"] for x in MANIFEST.read_text().splitlines()]
    assert [i.image.key for i in items] == refs
    first = items[0]
    assert first.record is not None and first.record["source-ref"] == refs[0]
    assert len(first.image.annotators) == 5 and len(first.time_spent) == 5
    assert first.image.image_size == {"width": 160, "height": 120}
    # a second pass reads the same and counts nothing twice
    assert [i.image for i in source.items()] == [i.image for i in items]
    assert (source.report.images, source.report.answers) == (40, 200)


def test_a_later_iteration_answers_its_object(tmp_path: Path) -> None:
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    later = job / "annotations" / "worker-response" / "iteration-2" / "3"
    later.mkdir(parents=True)
    doc = json.loads(next((RESPONSES / "3").iterdir()).read_text())
    doc["answers"] = doc["answers"][:1]
    (later / "again.json").write_text(json.dumps(doc))
    images = list(iter_crowd_images(job))
    assert len(images[3].annotators) == 1 and len(images[4].annotators) == 5


def test_later_passes_replay_the_first_without_reading_the_job_again(tmp_path: Path) -> None:
    # Offline consolidation makes two passes (fit the worker model, then consolidate): the
    # second must see exactly what the first read, and must not fetch the job again.
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    rejects: list[CrowdReject] = []
    with open_crowd_source(job, on_reject=rejects.append) as source:
        first = list(source.items(again=True))
        shutil.rmtree(job)
        again, third = list(source.items()), list(source.items())
        spool = source._spool
        assert spool is not None and Path(spool).is_file()
    assert not Path(spool).exists()  # closing the source deletes its spool
    assert again == first and third == first
    assert all(i.failure is None for i in first) and not rejects
    assert (source.report.images, source.report.answers) == (40, 200)


def test_a_pass_not_told_another_follows_keeps_no_spool(tmp_path: Path) -> None:
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    with open_crowd_source(job) as source:
        first = list(source.items())
        assert source._spool is None
        again = list(source.items())  # read from the job again
    assert again == first


def test_a_spool_that_cannot_be_written_costs_a_second_read_not_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a full temporary folder: the spool is only a saving, the pass goes on without it
    import gt_toolkit.formats.crowd.base as base

    real_dump, calls = base.pickle.dump, [0]

    def full_disk(*args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise OSError(28, "No space left on device")
        real_dump(*args, **kwargs)

    monkeypatch.setattr(base.pickle, "dump", full_disk)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # its own: tests run in parallel
    with open_crowd_source(JOB) as source:
        first = list(source.items(again=True))
        assert source._spool is None and calls[0] == 3  # no more writes after the failure
        assert list(source.items()) == first  # read from the job again
    assert len(first) == 40
    assert not list(tmp_path.glob("gt-toolkit-crowd-*"))


def test_closing_the_source_mid_pass_deletes_its_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # its own: tests run in parallel
    with open_crowd_source(JOB) as source:
        items = source.items(again=True)
        next(items)
        assert len(list(tmp_path.glob("gt-toolkit-crowd-*"))) == 1
    assert not list(tmp_path.glob("gt-toolkit-crowd-*"))
    assert len(list(items)) == 39 and source._spool is None  # finishing later keeps none


def test_an_answer_unreadable_after_an_unfinished_first_pass_is_reported(tmp_path: Path) -> None:
    # A first pass left unfinished leaves no spool: the next pass reads the job again, and a
    # read that fails only then must not vanish.
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    rejects: list[CrowdReject] = []
    with open_crowd_source(job, on_reject=rejects.append) as source:
        partial = source.items(again=True)
        assert next(partial).failure is None
        partial.close()  # type: ignore[attr-defined]
        assert source._spool is None
        broken = list((job / "annotations" / "worker-response" / "iteration-1" / "5").iterdir())
        for path in broken:
            path.write_text("{not json")
        again = list(source.items())
        third = list(source.items())
    assert again[5].failure is not None and third[5].failure is not None
    assert [i for i, item in enumerate(again) if item.failure] == [5]
    assert source.report.failed_images == 1  # counted once, on the pass that saw it
    assert sorted(r.source for r in rejects) == sorted(str(p) for p in broken)
    assert all(r.reason == "unreadable-answer" for r in rejects)


def test_size_conflict_between_workers_names_both(tmp_path: Path) -> None:
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    path = next((job / "annotations" / "worker-response" / "iteration-1" / "2").iterdir())
    doc = json.loads(path.read_text())
    doc["answers"][1]["answerContent"]["boundingBox"]["inputImageProperties"]["width"] = 999
    path.write_text(json.dumps(doc))
    with pytest.raises(CrowdSourceError, match=r"manifest line 3: image .* is 999x\d+ for worker"):
        list(iter_crowd_images(job))


def test_worker_answering_twice_keeps_the_last_and_counts_it(tmp_path: Path) -> None:
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    path = next((job / "annotations" / "worker-response" / "iteration-1" / "0").iterdir())
    doc = json.loads(path.read_text())
    repeat = json.loads(json.dumps(doc["answers"][0]))
    repeat["answerContent"]["boundingBox"]["boundingBoxes"] = None
    (path.parent / "zz-repeat.json").write_text(json.dumps({"answers": [repeat]}))
    with open_crowd_source(job) as source:
        first = next(source.images())
        assert len(first.annotators) == 5 and first.boxes[0] == []
        list(source.images())
    assert source.report.skipped["superseded-answer"] == 1


@pytest.mark.parametrize("missing", [None, "absent"])
def test_answers_without_a_worker_id_are_each_their_own(
    tmp_path: Path, missing: str | None
) -> None:
    # "workerId": null was read as a worker named "None": a second such answer on an object
    # superseded the first (one answer lost, counted as a skip), as if one worker answered twice
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    path = next((job / "annotations" / "worker-response" / "iteration-1" / "0").iterdir())
    doc = json.loads(path.read_text())
    for answer in doc["answers"][:2]:
        if missing is None:
            answer["workerId"] = None
        else:
            del answer["workerId"]
    path.write_text(json.dumps(doc))
    with open_crowd_source(job) as source:
        first = next(source.images())
        list(source.images())
    assert len(first.annotators) == 5 and "None" not in first.annotators
    assert [a.startswith("anonymous-") for a in first.annotators].count(True) == 2
    assert not source.report.skipped


def test_answers_without_a_worker_id_on_two_objects_are_two_workers(tmp_path: Path) -> None:
    # every object's first null-id answer was named 'anonymous-0': ten unknown people were
    # one worker of ten images in the quality table and the worker model
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    for obj in ("0", "1"):
        path = next((job / "annotations" / "worker-response" / "iteration-1" / obj).iterdir())
        doc = json.loads(path.read_text())
        doc["answers"][0]["workerId"] = None
        path.write_text(json.dumps(doc))
    with open_crowd_source(job) as source:
        items = list(source.images())
    unknown = [{a for a in item.annotators if a.startswith("anonymous")} for item in items[:2]]
    assert all(len(names) == 1 for names in unknown)
    assert not unknown[0] & unknown[1]
    assert not source.report.skipped


def write_folder(folder: Path) -> None:
    folder.mkdir()
    for obj in sorted(RESPONSES.iterdir(), key=lambda p: int(p.name)):
        for f in obj.iterdir():
            for answer in json.loads(f.read_text())["answers"]:
                line = {"datasetObjectId": obj.name, "answerContent": answer["answerContent"]}
                with (folder / f"{answer['workerId']}.jsonl").open("a") as fh:
                    fh.write(json.dumps(line) + "\n")


def test_answers_folder_bad_line_and_orphans(tmp_path: Path) -> None:
    folder = tmp_path / "answers"
    write_folder(folder)
    late = folder / "zz-late.jsonl"
    orphan = json.dumps({"datasetObjectId": "99", "boundingBoxes": []})
    late.write_text(orphan + "\n{not json\n")
    rejects: list[CrowdReject] = []
    with open_crowd_source(
        folder, "answers-folder", manifest=MANIFEST, on_reject=rejects.append
    ) as source:
        images = list(source.images())
    assert len(images) == 40
    # the orphan answer is rejected as a record: its file, line and text (it was named by
    # the folder and its object id only, its answer not kept)
    assert [(r.source, r.position, r.reason.value) for r in rejects] == [
        (str(late), "line 1", "unknown-image"),
        (str(late), "line 2", "malformed"),
    ]
    assert rejects[0].raw == orphan and "datasetObjectId 99" in rejects[0].detail
    with pytest.raises(CrowdSourceError, match=r"zz-late\.jsonl: line 1: unknown-image: dataset"):
        list(iter_crowd_images(folder, "answers-folder", manifest=MANIFEST))


@pytest.mark.parametrize(
    "line",
    [
        {"datasetObjectId": "0"},
        {"datasetObjectId": "0", "answerContent": {}},
        {"datasetObjectId": "0", "boxes": [{"label": "ball", "left": 1, "top": 1, "width": 9}]},
        {"datasetObjectId": "0", "answerContent": None, "inputImageProperties": {"width": 9}},
    ],
    ids=["nothing", "empty-content", "misspelt-key", "null-content"],
)
def test_answers_folder_line_without_an_answer_is_rejected(
    tmp_path: Path, line: dict[str, Any]
) -> None:
    # such a line was read as a worker who drew nothing on object 0: exit 0, its boxes
    # (if any, under another key) gone unsaid
    folder = tmp_path / "answers"
    write_folder(folder)
    odd = folder / "zz-odd.jsonl"
    odd.write_text(json.dumps(line) + "\n")
    rejects: list[CrowdReject] = []
    with open_crowd_source(
        folder, "answers-folder", manifest=MANIFEST, on_reject=rejects.append
    ) as source:
        first = next(source.images())
    assert "zz-odd" not in first.annotators and len(first.annotators) == 5
    assert [(r.source, r.position, r.reason.value) for r in rejects] == [
        (str(odd), "line 1", "malformed")
    ]


@pytest.mark.parametrize(
    "object_id",
    ["-1", 1.9, "1.9", -1, True, "", "1e3", " 3", "\u0663"],
    ids=["neg-str", "float", "float-str", "neg-int", "bool", "empty", "exp", "space", "arabic"],
)
def test_answers_folder_object_id_must_be_a_line_number(tmp_path: Path, object_id: Any) -> None:
    folder = tmp_path / "answers"
    write_folder(folder)
    box = {"label": "ball", "left": 10, "top": 10, "width": 50, "height": 50}
    bad = {"datasetObjectId": object_id, "boundingBoxes": [box]}
    (folder / "zz-odd.jsonl").write_text(json.dumps(bad) + "\n")
    rejects: list[CrowdReject] = []
    with open_crowd_source(
        folder, "answers-folder", manifest=MANIFEST, on_reject=rejects.append
    ) as source:
        images = list(source.images())
    assert len(images) == 40 and "zz-odd" not in source.report.annotators
    assert [(r.source, r.position, r.reason.value) for r in rejects] == [
        (str(folder / "zz-odd.jsonl"), "line 1", "malformed")
    ]
    assert "datasetObjectId" in rejects[0].detail


def test_answers_folder_id_and_source_ref_must_name_one_line(tmp_path: Path) -> None:
    """A line with a datasetObjectId and a source-ref that is another line's (answers
    numbered by another order of the manifest) went to the image the number names: the
    boxes drawn on the wrong picture, exit 0. One that agrees is read, a repeated ref too."""
    folder = tmp_path / "answers"
    write_folder(folder)
    refs = [json.loads(line)["source-ref"] for line in MANIFEST.read_text().splitlines()]
    box = {"label": "ball", "left": 10, "top": 10, "width": 50, "height": 50}
    astray = {"datasetObjectId": "1", "source-ref": refs[2], "boundingBoxes": [box]}
    agrees = {"datasetObjectId": 3, "source-ref": refs[3], "boundingBoxes": [box]}
    (folder / "zz-two.jsonl").write_text(json.dumps(astray) + "\n" + json.dumps(agrees) + "\n")
    rejects: list[CrowdReject] = []
    with open_crowd_source(
        folder, "answers-folder", manifest=MANIFEST, on_reject=rejects.append
    ) as source:
        images = list(source.images())
    assert ["zz-two" in i.annotators for i in images[:4]] == [False, False, False, True]
    assert [(r.source, r.position, r.reason.value) for r in rejects] == [
        (str(folder / "zz-two.jsonl"), "line 1", "malformed")
    ]
    assert refs[2] in rejects[0].detail and rejects[0].raw == json.dumps(astray)

    # a source-ref spelled as the index's name for a line's key names no line
    odd = {"source-ref": "\x00line 1", "boundingBoxes": [box]}
    (folder / "zz-two.jsonl").write_text(json.dumps(odd) + "\n")
    rejects.clear()
    with open_crowd_source(
        folder, "answers-folder", manifest=MANIFEST, on_reject=rejects.append
    ) as source:
        assert len(list(source.images())) == len(refs)
    assert [r.reason.value for r in rejects] == ["malformed"]

    # a manifest that lists one image twice: each of its lines is that image's
    twice = tmp_path / "twice.manifest"
    twice.write_text(MANIFEST.read_text().splitlines()[0] + "\n" + MANIFEST.read_text())
    again = {"datasetObjectId": "0", "source-ref": refs[0], "boundingBoxes": [box]}
    (folder / "zz-two.jsonl").write_text(json.dumps(again) + "\n")
    images = list(iter_crowd_images(folder, "answers-folder", manifest=twice))
    assert ["zz-two" in i.annotators for i in images[:2]] == [True, False]


def test_answers_folder_one_worker_in_two_files_is_a_duplicate_not_superseded(
    tmp_path: Path,
) -> None:
    # a/zed.jsonl and b/zed.jsonl (or a line whose workerId names zed in another file) have
    # no order between them: the file read second won and zed's first answer was counted
    # superseded, a skip, exit 0 with zed's box gone
    folder = tmp_path / "answers"
    write_folder(folder)
    box = {"label": "ball", "left": 10, "top": 10, "width": 50, "height": 50}
    drew = json.dumps({"datasetObjectId": "0", "boundingBoxes": [box]})
    again = json.dumps({"datasetObjectId": "0", "boundingBoxes": [dict(box, left=12)]})
    nothing = json.dumps({"datasetObjectId": "0", "boundingBoxes": []})
    (folder / "a").mkdir()
    (folder / "b").mkdir()
    (folder / "a" / "zed.jsonl").write_text(drew + "\n" + again + "\n")  # one file: later wins
    (folder / "b" / "zed.jsonl").write_text(nothing + "\n")
    named = json.dumps({"datasetObjectId": "0", "workerId": "zed", "boundingBoxes": []})
    (folder / "zz-other.jsonl").write_text(named + "\n")
    rejects: list[CrowdReject] = []
    with open_crowd_source(
        folder, "answers-folder", manifest=MANIFEST, on_reject=rejects.append
    ) as source:
        first = next(source.images())
    assert first.boxes[first.annotators.index("zed")] == [dict(box, left=12)]
    first_at = f"{folder / 'a' / 'zed.jsonl'}: line 1"
    assert [(r.source, r.position, r.reason.value) for r in rejects] == [
        (str(folder / "b" / "zed.jsonl"), "line 1", "duplicate-answer"),
        (str(folder / "zz-other.jsonl"), "line 1", "duplicate-answer"),
    ]
    assert all(first_at in r.detail for r in rejects) and rejects[0].raw == nothing
    assert source.report.skipped["superseded-answer"] == 1  # a/zed.jsonl's line 1
    with pytest.raises(CrowdSourceError, match=r"b/zed\.jsonl: line 1: duplicate-answer"):
        list(iter_crowd_images(folder, "answers-folder", manifest=MANIFEST))


def test_answers_folder_object_id_may_be_an_int(tmp_path: Path) -> None:
    folder = tmp_path / "answers"
    write_folder(folder)
    box = {"label": "ball", "left": 10, "top": 10, "width": 50, "height": 50}
    (folder / "zz-int.jsonl").write_text(json.dumps({"datasetObjectId": 1, "boundingBoxes": [box]}))
    images = list(iter_crowd_images(folder, "answers-folder", manifest=MANIFEST))
    assert ["zz-int" in i.annotators for i in images[:3]] == [False, True, False]


def test_options_a_kind_does_not_read_are_refused() -> None:
    with pytest.raises(ValidationError, match="data_key applies to label-studio only"):
        open_crowd_source(JOB, data_key="photo")
    with pytest.raises(ValidationError, match="answers-folder needs the manifest"):
        open_crowd_source(JOB, "answers-folder")
    with pytest.raises(ValidationError, match="manifest applies to gt-job and answers-folder"):
        open_crowd_source(JOB, "cvat", manifest=MANIFEST)
    with pytest.raises(ValidationError, match="unknown crowd source 'yolo'"):
        open_crowd_source(JOB, "yolo")


def test_parse_worker_response_string_content_and_errors() -> None:
    doc = {
        "answers": [
            {"workerId": "w", "answerContent": json.dumps({"boundingBox": {"boundingBoxes": None}})}
        ]
    }
    assert parse_worker_response(doc)[0].worker_id == "w"
    with pytest.raises(Exception, match="answers"):
        parse_worker_response({"x": 1})


@pytest.mark.parametrize(
    ("kind", "copy"),
    [
        ("answers-folder", None),
        ("coco-per-annotator", "coco-per-annotator"),
        ("cvat", "cvat-replicas"),
    ],
)
def test_an_export_file_whose_name_is_not_utf8_is_refused_by_name(
    tmp_path: Path, kind: str, copy: str | None
) -> None:
    """A file of a folder source named in bytes that are not UTF-8 (a Latin-1 'josé') is
    read as surrogates: its name is the annotator (answers folder, COCO per annotator) and
    every reject names its file, and the run stopped with a traceback where one was first
    stored (the answer index) or written (the rejects file: 'str is not valid UTF-8').
    be82245 refused such an argument only. The folder is refused, naming the file."""
    import os

    from gt_toolkit.errors import StorageError
    from tests.helpers import CROWD

    folder = tmp_path / "export"
    if copy is None:
        write_folder(folder)
    else:
        shutil.copytree(CROWD / copy, folder)
    first = sorted(folder.iterdir())[0]
    first.rename(folder / os.fsdecode(b"jos\xe9" + first.suffix.encode()))
    with pytest.raises(StorageError, match=r"jos\\xe9.*not UTF-8"):
        list(iter_crowd_images(folder, kind, manifest=MANIFEST if copy is None else None))


def test_a_source_ref_spelled_as_a_line_alias_names_no_line_whatever_that_line_holds(
    tmp_path: Path,
) -> None:
    """cccf4cc took a ref's match only where it was a line number: but a ref spelled as the
    index's name for line 3's key ('\\u0000line 3') resolved to that key, and where line 3
    is a text line of digits ('"source": "7"'), the digits passed as a line number: the
    answer's box was drawn on line 7's image, exit 0. Refs and line keys are named apart."""
    folder = tmp_path / "answers"
    folder.mkdir()
    lines = [{"source-ref": f"s3://bkt/p/{i}.jpg"} for i in range(9)]
    lines[3] = {"source": "7"}
    manifest = tmp_path / "in.manifest"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    box = {"label": "ball", "left": 1, "top": 1, "width": 5, "height": 5}
    odd = {"source-ref": "\x00line 3", "boundingBoxes": [box]}
    by_ref = {"source-ref": "s3://bkt/p/5.jpg", "boundingBoxes": [box]}
    (folder / "w1.jsonl").write_text(json.dumps(odd) + "\n" + json.dumps(by_ref) + "\n")
    rejects: list[CrowdReject] = []
    with open_crowd_source(
        folder, "answers-folder", manifest=manifest, on_reject=rejects.append
    ) as source:
        images = list(source.images())
    assert [i for i, image in enumerate(images) if image.annotators] == [5]
    assert [(r.position, r.reason.value) for r in rejects] == [("line 1", "malformed")]
