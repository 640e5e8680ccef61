"""Options and helpers shared by the ``gt-convert`` subcommands.

Nothing here imports boto3 or another heavy library at the top: ``gt-convert --help`` builds
every subcommand's parser, and each subcommand imports the API it runs inside ``run``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from gt_toolkit.errors import ValidationError
    from gt_toolkit.storage.files import ListedFolder
    from gt_toolkit.storage.s3 import S3Store

__all__ = [
    "IMAGES_DIR_HELP",
    "IMAGES_PREFIX_HELP",
    "add_aws_options",
    "add_image_mirror_options",
    "check_outputs",
    "eprint",
    "fraction",
    "lost_labels_exit",
    "positive_int",
    "refuse_outputs",
    "refuse_overlap",
    "store_from_args",
    "threshold",
]


def add_aws_options(parser: argparse.ArgumentParser) -> None:
    """``--endpoint-url``/``--region``/``--profile`` for any subcommand that may touch S3."""
    group = parser.add_argument_group("AWS")
    group.add_argument(
        "--endpoint-url",
        help="S3-compatible endpoint (default: AWS_ENDPOINT_URL or AWS itself)",
    )
    group.add_argument("--region", help="AWS region (default: your AWS configuration)")
    group.add_argument("--profile", help="AWS profile name")


IMAGES_DIR_HELP = "a local folder with copies of the images (read instead of S3)"
IMAGES_PREFIX_HELP = (
    "the s3:// prefix that --images-dir mirrors (default: match the key, then the file name)"
)


def add_image_mirror_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--images-dir``/``--images-prefix``: the one pair every command reads local images by.

    See :class:`gt_toolkit.storage.image_mirror.ImageMirror` for the lookup order.
    """
    parser.add_argument("--images-dir", help=IMAGES_DIR_HELP)
    parser.add_argument("--images-prefix", help=IMAGES_PREFIX_HELP)


