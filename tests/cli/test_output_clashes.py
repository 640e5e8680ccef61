"""Two outputs of one run at one place, or one in a folder the run fills, are refused up front.

A run writes its outputs one after another when it ends: two at one place (by any name)
left only the one written last, with exit code 0 (``coco -o c.json --summary c.json`` left
the 525-byte summary where the COCO file was). Each refused run here exits 1 with one line
naming both and the option to change, and leaves every file as it was.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit.cli import main
from gt_toolkit.cli.options import refuse_outputs
from gt_toolkit.convert import CONVERTERS, Target
from gt_toolkit.convert.staging import LISTING
from gt_toolkit.errors import ValidationError
from tests.helpers import CROWD, DATA, JOB, SAMPLES, file_tree, refused_run, s3_keys

TRUTH = SAMPLES / "truth.manifest"
LABEL_STUDIO = CROWD / "label-studio.json"
_LS = ["--from", "label-studio"]
_TEMPLATE = ["--labels", "ball", "--header", "Box every ball", "--short-instructions", "Tight."]
_TEMPLATE += ["--full-instructions", "Draw one tight box around every ball."]
_LINE = '{"source-ref": "s3://my-bucket/img_000.jpg"}'
_DEMO = "s3://gt-toolkit-demo/images/"  # where the sample manifests' images are

# (argv: IN the input, OUT a folder of earlier outputs, LINK a symlink to OUT; the output
# refused, where, the output it meets there (or the folder it is inside), the option named)
_CLASHES = [
    (["coco", "IN", "-o", "OUT/c.json", "--summary", "OUT/c.json"],
     "summary", "OUT/c.json", "also the output", "--summary"),
    (["coco", "IN", "-o", "OUT/c.json", "--summary", "LINK/c.json"],
     "summary", "LINK/c.json", "also the output OUT/c.json", "--summary"),
    (["from-coco", "IN", "-o", "OUT/p.manifest", "--summary", "OUT/p.manifest.categories.json"],
     "summary", "OUT/p.manifest.categories.json", "also the output file", "--summary"),
    (["augmented", "IN", "-o", "OUT", "--summary", "OUT/channels.json"],
     "summary", "OUT/channels.json", "also the output file", "--summary"),
    (["yolo", "IN", "-o", "OUT", "--summary", "OUT/data.yaml"],
     "summary", "OUT/data.yaml", "also the output file", "--summary"),
    # a folder named like a file: its summary goes beside it, its data.yaml in it
    (["yolo", "IN", "-o", "OUT/y.json", "--summary", "OUT/y.json/data.yaml"],
     "summary", "OUT/y.json/data.yaml", "also the output file", "--summary"),
    # the list of files a rerun replaces (gt_toolkit.convert.staging)
    (["yolo", "IN", "-o", "OUT", "--summary", "OUT/.gt-toolkit-files.json"],
     "summary", "OUT/.gt-toolkit-files.json", "also the output file", "--summary"),
    (["coco", "IN", "-o", "OUT/c.json", "--rejects", "OUT/.c.json.gt-toolkit-files.json"],
     "rejects file", "OUT/.c.json.gt-toolkit-files.json", "also the output file", "--rejects"),
    # split stages its manifests as a converter does, and lists them for its rerun too: the
    # list replaced the rejects, and the run said the rejected line was listed there
    (["split", "IN", "-o", "OUT", "--rejects", "OUT/.gt-toolkit-files.json"],
     "rejects file", "OUT/.gt-toolkit-files.json", "also the output file", "--rejects"),
    (["coco", "IN", "-o", "OUT/c.json", "--copy-images", "--summary", "OUT/images/s.json"],
     "summary", "OUT/images/s.json",
     "inside the images folder OUT/images, where the run writes a file per image", "--summary"),
    (["yolo", "IN", "-o", "OUT", "--rejects", "OUT/classes.txt"],
     "rejects file", "OUT/classes.txt", "also the output file", "--rejects"),
    (["yolo", "IN", "-o", "OUT", "--summary", "OUT/labels/train/img_000.txt"],
     "summary", "OUT/labels/train/img_000.txt",
     "inside the labels folder OUT/labels, where the run writes a file per image", "--summary"),
    (["voc", "IN", "-o", "OUT", "--copy-images", "--rejects", "OUT/JPEGImages/rejects.jsonl"],
     "rejects file", "OUT/JPEGImages/rejects.jsonl",
     "inside the JPEGImages folder OUT/JPEGImages, where the run writes a file per image",
     "--rejects"),
    (["consolidate", "IN", *_LS, "-o", "OUT/c.json", "--output-format", "coco", "--quality",
      "OUT/c"], "worker-quality table", "OUT/c.json", "also the output", "--quality"),
    (["consolidate", "IN", *_LS, "-o", "OUT/c.csv", "--quality", "OUT/c"],
     "worker-quality CSV", "OUT/c.csv", "also the output", "--quality"),
    (["consolidate", "IN", *_LS, "-o", "OUT/c", "--quality", "OUT/c.summary"],
     "worker-quality table", "OUT/c.summary.json", "also the summary", "--quality"),
    (["consolidate", "IN", *_LS, "-o", "OUT/c", "--worker-model", "fit", "--quality",
      "OUT/c.worker-model"],
     "worker-quality table", "OUT/c.worker-model.json", "also the worker model", "--quality"),
    (["template", *_TEMPLATE, "-o", "OUT/t.html", "--write-label-config", "LINK/t.html"],
     "label category config", "LINK/t.html", "also the template OUT/t.html",
     "--write-label-config"),
    # the default preview page meets an explicit option: the message says which to pass
    (["template", *_TEMPLATE, "-o", "OUT/t.html", "--write-label-config", "OUT/t.preview.html",
      "--preview", _LINE, "--offline"],
     "preview page", "OUT/t.preview.html", "also the label category config", "--preview-out"),
]  # fmt: skip


def _input(command: str, folder: Path) -> Path:
    """A copy of what ``command`` reads, in ``folder`` (from-coco: a COCO file made now)."""
    folder.mkdir()
    if command == "from-coco":
        given = folder / "c.json"
        assert main(["coco", str(TRUTH), "-o", str(given)]) == 0
        (folder / "c.json.summary.json").unlink()
        return given
    original = LABEL_STUDIO if command == "consolidate" else TRUTH
    return Path(shutil.copy(original, folder / original.name))


@pytest.mark.parametrize(
    ("argv", "output", "where", "clash", "option"),
    _CLASHES,
    ids=[f"{a[0]}-{w.rsplit('/', 1)[-1]}" for a, _, w, _, _ in _CLASHES],
)
def test_two_outputs_of_one_run_at_one_place_are_refused(
    argv: list[str],
    output: str,
    where: str,
    clash: str,
    option: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    given = _input(argv[0], tmp_path / "in")
    out = tmp_path / "out"
    (tmp_path / "link").symlink_to(out, target_is_directory=True)
    earlier = out / where.split("/", 1)[1]  # an earlier run's file where this one clashes
    earlier.parent.mkdir(parents=True)
    earlier.write_text("an earlier run's output\n")
    before = file_tree(tmp_path)

    def placed(text: str) -> str:
        return text.replace("OUT", str(out)).replace("LINK", str(tmp_path / "link"))

    said = placed(f"the {output} {where} is {clash}: give {option} another path")
    capsys.readouterr()  # from-coco's input was made by a run
    refused_run([str(given) if a == "IN" else placed(a) for a in argv], said, capsys)
    assert file_tree(tmp_path) == before


@pytest.mark.parametrize(
    ("kind", "inside", "clash"),
    [
        ("label-studio", "", "is also the source"),
        ("gt-job", "manifests/output/output.manifest", "is also the input manifest"),
        (
            "cvat",
            "job_11_annotations.xml",
            "is inside the CVAT folder SOURCE, whose .xml and .zip files the run reads",
        ),
    ],
)
def test_agreement_refuses_an_output_folder_at_a_file_the_source_reads(
    kind: str, inside: str, clash: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the pages would go under a file: the run failed with 'Not a directory' after reading
    # the whole source; now it names the file before reading anything
    original = {"label-studio": LABEL_STUDIO, "gt-job": JOB, "cvat": CROWD / "cvat-replicas"}
    if original[kind].is_dir():
        source = Path(shutil.copytree(original[kind], tmp_path / "source"))
    else:
        source = Path(shutil.copy(original[kind], tmp_path / "source.json"))
    out = source / inside if inside else source
    before = file_tree(tmp_path)
    argv = ["agreement", str(source), "--from", kind, "-o", str(out)]
    said = f"the output folder {out} {clash}: give -o another path"
    refused_run(argv, said.replace("SOURCE", str(source)), capsys)
    assert file_tree(tmp_path) == before


@pytest.mark.parametrize(("out", "output"), [("images", "pictures folder"), ("", "output folder")])
def test_review_refuses_its_images_folder_as_where_it_draws(
    out: str, output: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the pictures are named from the manifest (NNNN_<image>.png): one of the user's images
    # of that name there would be replaced, and the clean-up of an earlier review is there
    review = tmp_path / "review"
    images = Path(shutil.copytree(SAMPLES / "images", review / out))
    before = file_tree(tmp_path)
    argv = ["review", str(TRUTH), "-o", str(review), "--images-dir", str(images)]
    where = images if out else review
    said = f"the {output} {where} is also the images folder: give -o another path"
    refused_run(argv, said, capsys)
    assert file_tree(tmp_path) == before


# (argv: TMP a folder holding data/images/ (the sample images), voc/JPEGImages/a/ (a copy)
# and alias, a symlink to data; IN the input, the truth manifest unless given; the folder
# the run fills, and how it meets the input)
_FILLED = [
    # COCO's images/ beside x.json is the user's images/: each copied onto itself, listed
    # as the run's own, and removed by the next run that did not copy it again
    (["coco", "IN", "-o", "TMP/data/x.json", "--copy-images", "--images-dir", "TMP/data/images"],
     "images folder TMP/data/images", "is also the --images-dir folder"),
    (["yolo", "IN", "-o", "TMP/data", "--copy-images", "--images-dir", "TMP/alias/images/"],
     "images folder TMP/data/images", "is also the --images-dir folder TMP/alias/images/"),
    (["voc", "IN", "-o", "TMP/voc", "--copy-images", "--images-dir", "TMP/voc/JPEGImages/a"],
     "JPEGImages folder TMP/voc/JPEGImages", "holds the --images-dir folder TMP/voc/JPEGImages/a"),
    (["jumpstart-od", "IN", "-o", "TMP/data", "--images-dir", "TMP/data/images"],  # copies
     "images folder TMP/data/images", "is also the --images-dir folder"),
    # any file in a folder of labels may be replaced by a label: the input manifest too
    (["yolo", "TMP/voc/labels/in.manifest", "-o", "TMP/voc"],
     "labels folder TMP/voc/labels", "holds the input TMP/voc/labels/in.manifest"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "folder", "clash"), _FILLED, ids=[a[0] for a, _, _ in _FILLED])
def test_an_input_in_a_folder_the_run_fills_is_refused(
    argv: list[str], folder: str, clash: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(SAMPLES / "images", tmp_path / "data" / "images")
    shutil.copytree(SAMPLES / "images", tmp_path / "voc" / "JPEGImages" / "a")
    (tmp_path / "voc" / "labels").mkdir()
    shutil.copy(TRUTH, tmp_path / "voc" / "labels" / "in.manifest")
    (tmp_path / "alias").symlink_to(tmp_path / "data", target_is_directory=True)
    before = file_tree(tmp_path)
    placed = [str(TRUTH) if a == "IN" else a.replace("TMP", str(tmp_path)) for a in argv]
    said = f"the {folder}, where the run writes a file per image, {clash}: give -o another path"
    refused_run(placed, said.replace("TMP", str(tmp_path)), capsys)
    assert file_tree(tmp_path) == before


def test_an_image_in_the_folder_its_copy_goes_to_stops_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a synced bucket: the key images/img_000.jpg is data/images/img_000.jpg, the copy's place
    data = tmp_path / "data"
    shutil.copytree(SAMPLES / "images", data / "images")
    before = file_tree(tmp_path)
    argv = ["coco", str(TRUTH), "-o", str(data / "x.json"), "--copy-images"]
    said = f"the image {_DEMO}img_000.jpg is in {data / 'images'}, where the run copies the images"
    refused_run([*argv, "--images-dir", str(data)], f"{said}: give -o another path", capsys)
    assert file_tree(tmp_path) == before
    # the folder holds the output, but no image is where its copy goes
    argv = [
        "yolo",
        str(TRUTH),
        "-o",
        str(data / "yolo"),
        "--copy-images",
        "--images-dir",
        str(data),
    ]
    assert main(argv) == 0
    assert len(list((data / "yolo" / "images").rglob("*.jpg"))) == len(list(data.glob("*/*.jpg")))


@pytest.mark.parametrize("mirror", [False, True], ids=["from-s3", "from-a-local-copy"])
def test_an_s3_image_in_the_prefix_its_copy_goes_to_stops_the_run(
    mirror: bool,
    moto_endpoint: str,
    s3_client: Any,
    bucket: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the copies went to the images' own keys: the run that failed on a missing image deleted
    # the 5 it had copied, and the next one failed on those and deleted the other 35
    manifest = TRUTH.read_text().replace(_DEMO, f"s3://{bucket}/images/")
    s3_client.put_object(Bucket=bucket, Key="in.manifest", Body=manifest.encode())
    for image in sorted((SAMPLES / "images").iterdir()):
        s3_client.put_object(Bucket=bucket, Key=f"images/{image.name}", Body=image.read_bytes())
    before = s3_keys(s3_client, bucket)
    argv = ["coco", f"s3://{bucket}/in.manifest", "-o", f"s3://{bucket}/x.json", "--copy-images"]
    argv += ["--endpoint-url", moto_endpoint]
    argv += ["--images-dir", str(SAMPLES / "images")] if mirror else []
    said = f"the image s3://{bucket}/images/img_000.jpg is in s3://{bucket}/images, where the run"
    refused_run(argv, said, capsys)
    assert s3_keys(s3_client, bucket) == before


def test_two_s3_outputs_at_one_key_are_refused(
    moto_endpoint: str, s3_client: Any, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    s3_client.put_object(Bucket=bucket, Key="in.manifest", Body=TRUTH.read_bytes())
    s3_client.put_object(Bucket=bucket, Key="out/c.json", Body=b"an earlier run's COCO file")
    before = s3_keys(s3_client, bucket)
    given, out = f"s3://{bucket}/in.manifest", f"s3://{bucket}/out"
    aws = ["--endpoint-url", moto_endpoint]
    argv = ["coco", given, "-o", f"{out}/c.json", "--summary", f"{out}/c.json", *aws]
    said = f"the summary {out}/c.json is also the output: give --summary another path"
    refused_run(argv, said, capsys)
    argv = ["yolo", given, "-o", out, "--copy-images", "--rejects", f"{out}/images/train/r.jsonl"]
    argv += aws
    refused_run(argv, f"the rejects file {out}/images/train/r.jsonl is inside the images", capsys)
    assert s3_keys(s3_client, bucket) == before
    body = s3_client.get_object(Bucket=bucket, Key="out/c.json")["Body"].read()
    assert body == b"an earlier run's COCO file"


# what stays allowed


def test_outputs_at_distinct_places_are_all_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["coco", str(TRUTH), "-o", str(out / "c.json"), "--summary", str(out / "s.json")]
    assert main(argv) == 0
    assert (out / "c.json").read_bytes() != (out / "s.json").read_bytes()
    # beside a converter's own files, outside the folders it fills per image
    yolo = tmp_path / "yolo"
    argv = ["yolo", str(TRUTH), "-o", str(yolo), "--summary", str(yolo / "yolo-summary.json")]
    assert main([*argv, "--rejects", str(yolo / "notes" / "rejects.jsonl")]) == 0
    assert (yolo / "yolo-summary.json").is_file() and (yolo / "data.yaml").is_file()
    argv = ["consolidate", str(LABEL_STUDIO), *_LS, "-o", str(out / "c.manifest")]
    assert main([*argv, "--quality", str(out / "q"), "--worker-model", "fit"]) == 0
    for name in ("c.manifest", "c.manifest.summary.json", "c.manifest.worker-model.json"):
        assert (out / name).is_file(), name
    assert (out / "q.json").is_file() and (out / "q.csv").is_file()
    argv = ["template", *_TEMPLATE, "-o", str(out / "t.html"), "--preview", _LINE, "--offline"]
    assert main([*argv, "--write-label-config", str(out / "t.json")]) == 0
    assert (out / "t.preview.html").is_file() and (out / "t.json").is_file()


def test_a_folder_a_run_does_not_fill_may_hold_its_inputs_and_outputs(tmp_path: Path) -> None:
    # COCO's images/ holds copies only with --copy-images; the labels go beside the images
    data = Path(shutil.copytree(SAMPLES / "images", tmp_path / "data" / "images")).parent
    images = file_tree(data / "images")
    argv = ["coco", str(TRUTH), "-o", str(data / "x.json"), "--images-dir", str(data / "images")]
    assert main([*argv, "--summary", str(data / "images" / "x.summary.json")]) == 0
    argv = ["yolo", str(TRUTH), "-o", str(data), "--images-dir", str(data)]
    assert main(argv) == 0
    assert (data / "labels").is_dir() and (data / "images" / "x.summary.json").is_file()
    # copies from a folder beside the output, not around it
    argv = ["coco", str(TRUTH), "-o", str(tmp_path / "c.json"), "--copy-images"]
    assert main([*argv, "--images-dir", str(data / "images")]) == 0
    assert len(list((tmp_path / "images").iterdir())) == len(images)
    assert {k: v for k, v in file_tree(data / "images").items() if k in images} == images


def test_agreement_writes_into_a_folder_source_and_beside_a_file_source(tmp_path: Path) -> None:
    job = Path(shutil.copytree(JOB, tmp_path / "job"))
    before = file_tree(job)
    assert main(["agreement", str(job), "-o", str(job)]) == 0  # beside the job's files
    assert (job / "agreement.json").is_file()
    after = file_tree(job)
    assert len(after) > len(before) and all(after[name] == body for name, body in before.items())
    export = Path(shutil.copy(LABEL_STUDIO, tmp_path / "ls.json"))
    assert main(["agreement", str(export), *_LS, "-o", str(tmp_path / "ls")]) == 0
    assert (tmp_path / "ls" / "agreement.html").is_file()
    assert export.read_bytes() == LABEL_STUDIO.read_bytes()


# the rule itself


def test_the_later_of_two_outputs_is_refused_by_its_own_option() -> None:
    both = [("output", "s3://my-bucket/x", "-o"), ("summary", "s3://my-bucket/x", "--summary")]
    said = "the summary s3://my-bucket/x is also the output: give --summary another path"
    with pytest.raises(ValidationError, match=said):
        refuse_outputs(both, {})
    refuse_outputs([both[0], ("summary", "s3://my-bucket/x.json", "--summary")], {})


def test_a_file_of_the_layout_the_run_does_not_write_is_kept_clear_of_outputs() -> None:
    # an earlier fit's model: this run may read it, but no output of it may replace it
    model = ("worker model", "s3://my-bucket/m.json", None)
    refuse_outputs([model], {"worker model table": "s3://my-bucket/m.json"})
    rejects = ("rejects file", "s3://my-bucket/m.json", "--rejects")
    with pytest.raises(ValidationError, match="is also the worker model: give --rejects"):
        refuse_outputs([model, rejects], {})


_PETS = DATA / "outputs" / "classification-single.manifest"


def test_a_folder_converter_writes_only_its_own_files_and_its_image_folders(
    tmp_path: Path,
) -> None:
    # the folders the refusal keeps clear are the folders the converters fill
    pets = tmp_path / "pets"
    pets.mkdir()
    for n in range(1, 5):
        shutil.copy(SAMPLES / "images" / "img_000.jpg", pets / f"p{n}.jpg")
    for target, spec in CONVERTERS.items():
        if spec.input_kind != "output-manifest":
            continue
        classes = target in (Target.LST, Target.CLASS_FOLDERS)
        out = tmp_path / target.value
        argv = [target.value, str(_PETS if classes else TRUTH), "-o", str(out)]
        argv += ["--copy-images"] if "copy_images" in spec.reads else []
        if "images_dir" in spec.reads:
            argv += ["--images-dir", str(pets if classes else SAMPLES / "images")]
        assert main(argv) in (0, 1), target  # augmented: 1, an empty image rejected
        written = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()]
        own = {*spec.folder_files, LISTING, "summary.json", "rejects.jsonl"}
        filled = [name for name in written if name.split("/")[0] in spec.image_folders]
        assert sorted({*own, *filled} & set(written)) == sorted(written), target
        assert bool(filled) == bool(spec.image_folders), target


_LONG = "s" * 251 + ".json"  # 256 bytes: no file system holds such a name


@pytest.mark.parametrize(
    ("blocker", "summary", "said"),
    [
        ("file", "in-the-way/s/summary.json", "cannot write {S}: {T}/in-the-way is not a folder"),
        ("link", "in-the-way/s/summary.json", "cannot write {S}: {T}/in-the-way is not a folder"),
        (None, _LONG, "cannot write {S}: File name too long"),
        # under a file this run writes: a folder was made where classes.txt goes
        (None, "y/classes.txt/s.json", "the summary {S} is under the output file {T}/y/classes"),
    ],
)
def test_a_summary_that_cannot_be_written_stops_the_run_before_the_output_moves(
    tmp_path: Path,
    blocker: str | None,
    summary: str,
    said: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the summary is written last: this one failed after the output had replaced the earlier
    # run's, and the run exited 1 with a new dataset in place
    out = tmp_path / "y"
    assert main(["yolo", str(TRUTH), "-o", str(out)]) == 0
    earlier = file_tree(out)
    in_the_way = tmp_path / "in-the-way"
    if blocker == "file":
        in_the_way.write_text("not a folder")
    elif blocker == "link":
        in_the_way.symlink_to(tmp_path / "nowhere")
    before = sorted(p.name for p in tmp_path.iterdir())
    few = tmp_path / "few.manifest"
    few.write_text("".join(TRUTH.read_text().splitlines(keepends=True)[:3]))
    capsys.readouterr()
    where = str(tmp_path / summary)
    said = said.replace("{S}", where).replace("{T}", str(tmp_path))
    refused_run(["yolo", str(few), "-o", str(out), "--summary", where], said, capsys)
    assert file_tree(out) == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "few.manifest"])


@pytest.mark.parametrize(
    ("option", "path", "said"),
    [
        # it made a folder x.json for itself, then the run failed moving x.json there
        ("--summary", "x.json/s.json", "the summary {P} is under the output file {T}/x.json"),
        # the summary is written after the output is in place: it replaced x.json, then failed;
        # the rejects file, the later output, is named (as every clash names the later one)
        (
            "--summary",
            "r.jsonl/s.json",
            "the rejects file {T}/r.jsonl is a file, and the summary {P} goes under it: give "
            "--rejects another path",
        ),
        (
            "--rejects",
            "x.json.summary.json/r.jsonl",
            "the rejects file {P} is under the output file {T}/x.json.summary.json",
        ),
    ],
)
def test_an_output_under_another_file_output_is_refused(
    tmp_path: Path, option: str, path: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out, where = tmp_path / "x.json", str(tmp_path / path)
    argv = ["coco", str(TRUTH), "-o", str(out), option, where]
    argv += ["--rejects", str(tmp_path / "r.jsonl")] if option == "--summary" else []
    refused_run(argv, said.replace("{P}", where).replace("{T}", str(tmp_path)), capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["coco", "IN", "-o", "OUT/C.json", "--summary", "OUT/c.json"],
            "the summary OUT/c.json differs from the output OUT/C.json only in case",
        ),
        (
            ["coco", "IN", "-o", "OUT/\u00e9.json", "--summary", "OUT/e\u0301.json"],
            "the summary OUT/e\u0301.json differs from the output OUT/\u00e9.json only in how "
            "its accents are encoded (one file on macOS disks)",
        ),
        (
            ["yolo", "IN", "-o", "OUT/y", "--rejects", "OUT/Y/Data.yaml"],
            "the rejects file OUT/Y/Data.yaml differs from the output file OUT/y/data.yaml "
            "only in case",
        ),
    ],
)
def test_two_new_outputs_that_differ_only_in_case_are_refused(
    tmp_path: Path, argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # neither exists yet, so no inode tells; on a case-insensitive disk (macOS, Windows)
    # the one written last replaced the other, and the run exited 0
    paths = [a.replace("IN", str(TRUTH)).replace("OUT", str(tmp_path)) for a in argv]
    refused_run(paths, said.replace("OUT", str(tmp_path)), capsys)
    assert list(tmp_path.iterdir()) == []


def test_outputs_that_differ_in_more_than_case_or_on_s3_are_fine() -> None:
    outputs: list[tuple[str, str | None, str | None]] = [
        ("output", "s3://b/C.json", "-o"),
        ("summary", "s3://b/c.json", "--summary"),
        ("rejects file", "C.json.rejects.jsonl", "--rejects"),
        # one file to casefold(), never to a disk that ignores case
        ("output file", "straße.json", "-o"),
        ("worker-quality table", "STRASSE.json", "--quality"),
        ("worker-quality CSV", "\ufb01le.json", "--quality"),
        ("worker model", "file.json", "--quality"),
    ]
    refuse_outputs(outputs, {})


@pytest.mark.parametrize("target", ["from-coco", "coco"])
def test_a_folder_given_to_a_one_file_output_is_named_as_such(
    tmp_path: Path, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # -o . said "the output file ..categories.json is under the output file ."
    source = CROWD / "coco-raters.json" if target == "from-coco" else TRUTH
    folder = tmp_path / ("d.json" if target == "coco" else "d")
    folder.mkdir()
    argv = [target, str(source), "-o", str(folder), "--image-prefix", "s3://bkt-x/"]
    argv = argv if target == "from-coco" else argv[:4]
    said = f"-o {folder} is a folder, and {target} writes one file: give a file name"
    refused_run(argv, said, capsys)
    assert [p.name for p in tmp_path.iterdir()] == [folder.name] and not any(folder.iterdir())


def test_a_converter_writes_a_folder_named_near_the_limit(tmp_path: Path) -> None:
    # a 240-byte folder name is legal, but the converters stage it in
    # '.<name>.<host>.<pid>.<token>.part' beside it, whose name was not cut: "File name too long"
    out = tmp_path / ("\u00e9" * 120)
    assert main(["yolo", str(TRUTH), "-o", str(out)]) == 0
    assert (out / "data.yaml").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_an_output_folder_named_past_the_limit_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the check asked only the nearest folder that exists: the run read the whole source,
    # made the folders it could on the way, then failed writing (and, under a folder that
    # exists, the check itself stopped with a traceback)
    for base in (tmp_path, tmp_path / "new"):
        out = base / ("n" * 256) / "out.manifest"
        argv = ["consolidate", str(LABEL_STUDIO), *_LS, "--image-prefix", "s3://bkt/p/"]
        refused_run([*argv, "-o", str(out)], "File name too long", capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_side_file_named_past_the_limit_stops_the_run_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # x.manifest of 241 bytes is legal and so is its summary (254), but not its
    # categories file (257): the run read everything, wrote its rejects file (one image
    # listed twice), then failed in its stage and left that rejects file behind
    coco = tmp_path / "in" / "coco.json"
    coco.parent.mkdir()
    image = {"file_name": "a.jpg", "width": 100, "height": 100}
    box = {"category_id": 1, "bbox": [1, 1, 10, 10], "iscrowd": 0, "area": 100}
    doc = {
        "images": [{"id": 1, **image}, {"id": 2, **image}],
        "annotations": [{"id": 1, "image_id": 1, **box}, {"id": 2, "image_id": 2, **box}],
        "categories": [{"id": 1, "name": "car"}],
    }
    coco.write_text(json.dumps(doc))
    out = tmp_path / "out" / ("q" * 232 + ".manifest")
    out.parent.mkdir()
    argv = ["from-coco", str(coco), "--image-prefix", "s3://bkt/i/", "-o", str(out)]
    refused_run(argv, f"{out}.categories.json: File name too long", capsys)
    assert list(out.parent.iterdir()) == []
    # a name that fits is written, the listing of files beside it (none) not asked for
    fits = out.parent / ("q" * 226 + ".manifest")
    assert main([*argv[:-1], str(fits)]) == 1  # the second image entry is a reject
    assert (out.parent / f"{fits.name}.categories.json").is_file()


@pytest.mark.parametrize("command", ["yolo", "consolidate"])
def test_a_path_that_is_not_utf8_is_refused_before_anything_is_written(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # bytes that are not UTF-8 reach argv as surrogate escapes: the run wrote its outputs,
    # then stopped with a TypeError traceback writing its summary (JSON holds only UTF-8)
    out = str(tmp_path / os.fsdecode(b"out-\xff"))
    argv = {
        "yolo": ["yolo", str(TRUTH)],
        "consolidate": ["consolidate", str(LABEL_STUDIO), *_LS, "--image-prefix", "s3://bkt/p/"],
    }[command]
    said = r"b'" + str(tmp_path) + r"/out-\xff' holds '\udcff', not valid Unicode"
    refused_run([*argv, "-o", out], said, capsys)
    assert list(tmp_path.iterdir()) == []
