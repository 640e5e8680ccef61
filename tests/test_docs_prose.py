"""The README's and docs' prose names flags, variables and defaults that must exist as written.

``tests/test_readme.py`` runs the README's code blocks; these tests pin what its sentences
and tables claim, so a renamed flag or a new Lambda variable cannot leave the prose stale.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
from pathlib import Path

import pytest

from gt_toolkit.cli import build_parser
from gt_toolkit.consolidation.settings import ConsolidationSettings
from tests.helpers import REPO

DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
FENCE = re.compile(r"^\s*```.*?^\s*```", re.S | re.M)
CODE_SPAN = re.compile(r"`([^`]+)`")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*[a-z0-9]")

# Flags the docs name that belong to other programs, each with where it comes from.
NOT_GT_CONVERT = {
    "--arch": "python -m gt_toolkit.sagemaker.lambda_zip",
    "--data": "bench/pedestrians.py",
    "--tasks": "bench/crowd_ingest.py",
    "--strict": "mypy",
    "--check": "ruff format",
    "--name": "the PyTorch container's argument form (docs/training.md)",
    "--device": "the shipped train.py",
    "--epochs": "the shipped train.py",
    "--image_size": "the shipped train.py",
    "--train": "the shipped train.py",
    "--validation": "the shipped train.py",
    "--model_dir": "the shipped train.py",
    "--torch-python": "scripts/train_smoke.py",
    "--ol-s3": "an S3 access point alias suffix",
    "--x-s3": "an S3 directory bucket suffix",
    "--table-s3": "an S3 table bucket suffix",
    "--and-post-annotation-lambdas": "part of a Markdown anchor",
}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def _prose(path: Path) -> str:
    """The file without its fenced blocks (those are run by tests/test_readme.py)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def test_every_flag_the_docs_name_is_an_option_of_gt_convert() -> None:
    known = _options(build_parser()).union(*(_options(p) for p in _subparsers().values()))
    missing = sorted(
        f"{path.name}: {flag}"
        for path in DOCS
        for flag in set(FLAG.findall(path.read_text(encoding="utf-8")))
        if flag not in known and flag not in NOT_GT_CONVERT
    )
    assert not missing, missing


def test_a_command_line_in_the_prose_uses_only_that_subcommands_flags() -> None:
    subs = _subparsers()
    seen = 0
    wrong: list[str] = []
    for path in DOCS:
        for span in CODE_SPAN.findall(_prose(path)):
            words = span.split()
            if words[:1] == ["gt-convert"]:
                words = words[1:]
            if not words or words[0] not in subs:
                continue
            options = _options(subs[words[0]])
            for flag in FLAG.findall(span):
                seen += 1
                if flag not in options:
                    wrong.append(f"{path.name}: `{span}`: {words[0]} has no {flag}")
    assert seen >= 10  # the check reads the spans it means to
    assert not wrong, wrong


def _lambda_variables() -> set[str]:
    """Every ``GT_*`` name the package and the Lambda entry points read, as string literals."""
    found: set[str] = set()
    for folder in (REPO / "gt_toolkit", REPO / "lambdas"):
        for source in folder.rglob("*.py"):
            found.update(re.findall(r"[\"'](GT_[A-Z0-9_]+)[\"']", source.read_text("utf-8")))
    return found


def test_the_lambda_variable_table_lists_every_variable_the_code_reads() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `GT_")]
    documented = {name for row in rows for name in re.findall(r"`(GT_[A-Z0-9_]+)`", row)}
    read = _lambda_variables()
    assert "GT_IOU_THRESHOLD" in read  # the scan finds the variables it must
    assert sorted(read - documented) == []
    assert sorted(documented - read) == []


def _consolidation_table() -> list[tuple[str, str, str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    head = text.index("| option (`ConsolidationSettings`, `consolidate_boxes`)")
    rows = []
    for line in text[head:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        name, default, cli = (cell.strip() for cell in line.strip("|").split("|"))
        rows.append((name.strip("`"), default, cli))
    return rows


@pytest.mark.parametrize("name, default, cli", _consolidation_table())
def test_the_consolidation_table_states_the_defaults_and_flags(
    name: str, default: str, cli: str
) -> None:
    settings = ConsolidationSettings()
    literal = re.match(r"`([^`]+)`|([0-9.]+)$", default)
    if literal is None:  # min_support: prose, for "none set: a strict majority"
        assert getattr(settings, name) is None
        assert "majority" in default
    else:
        assert getattr(settings, name) == ast.literal_eval(literal.group(1) or literal.group(2))
    options = _options(_subparsers()["consolidate"])
    for flag in FLAG.findall(cli):
        assert flag in options, f"consolidate has no {flag}"
    assert set(re.findall(r"GT_[A-Z_]+", cli)) <= _lambda_variables()


def test_every_subcommand_that_touches_s3_takes_the_aws_options_and_every_o_spelling() -> None:
    # README, "The flow": -o is also --out and --output everywhere; the AWS options are on
    # every subcommand that touches S3 (demo runs its own moto, or real AWS by --profile)
    for name, parser in _subparsers().items():
        options = _options(parser)
        if name == "demo":
            assert {"--profile", "--region", "--out"} <= options
            assert "-o" not in options
            continue
        assert {"--endpoint-url", "--region", "--profile"} <= options, name
        assert {"-o", "--out", "--output"} <= options, name


def _resolves(dotted: str) -> bool:
    """``gt_toolkit.a.b.name``: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False


def test_every_module_name_and_repository_path_the_docs_cite_exists() -> None:
    dotted = re.compile(r"`(gt_toolkit(?:\.[A-Za-z_]\w*)+)")
    path = re.compile(
        r"(?<![\w/.])((?:gt_toolkit|lambdas|tests|scripts|bench|samples|docs)/[\w./-]+)"
    )
    names = paths = 0
    missing: list[str] = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for name in set(dotted.findall(text)):
            names += 1
            if not _resolves(name):
                missing.append(f"{doc.name}: {name}")
        for cited in set(path.findall(text)):
            cited = cited.rstrip(".")
            if "<" in cited:
                continue
            for suffix, module in ((".lambda_handler", ".py"), (".seed_objects", ".py")):
                if cited.endswith(suffix):  # a function in a module: lambdas/x.lambda_handler
                    cited = cited.removesuffix(suffix) + module
            target = REPO / cited
            paths += 1
            if not target.exists():
                missing.append(f"{doc.name}: {cited}")
    assert names >= 15 and paths >= 20  # the patterns find what the docs cite
    assert not missing, missing
