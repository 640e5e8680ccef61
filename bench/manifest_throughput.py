"""Manifest read/validate/write throughput against the practical limits, in one run.

Generates an N-line manifest (default 1,000,000) and times, each in its own subprocess so
peak RSS is its own:

- ``orjson``: ``orjson.loads`` + ``orjson.dumps`` per line, reading and writing files (the
  practical limit for any JSON Lines tool in Python);
- ``stdlib-json``: the same with ``json.loads`` + ``json.dumps``;
- ``gt-toolkit``: ``read_manifest`` (UTF-8/JSON/schema validation, rejects routing) and
  ``write_manifest`` (atomic), i.e. what ``gt-convert`` does per line.

Each reader runs ``--repeat`` times in interleaved rounds (every reader once a round, the
order rotating), a fresh subprocess each time, and its best run counts. Times are the
child's CPU time (``time.process_time``: user and system, so the reads and writes count),
not the wall clock, so other programs on a shared machine do not slow whichever reader
ran beside them; the wall time of the same run is printed too.

Prints lines per CPU second, peak RSS and our ratio to orjson.
Goal: >= 60% of orjson, peak RSS < 150 MB.

    python bench/manifest_throughput.py [--lines 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from gt_toolkit.formats.manifest import read_manifest, write_manifest  # imported before any timer


def generate(path: Path, n: int) -> None:
    with path.open("wb") as fh:
        for i in range(n):
            rec = {
                "source-ref": f"s3://bench-bucket/images/{i // 1000:04d}/img_{i:07d}.jpg",
                "site": f"plant-{i % 13}",
                "capture": {"camera": i % 7, "ts": 1_700_000_000 + i},
            }
            fh.write(orjson.dumps(rec) + b"\n")


def run_orjson(src: Path, dst: Path) -> int:
    n = 0
    with src.open("rb") as fi, dst.open("wb") as fo:
        for line in fi:
            fo.write(orjson.dumps(orjson.loads(line)) + b"\n")
            n += 1
    return n


def run_json(src: Path, dst: Path) -> int:
    n = 0
    with src.open("r", encoding="utf-8") as fi, dst.open("w", encoding="utf-8") as fo:
        for line in fi:
            fo.write(json.dumps(json.loads(line)) + "\n")
            n += 1
    return n


def run_ours(src: Path, dst: Path) -> int:
    return write_manifest(
        read_manifest(src, policy="collect", rejects=dst.with_suffix(".rejects")), dst
    )


RUNNERS = {"orjson": run_orjson, "stdlib-json": run_json, "gt-toolkit": run_ours}


def child(name: str, src: str, dst: str) -> None:
    """One run of one reader, in this fresh process (its imports are done before the timer)."""
    wall, cpu = time.perf_counter(), time.process_time()
    n = RUNNERS[name](Path(src), Path(dst))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"name": name, "lines": n, "seconds": cpu, "wall": wall, "rss_mb": rss_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per reader, best kept")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "in.manifest")
        t0 = time.perf_counter()
        generate(src, args.lines)
        size_mb = src.stat().st_size / 1e6
        print(
            f"generated {args.lines:,} lines ({size_mb:.0f} MB) in {time.perf_counter() - t0:.1f} s"
        )
        names = list(RUNNERS)
        results: dict[str, dict[str, float]] = {}
        for r in range(args.repeat):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", name, str(src), str(Path(tmp, name))],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                run = json.loads(out.stdout)
                if name not in results or run["seconds"] < results[name]["seconds"]:
                    results[name] = run
    base = results["orjson"]["lines"] / results["orjson"]["seconds"]
    print("\n| reader+writer | lines/CPU s | (wall s) | peak RSS (MB) | vs orjson |")
    print("|---|---:|---:|---:|---:|")
    for name, res in results.items():
        rate = res["lines"] / res["seconds"]
        print(
            f"| {name} | {rate:,.0f} | {res['wall']:.2f} | {res['rss_mb']:.0f} "
            f"| {rate / base:.2f}x |"
        )
    ours = results["gt-toolkit"]
    ratio = ours["lines"] / ours["seconds"] / base
    wall = results["orjson"]["wall"] / ours["wall"]
    print(
        f"\ngoal: gt-toolkit >= 0.60x orjson and < 150 MB peak RSS: "
        f"{'met' if ratio >= 0.6 and ours['rss_mb'] < 150 else 'NOT met'} "
        f"({ratio:.2f}x by CPU time, {ours['rss_mb']:.0f} MB; by the wall clock {wall:.2f}x, "
        "which also counts the fsync of our atomic write and whatever else ran)"
    )


if __name__ == "__main__":
    main()
