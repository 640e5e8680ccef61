from __future__ import annotations

import csv
import json
import random
import re
import shutil
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gt_toolkit.cli import main
from gt_toolkit.consolidation.engine import ConsolidationSettings
from gt_toolkit.consolidation.geometry import iou_matrix, xyxy_from_gt
from gt_toolkit.consolidation.reconsolidate import (
    OutputFormat,
    image_path,
    image_reference,
    reconsolidate,
)
from gt_toolkit.consolidation.worker_model import WorkerModel, read_worker_model
from gt_toolkit.errors import (
    ConsolidationError,
    NoMatchingObjectsError,
    StorageError,
    ValidationError,
)
from gt_toolkit.formats.crowd import CrowdImage
from gt_toolkit.formats.crowd.report import CrowdReject
from gt_toolkit.formats.crowd.sources import open_crowd_source
from gt_toolkit.testing.crowd_exports import label_studio_export
from gt_toolkit.testing.simulated_crowd import WorkerSkill as SimulatedSkill
from gt_toolkit.testing.simulated_crowd import simulate_crowd
from tests.helpers import REPO, consolidated_boxes

JOB = REPO / "samples" / "job-output" / "samples-balls"
TRUTH = REPO / "samples" / "truth.manifest"
MODEL_KEEPS = ConsolidationSettings(keep="model")
JOB_MANIFEST = JOB / "manifests" / "output" / "output.manifest"


def truth_boxes() -> list[list[dict[str, Any]]]:
    out = []
    for line in TRUTH.read_text().splitlines():
        rec = json.loads(line)
        out.append(rec["truth"]["annotations"])
    return out


def recall_against_truth(lines: list[dict[str, Any]], attr: str) -> float:
    hits = total = 0
    for rec, truth in zip(lines, truth_boxes(), strict=True):
        got = rec.get(attr, {}).get("annotations", [])
        total += len(truth)
        if got and truth:
            m = iou_matrix(xyxy_from_gt(truth), xyxy_from_gt(got))
            hits += int((m.max(axis=1) >= 0.5).sum())
    return hits / total


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x]


def check_output(lines: list[dict[str, Any]], attr: str = "consolidated") -> None:
    sources = [
        json.loads(x)["source-ref"]
        for x in (REPO / "samples" / "input.manifest").read_text().splitlines()
    ]
    assert [r["source-ref"] for r in lines] == sources  # every object, in manifest order
    for rec in lines:
        meta = rec[f"{attr}-metadata"]
        assert meta["type"] == "groundtruth/object-detection"
        assert meta["job-name"] == "labeling-job/samples-balls"
        assert len(meta["objects"]) == len(rec[attr]["annotations"])
        assert all(0 <= o["confidence"] <= 1 for o in meta["objects"])
        assert meta["class-map"] in ({}, {"0": "ball"})
        assert rec[attr]["image_size"][0]["width"] > 0
    assert recall_against_truth(lines, attr) >= 0.95


_SEGMENT = st.text(st.characters(blacklist_characters="/\\?="), min_size=1).filter(
    lambda p: p not in (".", "..") and ":" not in p
)


@given(st.lists(_SEGMENT, min_size=1, max_size=4), st.sampled_from(["/", "\\"]))
def test_a_relative_image_key_keeps_its_whole_path(parts: list[str], sep: str) -> None:
    path = "/".join(parts)
    assert image_path(sep.join(parts)) == image_path(f".{sep}{sep.join(parts)}") == path
    assert image_reference(sep.join(parts), "s3://bkt/photos/") == f"s3://bkt/photos/{path}"


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("/data/upload/3/5f3a-img.jpg", "5f3a-img.jpg"),  # a Label Studio upload
        ("http://ls.local:8080/data/upload/3/5f3a-img.jpg", "5f3a-img.jpg"),  # with its host
        ("/data/local-files/?d=site%20a/img.jpg", "site a/img.jpg"),  # Label Studio local files
        ("https://cdn.test/day1/1.jpg?v=2", "day1/1.jpg"),  # the path below the host
        ("C:\\shots\\1.jpg", "1.jpg"),
        ("a/../../b.jpg", "a/b.jpg"),  # never above the prefix
        # an S3 URI's key is literal (COCO's file_name was "day1/img" for both of these, and
        # "a b.jpg" for the object a%20b.jpg)
        ("s3://bkt/day1/img?1.jpg", "day1/img?1.jpg"),
        ("s3://bkt/day1/img#2.jpg", "day1/img#2.jpg"),
        ("s3://bkt/a%20b.jpg", "a%20b.jpg"),
        ("s3://bkt/x/./y\\z.jpg", "x/y\\z.jpg"),
    ],
)
def test_urls_and_absolute_paths_give_their_path(key: str, path: str) -> None:
    assert image_path(key) == path
    assert image_reference(key, None) == key
    assert image_reference("s3://bkt/k/1.jpg", "s3://other/") == "s3://bkt/k/1.jpg"


@pytest.mark.parametrize(
    "refs",
    [
        ("s3://bkt-a/x.jpg", "s3://bkt-b/x.jpg"),  # two buckets, one key
        ("s3://bkt/d/x.jpg", "s3://bkt/d//x.jpg"),  # two objects, one path
        ("s3://bkt/x.jpg", "s3://bkt/./x.jpg"),
    ],
)
def test_two_s3_objects_of_one_coco_file_name_are_refused(
    tmp_path: Path, refs: tuple[str, str]
) -> None:
    # COCO names an s3:// image by its object key: two buckets' x.jpg were two images
    # named 'x.jpg' in one file, exit 0, the second's boxes drawn on the first's picture
    job = tmp_path / JOB.name
    shutil.copytree(JOB, job)
    manifest = job / "manifests" / "output" / "output.manifest"
    rows = [json.loads(row) for row in manifest.read_text().splitlines()]
    rows[0]["source-ref"], rows[1]["source-ref"] = refs
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    coco = tmp_path / "out.json"
    with open_crowd_source(job) as source, pytest.raises(ConsolidationError, match="both be"):
        reconsolidate(source, coco, output_format="coco", worker_model=None)
    assert not list(tmp_path.glob("out.json*"))
    with open_crowd_source(job) as source:  # a manifest keeps the two keys apart
        report = reconsolidate(source, tmp_path / "out.manifest", worker_model=None)
    assert report.complete
    assert [line["source-ref"] for line in read_lines(tmp_path / "out.manifest")[:2]] == list(refs)


