"""The ``Examples:`` in the sagemaker modules' docstrings run, so they cannot drift."""

from __future__ import annotations

import doctest
import importlib

import pytest

from gt_toolkit.formats.training_channels import parse_channel_facts

MODULES = [
    "debugger",
    "endpoints",
    "jumpstart",
    "labeling_job",
    "lambda_deploy",
    "lambda_zip",
    "predictions",
    "preflight",
    "preflight_data",
    "pytorch",
    "regions",
    "service_validation",
    "tags",
    "training",
    "tuning",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(f"gt_toolkit.sagemaker.{name}")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(module, globs={**vars(module), "parse_channel_facts": parse_channel_facts})
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0
    if name in ("labeling_job", "pytorch", "regions", "tags", "training", "service_validation"):
        assert result.attempted > 0  # the modules whose examples this file guards
