"""Group annotators' answers by image on disk, so a job of any size reads in flat memory.

Most exports are not grouped by image: a CVAT or per-annotator COCO export is one file per
annotator, and a COCO file lists annotations in any order. Holding every answer until the
last file is read would hold the whole job. :class:`AnswerIndex` keeps them in a temporary
SQLite file instead (stdlib, indexed, paged to disk with a bounded cache) and gives them
back one image at a time, in the order images were first seen. An answer a reader cannot
make yet (it needs an image size a later record may give) is held there too, in its place.
"""

from __future__ import annotations

import pickle
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gt_toolkit.errors import CrowdSourceError
from gt_toolkit.formats.crowd.report import SkipReason, unread_reason
from gt_toolkit.types import ImageSize, WorkerBox

__all__ = ["AnswerIndex", "IndexedAnswer", "Where"]

Where = tuple[str, str]
"""``(file, position)`` of a record, for messages."""
_NOWHERE: Where = ("", "")

_SCHEMA = (
    "CREATE TABLE images (key TEXT PRIMARY KEY, ord INTEGER NOT NULL, width INTEGER,"
    " height INTEGER, who TEXT)",
    # answer 0 accumulates boxes added one at a time; answer n > 0 is one whole answer, and
    # an annotator's later whole answer for an image supersedes an earlier one. unread: why
    # a region of the row was not read as a box (a SkipReason value), else NULL
    "CREATE TABLE rows (img INTEGER NOT NULL, annotator TEXT NOT NULL, answer INTEGER NOT NULL,"
    " time REAL, boxes BLOB NOT NULL, unread TEXT)",
    "CREATE TABLE aliases (alias TEXT PRIMARY KEY, key TEXT NOT NULL, extra BLOB)",
    # answers held until the reader can make them: their row in rows, what makes them
    "CREATE TABLE held (row INTEGER PRIMARY KEY, key TEXT NOT NULL, data BLOB NOT NULL)",
)


@dataclass(slots=True)
class IndexedAnswer:
    """One annotator's boxes on one image, as read back from the index."""

    annotator: str
    boxes: list[WorkerBox] = field(default_factory=list)
    time_spent: float | None = None
    abstained: str | None = None
    """Why the annotator is no answer to the image: none of their regions there was read as
    a box (:func:`~gt_toolkit.formats.crowd.report.unread_reason` of those regions)."""