def test_local_round_trip_matches_truth(tmp_path: Path) -> None:
    out = tmp_path / "out.manifest"
    report = reconsolidate(open_crowd_source(JOB), out)
    assert report.objects == 40 and report.consolidated == 40 and report.failed == 0
    assert report.complete and report.ingest.answers == 200
    lines = read_lines(out)
    check_output(lines)
    quality = json.loads((tmp_path / "out.manifest.worker-quality.json").read_text())
    assert len(quality) == 5
    assert all(0.5 < q["recall"] <= 1 and 0.5 < q["mean_iou"] <= 1 for q in quality)
    assert (tmp_path / "out.manifest.worker-quality.csv").read_text().startswith("worker_id,")


def test_a_label_listed_twice_is_one_class_in_both_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # data.json listing 'ball' twice gave COCO two categories 'ball' (ids 1 and 2, a file
    # evaluate refuses) and 'cube' id 3, where the manifest's class ids made 'cube' 1
    job = tmp_path / JOB.name
    shutil.copytree(JOB, job)
    labels = [{"label": "ball"}, {"label": "ball"}, {"label": "cube"}]
    (job / "annotation-tool" / "data.json").write_text(json.dumps({"labels": labels}))
    coco = tmp_path / "out.json"
    with open_crowd_source(job) as source:
        report = reconsolidate(source, coco, output_format="coco", worker_model=None)
    assert report.labels == ["ball", "cube"] and report.boxes > 0
    doc = json.loads(coco.read_text())
    assert [(c["id"], c["name"]) for c in doc["categories"]] == [(1, "ball"), (2, "cube")]
    assert {a["category_id"] for a in doc["annotations"]} == {1}
    manifest = tmp_path / "out.manifest"
    with open_crowd_source(job) as source:
        reconsolidate(source, manifest, worker_model=None)
    assert {
        (a["class_id"], line["consolidated-metadata"]["class-map"][str(a["class_id"])])
        for line in read_lines(manifest)
        for a in line["consolidated"]["annotations"]
    } == {(0, "ball")}
    # a list given twice over is refused before anything is written
    with open_crowd_source(job) as source, pytest.raises(ValidationError, match="twice"):
        reconsolidate(source, tmp_path / "again.json", labels=["ball", "ball"])
    code = main(
        ["consolidate", str(job), "-o", str(tmp_path / "cli.json"), "--labels", "ball", "ball"]
    )
    assert code != 0 and "listed twice" in capsys.readouterr().err
    assert not list(tmp_path.glob("again.json*")) and not list(tmp_path.glob("cli.json*"))


@pytest.mark.parametrize("worker_model", ["fit", None])
def test_an_input_integer_past_64_bits_reaches_the_output_line_whole(
    tmp_path: Path, worker_model: str | None
) -> None:
    # the manifest reader (orjson) reads 2**64 and beyond as the nearest float: the output
    # line gave such an attribute back as 1.2345678901234568e+29, a changed value
    job = tmp_path / JOB.name
    shutil.copytree(JOB, job)
    manifest = job / "manifests" / "output" / "output.manifest"
    rows = manifest.read_text().splitlines()
    extra = {
        "order-id": 123456789012345678901234567890,
        "low": -(2**63) - 1,
        "deep": {"ids": [2**64, 2**64 + 1], "small": 7, "f": 0.1},
        "text": "digits 12345678901234567890 in a string",
    }
    rows[3] = rows[3][:-1] + "," + json.dumps(extra)[1:]
    manifest.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out.manifest"
    with open_crowd_source(job) as source:
        report = reconsolidate(source, out, worker_model=worker_model)
    assert report.complete and report.consolidated == 40
    lines = read_lines(out)
    for key, value in extra.items():
        assert lines[3][key] == value and type(lines[3][key]) is type(value)
    check_output(lines)
    line = json.loads(rows[3])
    assert {k: lines[3][k] for k in line} == line


@pytest.mark.parametrize("worker_model", ["fit", None])
def test_each_answer_file_is_read_once_with_or_without_the_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker_model: str | None
) -> None:
    # the fit's pass keeps what it reads: on S3 a second read is a second bill
    import gt_toolkit.formats.crowd.gt_job as gt_job

    reads: list[str] = []
    real_read = gt_job.read_bytes

    def counted(location: Any, **kwargs: Any) -> bytes:
        reads.append(str(location))
        return real_read(location, **kwargs)

    monkeypatch.setattr(gt_job, "read_bytes", counted)
    with open_crowd_source(JOB) as source:
        report = reconsolidate(source, tmp_path / "out.manifest", worker_model=worker_model)
    answers = sorted(str(p) for p in (JOB / "annotations" / "worker-response").rglob("*.json"))
    assert report.consolidated == 40 and (report.worker_model is not None) == bool(worker_model)
    assert sorted(r for r in reads if "worker-response" in r) == answers


def upload(store_client: Any, bucket: str, folder: Path, prefix: str) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(folder).as_posix()}"
            store_client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())


