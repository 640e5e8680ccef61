"""``gt-convert evaluate PRED REF``: score detections against a reference manifest."""

from __future__ import annotations

import argparse

from gt_toolkit.cli.options import (
    add_aws_options,
    check_outputs,
    eprint,
    fraction,
    positive_int,
    refuse_outputs,
    store_from_args,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the evaluate subcommand."""
    p = subparsers.add_parser(
        "evaluate",
        help="AP, precision/recall and per-image IoU of detections against a reference",
        description="Compare detections (a Ground Truth output manifest, JSON Lines of "
        '{"source-ref", "boxes": [{label, left, top, width, height, score}]} as decoded '
        "endpoint predictions, COCO with scores as consolidate --output-format coco "
        "writes, or a detector's COCO results list when REF is the COCO file it refers to) "
        "with a reference (an output manifest or COCO). Images meet by source-ref "
        "(a COCO image's source_ref, else its file_name). Prints a per-class table "
        "(COCO AP@0.5, AP@0.75, AP@[.5:.95], precision/recall at a score threshold), COCO's "
        "AP and AR by box size and AR@1/10/100, and the worst images by matched mean IoU. "
        "Detections on images the reference does not list are left out with a warning; "
        "when none is in the reference the run fails.",
    )
    p.add_argument(
        "predictions",
        help="detections: output manifest, prediction JSON Lines, COCO or a COCO results list",
    )
    p.add_argument("reference", help="reference output manifest or COCO (path or s3:// URI)")
    p.add_argument("-o", "--out", "--output", help="write the full report as JSON here")
    p.add_argument("--pred-attribute", help="label attribute of PRED (default: detected)")
    p.add_argument("--ref-attribute", help="label attribute of REF (default: detected)")
    p.add_argument("--iou-threshold", type=fraction, default=0.5, help="for P/R (default 0.5)")
    p.add_argument(
        "--score-threshold", type=fraction, default=0.0, help="for P/R and image IoU (default 0)"
    )
    p.add_argument(
        "--max-detections",
        type=positive_int,
        help="per image and class, best scores first (COCO uses 100; default: all)",
    )
    p.add_argument("--worst", type=positive_int, default=10, help="images to list (default 10)")
    add_aws_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Read both sides, evaluate, print the table, write the JSON report."""
    from gt_toolkit.evaluation.metrics import (
        evaluate_detections,
        format_evaluation,
        read_detection_set,
    )
    from gt_toolkit.storage.files import write_json
    from gt_toolkit.text import printable

    inputs = {"predictions": str(args.predictions), "reference": str(args.reference)}
    refuse_outputs([("report", args.out, "-o")], inputs)
    store = store_from_args(args)
    # written after both sides are read and scored: one it could only fail to write (or
    # one named as a folder, 'report/') stops the run first
    check_outputs([args.out], store)
    pred = read_detection_set(
        args.predictions,
        label_attribute=args.pred_attribute,
        store=store,
        coco_reference=args.reference,
    )
    # COCO on both sides: the reference's boxes are matched by category id, as pycocotools does
    coco_pred = args.predictions if pred.kind in ("coco", "coco-results") else None
    ref = read_detection_set(
        args.reference,
        label_attribute=args.ref_attribute,
        store=store,
        coco_predictions=coco_pred,
    )
    for name, found in (("predictions", pred), ("reference", ref)):
        for reason in found.skipped:
            eprint(f"skipped in {name}: {printable(reason)}")
    result = evaluate_detections(
        pred.boxes,
        ref.boxes,
        iou_threshold=args.iou_threshold,
        score_threshold=args.score_threshold,
        max_detections=args.max_detections,
        # a results list against its COCO file: pycocotools' order, so its very numbers
        coco_order=pred.image_order if pred.kind == "coco-results" else None,
    )
    print(format_evaluation(result, worst=args.worst))
    for warning in result.warnings:
        eprint(f"warning: {printable(warning)}")
    if args.out:
        report = result.to_json()
        report["sources"] = {
            "predictions": {
                "location": str(args.predictions),
                "kind": pred.kind,
                "attribute": pred.attribute,
                "images": len(pred.boxes),
                "skipped": pred.skipped,
            },
            "reference": {
                "location": str(args.reference),
                "kind": ref.kind,
                "attribute": ref.attribute,
                "images": len(ref.boxes),
                "skipped": ref.skipped,
            },
        }
        write_json(args.out, report, store=store)
        eprint(f"wrote {args.out}")
    return 0
