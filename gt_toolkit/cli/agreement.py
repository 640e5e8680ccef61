"""``gt-convert agreement``: how much annotators agree, as a JSON report and an HTML page."""

from __future__ import annotations

import argparse

from gt_toolkit.cli.consolidate import (
    add_source_options,
    add_worker_model_option,
    lost_labels,
    open_source,
    refuse_shared_source,
    worker_model_arg,
)
from gt_toolkit.cli.options import (
    add_aws_options,
    check_outputs,
    eprint,
    positive_int,
    remove_stale,
    remove_stale_model,
    store_from_args,
    threshold,
)

_MODEL_FILE = "worker-model.json"
"""What ``--worker-model fit`` writes into DIR beside the pages: the fitted model."""


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
    p.add_argument("-o", "--out", "--output", required=True, help="output folder (local or s3://)")
    p.add_argument("--iou-threshold", type=threshold, default=0.5, help="matching IoU (0.5)")
    p.add_argument(
        "--labels",
        nargs="+",
        help="label list (other labels are not counted; a listed label the crowd mostly "
        "spelt otherwise, Ball for ball, is an error as in consolidate)",
    )
    p.add_argument("--worst", type=positive_int, default=50, help="images on the page (50)")
    add_worker_model_option(p, use="show beside each annotator's figures", default="none")
    add_aws_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure, write both files, print the headline; exit 1 when a label could not be read."""
    from gt_toolkit.consolidation.reconsolidate import fit_source_model
    from gt_toolkit.consolidation.settings import ConsolidationSettings
    from gt_toolkit.evaluation.agreement import agreement_files, measure_agreement, write_agreement
    from gt_toolkit.formats.manifest import RejectPolicy, RejectsSink
    from gt_toolkit.storage.files import AllOrNone, join_location, json_bytes

    pages = agreement_files(args.out)
    model_loc = join_location(args.out, _MODEL_FILE)
    rejects_loc = args.rejects or join_location(args.out, "rejects.jsonl")
    outputs: list[tuple[str, str | None, str | None]] = [
        ("agreement JSON", pages["json"], "-o"),
        ("agreement page", pages["html"], "-o"),
        ("worker model", model_loc, "-o" if args.worker_model == "fit" else None),
        ("rejects file", rejects_loc, "--rejects"),
    ]
    refuse_shared_source(args, args.worker_model, outputs, folder=args.out)
    store = store_from_args(args)
    # the rejects file appears after the pages: one that could only fail stops the run first
    check_outputs([where for _, where, option in outputs if option is not None], store)
    rejects = RejectsSink(rejects_loc, policy=RejectPolicy.COLLECT, source=args.source, store=store)
    model = worker_model_arg(args.worker_model, args)
    # the pages, the fitted model and the rejects file appear together or not at all: a run
    # that fails while writing one leaves none of them, and the earlier run's as they were
    with (
        AllOrNone(store=store) as together,
        rejects,
        open_source(args, lambda reject: rejects.add(reject.to_json())) as src,
    ):
        fitted = None
        if model == "fit":  # a first pass; the alpha and the consensus never use the model
            settings = ConsolidationSettings(iou_threshold=args.iou_threshold)
            model = fitted = fit_source_model(src, settings, args.labels)
        report = measure_agreement(
            src.items(), iou_threshold=args.iou_threshold, labels=args.labels, worker_model=model
        )
        report.extra["ingest"] = src.report.to_json()
        notes = [f"Read from {args.source} ({src.kind}): {src.report.summary()}."]
        if model is not None:
            notes.append(
                "Model columns: each annotator's skills in a worker model fitted over the "
                "whole job (docs/consolidation.md); the other figures do not use it. Bias: "
                "each edge's mean offset from the other annotators' box, in box widths (left, "
                "right) or heights (top, bottom), > 0 to the right or down; consolidation "
                "takes it out before fusing."
            )
        written = write_agreement(
            report,
            args.out,
            title=f"Annotator agreement: {args.source}",
            notes=notes,
            store=store,
            worst=args.worst,
            together=together,
        )
        if fitted is not None:
            with together.open(model_loc) as model_file:
                model_file.write(json_bytes(fitted.to_json()))
            written["worker_model"] = model_loc
    if not rejects.count:
        remove_stale(rejects_loc, store, "rejects file")
    if fitted is None:
        remove_stale_model(model_loc, str(args.worker_model or "none"), store)
    why = report.undefined_because()
    alpha = f"undefined ({why})" if why is not None else f"{report.alpha:.3f}"
    unknown = ""
    if report.unknown_workers:
        unknown = (
            f"; {len(report.unknown_workers)} annotators unknown to the worker model (their "
            "model columns are the crowd's)"
        )
    eprint(
        f"alpha {alpha} over {report.units} objects{unknown}; wrote {', '.join(written.values())}"
    )
    return lost_labels(src.report, rejects.count, rejects_loc)