def test_s3_round_trip_api_and_cli(
    s3_client: Any,
    store: Any,
    bucket: str,
    moto_endpoint: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    upload(s3_client, bucket, JOB, "jobs/samples-balls")
    prefix = f"s3://{bucket}/jobs/samples-balls"
    report = reconsolidate(
        open_crowd_source(prefix, store=store, max_workers=4),
        f"{prefix}/reconsolidated/out.manifest",
        store=store,
    )
    assert report.consolidated == 40
    body = s3_client.get_object(
        Bucket=bucket, Key="jobs/samples-balls/reconsolidated/out.manifest"
    )["Body"].read()
    check_output([json.loads(x) for x in body.splitlines()])
    assert s3_client.head_object(
        Bucket=bucket, Key="jobs/samples-balls/reconsolidated/out.manifest.worker-quality.csv"
    )
    fitted = reconsolidate(
        open_crowd_source(prefix, store=store, max_workers=4),
        f"{prefix}/reconsolidated/fit.manifest",
        worker_model="fit",
        store=store,
    )
    assert fitted.worker_model_output == f"{prefix}/reconsolidated/fit.manifest.worker-model.json"
    assert read_worker_model(fitted.worker_model_output, store=store) == fitted.worker_model

    local = tmp_path / "cli.manifest"
    code = main(
        [
            "consolidate",
            prefix,
            "-o",
            str(local),
            "--iou-threshold",
            "0.5",
            "--min-support",
            "3",
            "--labels",
            "ball",
            "--label-attribute",
            "balls",
            "--endpoint-url",
            moto_endpoint,
            "--region",
            "us-east-1",
        ]
    )
    assert code == 0
    assert "40 consolidated" in capsys.readouterr().err
    check_output(read_lines(local), attr="balls")


def test_objects_without_answers_are_kept_with_failure_reason(tmp_path: Path) -> None:
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    shutil.rmtree(job / "annotations" / "worker-response" / "iteration-1" / "5")
    (job / "annotations" / "worker-response" / "iteration-1" / "7" / "bad.json").write_text(
        "{not json"
    )
    bad_only = job / "annotations" / "worker-response" / "iteration-1" / "9"
    for f in bad_only.iterdir():
        f.write_text('{"answers": "nope"}')
    out = tmp_path / "out.manifest"
    rejects: list[CrowdReject] = []
    report = reconsolidate(open_crowd_source(job, on_reject=rejects.append), out)
    lines = read_lines(out)
    assert len(lines) == 40 and report.failed == 2
    # every unreadable file is listed, and the run does not claim to be complete
    assert sorted(Path(r.source).parent.name for r in rejects) == ["7", "9"]
    assert {r.reason.value for r in rejects} == {"unreadable-answer"}
    assert report.ingest.failed_images == 1 and not report.complete
    assert "consolidated" not in lines[5]
    assert "no worker answers" in lines[5]["consolidated-metadata"]["failure-reason"]
    assert "answers" in lines[9]["consolidated-metadata"]["failure-reason"]
    assert lines[7]["consolidated"]["annotations"]  # the good file still counts
    # The reason says who wrote it; no AWS error class is made up.
    for i in (5, 9):
        assert lines[i]["consolidated-metadata"]["failure-reason"].startswith("reconsolidate: ")
    # One run, one creation-date: failed objects carry the run's date like the others.
    dates = {line["consolidated-metadata"]["creation-date"] for line in lines}
    assert len(dates) == 1


@pytest.mark.parametrize(
    "spoil",
    [
        lambda a: a["answerContent"].update(boundingBox={"polygons": []}),  # no boundingBoxes
        lambda a: a["answerContent"]["boundingBox"]["boundingBoxes"][0].update(left=1e12),
        lambda a: a.update(answerContent="{not json"),
    ],
    ids=["no-boxes-key", "huge-coordinate", "content-not-json"],
)
def test_one_bad_answer_does_not_take_its_files_other_answers(tmp_path: Path, spoil: Any) -> None:
    # Ground Truth writes every worker's answer to an object in one file: one answer that
    # could not be parsed made the whole file unreadable, and the object failed with four
    # good answers unread
    job = tmp_path / JOB.name
    shutil.copytree(JOB, job)
    path = next((job / "annotations" / "worker-response" / "iteration-1" / "3").iterdir())
    doc = json.loads(path.read_text())
    if not doc["answers"][2]["answerContent"]["boundingBox"]["boundingBoxes"]:
        doc["answers"][2]["answerContent"]["boundingBox"]["boundingBoxes"] = [
            {"label": "ball", "left": 1, "top": 1, "width": 5, "height": 5}
        ]
    spoil(doc["answers"][2])
    path.write_text(json.dumps(doc))
    rejects: list[CrowdReject] = []
    out = tmp_path / "out.manifest"
    with open_crowd_source(job, on_reject=rejects.append) as source:
        report = reconsolidate(source, out, worker_model=None)
    assert report.consolidated == 40 and report.failed == 0
    assert report.ingest.answers == 199 and not report.complete
    assert [(r.source, r.position, r.reason.value) for r in rejects] == [
        (str(path), "manifest line 4", "unreadable-answer")
    ]
    worker = doc["answers"][2]["workerId"]
    assert rejects[0].detail.startswith(f"answer 2 (worker {worker}): ")
    assert read_lines(out)[3]["consolidated"]["annotations"]
    # the lost answer itself is in the rejects file, as an answers-folder line's is
    assert json.loads(rejects[0].to_json()["raw"]) == doc["answers"][2]


def test_min_support_and_threshold_change_the_result(tmp_path: Path) -> None:
    strict = reconsolidate(
        open_crowd_source(JOB),
        tmp_path / "a.manifest",
        settings=ConsolidationSettings(min_support=5),
    )
    loose = reconsolidate(
        open_crowd_source(JOB),
        tmp_path / "b.manifest",
        settings=ConsolidationSettings(min_support=1),
    )
    assert strict.boxes < loose.boxes


def write_answer_folder(folder: Path) -> dict[str, list[str]]:
    """The samples' worker answers as one ``<worker>.jsonl`` per worker (both line shapes)."""
    folder.mkdir()
    per_worker: dict[str, list[str]] = {}
    for obj in sorted(
        (JOB / "annotations" / "worker-response" / "iteration-1").iterdir(),
        key=lambda p: int(p.name),
    ):
        for f in obj.iterdir():
            for answer in json.loads(f.read_text())["answers"]:
                line: dict[str, Any]
                if int(obj.name) % 2:
                    line = {"datasetObjectId": obj.name, "answerContent": answer["answerContent"]}
                else:  # the plain shape, matched by source-ref
                    src = json.loads(
                        (REPO / "samples" / "input.manifest")
                        .read_text()
                        .splitlines()[int(obj.name)]
                    )
                    inner = answer["answerContent"]["boundingBox"]
                    line = {
                        "source-ref": src["source-ref"],
                        "boundingBoxes": inner["boundingBoxes"],
                        "inputImageProperties": inner["inputImageProperties"],
                    }
                per_worker.setdefault(answer["workerId"], []).append(json.dumps(line))
    for worker, lines in per_worker.items():
        (folder / f"{worker}.jsonl").write_text("\n".join(lines[::-1]) + "\n")  # any order
    return per_worker


def test_per_worker_folder(tmp_path: Path) -> None:
    per_worker = write_answer_folder(tmp_path / "answers")
    out = tmp_path / "out.manifest"
    folder = open_crowd_source(tmp_path / "answers", "answers-folder", manifest=JOB_MANIFEST)
    report = reconsolidate(folder, out, job_name="samples-balls")
    assert report.consolidated == 40
    assert len(report.ingest.annotators) == len(per_worker)  # one file per worker
    check_output(read_lines(out))
    assert reconsolidate(open_crowd_source(JOB), tmp_path / "gt.manifest").boxes == report.boxes


def test_per_worker_folder_on_s3(s3_client: Any, store: Any, bucket: str, tmp_path: Path) -> None:
    write_answer_folder(tmp_path / "answers")
    upload(s3_client, bucket, tmp_path / "answers", "exports/answers")
    upload(s3_client, bucket, JOB / "manifests", "exports/manifests")
    local = reconsolidate(
        open_crowd_source(tmp_path / "answers", "answers-folder", manifest=JOB_MANIFEST),
        tmp_path / "local.manifest",
    )
    remote = open_crowd_source(
        f"s3://{bucket}/exports/answers",
        "answers-folder",
        manifest=f"s3://{bucket}/exports/manifests/output/output.manifest",
        store=store,
    )
    report = reconsolidate(remote, tmp_path / "s3.manifest", job_name="samples-balls")
    assert (report.consolidated, report.boxes) == (40, local.boxes)
    check_output(read_lines(tmp_path / "s3.manifest"))


@pytest.mark.slow
def test_per_worker_folder_memory_stays_flat(tmp_path: Path) -> None:
    # worker files list images in their own (shuffled) order; their answers are indexed
    # on disk, not grouped in memory: four times the job, the same peak (files > 1 MiB)
    def run(n: int) -> int:
        root = tmp_path / str(n)
        (root / "answers").mkdir(parents=True)
        rnd = random.Random(n)
        manifest = root / "in.manifest"
        refs = (json.dumps({"source-ref": f"s3://bucket-a/{i}.jpg"}) for i in range(n))
        manifest.write_text("\n".join(refs) + "\n")
        for w in range(3):
            order = list(range(n))
            rnd.shuffle(order)
            with (root / "answers" / f"w{w}.jsonl").open("w") as fh:
                for i in order:
                    box = {"label": "car", "left": 10 + w, "top": 20, "width": 50, "height": 40}
                    line = {"datasetObjectId": str(i), "boundingBoxes": [box], "note": "x" * 8000}
                    fh.write(json.dumps(line) + "\n")
        tracemalloc.start()
        try:
            source = open_crowd_source(root / "answers", "answers-folder", manifest=manifest)
            with source:
                report = reconsolidate(source, root / "out.manifest", labels=["car"])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert report.consolidated == n
        return peak

    small, large = run(300), run(1200)
    assert large < 1.3 * small, (small, large)


def test_wrong_prefix_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(NoMatchingObjectsError):
        reconsolidate(open_crowd_source(tmp_path), tmp_path / "o.manifest")
    assert main(["consolidate", str(tmp_path), "-o", str(tmp_path / "o.manifest")]) == 1
    assert "NoMatchingObjectsError" in capsys.readouterr().err
    assert not (tmp_path / "o.manifest").exists()
    export = str(SAMPLE_SOURCES["label-studio"][0])  # a tool's export without --from
    assert main(["consolidate", export, "-o", str(tmp_path / "o.manifest")]) == 1
    err = capsys.readouterr().err
    assert "read as a Ground Truth job" in err and "label-studio" in err
    assert not (tmp_path / "o.manifest").exists()


@pytest.mark.parametrize(("quorum", "expected"), [("box", ["car"]), ("label", [])])
def test_cli_quorum_flag_reaches_the_engine(
    tmp_path: Path, quorum: str, expected: list[str]
) -> None:
    # two of three workers drew the object, one as a car and one as a bus: the default
    # keeps it with the tie broken by the label list, the per-label quorum drops it
    manifest = tmp_path / "in.manifest"
    manifest.write_text(json.dumps({"source-ref": "s3://bucket-a/0.jpg"}) + "\n")
    folder = tmp_path / "answers"
    folder.mkdir()
    size = {"width": 100, "height": 100, "depth": 3}
    for worker, boxes in {
        "w1": [{"label": "car", "left": 10, "top": 10, "width": 40, "height": 40}],
        "w2": [{"label": "bus", "left": 12, "top": 10, "width": 40, "height": 40}],
        "w3": [],
    }.items():
        line = {"source-ref": "s3://bucket-a/0.jpg", "boundingBoxes": boxes}
        line["inputImageProperties"] = size
        (folder / f"{worker}.jsonl").write_text(json.dumps(line) + "\n")
    out = tmp_path / "out.manifest"
    args = ["consolidate", str(tmp_path / "job"), "-o", str(out), "--manifest", str(manifest)]
    args += ["--answers-folder", str(folder), "--labels", "car", "bus", "--quorum", quorum]
    assert main([*args, "--worker-model", "none"]) == 0
    (line,) = read_lines(out)
    assert line["consolidated-metadata"]["job-name"] == "labeling-job/job"  # SOURCE's job
    classes = line["consolidated-metadata"]["class-map"]
    got = [classes[str(a["class_id"])] for a in line["consolidated"]["annotations"]]
    assert got == expected


# -- the worker model, fitted on the source or read from a saved table ----------------------------
SAMPLE_SOURCES = {
    "gt-job": (JOB, None),
    "label-studio": (REPO / "samples" / "crowd" / "label-studio.json", None),
    "cvat": (REPO / "samples" / "crowd" / "cvat", "s3://gt-toolkit-demo/images/"),
    "coco-raters": (
        REPO / "samples" / "crowd" / "coco-raters.json",
        "s3://gt-toolkit-demo/images/",
    ),
}


def fit_on(kind: str, out: Path) -> tuple[WorkerModel, dict[str, Any]]:
    """The model ``reconsolidate(worker_model="fit")`` writes for a shipped sample source,
    and the boxes it keeps (``keep="model"``)."""
    path, prefix = SAMPLE_SOURCES[kind]
    with open_crowd_source(path, kind) as source:
        report = reconsolidate(
            source,
            out,
            settings=MODEL_KEEPS,
            labels=["ball"],
            image_prefix=prefix,
            worker_model="fit",
        )
    assert report.worker_model_output == f"{out}.worker-model.json"
    assert report.complete and report.ingest.images == 40 and report.unknown_workers == 0
    assert report.dropped["unlikely"] > 0  # the model, not the head count, decided
    return read_worker_model(report.worker_model_output), consolidated_boxes(read_lines(out))


def figures(model: WorkerModel) -> list[float]:
    """Every number of the model, workers in the order of their sorted ids."""
    skills = [model.crowd, *(s for _, s in sorted(model.workers.items()))]
    table = [
        [s.miss_rate, s.false_boxes, s.box_noise, s.images, s.boxes, *s.box_bias] for s in skills
    ]
    return [model.objects, model.places, *(x for row in table for x in row)]


def test_every_shipped_source_fits_the_same_model(tmp_path: Path) -> None:
    # the same five workers in every format, under each tool's names for them
    # (w00..w04 in the job, ana..eli elsewhere: sorted, they line up)
    fitted = {kind: fit_on(kind, tmp_path / f"{kind}.manifest") for kind in SAMPLE_SOURCES}
    reference, reference_boxes = fitted.pop("gt-job")
    assert len(reference.workers) == 5
    for kind, (model, boxes) in fitted.items():
        assert figures(model) == pytest.approx(figures(reference), rel=1e-9), kind
        assert boxes == reference_boxes, kind


def test_a_saved_table_round_trips_and_consolidates_like_the_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, fitted_boxes = fit_on("label-studio", tmp_path / "fit.manifest")
    table = tmp_path / "fit.manifest.worker-model.json"
    assert WorkerModel.from_json(model.to_json()) == model
    assert json.loads(table.read_text()) == model.to_json()

    ls = str(SAMPLE_SOURCES["label-studio"][0])
    with open_crowd_source(ls, "label-studio") as source:
        report = reconsolidate(
            source,
            tmp_path / "api.manifest",
            settings=MODEL_KEEPS,
            labels=["ball"],
            worker_model=model,
        )
    assert report.worker_model_output is None  # a given table is not written again
    assert consolidated_boxes(read_lines(tmp_path / "api.manifest")) == fitted_boxes

    out = tmp_path / "cli.manifest"
    plain = ["consolidate", ls, "--from", "label-studio", "--labels", "ball"]
    args = [*plain, "--keep", "model", "-o", str(out)]
    assert main([*args, "--worker-model", str(table)]) == 0
    assert consolidated_boxes(read_lines(out)) == fitted_boxes
    quality = json.loads((tmp_path / "cli.manifest.worker-quality.json").read_text())
    assert {q["worker_id"]: q["miss_rate"] for q in quality} == {
        w: s.miss_rate for w, s in model.workers.items()
    }
    header = (tmp_path / "cli.manifest.worker-quality.csv").read_text().splitlines()[0]
    model_columns = ",miss_rate,false_boxes,box_noise,bias_left,bias_top,bias_right,bias_bottom"
    assert header.endswith(model_columns)
    assert not Path(f"{out}.worker-model.json").exists()

    # the offline default fits the model first (DEFAULT_WORKER_MODEL), as "fit" does
    default = tmp_path / "default.manifest"
    assert main([*args[:-1], str(default)]) == 0
    assert consolidated_boxes(read_lines(default)) == fitted_boxes
    assert read_worker_model(f"{default}.worker-model.json") == model

    # the model fusing what the head count keeps (the offline default's keep) differs
    assert main([*plain, "-o", str(tmp_path / "fuse.manifest"), "--worker-model", "fit"]) == 0
    assert consolidated_boxes(read_lines(tmp_path / "fuse.manifest")) != fitted_boxes

    # without a model: the head count, and the quality table without the model's columns
    assert main([*plain, "-o", str(tmp_path / "plain.manifest"), "--worker-model", "none"]) == 0
    assert consolidated_boxes(read_lines(tmp_path / "plain.manifest")) != fitted_boxes
    header = (tmp_path / "plain.manifest.worker-quality.csv").read_text().splitlines()[0]
    assert "miss_rate" not in header
    capsys.readouterr()

    # a table from another tool names other workers: said, not hidden
    cvat, prefix = SAMPLE_SOURCES["cvat"]
    out = tmp_path / "cvat.manifest"
    args = ["consolidate", str(cvat), "--from", "cvat", "--image-prefix", str(prefix)]
    assert main([*args, "-o", str(out), "--worker-model", str(table)]) == 0
    assert "5 annotators unknown to the worker model" in capsys.readouterr().err
    assert json.loads(Path(f"{out}.summary.json").read_text())["unknown_workers"] == 5


def test_keep_all_with_a_worker_model_keeps_every_cluster_and_places_them(
    tmp_path: Path,
) -> None:
    ls = str(SAMPLE_SOURCES["label-studio"][0])
    args = ["consolidate", ls, "--from", "label-studio", "--keep", "all"]
    runs = {"none": [], "fit": ["--worker-model", "fit"]}
    boxes = {}
    for name, flags in runs.items():
        out = tmp_path / f"{name}.manifest"
        assert main([*args, *flags, "-o", str(out)]) == 0
        boxes[name] = consolidated_boxes(read_lines(out))
        assert Path(f"{out}.worker-model.json").exists() is (name == "fit")
    # the same clusters, one box each, in every image; the model moves some of them
    assert {k: len(v) for k, v in boxes["fit"].items()} == {
        k: len(v) for k, v in boxes["none"].items()
    }
    assert boxes["fit"] != boxes["none"]
    with pytest.raises(ValidationError, match="worker_model must be"):
        reconsolidate(open_crowd_source(ls, "label-studio"), tmp_path / "o", worker_model="yes")  # type: ignore[arg-type]


def test_keep_model_needs_a_worker_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ls = str(SAMPLE_SOURCES["label-studio"][0])
    args = ["consolidate", ls, "--from", "label-studio", "--keep", "model"]
    assert main([*args, "--worker-model", "none", "-o", str(tmp_path / "o.manifest")]) == 1
    assert "--keep model needs a worker model" in capsys.readouterr().err
    assert not (tmp_path / "o.manifest").exists()
    with (
        open_crowd_source(ls, "label-studio") as source,
        pytest.raises(ValidationError, match='keep="model" needs a worker_model'),
    ):
        reconsolidate(source, tmp_path / "o", settings=MODEL_KEEPS, worker_model=None)
    assert not (tmp_path / "o").exists()


def spam_crowd(seed: int) -> tuple[list[CrowdImage], list[list[dict[str, Any]]]]:
    """Two careful workers and a spammer (sloppy edges, about three stray boxes per image)."""
    skills = [
        SimulatedSkill("ana", jitter=0.03, miss_rate=0.1, spurious_rate=0.05),
        SimulatedSkill("ben", jitter=0.03, miss_rate=0.1, spurious_rate=0.05),
        SimulatedSkill("spam", jitter=0.2, miss_rate=0.2, spurious_rate=1.0),
    ]
    crowd = simulate_crowd(images=30, boxes_per_image=3, skills=skills, labels=["car"], seed=seed)
    images = [sim.as_source_image(f"s3://bkt/spam/{i}.jpg") for i, sim in enumerate(crowd)]
    return images, [list(sim.truth) for sim in crowd]


def against_truth(found: dict[str, Any], truth: list[list[dict[str, Any]]]) -> tuple[int, float]:
    """False boxes, and the mean IoU of the boxes matched (greedily, at 0.5) to a true one."""
    false, ious = 0, []
    for boxes, true in zip(found.values(), truth, strict=True):
        got = [dict(zip(("left", "top", "width", "height"), b[1:5], strict=True)) for b in boxes]
        iou = iou_matrix(xyxy_from_gt(got), xyxy_from_gt(true)) if got and true else None
        taken: set[int] = set()
        for row in iou if iou is not None else [[]] * len(got):
            best = max(
                (j for j in range(len(row)) if j not in taken), key=row.__getitem__, default=None
            )
            if best is None or row[best] < 0.5:
                false += 1
                continue
            taken.add(best)
            ious.append(float(row[best]))
    return false, sum(ious) / len(ious)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_spammer_is_down_weighted_with_the_model_and_not_without(
    tmp_path: Path, seed: int
) -> None:
    images, truth = spam_crowd(seed)
    export = tmp_path / "ls.json"
    export.write_text(json.dumps(label_studio_export(images)))
    found = {}
    for choice in (None, "fit"):
        out = tmp_path / f"{choice}.manifest"
        keep = MODEL_KEEPS if choice else ConsolidationSettings()
        with open_crowd_source(export, "label-studio") as source:
            report = reconsolidate(
                source, out, settings=keep, image_prefix="s3://bkt/spam/", worker_model=choice
            )
        found[choice] = against_truth(consolidated_boxes(read_lines(out)), truth)
    assert report.worker_model is not None
    skills = report.worker_model.workers
    assert skills["spam"].weight < 0.5 * min(skills["ana"].weight, skills["ben"].weight)
    assert skills["spam"].false_boxes > 3 * max(
        skills["ana"].false_boxes, skills["ben"].false_boxes
    )
    (false_plain, iou_plain), (false_model, iou_model) = found[None], found["fit"]
    # the spammer's sloppy edges pull the head count's boxes, not the model's; and the
    # stray boxes it seconds for a careful worker's lone stray box stay out
    assert iou_model > iou_plain + 0.02, found
    assert false_model <= false_plain, found


def test_a_worker_id_that_reads_as_a_formula_is_quoted_in_the_csv_only(tmp_path: Path) -> None:
    box = {"label": "ball", "left": 10, "top": 10, "width": 20, "height": 20}
    hostile = ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "ana"]
    image = CrowdImage(
        key="a.jpg",
        image_size={"width": 100, "height": 100},
        annotators=tuple(hostile),
        boxes=tuple([box] for _ in hostile),
    )
    export = tmp_path / "ls.json"
    export.write_text(json.dumps(label_studio_export([image])))
    out = tmp_path / "out.manifest"
    with open_crowd_source(export, "label-studio") as source:
        reconsolidate(source, out, image_prefix="s3://bkt/")
    with (tmp_path / "out.manifest.worker-quality.csv").open(newline="") as f:
        ids = {row["worker_id"] for row in csv.DictReader(f)}
    assert ids == {"'" + w for w in hostile[:4]} | {"ana"}
    table = json.loads((tmp_path / "out.manifest.worker-quality.json").read_text())
    assert {row["worker_id"] for row in table} == set(hostile)


