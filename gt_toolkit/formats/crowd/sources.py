"""Open any crowd source by kind: the one entry point behind ``--from``.

Each kind's shape is in ``docs/crowd-sources.md``; every kind reads into the same
:class:`~gt_toolkit.formats.crowd.CrowdImage`, so what consumes them never knows the tool.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NamedTuple, TypedDict, Unpack

from gt_toolkit.errors import ValidationError
from gt_toolkit.formats.crowd import CrowdImage, CrowdSourceKind
from gt_toolkit.formats.crowd.base import CrowdSource, IndexedSource
from gt_toolkit.formats.crowd.coco import (
    PER_ANNOTATOR_EXTENSIONS,
    CocoPerAnnotatorSource,
    CocoRatersSource,
)
from gt_toolkit.formats.crowd.cvat import CVAT_EXTENSIONS, CvatSource
from gt_toolkit.formats.crowd.gt_job import (
    ANSWER_EXTENSIONS,
    AnswersFolderSource,
    GtJobSource,
    default_manifest,
    labels_file,
    listed_worker_responses,
)
from gt_toolkit.formats.crowd.label_studio import LabelStudioSource
from gt_toolkit.formats.crowd.report import RejectHandler
from gt_toolkit.storage.files import ListedFolder, Location
from gt_toolkit.storage.s3 import S3Store

__all__ = ["SourceOptions", "SourceReads", "iter_crowd_images", "open_crowd_source", "source_reads"]


_GROUND_TRUTH = (CrowdSourceKind.GT_JOB, CrowdSourceKind.ANSWERS_FOLDER)


class SourceOptions(TypedDict, total=False):
    """The keyword options of :func:`open_crowd_source` (each applies to some kinds only)."""

    manifest: Location | None
    element_name: str | None
    data_key: str | None
    image_name: str | None
    store: S3Store | None
    on_reject: RejectHandler | None
    max_workers: int | None


def open_crowd_source(
    location: Location,
    source: CrowdSourceKind | str = CrowdSourceKind.GT_JOB,
    *,
    manifest: Location | None = None,
    element_name: str | None = None,
    data_key: str | None = None,
    image_name: str | None = None,
    store: S3Store | None = None,
    on_reject: RejectHandler | None = None,
    max_workers: int | None = None,
) -> CrowdSource:
    """A :class:`CrowdSource` of ``source``'s kind reading ``location``.

    Args:
        location: a Ground Truth job output prefix (``gt-job``), a folder of per-worker
            ``.jsonl`` files (``answers-folder``), a Label Studio JSON or JSON_MIN export
            file, a folder of CVAT job exports, a COCO file with raters, or a folder of
            COCO files, one per annotator.
        manifest: ``gt-job``: the job's manifest (default: the job's own);
            ``answers-folder``: the manifest the answers refer to (required).
        element_name: Ground Truth kinds: the crowd element's name in ``answerContent``.
        data_key: ``label-studio``: the task ``data`` field holding the image
            (default ``image``).
        image_name: ``label-studio``: the name of the ``<Image>`` tag showing that field
            (the boxes' ``to_name``), where it is not ``data_key``: only its boxes are read.
        on_reject: receives every broken record; ``None`` makes the first one an error.
        max_workers: ``gt-job``: threads reading answer files (default 16).

    Raises:
        ValidationError: an unknown kind, or an option the kind does not read.
    """
    try:
        kind = CrowdSourceKind(source)
    except ValueError:
        known = ", ".join(k.value for k in CrowdSourceKind)
        raise ValidationError([f"unknown crowd source {source!r} (one of {known})"]) from None
    problems = []
    if kind not in _GROUND_TRUTH:
        problems += [
            f"{n} applies to gt-job and answers-folder only"
            for n, v in (("manifest", manifest), ("element_name", element_name))
            if v is not None
        ]
    if kind is not CrowdSourceKind.LABEL_STUDIO:
        problems += [
            f"{n} applies to label-studio only"
            for n, v in (("data_key", data_key), ("image_name", image_name))
            if v is not None
        ]
    else:  # an empty name (an unset shell variable) was read as none given, silently
        problems += [
            f"{n} is empty: name the {what}, or leave it out"
            for n, v, what in (
                ("data_key", data_key, "task data field of the image"),
                ("image_name", image_name, "<Image> tag the boxes' to_name names"),
            )
            if v == ""
        ]
    if kind is not CrowdSourceKind.GT_JOB and max_workers is not None:
        problems.append("max_workers applies to gt-job only")
    if kind is CrowdSourceKind.ANSWERS_FOLDER and manifest is None:
        problems.append(
            "answers-folder needs the manifest the answers refer to (manifest=, --manifest)"
        )
    if problems:
        raise ValidationError(problems, what=f"{kind.value} source options")
    if kind is CrowdSourceKind.GT_JOB:
        return GtJobSource(
            location,
            manifest=manifest,
            element_name=element_name,
            max_workers=max_workers or 16,
            store=store,
            on_reject=on_reject,
        )
    if kind is CrowdSourceKind.ANSWERS_FOLDER:
        assert manifest is not None  # checked above
        return AnswersFolderSource(
            location, manifest=manifest, element_name=element_name, store=store, on_reject=on_reject
        )
    if kind is CrowdSourceKind.LABEL_STUDIO:
        return LabelStudioSource(
            location,
            data_key=data_key or "image",
            image_name=image_name,
            store=store,
            on_reject=on_reject,
        )
    return _FILE_SOURCES[kind](location, store=store, on_reject=on_reject)


_FILE_SOURCES: dict[CrowdSourceKind, type[IndexedSource]] = {
    CrowdSourceKind.CVAT: CvatSource,
    CrowdSourceKind.COCO_RATERS: CocoRatersSource,
    CrowdSourceKind.COCO_PER_ANNOTATOR: CocoPerAnnotatorSource,
}


class SourceReads(NamedTuple):
    """What a crowd source reads: ``files`` by what each is, and ``folders`` it lists.

    A command that writes or removes a file of its own (a rejects file) must keep clear of
    both: a file such a folder's listing keeps is read by the next run as one more source.
    """

    files: dict[str, str]
    folders: dict[str, ListedFolder]


# each folder kind's name in messages, and the endings its reader lists
_FOLDER_KINDS = {
    CrowdSourceKind.ANSWERS_FOLDER: ("answers folder", ANSWER_EXTENSIONS),
    CrowdSourceKind.CVAT: ("CVAT folder", CVAT_EXTENSIONS),
    CrowdSourceKind.COCO_PER_ANNOTATOR: ("COCO folder", PER_ANNOTATOR_EXTENSIONS),
}


def source_reads(
    location: Location,
    source: CrowdSourceKind | str,
    *,
    manifest: Location | None = None,
) -> SourceReads:
    """What :func:`open_crowd_source` with these arguments reads (the same defaults).

    A ``gt-job`` lists its worker-response folder only: the rest of a job's prefix (where
    its outputs often go) is never read but for the manifest and the label list.
    """
    kind = CrowdSourceKind(source)
    text = os.fspath(location)
    if kind is CrowdSourceKind.GT_JOB:
        job = text.rstrip("/")  # as GtJobSource reads it
        files = {
            "input manifest": os.fspath(manifest or default_manifest(job)),
            "job's label list": labels_file(job),
        }
        return SourceReads(files, {"worker-response folder": listed_worker_responses(job)})
    files = {"input manifest": os.fspath(manifest)} if manifest is not None else {}
    if kind in _FOLDER_KINDS:
        name, extensions = _FOLDER_KINDS[kind]
        return SourceReads(files, {name: ListedFolder(text, extensions)})
    return SourceReads(files | {"source": text}, {})


def iter_crowd_images(
    location: Location,
    source: CrowdSourceKind | str = CrowdSourceKind.GT_JOB,
    **options: Unpack[SourceOptions],
) -> Iterator[CrowdImage]:
    """One :class:`CrowdImage` per image of ``location``, read as ``source``.

    Options are those of :func:`open_crowd_source`. Without ``on_reject`` the first broken
    record raises :class:`~gt_toolkit.errors.CrowdSourceError` naming its file and position.

    Examples:
        >>> from gt_toolkit import iter_crowd_images
        >>> images = iter_crowd_images("samples/crowd/label-studio.json", "label-studio")
        >>> image = next(images)
        >>> image.key, len(image.annotators)
        ('s3://gt-toolkit-demo/images/img_000.jpg', 5)
    """
    with open_crowd_source(location, source, **options) as crowd:
        yield from crowd.images()
