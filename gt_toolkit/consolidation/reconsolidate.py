"""Offline consolidation of a whole crowd, from any source, into one labeled dataset.

The answers come from a :class:`~gt_toolkit.formats.crowd.base.CrowdSource` (a Ground Truth
job, per-worker answer files, Label Studio, CVAT, COCO; see
:func:`~gt_toolkit.formats.crowd.sources.open_crowd_source`). Every image is consolidated
with the chosen settings (the rules are told in ``docs/consolidation.md``) and written, in
the source's order, as

- ``manifest``: a Ground Truth bounding-box output manifest with a per-box confidence
  (``docs/ground-truth-formats.md`` §2.1). A Ground Truth source keeps each manifest line
  and adds the label; other sources get ``{"source-ref": ...}`` lines, so their image keys
  must be ``s3://`` URIs or become ones through ``image_prefix``;
- ``coco``: a COCO detection file whose annotations carry ``score`` (the confidence),

plus a worker-quality table (JSON and CSV). With ``worker_model="fit"`` the run makes two
passes over the source (which reads its files once and replays them,
:class:`~gt_toolkit.formats.crowd.base.CrowdSource`): the first fits the worker model over
the whole job (``docs/consolidation.md``, "The worker model"), the second consolidates with
it; the fitted table is written beside the output (``<output>.worker-model.json``, the file
the post-annotation Lambda reads too). Nothing is lost: every image is written; one without
usable answers (nobody answered, or their answers could not be read) is marked
failed (``<attr>-metadata.failure-reason``, Ground Truth's shape; in COCO an image
``failure_reason``) and counted. Outputs are written atomically, the side files (quality
and model tables) committed only after the output: a run that stops leaves none, and what an
earlier run wrote stays whole.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal, TypeAlias
from urllib.parse import unquote, urlsplit

import orjson

from gt_toolkit.consolidation.engine import (
    ConsolidationSettings,
    ImageConsolidation,
    consolidate_images,
)
from gt_toolkit.consolidation.label_check import LabelTally
from gt_toolkit.consolidation.settings import DEFAULT_WORKER_MODEL
from gt_toolkit.consolidation.worker_model import WorkerModel, fit_worker_model
from gt_toolkit.consolidation.worker_quality import QualityAccumulator, WorkerQuality
from gt_toolkit.errors import ConsolidationError, S3UriError, ValidationError
from gt_toolkit.formats.coco_stream import close_coco
from gt_toolkit.formats.crowd.base import CrowdItem, CrowdSource
from gt_toolkit.formats.crowd.report import IngestReport
from gt_toolkit.formats.detection_label import (
    DETECTION_TYPE,
    build_detection_label,
    label_attribute_problems,
    now_creation_date,
)
from gt_toolkit.progress import progress
from gt_toolkit.storage.files import AllOrNone, Location, json_bytes
from gt_toolkit.storage.s3 import S3Store, is_s3_uri, parse_s3_uri, prefix_problem
from gt_toolkit.text import utf8_text

__all__ = [
    "OutputFormat",
    "ReconsolidationReport",
    "WorkerModelChoice",
    "fit_source_model",
    "image_reference",
    "reconsolidate",
    "side_files",
]

OutputFormat = Literal["manifest", "coco"]
WorkerModelChoice: TypeAlias = WorkerModel | Literal["fit"] | None
"""A fitted or saved model, ``"fit"`` (fit one on the source first), or ``None`` (head count)."""
_GROUND_TRUTH = ("gt-job", "answers-folder")
_Write: TypeAlias = Callable[[CrowdItem, ImageConsolidation | None, str | None], object]


@dataclass
class ReconsolidationReport:
    """What a run did, for the CLI's summary and for tests.

    Attributes:
        objects: images written (every image the source yielded).
        consolidated: images consolidated (the others are ``failed``).
        failed: images without usable answers; ``ingest.failed_images`` of them had answers
            that could not be read (the rest: nobody answered).
        boxes: consolidated boxes written.
        dropped: worker boxes the engine dropped, by reason.
        labels: the label list, in class-id order.
        ingest: what reading the source did (counts and skips by reason).
        worker_model: the worker model the run consolidated with, if any.
        worker_model_output: where the run wrote the model it fitted.
        unknown_workers: annotators the (given) worker model had not seen: they were
            judged by the crowd's skills, a sign the table comes from another job or tool.
    """

    objects: int = 0
    consolidated: int = 0
    failed: int = 0
    boxes: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    labels: list[str] = field(default_factory=list)
    quality: list[WorkerQuality] = field(default_factory=list)
    output: str = ""
    quality_outputs: list[str] = field(default_factory=list)
    ingest: IngestReport = field(default_factory=IngestReport)
    worker_model: WorkerModel | None = None
    worker_model_output: str | None = None
    unknown_workers: int = 0

    @property
    def complete(self) -> bool:
        """Every label the source holds was read: no broken record, no unreadable answer."""
        return not self.ingest.rejected and not self.ingest.failed_images

    def summary(self) -> str:
        """One line for a person."""
        parts = [
            f"{self.objects} objects",
            f"{self.consolidated} consolidated",
            f"{self.failed} without usable answers",
            f"{self.boxes} boxes from {self.ingest.boxes} worker boxes",
        ]
        if self.dropped:
            parts.append(
                "dropped worker boxes: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items()))
            )
        if self.worker_model is not None:
            parts.append(f"worker model of {len(self.worker_model.workers)} workers")
        if self.unknown_workers:
            parts.append(f"{self.unknown_workers} annotators unknown to the worker model")
        return "; ".join(parts) + f" (read: {self.ingest.summary()})"

    def to_json(self) -> dict[str, Any]:
        """The counts as plain JSON, for a summary file."""
        return {
            "output": self.output,
            "objects": self.objects,
            "consolidated": self.consolidated,
            "failed": self.failed,
            "boxes": self.boxes,
            "dropped": dict(sorted(self.dropped.items())),
            "labels": self.labels,
            "quality_outputs": self.quality_outputs,
            "worker_model_output": self.worker_model_output,
            "unknown_workers": self.unknown_workers,
            "ingest": self.ingest.to_json(),
        }


def image_reference(key: str, image_prefix: str | None) -> str:
    """The ``source-ref`` of an image key: ``s3://`` keys as they are, others under a prefix.

    A key that is not an ``s3://`` URI becomes ``image_prefix`` + :func:`image_path`;
    without a prefix it stays as it is.
    """
    if is_s3_uri(key) or image_prefix is None:
        return key
    return image_prefix.rstrip("/") + "/" + image_path(key)


def image_path(key: str) -> str:
    """Where a tool's image key puts the image below the folder its tool serves images from.

    A relative path (a CVAT image name, a COCO ``file_name``) is kept whole, with ``/``
    separators, so ``day1/0001.jpg`` and ``day2/0001.jpg`` stay two images, as ``from-coco``
    joins them; so is a URL's path below its host and a Label Studio local-files URL's
    ``?d=`` path (below the document root). An absolute file path or a Label Studio upload
    (``/data/upload/3/...``, a folder of Label Studio's own) gives its last part. ``.`` and
    ``..`` parts are dropped: a key never climbs out of the prefix it is joined to. An
    ``s3://`` URI gives its object key as written: it is no URL, its ``?``, ``#`` and ``%20``
    are the key's own characters (``s3://b/img?1.jpg`` is the object ``img?1.jpg``).
    """
    if is_s3_uri(key):
        object_key = key[len("s3://") :].partition("/")[2]
        return "/".join(p for p in object_key.split("/") if p not in ("", ".", ".."))
    if "?d=" in key:
        key = unquote(key.split("?d=", 1)[1])
    elif "://" in key:
        key = unquote(urlsplit(key).path)
        if key.startswith("/data/upload/"):  # Label Studio's own folder, served with its host
            return key.rsplit("/", 1)[-1]
    elif key.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[/\\]", key):
        return re.split(r"[/\\]", key)[-1]
    return "/".join(p for p in re.split(r"[/\\]", key) if p not in ("", ".", ".."))


# -- outputs -----------------------------------------------------------------------------------
@dataclass
class _Run:
    """What every image of a run shares."""

    attribute: str
    job_name: str
    creation_date: str
    labels: list[str]  # grows as new labels appear; class id = position
    image_prefix: str | None
    manifest: bool
    # image_path -> key (s3:// in COCO; in a manifest, an s3:// key below the image prefix
    # by its path below it, the image_path a key joined to the prefix has there)
    paths: dict[str, str] = field(default_factory=dict)

    def class_of(self, label: str) -> int:
        if label not in self.labels:
            self.labels.append(label)
        return self.labels.index(label)

    def reference(self, item: CrowdItem) -> str:
        """The image's ``source-ref``; two keys that would share one are an error."""
        key = item.image.key
        ref = image_reference(key, self.image_prefix)
        if self.manifest and item.record is None:
            if not is_s3_uri(ref):
                raise ConsolidationError(
                    f"image {key!r} is not an s3:// URI, which a Ground Truth manifest needs: "
                    "pass an image prefix (--image-prefix s3://bucket/folder/) or write COCO"
                )
            try:  # s3://b/a.jpg: a line every manifest reader would reject
                parse_s3_uri(ref)
            except S3UriError as exc:
                raise ConsolidationError(f"image {key!r}: {exc}") from None
        # a manifest keeps an s3:// key whole, COCO names it by its object key: there two
        # buckets' x.jpg (or d/x.jpg and d//x.jpg) would be two images of one file_name
        if not is_s3_uri(key) or not self.manifest:
            named = image_path(key)
        elif self.image_prefix is not None and key.startswith(head := self._head()):
            # an s3:// key below the prefix is the source-ref another tool's key joined to
            # it may be: s3://b/p/x.jpg and /data/upload/3/x.jpg were two lines of one ref
            named = key[len(head) :]
        else:
            return ref
        first = self.paths.setdefault(named, key)
        if first != key:
            shown = ref if self.manifest else named
            raise ConsolidationError(
                f"images {first!r} and {key!r} would both be {shown!r} in the "
                "output: give the tool's images distinct file names"
            )
        return ref

    def _head(self) -> str:
        """The image prefix as the start of the source-refs it makes (``s3://b/p/``)."""
        return (self.image_prefix or "").rstrip("/") + "/"


def _manifest_line(
    run: _Run, item: CrowdItem, result: ImageConsolidation | None, failure: str | None
) -> bytes:
    record: dict[str, Any] = (
        dict(item.record) if item.record is not None else {"source-ref": run.reference(item)}
    )
    if result is None:
        record.pop(run.attribute, None)
        record[f"{run.attribute}-metadata"] = {
            "failure-reason": f"reconsolidate: {failure}"[:1000],
            "type": DETECTION_TYPE,
            "human-annotated": "yes",
            "creation-date": run.creation_date,
            "job-name": f"labeling-job/{run.job_name}",
        }
    else:
        for box in result.boxes:
            run.class_of(box["label"])
        record.update(
            build_detection_label(
                run.attribute,
                result.boxes,
                image_size=item.image.image_size,
                labels=run.labels,
                job_name=run.job_name,
                creation_date=run.creation_date,
            )
        )
    try:
        return orjson.dumps(record) + b"\n"
    except TypeError:  # an input attribute holds an integer past 64 bits (exact_record)
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode() + b"\n"


class _CocoWriter:
    """Images streamed into the file, annotations into a spill file appended at the end."""

    def __init__(self, run: _Run, fh: IO[bytes], spill: IO[bytes]) -> None:
        self.run, self.fh, self.spill = run, fh, spill
        self.images = self.annotations = 0
        fh.write(b'{"info":{"description":"consolidated by gt-toolkit"},"licenses":[],"images":[')

    def add(self, item: CrowdItem, result: ImageConsolidation | None, failure: str | None) -> None:
        self.images += 1
        ref = self.run.reference(item)
        name = image_path(ref if is_s3_uri(item.image.key) else item.image.key)
        image: dict[str, Any] = {"id": self.images, "file_name": name}
        size = item.image.image_size
        if size is not None:
            image |= {"width": size["width"], "height": size["height"]}
        if is_s3_uri(ref):
            image["source_ref"] = ref
        if result is None:
            image["failure_reason"] = f"reconsolidate: {failure}"[:1000]
        self.fh.write((b"," if self.images > 1 else b"") + orjson.dumps(image))
        for box in result.boxes if result is not None else ():
            self.annotations += 1
            x, y = float(box["left"]), float(box["top"])
            w, h = float(box["width"]), float(box["height"])
            annotation = {
                "id": self.annotations,
                "image_id": self.images,
                "category_id": self.run.class_of(box["label"]) + 1,
                "bbox": [x, y, w, h],
                "area": w * h,
                "iscrowd": 0,
                "score": round(float(box["confidence"]), 4),
            }
            self.spill.write((b"," if self.annotations > 1 else b"") + orjson.dumps(annotation))

    def close(self) -> None:
        categories = [
            {"id": i + 1, "name": name, "supercategory": "none"}
            for i, name in enumerate(self.run.labels)
        ]
        close_coco(self.fh, self.spill, categories)


# -- the run -------------------------------------------------------------------------------------
_CHUNK = 64  # images read before they are consolidated together (consolidate_images)


def _consolidate(
    items: Sequence[CrowdItem],
    settings: ConsolidationSettings,
    labels: Sequence[str] | None,
    model: WorkerModel | None,
) -> list[tuple[ImageConsolidation | None, str | None]]:
    """Each image's consolidation, or ``None`` and why it has none.

    The images with answers are consolidated in one call: several images' phases run
    together (each result is the one the image gets alone).
    """
    out: list[tuple[ImageConsolidation | None, str | None]] = [
        (None, _no_consolidation(item)) for item in items
    ]
    todo = [k for k, (_, why) in enumerate(out) if why is None]
    images = [items[k].image for k in todo]
    results = consolidate_images(
        [image.boxes for image in images],
        settings=settings,
        labels=labels,
        image_sizes=[image.image_size for image in images],
        worker_model=model,
        annotators=[image.annotators for image in images] if model is not None else None,
    )
    for k, result in zip(todo, results, strict=True):
        out[k] = result, None
    return out


def _no_consolidation(item: CrowdItem) -> str | None:
    """Why the image has no consolidation, or ``None`` when it has answers to consolidate."""
    if item.failure is not None:  # it may name a file whose name is not UTF-8
        return utf8_text(item.failure)
    if not item.image.annotators and item.abstained:  # answered, but with other shapes
        return (
            f"no box read: the {item.abstained} answers for this object hold only regions"
            " of other shapes (polygons, keypoints, crowd regions) or boxes that were"
            " rejected, which are no vote for or against a box"
        )
    if not item.image.annotators:
        return "no worker answers for this object"
    return None


def fit_source_model(
    source: CrowdSource, settings: ConsolidationSettings, labels: Sequence[str] | None
) -> WorkerModel:
    """The first pass: a worker model fitted on every readable image of ``source``.

    The source keeps what this pass reads for the next (``items(again=True)``).

    ``reconsolidate(worker_model="fit")`` and ``gt-convert agreement --worker-model fit``
    both fit this way, so one source gives one model.
    """
    items = progress(source.items(again=True), desc="fitting worker model", unit="img")
    images = (item.image for item in items if item.failure is None)
    return fit_worker_model(images, settings=settings, labels=labels)


def _check_options(
    source: CrowdSource,
    image_prefix: str | None,
    output_format: str,
    worker_model: object,
    keep: str,
    label_attribute: str,
    labels: Sequence[str] | None,
) -> None:
    problems = label_attribute_problems(label_attribute) if output_format == "manifest" else []
    twice = sorted({name for name, n in Counter(labels or ()).items() if n > 1})
    if twice:
        problems.append(
            f"labels {twice} are listed twice: a class is named once (its id is its place)"
        )
    if isinstance(worker_model, str) and worker_model != "fit":
        problems.append(f"worker_model must be a WorkerModel, 'fit' or None, got {worker_model!r}")
    if worker_model is None and keep == "model":
        problems.append('settings.keep="model" needs a worker_model: give one, or keep="quorum"')
    if output_format not in ("manifest", "coco"):
        problems.append(f"output_format must be 'manifest' or 'coco', got {output_format!r}")
    if image_prefix is not None and source.kind in _GROUND_TRUTH:
        problems.append(f"image_prefix does not apply to {source.kind}: its images are s3:// refs")
    if image_prefix is not None and (problem := prefix_problem(image_prefix)) is not None:
        problems.append(f"image_prefix {problem}")
    if problems:
        raise ValidationError(problems, what="consolidation options")


def _default_job_name(source: CrowdSource) -> str:
    return re.split(r"[/\\]", source.location.rstrip("/\\"))[-1].rsplit(".", 1)[0] or "crowd"


@contextlib.contextmanager
def _writer(run: _Run, output: Location, together: AllOrNone) -> Iterator[_Write]:
    """A function writing one image to ``output`` (in place when the block succeeds)."""
    with together.open(output) as fh:
        if run.manifest:
            yield lambda item, result, failure: fh.write(_manifest_line(run, item, result, failure))
            return
        with tempfile.TemporaryFile() as spill:
            coco = _CocoWriter(run, fh, spill)
            yield coco.add
            coco.close()


def reconsolidate(
    source: CrowdSource,
    output: Location,
    *,
    label_attribute: str = "consolidated",
    job_name: str | None = None,
    labels: Sequence[str] | None = None,
    settings: ConsolidationSettings = ConsolidationSettings(),  # noqa: B008 - frozen
    output_format: OutputFormat = "manifest",
    image_prefix: str | None = None,
    quality_output: str | None = None,
    worker_model: WorkerModelChoice = DEFAULT_WORKER_MODEL,
    store: S3Store | None = None,
) -> ReconsolidationReport:
    """Consolidate every image of ``source`` and write the labeled dataset to ``output``.

    Args:
        source: where the answers come from (its reject handler decides whether a broken
            record stops the run or goes to the caller's rejects file).
        output: the output manifest, or COCO file (written atomically).
        label_attribute: ``manifest``: the label attribute to write (replaces one).
        job_name: ``job-name`` in the metadata; default the last part of the source's path.
        labels: the label list (class ids follow it; other labels are dropped as
            ``unknown-label``); default the labels the source declares, else labels in
            order of first appearance.
        settings: consolidation settings (``min_support=1`` keeps every cluster, scored).
        output_format: ``manifest`` or ``coco`` (module docstring).
        image_prefix: ``s3://`` prefix that turns tool file names into ``source-ref``s.
        quality_output: base name for the worker-quality table (:func:`side_files`); with a
            worker model it gains the model's per-worker figures.
        worker_model: fuse with per-worker skills, and decide with them when
            ``settings.keep="model"`` (rule 8 of ``docs/consolidation.md``): a model
            (``read_worker_model`` reads a saved table), or ``"fit"`` to fit one on
            ``source`` first (module docstring).

    Raises:
        ValidationError: options that do not fit the source or each other.
        ConsolidationError: a manifest is asked for images that have no ``s3://`` reference,
            or most boxes carry labels the label list lacks (the rule of
            :func:`~gt_toolkit.consolidation.label_check.label_mismatch`): nothing is written.
        CrowdSourceError: the source cannot be read (and broken records, without a handler).
    """
    _check_options(
        source, image_prefix, output_format, worker_model, settings.keep, label_attribute, labels
    )
    # a label the source declares twice is one class, at its first place (as the manifest's
    # class ids take it): COCO listed it twice, ids shifted, a file evaluate refuses
    given = list(labels) if labels else list(dict.fromkeys(source.labels or ())) or None
    run = _Run(
        attribute=label_attribute,
        job_name=job_name or _default_job_name(source),
        creation_date=now_creation_date(),
        labels=list(given or ()),
        image_prefix=image_prefix,
        manifest=output_format == "manifest",
    )
    report = ReconsolidationReport(output=os.fspath(output), ingest=source.report)
    model = fit_source_model(source, settings, given) if worker_model == "fit" else worker_model
    sides = side_files(output, quality_output)
    if worker_model != "fit":
        sides = sides[:2]
    with AllOrNone(store=store) as together, contextlib.ExitStack() as staged:
        # The output and its side files appear together or not at all: the side files are
        # staged first and put in place after the output, and one that fails to appear
        # takes back the output; a run failing earlier leaves an earlier run's files as
        # they were.
        files = [staged.enter_context(together.open(loc)) for loc in sides]
        with _writer(run, output, together) as write:
            quality, tally = _consolidate_all(source, write, settings, given, model, report)
            mismatch = tally.mismatch(given or ())
            if mismatch is not None:  # before the output is committed: the run writes nothing
                raise ConsolidationError(mismatch.message)
            report.labels = run.labels
            report.worker_model = model
            report.quality = quality.result(model)
            if model is not None:
                report.unknown_workers = sum(
                    q.worker_id not in model.workers for q in report.quality
                )
            _write_quality(report.quality, files[0], files[1])
            report.quality_outputs = sides[:2]
            if worker_model == "fit" and model is not None:
                files[2].write(json_bytes(model.to_json()))
                report.worker_model_output = sides[2]
    return report


def side_files(output: Location, quality_output: str | None = None) -> list[str]:
    """The files :func:`reconsolidate` writes beside ``output``, in this order.

    The worker-quality JSON and CSV (``quality_output`` with ``.json``/``.csv`` appended,
    default ``<output>.worker-quality``), then the fitted worker model
    (``<output>.worker-model.json``, written with ``worker_model="fit"`` only).
    """
    base = quality_output or f"{os.fspath(output)}.worker-quality"
    return [f"{base}.json", f"{base}.csv", f"{os.fspath(output)}.worker-model.json"]


def _consolidate_all(
    source: CrowdSource,
    write: _Write,
    settings: ConsolidationSettings,
    labels: Sequence[str] | None,
    model: WorkerModel | None,
    report: ReconsolidationReport,
) -> tuple[QualityAccumulator, LabelTally]:
    """Consolidate and write every item of ``source``, counting into ``report``."""
    quality = QualityAccumulator()
    tally = LabelTally()
    items = progress(source.items(), desc="consolidating", unit="img")
    for chunk in iter(lambda: list(itertools.islice(items, _CHUNK)), []):
        for item, (result, failure) in zip(
            chunk, _consolidate(chunk, settings, labels, model), strict=True
        ):
            _count(item, result, failure, write, report, quality, tally)
    return quality, tally


def _count(
    item: CrowdItem,
    result: ImageConsolidation | None,
    failure: str | None,
    write: _Write,
    report: ReconsolidationReport,
    quality: QualityAccumulator,
    tally: LabelTally,
) -> None:
    """Write one image and count it into ``report``, ``quality`` and ``tally``."""
    write(item, result, failure)
    report.objects += 1
    if result is None:
        report.failed += 1
        return
    report.consolidated += 1
    report.boxes += len(result.boxes)
    report.dropped.update(d["reason"] for d in result.dropped)
    image = item.image
    tally.add(image.boxes, result)
    quality.add(
        image.annotators,
        image.boxes,
        result,
        image_size=image.image_size,
        time_spent=item.time_spent or None,
    )


def _csv_cell(value: Any) -> Any:
    """A cell a spreadsheet shows as written: floats rounded, formula-like text quoted.

    Worker ids come from other tools (an email, a user name); one starting with ``=``, ``+``,
    ``-``, ``@`` or a control character would run as a formula in Excel or Sheets (OWASP's
    CSV injection), so it gets a leading ``'``. The JSON table keeps the id as it is.
    """
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


def _write_quality(quality: list[WorkerQuality], json_file: IO[bytes], csv_file: IO[bytes]) -> None:
    """The worker-quality table as JSON and as CSV (:func:`_csv_cell`)."""
    rows = [q.to_json() for q in quality]
    json_file.write(json_bytes(rows))
    buf = io.StringIO()
    with_model = any(q.miss_rate is not None for q in quality)
    fields = WorkerQuality.columns(with_model=with_model)
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    csv_file.write(buf.getvalue().encode())
