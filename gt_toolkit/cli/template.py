"""``gt-convert template``: write a worker task template, lint it, and preview it offline.

Everything is read, rendered and checked before anything is written, so a run that fails
(a lint error, a missing preview manifest) leaves no file behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
from typing import TYPE_CHECKING, Any

from gt_toolkit.cli.options import (
    add_aws_options,
    add_image_mirror_options,
    check_outputs,
    eprint,
    positive_int,
    refuse_outputs,
    store_from_args,
)

if TYPE_CHECKING:
    from gt_toolkit.storage.s3 import S3Store
    from gt_toolkit.worker_ui.lint import LintFinding
    from gt_toolkit.worker_ui.preview import PreviewPage

# --task value -> (label task type, renderer arguments)
_TASKS = {
    "bounding-box": "BoundingBox",
    "image-classifier": "ImageMultiClass",
    "image-classifier-multi": "ImageMultiClassMultiLabel",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``template`` subcommand."""
    p = subparsers.add_parser(
        "template",
        help="write a crowd-HTML worker template with good/bad examples; lint; preview",
        description="Render a Ground Truth worker task template (crowd-HTML + Liquid) with "
        "instructions and good and bad examples, check it, and optionally write an offline "
        "preview page for one manifest line.",
    )
    p.add_argument(
        "-o", "--out", "--output", required=True, help="template to write (path or s3:// URI)"
    )
    p.add_argument(
        "--task", choices=sorted(_TASKS), default="bounding-box", help="default bounding-box"
    )
    p.add_argument("--labels", nargs="+", default=[], metavar="LABEL", help="label names")
    p.add_argument(
        "--label-file",
        help="label category config JSON (either document version) or a text file with one "
        "label per line, added after --labels; path or s3:// URI",
    )
    p.add_argument("--header", default="", help="the question shown above the image")
    short = p.add_mutually_exclusive_group()
    short.add_argument(
        "--short-instructions", default="", help="side-panel instructions (plain text)"
    )
    short.add_argument(
        "--short-instructions-file", help="read the short instructions (plain text) from a file"
    )
    full = p.add_mutually_exclusive_group()
    full.add_argument("--full-instructions", default="", help="full instructions (plain text)")
    full.add_argument(
        "--full-instructions-file", help="read the full instructions (plain text) from a file"
    )
    p.add_argument(
        "--full-instructions-header",
        default="Full instructions",
        help="title of the full instructions (default 'Full instructions')",
    )
    p.add_argument(
        "--good",
        nargs=2,
        action="append",
        default=[],
        metavar=("IMAGE", "DESCRIPTION"),
        help="a good example: image (https URL, s3:// URI or local file) and what it shows; "
        "repeatable",
    )
    p.add_argument(
        "--bad",
        nargs=2,
        action="append",
        default=[],
        metavar=("IMAGE", "DESCRIPTION"),
        help="a bad example, as --good; repeatable",
    )
    p.add_argument(
        "--static-labels",
        action="store_true",
        help="always use these labels and header, even when taskInput supplies its own",
    )
    p.add_argument("--element-name", help="answer key (default boundingBox / category)")
    p.add_argument(
        "--max-image-side",
        type=int,
        help="longer side, in pixels, of embedded local example images (default 480)",
    )
    p.add_argument(
        "--write-label-config", metavar="LOCATION", help="also write the label category config"
    )
    p.add_argument("--allow-lint-errors", action="store_true", help="write despite lint errors")
    p.add_argument("--no-s3-check", action="store_true", help="do not check s3:// example images")
    _add_preview_options(p)
    add_aws_options(p)
    p.set_defaults(func=run)


def _add_preview_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("preview")
    group.add_argument(
        "--preview",
        metavar="MANIFEST_LINE_OR_MANIFEST",
        help="a JSON manifest line / taskInput, or a manifest (path or s3://): write an "
        "offline HTML preview of the task for it",
    )
    group.add_argument(
        "--preview-line", type=positive_int, help="manifest line (1-based; default 1)"
    )
    group.add_argument("--preview-out", help="preview page (default: OUT with .preview.html)")
    add_image_mirror_options(group)
    group.add_argument("--label-attribute", help="label whose boxes become initialValue")
    group.add_argument("--offline", action="store_true", help="never read images from S3")


