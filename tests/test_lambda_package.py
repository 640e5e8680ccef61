from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

from gt_toolkit.errors import GtToolkitError
from gt_toolkit.lambda_package import build_lambda_zip, lambda_requirements, lazy_init_source

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


def test_lazy_init_keeps_every_public_name() -> None:
    real = (REPO / "gt_toolkit" / "__init__.py").read_text()
    lazy = lazy_init_source(real, version="9.9.9")
    tree = ast.parse(real)
    exported = next(
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets)
    )
    namespace: dict[str, object] = {}
    exec(compile(lazy, "lazy_init", "exec"), namespace)  # defines names only; imports nothing yet
    assert namespace["__all__"] == exported
    assert namespace["__version__"] == "9.9.9"
    assert set(exported) - {"__version__"} <= set(namespace["_LAZY"])  # type: ignore[arg-type]


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
    assert f"gt_toolkit/__pycache__/consolidate.{tag}.pyc" in names
    assert not [n for n in names if n.endswith(".pyc") and tag not in n]
    assert not [n for n in names if "/tests/" in n or n.startswith(("templates/", "bin/"))]
    with zipfile.ZipFile(first.path) as zf:
        assert "Lazy variant" in zf.read("gt_toolkit/__init__.py").decode()


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
        "print(gt_toolkit.consolidate_boxes is consolidate_boxes, gt_toolkit.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True
    )
    is_same, where = out.stdout.split()
    assert is_same == "True" and where.startswith(str(root))


def test_bad_arch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GtToolkitError, match="arch"):
        build_lambda_zip(tmp_path / "x.zip", arch="sparc", requirements=[])  # type: ignore[arg-type]
