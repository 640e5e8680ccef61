"""The target table and what ``convert_output`` guarantees for every target."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit.convert import CONVERTERS, ConvertOptions, Target, convert_output
from gt_toolkit.errors import ConversionError, ValidationError
from tests.helpers import DATA

OUTPUTS = DATA / "outputs"

# A value different from the default for every option, to set it.
SET = {
    "label_attribute": "boxes",
    "policy": "strict",
    "rejects": "r.jsonl",
    "box_policy": "reject",
    "empty_policy": "reject",
    "validation_fraction": 0.5,
    "seed": 3,
    "stratify": True,
    "include_metadata": True,
    "copy_images": True,
    "images_dir": "mirror",
    "images_prefix": "s3://bkt-x/",
    "workers": 2,
    "channel_prefix": "s3://bkt-x/channels/",
    "image_prefix": "s3://bkt-x/images/",
    "coco_reference": "ref.json",
    "polygon_boxes": True,
    "job_name": "job",
    "human_annotated": True,
}


def test_registry_covers_every_target_and_loads_each_converter() -> None:
    assert set(CONVERTERS) == set(Target)
    for spec in CONVERTERS.values():
        assert callable(spec.load())


def test_every_option_is_read_by_some_target() -> None:
    fields = {f.name for f in dataclasses.fields(ConvertOptions)} - {"store"}
    assert set(SET) == fields
    assert set().union(*(s.reads for s in CONVERTERS.values())) == fields


@pytest.mark.parametrize("target", list(Target), ids=str)
def test_options_a_target_does_not_read_are_refused(tmp_path: Path, target: Target) -> None:
    unread = sorted(set(SET) - CONVERTERS[target].reads)
    assert unread  # every target ignores something; that must be said, not ignored
    options = ConvertOptions(**{name: SET[name] for name in unread})
    with pytest.raises(ValidationError) as err:
        convert_output(target, OUTPUTS / "api-job.manifest", tmp_path / "out", options)
    assert sorted(err.value.problems) == [f"{target} does not read option {n!r}" for n in unread]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("target", "option"),
    [("coco", "stratify"), ("augmented", "images_dir"), ("class-folders", "copy_images")],
)
def test_the_issue_examples_are_refused(tmp_path: Path, target: str, option: str) -> None:
    with pytest.raises(ValidationError, match=option):
        convert_output(
            target,
            OUTPUTS / "api-job.manifest",
            tmp_path / "o",
            ConvertOptions(**{option: SET[option]}),
        )


def test_an_unknown_target_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown target 'tfrecord'"):
        convert_output("tfrecord", OUTPUTS / "api-job.manifest", tmp_path / "o")


def test_the_registry_imports_no_heavy_library() -> None:
    heavy = ("numpy", "boto3", "botocore", "PIL", "ijson", "yaml")
    probe = (
        "import sys, gt_toolkit.convert as c; c.CONVERTERS; "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _unlabeled(tmp_path: Path) -> Path:
    src = tmp_path / "unlabeled.manifest"
    src.write_text("".join(f'{{"source-ref": "s3://bkt-x/img{i}.jpg"}}\n' for i in range(3)))
    return src


@pytest.mark.parametrize(
    "target", [t for t in Target if CONVERTERS[t].input_kind == "output-manifest"], ids=str
)
@pytest.mark.parametrize("out_name", ["out", "out.json"])
def test_a_run_that_converts_nothing_writes_nothing(
    tmp_path: Path, target: Target, out_name: str
) -> None:
    src = _unlabeled(tmp_path)
    rejects = tmp_path / "rejects.jsonl"
    options: dict[str, Any] = {"rejects": rejects}
    with pytest.raises(ConversionError, match="nothing was converted") as err:
        convert_output(target, src, tmp_path / out_name, ConvertOptions(**options))
    assert "no-label: 3" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rejects.jsonl", "unlabeled.manifest"]
    assert len(rejects.read_text().splitlines()) == 3  # the reasons are kept


def test_a_failed_run_into_an_existing_folder_leaves_it_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "out"
    convert_output("augmented", OUTPUTS / "api-job.manifest", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ConversionError):
        convert_output("augmented", _unlabeled(tmp_path), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not list(tmp_path.glob(".out.*"))


def test_a_run_into_an_existing_folder_replaces_its_files_and_keeps_the_others(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    (out / "Annotations").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "Annotations" / "a.xml").write_text("old")
    convert_output("voc", OUTPUTS / "api-job.manifest", out)
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "Annotations" / "a.xml").read_text().startswith("<?xml")
    assert len(list((out / "Annotations").glob("*.xml"))) == 4
