"""Make the shipped sample worker answers, deterministically (run from the repo root).

Five simulated workers (``gt_toolkit.testing.simulated_crowd``: jitter, misses, spurious and
duplicate
boxes, one loose worker) label every image of ``samples/truth.manifest``. Written in Ground
Truth's S3 output layout under ``samples/job-output/<job-name>/``:

- ``annotations/worker-response/iteration-1/<datasetObjectId>/<timestamp>.json``
- ``manifests/output/output.manifest``: the job's manifest (the input lines; a job run
  without a consolidation Lambda adds nothing re-consolidation needs)
- ``annotation-tool/data.json``: the job's label list

``gt-convert consolidate samples/job-output/<job-name> -o out.manifest`` re-consolidates them.
Re-running rewrites the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
from pathlib import Path

from gt_toolkit.testing.simulated_crowd import (
    CrowdImage,
    make_skills,
    simulate_worker,
    worker_response_document,
)

HERE = Path(__file__).resolve().parent
JOB_NAME = "samples-balls"
OUT = HERE / "job-output" / JOB_NAME
SEED = 20261124
WORKERS = 5


def sample_crowd() -> tuple[list[str], list[CrowdImage]]:
    """The job's labels and every image's simulated answers, in manifest order."""
    truth_lines = [json.loads(x) for x in (HERE / "truth.manifest").read_text().splitlines() if x]
    labels = sorted(
        {v for line in truth_lines for v in line["truth-metadata"]["class-map"].values()}
    )
    skills = make_skills(WORKERS, seed=SEED, miss_rate=0.1, spurious_rate=0.05)
    rng = random.Random(SEED)
    images = []
    for line in truth_lines:
        size = line["truth"]["image_size"][0]
        image_size = {"width": size["width"], "height": size["height"]}
        class_map = line["truth-metadata"]["class-map"]
        truth = [
            {
                "label": class_map[str(a["class_id"])],
                "left": a["left"],
                "top": a["top"],
                "width": a["width"],
                "height": a["height"],
            }
            for a in line["truth"]["annotations"]
        ]
        answers = [simulate_worker(rng, truth, s, image_size, labels) for s in skills]  # type: ignore[arg-type]
        spent = [
            round(s.seconds_per_box * (len(a) + 1) * rng.uniform(0.7, 1.3), 1)
            for s, a in zip(skills, answers, strict=True)
        ]
        images.append(CrowdImage(image_size, truth, answers, [s.worker_id for s in skills], spent))  # type: ignore[arg-type]
    return labels, images


def main() -> None:
    labels, images = sample_crowd()
    if OUT.exists():
        shutil.rmtree(OUT)
    start = dt.datetime(2026, 11, 24, 9, 0, 0, tzinfo=dt.UTC)
    for index, image in enumerate(images):
        when = start + dt.timedelta(minutes=3 * index)
        doc = worker_response_document(image, start=when)
        folder = OUT / "annotations" / "worker-response" / "iteration-1" / str(index)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{when.strftime('%Y%m%dT%H%M%SZ')}.json").write_text(
            json.dumps(doc, separators=(",", ":")) + "\n"
        )
    manifest = OUT / "manifests" / "output" / "output.manifest"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text((HERE / "input.manifest").read_text())
    tool = OUT / "annotation-tool" / "data.json"
    tool.parent.mkdir(parents=True, exist_ok=True)
    tool.write_text(
        json.dumps({"document-version": "2018-11-28", "labels": [{"label": x} for x in labels]})
        + "\n"
    )


if __name__ == "__main__":
    main()
