from __future__ import annotations

import json
import random
import shutil
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit.cli import main
from gt_toolkit.consolidation.engine import ConsolidationSettings
from gt_toolkit.consolidation.geometry import iou_matrix, xyxy_from_gt
from gt_toolkit.consolidation.reconsolidate import reconsolidate
from gt_toolkit.errors import NoMatchingObjectsError
from gt_toolkit.formats.crowd.report import CrowdReject
from gt_toolkit.formats.crowd.sources import open_crowd_source
from tests.helpers import REPO

JOB = REPO / "samples" / "job-output" / "samples-balls"
TRUTH = REPO / "samples" / "truth.manifest"
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
    assert main(args) == 0
    (line,) = read_lines(out)
    assert line["consolidated-metadata"]["job-name"] == "labeling-job/job"  # SOURCE's job
    classes = line["consolidated-metadata"]["class-map"]
    got = [classes[str(a["class_id"])] for a in line["consolidated"]["annotations"]]
    assert got == expected
