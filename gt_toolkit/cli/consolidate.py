"""``gt-convert consolidate``: consolidate a whole crowd offline, from any labeling tool.

The API is imported inside the functions that run it, so ``gt-convert --help`` stays light.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import TYPE_CHECKING, Literal

from gt_toolkit.cli.options import (
    add_aws_options,
    check_outputs,
    eprint,
    lost_labels_exit,
    positive_int,
    refuse_outputs,
    remove_stale,
    remove_stale_model,
    store_from_args,
    threshold,
)
from gt_toolkit.consolidation.settings import DEFAULT_WORKER_MODEL
from gt_toolkit.errors import ValidationError
from gt_toolkit.formats.crowd import CrowdSourceKind

if TYPE_CHECKING:
    from gt_toolkit.consolidation.engine import ConsolidationSettings
    from gt_toolkit.consolidation.worker_model import WorkerModel
    from gt_toolkit.formats.crowd.base import CrowdSource
    from gt_toolkit.formats.crowd.report import IngestReport, RejectHandler


def add_source_options(p: argparse.ArgumentParser) -> None:
    """SOURCE, ``--from`` and the options of the source kinds (shared with ``agreement``)."""
    p.add_argument(
        "source",
        metavar="SOURCE",
        help="a Ground Truth job output prefix (<S3OutputPath>/<job-name>), or the export to "
        "read with --from, local or s3://",
    )
    p.add_argument(
        "--from",
        dest="kind",
        choices=[k.value for k in CrowdSourceKind],
        default=CrowdSourceKind.GT_JOB.value,
        help="what SOURCE is (default gt-job; shapes in docs/crowd-sources.md)",
    )
    p.add_argument(
        "--manifest",
        help="gt-job: the job's manifest (default: SOURCE/manifests/output/output.manifest); "
        "answers-folder: the manifest the answers refer to",
    )
    p.add_argument(
        "--answers-folder",
        help="read per-worker <worker id>.jsonl files from this folder, numbered by the "
        "manifest of the job SOURCE (same as SOURCE=this folder --from answers-folder)",
    )
    p.add_argument("--data-key", help="label-studio: the task data field of the image (image)")
    p.add_argument(
        "--image-name",
        help="label-studio: the name of the <Image> tag showing that field (the boxes' "
        "to_name), where it is not the field's name: only its boxes are read",
    )
    p.add_argument("--element-name", help="Ground Truth: crowd element name in answerContent")
    p.add_argument("--threads", type=positive_int, help="gt-job: concurrent reads (16)")
    p.add_argument(
        "--rejects",
        help="where broken records go (default: consolidate OUT.rejects.jsonl, agreement "
        "DIR/rejects.jsonl)",
    )


def refuse_shared_source(
    args: argparse.Namespace,
    worker_model: str | None,
    outputs: list[tuple[str, str | None, str | None]],
    folder: str | None = None,
) -> None:
    """Refuse an output among what the run reads or another output (``worker_model``: as given).

    ``outputs`` as :func:`~gt_toolkit.cli.options.refuse_outputs` takes them, the rejects
    file last. ``folder``: the output folder that holds them (``agreement``'s DIR). A folder
    source may be it (the pages go beside a job's files), a file the source reads may not:
    nothing can be written under a file, and the run would say so only after reading it
    all. What the source reads is :func:`~gt_toolkit.formats.crowd.sources.source_reads`'s.
    """
    from gt_toolkit.formats.crowd.sources import source_reads

    location, kind, manifest = _source_args(args)
    reads = source_reads(location, kind, manifest=manifest)
    table = None if worker_model in (None, "fit", "none") else worker_model
    files = {"worker model table": table, **reads.files}
    refuse_outputs([("output folder", folder, "-o")], files, reads.folders)
    # every output is a file: none may be under another (on S3, where a key may be another's
    # prefix, -o s3://b/c --quality s3://b/c/q wrote the object c and c/q.json beside it)
    placed = [location for _, location, _ in outputs if location is not None]
    refuse_outputs(outputs, {"source": args.source} | files, reads.folders, output_files=placed)


def _source_args(args: argparse.Namespace) -> tuple[str, str, str | None]:
    """The location, kind and manifest the source options name (``--answers-folder``: its own)."""
    from gt_toolkit.formats.crowd.gt_job import default_manifest

    location, kind, manifest = args.source, args.kind, args.manifest
    if args.answers_folder is not None:
        if kind != CrowdSourceKind.GT_JOB.value:
            raise ValidationError(["--answers-folder goes with a job prefix, not --from"])
        location, kind = args.answers_folder, CrowdSourceKind.ANSWERS_FOLDER.value
        manifest = manifest or default_manifest(args.source)
    return location, kind, manifest


def open_source(args: argparse.Namespace, on_reject: RejectHandler) -> CrowdSource:
    """The crowd source the arguments name (``--answers-folder`` read as its own kind)."""
    from gt_toolkit.formats.crowd.sources import open_crowd_source

    location, kind, manifest = _source_args(args)
    return open_crowd_source(
        location,
        kind,
        manifest=manifest,
        element_name=args.element_name,
        data_key=args.data_key,
        image_name=args.image_name,
        store=store_from_args(args),
        on_reject=on_reject,
        max_workers=args.threads,
    )


def add_worker_model_option(p: argparse.ArgumentParser, *, use: str, default: str) -> None:
    """``--worker-model fit|none|TABLE`` (shared with ``agreement``); ``use``: what it does."""
    p.add_argument(
        "--worker-model",
        metavar="fit|none|TABLE",
        help=f"{use} each worker's miss rate, false boxes per image, box noise and box bias "
        "over the whole job (docs/consolidation.md, 'The worker model'): fit (fit it on SOURCE "
        "first, a second pass), a saved table (local or s3://, as a fit writes it), or "
        f"none (default: {default})",
    )


def worker_model_arg(
    value: str | None, args: argparse.Namespace
) -> WorkerModel | Literal["fit"] | None:
    """What ``--worker-model`` names (a table is read now: a bad one fails before any work)."""
    if value is None or value == "none":
        return None
    if value == "fit":
        return "fit"
    from gt_toolkit.consolidation.worker_model import read_worker_model

    return read_worker_model(value, store=store_from_args(args))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``consolidate`` subcommand."""
    p = subparsers.add_parser(
        "consolidate",
        help="consolidate several annotators' boxes (Ground Truth, Label Studio, CVAT, COCO)",
        description=(
            "Read every annotator's boxes from SOURCE, consolidate each image (IoU "
            "clustering, one box per worker per cluster, label vote, majority quorum) and "
            "write a Ground Truth bounding-box output manifest (or COCO with scores) plus a "
            "worker-quality table (JSON and CSV). Broken records go to a rejects file and "
            "make the run exit 1, as do answers that could not be read."
        ),
    )
    add_source_options(p)
    p.add_argument("-o", "--output", "--out", required=True, help="output manifest or COCO .json")
    p.add_argument(
        "--output-format",
        choices=["manifest", "coco"],
        default="manifest",
        help="a Ground Truth output manifest (default) or COCO with a score on each box",
    )
    p.add_argument(
        "--image-prefix",
        help="s3://bucket/folder/ that turns a tool's image file names into source-refs",
    )
    _add_engine_options(p)
    p.add_argument("--no-clip", action="store_true", help="drop boxes crossing the border")
    p.add_argument(
        "--labels", nargs="+", help="label list, class ids in this order (default: the source's)"
    )
    p.add_argument("--label-attribute", help="manifest: the label attribute ('consolidated')")
    p.add_argument(
        "--job-name",
        help="job-name in the metadata (default: SOURCE's last part without its extension)",
    )
    p.add_argument("--quality", help="worker-quality base name (default: OUTPUT.worker-quality)")
    add_worker_model_option(
        p,
        use="fuse the kept clusters with (and, with --keep model, decide which are objects)",
        default=f"{DEFAULT_WORKER_MODEL or 'none'}; none with --keep all",
    )
    add_aws_options(p)
    p.set_defaults(func=run)


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    """The flags that choose how clusters are kept and fused (the engine's settings)."""
    p.add_argument("--iou-threshold", type=threshold, default=0.5, help="default 0.5")
    p.add_argument(
        "--keep",
        choices=["quorum", "all", "model"],
        default="quorum",
        help="quorum: clusters with enough workers (default); all: every cluster, scored by "
        "its confidence, to threshold later; model: the clusters the worker model finds "
        "likelier objects than not (needs a worker model)",
    )
    p.add_argument(
        "--min-support",
        type=positive_int,
        help="workers needed to keep a box (default: strict majority of those who answered; "
        "on an image fewer answered, all of them)",
    )
    p.add_argument(
        "--fusion",
        choices=["huber", "mean", "median"],
        default="huber",
        help="how member edges combine (default huber: a mean that sloppy boxes barely move)",
    )
    p.add_argument(
        "--quorum",
        choices=["box", "label"],
        default="label",
        help=(
            "what --min-support counts: workers who gave each label, one box per label that "
            "reaches it (label, default: split votes are dropped at a majority; every label "
            "is kept at 1), or workers who drew the box, labelled by their vote (box)"
        ),
    )


def settings_from_args(args: argparse.Namespace) -> ConsolidationSettings:
    """The consolidation settings the flags ask for (``--keep all``: every cluster)."""
    from gt_toolkit.consolidation.engine import ConsolidationSettings

    if args.keep == "all" and args.min_support is not None:
        raise ValidationError(["--keep all keeps every cluster: drop --min-support"])
    if args.keep == "model" and _model_choice(args) == "none":
        raise ValidationError(["--keep model needs a worker model: not --worker-model none"])
    return ConsolidationSettings(
        iou_threshold=args.iou_threshold,
        min_support=1 if args.keep == "all" else args.min_support,
        fusion=args.fusion,
        clip=not args.no_clip,
        quorum=args.quorum,
        keep="model" if args.keep == "model" else "quorum",
    )


def _model_choice(args: argparse.Namespace) -> str:
    """``--worker-model`` as given, else the offline default.

    With ``--keep all`` the default is ``none``: every cluster scored by the head count, as
    the Lambda scores it; a model given with it places and weighs the clusters, never drops.
    """
    default = None if args.keep == "all" else DEFAULT_WORKER_MODEL
    return str(args.worker_model or default or "none")


def _job_of(args: argparse.Namespace) -> str | None:
    """With ``--answers-folder``, the job is SOURCE's (its last part); else the source's own."""
    return re.split(r"[/\\]", args.source.rstrip("/\\"))[-1] if args.answers_folder else None


def run(args: argparse.Namespace) -> int:
    """Consolidate, write the outputs and a summary; exit 1 when a label could not be read."""
    from gt_toolkit.consolidation.reconsolidate import reconsolidate, side_files
    from gt_toolkit.formats.manifest import RejectPolicy, RejectsSink
    from gt_toolkit.storage.files import AllOrNone, json_bytes

    if args.output_format == "coco" and args.label_attribute is not None:
        raise ValidationError(["--label-attribute names a manifest attribute: not with coco"])
    settings = settings_from_args(args)
    output = os.fspath(args.output)
    rejects_loc = args.rejects or f"{output}.rejects.jsonl"
    table, csv, model_table = side_files(output, args.quality)
    quality = "--quality" if args.quality else "-o"
    choice = _model_choice(args)
    fits = choice == "fit"
    outputs = [
        ("output", output, "-o"),
        ("summary", f"{output}.summary.json", "-o"),
        ("worker model", model_table, "-o" if fits else None),
        ("worker-quality table", table, quality),
        ("worker-quality CSV", csv, quality),
        ("rejects file", rejects_loc, "--rejects"),
    ]
    refuse_shared_source(args, choice, outputs)
    store = store_from_args(args)
    # the rejects file and the summary appear after the output: one that could only fail
    # stops the run before the output replaces the earlier one
    check_outputs([where for _, where, option in outputs if option is not None], store)
    worker_model = worker_model_arg(choice, args)
    rejects = RejectsSink(rejects_loc, policy=RejectPolicy.COLLECT, source=args.source, store=store)
    summary_loc = f"{output}.summary.json"
    # The summary belongs with the outputs: stopped between them (Ctrl-C, a full disk) the run
    # exited 130 or 1 with the new manifest, tables and model in place and no summary. The
    # earlier run's local files are kept first; a failure before the summary is in place
    # takes this run's files back and puts those back.
    with AllOrNone(store=store) as together:
        together.keep_earlier([output, table, csv, model_table, rejects_loc, summary_loc])
        with rejects, open_source(args, lambda reject: rejects.add(reject.to_json())) as src:
            report = reconsolidate(
                src,
                output,
                label_attribute=args.label_attribute or "consolidated",
                job_name=args.job_name or _job_of(args),
                labels=args.labels,
                settings=settings,
                output_format=args.output_format,
                image_prefix=args.image_prefix,
                quality_output=args.quality,
                worker_model=worker_model,
                store=store,
            )
        for placed in (report.output, *report.quality_outputs, report.worker_model_output):
            if placed is not None:
                together.adopt(placed)
        if rejects.count:
            together.adopt(rejects_loc)
        else:
            remove_stale(rejects_loc, store, "rejects file")
        if not fits:
            remove_stale_model(model_table, choice, store)
        summary = report.to_json() | {"rejects_file": rejects_loc if rejects.count else None}
        with together.open(summary_loc) as fh:
            fh.write(json_bytes(summary))
    eprint(f"wrote {report.output}: {report.summary()}")
    eprint("worker quality: " + ", ".join(report.quality_outputs))
    if report.worker_model_output is not None:
        eprint(f"worker model: {report.worker_model_output}")
    return lost_labels(report.ingest, rejects.count, rejects_loc)


def lost_labels(ingest: IngestReport, rejects: int, location: str) -> int:
    """The exit code (:func:`lost_labels_exit`) for broken records and unreadable answers."""
    lost = [f"{rejects} broken records"] if rejects else []
    if ingest.failed_images:
        lost.append(f"{ingest.failed_images} images whose answers could not be read")
    return lost_labels_exit(lost, location)