class AnswerIndex:
    """Answers by image in a temporary SQLite file; use as a context manager.

    Add with :meth:`add_image`, :meth:`add_answer` and :meth:`add_box`; call :meth:`finish`
    once; then read with :meth:`images` and :meth:`answers` as often as needed.
    """

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="gt-crowd-")
        self._db = sqlite3.connect(Path(self._tmp.name) / "answers.sqlite")
        self._db.execute("PRAGMA journal_mode = OFF")  # a scratch file: no crash safety needed
        self._db.execute("PRAGMA synchronous = OFF")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._images = 0
        self._answers = 0
        self._held = 0
        self._ids: dict[str, int] = {}  # key -> row id of recent images (bounded)

    def __enter__(self) -> AnswerIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the temporary file."""
        self._db.close()
        self._tmp.cleanup()

    def __len__(self) -> int:
        return self._images

    # -- adding --------------------------------------------------------------------------
    def add_image(
        self, key: str, size: ImageSize | None = None, *, who: str = "", where: Where = _NOWHERE
    ) -> int:
        """Register an image (first sight fixes its order); returns its row id.

        ``who`` (an annotator, or the file that lists the image) and ``where`` (file and
        position) name the origin of ``size`` in the error a later, different size raises.

        Raises:
            CrowdSourceError: ``size`` differs from the size given before for this image.
        """
        img = self._ids.get(key)
        if img is None:
            row = self._db.execute(
                "SELECT rowid, width, height, who FROM images WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                self._images += 1
                width, height = (size["width"], size["height"]) if size else (None, None)
                cur = self._db.execute(
                    "INSERT INTO images VALUES (?, ?, ?, ?, ?)",
                    (key, self._images, width, height, who if size else None),
                )
                img = int(cur.lastrowid or 0)
                self._remember(key, img)
                return img
            img = int(row[0])
            self._remember(key, img)
            if size is not None:
                self._check_size(img, key, size, who, where, row[1:])
            return img
        if size is not None:
            row = self._db.execute(
                "SELECT width, height, who FROM images WHERE rowid = ?", (img,)
            ).fetchone()
            self._check_size(img, key, size, who, where, row)
        return img

    def _remember(self, key: str, img: int) -> None:
        if len(self._ids) >= 256:  # recent keys: an image's answers mostly come together
            self._ids.clear()
        self._ids[key] = img

    def _check_size(
        self, img: int, key: str, size: ImageSize, who: str, where: Where, known: Any
    ) -> None:
        width, height, first = known
        if width is None:
            self._db.execute(
                "UPDATE images SET width = ?, height = ?, who = ? WHERE rowid = ?",
                (size["width"], size["height"], who, img),
            )
        elif (width, height) != (size["width"], size["height"]):
            raise CrowdSourceError(
                *where,
                f"image {key!r} is {size['width']}x{size['height']} for {who} but "
                f"{width}x{height} for {first}",
            )

    def add_answer(
        self,
        key: str,
        annotator: str,
        boxes: list[WorkerBox],
        *,
        size: ImageSize | None = None,
        time_spent: float | None = None,
        where: Where = _NOWHERE,
        unread: str | None = None,
    ) -> None:
        """One annotator's whole answer for an image (an empty list: they drew nothing).

        ``unread``: why regions of the answer were not read as boxes
        (:func:`~gt_toolkit.formats.crowd.report.unread_reason`). With no box read, the
        answer says nothing about the image's boxes: the annotator abstains (:meth:`answers`).
        """
        img = self.add_image(key, size, who=annotator, where=where)
        self._answers += 1
        self._db.execute(
            "INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?)",
            (img, annotator, self._answers, time_spent, orjson.dumps(boxes), unread),
        )

    def add_box(
        self, key: str, annotator: str, box: WorkerBox | None, *, unread: str | None = None
    ) -> None:
        """One box of an answer whose boxes come one by one (``None``: saw it, drew nothing).

        ``unread``: the annotator drew a region here that was not read as a box, and why (a
        :class:`~gt_toolkit.formats.crowd.report.SkipReason` value); ``box`` is then
        ``None``. An annotator none of whose regions on an image was read abstains there
        (:meth:`answers`). The image must be registered with :meth:`add_image` first.
        """
        img = self.add_image(key)
        self._db.execute(
            "INSERT INTO rows VALUES (?, ?, 0, NULL, ?, ?)",
            (img, annotator, orjson.dumps([box] if box is not None else []), unread),
        )

    def hold_answer(
        self, key: str, annotator: str, data: Any, *, time_spent: float | None = None
    ) -> None:
        """Keep the place of a whole answer that cannot be made yet, with ``data`` to make it.

        It ranks as an answer added now (a later answer of the annotator supersedes it, it
        supersedes an earlier one) and keeps its annotator's place among the image's.
        :meth:`held` gives ``data`` back to make it with :meth:`settle`, before :meth:`finish`.
        """
        img = self.add_image(key)
        self._answers += 1
        cur = self._db.execute(
            "INSERT INTO rows VALUES (?, ?, ?, ?, ?, NULL)",
            (img, annotator, self._answers, time_spent, b"[]"),
        )
        # pickle: our own scratch file, and exact for any parsed JSON (orjson refuses an
        # integer past 64 bits)
        self._db.execute(
            "INSERT INTO held VALUES (?, ?, ?)",
            (cur.lastrowid, key, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)),
        )
        self._held += 1

    def held(self) -> Iterator[tuple[int, str, Any]]:
        """``(row, key, data)`` of each held answer, in the order they were held (once)."""
        for row, key, data in self._db.execute("SELECT row, key, data FROM held ORDER BY row"):
            yield int(row), str(key), pickle.loads(data)  # our own scratch file: trusted
        self._db.execute("DELETE FROM held")  # not row by row under the running SELECT

    def settle(self, row: int, boxes: list[WorkerBox], unread: str | None = None) -> None:
        """Make a held answer with its ``boxes`` (``unread`` as for :meth:`add_answer`)."""
        self._db.execute(
            "UPDATE rows SET boxes = ?, unread = ? WHERE rowid = ?",
            (orjson.dumps(boxes), unread, row),
        )
        self._held -= 1

    def find(self, key: str) -> tuple[int, ImageSize | None] | None:
        """``(row id, size)`` of a registered image, or ``None``."""
        row = self._db.execute(
            "SELECT rowid, width, height FROM images WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        size: ImageSize | None = (
            {"width": int(row[1]), "height": int(row[2])} if row[1] is not None else None
        )
        return int(row[0]), size

    def size_of(self, key: str) -> ImageSize | None:
        """The size known so far for an image (``None``: unknown or not registered)."""
        found = self.find(key)
        return found[1] if found is not None else None

    def set_alias(self, alias: str, key: str, extra: Any = None) -> None:
        """Remember that ``alias`` (a file's image id) means image ``key``, with ``extra``."""
        self._db.execute(
            "INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)",
            (alias, key, orjson.dumps(extra)),
        )

    def resolve(self, alias: str) -> tuple[str, Any] | None:
        """The key and extra an alias was set to, or ``None``."""
        row = self._db.execute(
            "SELECT key, extra FROM aliases WHERE alias = ?", (alias,)
        ).fetchone()
        return (str(row[0]), orjson.loads(row[1])) if row is not None else None

    def finish(self) -> int:
        """Index the rows for reading; returns how many whole answers were superseded."""
        if self._held:
            raise RuntimeError(f"{self._held} held answers were never settled")
        (superseded,) = self._db.execute(
            "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM rows"
            " WHERE answer > 0 GROUP BY img, annotator)"
        ).fetchone()
        self._db.execute(
            "DELETE FROM rows WHERE answer > 0 AND answer NOT IN"
            " (SELECT MAX(answer) FROM rows WHERE answer > 0 GROUP BY img, annotator)"
        )
        self._db.execute("CREATE INDEX rows_by_image ON rows (img)")
        self._db.commit()
        return int(superseded)

    # -- reading -------------------------------------------------------------------------
    def images(self) -> Iterator[tuple[int, str, ImageSize | None]]:
        """``(row id, key, size)`` of every image, in the order first seen."""
        cursor = self._db.execute("SELECT rowid, key, width, height FROM images ORDER BY ord")
        for img, key, width, height in cursor:
            size: ImageSize | None = (
                {"width": int(width), "height": int(height)} if width is not None else None
            )
            yield int(img), str(key), size

    def answers(self, img: int) -> list[IndexedAnswer]:
        """The answers for one image, annotators in the order first seen.

        The one rule of every source for regions that are not read as boxes: an annotator
        who drew boxes keeps them; one none of whose regions on the image was read as a box
        (polygons or keypoints only, a COCO crowd region, boxes all rejected) is marked
        :attr:`IndexedAnswer.abstained`, not counted as having drawn nothing, which would
        vote against the others' boxes. One who drew nothing at all drew nothing.
        """
        found: dict[str, IndexedAnswer] = {}
        unread: dict[str, str] = {}
        rows = self._db.execute(
            "SELECT annotator, time, boxes, unread FROM rows WHERE img = ? ORDER BY rowid",
            (img,),
        )
        for annotator, time, boxes, why in rows:
            answer = found.setdefault(annotator, IndexedAnswer(annotator))
            answer.boxes.extend(orjson.loads(boxes))
            if why is not None:
                unread[annotator] = unread_reason(unread.get(annotator), SkipReason(why))
            if time is not None:
                answer.time_spent = float(time)
        for answer in found.values():
            if not answer.boxes:
                answer.abstained = unread.get(answer.annotator)
        return list(found.values())
