"""``gt-convert <target>``: one subcommand per conversion target, built from the registry.

Every target in :data:`gt_toolkit.convert.CONVERTERS` becomes a subcommand taking
``INPUT -o OUT``; it offers exactly the options its spec says it reads (:data:`_FLAGS` holds
one flag per :class:`~gt_toolkit.convert.ConvertOptions` field). The summary is printed to
stderr and written as JSON (``--summary``, default ``OUT/summary.json`` or
``OUT.summary.json`` for file outputs), committed with the output: a failed or interrupted
run leaves neither. Building the parser imports no converter.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gt_toolkit.cli.options import (
    IMAGES_DIR_HELP,
    IMAGES_PREFIX_HELP,
    add_aws_options,
    check_outputs,
    eprint,
    fraction,
    lost_labels_exit,
    positive_int,
    refuse_outputs,
    remove_stale,
    store_from_args,
)
from gt_toolkit.convert import (
    CONVERTERS,
    ConversionResult,
    ConverterSpec,
    ConvertOptions,
    Target,
    convert_output,
)
from gt_toolkit.convert.staging import beside_location, listing_of
from gt_toolkit.errors import ValidationError
from gt_toolkit.formats.manifest import RejectPolicy
from gt_toolkit.formats.output_manifest import BoxPolicy, EmptyPolicy
from gt_toolkit.storage.files import join_location, json_bytes
from gt_toolkit.storage.s3 import is_s3_uri

__all__ = ["register", "run"]

_Adder = Callable[[argparse.ArgumentParser, ConverterSpec], Any]
_QUIET = argparse.SUPPRESS  # an option not given stays out of ConvertOptions: its default holds


def _label_attribute(p: argparse.ArgumentParser, spec: ConverterSpec) -> Any:
    if spec.input_kind == "output-manifest":
        return p.add_argument("--label-attribute", default=_QUIET, help="default: the newest")
    return p.add_argument("--label-attribute", default=_QUIET, help="to write (prior-boxes)")


def _copy_images(p: argparse.ArgumentParser, spec: ConverterSpec) -> Any:
    return p.add_argument(
        "--copy-images",
        action=argparse.BooleanOptionalAction,
        default=_QUIET,
        help=f"copy the images too (default: {'yes' if spec.copy_images else 'no'})",
    )


def _flag(*names: str, **kwargs: Any) -> _Adder:
    return lambda p, _spec: p.add_argument(*names, default=_QUIET, **kwargs)


_FLAGS: dict[str, _Adder] = {
    "label_attribute": _label_attribute,
    "policy": _flag(
        "--policy",
        choices=[x.value for x in RejectPolicy],
        help="strict: stop at the first bad item; collect: write rejects (default)",
    ),
    "rejects": _flag("--rejects", help="rejects file (default: beside the output)"),
    "box_policy": _flag(
        "--boxes",
        dest="box_policy",
        choices=[x.value for x in BoxPolicy],
        help="boxes outside image_size: clip them (default) or reject the line",
    ),
    "empty_policy": _flag(
        "--empty",
        dest="empty_policy",
        choices=[x.value for x in EmptyPolicy],
        help="images without labels: keep or reject (default: reject for augmented, keep "
        "otherwise)",
    ),
    "validation_fraction": _flag("--validation-fraction", type=fraction, help="default 0.2"),
    "seed": _flag("--seed", help="split seed (default 0)"),
    "stratify": _flag("--stratify", action="store_true", help="stratify the split by class"),
    "include_metadata": _flag(
        "--include-metadata", action="store_true", help="keep <attr>-metadata on each line"
    ),
    "channel_prefix": _flag(
        "--channel-prefix", help="s3:// prefix the manifests will live under (channels.json)"
    ),
    "copy_images": _copy_images,
    "images_dir": _flag("--images-dir", help=IMAGES_DIR_HELP),
    "images_prefix": _flag("--images-prefix", help=IMAGES_PREFIX_HELP),
    "workers": _flag("--workers", type=positive_int, help="parallel copies (default 16)"),
    "image_prefix": _flag("--image-prefix", help="s3:// prefix for relative image paths"),
    "coco_reference": _flag(
        "--coco-reference",
        metavar="COCO_JSON",
        help="for a results list: the COCO file with its images and categories",
    ),
    "polygon_boxes": _flag(
        "--polygon-boxes",
        action="store_true",
        help="take a segmentation line's bounding box (default: reject the line)",
    ),
    "job_name": _flag("--job-name", help="job-name in the metadata (default prelabel)"),
    "human_annotated": _flag(
        "--human-annotated", action="store_true", help="mark the boxes human-annotated"
    ),
}


def _add_target(subparsers: Any, target: Target, spec: ConverterSpec) -> None:
    p = subparsers.add_parser(target.value, help=spec.help, description=spec.help)
    p.add_argument("input", metavar="INPUT", help=f"the {spec.input_kind} (path or s3:// URI)")
    p.add_argument(
        "-o", "--output", "--out", required=True, metavar="OUT", help="output path or s3:// URI"
    )
    p.add_argument("--summary", help="summary JSON (default: beside the output)")
    for name, add in _FLAGS.items():
        if name in spec.reads:
            add(p, spec)
    add_aws_options(p)
    p.set_defaults(func=run, target=target.value)


def register(subparsers: Any) -> None:
    """Add one subcommand per conversion target."""
    for target, spec in CONVERTERS.items():
        _add_target(subparsers, target, spec)


def run(args: argparse.Namespace) -> int:
    """Run the conversion, print the summary, write it as JSON."""
    target = Target(args.target)
    spec = CONVERTERS[target]
    out = str(args.output)
    file_output = spec.input_kind != "output-manifest" or out.endswith(".json")
    folder_output = spec.writes_folder(out)  # yolo -o y.json too: a folder
    if not folder_output and not is_s3_uri(out) and Path(out).is_dir():  # (-o .: "..x.json")
        raise ValidationError(
            [f"-o {out} is a folder, and {target.value} writes one file: give a file name"],
            what="options",
        )

    def beside(name: str) -> str:
        return f"{out}.{name}" if file_output else join_location(out, name)

    values = {name: getattr(args, name) for name in spec.reads if hasattr(args, name)}
    if "rejects" in spec.reads:
        values.setdefault("rejects", beside("rejects.jsonl"))
    summary_loc = args.summary or beside("summary.json")
    reference = values.get("coco_reference")
    inputs: dict[str, str | None] = {"input": str(args.input)}
    inputs["COCO reference"] = None if reference is None else str(reference)
    folders = {"input folder": spec.listed_input(str(args.input))}
    filled = spec.filled_folders(values.get("copy_images"))
    if folder_output:  # its summary beside the folder when named like a file (y.json)
        fixed = [join_location(out, name) for name in spec.folder_files]
        fixed.append(listing_of(out, file_output=False))
        written = {f"{name} folder": join_location(out, name) for name in filled}
    else:
        fixed = [f"{out}.{name}" for name in spec.side_files]
        fixed.append(listing_of(out, file_output=True))
        # coco -o x.json --copy-images fills images/ beside x.json
        written = {f"{name} folder": beside_location(out, name) for name in filled}
    given = values.get("rejects")  # where this target's rejects go, if it reads any
    outputs: list[tuple[str, str | None, str | None]] = [("output", out, "-o")]
    outputs += [("output file", location, "-o") for location in fixed]
    outputs += [
        ("summary", summary_loc, "--summary" if args.summary else "-o"),
        ("rejects file", None if given is None else str(given), "--rejects"),
    ]
    images = values.get("images_dir")
    files = [*fixed, summary_loc] + ([] if folder_output else [out])
    files += [] if given is None else [str(given)]
    refuse_outputs(
        outputs, inputs, folders, written, None if images is None else str(images), files
    )
    store = store_from_args(args)
    # written as the output is committed (the summary) or as the read ends: a bad one stops
    # the run first. A local output and its side files fail in their stage, before they move,
    # but after the rejects file was written: one whose name is too long for the disk
    # (x.manifest.categories.json) is refused here too. Not the listing (fixed[-1]): written
    # only with files beside a file output, and where it cannot be, only said.
    ours = fixed[:-1] if folder_output else [out, *fixed[:-1]]
    staged = [loc for loc in ours if not is_s3_uri(loc)]
    check_outputs([summary_loc, None if given is None else str(given), *staged], store)

    def summary_of(result: ConversionResult) -> dict[str, bytes]:
        """The summary, committed with the output (written after it, it could be lost)."""
        summary = result.to_json()
        if given is not None and result.stats.rejected_total:
            summary["rejects_file"] = str(given)
        return {summary_loc: json_bytes(summary)}

    options = ConvertOptions(**values, store=store)
    result = convert_output(target, args.input, out, options, along=summary_of)
    rejects = given if result.stats.rejected_total else None
    for line in result.summary_lines():
        eprint(line)
    if rejects is not None:
        eprint(f"  rejects: {rejects}")
    elif given is not None:  # an earlier run's, naming records not in this one
        remove_stale(str(given), store, "rejects file")
    eprint(f"  summary: {summary_loc}")
    lost = result.stats.lost_total
    return lost_labels_exit(
        [f"{lost} records whose labels could not be read"] if lost else [], rejects
    )
