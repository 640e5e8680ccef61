from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit.cli import main
from tests.helpers import DATA

OUTPUTS = DATA / "outputs"
CONSOLE = OUTPUTS / "console-job.manifest"
GT_CONVERT = Path(sys.executable).parent / "gt-convert"


def test_augmented_cli_writes_outputs_summary_and_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "aug"
    code = main(["augmented", str(CONSOLE), "-o", str(out), "--validation-fraction", "0.5"])
    assert code == 1  # the invalid JSON line is a label that could not be read
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        "gt-convert: labels were lost: 1 records whose labels could not be read "
        f"(listed in {out / 'rejects.jsonl'})"
    )
    assert "label attribute: dogs-and-toys" in err
    assert "rejects by reason: empty-image: 1, failed-object: 1, invalid-json: 1" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objects"] == 3
    assert summary["boxes_per_class"] == {"dog": 3, "toy": 3}
    assert summary["rejected_by_reason"] == {
        "empty-image": 1,
        "failed-object": 1,
        "invalid-json": 1,
    }
    assert summary["rejects_file"] == str(out / "rejects.jsonl")
    rejects = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert sorted(r["line"] for r in rejects) == [2, 3, 7]
    assert (
        summary["num_training_samples"]["train"] + summary["num_training_samples"]["validation"]
        == 3
    )