def test_an_output_that_cannot_be_committed_takes_its_side_files_with_it(
    store: Any, bucket: str, tmp_path: Path
) -> None:
    # the quality table is written first, locally; the model table and the manifest go to a
    # bucket that does not exist: the run must not leave tables of an output that is not
    source = open_crowd_source(SAMPLE_SOURCES["label-studio"][0], "label-studio")
    base = tmp_path / "quality"
    with pytest.raises(StorageError, match=r"the bucket does not exist"):
        reconsolidate(
            source,
            f"s3://{bucket}-missing/out.manifest",
            quality_output=str(base),
            worker_model="fit",
            store=store,
        )
    assert not list(tmp_path.iterdir())


def test_a_rerun_that_fails_leaves_the_earlier_run_whole(
    store: Any, bucket: str, tmp_path: Path
) -> None:
    # a rerun whose output cannot be committed (its bucket is gone) must not take the
    # tables of the output it did not replace
    base = tmp_path / "quality"

    def run(output: str) -> None:
        source = open_crowd_source(SAMPLE_SOURCES["label-studio"][0], "label-studio")
        reconsolidate(source, output, quality_output=str(base), store=store)

    run(f"s3://{bucket}/out.manifest")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["quality.csv", "quality.json"]
    with pytest.raises(StorageError, match=r"the bucket does not exist"):
        run(f"s3://{bucket}-missing/out.manifest")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_table_that_fails_to_appear_takes_the_output_back(
    store: Any, bucket: str, tmp_path: Path
) -> None:
    # the output lands locally first; the tables' bucket is gone: neither may stay
    source = open_crowd_source(SAMPLE_SOURCES["label-studio"][0], "label-studio")
    output = tmp_path / "out.manifest"
    with pytest.raises(StorageError, match=r"the bucket does not exist"):
        reconsolidate(source, output, quality_output=f"s3://{bucket}-missing/q", store=store)
    assert list(tmp_path.iterdir()) == []