def _read_text(location: str, store: S3Store) -> str:
    """A UTF-8 text file, without the byte-order mark Windows editors put at its start."""
    import codecs

    from gt_toolkit.errors import TemplateError
    from gt_toolkit.storage.files import read_bytes

    raw = read_bytes(location, store=store).removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise TemplateError(
            f"{location}:{line}: not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None


def _labels(args: argparse.Namespace, store: S3Store) -> list[str]:
    """``--labels`` then ``--label-file``: a JSON label category config, else one per line.

    A file that starts like JSON is parsed as JSON, so a broken config is reported instead of
    becoming one label per line of its text.
    """
    from gt_toolkit.errors import ValidationError
    from gt_toolkit.formats.label_categories import parse_label_category_config

    labels = list(args.labels)
    if args.label_file:
        text = _read_text(args.label_file, store)
        if _is_json_config(text, args.label_file):
            try:
                labels += parse_label_category_config(text)
            except ValidationError as exc:
                what = f"label category config {args.label_file}"
                raise ValidationError(exc.problems, what=what) from None
        else:
            labels += [line.strip() for line in text.splitlines() if line.strip()]
    return labels


def _is_json_config(text: str, location: str) -> bool:
    """Whether a label file is a label category config (JSON), not one label per line.

    JSON when it parses as JSON; a text that does not is still taken for a broken config
    (and reported) when the file is named ``.json`` or opens as an object does (``{`` and a
    quote), so a first label such as ``{other}`` or ``[unsure]`` stays a label.
    """
    head = text.lstrip()
    if not head.startswith(("{", "[")):
        return False
    try:
        json.loads(text)
    except ValueError:
        return location.lower().endswith(".json") or re.match(r'\{\s*("|\}|$)', head) is not None
    return True


def _preview_out(args: argparse.Namespace) -> str:
    if args.preview_out:
        return str(args.preview_out)
    out = str(args.out)
    stem = out[: -len(".html")] if out.endswith(".html") else out
    return f"{stem}.preview.html"


def _refuse_shared_files(args: argparse.Namespace) -> list[str | None]:
    """Refuse a file to write that is one the run reads (read first, then replaced) or writes.

    Returns where each output goes (``None``: not written by this run).
    """
    preview = args.preview
    inputs = {
        "label file": args.label_file,
        "short instructions file": args.short_instructions_file,
        "full instructions file": args.full_instructions_file,
        # --preview is a manifest line or taskInput, or else a manifest to read
        "preview manifest": None if not preview or preview.lstrip().startswith("{") else preview,
    }
    inputs |= {f"example image {image}": image for image, _ in [*args.good, *args.bad]}
    outputs = [
        ("template", str(args.out), "-o"),
        ("label category config", args.write_label_config, "--write-label-config"),
        ("preview page", _preview_out(args) if preview else None, "--preview-out"),
    ]
    files = [where for _, where, _ in outputs if where is not None]  # none under another
    refuse_outputs(outputs, inputs, output_files=files)
    return [where for _, where, _ in outputs]


def _report(findings: list[LintFinding], allow_errors: bool) -> bool:
    """Print findings; True when errors should stop the command."""
    from gt_toolkit.worker_ui.lint import has_errors

    for finding in findings:
        eprint(f"gt-convert template: {finding}")
    if has_errors(findings) and not allow_errors:
        eprint("gt-convert template: not written (fix the errors or pass --allow-lint-errors)")
        return True
    return False


def _render(args: argparse.Namespace, labels: list[str], store: S3Store) -> str | None:
    """Lint the inputs, render the template, lint the result; ``None`` when errors stop it."""
    from gt_toolkit.worker_ui.lint import lint_template, lint_template_text
    from gt_toolkit.worker_ui.render import (
        render_bounding_box_template,
        render_image_classifier_template,
    )

    short = args.short_instructions
    if args.short_instructions_file:
        short = _read_text(args.short_instructions_file, store)
    full = args.full_instructions
    if args.full_instructions_file:
        full = _read_text(args.full_instructions_file, store)
    good = [(image, text) for image, text in args.good]
    bad = [(image, text) for image, text in args.bad]
    overrides = not args.static_labels
    findings = lint_template(
        labels=labels,
        header=args.header,
        short_instructions=short,
        full_instructions=full,
        good_examples=good,
        bad_examples=bad,
        task_type=_TASKS[args.task],
        labels_from_task_input=overrides,
        store=None if args.no_s3_check else store,
    )
    if _report(findings, args.allow_lint_errors):
        return None
    common: dict[str, Any] = {
        "full_instructions_header": args.full_instructions_header,
        "task_input_overrides": overrides,
    }
    if args.max_image_side is not None:
        common["max_image_side"] = args.max_image_side
    if args.element_name is not None:  # "" is refused by the renderer, not read as unset
        common["element_name"] = args.element_name
    if args.task == "bounding-box":
        text = render_bounding_box_template(labels, args.header, short, full, good, bad, **common)
    else:
        multi = args.task == "image-classifier-multi"
        text = render_image_classifier_template(
            labels, args.header, short, full, good, bad, multi_label=multi, **common
        )
    if _report(lint_template_text(text), args.allow_lint_errors):
        return None
    return text


def _preview(args: argparse.Namespace, text: str, store: S3Store) -> PreviewPage:
    """The preview page; ``--offline`` keeps the images off S3, not the manifest it names.

    The manifest is read with the run's store (its endpoint, region and profile): read
    with none, an ``s3://`` manifest went to AWS's default endpoint and credentials.
    """
    from gt_toolkit.worker_ui.preview import load_task_input, prepare_preview

    task_input = load_task_input(
        args.preview,
        line_no=args.preview_line or 1,
        label_attribute=args.label_attribute,
        store=store,
    )
    return prepare_preview(
        text,
        task_input,
        store=None if args.offline else store,
        images_dir=args.images_dir,
        images_prefix=args.images_prefix,
    )


# The preview group's options besides --preview: without it nothing would read them.
_PREVIEW_ONLY = ("preview_line", "preview_out", "images_dir", "images_prefix", "label_attribute")


def _check_preview_options(args: argparse.Namespace) -> None:
    """Refuse preview options given without ``--preview`` rather than ignore them."""
    from gt_toolkit.errors import ValidationError

    if args.preview:
        return
    given = [f"--{name.replace('_', '-')}" for name in _PREVIEW_ONLY if getattr(args, name)]
    given += ["--offline"] if args.offline else []
    if given:
        raise ValidationError(
            [f"without --preview nothing reads {', '.join(given)}"], what="template options"
        )


def _shortened(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run(args: argparse.Namespace) -> int:
    """Render, lint and preview everything; only then write the files, all or none."""
    from gt_toolkit.formats.label_categories import build_label_category_config
    from gt_toolkit.storage.files import AllOrNone, json_bytes

    _check_preview_options(args)
    outputs = _refuse_shared_files(args)
    store = store_from_args(args)
    check_outputs(outputs, store)  # all or none: one that could only fail would take the rest
    labels = _labels(args, store)
    text = _render(args, labels, store)
    if text is None:
        return 1
    files = [(args.out, text.encode("utf-8"))]
    if args.write_label_config:
        config = build_label_category_config(labels, task_type=_TASKS[args.task])
        files.append((args.write_label_config, json_bytes(config)))
    page = _preview(args, text, store) if args.preview else None
    if page is not None:
        files.append((_preview_out(args), page.html.encode("utf-8")))
    # Every file is staged before any appears: one that cannot be written stops them all,
    # and one that fails to appear takes back those that already did.
    with AllOrNone(store=store) as together, contextlib.ExitStack() as stack:
        for location, data in files:
            stack.enter_context(together.open(location)).write(data)
    eprint(f"gt-convert template: wrote {args.out} ({len(text):,} characters)")
    if args.write_label_config:
        eprint(f"gt-convert template: wrote {args.write_label_config}")
    if page is not None:
        for missing in page.missing_images:
            eprint(
                "gt-convert template: warning: preview shows a placeholder for "
                + _shortened(missing)
            )
        eprint(f"gt-convert template: wrote preview {_preview_out(args)}")
    return 0