def test_augmented_cli_prints_the_notes_an_empty_channel_raises(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "aug"
    code = main(["augmented", str(CONSOLE), "-o", str(out), "--validation-fraction", "0"])
    assert code == 1  # the sample's invalid JSON line
    err = capsys.readouterr().err
    channels = json.loads((out / "channels.json").read_text())
    assert channels["num_training_samples"]["validation"] == 0
    empty = [n for n in channels["notes"] if "channel is empty" in n]
    assert empty
    # Every note reaches the terminal and the summary, not only channels.json.
    for note in channels["notes"]:
        assert f"note: {note}" in err
    assert json.loads((out / "summary.json").read_text())["notes"] == channels["notes"]


def test_empty_keep_flag_overrides_the_augmented_default(tmp_path: Path) -> None:
    out = tmp_path / "aug"
    assert main(["augmented", str(CONSOLE), "-o", str(out), "--empty", "keep"]) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objects"] == 4
    assert summary["empty_images"] == 1


def test_coco_cli_to_a_json_file(tmp_path: Path) -> None:
    out = tmp_path / "ds.json"
    assert main(["coco", str(CONSOLE), "-o", str(out), "--boxes", "reject"]) == 1
    doc = json.loads(out.read_text())
    assert len(doc["images"]) == 3  # img_004 has a box outside the image: rejected
    summary = json.loads((tmp_path / "ds.json.summary.json").read_text())
    assert summary["rejected_by_reason"]["box-outside-image"] == 1


def test_rejects_that_lose_nothing_leave_exit_code_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Without its invalid JSON line the console sample still rejects a failed object and an
    # empty image (augmented's --empty default): nothing there could not be read.
    lines = CONSOLE.read_text().splitlines(keepends=True)
    readable = [line for line in lines if not line.strip() or _parses(line)]
    assert len(readable) == len(lines) - 1
    manifest = tmp_path / "in.manifest"
    manifest.write_text("".join(readable))
    assert main(["augmented", str(manifest), "-o", str(tmp_path / "aug")]) == 0
    err = capsys.readouterr().err
    assert "rejects by reason: empty-image: 1, failed-object: 1" in err
    assert "labels were lost" not in err


def test_a_clean_rerun_removes_the_rejects_file_an_earlier_run_left(tmp_path: Path) -> None:
    # left there, it would name a broken line the fixed input no longer has
    broken = tmp_path / "broken.manifest"
    broken.write_text((OUTPUTS / "api-job.manifest").read_text() + "{broken\n")
    out = tmp_path / "yolo"
    assert main(["yolo", str(broken), "-o", str(out)]) == 1
    assert (out / "rejects.jsonl").exists()
    assert main(["yolo", str(OUTPUTS / "api-job.manifest"), "-o", str(out)]) == 0
    assert not (out / "rejects.jsonl").exists()
    assert "rejects_file" not in json.loads((out / "summary.json").read_text())


def _parses(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return False
    return True


def test_strict_policy_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["yolo", str(CONSOLE), "-o", str(tmp_path / "y"), "--policy", "strict"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"gt-convert: ManifestError: {CONSOLE}:3: failed-object: "
        "'dogs-and-toys' failed: ClientError: Annotation tasks expired before "
        "workers completed them"
    ]


def test_video_output_is_refused_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["augmented", str(OUTPUTS / "video-tracking.manifest"), "-o", str(tmp_path / "a")])
    assert code == 1
    err = capsys.readouterr().err
    assert "ConversionError" in err
    assert "'tracks-ref'" in err
    assert "SeqLabel.json" in err
    assert not (tmp_path / "a" / "train.manifest").exists()


def test_label_attribute_option_picks_the_older_job(tmp_path: Path) -> None:
    out = tmp_path / "a"
    args = ["augmented", str(OUTPUTS / "chained-adjustment.manifest"), "-o", str(out)]
    assert main([*args, "--label-attribute", "boxes", "--validation-fraction", "0"]) == 0
    lines = (out / "train.manifest").read_text().splitlines()
    assert len(lines) == 3
    assert all('"boxes"' in x and "adjusted-boxes" not in x for x in lines)


def test_cli_reads_and_writes_s3(store: Any, bucket: str, moto_endpoint: str) -> None:
    store.put_bytes(f"s3://{bucket}/job/output.manifest", CONSOLE.read_bytes())
    code = main(
        [
            "coco",
            f"s3://{bucket}/job/output.manifest",
            "-o",
            f"s3://{bucket}/coco/",
            "--endpoint-url",
            moto_endpoint,
            "--region",
            "us-east-1",
        ]
    )
    assert code == 1  # the sample's invalid JSON line
    doc = json.loads(store.get_bytes(f"s3://{bucket}/coco/annotations/instances_default.json"))
    assert len(doc["annotations"]) == 6
    summary = json.loads(store.get_bytes(f"s3://{bucket}/coco/summary.json"))
    assert summary["rejected"] == 2
    rejects = store.get_bytes(f"s3://{bucket}/coco/rejects.jsonl").splitlines()
    assert len(rejects) == 2


def test_installed_gt_convert_runs_a_conversion(tmp_path: Path) -> None:
    assert GT_CONVERT.exists(), "gt-convert is not installed in the venv"
    out = tmp_path / "voc"
    proc = subprocess.run(
        [str(GT_CONVERT), "voc", str(OUTPUTS / "api-job.manifest"), "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "gt-convert voc:" in proc.stderr
    assert len(list((out / "Annotations").glob("*.xml"))) == 4


def test_every_option_has_one_flag() -> None:
    from gt_toolkit.cli.convert import _FLAGS
    from gt_toolkit.convert import ConvertOptions

    fields = {f.name for f in dataclasses.fields(ConvertOptions)} - {"store"}
    assert set(_FLAGS) == fields


@pytest.mark.parametrize(
    ("target", "offered", "not_offered"),
    [
        ("coco", "--copy-images", "--stratify"),
        ("augmented", "--stratify", "--images-dir"),
        ("class-folders", "--images-dir", "--copy-images"),
        ("from-coco", "--coco-reference", "--boxes"),
        ("from-yolo", "--polygon-boxes", "--coco-reference"),
    ],
)
def test_a_target_offers_only_the_flags_it_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, offered: str, not_offered: str
) -> None:
    with pytest.raises(SystemExit):
        main([target, "--help"])
    text = capsys.readouterr().out
    assert offered in text
    assert not_offered not in text
    with pytest.raises(SystemExit) as stop:
        main([target, str(CONSOLE), "-o", str(tmp_path / "o"), not_offered])
    assert stop.value.code == 1
    assert f"unrecognized arguments: {not_offered}" in capsys.readouterr().err


def test_an_unlabeled_manifest_fails_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.manifest"
    src.write_text('{"source-ref": "s3://bkt-x/a.jpg"}\n{"source-ref": "s3://bkt-x/b.jpg"}\n')
    for target, out in (("augmented", tmp_path / "aug"), ("coco", tmp_path / "c.json")):
        assert main([target, str(src), "-o", str(out)]) == 1
        [line] = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("gt-convert: ConversionError: nothing was converted from")
        assert "no-label: 2" in line
    leftovers = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    # only the rejects files that say why; no manifest, channels.json or COCO file
    assert leftovers == ["aug", "aug/rejects.jsonl", "c.json.rejects.jsonl", "in.manifest"]


_GT_LINE = (
    '{"source-ref":"s3://gt-demo-bucket/cars/%s.png","boxes":{%s"annotations":[{"class_id":0,'
    '"left":%s,"top":40,"width":%s,"height":80}]},"boxes-metadata":{"objects":[{"confidence":'
    '0.87}],"class-map":{"0":"car"},"type":"groundtruth/object-detection","human-annotated":'
    '"yes","creation-date":"2024-03-01T10:11:12.123456","job-name":"cars-api-job"}}\n'
)
_SIZE = '"image_size":[{"width":320,"height":240,"depth":3}],'


@pytest.mark.parametrize(
    ("left", "width"),
    [
        ("1e308", "10"),
        ("-1e308", "10"),
        ("1e20", "10"),
        ("9.3e18", "10"),
        ("10000000000000002.0", "10"),
        ("12", "1e308"),
        ("9223372036854775808", "10"),  # 2**63, a JSON integer
        ("100000000000000000000", "10"),  # 1e20, a JSON integer past 64 bits
        ("2147483648", "10"),
        ("4611686018427387903", "1"),  # passed the old check without a size (2**62)
    ],
)
@pytest.mark.parametrize("sized", [False, True], ids=["no-size", "size"])
@pytest.mark.parametrize("target", ["augmented", "coco", "yolo", "voc"])
def test_a_box_coordinate_no_image_can_have_is_a_reject_not_a_traceback(
    tmp_path: Path, target: str, sized: bool, left: str, width: str
) -> None:
    """``augmented`` wrote a whole-valued 1e308 as a 309-digit int: orjson's TypeError, no
    rejects. Such a box is malformed: its line is a reject naming the annotation, the rest kept.
    """
    size = _SIZE if sized else ""
    manifest = tmp_path / "output.manifest"
    manifest.write_text(_GT_LINE % ("a", size, "12", "100") + _GT_LINE % ("b", size, left, width))
    out = tmp_path / "out"
    args = [target, str(manifest), "-o", str(out), "--validation-fraction", "0"]
    if target == "coco":
        args = [target, str(manifest), "-o", str(out), "--no-copy-images"]
    assert main(args) == 1  # a label that could not be read is lost
    rejects = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    needs_size = not sized and target != "augmented"  # the image targets need a size
    if needs_size:
        assert (rejects[0]["line"], rejects[0]["reason"]) == (1, "no-image-size")
    reject = rejects[-1]
    assert len(rejects) == 1 + needs_size
    assert (reject["file"], reject["line"], reject["reason"]) == (
        str(manifest),
        2,
        "invalid-label",
    )
    key = "left" if width == "10" or left != "12" else "width"
    assert reject["detail"].startswith(f"annotation 0 is malformed: {key} ")
    assert "is beyond +-2147483647 pixels" in reject["detail"]
    if not needs_size:  # the good line is converted (else nothing is, and nothing written)
        summary = json.loads((out / "summary.json").read_text())
        assert summary["objects"] == 1
        assert summary["boxes_per_class"] == {"car": 1}


@pytest.mark.parametrize("left", ["1e20", "-1e308", "100000000000000000000"])
def test_review_and_evaluate_refuse_a_box_no_image_can_have(
    tmp_path: Path, left: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``review`` drew such a box and exited 0; ``evaluate`` scored it against itself as a
    miss (AP 0.252 for two identical manifests: 1e20 + 10 - 1e20 is 0 in floats), exit 0."""
    manifest = tmp_path / "output.manifest"
    manifest.write_text(_GT_LINE % ("a", "", "12", "100") + _GT_LINE % ("b", "", left, "10"))
    out = tmp_path / "review"
    assert main(["review", str(manifest), "-o", str(out)]) == 1
    (reject,) = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert (reject["line"], reject["reason"]) == (2, "invalid-label")
    assert "annotation 0 is malformed: left" in reject["detail"]
    capsys.readouterr()
    both = [str(manifest), str(manifest), "--pred-attribute", "boxes", "--ref-attribute", "boxes"]
    assert main(["evaluate", *both]) == 1
    err = capsys.readouterr().err
    assert f"{manifest}:2: invalid-label: annotation 0 is malformed: left " in err
    assert "is beyond +-2147483647 pixels" in err
