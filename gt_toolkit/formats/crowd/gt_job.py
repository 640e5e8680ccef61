"""Ground Truth jobs as crowd sources: the job's worker-response files, or per-worker files.

- ``gt-job``: ``<job>/annotations/worker-response/iteration-N/<datasetObjectId>/*.json``
  (``docs/ground-truth-formats.md`` §2.3) with the job's manifest (its ``i``-th data
  object, blank lines not counted, is ``datasetObjectId`` ``i``: :func:`dataset_object_id`).
  A 100,000-object job with 5 workers is 500,000 small files: keys are listed once (keys
  only, never contents), then each pass reads the answers of the objects in manifest order
  through a bounded thread pool with a bounded window of objects in flight, so memory
  stays flat. S3 reads retry through the client's *standard* retry
  mode (:func:`~gt_toolkit.storage.s3.make_s3_client`).
- ``answers-folder``: for jobs that ran without a consolidation Lambda, or answers kept by
  other means, ``<folder>/<worker id>.jsonl``, each line one image: ``{"datasetObjectId":
  "3"}`` *or* ``{"source-ref": "s3://..."}`` (matching the manifest), plus either
  ``"answerContent"`` (the crowd element output, as in Ground Truth) or ``"boundingBoxes"``
  (a list of ``{label, left, top, width, height}``), and optionally
  ``"inputImageProperties"`` and ``"timeSpentInSeconds"``. Worker files list images in
  their own order, so they go through the on-disk :class:`AnswerIndex`.

Both yield every manifest line, in order, whether anybody answered it or not.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import re
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from gt_toolkit.errors import (
    ConsolidationError,
    CrowdSourceError,
    GtToolkitError,
    NoMatchingObjectsError,
    StorageError,
)
from gt_toolkit.formats.crowd import CrowdImage, anonymous_worker
from gt_toolkit.formats.crowd.answer_index import AnswerIndex
from gt_toolkit.formats.crowd.base import CrowdItem, CrowdSource, IndexedSource, list_files
from gt_toolkit.formats.crowd.report import RejectHandler, Skipper, SkipReason
from gt_toolkit.formats.manifest import ManifestLine, dataset_object_id, read_manifest
from gt_toolkit.formats.worker_answers import BoundingBoxAnswer, parse_bounding_box_answer
from gt_toolkit.storage.files import (
    ListedFolder,
    Location,
    iter_raw_lines,
    join_location,
    read_bytes,
)
from gt_toolkit.storage.s3 import S3Store, is_s3_uri
from gt_toolkit.types import ImageSize

__all__ = [
    "ANSWER_EXTENSIONS",
    "WORKER_RESPONSE_EXTENSIONS",
    "AnswersFolderSource",
    "GtJobSource",
    "default_manifest",
    "exact_record",
    "find_worker_responses",
    "job_labels",
    "labels_file",
    "listed_worker_responses",
    "one_per_worker",
    "parse_worker_response",
    "read_answer_files",
    "reject_unknown_objects",
    "reject_unreadable",
    "worker_response_folder",
]

ANSWER_EXTENSIONS = (".jsonl",)  # what an answers folder lists: one file per worker
WORKER_RESPONSE_EXTENSIONS = (".json",)  # what a job's worker-response folder lists
_RESPONSE_RE = re.compile(r"worker-response/iteration-(\d+)/(\d+)/[^/]+\.json$")


def default_manifest(job: Location) -> str:
    """Where a job keeps the manifest its answers are numbered by."""
    return join_location(os.fspath(job).rstrip("/"), "manifests", "output", "output.manifest")


def worker_response_folder(job: Location) -> str:
    """The folder of a job's worker-response files (see :func:`listed_worker_responses`)."""
    return join_location(job, "annotations", "worker-response")


def listed_worker_responses(job: Location) -> ListedFolder:
    """The worker-response folder as a job's reader lists it (another kind of file is ignored)."""
    return ListedFolder(worker_response_folder(job), WORKER_RESPONSE_EXTENSIONS)


def labels_file(job: Location) -> str:
    """The annotation tool's settings, where a job keeps its label list."""
    return join_location(job, "annotation-tool", "data.json")


