"""Offline re-consolidation of a finished job's worker answers (local folder or S3).

Reads ``<job>/annotations/worker-response/iteration-N/<datasetObjectId>/*.json`` (layout in
``docs/ground-truth-formats.md`` §2.3) together with the job's manifest (line ``i`` is
``datasetObjectId`` ``i``), consolidates every object with chosen settings and writes a new
output manifest in Ground Truth's bounding-box format plus a worker-quality table.

Scale: a 100,000-object job with 5 workers is 500,000 small files. Keys are listed once
(only keys are held, never contents); objects are then processed in manifest order by a
bounded thread pool with a bounded window of objects in flight, so memory stays flat;
S3 reads retry through the client's *standard* retry mode
(:func:`~gt_toolkit.storage.s3.make_s3_client`).

Also accepted, for jobs that ran without a consolidation Lambda or answers exported from
another tool: a **folder of per-worker answer files**, ``<folder>/<worker id>.jsonl``, each
line one image: ``{"datasetObjectId": "3"}`` *or* ``{"source-ref": "s3://..."}`` (matching the
manifest), plus either ``"answerContent"`` (the crowd element output, as in Ground Truth) or
``"boundingBoxes"`` (a list of ``{label, left, top, width, height}``), and optionally
``"inputImageProperties"`` and ``"timeSpentInSeconds"``. Worker files list images in their own
order, so their answers are spilled to a temporary on-disk SQLite index (stdlib) and read
back one object at a time: memory stays flat in that mode too.

Nothing is lost: every manifest line is written back; an object without answers (expired,
or its files unreadable) gets ``<attr>-metadata.failure-reason``, Ground Truth's failed shape.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import io
import os
import re
import sqlite3
import tempfile
from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gt_toolkit.consolidation.engine import ConsolidationSettings, consolidate_image
from gt_toolkit.consolidation.worker_quality import QualityAccumulator, WorkerQuality
from gt_toolkit.errors import (
    ConsolidationError,
    GtToolkitError,
    NoMatchingObjectsError,
    StorageError,
)
from gt_toolkit.formats.detection_label import (
    DETECTION_TYPE,
    build_detection_label,
    now_creation_date,
)
from gt_toolkit.formats.manifest import read_manifest
from gt_toolkit.formats.worker_answers import BoundingBoxAnswer, parse_bounding_box_answer
from gt_toolkit.progress import progress
from gt_toolkit.storage.files import (
    Location,
    atomic_output,
    iter_raw_lines,
    join_location,
    read_bytes,
    write_bytes,
)
from gt_toolkit.storage.s3 import S3Store, is_s3_uri
from gt_toolkit.types import ImageSize

__all__ = [
    "ReconsolidationReport",
    "find_worker_responses",
    "parse_worker_response",
    "reconsolidate",
]

_RESPONSE_RE = re.compile(r"worker-response/iteration-(\d+)/(\d+)/[^/]+\.json$")


@dataclass
class ReconsolidationReport:
    """What a run did, for the CLI's summary and for tests."""

    objects: int = 0
    consolidated: int = 0
    failed: int = 0
    answer_files: int = 0
    boxes: int = 0
    orphan_objects: list[int] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    quality: list[WorkerQuality] = field(default_factory=list)
    output: str = ""
    quality_outputs: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a person."""
        parts = [
            f"{self.objects} objects",
            f"{self.consolidated} consolidated",
            f"{self.failed} without usable answers",
            f"{self.boxes} boxes from {self.answer_files} answer files",
        ]
        if self.dropped:
            parts.append(
                "dropped worker boxes: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items()))
            )
        if self.orphan_objects:
            parts.append(f"{len(self.orphan_objects)} answered ids beyond the manifest")
        return "; ".join(parts)


# -- reading answers ---------------------------------------------------------------------
def find_worker_responses(job: Location, *, store: S3Store | None = None) -> dict[int, list[str]]:
    """Map ``datasetObjectId`` to its worker-response files, in key order.

    An object sent to workers again in a later iteration is answered by that iteration: only
    the files of its latest ``iteration-N`` are returned.

    Raises:
        NoMatchingObjectsError: no worker-response file under the job prefix.
    """
    base = join_location(job, "annotations", "worker-response")
    found: dict[int, list[str]] = {}
    if is_s3_uri(base):
        keys: Iterator[str] = (
            o.uri for o in (store or S3Store()).iter_objects(base + "/", extensions=(".json",))
        )
    else:
        root = Path(base)
        if not root.is_dir():
            raise NoMatchingObjectsError(f"no worker-response files: {base} is not a folder")
        keys = (str(p) for p in sorted(root.glob("iteration-*/*/*.json")))
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
    answers = document.get("answers") if isinstance(document, Mapping) else None
    if not isinstance(answers, list):
        raise ConsolidationError("worker-response file has no 'answers' list")
    out = []
    for item in answers:
        if not isinstance(item, Mapping):
            raise ConsolidationError(f"answer is not an object: {item!r}"[:200])
        content: Any = item.get("answerContent")
        if isinstance(content, str):
            try:
                content = orjson.loads(content)
            except orjson.JSONDecodeError as exc:
                raise ConsolidationError(f"answerContent is not JSON: {exc}") from exc
        spent = item.get("timeSpentInSeconds")
        out.append(
            parse_bounding_box_answer(
                content,
                worker_id=str(item.get("workerId", "")),
                element_name=element_name,
                time_spent=spent if isinstance(spent, int | float) else None,
            )
        )
    return out


def _merge_workers(answers: Sequence[BoundingBoxAnswer]) -> list[BoundingBoxAnswer]:
    """One answer per worker (the last one read wins), sorted by worker id."""
    by_worker: dict[str, BoundingBoxAnswer] = {}
    for i, a in enumerate(answers):
        by_worker[a.worker_id or f"anonymous-{i}"] = a
    return [by_worker[k] for k in sorted(by_worker)]


def _folder_files(folder: Location, store: S3Store | None) -> list[str]:
    text = os.fspath(folder)
    if is_s3_uri(text):
        files = [
            o.uri
            for o in (store or S3Store()).iter_objects(
                text.rstrip("/") + "/", extensions=(".jsonl",)
            )
        ]
    else:
        files = [str(p) for p in sorted(Path(text).glob("*.jsonl"))]
    if not files:
        raise NoMatchingObjectsError(f"no per-worker .jsonl answer files in {text}")
    return files


def _folder_answer(rec: Any, worker: str, element_name: str | None) -> BoundingBoxAnswer:
    """One line of a per-worker file as an answer (``worker``: the file's name)."""
    content = rec.get("answerContent") or {
        "boundingBox": {
            "boundingBoxes": rec.get("boundingBoxes"),
            "inputImageProperties": rec.get("inputImageProperties"),
        }
    }
    spent = rec.get("timeSpentInSeconds")
    return parse_bounding_box_answer(
        content,
        worker_id=str(rec.get("workerId") or worker),
        element_name=element_name,
        time_spent=spent if isinstance(spent, int | float) else None,
    )


class _FolderAnswers:
    """A folder of per-worker answer files, indexed by object in a temporary SQLite file.

    Each worker's file lists images in its own order, so the answers cannot be streamed
    in manifest order, and grouping them in memory would hold the whole job (500,000
    answers for 100,000 objects x 5 workers). SQLite (stdlib: indexed, paged to disk,
    cache bounded) holds one row per answer line instead, read back one object at a
    time. Every line is parsed on the way in, so a bad line fails the run with its file
    and line number before anything is written. Use as a context manager.
    """

    _BATCH = 256

    def __init__(
        self,
        folder: Location,
        manifest: Location,
        store: S3Store | None,
        element_name: str | None,
    ) -> None:
        self._element_name = element_name
        self._tmp = tempfile.TemporaryDirectory(prefix="gt-answers-")
        self._db = sqlite3.connect(Path(self._tmp.name) / "answers.sqlite")
        try:
            self._load(_folder_files(folder, store), manifest, store)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> _FolderAnswers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()
        self._tmp.cleanup()

    def _load(self, files: list[str], manifest: Location, store: S3Store | None) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode = OFF")  # a scratch file: no crash safety needed
        db.execute("PRAGMA synchronous = OFF")
        db.execute("CREATE TABLE refs (ref TEXT PRIMARY KEY, idx INTEGER NOT NULL)")
        db.execute("CREATE TABLE answers (idx INTEGER NOT NULL, worker TEXT NOT NULL, raw BLOB)")
        lines = read_manifest(manifest, store=store)
        db.executemany(  # the last line with a source-ref wins, as a dict would
            "INSERT OR REPLACE INTO refs VALUES (?, ?)",
            ((str(line.data.get("source-ref")), i) for i, line in enumerate(lines)),
        )
        batch: list[tuple[int, str, bytes]] = []
        for location in files:
            worker = Path(location.rsplit("/", 1)[-1]).stem
            for n, raw in enumerate(iter_raw_lines(location, store=store), start=1):
                if not raw.strip():
                    continue
                try:
                    rec = orjson.loads(raw)
                    index = self._index_of(rec)
                    answer = _folder_answer(rec, worker, self._element_name)
                except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
                    raise ConsolidationError(f"{location}:{n}: bad answer line: {exc}") from exc
                batch.append((index, answer.worker_id, raw))
                if len(batch) >= self._BATCH:
                    db.executemany("INSERT INTO answers VALUES (?, ?, ?)", batch)
                    batch.clear()
        db.executemany("INSERT INTO answers VALUES (?, ?, ?)", batch)
        db.execute("CREATE INDEX answers_by_object ON answers (idx)")

    def _index_of(self, rec: Any) -> int:
        if "datasetObjectId" in rec:
            return int(rec["datasetObjectId"])
        ref = rec.get("source-ref")
        row = None
        if ref is not None:
            row = self._db.execute("SELECT idx FROM refs WHERE ref = ?", (str(ref),)).fetchone()
        if row is None:
            raise ConsolidationError("no datasetObjectId and no known source-ref")
        return int(row[0])

    def answers(self, index: int) -> list[BoundingBoxAnswer]:
        """The answers for one object, in the order the files were read."""
        rows = self._db.execute(
            "SELECT worker, raw FROM answers WHERE idx = ? ORDER BY rowid", (index,)
        )
        return [_folder_answer(orjson.loads(raw), w, self._element_name) for w, raw in rows]

    def workers(self) -> int:
        (count,) = self._db.execute("SELECT COUNT(DISTINCT worker) FROM answers").fetchone()
        return int(count)

    def objects_from(self, start: int) -> list[int]:
        """Object ids with answers at or past ``start`` (orphans when it is the line count)."""
        rows = self._db.execute(
            "SELECT DISTINCT idx FROM answers WHERE idx >= ? ORDER BY idx", (start,)
        )
        return [int(i) for (i,) in rows]


# -- one object ----------------------------------------------------------------------------
@dataclass
class _Result:
    record: dict[str, Any]
    answers: list[BoundingBoxAnswer]
    consolidation: Any
    image_size: ImageSize | None
    files: int
    failure: str | None


def _read_answers(
    files: Sequence[str], store: S3Store | None, element_name: str | None
) -> tuple[list[BoundingBoxAnswer], list[str]]:
    answers: list[BoundingBoxAnswer] = []
    problems: list[str] = []
    for location in files:
        try:
            answers.extend(
                parse_worker_response(
                    orjson.loads(read_bytes(location, store=store)), element_name=element_name
                )
            )
        except (GtToolkitError, orjson.JSONDecodeError) as exc:
            problems.append(f"{location}: {exc}")
    return answers, problems


def _process(
    data: dict[str, Any],
    answers: list[BoundingBoxAnswer],
    problems: list[str],
    *,
    attribute: str,
    job_name: str,
    labels: Sequence[str] | None,
    settings: ConsolidationSettings,
    files: int,
    creation_date: str,
) -> _Result:
    answers = _merge_workers(answers)
    record = dict(data)
    if not answers:
        reason = "; ".join(problems) if problems else "no worker answers for this object"
        record.pop(attribute, None)
        record[f"{attribute}-metadata"] = {
            "failure-reason": f"reconsolidate: {reason}"[:1000],
            "type": DETECTION_TYPE,
            "human-annotated": "yes",
            "creation-date": creation_date,
            "job-name": f"labeling-job/{job_name}",
        }
        return _Result(record, [], None, None, files, reason)
    sizes = [a.image_size for a in answers if a.image_size is not None]
    size = sizes[0] if sizes else None
    result = consolidate_image(
        [a.boxes for a in answers], settings=settings, labels=labels, image_size=size
    )
    return _Result(record, answers, result, size, files, None)


def _write_quality(quality: list[WorkerQuality], base: str, store: S3Store | None) -> list[str]:
    rows = [q.to_json() for q in quality]
    json_loc, csv_loc = f"{base}.json", f"{base}.csv"
    write_bytes(json_loc, orjson.dumps(rows, option=orjson.OPT_INDENT_2) + b"\n", store=store)
    buf = io.StringIO()
    fields = list(WorkerQuality.__dataclass_fields__)
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
    write_bytes(csv_loc, buf.getvalue().encode(), store=store)
    return [json_loc, csv_loc]


def _job_labels(job: Location, store: S3Store | None) -> list[str] | None:
    """Labels from ``<job>/annotation-tool/data.json`` when the job folder has it."""
    location = join_location(job, "annotation-tool", "data.json")
    try:
        doc = orjson.loads(read_bytes(location, store=store))
    except (StorageError, orjson.JSONDecodeError):
        return None
    items = doc.get("labels") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        return None
    names = [i.get("label") for i in items if isinstance(i, dict)]
    return [n for n in names if isinstance(n, str)] or None


def reconsolidate(
    job: Location,
    output: Location,
    *,
    manifest: Location | None = None,
    answers_folder: Location | None = None,
    label_attribute: str = "consolidated",
    job_name: str | None = None,
    labels: Sequence[str] | None = None,
    settings: ConsolidationSettings = ConsolidationSettings(),  # noqa: B008 - frozen
    quality_output: str | None = None,
    store: S3Store | None = None,
    max_workers: int = 16,
    element_name: str | None = None,
) -> ReconsolidationReport:
    """Re-consolidate a job's worker answers into a new output manifest.

    Args:
        job: the job's output prefix (``<S3OutputPath>/<job-name>``), local or ``s3://``.
        output: where the new output manifest goes (written atomically).
        manifest: the job's manifest; default ``<job>/manifests/output/output.manifest``.
        answers_folder: read a folder of per-worker ``.jsonl`` files instead of the Ground
            Truth layout (shape in the module docstring).
        label_attribute: the label attribute to write (replaces an existing one).
        job_name: ``job-name`` in the metadata; default the last part of ``job``.
        labels: the label list (class ids follow it); default the job's
            ``annotation-tool/data.json``, else labels in order of first appearance.
        settings: consolidation settings.
        quality_output: base name for the worker-quality table (``.json`` and ``.csv`` are
            appended); default ``<output>.worker-quality``.
        max_workers: threads reading answer files.

    Raises:
        NoMatchingObjectsError: no worker answers at all (wrong prefix?).
        StorageError: the manifest cannot be read.
        ManifestError: a manifest line is not valid JSON with a source.
    """
    job_text = os.fspath(job).rstrip("/")
    job_name = job_name or re.split(r"[/\\]", job_text)[-1]
    manifest = manifest or join_location(job_text, "manifests", "output", "output.manifest")
    labels = list(labels) if labels else _job_labels(job_text, store)
    seen_labels: list[str] = list(labels or ())
    report = ReconsolidationReport(output=os.fspath(output))
    quality = QualityAccumulator()
    creation_date = now_creation_date()

    folder: _FolderAnswers | None = None
    files_by_id: dict[int, list[str]] = {}
    if answers_folder is not None:
        folder = _FolderAnswers(answers_folder, manifest, store, element_name)
        report.answer_files = folder.workers()  # one file per worker
    else:
        files_by_id = find_worker_responses(job_text, store=store)
        report.answer_files = sum(len(v) for v in files_by_id.values())

    def task(index: int, data: dict[str, Any], given: list[BoundingBoxAnswer] | None) -> _Result:
        if given is not None:  # read from the folder's index in the calling thread
            answers, problems, files = given, list[str](), len(given)
        else:
            files_for = files_by_id.get(index, [])
            answers, problems = _read_answers(files_for, store, element_name)
            files = len(files_for)
        return _process(
            data,
            answers,
            problems,
            attribute=label_attribute,
            job_name=job_name,
            labels=labels,
            settings=settings,
            files=files,
            creation_date=creation_date,
        )

    window = max(1, max_workers) * 4
    with (
        folder or contextlib.nullcontext(),
        cf.ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool,
        atomic_output(output, store=store) as fh,
    ):
        pending: deque[cf.Future[_Result]] = deque()

        def drain(limit: int) -> None:
            while len(pending) > limit:
                res = pending.popleft().result()
                _finish(res)
                fh.write(orjson.dumps(res.record) + b"\n")

        def _finish(res: _Result) -> None:
            report.objects += 1
            if res.consolidation is None:
                report.failed += 1
                return
            report.consolidated += 1
            cons = res.consolidation
            for b in cons.boxes:
                if b["label"] not in seen_labels:
                    seen_labels.append(b["label"])
            report.boxes += len(cons.boxes)
            report.dropped.update(d["reason"] for d in cons.dropped)
            res.record.update(
                build_detection_label(
                    label_attribute,
                    cons.boxes,
                    image_size=res.image_size,
                    labels=seen_labels,
                    job_name=job_name,
                    creation_date=creation_date,
                )
            )
            quality.add(
                [a.worker_id for a in res.answers],
                [a.boxes for a in res.answers],
                cons,
                image_size=res.image_size,
                time_spent=[a.time_spent for a in res.answers],
            )

        count = 0
        lines = read_manifest(manifest, store=store)
        for index, line in enumerate(progress(lines, desc="consolidating", unit="obj")):
            given = folder.answers(index) if folder is not None else None
            pending.append(pool.submit(task, index, line.data, given))
            count = index + 1
            drain(window)
        drain(0)
        if folder is not None:
            report.orphan_objects = folder.objects_from(count)
        else:
            report.orphan_objects = sorted(i for i in files_by_id if i >= count)
    report.quality = quality.result()
    base = quality_output or f"{os.fspath(output)}.worker-quality"
    report.quality_outputs = _write_quality(report.quality, base, store)
    return report