def test_a_rerun_whose_table_fails_to_appear_puts_the_earlier_output_back(
    store: Any, bucket: str, tmp_path: Path
) -> None:
    # The rerun's manifest replaced the earlier one, then its tables' bucket was gone: the
    # new manifest was taken back, and the earlier one with it (AllOrNone removed what it
    # placed). Now the earlier manifest is put back as it was.
    output = tmp_path / "out.manifest"

    def run(quality_output: str) -> None:
        source = open_crowd_source(SAMPLE_SOURCES["label-studio"][0], "label-studio")
        reconsolidate(source, output, quality_output=quality_output, store=store)

    run(str(tmp_path / "quality"))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(StorageError, match=r"the bucket does not exist"):
        run(f"s3://{bucket}-missing/q")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("prefix", ["s3://b/", "s3://Photos/x/", "photos/"])
def test_an_image_prefix_no_source_ref_can_have_is_refused(tmp_path: Path, prefix: str) -> None:
    # s3://b/ wrote a manifest of source-refs every manifest reader rejects, and exited 0
    out = tmp_path / "o.manifest"
    export = SAMPLE_SOURCES["label-studio"][0]
    with pytest.raises(ValidationError, match=r"image_prefix (bad bucket name|must be an s3)"):
        reconsolidate(open_crowd_source(export, "label-studio"), out, image_prefix=prefix)
    assert not out.exists()


