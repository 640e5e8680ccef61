"""An output among the files a run reads, or inside a folder it reads, is refused up front.

Every command reads its inputs, then publishes its outputs when it ends: an output at an
input's path (by any name) replaced that input with exit code 0, and one inside a folder
source became one more source for the next run. Each refused run here exits 1 with one line
naming both, and leaves every file as it was and no output behind.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit.cli import main
from gt_toolkit.convert import CONVERTERS, Target
from tests.helpers import (
    CROWD,
    DATA,
    JOB,
    JOB_MANIFEST,
    SAMPLES,
    answers_folder,
    file_tree,
    put_tree,
    refused_run,
    s3_keys,
)

LABEL_STUDIO = CROWD / "label-studio.json"
BOXES = DATA / "outputs" / "api-job.manifest"
TRUTH = SAMPLES / "truth.manifest"


def _copy(original: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(original.read_bytes())
    return dest


def _spelled(given: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``given`` by another name: as is, ``./name`` from its folder, or a hard link."""
    if how == "same":
        return str(given)
    if how == "dot":
        monkeypatch.chdir(given.parent)
        return f"./{given.name}"
    link = given.parent.parent / "elsewhere" / given.name
    link.parent.mkdir(exist_ok=True)
    os.link(given, link)
    return str(link)


# (argv with IN and OUT, the input to copy as IN, its name, what the output is, what IN is)
_SAME = [
    (["consolidate", "IN", "--from", "label-studio", "-o", "OUT"], LABEL_STUDIO, "ls.json",
     "output", "source"),
    (["sample", "IN", "-o", "OUT", "--count", "5"], TRUTH, "in.manifest", "output", "input"),
    (["evaluate", "IN", str(TRUTH), "-o", "OUT"], TRUTH, "pred.manifest", "report",
     "predictions"),
    (["evaluate", str(TRUTH), "IN", "-o", "OUT"], TRUTH, "ref.manifest", "report", "reference"),
    (["coco", "IN", "-o", "OUT"], BOXES, "boxes.json", "output", "input"),
    (["yolo", "IN", "-o", "OUT"], BOXES, "in.manifest", "output", "input"),
    (["review", "IN", "-o", "OUT"], TRUTH, "in.manifest", "output folder", "input"),
    (["template", "--label-file", "IN", "-o", "OUT"], SAMPLES / "input.manifest", "labels.txt",
     "template", "label file"),
]  # fmt: skip