def find_worker_responses(job: Location, *, store: S3Store | None = None) -> dict[int, list[str]]:
    """Map ``datasetObjectId`` to its worker-response files, in key order.

    An object sent to workers again in a later iteration is answered by that iteration: only
    the files of its latest ``iteration-N`` are returned.

    Raises:
        NoMatchingObjectsError: no worker-response file under the job prefix.
    """
    base = worker_response_folder(job)
    found: dict[int, list[str]] = {}
    if is_s3_uri(base):
        keys: Iterator[str] = (
            o.uri
            for o in (store or S3Store()).iter_objects(
                base + "/", extensions=WORKER_RESPONSE_EXTENSIONS
            )
        )
    else:
        root = Path(base)
        if not root.is_dir():
            raise NoMatchingObjectsError(
                f"no worker-response files: {base} is not a folder (read as a Ground Truth "
                "job, the gt-job source; another tool's export needs its source: label-studio, "
                "cvat, coco-raters or coco-per-annotator)"
            )
        keys = (
            str(p)
            for ext in WORKER_RESPONSE_EXTENSIONS
            for p in sorted(root.glob(f"iteration-*/*/*{ext}"))
        )
    latest: dict[int, int] = {}
    for key in keys:
        m = _RESPONSE_RE.search(key.replace(os.sep, "/"))
        if not m:
            continue
        iteration, object_id = int(m.group(1)), int(m.group(2))
        if iteration > latest.get(object_id, -1):
            latest[object_id] = iteration
            found[object_id] = []
        if iteration == latest[object_id]:
            found[object_id].append(key)
    if not found:
        raise NoMatchingObjectsError(f"no worker-response files under {base}")
    return found


def parse_worker_response(
    document: Mapping[str, Any], *, element_name: str | None = None
) -> list[BoundingBoxAnswer]:
    """Answers of one worker-response file (``{"answers": [...]}``).

    ``answerContent`` may be an object or a JSON string (as in Lambda payloads).

    Raises:
        ConsolidationError: the document or an answer is malformed.
    """
    return [_parse_answer(item, element_name) for item in _answers_of(document)]


def _answers_of(document: Any) -> list[Any]:
    """The ``answers`` list of a worker-response file."""
    answers = document.get("answers") if isinstance(document, Mapping) else None
    if not isinstance(answers, list):
        raise ConsolidationError("worker-response file has no 'answers' list")
    return answers


def _parse_answer(item: Any, element_name: str | None) -> BoundingBoxAnswer:
    """One entry of ``answers``.

    Raises:
        ConsolidationError: it is malformed.
    """
    if not isinstance(item, Mapping):
        raise ConsolidationError(f"answer is not an object: {item!r}"[:200])
    content: Any = item.get("answerContent")
    if isinstance(content, str):
        try:
            content = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise ConsolidationError(f"answerContent is not JSON: {exc}") from exc
    spent = item.get("timeSpentInSeconds")
    worker = item.get("workerId")
    return parse_bounding_box_answer(
        content,
        # null is no id (an anonymous answer), not a worker named "None" whose second
        # answer on an object would supersede the first
        worker_id="" if worker is None else str(worker),
        element_name=element_name,
        time_spent=spent if isinstance(spent, int | float) else None,
    )


def job_labels(job: Location, *, store: S3Store | None = None) -> list[str] | None:
    """Labels from ``<job>/annotation-tool/data.json`` when the job folder has it."""
    location = labels_file(job)
    try:
        doc = orjson.loads(read_bytes(location, store=store))
    except (StorageError, orjson.JSONDecodeError):
        return None
    items = doc.get("labels") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        return None
    names = [i.get("label") for i in items if isinstance(i, dict)]
    return [n for n in names if isinstance(n, str)] or None


def _numbered(manifest: Location, store: S3Store | None) -> Iterator[tuple[int, ManifestLine]]:
    """The manifest's lines with their ``datasetObjectId`` (:func:`dataset_object_id`)."""
    blank: list[int] = []
    for line in read_manifest(manifest, store=store, blank_lines=blank):
        yield dataset_object_id(line.line_no, blank), line


_LONG_NUMBER = re.compile(rb"[0-9]{19}")


