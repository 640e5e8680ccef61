"""The S3-reading commands under an S3 that throttles, fails, resets and truncates.

Each command runs once straight against moto for the expected output, then through
:class:`FaultProxy`: one of each fault on the first requests plus a light seeded share (the
retries must absorb it), a heavy share, and every request failing. Every faulted run must
either write exactly the expected output and exit 0, or exit 1 with one error line and write
nothing (or, for a run that keeps a complete output, list what it lost in a rejects file).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from botocore.retries.standard import ExponentialBackoff

from gt_toolkit.cli import main
from gt_toolkit.errors import StorageError
from gt_toolkit.storage.s3 import S3Store, make_s3_client
from tests.helpers import SAMPLES, seed_objects
from tests.storage.fault_proxy import Fault, FaultProxy

JOB = SAMPLES / "job-output" / "samples-balls"
SAMPLE_BUCKET = "gt-toolkit-demo"
# Values that differ between two correct runs.
_VOLATILE = re.compile(rb'"creation-date": ?"[^"]*"')
LIGHT: dict[Fault, float] = {"throttle": 0.04, "error500": 0.04, "reset": 0.04, "truncate": 0.04}
HEAVY: dict[Fault, float] = {"throttle": 0.15, "error500": 0.15, "reset": 0.15, "truncate": 0.15}

# argv with {s3} for s3://<bucket> and {out} for the output folder.
COMMANDS = [
    pytest.param(["manifest", "{s3}/images", "-o", "{out}/input.manifest"], id="manifest"),
    pytest.param(["augmented", "{s3}/truth.manifest", "-o", "{out}/aug"], id="augmented"),
    pytest.param(
        ["coco", "{s3}/truth.manifest", "-o", "{out}/coco", "--copy-images"],
        id="coco",
    ),
    pytest.param(
        ["evaluate", "{s3}/truth.manifest", "{s3}/truth.manifest", "-o", "{out}/eval.json"],
        id="evaluate",
    ),
    pytest.param(
        ["consolidate", "{s3}/job/samples-balls", "-o", "{out}/consolidated.manifest"],
        id="consolidate",
    ),
]


@pytest.fixture
def sample_bucket(bucket: str) -> str:
    """The samples (images, a labeled manifest, a job's output) in a fresh bucket."""
    objects: dict[str, bytes] = {
        f"images/{p.name}": p.read_bytes() for p in sorted((SAMPLES / "images").iterdir())
    }
    objects["truth.manifest"] = (SAMPLES / "truth.manifest").read_bytes()
    for path in JOB.rglob("*"):
        if path.is_file():
            objects[f"job/samples-balls/{path.relative_to(JOB).as_posix()}"] = path.read_bytes()
    for key, body in objects.items():
        seed_objects(bucket, [key], body.replace(SAMPLE_BUCKET.encode(), bucket.encode()))
    return bucket


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's retry schedule, scaled down: the faults are real, the waits need not be."""
    scales = {"throttling_base_scale": 0.005, "non_throttling_base_scale": 0.002}
    monkeypatch.setattr(ExponentialBackoff, "_DEFAULT_BACKOFF_CONFIG", scales)
    monkeypatch.setattr("gt_toolkit.storage.s3.time.sleep", lambda seconds: None)


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, its own path and creation dates blanked out."""
    return {
        p.relative_to(folder).as_posix(): _VOLATILE.sub(
            b"", p.read_bytes().replace(str(folder).encode(), b"OUT")
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _run(
    argv: list[str], bucket: str, out: Path, endpoint: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    out.mkdir(parents=True)
    args = [a.format(s3=f"s3://{bucket}", out=out) for a in argv]
    code = main([*args, "--endpoint-url", endpoint, "--region", "us-east-1"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv", COMMANDS)
def test_each_command_is_correct_or_fails_cleanly_under_s3_faults(
    argv: list[str],
    sample_bucket: str,
    moto_endpoint: str,
    store: S3Store,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = argv[0]
    code, err = _run(argv, sample_bucket, tmp_path / "clean", moto_endpoint, capsys)
    assert code == 0, err
    expected = _files(tmp_path / "clean")
    assert expected, f"{name} wrote nothing"
    outcomes: list[str] = []
    faults = 0
    # One of each fault on the first requests, then a light share: the retries absorb it.
    # A heavy share: either outcome. Every request failing: a clean failure.
    runs: list[tuple[dict[Fault, float], tuple[Fault, ...]]] = [
        (LIGHT, ("truncate", "reset", "throttle", "error500")),
        (HEAVY, ()),
        ({"error500": 1.0}, ()),
    ]
    for n, (shares, planned) in enumerate(runs):
        with FaultProxy(moto_endpoint, shares=shares, seed=n) as proxy:
            proxy.plan(*planned)
            out = tmp_path / f"faulted-{n}"
            code, err = _run(argv, sample_bucket, out, proxy.url, capsys)
        faults += sum(proxy.injected.values())
        if code == 0:
            assert _files(out) == expected, f"{name}: exit 0 with a different output"
            outcomes.append("correct")
        else:
            _assert_clean_failure(name, code, err, out)
            outcomes.append("failed")
    assert faults >= 4, "the faults were not injected"
    assert outcomes[0] == "correct" and outcomes[2] == "failed", outcomes


def _assert_clean_failure(name: str, code: int, err: str, out: Path) -> None:
    """Exit 1, one error line (the last; report lines may come before it), no traceback,
    and nothing written, unless the run kept a complete output whose losses a rejects file
    lists (offline consolidation marks the objects it could not read as failed)."""
    lines = err.strip().splitlines()
    assert code == 1, f"{name}: exit {code}\n{err}"
    assert "Traceback" not in err, err
    assert [x for x in lines if x.startswith("gt-convert: ")] == lines[-1:], f"{name}:\n{err}"
    left = _files(out)
    if left:
        assert any("rejects" in path for path in left) and "rejects" in lines[-1], (
            f"{name} failed but left {sorted(left)}"
        )


def test_the_proxy_really_faults(sample_bucket: str, fault_proxy: FaultProxy) -> None:
    """A guard on the harness: with every request faulted, reads do fail."""
    store = S3Store(make_s3_client(endpoint_url=fault_proxy.url, region_name="us-east-1"))
    fault_proxy.shares = {"error500": 1.0}
    with pytest.raises(StorageError, match="InternalError"):
        store.get_bytes(f"s3://{sample_bucket}/truth.manifest")
    assert fault_proxy.injected["error500"] >= 5
