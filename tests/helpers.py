"""Helpers the tests share: repository paths, event files, a fake clock, fast S3 seeding,
headless Chromium.

Fixtures live in ``conftest.py``; plain functions and constants live here, so tests import
them by name (``from tests.helpers import ...``) instead of reaching into conftest.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
SAMPLES = REPO / "samples"
REGION = "us-east-1"


def load_event(name: str) -> Any:
    """Load a JSON event fixture from ``tests/data/events``."""
    return json.loads((DATA / "events" / name).read_text())


def seed_objects(bucket: str, keys: list[str], body: bytes = b"x") -> None:
    """Put many objects straight into the in-process moto server's backend.

    PUTs over HTTP cost ~6 ms each; thousands of them would dominate the suite. The server
    under test runs in this process, so its state can be seeded directly; every read the
    toolkit makes still goes over HTTP to 127.0.0.1.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for key in keys:
        backend.put_object(bucket, key, body)


class FakeTime:
    """An injectable clock and sleep: wait loops are tested without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


class FakeLambdaContext:
    """AWS Lambda's context object, the part the handlers use: each ask of the time left gets
    the next of ``remaining_ms``, the last one again once they run out."""

    def __init__(self, *remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms
        self.asked = 0

    def get_remaining_time_in_millis(self) -> int:
        self.asked += 1
        return self.remaining_ms[min(self.asked, len(self.remaining_ms)) - 1]


CROWD = DATA / "crowd"  # one small crowd written by hand in each tool's export shape


def broken_export(tmp_path: Path) -> tuple[Path, Path]:
    """The sample Label Studio export, and the same with one broken record (a rejects file to
    write): ``clean.json`` and ``broken.json`` in ``tmp_path``."""
    tasks = json.loads((CROWD / "label-studio.json").read_text())
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps(tasks))
    del tasks[1]["annotations"][0]["result"][0]["value"]["x"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(tasks))
    return clean, broken


def consolidated_boxes(lines: list[dict[str, Any]], attr: str = "consolidated") -> dict[str, Any]:
    """``source-ref`` -> ``[(label, left, top, width, height, confidence)]`` of an output manifest,
    or -> the failure reason of a failed object."""
    out: dict[str, Any] = {}
    for line in lines:
        meta = line[f"{attr}-metadata"]
        if "failure-reason" in meta:
            out[line["source-ref"]] = meta["failure-reason"]
            continue
        names = meta["class-map"]
        rows = out[line["source-ref"]] = []
        for a, o in zip(line[attr]["annotations"], meta["objects"], strict=True):
            label = names[str(a["class_id"])]
            rows.append((label, a["left"], a["top"], a["width"], a["height"], o["confidence"]))
    return out


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Debian's headless Chromium with a throw-away profile under ``tmp_path``."""
    exe = shutil.which("chromium")
    assert exe, "chromium is missing: run `bash scripts/install-system-deps.sh` (make test does)"
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def read_jsonl(path: Path) -> list[Any]:
    """The records of a local JSON Lines file (blank lines skipped)."""
    return [json.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


def image_mirror(tmp_path: Path, manifest: Path, size: tuple[int, int] = (640, 480)) -> Path:
    """Local images for every source-ref of a manifest, sized from its ``image_size``.

    The folder mirrors the S3 keys (``s3://bucket/a/b.png`` -> ``mirror/a/b.png``), as
    ``--images-dir`` expects; images without a size in their label get ``size``.
    """
    from PIL import Image

    root = tmp_path / "mirror"
    for raw in manifest.read_bytes().splitlines():
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue
        ref = line["source-ref"]
        w, h = size
        for value in line.values():
            if isinstance(value, dict) and value.get("image_size"):
                w, h = value["image_size"][0]["width"], value["image_size"][0]["height"]
        path = root / ref.split("/", 3)[3]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (w, h), (90, 120, 150)).save(
            path, format="PNG" if ref.endswith(".png") else "JPEG"
        )
    return root