def test_an_image_uri_with_a_bucket_s3_refuses_stops_the_run(tmp_path: Path) -> None:
    # a Label Studio task naming s3://b/a.jpg became a manifest line no reader takes, exit 0
    tasks = json.loads(SAMPLE_SOURCES["label-studio"][0].read_text())
    tasks[0]["data"]["image"] = "s3://b/a.jpg"
    export = tmp_path / "ls.json"
    export.write_text(json.dumps(tasks))
    out = tmp_path / "o.manifest"
    with pytest.raises(ConsolidationError, match=r"image 's3://b/a.jpg': bad bucket name 'b'"):
        reconsolidate(open_crowd_source(export, "label-studio"), out)
    assert not out.exists()


def test_answers_without_a_worker_id_stay_out_of_the_saved_model(tmp_path: Path) -> None:
    # an answer without a workerId is anonymous-object<id>-<i>, one object of this job: saved in
    # the table, applied to another job it took this job's line-1 skills for whoever answered
    # that job's line 1 without an id
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    for obj in ("0", "1"):
        path = next((job / "annotations" / "worker-response" / "iteration-1" / obj).iterdir())
        doc = json.loads(path.read_text())
        doc["answers"][0]["workerId"] = None
        path.write_text(json.dumps(doc))
    out = tmp_path / "fit.manifest"
    with open_crowd_source(job) as source:
        report = reconsolidate(
            source, out, settings=MODEL_KEEPS, labels=["ball"], worker_model="fit"
        )
    fitted = report.worker_model
    assert fitted is not None
    anonymous = sorted(w for w in fitted.workers if w.startswith("anonymous-"))
    assert anonymous == ["anonymous-object0-0", "anonymous-object1-0"]  # in this run's fit
    saved = json.loads(Path(f"{out}.worker-model.json").read_text())
    assert sorted(saved["workers"]) == sorted(set(fitted.workers) - set(anonymous))
    assert len(saved["workers"]) == 5
    # a table that names one anyway (an older version's, or edited) never matches it
    hand = {**saved, "workers": {**saved["workers"], "anonymous-object0-0": saved["crowd"]}}
    hand["workers"]["anonymous-object0-0"] = {**saved["crowd"], "miss_rate": 0.9}
    loaded = WorkerModel.from_json(hand)
    assert "anonymous-object0-0" not in loaded.workers
    assert loaded.skill("anonymous-object0-0") == loaded.crowd
    assert loaded.workers == read_worker_model(f"{out}.worker-model.json").workers