def exact_record(line: ManifestLine) -> Mapping[str, Any]:
    """The line's object with every integer as written, for an output line that keeps it.

    The manifest reader (orjson) reads an integer past 64 bits as the nearest float, so an
    attribute ``123456789012345678901234567890`` would come back as ``1.2345678901234568e+29``
    in the output line. Only a line with 19 digits in a row can hold one; it is read again
    with the standard parser, which keeps such integers whole (a line nested too deeply
    for it keeps the first reading).
    """
    if _LONG_NUMBER.search(line.raw) is None:
        return line.data
    try:
        data = json.loads(line.raw)
    except (RecursionError, ValueError):
        return line.data
    return data if isinstance(data, dict) else line.data


def _key_of(data: Mapping[str, Any]) -> str:
    ref = data.get("source-ref", data.get("source"))
    return ref if isinstance(ref, str) else str(ref)


def _item(
    line: ManifestLine,
    object_id: int,
    answers: Sequence[BoundingBoxAnswer],
    where: Sequence[str],
    skip: Skipper | None,
    failure: str | None = None,
) -> CrowdItem:
    """One manifest line with its answers: one per worker (:func:`one_per_worker`), sizes checked.

    ``object_id`` is the line's ``datasetObjectId``; ``where[i]`` names the file of
    ``answers[i]`` for messages; ``skip`` is ``None`` on a later pass, which counts nothing
    again.
    """
    key = _key_of(line.data)
    by_worker = one_per_worker(answers, where, skip, object_id=object_id)
    chosen = [answers[i] for i in by_worker.values()]  # in the order workers first appear
    size: ImageSize | None = None
    first = ""
    for i in by_worker.values():
        got = answers[i].image_size
        if got is None:
            continue
        if size is None:
            size, first = got, answers[i].worker_id
        elif (got["width"], got["height"]) != (size["width"], size["height"]):
            raise CrowdSourceError(
                where[i],
                f"manifest line {line.line_no}",
                f"image {key!r} is {got['width']}x{got['height']} for worker "
                f"{answers[i].worker_id} but {size['width']}x{size['height']} for {first}",
            )
    image = CrowdImage(
        key=key,
        image_size=size,
        annotators=tuple(by_worker),
        boxes=tuple(a.boxes for a in chosen),
    )
    return CrowdItem(
        image,
        time_spent=tuple(a.time_spent for a in chosen),
        record=exact_record(line),
        failure=failure,
    )


def one_per_worker(
    answers: Sequence[BoundingBoxAnswer],
    where: Sequence[str],
    skip: Skipper | None,
    *,
    object_id: int,
) -> dict[str, int]:
    """Which answer of each worker counts: worker name to its index in ``answers``.

    A worker who answered an object twice (two files of one iteration) is counted once: the
    last answer read wins, and the earlier one is a ``superseded-answer`` skip. An answer
    without a worker id is worker ``anonymous-object<object_id>-<index>``
    (:func:`~gt_toolkit.formats.crowd.anonymous_worker`). Workers keep the order in which
    they first appear.

    Args:
        where: the file of each answer, for the skip.
        skip: counts superseded answers; ``None`` on a later pass, which counts nothing again.
        object_id: the object's ``datasetObjectId``: its answers without a worker id are
            named by it, or every object's first such answer would be one worker,
            ``anonymous-0``, in the quality table and the worker model.
    """
    by_worker: dict[str, int] = {}
    for i, answer in enumerate(answers):
        worker = answer.worker_id or anonymous_worker(object_id, i)
        if worker in by_worker and skip is not None:
            skip(where[i], f"worker {worker}", SkipReason.SUPERSEDED)
        by_worker[worker] = i
    return by_worker


