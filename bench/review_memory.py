"""Peak memory of ``gt-convert review`` on inputs that made it large.

Run ``python bench/review_memory.py``.

Each case runs ``gt-convert review`` in a child process of its own and reads that child's
peak resident set size from ``os.wait4`` (what ``/usr/bin/time -v`` calls "Maximum resident
set size"):

- ``missing-80mp``: one object whose image is not found, labeled 10,328 x 7,760 (80 million
  pixels, under Pillow's decompression-bomb limit of 89 million): the grey placeholder;
- ``png-100mp``: a 10,000 x 10,000 PNG (between Pillow's warning and error limits);
- ``jpeg-80mp``: a 10,328 x 7,760 JPEG (decoded at a quarter of its size now);
- ``png-80mp``: the same as a PNG (decoded whole, under the limit, then shrunk);
- ``contact-10000``: 10,000 lines naming one 48 x 32 image (``--min-width 0``): the contact
  sheet of 10,000 cells;
- ``photos-100``: 100 lines naming ten 1600 x 1200 JPEGs of noise (a worst case for PNG
  and JPEG alike): the report's inlined pictures; the report's size is printed too.

``--cases`` picks some of them; ``--folder`` keeps the inputs and outputs there. The
inputs are made in a child process too: Linux keeps a process's peak across ``exec``, so a
review forked from a parent that had just drawn a 100-megapixel input counted its memory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

CASES = ("missing-80mp", "png-100mp", "jpeg-80mp", "png-80mp", "contact-10000", "photos-100")
_ROOT = Path(__file__).resolve().parents[1]


def _line(ref: str, size: tuple[int, int]) -> str:
    box = {"class_id": 0, "left": 10, "top": 10, "width": 200, "height": 100}
    return json.dumps(
        {
            "source-ref": ref,
            "boxes": {
                "annotations": [box],
                "image_size": [{"width": size[0], "height": size[1], "depth": 3}],
            },
            "boxes-metadata": {
                "class-map": {"0": "a"},
                "objects": [{"confidence": 0.5}],
                "type": "groundtruth/object-detection",
                "human-annotated": "yes",
                "creation-date": "2026-01-01T00:00:00",
                "job-name": "labeling-job/j",
            },
        }
    )


def _prepare(case: str, folder: Path) -> list[str]:
    """Write the case's manifest (and image) in ``folder``; return review's arguments."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    manifest = folder / "output.manifest"
    extra: list[str] = []
    if case == "missing-80mp":
        manifest.write_text(_line("s3://bench-bucket/none.jpg", (10_328, 7_760)) + "\n")
    elif case == "png-100mp":
        Image.new("RGB", (10_000, 10_000), (90, 140, 200)).save(images / "big.png")
        manifest.write_text(_line("s3://bench-bucket/big.png", (10_000, 10_000)) + "\n")
    elif case in ("jpeg-80mp", "png-80mp"):
        name = "big.jpg" if case == "jpeg-80mp" else "big.png"
        Image.new("RGB", (10_328, 7_760), (90, 140, 200)).save(images / name)
        manifest.write_text(_line(f"s3://bench-bucket/{name}", (10_328, 7_760)) + "\n")
    elif case == "photos-100":
        rng = random.Random(1)
        for i in range(10):
            noise = Image.frombytes("RGB", (1600, 1200), rng.randbytes(1600 * 1200 * 3))
            noise.save(images / f"p{i}.jpg", quality=85)
        lines = [_line(f"s3://bench-bucket/p{n % 10}.jpg", (1600, 1200)) for n in range(100)]
        manifest.write_text("\n".join(lines) + "\n")
    else:
        Image.new("RGB", (48, 32), (90, 140, 200)).save(images / "small.png")
        manifest.write_text((_line("s3://bench-bucket/small.png", (48, 32)) + "\n") * 10_000)
        extra = ["--min-width", "0"]
    return [
        "review",
        str(manifest),
        "-o",
        str(folder / "review"),
        "--images-dir",
        str(images),
        "--images-prefix",
        "s3://bench-bucket/",
        *extra,
    ]


def _peak(args: list[str]) -> tuple[int, float, int]:
    """The child's exit code, seconds and peak RSS in MiB."""
    code = "import sys; from gt_toolkit.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-W", "default", "-c", code, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert child.stderr is not None
    err = child.stderr.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if b"DecompressionBombWarning" in err:
        print("  (Pillow warned: DecompressionBombWarning)")
    return child.returncode, seconds, usage.ru_maxrss // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", choices=CASES, default=list(CASES))
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--prepare", nargs=2, metavar=("CASE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        print(json.dumps(_prepare(args.prepare[0], Path(args.prepare[1]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.folder or Path(tmp)
        for case in args.cases:
            made = subprocess.run(
                [sys.executable, __file__, "--prepare", case, str(root / case)],
                check=True,
                capture_output=True,
            )
            code, seconds, mib = _peak(json.loads(made.stdout))
            report = root / case / "review" / "report.html"
            size = f"  report.html {report.stat().st_size / 1e6:7.1f} MB" if report.exists() else ""
            print(f"{case:15s} exit {code}  {seconds:6.1f} s  peak RSS {mib:6d} MiB{size}")


if __name__ == "__main__":
    main()