@pytest.mark.parametrize(
    ("keys", "clash"),
    [
        (("s3://bkt/p/x.jpg", "/data/upload/3/x.jpg"), True),
        (("/data/upload/3/x.jpg", "s3://bkt/p/x.jpg"), True),
        (("s3://bkt/p/d/x.jpg", "d/./x.jpg"), True),
        (("s3://bkt/p//x.jpg", "/data/upload/3/x.jpg"), False),  # two refs, two objects
        (("s3://bkt/q/x.jpg", "/data/upload/3/x.jpg"), False),  # outside the prefix
    ],
)
def test_an_s3_key_and_a_key_joined_to_the_prefix_as_it_are_refused(
    tmp_path: Path, keys: tuple[str, str], clash: bool
) -> None:
    """A manifest keeps an s3:// key whole, but another tool's key joined to the image
    prefix can be that very source-ref (a Label Studio project of S3 images and uploads):
    8cfc386 checked s3:// keys only for COCO, and the manifest had two lines of one
    source-ref, each with another task's boxes, exit 0."""
    box = {"label": "ball", "left": 10, "top": 10, "width": 20, "height": 20}
    images = [
        CrowdImage(
            key=key,
            image_size={"width": 100, "height": 100},
            annotators=("ana", "ben"),
            boxes=([box], [box]),
        )
        for key in keys
    ]
    export = tmp_path / "ls.json"
    export.write_text(json.dumps(label_studio_export(images)))
    out = tmp_path / "out.manifest"
    with open_crowd_source(export, "label-studio") as source:
        if clash:
            with pytest.raises(ConsolidationError, match="would both be 's3://bkt/p/"):
                reconsolidate(source, out, image_prefix="s3://bkt/p", worker_model=None)
            assert not list(tmp_path.glob("out.manifest*"))
            return
        reconsolidate(source, out, image_prefix="s3://bkt/p", worker_model=None)
    refs = [line["source-ref"] for line in read_lines(out)]
    assert len(set(refs)) == 2


