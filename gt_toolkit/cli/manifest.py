"""``gt-convert manifest``, ``sample`` and ``split``: input manifests from data."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gt_toolkit.cli.options import (
    add_aws_options,
    check_outputs,
    eprint,
    lost_labels_exit,
    refuse_outputs,
    remove_stale,
    store_from_args,
)

if TYPE_CHECKING:
    from gt_toolkit.formats.manifest import ManifestLine, ReadStats
    from gt_toolkit.storage.s3 import S3Store

# The values of formats.manifest.RejectPolicy and storage.s3.DEFAULT_IMAGE_EXTENSIONS, spelled
# out so that `gt-convert --help` imports neither (tests/cli/test_cli.py keeps them equal).
REJECT_POLICIES = ("strict", "collect")
IMAGE_EXTENSIONS_HELP = ".jpg .jpeg .png"


def _not_json(text: str) -> Any:
    raise ValueError(f"{text} is not JSON (JSON has no NaN or infinities)")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is too large for a JSON number a reader can hold")
    return value


def _json_object(text: str) -> dict[str, Any]:
    """A JSON object, strictly.

    Python's parser also takes NaN and Infinity, which the manifest writer turns into null.
    """
    try:
        value = json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _percent(text: str) -> float:
    value = float(text)
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError("must be in (0, 100]")
    return value


def _add_read_options(parser: argparse.ArgumentParser, rejects_default: str) -> None:
    parser.add_argument(
        "--policy",
        choices=REJECT_POLICIES,
        default="collect",
        help="strict: stop at the first bad line; collect: keep going and write rejects (default)",
    )
    parser.add_argument("--rejects", help=f"rejects file (default: {rejects_default})")


def _rejects_location(args: argparse.Namespace, out: str) -> str:
    return str(args.rejects) if args.rejects else f"{out}.rejects.jsonl"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the manifest, sample and split subcommands."""
    p = subparsers.add_parser(
        "manifest",
        help="list an S3 prefix or a local folder into an input manifest",
        description='Write a Ground Truth input manifest ({"source-ref": ...} per line) '
        "for every image under an S3 prefix or a local folder, in key order.",
    )
    p.add_argument("src", help="s3://bucket/prefix/ or a local folder")
    p.add_argument(
        "-o", "--out", "--output", required=True, help="output manifest (path or s3:// URI)"
    )
    p.add_argument(
        "--s3-prefix",
        help="for a local folder: the s3://bucket/prefix/ its files are uploaded to",
    )
    p.add_argument(
        "--ext",
        action="append",
        help=f"extension to keep, repeatable (default: {IMAGE_EXTENSIONS_HELP}, any case)",
    )
    p.add_argument("--exclude", action="append", default=[], help="glob to skip, repeatable")
    p.add_argument("--extra", type=_json_object, help="JSON object added to every line")
    add_aws_options(p)
    p.set_defaults(func=_run_manifest)

    s = subparsers.add_parser(
        "sample",
        help="draw a reproducible random sample of a manifest",
        description="Pick a seeded random sample (by percent, k = round(P/100 * n), or by "
        "count), keeping the original line order, and record which lines were chosen in "
        "OUT.sample.json.",
    )
    s.add_argument("manifest", help="input manifest (path or s3:// URI)")
    s.add_argument(
        "-o", "--out", "--output", required=True, help="sampled manifest (path or s3:// URI)"
    )
    size = s.add_mutually_exclusive_group(required=True)
    size.add_argument("--percent", type=_percent, help="percentage of lines to keep")
    size.add_argument("--count", type=_count, help="number of lines to keep")
    s.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    _add_read_options(s, "OUT.rejects.jsonl")
    add_aws_options(s)
    s.set_defaults(func=_run_sample)

    sp = subparsers.add_parser(
        "split",
        help="split a manifest into stable train and validation manifests",
        description="Assign every line to train or validation by a seeded hash of its "
        "source-ref: adding lines later never moves existing ones.",
    )
    sp.add_argument("manifest", help="input manifest (path or s3:// URI)")
    sp.add_argument("-o", "--out", "--output", required=True, help="output folder or s3:// prefix")
    sp.add_argument("--validation-percent", type=_percent, default=20.0, help="default 20")
    sp.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    _add_read_options(sp, "OUT/split.rejects.jsonl")
    add_aws_options(sp)
    sp.set_defaults(func=_run_split)