def store_from_args(args: argparse.Namespace) -> S3Store:
    """An :class:`S3Store` configured from the AWS options; the client is made lazily."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    from gt_toolkit.errors import StorageError
    from gt_toolkit.storage.s3 import S3Store, make_s3_client

    if args.profile or args.endpoint_url or args.region:
        try:
            session = boto3.session.Session(profile_name=args.profile) if args.profile else None
        except ProfileNotFound as exc:
            raise StorageError(f"--profile: {exc}") from exc
        return S3Store(
            make_s3_client(session=session, endpoint_url=args.endpoint_url, region_name=args.region)
        )
    return S3Store()


def eprint(*parts: object) -> None:
    """Print a report line on stderr (stdout stays for data)."""
    print(*parts, file=sys.stderr)


def lost_labels_exit(lost: list[str], location: str | None) -> int:
    """The exit code of a run that finished: 0 only when no record or label was lost.

    Every command keeps one rule: a run that could not read something it was given exits 1,
    with one line saying what and where the list is, even though its outputs are complete
    for everything it could read (a run that fails outright writes nothing and exits 1 too).

    Args:
        lost: what was lost, one phrase per kind with its count (``"3 rejected lines"``).
        location: the rejects file (or report) that lists them.
    """
    if not lost:
        return 0
    where = f" (listed in {location})" if location else ""
    eprint(f"gt-convert: labels were lost: {', '.join(lost)}{where}")
    return 1


def refuse_overlap(
    what: str,
    location: str,
    option: str,
    files: Mapping[str, str | None],
    folders: Mapping[str, ListedFolder | None] | None = None,
    written: Mapping[str, str | None] | None = None,
) -> None:
    """Refuse a file the run writes or removes that is one of ``files`` or listed in ``folders``.

    Every command publishes its outputs when it ends, after it has read its inputs: an
    output that is an input (by any name) would replace it, and one the run would list in
    a folder it reads would be read as one more source by the next run. Any other file in
    such a folder is no source (a CVAT folder lists ``.xml`` and ``.zip`` only), so it is
    allowed. Checked before anything is read or written, so a refused run leaves everything
    as it was.

    Args:
        what: what the run writes there (``"output"``, ``"rejects file"``).
        location: where, local or ``s3://``.
        option: the option that moves it (``"-o"``), named in the message.
        files: what each file it must not be is (``"input"``) and where (``None``: none).
        folders: the same for folders the run lists, each with the files it reads there.
        written: the same for folders where the run writes a file per image, by names known
            only as it runs (a YOLO label, a copied image): any file there may be replaced.

    Raises:
        ValidationError: naming both, and the option to change.
    """
    from gt_toolkit.storage.files import inside_location, same_location
    from gt_toolkit.storage.s3 import is_s3_uri

    subject = f"{what} {location}"
    for name, other in files.items():
        if other is not None and same_location(location, other):
            raise _refusal(subject, _also(name, other, location), option)
    # a link is written where it leads (all.manifest -> images/img_000.jpg replaced that
    # image): the listing keeps or skips the file it leads to, not the link's name
    lands = location if is_s3_uri(location) else os.path.realpath(location)
    for name, folder in (folders or {}).items():
        if folder is None or not (folder.lists(location) or folder.lists(lands)):
            continue  # a file the listing skips is no source, wherever it lies
        if inside_location(location, folder.location):
            reads = _what_it_reads(folder)
            linked = not is_s3_uri(location) and os.path.islink(location)  # noqa: PTH114
            said = f"{subject} (a link to {lands})" if linked else subject
            raise _refusal(said, f"is inside the {name} {folder.location}, {reads}", option)
    for name, where in (written or {}).items():
        if where is not None and inside_location(location, where):
            raise _refusal(subject, f"is inside the {name} {where}, {_FILLS}", option)


_FILLS = "where the run writes a file per image"


def _refusal(subject: str, clash: str, option: str) -> ValidationError:
    """The one line every refusal is: both places, and the option that moves this one."""
    from gt_toolkit.errors import ValidationError

    return ValidationError([f"the {subject} {clash}: give {option} another path"], what="options")


def _also(name: str, other: str, location: str) -> str:
    """``is also the input``, and where it is when named otherwise (a link, a default).

    ``the output hl.manifest is also the input manifest J/manifests/output/output.manifest``:
    without it the line named only one of the places, and not the one the user had not typed.
    """
    return f"is also the {name}" + ("" if other == location else f" {other}")


def _what_it_reads(folder: ListedFolder) -> str:
    """``whose .xml and .zip files the run reads`` (``which the run reads``: every file)."""
    if not folder.extensions:
        return "which the run reads"
    *rest, last = folder.extensions
    endings = f"{', '.join(rest)} and {last}" if rest else last
    return f"whose {endings} files the run reads"


def refuse_outputs(
    outputs: Iterable[tuple[str, str | None, str | None]],
    files: Mapping[str, str | None],
    folders: Mapping[str, ListedFolder | None] | None = None,
    written: Mapping[str, str | None] | None = None,
    images_dir: str | None = None,
    output_files: Iterable[str] = (),
) -> None:
    """Refuse an output at an input, at another output of the run, or where the run writes.

    ``outputs``: every file the run writes or removes (its rejects file too), each as (what
    it is, where or ``None``: not this run, the option that moves it). Each is checked
    against what the run reads and ``written`` (:func:`refuse_overlap`), then against the
    outputs before it: two outputs at one place (by any name) leave only the one written
    last, and the run still exits 0 (``coco -o x.json --summary x.json`` left the summary).
    The message names the later output's option, so list those placed by ``-o`` first and
    those with an option of their own (``--summary``, ``--rejects``) after them. An option
    of ``None`` marks a file of the run's layout that this run does not write (the fitted
    worker model without ``fit``): a later run will, so no other output may be it. No output
    may be under one of ``output_files``, the outputs that are files (``--summary x.json/s.json``
    made a folder where ``x.json`` goes, after the run).

    On S3 the same holds, though a key may be another's prefix there: ``-o s3://b/ds/
    --summary s3://b/ds`` wrote the summary as an object ``ds`` beside the dataset's folder
    ``ds/`` (a console shows both, ``aws s3 sync`` cannot make both on a disk, and a local
    run refuses the same), and ``--summary s3://b/x.json/s.json`` one under the object
    ``x.json``. Both are refused, as an output whose key is another's without its trailing
    ``/``, or under an output file's key.

    The inputs, and the ``--images-dir`` the run reads images from by name, are kept out
    of the folders it fills too (:func:`_refuse_filled_inputs`); an output may go in that
    folder (``yolo -o data --images-dir data``: labels beside the images).
    """
    from gt_toolkit.storage.files import inside_location, same_location

    inputs = {**files, "--images-dir folder": images_dir}
    _refuse_filled_inputs(inputs, written or {})
    outputs = list(outputs)
    places = [location for _, location, _ in outputs if location is not None]
    # an output file that is another output's S3 folder (s3://b/ds, -o s3://b/ds/) holds
    # that output's files: its own turn below names it, not each of theirs
    files_apart = [
        file
        for file in output_files
        if not any(_one_place(file, p) and not same_location(file, p) for p in places)
    ]
    # an output file that is a later output (with its own option) is told at its own turn:
    # the one given last is named (split -o s3://b/split/ --rejects s3://b/split: --rejects)
    told_later = {
        location: i
        for i, (_, location, option) in enumerate(outputs)
        if location is not None and option is not None
    }
    earlier: list[tuple[str, str]] = []
    for i, (what, location, option) in enumerate(outputs):
        if location is None:
            continue
        if option is not None:
            refuse_overlap(what, location, option, files, folders, written)
            for file in files_apart:  # one place with it: told against the earlier outputs
                if told_later.get(file, -1) > i:
                    continue
                if inside_location(location, file) and not _one_place(location, file):
                    raise _refusal(f"{what} {location}", f"is under the output file {file}", option)
            for name, other in earlier if location in files_apart else ():
                if inside_location(other, location) and not _one_place(other, location):
                    clash = f"is a file, and the {name} {other} goes under it"
                    raise _refusal(f"{what} {location}", clash, option)
            for name, other in earlier:
                if same_location(location, other):
                    raise _refusal(f"{what} {location}", _also(name, other, location), option)
                if _one_place(location, other):  # s3://b/ds beside the folder s3://b/ds/
                    clash = f"differs from the {name} {other} only by a trailing '/' (an object"
                    clash += " and a folder of one name)"
                    raise _refusal(f"{what} {location}", clash, option)
                if (how := _case_twins(location, other)) is not None:
                    clash = f"differs from the {name} {other} only {how}"
                    raise _refusal(f"{what} {location}", clash, option)
        earlier.append((what, location))


def _one_place(a: str, b: str) -> bool:
    """Whether two outputs take one place, so that the one written last replaces the other.

    One file by two names (:func:`~gt_toolkit.storage.files.same_location`), or on S3 one
    name with and without its trailing ``/``: the object ``ds`` and the folder ``ds/``.
    """
    from gt_toolkit.storage.files import same_location
    from gt_toolkit.storage.s3 import is_s3_uri

    if is_s3_uri(a) and is_s3_uri(b):
        return a.rstrip("/") == b.rstrip("/")
    return same_location(a, b)


def check_outputs(locations: Iterable[str | None], store: S3Store) -> None:
    """Refuse, before anything is read, an output the run could only fail to write.

    A run moves its main output into place first and writes its summary and (some) its
    rejects file after it: one of those that cannot be written (a missing bucket, a key
    this user may not write, a path through a file) failed the run after the output had
    replaced the earlier one. Each is asked as its write would be
    (:func:`~gt_toolkit.storage.files.check_writable`); ``None``: not written by this run.

    Raises:
        StorageError: naming the first that cannot be written, and why.
    """
    from gt_toolkit.storage.files import check_writable

    for location in dict.fromkeys(loc for loc in locations if loc is not None):
        check_writable(location, store=store)


def _case_twins(a: str, b: str) -> str | None:
    """How two local paths differ when only a case-insensitive disk makes them one file.

    On such a disk they are one file, and neither need exist yet for :func:`same_location`
    to miss it; a run's outputs should not depend on the disk. ``None``: two files anywhere
    (or one path). The rule is :func:`~gt_toolkit.storage.files.folded`, as for image names.
    """
    from gt_toolkit.storage.s3 import is_s3_uri

    if is_s3_uri(a) or is_s3_uri(b):  # S3 keys are case-sensitive everywhere
        return None
    import unicodedata

    from gt_toolkit.storage.files import folded

    # realpath, not Path.resolve(): a link in a loop raised RuntimeError (a traceback)
    x, y = os.path.realpath(a), os.path.realpath(b)
    # letter by letter, as those disks compare: casefold() would also make "ß" of "ss"
    if x == y or folded(x) != folded(y):
        return None
    if unicodedata.normalize("NFC", x) == unicodedata.normalize("NFC", y):
        return "in how its accents are encoded (one file on macOS disks)"
    return "in case (one file on macOS and Windows disks)"


def _refuse_filled_inputs(
    files: Mapping[str, str | None], written: Mapping[str, str | None]
) -> None:
    """Refuse an input inside a folder the run fills per image.

    Any file in ``written`` (folders ``-o`` places) may be replaced by a label or an image
    of its name, and a rerun removes the ones this run listed as its own: an input there,
    such as the ``--images-dir`` a ``coco -o x.json --copy-images`` fills beside it, was
    copied onto itself, listed, and deleted by the next run that did not copy it again.
    An image the ``--images-dir`` holds elsewhere may still be in such a folder, by a key
    only the manifest names (``images/a.jpg`` in ``--images-dir OUT``): the run refuses
    that copy as it meets it (:meth:`~gt_toolkit.convert.images.ImageCopier.copy`).
    """
    from gt_toolkit.storage.files import inside_location, same_location

    for name, where in written.items():
        if where is None:
            continue
        filled = f"{name} {where}, {_FILLS},"
        for input_name, other in files.items():
            if other is None:
                continue
            if same_location(other, where):
                raise _refusal(filled, _also(input_name, other, where), "-o")
            if inside_location(other, where):
                raise _refusal(filled, f"holds the {input_name} {other}", "-o")


def remove_stale(location: str, store: S3Store | None, what: str) -> None:
    """Remove the ``what`` an earlier run left where this run wrote none of its own.

    Left there, it would speak for this run: a rejects file naming broken records this run
    did not see, a worker model this run did not fit. One that cannot be removed is said,
    not fatal (the run itself succeeded).

    A local symbolic link (``--rejects r.jsonl`` pointed at a shared file) stays, and the
    file it leads to goes, as every write goes through the link to that file: removed, the
    link was gone, the shared file stayed as it was, and the next run wrote a plain file in
    the link's place (the shared file never changed again). The link then leads to a file
    not there, which the next run that rejects something creates
    (:func:`~gt_toolkit.storage.files.link_target`); kept, the shared file named broken
    records of a run this one replaced. A link that leads to no file leaves nothing to remove.
    """
    from gt_toolkit.errors import StorageError
    from gt_toolkit.storage.files import link_target, remove_file
    from gt_toolkit.storage.s3 import is_s3_uri

    if not is_s3_uri(location) and os.path.islink(location):  # noqa: PTH114 - no Path made
        try:
            real = link_target(location)
        except StorageError:  # a loop, a missing folder: no file the run wrote there
            return
        if not os.path.isfile(real):  # noqa: PTH113 - a folder's or device's is no file of ours
            return
        location = real
    try:
        # look first on S3: a delete of nothing still needs the right to delete, and adds
        # a delete marker to a versioned bucket on every clean run
        if is_s3_uri(location) and store is not None and not store.exists(location):
            return
        remove_file(location, store=store)
    except StorageError as exc:
        eprint(f"warning: an earlier run's {what} stays: {exc}")


def remove_stale_model(location: str, applied: str, store: S3Store | None) -> None:
    """Remove an earlier run's fitted worker model beside the outputs of a run that fits none.

    ``applied``: ``--worker-model`` as given; the table a run applies is no stale file.
    """
    from gt_toolkit.storage.files import same_location

    if not same_location(location, applied):
        remove_stale(location, store, "worker model")


# argparse ``type=`` checkers: a bad value becomes a usage error naming the option, before any
# work starts. argparse turns their ValueError (not a number) into "invalid <name> value".


def positive_int(text: str) -> int:
    """An integer >= 1 (counts, limits, threads)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1] (split fractions, score and IoU thresholds where 0 means none)."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be in [0, 1]")
    return value


def threshold(text: str) -> float:
    """A number in (0, 1] (an IoU threshold that must demand some overlap)."""
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError("must be in (0, 1]")
    return value
