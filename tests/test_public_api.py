"""The public API cannot drift: ``__all__`` is sorted, complete and importable."""

from __future__ import annotations

import types

import gt_toolkit


def test_all_is_sorted_and_unique() -> None:
    assert gt_toolkit.__all__ == sorted(set(gt_toolkit.__all__))


def test_all_names_exist() -> None:
    missing = [n for n in gt_toolkit.__all__ if not hasattr(gt_toolkit, n)]
    assert missing == []


def test_every_public_attribute_is_in_all() -> None:
    public = {
        name
        for name, value in vars(gt_toolkit).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public - {"annotations"} == set(gt_toolkit.__all__) - {"__version__"}


def test_issue_contract_names() -> None:
    for name in ("consolidate_boxes", "render_bounding_box_template", "build_labeling_job_request"):
        assert callable(getattr(gt_toolkit, name))