def _run_manifest(args: argparse.Namespace) -> int:
    from gt_toolkit.formats.input_manifest import iter_input_records
    from gt_toolkit.formats.manifest import write_manifest
    from gt_toolkit.progress import progress
    from gt_toolkit.storage.files import ListedFolder
    from gt_toolkit.storage.s3 import DEFAULT_IMAGE_EXTENSIONS

    extensions = tuple(args.ext) if args.ext else DEFAULT_IMAGE_EXTENSIONS
    # a manifest beside the images is fine: an output the listing would keep replaces an
    # image, or is one more image to the next run
    listed = ListedFolder(str(args.src), extensions)
    refuse_outputs([("output", str(args.out), "-o")], {}, {"image folder": listed})
    store = store_from_args(args)
    check_outputs([str(args.out)], store)  # before the listing, which may be long
    records = iter_input_records(
        args.src,
        s3_prefix=args.s3_prefix,
        extensions=extensions,
        exclude=args.exclude,
        extra=args.extra,
        store=store,
    )
    count = write_manifest(progress(records, desc="listing", unit="obj"), args.out, store=store)
    eprint(f"wrote {count} lines to {args.out}")
    return 0


def _read(
    args: argparse.Namespace, rejects: str, stats: ReadStats, store: S3Store
) -> Iterator[ManifestLine]:
    from gt_toolkit.formats.manifest import read_manifest

    return read_manifest(
        args.manifest, policy=args.policy, rejects=rejects, stats=stats, store=store
    )


def _report(stats: ReadStats, args: argparse.Namespace, rejects: str, store: S3Store) -> None:
    """Say what the read found, once the outputs are written.

    A clean read removes the rejects file an earlier run left: it would name lines this
    run did not reject.
    """
    eprint(f"read {args.manifest}: {stats.summary()}")
    if stats.rejected_total:
        eprint(f"rejects written to {rejects}")
    else:
        remove_stale(rejects, store, "rejects file")


def _exit_code(stats: ReadStats, rejects: str) -> int:
    """1 when lines were rejected: they are missing from the output (see lost_labels_exit)."""
    lost = [f"{stats.rejected_total} rejected lines"] if stats.rejected_total else []
    return lost_labels_exit(lost, rejects)


def _refuse_shared_files(manifest: str, outputs: dict[str, str], rejects: str) -> None:
    """Refuse an output (``-o``) or rejects file that is the input manifest, or one another.

    Each is a file, so none may be under another: on S3, where a key may be another's
    prefix, ``split -o s3://b/split/ --rejects s3://b/split`` wrote the rejects as an object
    ``split`` beside the folder ``split/`` (locally, a run that failed after the read).
    """
    written = [(what, where, "-o") for what, where in outputs.items()]
    rejected = ("rejects file", rejects, "--rejects")
    files = [*outputs.values(), rejects]
    refuse_outputs([*written, rejected], {"input": manifest}, output_files=files)


