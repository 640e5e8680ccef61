"""``gt-convert consolidate``: re-consolidate a finished job's worker answers offline."""

from __future__ import annotations

import argparse

from gt_toolkit.cli.options import add_aws_options, eprint, positive_int, store_from_args, threshold
from gt_toolkit.consolidation.engine import ConsolidationSettings
from gt_toolkit.consolidation.reconsolidate import reconsolidate


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``consolidate`` subcommand."""
    p = subparsers.add_parser(
        "consolidate",
        help="re-consolidate a job's worker answers into a new output manifest",
        description=(
            "Read JOB_OUTPUT_PREFIX/annotations/worker-response/iteration-N/<id>/*.json with "
            "the job's manifest, consolidate every object (IoU clustering, one box per "
            "worker per cluster, label vote, majority quorum) and write a Ground Truth "
            "bounding-box output manifest plus a worker-quality table (JSON and CSV)."
        ),
    )
    p.add_argument(
        "job", metavar="JOB_OUTPUT_PREFIX", help="<S3OutputPath>/<job-name>, local or s3://"
    )
    p.add_argument("-o", "--output", required=True, help="output manifest (local or s3://)")
    p.add_argument(
        "--manifest", help="the job's manifest (default: JOB/manifests/output/output.manifest)"
    )
    p.add_argument(
        "--answers-folder",
        help="read per-worker <worker id>.jsonl answer files from this folder instead",
    )
    p.add_argument("--iou-threshold", type=threshold, default=0.5, help="default 0.5")
    p.add_argument(
        "--min-support",
        type=positive_int,
        help="workers needed to keep a box (default: strict majority of those who answered)",
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
    p.add_argument("--no-clip", action="store_true", help="drop boxes crossing the border")
    p.add_argument(
        "--labels", nargs="+", help="label list, class ids in this order (default: the job's)"
    )
    p.add_argument("--label-attribute", default="consolidated", help="default 'consolidated'")
    p.add_argument("--job-name", help="job-name in the metadata (default: last part of JOB)")
    p.add_argument("--quality", help="worker-quality base name (default: OUTPUT.worker-quality)")
    p.add_argument("--threads", type=positive_int, default=16, help="concurrent reads (16)")
    p.add_argument("--element-name", help="crowd element name in answerContent (auto)")
    add_aws_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the re-consolidation and print a summary on stderr."""
    settings = ConsolidationSettings(
        iou_threshold=args.iou_threshold,
        min_support=args.min_support,
        fusion=args.fusion,
        clip=not args.no_clip,
        quorum=args.quorum,
    )
    report = reconsolidate(
        args.job,
        args.output,
        manifest=args.manifest,
        answers_folder=args.answers_folder,
        label_attribute=args.label_attribute,
        job_name=args.job_name,
        labels=args.labels,
        settings=settings,
        quality_output=args.quality,
        store=store_from_args(args),
        max_workers=args.threads,
        element_name=args.element_name,
    )
    eprint(f"wrote {report.output}: {report.summary()}")
    eprint("worker quality: " + ", ".join(report.quality_outputs))
    return 0