SAGEMAKER_ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def od_request_args(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of a valid object-detection training request; ``overrides`` win."""
    from gt_toolkit.sagemaker.training import ObjectDetectionHyperparameters

    args: dict[str, Any] = {
        "job_name": "balls-od-1",
        "role_arn": SAGEMAKER_ROLE,
        "region": REGION,
        "train_manifest_uri": "s3://gt-toolkit-demo/train.manifest",
        "validation_manifest_uri": "s3://gt-toolkit-demo/validation.manifest",
        "label_attribute": "boxes",
        "output_uri": "s3://gt-toolkit-demo/models",
        "hyperparameters": ObjectDetectionHyperparameters(
            num_training_samples=32, num_classes=1, max_boxes=4
        ),
    }
    return args | overrides


def assert_refused(
    make: Callable[..., object], kwargs: Mapping[str, Any], expected: list[str]
) -> str:
    """``make(**kwargs)`` raises a ValidationError naming every ``expected`` fragment; its text."""
    from gt_toolkit.errors import ValidationError

    try:
        make(**kwargs)
    except ValidationError as exc:
        message = str(exc)
    else:
        raise AssertionError(f"{make.__name__} accepted {kwargs}")
    missing = [fragment for fragment in expected if fragment not in message]
    assert not missing, f"{missing} not in\n{message}"
    return message


def pytorch_request_args(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of a valid PyTorch script-mode training request; ``overrides`` win."""
    args: dict[str, Any] = {
        "job_name": "dogs-pt-1",
        "role_arn": SAGEMAKER_ROLE,
        "region": REGION,
        "train_uri": "s3://gt-toolkit-demo/dogs/train/",
        "validation_uri": "s3://gt-toolkit-demo/dogs/validation/",
        "output_uri": "s3://gt-toolkit-demo/models",
        "source_dir_uri": "s3://gt-toolkit-demo/code/sourcedir.tar.gz",
    }
    return args | overrides


def huge_png_header(side: int = 20_000) -> bytes:
    """A tiny PNG whose header claims ``side`` x ``side`` pixels: Pillow refuses to open it
    (``DecompressionBombError`` from about 179 million pixels), as it would a real giant."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


# refused runs: tests/cli/test_shared_rejects.py and test_shared_outputs.py


def file_tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: what a refused run must leave as it was."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def refused_run(argv: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The ``gt-convert`` run exits 1 with one line saying ``said``."""
    from gt_toolkit.cli import main

    assert main(argv) == 1
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err


JOB = SAMPLES / "job-output" / "samples-balls"  # a finished Ground Truth job, on disk
JOB_MANIFEST = JOB / "manifests" / "output" / "output.manifest"


def answers_folder(root: Path) -> Path:
    """The sample job's answers as an answers folder: ``w1.jsonl`` and one file per worker.

    Read with ``--manifest JOB_MANIFEST``; ``w1.jsonl`` answers object 0 with no boxes.
    """
    root.mkdir()
    (root / "w1.jsonl").write_text('{"datasetObjectId": "0", "boundingBoxes": []}\n')
    for response in sorted((JOB / "annotations" / "worker-response").rglob("*.json")):
        for answer in json.loads(response.read_text())["answers"]:
            content = answer["answerContent"]
            line = {"datasetObjectId": response.parent.name, "answerContent": content}
            with (root / f"{answer['workerId']}.jsonl").open("a") as fh:
                fh.write(json.dumps(line) + "\n")
    return root


def put_tree(s3_client: Any, bucket: str, prefix: str, root: Path) -> None:
    """Upload the files at the top of ``root`` under ``prefix``."""
    for path in sorted(root.iterdir()):
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}/{path.name}", Body=path.read_bytes())


def s3_keys(s3_client: Any, bucket: str) -> list[str]:
    """Every key in ``bucket``, in order (what a refused run must leave as it was)."""
    return [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def s3_tree(s3_client: Any, bucket: str) -> dict[str, bytes]:
    """Every object in ``bucket`` with its bytes: what a failed run must leave as it was."""
    return {
        key: s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        for key in s3_keys(s3_client, bucket)
    }


def seen_by_worker(label: str) -> str:
    """What a worker sees of a label (the label rule's key); labels equal here show one
    button text, and a label the rule refuses for what it draws (empty, or holding a bidi
    override) is ``""``.

    The rule itself: a copy of it here fell behind (it kept the Hangul fillers and the
    variation selectors after a letter, which the rule drops), and the property tests
    drew label lists that validate_labels rightly refused.
    """
    from gt_toolkit.formats.label_categories import _OVERRIDES, _looks

    return "" if _OVERRIDES.search(label) else _looks(label)


def load_script(path: Path, name: str) -> ModuleType:
    """A script of ``bench/`` (not a package) loaded as the module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def unwritable_folder(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``folder`` takes no new file: its mode says so (undo with ``chmod`` before removing).

    Root writes there all the same, so for root the refusal the kernel gives any other user
    (``EACCES`` on creating a file there) is made here, at ``os.open``.
    """
    folder.chmod(0o555)
    if os.geteuid() != 0:
        return
    opener = os.open
    real = folder.resolve()

    def refused(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        if flags & os.O_CREAT and Path(path).parent.resolve() == real:
            raise PermissionError(errno.EACCES, "Permission denied")
        return opener(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", refused)
