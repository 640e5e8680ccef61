"""Build the deployment zip of the pre- and post-annotation Lambdas.

The zip holds ``gt_toolkit``, the handlers in ``lambdas/`` and exactly the third-party
distributions the handlers import, installed for the Lambda platform with
``pip install --platform manylinux... --only-binary=:all:``. boto3 and its dependencies are
left out: the Python runtime ships them. Which distributions are needed is *measured*, not
listed by hand: a subprocess imports both handlers and the distributions owning the imported
modules are packed (so a heavy import added to the handlers' path shows up as a bigger zip,
not as an ``ImportError`` on AWS).

Downloaded wheels and installed trees are cached under ``.cache/`` so rebuilding is fast
and works offline once the wheels are there. The zip is reproducible: sorted entries, fixed
timestamps and permissions, so an unchanged build deploys as an unchanged function.

The platform the wheels were chosen for (architecture and Python version) is written into the
zip as :data:`TARGET_ENTRY`; the deployment reads it back (:func:`read_lambda_target`), so an
``arm64`` zip is never deployed as an ``x86_64`` function, where its compiled wheels (numpy)
would not load.

CLI: ``python -m gt_toolkit.sagemaker.lambda_zip --out build/gt-toolkit-lambdas.zip``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final, Literal

from gt_toolkit.errors import LambdaZipError
from gt_toolkit.storage.files import atomic_output

__all__ = [
    "HANDLERS",
    "MAX_UNZIPPED_BYTES",
    "RUNTIME_PROVIDED",
    "TARGET_ENTRY",
    "LambdaTarget",
    "LambdaZip",
    "build_lambda_zip",
    "check_unzipped_size",
    "lambda_requirements",
    "main",
    "read_lambda_target",
]

Arch = Literal["x86_64", "arm64"]

HANDLERS: dict[str, str] = {
    "pre": "lambdas.pre_annotation.lambda_handler",
    "post": "lambdas.post_annotation.lambda_handler",
}
"""Handler strings (Lambda's ``Handler`` setting) of the two functions in the zip."""

RUNTIME_PROVIDED: frozenset[str] = frozenset(
    # certifi: botocore imports it when installed and otherwise uses its own CA bundle.
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3", "certifi"}
)
"""Distributions the AWS Python runtime already has (boto3 and its dependencies)."""

MAX_UNZIPPED_BYTES: Final = 262_144_000
"""Lambda's limit on a function's code unzipped (250 MiB, layers included)."""

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the gt_toolkit package
_PACKAGE_FILES = (".py", "py.typed")  # what the package is made of; stray files stay out
_PYTHON_RE = re.compile(r"3\.\d{1,2}")
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = frozenset({"__pycache__", "tests", "templates"})

_DISCOVER = """
import importlib, importlib.metadata as md, json, sys
before = set(sys.modules)
for name in sys.argv[2:]:
    importlib.import_module(name)
if not sys.modules["gt_toolkit"].__file__.startswith(sys.argv[1]):
    sys.exit("imported gt_toolkit from " + sys.modules["gt_toolkit"].__file__)
owners = md.packages_distributions()
dists = set()
for mod in set(sys.modules) - before:
    top = mod.partition(".")[0]
    if top in sys.stdlib_module_names:
        continue
    for dist in owners.get(top, ()):
        dists.add(dist)
print(json.dumps(sorted((d, md.version(d)) for d in dists)))
"""


TARGET_ENTRY: Final = "gt-toolkit-lambda.json"
"""The zip entry recording what the zip was built for: ``{"architecture", "python"}``."""


@dataclass(frozen=True, slots=True)
class LambdaTarget:
    """The platform a zip's wheels and bytecode were built for; its functions must match."""

    architecture: Arch
    python: str

    @property
    def runtime(self) -> str:
        """Lambda's ``Runtime`` name: ``python3.12``."""
        return f"python{self.python}"


@dataclass(frozen=True, slots=True)
class LambdaZip:
    """What :func:`build_lambda_zip` built."""

    path: Path
    size: int
    requirements: tuple[str, ...]
    handlers: dict[str, str]
    bytecode: bool
    target: LambdaTarget


def read_lambda_target(zip_file: str | os.PathLike[str] | bytes) -> LambdaTarget:
    """The target :func:`build_lambda_zip` recorded in a zip (path or bytes).

    Raises:
        LambdaZipError: not a zip, or a zip without a readable :data:`TARGET_ENTRY`.
    """
    source = io.BytesIO(zip_file) if isinstance(zip_file, bytes) else Path(zip_file)
    try:
        with zipfile.ZipFile(source) as zf:
            record = json.loads(zf.read(TARGET_ENTRY))
    except KeyError:
        raise LambdaZipError(
            f"the zip has no {TARGET_ENTRY}, so its architecture is unknown; build it with "
            "build_lambda_zip (or make lambda-zip)"
        ) from None
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise LambdaZipError(f"cannot read the Lambda zip: {exc}") from exc
    arch, python = (
        (record.get(k) for k in ("architecture", "python"))
        if isinstance(record, dict)
        else (None, None)
    )
    if arch not in ("x86_64", "arm64") or not isinstance(python, str):
        raise LambdaZipError(f"{TARGET_ENTRY} does not name an architecture and Python: {record}")
    return LambdaTarget(architecture=arch, python=python)


def check_unzipped_size(size: int) -> None:
    """Refuse code Lambda would refuse at deployment: over :data:`MAX_UNZIPPED_BYTES`.

    Raises:
        LambdaZipError: ``size`` (bytes, unzipped) is over the limit.
    """
    if size > MAX_UNZIPPED_BYTES:
        raise LambdaZipError(
            f"the code is {size:,} bytes unzipped, over Lambda's limit of "
            f"{MAX_UNZIPPED_BYTES:,} (250 MiB): a handler imports more than it should"
        )


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _handlers_dir() -> Path:
    """``lambdas/`` next to the package (checkout or editable install) or inside it (wheel)."""
    for candidate in (_PACKAGE_DIR / "_lambdas", _PACKAGE_DIR.parent / "lambdas"):
        if (candidate / "post_annotation.py").is_file():
            return candidate
    raise LambdaZipError(
        "cannot find the Lambda handlers (lambdas/pre_annotation.py, post_annotation.py) "
        f"next to {_PACKAGE_DIR}; build the zip from a checkout of gt-toolkit"
    )


def _stage_code(root: Path) -> Path:
    """Copy ``gt_toolkit`` as it is, its version record and the handlers under ``root``.

    The package's own ``__init__`` is already lazy, so the Lambda imports exactly the code the
    tests import. A minimal ``.dist-info`` keeps ``gt_toolkit.__version__`` right in the zip.
    """
    for path, arcname in _walk(_PACKAGE_DIR, "gt_toolkit"):
        if arcname.startswith("gt_toolkit/_lambdas/") or not arcname.endswith(_PACKAGE_FILES):
            continue
        dest = root / arcname
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    try:
        version = importlib.metadata.version("gt-toolkit")
    except importlib.metadata.PackageNotFoundError:
        version = "0.0.0"
    dist_info = root / f"gt_toolkit-{version}.dist-info"
    dist_info.mkdir(exist_ok=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: gt-toolkit\nVersion: {version}\n"
    )
    for path, arcname in _walk(_handlers_dir(), "lambdas"):
        if arcname.endswith(".py"):
            dest = root / arcname
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
    return root


def lambda_requirements(*, python: str | None = None, code_root: Path | None = None) -> list[str]:
    """Pinned third-party requirements the handlers import, minus what the runtime ships.

    Imports both handlers, as staged for the zip (``code_root``; default: staged in a
    temporary folder), in a fresh interpreter (``python``, default: this one) and maps the
    new modules to their distributions; versions are pinned to the ones installed here, the
    ones the tests ran with.
    """
    if code_root is None:
        with tempfile.TemporaryDirectory(prefix="gt-lambda-code-") as tmp:
            return lambda_requirements(python=python, code_root=_stage_code(Path(tmp)))
    modules = [h.rpartition(".")[0] for h in HANDLERS.values()]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GT_", "PYTHON"))}
    env["PYTHONPATH"] = str(code_root)
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    proc = subprocess.run(
        [python or sys.executable, "-c", _DISCOVER, str(code_root), *modules],
        capture_output=True,
        text=True,
        env=env,
        cwd=code_root,
        check=False,
    )
    if proc.returncode != 0:
        raise LambdaZipError(f"importing the handlers failed:\n{proc.stderr.strip()}")
    found: list[list[str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return sorted(
        f"{name}=={version}"
        for name, version in found
        if _canonical(name) not in RUNTIME_PROVIDED | {"gt-toolkit"}
    )


def _platforms(arch: Arch, python: str) -> list[str]:
    """Wheel platform tags the runtime's glibc accepts (AL2023 for 3.12+, AL2 before)."""
    machine = {"x86_64": "x86_64", "arm64": "aarch64"}[arch]
    tags = [f"manylinux2014_{machine}"]
    major, minor = (int(x) for x in python.split(".")[:2])
    if (major, minor) >= (3, 12):
        tags.append(f"manylinux_2_28_{machine}")
    return tags


def _pip(args: Sequence[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise LambdaZipError(f"pip {args[0]} failed:\n{proc.stderr.strip()[-2000:]}")


@contextlib.contextmanager
def _cache_lock(cache: Path) -> Iterator[None]:
    """Serialise builds that share a cache (parallel test workers, two terminals).

    The cached dependency tree is installed, renamed into place and compiled in several
    steps; two builds interleaving them corrupt it.
    """
    with (cache / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _install_deps(
    requirements: Sequence[str], *, platforms: Sequence[str], python: str, cache_dir: Path
) -> Path:
    """Install the requirements for the Lambda platform into a cached tree; return it."""
    spec = json.dumps([list(requirements), list(platforms), python]).encode()
    key = hashlib.sha256(spec).hexdigest()
    tree = cache_dir / "sites" / key[:16]
    if (tree / ".complete").is_file():
        return tree
    wheels = cache_dir / "wheels" / f"cp{python.replace('.', '')}-{platforms[0]}"
    platform_args = [a for tag in platforms for a in ("--platform", tag)]
    common = [
        *platform_args,
        "--implementation",
        "cp",
        "--python-version",
        python,
        "--only-binary=:all:",
    ]
    if requirements:
        wheels.mkdir(parents=True, exist_ok=True)
        _pip(["download", "-q", "-d", str(wheels), *common, *requirements])
    staging = Path(tempfile.mkdtemp(prefix="site-", dir=cache_dir))
    try:
        if requirements:
            _pip(
                [
                    "install",
                    "-q",
                    "--no-index",
                    "--find-links",
                    str(wheels),
                    "--target",
                    str(staging),
                    "--no-compile",
                    *common,
                    *requirements,
                ]
            )
        (staging / ".complete").write_text("\n".join(requirements) + "\n")
        shutil.rmtree(tree, ignore_errors=True)
        tree.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(tree)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tree


def _walk(root: Path, prefix: str = "", pyc: str | None = None) -> Iterator[tuple[Path, str]]:
    """Files under ``root`` as (path, archive name), skipping tests and scripts.

    Bytecode is kept only when ``pyc`` names the target's cache tag (``cpython-312``).
    """
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        skip = set(_SKIP_DIRS) | ({"bin"} if rel == Path() else set())  # pip's console scripts
        if pyc is not None:
            skip.discard("__pycache__")
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")) and not (
                pyc is not None and rel.name == "__pycache__" and name.endswith(f".{pyc}.pyc")
            ):
                continue
            if name in (".complete", ".compiled"):
                continue
            arc = (Path(prefix) / rel / name).as_posix()
            yield Path(dirpath) / name, arc


def _compiler(python: str) -> str | None:
    """An interpreter of the runtime's Python version (to write its bytecode), if any."""
    candidates = [sys.executable, shutil.which(f"python{python}")]
    for exe in dict.fromkeys(c for c in candidates if c):
        proc = subprocess.run(
            [exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0 and proc.stdout.strip() == python:
            return exe
    return None


def _compile(root: Path, exe: str) -> None:
    """Write unchecked-hash bytecode, as Lambda's read-only /var/task cannot cache it.

    Without it every cold start compiles numpy's sources again (about 3x slower imports).
    Unchecked hashes stay valid although the zip resets file times.
    """
    args = ["-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
    proc = subprocess.run(
        [exe, "-m", "compileall", *args, "-s", str(root), "-p", "/var/task", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise LambdaZipError(f"compiling bytecode failed:\n{(proc.stdout + proc.stderr)[-2000:]}")


def _add(zf: zipfile.ZipFile, path: Path, arcname: str) -> None:
    info = zipfile.ZipInfo(arcname, date_time=_FIXED_DATE)
    executable = os.access(path, os.X_OK) or arcname.endswith(".so") or ".so." in arcname
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with path.open("rb") as fh:
        zf.writestr(info, fh.read(), compresslevel=9)


def build_lambda_zip(
    out: str | os.PathLike[str],
    *,
    arch: Arch = "x86_64",
    python: str = "3.12",
    requirements: Sequence[str] | None = None,
    cache_dir: str | os.PathLike[str] = ".cache/lambda",
    platforms: Sequence[str] | None = None,
    compile_bytecode: bool = True,
) -> LambdaZip:
    """Build the deployment zip for both Lambdas.

    Args:
        out: the zip to write (parent folders are created; replaced atomically).
        arch: the function's architecture, ``x86_64`` or ``arm64``.
        python: the runtime's Python version (``python3.12`` -> ``"3.12"``).
        requirements: pinned third-party requirements; ``None`` measures them with
            :func:`lambda_requirements`.
        cache_dir: where wheels and installed trees are cached between builds.
        platforms: wheel platform tags to accept instead of the runtime's (for example to
            run the zip on another Linux with the emulator); default from ``arch`` and
            ``python``: ``manylinux2014``, plus ``manylinux_2_28`` for Python 3.12+, whose
            runtime is Amazon Linux 2023.
        compile_bytecode: ship ``__pycache__`` bytecode when an interpreter of version
            ``python`` is at hand (this one, or ``pythonX.Y`` on PATH); Lambda cannot write
            it at run time, so this saves the compile on every cold start.

    Returns:
        The zip's path, size in bytes, the packed requirements, the handler strings and the
        target it was built for (also recorded in the zip as :data:`TARGET_ENTRY`).

    Raises:
        LambdaZipError: the handlers cannot be imported, pip cannot get a wheel, or the code
            is over Lambda's unzipped limit; ``out`` is then left as it was.
    """
    if arch not in ("x86_64", "arm64"):
        raise LambdaZipError(f"arch must be 'x86_64' or 'arm64', got {arch!r}")
    if not _PYTHON_RE.fullmatch(python):
        raise LambdaZipError(f"python must be a version like '3.12', got {python!r}")
    cache = Path(cache_dir).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    built_for = LambdaTarget(architecture=arch, python=python)
    with tempfile.TemporaryDirectory(prefix="gt-lambda-code-") as tmp:
        code = _stage_code(Path(tmp))
        (code / TARGET_ENTRY).write_text(json.dumps(asdict(built_for)))
        reqs = tuple(lambda_requirements(code_root=code) if requirements is None else requirements)
        tags = list(platforms) if platforms else _platforms(arch, python)
        exe = _compiler(python) if compile_bytecode else None
        pyc = f"cpython-{python.replace('.', '')}" if exe else None
        with _cache_lock(cache):
            deps = _install_deps(reqs, platforms=tags, python=python, cache_dir=cache)
            if exe is not None and not (deps / ".compiled").is_file():
                _compile(deps, exe)
                (deps / ".compiled").write_text(pyc or "")
        if exe is not None:
            _compile(code, exe)
        entries = sorted([*_walk(deps, pyc=pyc), *_walk(code, pyc=pyc)], key=lambda e: e[1])
        names = [a for _, a in entries]
        if len(names) != len(set(names)):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise LambdaZipError(f"files collide in the zip: {dupes[:5]}")
        check_unzipped_size(sum(path.stat().st_size for path, _ in entries))
        with atomic_output(target) as fh, zipfile.ZipFile(fh, "w") as zf:
            for path, arcname in entries:
                _add(zf, path, arcname)
    return LambdaZip(
        path=target,
        size=target.stat().st_size,
        requirements=reqs,
        handlers=dict(HANDLERS),
        bytecode=pyc is not None,
        target=built_for,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gt_toolkit.sagemaker.lambda_zip``: build the zip and print what it holds."""
    parser = argparse.ArgumentParser(
        prog="python -m gt_toolkit.sagemaker.lambda_zip", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", default="build/gt-toolkit-lambdas.zip", help="zip to write")
    parser.add_argument("--arch", choices=["x86_64", "arm64"], default="x86_64")
    parser.add_argument("--python", default="3.12", help="runtime Python version (3.12)")
    parser.add_argument("--cache-dir", default=".cache/lambda", help="wheel cache")
    parser.add_argument(
        "--platform",
        action="append",
        dest="platforms",
        help="wheel platform tag to accept (repeatable; default: the runtime's)",
    )
    args = parser.parse_args(argv)
    try:
        built = build_lambda_zip(
            args.out,
            arch=args.arch,
            python=args.python,
            cache_dir=args.cache_dir,
            platforms=args.platforms,
        )
    except LambdaZipError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"{built.path}: {built.size / 1e6:.1f} MB, python{args.python} {args.arch}")
    if not built.bytecode:
        print(f"note: no python{args.python} found, so no bytecode: slower cold starts")
    print(f"requirements: {' '.join(built.requirements) or '(none)'}")
    for role, handler in built.handlers.items():
        print(f"{role} handler: {handler}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