@pytest.mark.parametrize("how", ["same", "dot", "link"])
@pytest.mark.parametrize(
    ("argv", "original", "name", "output", "shared"),
    _SAME,
    ids=[f"{a[0]}-{s}" for a, _, _, _, s in _SAME],
)
def test_an_output_that_is_an_input_by_any_name_is_refused(
    how: str,
    argv: list[str],
    original: Path,
    name: str,
    output: str,
    shared: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    given = _copy(original, tmp_path / "in" / name)
    out = _spelled(given, how, monkeypatch)
    before = file_tree(tmp_path)
    args = [str(given) if a == "IN" else out if a == "OUT" else a for a in argv]
    where = "" if how == "same" else f" {given}"  # by another name: the line names both
    said = f"the {output} {out} is also the {shared}{where}: give -o another path"
    refused_run(args, said, capsys)
    assert file_tree(tmp_path) == before


@pytest.mark.parametrize(
    ("argv", "inside", "output", "shared"),
    [
        (["consolidate", "IN", "-o", "OUT/c.manifest", "--quality", "IN"], "q.json",
         "worker-quality table", "source: give --quality"),
        (["consolidate", "IN", "-o", "OUT/c", "--worker-model", "fit"], "c.worker-model.json",
         "worker model", "source: give -o"),
        (["agreement", "IN", "-o", "OUT"], "agreement.json", "agreement JSON", "source"),
        (["agreement", "IN", "-o", "OUT"], "agreement.html", "agreement page", "source"),
        (["sample", "IN", "-o", "OUT/s", "--count", "3"], "s.sample.json", "selection record",
         "input"),
        (["split", "IN", "-o", "OUT"], "train.manifest", "train manifest", "input"),
        (["split", "IN", "-o", "OUT"], "validation.manifest", "validation manifest", "input"),
        (["review", "IN", "-o", "OUT"], "review.json", "review summary", "input"),
        (["review", "IN", "-o", "OUT"], "report.html", "report", "input"),
        (["review", "IN", "-o", "OUT"], "rejects.jsonl", "rejects file", "input"),
        (["yolo", "IN", "-o", "OUT/y", "--summary", "IN"], "s.json", "summary",
         "input: give --summary"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)  # fmt: skip
def test_an_output_named_before_the_run_that_is_the_input_is_refused(
    argv: list[str],
    inside: str,
    output: str,
    shared: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # side files, pages and records: known from -o before the run, refused like -o itself
    original = LABEL_STUDIO if argv[0] in ("consolidate", "agreement") else TRUTH
    given = _copy(original, tmp_path / "out" / inside)
    before = file_tree(tmp_path)
    out = tmp_path / "out"
    args = [str(given) if a == "IN" else a.replace("OUT", str(out)) for a in argv]
    args += ["--from", "label-studio"] if argv[0] in ("consolidate", "agreement") else []
    if argv[0] == "consolidate" and "--quality" in argv:
        args[args.index("--quality") + 1] = str(given.with_suffix(""))
    refused_run(args, f"the {output} {given} is also the {shared}", capsys)
    assert file_tree(tmp_path) == before


_FOLDER_TARGETS = [t for t, spec in CONVERTERS.items() if spec.folder_files]


@pytest.mark.parametrize("target", _FOLDER_TARGETS)
def test_a_converter_refuses_an_input_at_a_file_its_folder_output_always_gets(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    for name in CONVERTERS[target].folder_files:
        given = _copy(BOXES, out / name)
        before = file_tree(tmp_path)
        said = f"the output file {given} is also the input: give -o another path"
        refused_run([target.value, str(given), "-o", str(out)], said, capsys)
        assert file_tree(tmp_path) == before
        given.unlink()


def test_from_coco_refuses_its_input_or_reference_as_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = tmp_path / "reference.json"
    reference.write_text('{"images": [], "categories": []}')
    results = tmp_path / "results.json"
    results.write_text("[]")
    before = file_tree(tmp_path)
    argv = ["from-coco", str(results), "--coco-reference", str(reference), "-o"]
    refused_run([*argv, str(reference)], f"the output {reference} is also the COCO ref", capsys)
    refused_run([*argv, str(results)], f"the output {results} is also the input", capsys)
    assert file_tree(tmp_path) == before


def test_from_coco_refuses_a_categories_file_at_its_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = tmp_path / "p.manifest.categories.json"
    reference.write_text('{"images": [], "categories": []}')
    argv = ["from-coco", str(tmp_path / "results.json"), "--coco-reference", str(reference)]
    said = f"the output file {reference} is also the COCO reference: give -o another path"
    refused_run([*argv, "-o", str(tmp_path / "p.manifest")], said, capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == [reference.name]


_COCO_FOLDER = CROWD / "coco-per-annotator"
_READS = {
    "CVAT folder": "whose .xml and .zip files",
    "COCO folder": "whose .json files",
    "worker-response folder": "whose .json files",
    "answers folder": "whose .jsonl files",
}

# (command, --from, the source to copy, where -o goes inside it, what is refused, the folder)
_LISTED = [
    ("consolidate", "cvat", CROWD / "cvat-replicas", "job_11_annotations.xml", "output",
     "CVAT folder"),
    ("consolidate", "cvat", CROWD / "cvat-replicas", "new/c.ZIP", "output", "CVAT folder"),
    ("consolidate", "coco-per-annotator", _COCO_FOLDER, "new/c.json", "output", "COCO folder"),
    ("consolidate", "coco-per-annotator", _COCO_FOLDER, "c.manifest", "summary", "COCO folder"),
    ("consolidate", "gt-job", JOB, "annotations/worker-response/c.json", "output",
     "worker-response folder"),
    ("consolidate", "answers-folder", None, "c.jsonl", "output", "answers folder"),
    # the run writes DIR/agreement.json: the next run would read it as one more annotator
    ("agreement", "coco-per-annotator", _COCO_FOLDER, ".", "agreement JSON", "COCO folder"),
    ("agreement", "coco-per-annotator", _COCO_FOLDER, "new", "agreement JSON", "COCO folder"),
    ("agreement", "gt-job", JOB, "annotations/worker-response/a", "agreement JSON",
     "worker-response folder"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("command", "kind", "original", "inside", "output", "folder"),
    _LISTED,
    ids=[f"{c}-{k}-{i}" for c, k, _, i, _, _ in _LISTED],
)
def test_an_output_the_folder_source_lists_is_refused(
    command: str,
    kind: str,
    original: Path | None,
    inside: str,
    output: str,
    folder: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "source"
    if original is None:
        answers_folder(source)
    else:
        shutil.copytree(original, source)
    before = file_tree(tmp_path)
    out = source / inside
    argv = [command, str(source), "--from", kind, "-o", str(out), "--worker-model", "none"]
    argv += ["--rejects", str(tmp_path / "rejects.jsonl")]  # the default may be refused too
    if kind == "answers-folder":
        argv += ["--manifest", str(JOB_MANIFEST)]
    written = {
        "output": out,
        "summary": f"{out}.summary.json",
        "agreement JSON": out / "agreement.json",
    }[output]
    read = source / "annotations" / "worker-response" if kind == "gt-job" else source
    said = f"the {output} {written} is inside the {folder} {read}, {_READS[folder]} the run reads"
    refused_run(argv, f"{said}: give -o another path", capsys)
    assert file_tree(tmp_path) == before


# (command, --from, the source to copy, where -o goes inside it): what the reader skips
_SKIPPED = [
    ("consolidate", "cvat", CROWD / "cvat-replicas", "c.json"),
    ("consolidate", "answers-folder", None, "c.json"),
    ("agreement", "cvat", CROWD / "cvat-replicas", "."),
    ("agreement", "answers-folder", None, "."),
]


@pytest.mark.parametrize(
    ("command", "kind", "original", "inside"),
    _SKIPPED,
    ids=[f"{c}-{k}-{i}" for c, k, _, i in _SKIPPED],
)
def test_outputs_the_folder_source_skips_are_written_and_not_read_again(
    command: str, kind: str, original: Path | None, inside: str, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    if original is None:
        answers_folder(source)
    else:
        shutil.copytree(original, source)
    before = file_tree(source)
    argv = [command, str(source), "--from", kind, "-o", str(source / inside)]
    argv += ["--rejects", str(tmp_path / "rejects.jsonl")]  # an answers folder lists .jsonl
    if kind == "answers-folder":
        argv += ["--manifest", str(JOB_MANIFEST)]
    argv += ["--output-format", "coco"] if command == "consolidate" else []
    assert main(argv) == 0
    first = file_tree(source)
    assert len(first) > len(before) and all(first[name] == body for name, body in before.items())
    assert main(argv) == 0  # the second run reads the same source: the same outputs
    assert file_tree(source) == first


def test_consolidate_refuses_to_write_over_the_jobs_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    before = file_tree(tmp_path)
    manifest = job / "manifests" / "output" / "output.manifest"
    said = f"the output {manifest} is also the input manifest: give -o another path"
    refused_run(["consolidate", str(job), "-o", str(manifest)], said, capsys)
    assert file_tree(tmp_path) == before


def test_review_refuses_its_folder_inside_the_worker_responses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    before = file_tree(tmp_path)
    out = job / "annotations" / "worker-response" / "review"
    argv = ["review", str(job / "manifests" / "output" / "output.manifest"), "-o", str(out)]
    # the folder and its pictures are no answers; its review.json would be one
    said = f"the review summary {out / 'review.json'} is inside the worker-response folder"
    refused_run([*argv, "--worker-responses", str(job)], said, capsys)
    assert file_tree(tmp_path) == before


def test_from_yolo_refuses_an_output_its_dataset_folder_lists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "dataset"
    (dataset / "labels" / "train").mkdir(parents=True)
    (dataset / "data.yaml").write_text("names: [car]\n")
    before = file_tree(tmp_path)
    argv = ["from-yolo", str(dataset), "--rejects", str(tmp_path / "r.jsonl"), "-o"]
    for out in (dataset / "prior.yaml", dataset / "labels" / "prior.txt", dataset / "x.JPG"):
        said = f"the output {out} is inside the input folder {dataset}, whose .bmp, .jpeg"
        refused_run([*argv, str(out)], said, capsys)
        assert file_tree(tmp_path) == before


@pytest.mark.parametrize(
    ("ext", "outputs"),
    [
        ([], ["a.jpg", "new.JPG", "sub/x.png"]),
        (["--ext", ".TXT"], ["list.txt", "sub/x.Txt"]),
    ],
)
def test_manifest_refuses_an_output_its_listing_would_keep_as_an_image(
    ext: list[str], outputs: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.jpg").write_bytes(b"jpeg")
    (images / "b.txt").write_text("a text file")
    before = file_tree(tmp_path)
    argv = ["manifest", str(images), "--s3-prefix", "s3://my-bucket/images/", *ext, "-o"]
    reads = "whose .TXT files" if ext else "whose .jpg, .jpeg and .png files"
    for out in outputs:
        said = f"the output {images / out} is inside the image folder {images}, {reads}"
        refused_run([*argv, str(images / out)], said, capsys)
        assert file_tree(tmp_path) == before
    # a manifest beside the images is never listed: the usual layout
    assert main([*argv, str(images / "input.manifest")]) == 0
    assert (images / "input.manifest").read_text().count("\n") == 1


@pytest.mark.parametrize(
    ("flag", "output"),
    [
        ("--write-label-config", "label category config"),
        ("-o", "template"),
    ],
)
def test_template_refuses_to_write_over_what_it_reads(
    flag: str, output: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("ball\n")
    example = _copy(SAMPLES / "images" / "img_000.jpg", tmp_path / "good.jpg")
    before = file_tree(tmp_path)
    argv = ["template", "--label-file", str(labels), "--good", str(example), "a ball"]
    argv += ["-o", str(tmp_path / "t.html")] if flag != "-o" else []
    said = f"the {output} {labels} is also the label file: give {flag} another path"
    refused_run([*argv, flag, str(labels)], said, capsys)
    if flag == "-o":
        said = f"the template {example} is also the example image {example}"
        refused_run([*argv, "-o", str(example)], said, capsys)
    assert file_tree(tmp_path) == before


def test_template_refuses_a_preview_page_over_its_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _copy(TRUTH, tmp_path / "truth.manifest")
    before = file_tree(tmp_path)
    argv = ["template", "--labels", "ball", "-o", str(tmp_path / "t.html")]
    argv += ["--preview", str(manifest), "--preview-out", str(manifest), "--offline"]
    said = f"the preview page {manifest} is also the preview manifest: give --preview-out"
    refused_run(argv, said, capsys)
    assert file_tree(tmp_path) == before


# S3: the same URI, and a key under a source prefix (not under a sibling)


def test_an_s3_output_at_the_source_uri_is_refused(
    moto_endpoint: str, s3_client: Any, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    s3_client.put_object(Bucket=bucket, Key="ls.json", Body=LABEL_STUDIO.read_bytes())
    s3_client.put_object(Bucket=bucket, Key="in.manifest", Body=TRUTH.read_bytes())
    before = s3_keys(s3_client, bucket)
    source, manifest = f"s3://{bucket}/ls.json", f"s3://{bucket}/in.manifest"
    aws = ["--endpoint-url", moto_endpoint]
    argv = ["consolidate", source, "--from", "label-studio", "-o", source, *aws]
    refused_run(argv, f"the output {source} is also the source", capsys)
    argv = ["sample", manifest, "-o", manifest, "--count", "3", *aws]
    refused_run(argv, f"the output {manifest} is also the input", capsys)
    assert s3_keys(s3_client, bucket) == before
    body = s3_client.get_object(Bucket=bucket, Key="in.manifest")["Body"].read()
    assert body == TRUTH.read_bytes()


def test_an_s3_output_under_a_source_prefix_is_refused_not_under_a_sibling(
    moto_endpoint: str, s3_client: Any, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    put_tree(s3_client, bucket, "jobs", CROWD / "cvat-replicas")
    before = s3_keys(s3_client, bucket)
    argv = ["consolidate", f"s3://{bucket}/jobs", "--from", "cvat", "--output-format", "coco"]
    argv += ["--worker-model", "none", "--endpoint-url", moto_endpoint]
    argv += ["--rejects", f"s3://{bucket}/elsewhere/rejects.jsonl", "-o"]
    out = f"s3://{bucket}/jobs/c.XML"  # COCO JSON named like a job file: read next time
    refused_run([*argv, out], f"the output {out} is inside the CVAT folder", capsys)
    assert s3_keys(s3_client, bucket) == before
    assert main([*argv, f"s3://{bucket}/jobs2/c.xml"]) == 0
    assert "jobs2/c.xml" in s3_keys(s3_client, bucket)
    # a name the CVAT listing skips is written beside the job files
    assert main([*argv, f"s3://{bucket}/jobs/c.json"]) == 0
    assert "jobs/c.json" in s3_keys(s3_client, bucket)


# what stays allowed


def test_outputs_beside_the_input_are_written(tmp_path: Path) -> None:
    given = _copy(TRUTH, tmp_path / "in.manifest")
    assert main(["sample", str(given), "-o", str(tmp_path / "in.sampled"), "--count", "5"]) == 0
    assert (tmp_path / "in.sampled").read_text().count("\n") == 5
    assert given.read_bytes() == TRUTH.read_bytes()
    # split into the folder that holds the input under another name
    assert main(["split", str(given), "-o", str(tmp_path)]) == 0
    assert (tmp_path / "train.manifest").exists() and (tmp_path / "validation.manifest").exists()
    assert given.read_bytes() == TRUTH.read_bytes()


def test_a_converter_writes_into_the_folder_that_holds_its_input(tmp_path: Path) -> None:
    out = tmp_path / "yolo"
    given = _copy(BOXES, out / "boxes.manifest")
    assert main(["yolo", str(given), "-o", str(out)]) == 0
    assert (out / "data.yaml").exists() and (out / "summary.json").exists()
    assert given.read_bytes() == BOXES.read_bytes()
    assert main(["yolo", str(given), "-o", str(out)]) == 0  # and again, over its own outputs


def test_consolidate_writes_into_the_job_prefix_beside_its_answers(tmp_path: Path) -> None:
    job = tmp_path / "job"
    shutil.copytree(JOB, job)
    before = file_tree(job / "annotations")
    out = job / "consolidated.manifest"
    assert main(["consolidate", str(job), "-o", str(out), "--worker-model", "fit"]) == 0
    assert out.exists() and (job / "consolidated.manifest.worker-model.json").exists()
    assert file_tree(job / "annotations") == before


def test_consolidate_reads_the_model_table_an_earlier_fit_wrote_beside_its_output(
    tmp_path: Path,
) -> None:
    # the run writes no model when given a table: the table's name is its own to read
    out = tmp_path / "out.manifest"
    argv = ["consolidate", str(LABEL_STUDIO), "--from", "label-studio", "-o", str(out)]
    assert main([*argv, "--worker-model", "fit"]) == 0
    table = tmp_path / "out.manifest.worker-model.json"
    fitted = table.read_bytes()
    assert main([*argv, "--worker-model", str(table)]) == 0
    assert table.read_bytes() == fitted


def test_the_layouts_the_review_found_refused_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each writes beside what its source lists, never a name the listing keeps
    cvat = tmp_path / "cvat"
    shutil.copytree(CROWD / "cvat-replicas", cvat)
    monkeypatch.chdir(cvat)
    for _ in range(2):  # the second run reads the same three job files
        argv = ["consolidate", ".", "--from", "cvat", "--output", "out.json"]
        assert main([*argv, "--output-format", "coco"]) == 0
        assert main(["agreement", ".", "--from", "cvat", "--out", "."]) == 0
    assert (cvat / "out.json").is_file() and (cvat / "agreement.json").is_file()
    assert (cvat / "job_11_annotations.xml").read_bytes() == (
        CROWD / "cvat-replicas" / "job_11_annotations.xml"
    ).read_bytes()
    ds = tmp_path / "ds"
    (ds / "images").mkdir(parents=True)
    _copy(SAMPLES / "images" / "img_000.jpg", ds / "images" / "img_000.jpg")
    (ds / "data.yaml").write_text("names: [ball]\n")
    monkeypatch.chdir(tmp_path)
    yolo = ["from-yolo", "ds", "-o", "ds/out.manifest", "--image-prefix", "s3://bkt-x/imgs/"]
    for _ in range(2):
        assert main(yolo) == 0
        assert (ds / "out.manifest").read_text().count("\n") == 1


def test_every_file_a_converter_declares_is_written(tmp_path: Path) -> None:
    # the names the refusal trusts are the names the converters write
    for target in _FOLDER_TARGETS:
        spec = CONVERTERS[target]
        given = (
            DATA / "outputs" / "classification-single.manifest" if target is Target.LST else BOXES
        )
        out = tmp_path / target.value
        argv = [target.value, str(given), "-o", str(out)]
        argv += ["--no-copy-images"] if "copy_images" in spec.reads else []
        assert main(argv) in (0, 1)  # augmented: 1, an empty image rejected; files all written
        missing = [name for name in spec.folder_files if not (out / name).is_file()]
        assert not missing, (target, missing)
    coco = tmp_path / "c.json"
    assert main(["coco", str(BOXES), "-o", str(coco)]) == 0
    assert main(["from-coco", str(coco), "-o", str(tmp_path / "p.manifest")]) == 0
    for name in CONVERTERS[Target.FROM_COCO].side_files:
        assert (tmp_path / f"p.manifest.{name}").is_file(), name