def _run_sample(args: argparse.Namespace) -> int:
    from gt_toolkit.formats.manifest import ReadStats
    from gt_toolkit.formats.sampling import item_key, sample_items, sample_percent
    from gt_toolkit.progress import progress
    from gt_toolkit.storage.files import AllOrNone, LineWriter, json_bytes

    out = str(args.out)
    rejects = _rejects_location(args, out)
    outputs = {"output": out, "selection record": f"{out}.sample.json"}
    _refuse_shared_files(str(args.manifest), outputs, rejects)
    store = store_from_args(args)
    # one that could only fail would take the others, and the earlier run's, with it
    check_outputs([*outputs.values(), rejects], store)
    passes: list[ReadStats] = []

    # the sample, its record and the rejects file the read published: all or none
    together = AllOrNone(store=store)

    def lines() -> Iterator[tuple[int, str, bytes]]:
        # --percent reads once (see sample_percent); a rare second pass gets fresh counts.
        # Only (line number, key, bytes) are kept: a parsed line costs ten times its bytes.
        passes.append(ReadStats())
        read = _read(args, rejects, passes[-1], store)
        for line in progress(read, desc="sampling", unit="line"):
            yield line.line_no, item_key(line.data), line.raw
        if passes[-1].rejected_total:  # published as the read ended: one of the run's files
            together.adopt(rejects)

    def key(item: tuple[int, str, bytes]) -> str:
        return item[1]

    with together:
        together.keep_earlier([rejects])  # the read replaces it: put back if the run fails
        if args.percent is not None:
            result = sample_percent(lines, percent=args.percent, seed=args.seed, key=key)
        else:
            result = sample_items(lines(), count=args.count, seed=args.seed, key=key)
        with together.open(out) as fh:
            writer = LineWriter(fh)
            for _, _, raw in result.items:
                writer.add(raw)
            writer.flush()
        written = writer.count
        record = {
            "manifest": str(args.manifest),
            "seed": args.seed,
            "percent": args.percent,
            "count": args.count,
            "total": result.total,
            "selected": written,
            "lines": [line_no for line_no, _, _ in result.items],
            "keys": result.keys,
        }
        with together.open(f"{out}.sample.json") as fh:
            fh.write(json_bytes(record))
    _report(passes[-1], args, rejects, store)
    eprint(f"wrote {written} of {result.total} lines to {out}")
    eprint(f"selection recorded in {out}.sample.json")
    return _exit_code(passes[-1], rejects)


def _run_split(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gt_toolkit.convert.staging import StagedOutput, listing_of
    from gt_toolkit.errors import StorageError
    from gt_toolkit.formats.manifest import ReadStats, dump_line
    from gt_toolkit.formats.sampling import Splitter, item_key
    from gt_toolkit.progress import progress
    from gt_toolkit.storage.files import AllOrNone, join_location
    from gt_toolkit.storage.s3 import is_s3_uri

    out = str(args.out)
    if not is_s3_uri(out) and Path(out).exists() and not Path(out).is_dir():
        raise StorageError(f"cannot write {out}: it is a file, and split writes a folder")
    counts = {"train": 0, "validation": 0}
    rejects = _rejects_location(args, join_location(out, "split"))
    outputs = {f"{name} manifest": join_location(out, f"{name}.manifest") for name in counts}
    outputs["output file"] = listing_of(out, file_output=False)  # what a rerun replaces
    _refuse_shared_files(str(args.manifest), outputs, rejects)
    stats = ReadStats()
    store = store_from_args(args)
    check_outputs([rejects], store)  # the manifests are staged: a failed run leaves none
    lines = _read(args, rejects, stats, store)
    fraction = args.validation_percent / 100  # in (0, 1]: _percent checked it
    # split_name's rule, its Splitter (and salt) made once, not once per line
    split = Splitter(validation_fraction=fraction, seed=args.seed).__call__
    # both manifests or neither: one that failed to write takes the other with it, and
    # the rejects file the read published goes with them
    with (
        AllOrNone(store=store) as together,
        StagedOutput(out, store=store, kind="split") as staged,
        contextlib.ExitStack() as stack,
    ):
        together.keep_earlier([rejects])  # the read replaces it: put back if the run fails
        sinks = {
            name: stack.enter_context(staged.open(staged.location(f"{name}.manifest")))
            for name in counts
        }
        for line in progress(lines, desc="splitting", unit="line"):
            name = split(item_key(line.data))
            counts[name] += 1
            sinks[name].write(dump_line(line) + b"\n")
        if stats.rejected_total:  # published as the read ended: one of the run's files
            together.adopt(rejects)
    _report(stats, args, rejects, store)
    eprint(f"wrote {counts['train']} train and {counts['validation']} validation lines to {out}")
    return _exit_code(stats, rejects)
