"""``gt-convert review MANIFEST -o DIR``: pictures, contact sheet and HTML review report."""

from __future__ import annotations

import argparse
from pathlib import Path

from gt_toolkit.cli.options import (
    add_aws_options,
    add_image_mirror_options,
    eprint,
    lost_labels_exit,
    positive_int,
    refuse_outputs,
    store_from_args,
)
from gt_toolkit.errors import ValidationError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the review subcommand."""
    p = subparsers.add_parser(
        "review",
        help="draw boxes on the images and write an HTML review report",
        description="Draw the consolidated boxes (with confidence) of an output manifest on "
        "its images, and each worker's boxes beside them when --worker-responses is given; "
        "write DIR/images/*.png, DIR/contact_sheet.png, DIR/report.html (self-contained, "
        "lowest agreement first, with the worker-quality table) and DIR/review.json. "
        "Worker answers are read as the gt-job source reads them; lines and answers that "
        "cannot be used go to DIR/rejects.jsonl and make the exit status 1.",
    )
    p.add_argument("manifest", help="output manifest (path or s3:// URI)")
    p.add_argument("-o", "--out", "--output", required=True, help="output folder")
    p.add_argument(
        "--worker-responses",
        help="the job's output prefix (folder or s3://) holding annotations/worker-response/",
    )
    add_image_mirror_options(p)
    p.add_argument("--label-attribute", help="label attribute to draw (default: detected)")
    p.add_argument(
        "--limit",
        type=positive_int,
        help="draw only the N lowest-agreement objects (default: all); the worker-quality "
        "table still rates every object",
    )
    p.add_argument(
        "--min-width",
        type=int,
        default=320,
        help="scale small images up to this width (default 320; 0 keeps the size)",
    )
    add_aws_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the review folder and print where it is."""
    from gt_toolkit.evaluation.review import write_review
    from gt_toolkit.formats.output_manifest import lost_count
    from gt_toolkit.storage.s3 import is_s3_uri
    from gt_toolkit.text import printable

    if is_s3_uri(args.out):
        raise ValidationError(
            ["review writes a local folder (pictures and a report to open): give a local -o"],
            what="review options",
        )
    _refuse_shared_files(args)
    summary = write_review(
        args.manifest,
        args.out,
        worker_responses=args.worker_responses,
        images_dir=args.images_dir,
        images_prefix=args.images_prefix,
        label_attribute=args.label_attribute,
        limit=args.limit,
        min_width=args.min_width,
        store=store_from_args(args),
    )
    answers = sum(summary.rejected_answers.values())
    reasons = ", ".join(f"{k} {v}" for k, v in summary.rejected_answers.items())
    if summary.rejected:
        eprint(f"warning: {sum(summary.rejected.values())} line(s) rejected: {summary.rejects}")
    if answers:
        eprint(f"warning: {answers} worker answer(s) rejected ({reasons}): {summary.rejects}")
    too_large = set(summary.too_large_images)
    unreadable = [ref for ref in summary.missing_images if ref not in too_large]
    if unreadable:
        eprint(
            f"warning: {len(unreadable)} image(s) not found or unreadable, drawn as "
            f"placeholders, e.g. {printable(unreadable[0])}"
        )
    if summary.too_large_images:
        first = printable(summary.too_large_images[0])
        eprint(
            f"warning: {len(summary.too_large_images)} image(s) past Pillow's decompression-bomb "
            f"limit, not decoded, drawn as placeholders, e.g. {first}"
        )
    if summary.contact_sheet_images < summary.images:
        eprint(
            f"the contact sheet shows the {summary.contact_sheet_images} lowest-agreement "
            f"images of {summary.images}; all are in the report and images/"
        )
    if summary.missing_glyphs:
        eprint(
            f"warning: no font on this machine draws {summary.missing_glyphs[0]!r}: install "
            "fonts-wqy-microhei or fonts-noto-cjk (the pictures show empty boxes there)"
        )
    eprint(f"drew {summary.images} image(s); lowest agreement:")
    for source_ref, agreement in summary.lowest[:5]:
        eprint(f"  {agreement:.3f}  {printable(source_ref)}")  # a key may hold ESC, U+202E
    print(summary.report)
    print(summary.contact_sheet)
    lost_lines = lost_count(summary.rejected)
    lost = [f"{lost_lines} lines not drawn"] if lost_lines else []
    if answers:
        lost.append(f"{answers} worker answers not drawn ({reasons})")
    return lost_labels_exit(lost, summary.rejects)


def _refuse_shared_files(args: argparse.Namespace) -> None:
    """Refuse a review file that is the manifest, or that the worker-response folder lists.

    The pictures' names come from the manifest, so only the fixed files are known here;
    their folder may not be the images folder (``--images-dir``), whose files a picture
    of the same name would replace.
    """
    from gt_toolkit.evaluation.review import review_files
    from gt_toolkit.formats.crowd.gt_job import listed_worker_responses

    answers = args.worker_responses
    folders = {"worker-response folder": listed_worker_responses(answers) if answers else None}
    written = {"output folder": args.out, "pictures folder": Path(args.out) / "images"}
    written |= {k: str(v) for k, v in review_files(args.out).items()}
    outputs = [(what, str(where), "-o") for what, where in written.items()]
    images = None if args.images_dir is None else str(args.images_dir)
    refuse_outputs(outputs, {"input": str(args.manifest), "images folder": images}, folders)