def read_answer_files(
    files: Sequence[str], *, element_name: str | None = None, store: S3Store | None = None
) -> tuple[list[BoundingBoxAnswer], list[str], list[tuple[str, str, Any]]]:
    """The answers of one object's worker-response files, read one file at a time.

    A file that cannot be read or parsed (missing, cut short, not a worker-response
    document) does not stop the others: it comes back as ``(file, why)`` for
    :func:`reject_unreadable`. Nor does one answer that cannot be parsed stop the other
    answers of its file (Ground Truth writes every worker's answer to an object in one
    file): it comes back as ``(file, "answer <i> (worker <id>): why", answer)``, the answer
    itself kept for the rejects file.

    Returns:
        The answers, the file of each answer, and the files or answers that failed with why
        (and the answer, ``None`` for a whole file).
    """
    answers: list[BoundingBoxAnswer] = []
    where: list[str] = []
    problems: list[tuple[str, str, Any]] = []
    for location in files:
        try:
            items = _answers_of(orjson.loads(read_bytes(location, store=store)))
        except (GtToolkitError, orjson.JSONDecodeError) as exc:
            problems.append((location, str(exc), None))
            continue
        for i, item in enumerate(items):
            try:
                answers.append(_parse_answer(item, element_name))
            except GtToolkitError as exc:
                worker = item.get("workerId") if isinstance(item, Mapping) else None
                who = f" (worker {worker})" if isinstance(worker, str) else ""
                problems.append((location, f"answer {i}{who}: {exc}", item))
                continue
            where.append(location)
    return answers, where, problems


def reject_unreadable(
    problems: Sequence[tuple[str, str, Any]], line_no: int, skip: Skipper
) -> None:
    """Reject each file or answer :func:`read_answer_files` could not read.

    An ``unreadable-answer`` reject; one answer's reject keeps the answer as its raw record.
    """
    for name, why, raw in problems:
        skip(name, f"manifest line {line_no}", SkipReason.UNREADABLE_ANSWER, why, raw)


def reject_unknown_objects(files: Mapping[int, Sequence[str]], count: int, skip: Skipper) -> None:
    """Reject the answers of objects numbered beyond a manifest of ``count`` data objects.

    Such answers belong to no manifest line (another job's answers, or a manifest cut
    short), so they would otherwise be dropped unsaid: one ``unknown-image`` reject per
    object, naming its first file.
    """
    for object_id in sorted(i for i in files if i >= count):
        skip(
            files[object_id][0],
            f"datasetObjectId {object_id}",
            SkipReason.UNKNOWN_IMAGE,
            f"answered object beyond the manifest's {count} lines",
        )


class GtJobSource(CrowdSource):
    """A Ground Truth job's output prefix: manifest lines with their worker-response files.

    Args:
        manifest: the job's manifest; default ``<job>/manifests/output/output.manifest``.
        element_name: the crowd element's name in ``answerContent`` (found when there is one).
        max_workers: threads reading answer files.
    """

    kind = "gt-job"

    def __init__(
        self,
        location: Location,
        *,
        manifest: Location | None = None,
        element_name: str | None = None,
        store: S3Store | None = None,
        on_reject: RejectHandler | None = None,
        max_workers: int = 16,
    ) -> None:
        super().__init__(os.fspath(location).rstrip("/"), store=store, on_reject=on_reject)
        self.manifest = manifest or default_manifest(self.location)
        self.element_name = element_name
        self.max_workers = max(1, max_workers)
        self._files: dict[int, list[str]] | None = None
        self._troubled: set[int] = set()  # manifest lines whose reads were already reported

    @property
    def labels(self) -> list[str] | None:
        """The job's label list (``annotation-tool/data.json``), when the folder has it."""
        return job_labels(self.location, store=self.store)

    def _responses(self) -> dict[int, list[str]]:
        if self._files is None:
            self._files = find_worker_responses(self.location, store=self.store)
        return self._files

    def read(self, *, first: bool) -> Iterator[CrowdItem]:
        """Manifest lines in order, each with the answers of its latest iteration."""
        files = self._responses()
        window = self.max_workers * 4
        count = 0
        with cf.ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            pending: deque[tuple[int, ManifestLine, cf.Future[Any]]] = deque()

            def ready(limit: int) -> Iterator[CrowdItem]:
                while len(pending) > limit:
                    object_id, line, future = pending.popleft()
                    answers, where, problems = future.result()
                    # S3 is read again when a first pass was left unfinished: a read that
                    # fails only then is reported then, or its image would be lost unsaid
                    new = bool(problems) and line.line_no not in self._troubled
                    if new:
                        self._troubled.add(line.line_no)
                        reject_unreadable(problems, line.line_no, self.skip)
                    failure = None
                    if problems and not answers:
                        failure = "; ".join(f"{name}: {why}" for name, why, _ in problems)
                        self.report.failed_images += int(new)
                    yield _item(
                        line, object_id, answers, where, self.skip if first else None, failure
                    )

            for index, line in _numbered(self.manifest, self.store):
                got = pool.submit(
                    read_answer_files,
                    files.get(index, []),
                    element_name=self.element_name,
                    store=self.store,
                )
                pending.append((index, line, got))
                count = index + 1
                yield from ready(window)
            yield from ready(0)
        if first:
            reject_unknown_objects(files, count, self.skip)


