"""The public API cannot drift: ``__all__`` is sorted, complete and importable."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

import gt_toolkit


def test_all_is_sorted_and_unique() -> None:
    assert gt_toolkit.__all__ == sorted(set(gt_toolkit.__all__))


def test_all_names_exist() -> None:
    missing = [n for n in gt_toolkit.__all__ if not hasattr(gt_toolkit, n)]
    assert missing == []


def test_every_public_attribute_is_in_all() -> None:
    for name in gt_toolkit.__all__:  # load every lazy name first
        getattr(gt_toolkit, name)
    public = {
        name
        for name, value in vars(gt_toolkit).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public - {"annotations"} == set(gt_toolkit.__all__) - {"__version__"}


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        gt_toolkit.no_such_name  # noqa: B018


HEAVY = ("numpy", "boto3", "botocore", "PIL", "jinja2", "liquid", "shapely", "orjson", "regex")


def test_import_loads_no_heavy_library() -> None:
    probe = f"import sys, gt_toolkit; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_lazy_name_loads_only_its_stage() -> None:
    probe = (
        "import sys; from gt_toolkit import parse_s3_uri;"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    # the storage stage needs boto3 (and so botocore), nothing of the later stages
    assert "PIL" not in out.stdout and "jinja2" not in out.stdout and "shapely" not in out.stdout


def test_issue_contract_names() -> None:
    for name in ("consolidate_boxes", "render_bounding_box_template", "build_labeling_job_request"):
        assert callable(getattr(gt_toolkit, name))
