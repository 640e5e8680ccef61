"""gt-convert consolidate and agreement on every kind of crowd source."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from gt_toolkit.cli import main
from gt_toolkit.formats.crowd import CrowdImage
from gt_toolkit.testing.crowd_exports import cvat_job_exports, label_studio_export
from tests.helpers import CROWD, SAMPLES, consolidated_boxes

JOB = SAMPLES / "job-output" / "samples-balls"


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_label_studio_to_a_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.manifest"
    args = ["consolidate", str(CROWD / "label-studio.json"), "--from", "label-studio"]
    assert main([*args, "-o", str(out), "--worker-model", "none"]) == 0  # the head count
    got = consolidated_boxes(lines(out))
    assert got["s3://bkt/photos/img_b.jpg"] == [("car", 160, 123, 160, 120, 0.6508)]
    err = capsys.readouterr().err
    assert "3 objects; 2 consolidated; 1 without usable answers" in err
    assert "skipped: cancelled-annotation 1, not-a-box 1" in err
    summary = json.loads((tmp_path / "out.manifest.summary.json").read_text())
    assert summary["rejects_file"] is None and summary["ingest"]["rotated"] == 1
    assert (tmp_path / "out.manifest.worker-quality.csv").read_text().startswith("worker_id,")


def test_coco_output_carries_scores_and_pycocotools_reads_it(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    args = ["consolidate", str(CROWD / "cvat-replicas"), "--from", "cvat", "-o", str(out)]
    assert main([*args, "--output-format", "coco", "--worker-model", "none"]) == 0
    coco = json.loads(out.read_text())
    assert [i["file_name"] for i in coco["images"]] == ["img_a.jpg", "img_b.jpg"]
    assert [c["name"] for c in coco["categories"]] == ["car", "person"]
    assert [a["score"] for a in coco["annotations"]] == [0.6583, 0.6667, 0.6508]
    assert coco["annotations"][1]["bbox"] == pytest.approx([320, 240, 64, 96])
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(out))
        detections = truth.loadRes(coco["annotations"])
        evaluation = COCOeval(truth, detections, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # the file scored against itself


def test_image_prefix_makes_source_refs(tmp_path: Path) -> None:
    out = tmp_path / "out.manifest"
    args = ["consolidate", str(CROWD / "coco-raters.json"), "--from", "coco-raters"]
    assert main([*args, "-o", str(out), "--image-prefix", "s3://bkt/photos"]) == 1  # r9
    assert [x["source-ref"] for x in lines(out)] == [
        "s3://bkt/photos/img_a.jpg",
        "s3://bkt/photos/img_b.jpg",
    ]


def _two_folders(key: str) -> list[CrowdImage]:
    """Two images named alike in two folders, three annotators each (``key`` % folder)."""
    box = {"label": "car", "left": 10.0, "top": 10.0, "width": 40.0, "height": 30.0}
    return [
        CrowdImage(
            key=key % folder,
            image_size={"width": 200, "height": 100},
            annotators=("ann", "bob", "cy"),
            boxes=([box], [box], []),
        )
        for folder in ("day1", "day2")
    ]


def test_images_named_alike_in_two_folders_stay_two_images(tmp_path: Path) -> None:
    replicas = tmp_path / "replicas"
    replicas.mkdir()
    for name, xml in cvat_job_exports(_two_folders("%s/cam/0001.jpg")).items():
        (replicas / f"{name}.xml").write_text(xml)
    coco, manifest = tmp_path / "out.json", tmp_path / "out.manifest"
    args = ["consolidate", str(replicas), "--from", "cvat", "--worker-model", "none"]
    assert main([*args, "-o", str(coco), "--output-format", "coco"]) == 0
    names = [i["file_name"] for i in json.loads(coco.read_text())["images"]]
    assert sorted(names) == ["day1/cam/0001.jpg", "day2/cam/0001.jpg"]
    assert main([*args, "-o", str(manifest), "--image-prefix", "s3://bkt/photos/"]) == 0
    assert sorted(x["source-ref"] for x in lines(manifest)) == [
        "s3://bkt/photos/day1/cam/0001.jpg",
        "s3://bkt/photos/day2/cam/0001.jpg",
    ]


def test_two_images_that_would_share_an_output_name_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "export.json"  # uploads: only their last part names the image
    export.write_text(json.dumps(label_studio_export(_two_folders("/data/upload/%s/1.jpg"))))
    out = tmp_path / "out.json"
    args = ["consolidate", str(export), "--from", "label-studio", "--output-format", "coco"]
    assert main([*args, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "'/data/upload/day1/1.jpg'" in err and "'/data/upload/day2/1.jpg'" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [export]
    # URLs keep their path below the host, so the same names in two folders stay apart
    export.write_text(json.dumps(label_studio_export(_two_folders("https://cdn.test/%s/1.jpg"))))
    assert main([*args, "-o", str(out)]) == 0
    names = sorted(i["file_name"] for i in json.loads(out.read_text())["images"])
    assert names == ["day1/1.jpg", "day2/1.jpg"]


def test_a_manifest_needs_s3_refs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.manifest"
    args = ["consolidate", str(CROWD / "cvat-replicas"), "--from", "cvat", "-o", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--image-prefix" in err and "'img_a.jpg'" in err
    assert not out.exists() and not list(tmp_path.iterdir())  # a failed run writes nothing


def test_keep_all_keeps_every_cluster_scored(tmp_path: Path) -> None:
    quorum, everything = tmp_path / "q.manifest", tmp_path / "a.manifest"
    assert main(["consolidate", str(JOB), "-o", str(quorum)]) == 0
    assert main(["consolidate", str(JOB), "-o", str(everything), "--keep", "all"]) == 0
    kept = [b for v in consolidated_boxes(lines(quorum)).values() for b in v]
    every = [b for v in consolidated_boxes(lines(everything)).values() for b in v]
    assert len(every) > len(kept)
    assert min(b[-1] for b in every) < 0.2 < min(b[-1] for b in kept)  # lone boxes score low
    bad = ["consolidate", str(JOB), "-o", str(tmp_path / "x"), "--keep", "all"]
    assert main([*bad, "--min-support", "2"]) == 1


def test_keep_chooses_who_decides_with_the_worker_model(tmp_path: Path) -> None:
    # the default fits a model and lets the head count keep (the same boxes as without a
    # model, moved); --keep model lets the model keep and drop ("unlikely")
    runs = {"none": ["--worker-model", "none"], "quorum": [], "model": ["--keep", "model"]}
    found, dropped = {}, {}
    for name, flags in runs.items():
        out = tmp_path / f"{name}.manifest"
        assert main(["consolidate", str(JOB), "-o", str(out), "--labels", "ball", *flags]) == 0
        found[name] = consolidated_boxes(lines(out))
        dropped[name] = json.loads(Path(f"{out}.summary.json").read_text())["dropped"]
    counts = {name: {k: len(v) for k, v in boxes.items()} for name, boxes in found.items()}
    assert counts["quorum"] == counts["none"] and found["quorum"] != found["none"]
    assert dropped["quorum"] == dropped["none"] and "unlikely" not in dropped["quorum"]
    assert dropped["model"].get("unlikely", 0) > 0 and found["model"] != found["quorum"]


def test_broken_records_go_to_rejects_and_fail_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = json.loads((CROWD / "label-studio.json").read_text())
    del tasks[1]["annotations"][0]["result"][0]["value"]["x"]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    out = tmp_path / "out.manifest"
    assert main(["consolidate", str(export), "--from", "label-studio", "-o", str(out)]) == 1
    (reject,) = lines(tmp_path / "out.manifest.rejects.jsonl")
    assert reject["position"] == "task 1 (id 102), annotation 0, result 0"
    assert reject["reason"] == "malformed"
    err = capsys.readouterr().err
    assert "labels were lost: 1 broken records" in err
    assert "rejected: malformed 1" in err and "skipped: cancelled-annotation" in err
    assert len(lines(out)) == 3  # every image is still written
    # every reject the summary counts is in the rejects file it points at
    summary = json.loads((tmp_path / "out.manifest.summary.json").read_text())
    assert summary["ingest"]["rejected"] == 1
    assert summary["ingest"]["rejected_by_reason"] == {"malformed": 1}
    assert "malformed" not in summary["ingest"]["skipped"]
    assert summary["rejects_file"] == str(tmp_path / "out.manifest.rejects.jsonl")


def test_unreadable_answers_are_listed_and_fail_the_run(tmp_path: Path) -> None:
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    for f in (job / "annotations" / "worker-response" / "iteration-1" / "4").iterdir():
        f.write_text('{"answers": [')  # a body cut short
    out = tmp_path / "out.manifest"
    assert main(["consolidate", str(job), "-o", str(out)]) == 1
    (reject,) = lines(tmp_path / "out.manifest.rejects.jsonl")
    assert reject["reason"] == "unreadable-answer" and "/4/" in reject["file"]
    assert "failure-reason" in lines(out)[4]["consolidated-metadata"]
    # mended and run again: the earlier run's rejects file goes, it names nothing now
    shutil.rmtree(job)
    shutil.copytree(JOB, job)
    assert main(["consolidate", str(job), "-o", str(out)]) == 0
    assert not (tmp_path / "out.manifest.rejects.jsonl").exists()
    assert "failure-reason" not in lines(out)[4]["consolidated-metadata"]


def test_agreement_rerun_on_a_mended_export_leaves_no_rejects_file(tmp_path: Path) -> None:
    tasks = json.loads((CROWD / "label-studio.json").read_text())
    broken = json.loads(json.dumps(tasks))
    del broken[1]["annotations"][0]["result"][0]["value"]["x"]
    export, out = tmp_path / "export.json", tmp_path / "agreement"
    export.write_text(json.dumps(broken))
    args = ["agreement", str(export), "--from", "label-studio", "-o", str(out)]
    assert main(args) == 1
    assert len(lines(out / "rejects.jsonl")) == 1
    export.write_text(json.dumps(tasks))
    assert main(args) == 0
    assert not (out / "rejects.jsonl").exists()  # it named a record that is mended now


@pytest.mark.parametrize("blocked", ["agreement.html", "worker-model.json"])
def test_agreement_that_cannot_write_one_file_leaves_none(tmp_path: Path, blocked: str) -> None:
    # a folder where one output goes: the run fails, and the files written before it
    # (the JSON report, or both pages before the fitted model) must not stay behind,
    # nor a rejects file naming this run's broken record
    tasks = json.loads((CROWD / "label-studio.json").read_text())
    del tasks[1]["annotations"][0]["result"][0]["value"]["x"]
    export, out = tmp_path / "export.json", tmp_path / "agreement"
    export.write_text(json.dumps(tasks))
    (out / blocked).mkdir(parents=True)
    args = ["agreement", str(export), "--from", "label-studio", "-o", str(out)]
    assert main([*args, "--worker-model", "fit"]) == 1
    assert [p.name for p in out.iterdir()] == [blocked]


def test_options_of_other_kinds_are_refused(tmp_path: Path) -> None:
    out = str(tmp_path / "o")
    source = str(CROWD / "label-studio.json")
    assert main(["consolidate", source, "--from", "label-studio", "-o", out, "--threads", "2"]) == 1
    assert main(["consolidate", source, "--from", "cvat", "-o", out, "--data-key", "x"]) == 1
    assert main(["consolidate", source, "--from", "cvat", "-o", out, "--image-name", "x"]) == 1
    assert main(["consolidate", str(JOB), "-o", out, "--image-prefix", "s3://bkt-x/x/"]) == 1
    coco = ["--output-format", "coco", "--label-attribute", "boxes"]
    assert main(["consolidate", str(JOB), "-o", out, *coco]) == 1
    assert not list(tmp_path.iterdir())


def test_agreement_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "agreement"
    args = ["agreement", str(CROWD / "coco-per-annotator"), "--from", "coco-per-annotator"]
    assert main([*args, "-o", str(out)]) == 0
    report = json.loads((out / "agreement.json").read_text())
    assert report["units"] == 3 and report["ingest"]["images"] == 2
    assert report["matrix"]["annotators"] == ["alice", "bea", "carl"]
    assert [r["mean_time_spent"] for r in report["per_annotator"]] == [None] * 3  # COCO: none
    assert "α = " in (out / "agreement.html").read_text()
    assert capsys.readouterr().err.startswith("alpha ")


def test_agreement_refuses_a_label_list_spelt_otherwise_than_the_crowd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --labels Ball on a crowd that drew "ball" exited 0 with alpha undefined and "no
    # object was drawn on an image two annotators saw"; consolidate refuses that list
    out = tmp_path / "agreement"
    args = ["agreement", str(SAMPLES / "crowd" / "coco-raters.json"), "--from", "coco-raters"]
    assert main([*args, "-o", str(out), "--labels", "Ball"]) == 1
    err = capsys.readouterr().err
    assert "'ball' looks like 'Ball'" in err and "Traceback" not in err
    assert not out.exists()
    assert main([*args, "-o", str(out), "--labels", "ball"]) == 0


def test_agreement_shows_the_worker_model_and_keeps_alpha(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gt_toolkit.consolidation.worker_model import read_worker_model

    args = ["agreement", str(SAMPLES / "crowd" / "label-studio.json"), "--from", "label-studio"]
    assert main([*args, "-o", str(tmp_path / "plain")]) == 0
    assert main([*args, "-o", str(tmp_path / "fit"), "--worker-model", "fit"]) == 0
    table = tmp_path / "fit" / "worker-model.json"
    assert f"wrote {tmp_path / 'fit'}" in capsys.readouterr().err
    saved = ["--worker-model", str(table)]
    assert main([*args, "-o", str(tmp_path / "saved"), *saved]) == 0
    plain, fit, from_table = (
        json.loads((tmp_path / d / "agreement.json").read_text()) for d in ("plain", "fit", "saved")
    )
    model = read_worker_model(table)
    rows = {r["worker_id"]: r for r in fit["per_annotator"]}
    assert {w: (r["miss_rate"], r["false_boxes"], r["box_noise"]) for w, r in rows.items()} == {
        w: (s.miss_rate, s.false_boxes, s.box_noise) for w, s in model.workers.items()
    }
    edges = ("bias_left", "bias_top", "bias_right", "bias_bottom")
    assert {w: tuple(r[e] for e in edges) for w, r in rows.items()} == {
        w: s.box_bias for w, s in model.workers.items()
    }
    assert "miss_rate" not in plain["per_annotator"][0]
    assert from_table == fit
    # the model adds columns and changes no other figure
    for key in ("alpha", "per_class", "per_image", "matrix"):
        assert fit[key] == plain[key], key
    trimmed = [
        {k: v for k, v in r.items() if k in plain["per_annotator"][0]} for r in rows.values()
    ]
    assert trimmed == plain["per_annotator"]
    # Label Studio records each annotation's lead time: the same means consolidate reports
    quality = tmp_path / "c.manifest"
    assert main(["consolidate", *args[1:], "-o", str(quality), "--worker-model", "none"]) == 0
    timed = json.loads(Path(f"{quality}.worker-quality.json").read_text())
    times = {r["worker_id"]: r["mean_time_spent"] for r in plain["per_annotator"]}
    assert times == {q["worker_id"]: q["mean_time_spent"] for q in timed}
    assert all(t is not None and t > 0 for t in times.values())
    page = (tmp_path / "fit" / "agreement.html").read_text()
    assert "model: miss rate" in page and "model: box noise" in page
    assert "model: miss rate" not in (tmp_path / "plain" / "agreement.html").read_text()
    assert not (tmp_path / "saved" / "worker-model.json").exists()


def test_evaluate_reads_consolidated_coco_like_the_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = [str(SAMPLES / "crowd" / "label-studio.json"), "--from", "label-studio"]
    manifest, coco = tmp_path / "out.manifest", tmp_path / "out.json"
    assert main(["consolidate", *source, "-o", str(manifest)]) == 0
    assert main(["consolidate", *source, "-o", str(coco), "--output-format", "coco"]) == 0
    reports = {}
    for name, path in (("manifest", manifest), ("coco", coco)):
        out = tmp_path / f"{name}.eval.json"
        truth = str(SAMPLES / "truth.manifest")
        assert main(["evaluate", str(path), truth, "-o", str(out)]) == 0
        reports[name] = json.loads(out.read_text())
    assert reports["coco"]["sources"]["predictions"]["kind"] == "coco"
    assert reports["coco"]["sources"]["predictions"]["images"] == 40
    # the same boxes and scores (the manifest's corners rounded to whole pixels)
    assert reports["coco"]["map50"] == pytest.approx(reports["manifest"]["map50"], abs=0.01)
    assert reports["coco"]["map50"] > 0.8


def test_a_label_list_that_matches_nothing_stops_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the workers drew 'ball'; the README's own example once passed --labels car person
    out = tmp_path / "out.manifest"
    args = ["consolidate", str(JOB), "-o", str(out), "--labels", "car", "person"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "label list mismatch: 444 of 444 boxes were dropped as unknown-label" in err
    assert "labels seen: 'ball' (444); labels expected: 'car', 'person'" in err
    assert not list(tmp_path.iterdir())  # nothing written, not even the quality table
    assert main(["consolidate", str(JOB), "-o", str(out), "--labels", "Ball"]) == 1
    assert "'ball' looks like 'Ball'" in capsys.readouterr().err


def test_one_mis_cased_label_of_several_stops_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the workers drew 'person' on a fifth of the images, the list says 'Person': every
    # person would vanish from the output, which is no stray label
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    for folder in range(8):
        for path in (
            job / "annotations" / "worker-response" / "iteration-1" / str(folder)
        ).iterdir():
            path.write_text(path.read_text().replace('"ball"', '"person"'))
    out = tmp_path / "out" / "out.manifest"
    args = ["consolidate", str(job), "-o", str(out), "--worker-model", "none"]
    assert main([*args, "--labels", "ball", "Person"]) == 1
    assert "'person' looks like 'Person'" in capsys.readouterr().err
    assert not out.parent.exists() or not list(out.parent.iterdir())  # nothing written
    assert main([*args, "--labels", "ball", "person"]) == 0  # the list as the workers saw it
    assert "person" in out.read_text()


@pytest.mark.parametrize("attribute", ["source-ref", "boxes-metadata", "bad name!"])
def test_a_label_attribute_that_would_break_the_manifest_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], attribute: str
) -> None:
    out = tmp_path / "out.manifest"
    args = ["consolidate", str(JOB), "-o", str(out), "--label-attribute", attribute]
    assert main(args) == 1
    assert f"label attribute {attribute!r}" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_side_output_that_cannot_be_written_leaves_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the worker-quality table goes under a path that is a file: the manifest, already
    # complete, must not be committed without it, nor the model table it would sit beside
    (tmp_path / "afile").write_text("")
    out = tmp_path / "out.manifest"
    args = ["consolidate", str(SAMPLES / "crowd" / "label-studio.json"), "--from", "label-studio"]
    assert main([*args, "-o", str(out), "--quality", str(tmp_path / "afile" / "q")]) == 1
    assert "afile" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("command", ["consolidate", "agreement"])
def test_a_rerun_without_a_fit_leaves_no_earlier_worker_model_beside_its_outputs(
    command: str, tmp_path: Path
) -> None:
    # a fit run writes the model beside its outputs; a later run that fitted none left it
    # there, speaking for outputs it never saw; the table a rerun applies stays
    source = [str(SAMPLES / "crowd" / "label-studio.json"), "--from", "label-studio"]
    out = tmp_path / ("c.manifest" if command == "consolidate" else "pages")
    model = (
        Path(f"{out}.worker-model.json") if command == "consolidate" else out / "worker-model.json"
    )
    run = [command, *source, "-o", str(out)]
    assert main([*run, "--worker-model", "fit"]) == 0 and model.is_file()
    fitted = model.read_bytes()
    assert main([*run, "--worker-model", str(model)]) == 0
    assert model.read_bytes() == fitted  # the table it applied
    assert main([*run, "--worker-model", "none"]) == 0
    assert not model.exists()


def test_a_consolidate_stopped_before_its_summary_leaves_the_earlier_run_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Ctrl-C after the manifest, tables and model were in place but before the summary was
    # written exited 130 and left the new files without their summary (seen with a real
    # SIGINT 0.6 s into a run on the samples' job). The stop is raised where the summary
    # is made, the last step before it is written.
    from gt_toolkit.cli import EXIT_INTERRUPTED
    from gt_toolkit.consolidation.reconsolidate import ReconsolidationReport

    out = tmp_path / "c.manifest"
    assert main(["consolidate", str(JOB), "-o", str(out), "--worker-model", "none"]) == 0
    earlier = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(earlier) == [
        "c.manifest",
        "c.manifest.summary.json",
        "c.manifest.worker-quality.csv",
        "c.manifest.worker-quality.json",
    ]

    def ctrl_c(self: ReconsolidationReport) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(ReconsolidationReport, "to_json", ctrl_c)
    capsys.readouterr()
    # a fit run: it would add the worker model and change every table
    assert main(["consolidate", str(JOB), "-o", str(out), "--min-support", "1"]) == (
        EXIT_INTERRUPTED
    )
    assert capsys.readouterr().err.strip().splitlines()[-1] == "gt-convert: interrupted"
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == earlier


def test_outputs_that_are_links_are_written_where_they_lead(tmp_path: Path) -> None:
    # The manifest and the worker-quality tables are written by the same atomic write as a
    # converter's summary: each temporary file was renamed over its link, which became a
    # plain file, and the shared files the links led to kept the earlier run's bytes.
    shared = tmp_path / "shared"
    shared.mkdir()
    links = {}
    for name in ("c.manifest", "q.json", "q.csv"):
        (shared / name).write_text("earlier\n")
        links[name] = tmp_path / name
        links[name].symlink_to(shared / name)
    args = ["consolidate", str(CROWD / "label-studio.json"), "--from", "label-studio"]
    out, quality = tmp_path / "c.manifest", tmp_path / "q"
    assert main([*args, "-o", str(out), "--quality", str(quality), "--worker-model", "none"]) == 0
    for name, link in links.items():
        assert link.is_symlink() and link.readlink() == shared / name, name
    assert consolidated_boxes(lines(shared / "c.manifest"))  # the new manifest
    assert json.loads((shared / "q.json").read_text())
    assert (shared / "q.csv").read_text().startswith("worker_id,")
    assert sorted(p.name for p in shared.iterdir()) == ["c.manifest", "q.csv", "q.json"]


@pytest.mark.parametrize("flag", ["--image-name", "--data-key"])
@pytest.mark.parametrize("command", ["consolidate", "agreement"])
def test_an_empty_label_studio_name_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, command: str
) -> None:
    # --image-name "$TAG" with TAG unset: read as none given, every image's boxes were kept
    # (exit 0) where the user asked for one <Image> tag's
    out = str(tmp_path / "o")
    source = str(CROWD / "label-studio.json")
    assert main([command, source, "--from", "label-studio", "-o", out, flag, ""]) == 1
    err = capsys.readouterr().err
    assert f"{flag[2:].replace('-', '_')} is empty" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())