def _line_alias(object_id: int) -> str:
    """The answer index's name for the key of data object ``object_id`` (no ref's alias)."""
    return f"\x00line {object_id}"


def _ref_alias(ref: str) -> str:
    r"""The answer index's name for the line a ``source-ref`` names.

    Apart from every :func:`_line_alias`: a ref spelled as one (``"\u0000line 3"``) named
    line 3's key, and where that key was digits (a text line's ``"source": "7"``), its
    answer went to line 7.
    """
    return f"\x00ref {ref}"


class AnswersFolderSource(IndexedSource):
    """A folder of per-worker ``<worker id>.jsonl`` answer files, numbered by a manifest.

    Args:
        manifest: the manifest the answers refer to (by line number or ``source-ref``).
        element_name: the crowd element's name in ``answerContent`` (found when there is one).
    """

    kind = "answers-folder"

    def __init__(
        self,
        location: Location,
        *,
        manifest: Location,
        element_name: str | None = None,
        store: S3Store | None = None,
        on_reject: RejectHandler | None = None,
    ) -> None:
        super().__init__(location, store=store, on_reject=on_reject)
        self.manifest = manifest
        self.element_name = element_name
        self.workers = 0
        self._objects = 0  # data objects of the manifest, counted by load()

    def load(self, index: AnswerIndex) -> None:
        """Every answer line, parsed on the way in (a bad line is a reject with its line)."""
        self._objects = 0
        for i, line in _numbered(self.manifest, self.store):
            key = _key_of(line.data)
            index.set_alias(_ref_alias(key), str(i))  # the last line with a ref wins
            index.set_alias(_line_alias(i), key)  # and each line's own, for _object_of
            self._objects = i + 1
        files = list_files(self.location, ANSWER_EXTENSIONS, store=self.store)
        self.workers = len(files)
        for location in files:
            worker = Path(location.rsplit("/", 1)[-1]).stem
            for n, raw in enumerate(iter_raw_lines(location, store=self.store), start=1):
                if raw.strip():
                    self._line(index, location, n, raw, worker)

    def _line(self, index: AnswerIndex, location: str, n: int, raw: bytes, worker: str) -> None:
        try:
            rec = orjson.loads(raw)
            key = self._object_of(rec, index)
            content = self._content(rec)
            spent = rec.get("timeSpentInSeconds")
            answer = parse_bounding_box_answer(
                content,
                worker_id=str(rec.get("workerId") or worker),
                element_name=self.element_name,
                time_spent=spent if isinstance(spent, int | float) else None,
            )
        except (
            orjson.JSONDecodeError,
            GtToolkitError,
            TypeError,
            ValueError,
            AttributeError,
        ) as exc:
            self.skip(
                location,
                f"line {n}",
                SkipReason.MALFORMED,
                f"bad answer line: {exc}",
                raw.decode("utf-8", "replace"),
            )
            return
        if int(key) >= self._objects:  # the answer of no manifest line: kept, where it is
            self.skip(
                location,
                f"line {n}",
                SkipReason.UNKNOWN_IMAGE,
                f"datasetObjectId {key}: answered object beyond the manifest's "
                f"{self._objects} lines",
                raw.decode("utf-8", "replace"),
            )
            return
        if not self._first_file(index, key, answer.worker_id, location, n, raw):
            return
        index.add_answer(
            key,
            answer.worker_id,
            answer.boxes,
            size=answer.image_size,
            time_spent=answer.time_spent,
            where=(location, f"line {n}"),
        )

    def _first_file(
        self, index: AnswerIndex, key: str, worker: str, location: str, n: int, raw: bytes
    ) -> bool:
        """Whether this answer is in the file of the worker's first answer to object ``key``.

        A later line of that file supersedes the earlier (the worker answered again). Two
        files have no order between them (``a/w1.jsonl`` and ``b/w1.jsonl``, or a line whose
        ``workerId`` names a worker of another file): the one read second was kept, the
        first answer superseded, silently and with exit 0. It is rejected now as a
        ``duplicate-answer`` naming the first, as a CVAT frame in two job files of one
        assignee is: which answer counts is the user's decision.
        """
        alias = f"\x00answer {worker}\x00{key}"  # apart from _line_alias and _ref_alias
        first = index.resolve(alias)
        if first is None:
            index.set_alias(alias, key, [location, f"line {n}"])
            return True
        file, position = first[1]
        if file == location:
            return True
        self.skip(
            location,
            f"line {n}",
            SkipReason.DUPLICATE_ANSWER,
            f"{worker} answered datasetObjectId {key} already in {file}: {position}",
            raw.decode("utf-8", "replace"),
        )
        return False

    @staticmethod
    def _content(rec: Mapping[str, Any]) -> Any:
        """The line's ``answerContent``, else its ``boundingBoxes`` as the crowd element's.

        A line with neither (``{}``, a misspelt ``"boxes"``) is no answer: it must not read
        as a worker who drew nothing (``"boundingBoxes": null`` says that).
        """
        content = rec.get("answerContent")
        if content is not None:
            return content
        if "boundingBoxes" not in rec:
            keys = sorted(map(str, rec))[:10]
            raise ConsolidationError(f"no answerContent and no boundingBoxes (keys: {keys})")
        return {
            "boundingBox": {
                "boundingBoxes": rec["boundingBoxes"],
                "inputImageProperties": rec.get("inputImageProperties"),
            }
        }

    @staticmethod
    def _object_of(rec: Any, index: AnswerIndex) -> str:
        """The manifest line a record answers: ``datasetObjectId``, else its ``source-ref``.

        A record with both names one line by both: a ``source-ref`` that is not the line's
        (answers numbered by another manifest, or another order of it) is refused, not
        drawn on the image the number names.

        Ground Truth writes the id as a string of digits; an int is taken too. Anything else
        (``"-1"``, ``1.9``, ``"1e3"``) names no line and would be dropped or truncated.
        """
        if "datasetObjectId" in rec:
            found = rec["datasetObjectId"]
            if type(found) is int and found >= 0:
                number = found
            elif isinstance(found, str) and found.isascii() and found.isdigit():
                number = int(found)
            else:
                raise ConsolidationError(
                    f"datasetObjectId {found!r} is not a line number (a non-negative integer)"
                )
            if "source-ref" in rec:  # both: they must name one line, or the boxes go astray
                ref, line = rec["source-ref"], index.resolve(_line_alias(number))
                if line is not None and line[0] != ref:
                    raise ConsolidationError(
                        f"datasetObjectId {number} is the manifest's {line[0]!r}, but the "
                        f"line's source-ref is {ref!r}: is the manifest the job's?"[:400]
                    )
            return str(number)
        found = index.resolve(_ref_alias(str(rec.get("source-ref"))))
        if found is None:
            raise ConsolidationError("no datasetObjectId and no source-ref of the manifest")
        return found[0]

    def read(self, *, first: bool) -> Iterator[CrowdItem]:
        """Manifest lines in order, each with the answers the worker files gave it."""
        index = self._loaded()
        count = 0
        for i, line in _numbered(self.manifest, self.store):
            count = i + 1
            found = index.find(str(i))
            answers: list[BoundingBoxAnswer] = []
            if found is not None:
                img, size = found
                answers = [
                    BoundingBoxAnswer(a.annotator, a.boxes, size, a.time_spent)
                    for a in index.answers(img)
                ]
            where = [self.location] * len(answers)
            yield _item(line, i, answers, where, self.skip if first else None)
        if first:  # load() rejected these with their lines; a manifest that shrank since:
            for _, key, _ in index.images():
                if int(key) >= count:
                    self.skip(
                        self.location,
                        f"datasetObjectId {key}",
                        SkipReason.UNKNOWN_IMAGE,
                        f"answered object beyond the manifest's {count} lines",
                    )
