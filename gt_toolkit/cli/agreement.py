"""``gt-convert agreement``: how much annotators agree, as a JSON report and an HTML page."""

from __future__ import annotations

import argparse

from gt_toolkit.cli.consolidate import add_source_options, lost_labels, open_source
from gt_toolkit.cli.options import add_aws_options, eprint, positive_int, store_from_args, threshold


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``agreement`` subcommand."""
    p = subparsers.add_parser(
        "agreement",
        help="Krippendorff's alpha for boxes, per class, image and annotator (JSON and HTML)",
        description=(
            "Match every image's boxes across annotators (one box per annotator per object), "
            "then measure agreement: Krippendorff's alpha with 1 - IoU as the distance, per "
            "class, per image (worst first), per annotator against the consensus (precision, "
            "recall, mean IoU, size bias) and for every pair of annotators. Writes "
            "DIR/agreement.json and DIR/agreement.html."
        ),
    )
    add_source_options(p)
    p.add_argument("-o", "--out", required=True, help="output folder (local or s3://)")
    p.add_argument("--iou-threshold", type=threshold, default=0.5, help="matching IoU (0.5)")
    p.add_argument("--labels", nargs="+", help="label list (other labels are not counted)")
    p.add_argument("--worst", type=positive_int, default=50, help="images on the page (50)")
    add_aws_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure, write both files, print the headline; exit 1 when a label could not be read."""
    from gt_toolkit.evaluation.agreement import measure_agreement, write_agreement
    from gt_toolkit.formats.crowd.report import RejectsFile
    from gt_toolkit.storage.files import join_location

    store = store_from_args(args)
    rejects_loc = args.rejects or join_location(args.out, "rejects.jsonl")
    with RejectsFile(rejects_loc, store=store) as rejects, open_source(args, rejects.add) as src:
        report = measure_agreement(
            src.images(), iou_threshold=args.iou_threshold, labels=args.labels
        )
        report.extra["ingest"] = src.report.to_json()
        notes = [f"Read from {args.source} ({src.kind}): {src.report.summary()}."]
        written = write_agreement(
            report,
            args.out,
            title=f"Annotator agreement: {args.source}",
            notes=notes,
            store=store,
            worst=args.worst,
        )
    alpha = "undefined" if report.alpha is None else f"{report.alpha:.3f}"
    eprint(f"alpha {alpha} over {report.units} objects; wrote {written['json']}, {written['html']}")
    return lost_labels(src.report, rejects.count, rejects_loc)