def test_an_unreadable_answer_file_whose_name_is_not_utf8_is_a_reject(tmp_path: Path) -> None:
    """A job's answer file named in bytes that are not UTF-8 is read as surrogates: when it
    could not be read, its reject and its object's failure-reason name it, and the run
    stopped with a traceback writing them ('str is not valid UTF-8', no rejects file, no
    summary). Both name it with its bytes escaped; the run says labels were lost."""
    import os

    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    folder = job / "annotations" / "worker-response" / "iteration-1" / "7"
    for answers in folder.iterdir():  # the object's only answer file
        answers.rename(folder / os.fsdecode(b"r\xe9.json"))
    (folder / os.fsdecode(b"r\xe9.json")).write_text("{not json")
    out = tmp_path / "out.manifest"
    assert main(["consolidate", str(job), "-o", str(out)]) == 1
    [reject] = [json.loads(line) for line in out.with_name("out.manifest.rejects.jsonl").open()]
    shown = f"{folder}/r\\xe9.json"
    assert (reject["file"], reject["reason"]) == (shown, "unreadable-answer")
    line = json.loads(out.read_text().splitlines()[7])
    assert shown in line["consolidated-metadata"]["failure-reason"]


@pytest.mark.parametrize("output_format", ["manifest", "coco"])
def test_images_read_in_chunks_are_written_as_one_at_a_time_writes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output_format: OutputFormat
) -> None:
    """Images are consolidated 64 at a time (consolidate_images): across two chunk
    boundaries, with unanswered images inside the chunks, every image's line (boxes,
    confidences, drop counts, failures, order) is the one a chunk of one image gives."""
    from gt_toolkit.consolidation import reconsolidate as module
    from gt_toolkit.testing.simulated_crowd import make_skills

    skills = make_skills(4, seed=7, spurious_rate=0.1, duplicate_rate=0.1, wrong_label_rate=0.1)
    crowd = simulate_crowd(
        images=150, boxes_per_image=5, skills=skills, labels=["car", "bus"], seed=7
    )
    images = [
        sim.as_source_image(f"s3://bkt/c/{i}.jpg", workers=[] if i % 29 == 3 else None)
        for i, sim in enumerate(crowd)
    ]
    export = tmp_path / "ls.json"
    export.write_text(json.dumps(label_studio_export(images)))
    outputs = []
    for chunk in (module._CHUNK, 1):
        monkeypatch.setattr(module, "_CHUNK", chunk)
        out = tmp_path / f"{chunk}.{output_format}"
        with open_crowd_source(export, "label-studio") as source:
            report = reconsolidate(
                source,
                out,
                output_format=output_format,
                worker_model=None,
            )
        text = out.read_text()
        outputs.append((report.objects, report.failed, report.boxes, dict(report.dropped)))
        outputs.append(re.sub(r'"(creation-date|date_created)":"[^"]*"', "", text))
    assert outputs[0] == outputs[2] and outputs[1] == outputs[3]
    assert outputs[0][:2] == (150, 6) and outputs[0][2] > 300
