"""Peak memory of reading a big Label Studio export: ours (streamed) against loading it whole.

Writes a synthetic Label Studio JSON export (``--tasks`` tasks, three annotators each,
three boxes per annotation, shaped by ``gt_toolkit.testing.crowd_exports``), then reads it
in a fresh process per reader and reports each one's peak resident memory (``ru_maxrss``)
and time:

- ``ours``: ``iter_crowd_images(..., "label-studio")`` over every image;
- ``json.load``: the standard library parsing the whole document, as a reader without a
  streaming parser must (the file, then every task in memory at once);
- ``orjson.loads``: the same with the fastest JSON parser we ship.

Run: ``python bench/crowd_ingest.py`` (100,000 tasks, about a minute and 250 MB of disk),
``--tasks 25000`` to check that our peak does not grow with the export.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gt_toolkit.formats.crowd import CrowdImage
from gt_toolkit.testing.crowd_exports import label_studio_export

# Each reader: its imports (before the timer, as a long-running program has them), then
# the timed read.
READERS = {
    "ours": (
        "from gt_toolkit.formats.crowd.sources import iter_crowd_images\n",
        "n = sum(len(b) for i in iter_crowd_images(PATH, 'label-studio') for b in i.boxes)\n",
    ),
    "json.load": ("import json\n", "n = len(json.load(open(PATH, 'rb')))\n"),
    "orjson.loads": ("import orjson\n", "n = len(orjson.loads(open(PATH, 'rb').read()))\n"),
}


def write_export(path: Path, tasks: int, seed: int = 0) -> None:
    """A list of ``tasks`` tasks, written a batch at a time (the writer stays small too)."""
    rng = random.Random(seed)
    with path.open("w") as fh:
        fh.write("[\n")
        for start in range(0, tasks, 1000):
            images = []
            for n in range(start, min(tasks, start + 1000)):
                answers = []
                for _ in range(3):
                    boxes = []
                    for _ in range(3):
                        x, y = rng.uniform(0, 1200), rng.uniform(0, 600)
                        boxes.append(
                            {"label": "car", "left": x, "top": y, "width": 60, "height": 40}
                        )
                    answers.append(boxes)
                images.append(
                    CrowdImage(
                        key=f"s3://bench/images/{n:06d}.jpg",
                        image_size={"width": 1280, "height": 720},
                        annotators=("ana@example.com", "ben@example.com", "chen@example.com"),
                        boxes=tuple(answers),
                    )
                )
            records = label_studio_export(images)
            for offset, task in enumerate(records):
                task["id"] = start + offset + 1
            if start:
                fh.write(",\n")
            fh.write(",\n".join(json.dumps(t, separators=(",", ":")) for t in records))
        fh.write("\n]\n")


def measure(reader: str, path: Path) -> tuple[float, float, float]:
    """Peak RSS (MiB), wall and CPU seconds of one reader's read, in a fresh interpreter.

    The clocks start after the interpreter and the reader's imports: the CPU time is the
    read's (user and system), not the start-up's; the peak RSS includes both.
    """
    setup, timed = READERS[reader]
    code = (
        "import resource, time\n"
        + setup
        + f"PATH = {str(path)!r}\n"
        + "t, c = time.perf_counter(), time.process_time()\n"
        + timed
        + "c, t = time.process_time() - c, time.perf_counter() - t\n"
        + "print(t, c, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    return int(out[2]) / 1024, float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.json"
        started = time.perf_counter()
        write_export(path, args.tasks)
        size = path.stat().st_size / 2**20
        print(
            f"{args.tasks} tasks, 3 annotators x 3 boxes: {size:.0f} MiB "
            f"(written in {time.perf_counter() - started:.0f} s)"
        )
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results = {name: measure(name, path) for name in READERS}
    print(f"{'reader':<14}{'peak RSS MiB':>14}{'wall s':>10}{'CPU s':>10}")
    for name, (rss, wall, cpu) in results.items():
        print(f"{name:<14}{rss:>14.0f}{wall:>10.1f}{cpu:>10.1f}")
    ours = results["ours"][0]
    for name in ("json.load", "orjson.loads"):
        print(f"peak memory {name} / ours: {results[name][0] / ours:.1f}x")
    print(f"(this process after writing: {baseline:.0f} MiB)")


if __name__ == "__main__":
    main()
