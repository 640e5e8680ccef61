"""``gt-convert <target>``: one subcommand per conversion target, built from the registry.

Every target in :data:`gt_toolkit.convert.CONVERTERS` becomes a subcommand taking
``INPUT -o OUT``; options are offered from what the target's spec says it uses. The summary
is printed to stderr and written as JSON (``--summary``, default ``OUT/summary.json`` or
``OUT.summary.json`` for file outputs).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from gt_toolkit.cli.options import (
    add_aws_options,
    add_image_mirror_options,
    eprint,
    fraction,
    store_from_args,
)
from gt_toolkit.convert import CONVERTERS, ConverterSpec, ConvertOptions, Target
from gt_toolkit.formats.manifest import RejectPolicy
from gt_toolkit.formats.output_manifest import BoxPolicy, EmptyPolicy
from gt_toolkit.storage.files import join_location, write_json

__all__ = ["register", "run"]


def _add_target(subparsers: Any, target: Target, spec: ConverterSpec) -> None:
    p = subparsers.add_parser(target.value, help=spec.help, description=spec.help)
    p.add_argument("input", metavar="INPUT", help=f"the {spec.input_kind} (path or s3:// URI)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output path or s3:// URI")
    p.add_argument("--summary", help="summary JSON (default: beside the output)")
    if spec.input_kind == "output-manifest":
        p.add_argument("--label-attribute", help="the label attribute (default: newest)")
        p.add_argument(
            "--policy",
            choices=[x.value for x in RejectPolicy],
            default=RejectPolicy.COLLECT.value,
            help="strict: stop at the first bad line; collect: write rejects (default)",
        )
        p.add_argument("--rejects", help="rejects file (default: beside the output)")
        p.add_argument(
            "--boxes",
            choices=[x.value for x in BoxPolicy],
            default=BoxPolicy.CLIP.value,
            help="boxes outside image_size: clip them (default) or reject the line",
        )
        p.add_argument(
            "--empty",
            choices=[x.value for x in EmptyPolicy],
            help="images without labels: keep or reject (default: reject for augmented, "
            "keep otherwise)",
        )
    else:
        p.add_argument("--label-attribute", help="label attribute to write (default: prior-boxes)")
        p.add_argument("--image-prefix", help="s3:// prefix for source-refs of relative images")
        p.add_argument("--job-name", default="prelabel", help="job-name in the metadata")
        p.add_argument(
            "--human-annotated", action="store_true", help="mark the boxes human-annotated"
        )
    if spec.splits:
        p.add_argument("--validation-fraction", type=fraction, default=0.2, help="default 0.2")
        p.add_argument("--seed", default="0", help="split seed (default 0)")
        p.add_argument(
            "--stratify", action="store_true", help="stratify the split by (rarest) class"
        )
    if target is Target.AUGMENTED:
        p.add_argument(
            "--include-metadata", action="store_true", help="keep <attr>-metadata on each line"
        )
        p.add_argument(
            "--channel-prefix", help="s3:// prefix the manifests will live under (channels.json)"
        )
    if spec.images is not None:
        p.add_argument(
            "--copy-images",
            action=argparse.BooleanOptionalAction,
            default=spec.images,
            help=f"copy the images too (default: {'yes' if spec.images else 'no'})",
        )
        add_image_mirror_options(p)
        p.add_argument("--workers", type=int, default=16, help="parallel copies (default 16)")
    add_aws_options(p)
    p.set_defaults(func=run, target=target.value)


def register(subparsers: Any) -> None:
    """Add one subcommand per conversion target."""
    for target, spec in CONVERTERS.items():
        _add_target(subparsers, target, spec)


def _is_file_output(target: Target, out: str) -> bool:
    return target in (Target.FROM_COCO, Target.FROM_YOLO) or out.endswith(".json")


def run(args: argparse.Namespace) -> int:
    """Run the conversion, print the summary, write it as JSON."""
    target = Target(args.target)
    out = str(args.output)
    side = f"{out}." if _is_file_output(target, out) else None
    store = store_from_args(args)

    def beside(name: str) -> str:
        return f"{side}{name}" if side else join_location(out, name)

    get = vars(args).get
    options = ConvertOptions(
        label_attribute=get("label_attribute"),
        policy=get("policy") or RejectPolicy.COLLECT,
        rejects=get("rejects") or (beside("rejects.jsonl") if get("policy") else None),
        box_policy=get("boxes") or BoxPolicy.CLIP,
        empty_policy=get("empty"),
        validation_fraction=share if (share := get("validation_fraction")) is not None else 0.2,
        seed=get("seed") or 0,
        stratify=bool(get("stratify")),
        include_metadata=bool(get("include_metadata")),
        copy_images=get("copy_images"),
        images_dir=get("images_dir"),
        images_prefix=get("images_prefix"),
        workers=get("workers") or 16,
        channel_prefix=get("channel_prefix"),
        image_prefix=get("image_prefix"),
        job_name=get("job_name") or "prelabel",
        human_annotated=bool(get("human_annotated")),
        store=store,
    )
    result = CONVERTERS[target].func(args.input, out, options)
    summary = result.to_json()
    if options.rejects is not None and result.stats.rejected_total:
        summary["rejects_file"] = os.fspath(options.rejects)
    summary_loc = args.summary or beside("summary.json")
    write_json(summary_loc, summary, store=store)
    for line in result.summary_lines():
        eprint(line)
    if options.rejects is not None and result.stats.rejected_total:
        eprint(f"  rejects: {options.rejects}")
    eprint(f"  summary: {summary_loc}")
    reverse = target in (Target.FROM_COCO, Target.FROM_YOLO)
    if not reverse and result.stats.objects == 0:
        eprint("gt-convert: nothing was converted: no usable labeled line (see the summary)")
        return 1
    return 1 if result.image_errors else 0
