from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit.errors import LambdaZipError
from gt_toolkit.sagemaker import lambda_zip
from gt_toolkit.sagemaker.lambda_deploy import deploy_lambdas
from gt_toolkit.sagemaker.lambda_zip import (
    TARGET_ENTRY,
    LambdaTarget,
    build_lambda_zip,
    lambda_requirements,
    read_lambda_target,
)
from tests.helpers import REPO

PYVER = f"{sys.version_info.major}.{sys.version_info.minor}"


def test_requirements_are_measured_from_the_handlers_imports() -> None:
    names = {r.split("==")[0].lower() for r in lambda_requirements()}
    assert {"numpy", "orjson"} <= names
    # the runtime ships boto3; the handlers' path must not drag in UI or template deps
    assert not names & {
        "boto3",
        "botocore",
        "s3transfer",
        "urllib3",
        "pillow",
        "jinja2",
        "python-liquid",
    }


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def test_code_only_zip_is_reproducible_and_complete(tmp_path: Path) -> None:
    first = build_lambda_zip(
        tmp_path / "a.zip", python=PYVER, requirements=[], cache_dir=tmp_path / "c"
    )
    second = build_lambda_zip(
        tmp_path / "b.zip", python=PYVER, requirements=[], cache_dir=tmp_path / "c"
    )
    assert first.path.read_bytes() == second.path.read_bytes()
    names = zip_names(first.path)
    assert names == sorted(names)
    assert {
        "lambdas/pre_annotation.py",
        "lambdas/post_annotation.py",
        "gt_toolkit/__init__.py",
    } <= set(names)
    assert first.bytecode
    tag = f"cpython-{PYVER.replace('.', '')}"
    assert f"gt_toolkit/consolidation/__pycache__/engine.{tag}.pyc" in names
    assert not [n for n in names if n.endswith(".pyc") and tag not in n]
    assert not [n for n in names if "/tests/" in n or n.startswith(("templates/", "bin/"))]
    with zipfile.ZipFile(first.path) as zf:
        # the code deployed is the code the tests import: no build-time rewrite
        assert zf.read("gt_toolkit/__init__.py") == (REPO / "gt_toolkit/__init__.py").read_bytes()


def test_zip_gt_toolkit_imports_lazily(tmp_path: Path) -> None:
    built = build_lambda_zip(
        tmp_path / "a.zip", python=PYVER, requirements=[], cache_dir=tmp_path / "c"
    )
    root = tmp_path / "root"
    with zipfile.ZipFile(built.path) as zf:
        zf.extractall(root)
    probe = (
        "import sys, gt_toolkit; assert 'PIL' not in sys.modules and 'numpy' not in sys.modules;"
        "from gt_toolkit import consolidate_boxes; assert 'numpy' in sys.modules;"
        "assert gt_toolkit.__version__ not in ('', '0.0.0'), gt_toolkit.__version__;"
        "print(gt_toolkit.consolidate_boxes is consolidate_boxes, gt_toolkit.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True
    )
    is_same, where = out.stdout.split()
    assert is_same == "True" and where.startswith(str(root))


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"arch": "sparc"}, "arch must be"),
        ({"python": "python3.12"}, "python must be a version like '3.12'"),
        ({"python": "3"}, "python must be a version like '3.12'"),
    ],
)
def test_a_bad_target_is_refused(tmp_path: Path, kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(LambdaZipError, match=problem):
        build_lambda_zip(tmp_path / "x.zip", requirements=[], **kwargs)
    assert not (tmp_path / "x.zip").exists()


def test_code_over_lambdas_unzipped_limit_writes_no_zip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out" / "fn.zip"
    out.parent.mkdir()
    out.write_bytes(b"the previous build")
    # the real limit is 250 MiB; the code alone is far below it, so the limit is lowered
    monkeypatch.setattr(lambda_zip, "MAX_UNZIPPED_BYTES", 1000)
    with pytest.raises(LambdaZipError, match="unzipped, over Lambda's limit of 1,000"):
        build_lambda_zip(
            out, python=PYVER, requirements=[], cache_dir=tmp_path / "c", compile_bytecode=False
        )
    assert out.read_bytes() == b"the previous build"
    assert sorted(p.name for p in out.parent.iterdir()) == ["fn.zip"]


def test_stray_files_in_the_package_stay_out_of_the_zip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "checkout"
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "gt_toolkit", checkout / "gt_toolkit", ignore=skip)
    shutil.copytree(REPO / "lambdas", checkout / "lambdas", ignore=skip)
    (checkout / "gt_toolkit" / ".env").write_text("AWS_SECRET_ACCESS_KEY=do-not-ship\n")
    (checkout / "gt_toolkit" / "consolidation" / "engine.py.orig").write_text("# merge left\n")
    (checkout / "gt_toolkit" / "scratch").mkdir()
    (checkout / "gt_toolkit" / "scratch" / "notes.txt").write_text("draft\n")
    monkeypatch.setattr(lambda_zip, "_PACKAGE_DIR", checkout / "gt_toolkit")
    built = build_lambda_zip(
        tmp_path / "fn.zip",
        python=PYVER,
        requirements=[],
        cache_dir=tmp_path / "c",
        compile_bytecode=False,
    )
    package = [n for n in zip_names(built.path) if n.startswith("gt_toolkit/")]
    assert "gt_toolkit/py.typed" in package
    assert "gt_toolkit/consolidation/engine.py" in package
    assert [n for n in package if not n.endswith((".py", "py.typed"))] == []


def test_the_zip_records_its_target_and_deploys_with_it(
    tmp_path: Path, aws: Callable[[str], Any], bucket: str
) -> None:
    built = build_lambda_zip(
        tmp_path / "arm.zip",
        arch="arm64",
        python=PYVER,
        requirements=[],
        cache_dir=tmp_path / "c",
        compile_bytecode=False,
    )
    assert built.target == LambdaTarget(architecture="arm64", python=PYVER)
    assert read_lambda_target(built.path) == built.target
    assert read_lambda_target(built.path.read_bytes()) == built.target
    assert TARGET_ENTRY in zip_names(built.path)
    deployed = deploy_lambdas(
        built,
        iam_client=aws("iam"),
        lambda_client=aws("lambda"),
        output_bucket=bucket,
        name_prefix=bucket,
        sleep=lambda _: None,
    )
    config = aws("lambda").get_function(FunctionName=deployed.post_annotation_arn)["Configuration"]
    assert config["Architectures"] == ["arm64"]
    assert config["Runtime"] == f"python{PYVER}"


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ({}, "has no gt-toolkit-lambda.json"),
        ({TARGET_ENTRY: "{not json"}, "cannot read the Lambda zip"),
        ({TARGET_ENTRY: '{"architecture": "sparc", "python": "3.12"}'}, "does not name"),
        ({TARGET_ENTRY: "[1, 2]"}, "does not name"),
    ],
)
def test_a_zip_without_a_readable_target_is_refused(entries: dict[str, str], problem: str) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("lambdas/__init__.py", "")
        for name, text in entries.items():
            zf.writestr(name, text)
    with pytest.raises(LambdaZipError, match=problem):
        read_lambda_target(buf.getvalue())
    with pytest.raises(LambdaZipError, match="cannot read the Lambda zip"):
        read_lambda_target(b"not a zip")
