"""CVAT consensus replicas: a folder of per-job exports in "CVAT for images 1.1" XML.

CVAT leaves a task's replica jobs out of the task export, so each replica job is exported on
its own; one file (or one ``.zip`` holding ``annotations.xml``) per job. Shapes in
``docs/crowd-sources.md``. The annotator of a file is the job's ``<assignee>`` where the
export names one, else the file's stem (the folder's name for ``<job>/annotations.xml``), or
its path under the folder when stems collide: two files are one annotator only by name.
Files whose paths collide too (``job_12.zip`` and ``job_12/annotations.xml``, an archive and
its extracted copy) stop the read: as two annotators they would be one person's votes twice.

XML is parsed as a stream (:func:`_events`, each ``<image>`` cleared once read). CVAT writes
no DOCTYPE, so a file with one is refused, not expanded: expat's own guard lets an entity
grow to 8 MiB, or to a hundred times the bytes read before it (a 2 MB file gave ten labels
of 10 MB each, 420 MB of memory). ElementTree never fetches external entities.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import IO
from xml.etree import ElementTree as ET

from gt_toolkit.errors import CrowdSourceError, GtToolkitError, StorageError
from gt_toolkit.formats.crowd.answer_index import AnswerIndex, Where
from gt_toolkit.formats.crowd.base import (
    IndexedSource,
    coordinate,
    envelope,
    file_annotators,
    list_files,
    open_stream,
)
from gt_toolkit.formats.crowd.report import SkipReason, unread_reason
from gt_toolkit.formats.detection_label import image_side_text
from gt_toolkit.storage.files import iter_chunks
from gt_toolkit.storage.s3 import S3Store, is_s3_uri
from gt_toolkit.types import ImageSize, WorkerBox

__all__ = ["CVAT_EXTENSIONS", "CvatSource"]

CVAT_EXTENSIONS = (".xml", ".zip")  # what a CVAT folder lists: job files and export zips
_SHAPES = frozenset(
    {"polygon", "polyline", "points", "cuboid", "ellipse", "mask", "skeleton", "tag"}
)
_PROLOG = 1 << 16  # bytes before the root element (CVAT writes about 40)


def _broken_member_errors() -> tuple[type[Exception], ...]:
    """What reading a damaged archive member raises: zlib's, lzma's (when Python has it)."""
    errors: tuple[type[Exception], ...] = (zipfile.BadZipFile, zlib.error, EOFError)
    try:
        from lzma import LZMAError
    except ImportError:  # a Python built without lzma reads no LZMA member at all
        return errors
    return (*errors, LZMAError)


_BROKEN_MEMBER = _broken_member_errors()


class CvatSource(IndexedSource):
    """A folder of CVAT for images 1.1 job exports, one annotator each."""

    kind = "cvat"

    def load(self, index: AnswerIndex) -> None:
        """Read every job file into ``index``."""
        self._unassigned: dict[str, str] = {}  # job id -> the file exporting it, no assignee
        # the labels the files declare, first seen first: name -> whether a box can carry it
        # (its type, :func:`_label_names`); one of another type that a box does carry is a
        # box label all the same (:attr:`labels`)
        self._declared: dict[str, bool] = {}
        self._on_boxes: set[str] = set()
        files = list_files(self.location, CVAT_EXTENSIONS, store=self.store)
        # job_12.zip beside job_12/annotations.xml, its extracted copy: not two annotators
        names = file_annotators(self.location, files, names=_job_names, whole_path=False)
        for location in files:
            with self._open(location) as stream:
                self._job(index, location, stream, names[location])

    def _open(self, location: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        if not location.lower().endswith(".zip"):
            return open_stream(location, store=self.store)
        return _archived(location, self.store)

    def _job(self, index: AnswerIndex, location: str, stream: IO[bytes], annotator: str) -> None:
        """One job file (``annotator``: the file's own name, used when it names no assignee)."""
        in_meta = False
        depth = 0  # below the root
        events = _events(stream, location)
        _, root = next(events)
        if root.tag != "annotations":
            raise CrowdSourceError(location, "", f"not CVAT XML: root is <{root.tag}>")
        for event, elem in events:
            if event == "start":
                depth += 1
                if elem.tag == "track" and not in_meta:
                    raise CrowdSourceError(
                        location,
                        "",
                        'a "CVAT for video" export (<track> elements): export each job'
                        ' as "CVAT for images 1.1"',
                    )
                in_meta = in_meta or elem.tag == "meta"
                continue
            depth -= 1
            if elem.tag == "meta":
                assignee = _assignee(elem)
                if assignee is None:
                    self._once(location, elem.findtext("job/id"))
                annotator = assignee or annotator
                for name, on_a_box in _label_names(elem):
                    self._declared[name] = self._declared.get(name, False) or on_a_box
                in_meta = False
            elif elem.tag == "image" and not in_meta:
                self._image(index, location, annotator, elem)
                elem.clear()
            if depth == 0:  # whatever the root holds goes once read: memory stays flat
                root.clear()

    def _once(self, location: str, job: str | None) -> None:
        """Refuse a job two files export without an assignee (a download saved twice).

        Named by their files (``job_12.zip``, ``job_12 (1).zip``), the two copies would be two
        annotators with the same boxes. With an assignee they are one annotator, and every
        frame of the second is a ``duplicate-answer``.

        Raises:
            CrowdSourceError: another file exports job ``job`` without an assignee.
        """
        job = (job or "").strip()
        if not job:
            return
        first = self._unassigned.setdefault(job, location)
        if first != location:
            raise CrowdSourceError(
                location,
                "",
                f"job {job} is exported in {first} too, neither naming an assignee: one job"
                " twice would be two annotators with the same boxes; keep one",
            )

    def _image(self, index: AnswerIndex, location: str, annotator: str, elem: ET.Element) -> None:
        name = elem.get("name")
        where = f"image {name!r} (id {elem.get('id')})"
        _not_merged(location, where, elem)
        # the text rule of every reader (ASCII digits): float() took " 640" and "６４０"
        width, height = (image_side_text(elem.get(k) or "") for k in ("width", "height"))
        size: ImageSize | None = (
            {"width": width, "height": height} if width is not None and height is not None else None
        )
        if not name or size is None:
            self.skip(
                location,
                where,
                SkipReason.MALFORMED,
                "no name, or width/height not a whole number from 1 to 2**31 - 1",
                dict(elem.attrib),
            )
            return
        if not self._first_answer(index, name, annotator, (location, where)):
            return
        boxes: list[WorkerBox] = []
        unread: str | None = None  # why regions were not read as boxes (AnswerIndex.answers)
        for k, child in enumerate(elem):
            here = f"{where}, shape {k}"
            if child.tag != "box":
                reason = SkipReason.NOT_A_BOX if child.tag in _SHAPES else SkipReason.MALFORMED
                self.skip(location, here, reason, f"<{child.tag}>", dict(child.attrib))
                if child.tag != "tag":  # a tag labels the image: a region it is not
                    unread = unread_reason(unread, reason)
                continue
            box = self._box(location, here, child)
            if isinstance(box, SkipReason):
                unread = unread_reason(unread, box)
            else:
                boxes.append(box)
        index.add_answer(name, annotator, boxes, size=size, where=(location, where), unread=unread)

    @property
    def labels(self) -> list[str] | None:
        """The declared labels a box can carry, or does: in the files' order, first seen first.

        A label of a type CVAT draws as another shape (``road``, a ``polygon``) is no class
        of the run; but CVAT's API and imports do not hold a shape to its label's type, and
        a box that carries one all the same keeps it: left out of the list, every such box
        was an ``unknown-label`` drop (the whole run refused where most boxes had one).
        """
        self._loaded()
        found = [n for n, on_a_box in self._declared.items() if on_a_box or n in self._on_boxes]
        return found or None

    def _first_answer(self, index: AnswerIndex, name: str, annotator: str, where: Where) -> bool:
        """Whether this is the annotator's first answer to image ``name``; else a reject.

        Two job files of one assignee are one person's work (replicas of several segments);
        where both cover a frame, the files' order says nothing about which answer counts.
        """
        alias = f"cvat\0{annotator}\0{name}"  # XML text holds no NUL
        first = index.resolve(alias)
        if first is None:
            index.set_alias(alias, name, where)
            return True
        file, position = first[1]
        self.skip(
            *where,
            SkipReason.DUPLICATE_ANSWER,
            f"{annotator} answered image {name!r} already in {file}: {position}",
        )
        return False

    def _box(self, location: str, where: str, elem: ET.Element) -> WorkerBox | SkipReason:
        """The box of a ``<box>``; else why it was rejected."""
        label = elem.get("label")
        xtl, ytl, xbr, ybr = (_number(elem.get(k)) for k in ("xtl", "ytl", "xbr", "ybr"))
        if not label or xtl is None or ytl is None or xbr is None or ybr is None:
            self.skip(
                location,
                where,
                SkipReason.MALFORMED,
                "label, xtl, ytl, xbr, ybr",
                dict(elem.attrib),
            )
            return SkipReason.MALFORMED
        if xbr < xtl or ybr < ytl:  # CVAT always writes the top-left corner first
            self.skip(
                location, where, SkipReason.MALFORMED, "xbr < xtl or ybr < ytl", dict(elem.attrib)
            )
            return SkipReason.MALFORMED
        box: WorkerBox = {
            "label": label,
            "left": xtl,
            "top": ytl,
            "width": xbr - xtl,
            "height": ybr - ytl,
        }
        rotation = _number(elem.get("rotation", "0"))
        if rotation is None:  # read as 0, a turned box would be taken for an upright one
            self.skip(
                location, where, SkipReason.MALFORMED, "rotation is not a number", dict(elem.attrib)
            )
            return SkipReason.MALFORMED
        if rotation % 360.0:
            self.report.rotated += 1
            box = envelope(box, rotation, pivot="center")
        self._on_boxes.add(label)
        return box


class _Refused(Exception):
    """A DOCTYPE: raised from the parser's target, before any entity of it is used."""


class _Rooted(Exception):
    """The root element started: the prolog, where a DOCTYPE would be, is over."""


class _Prolog:
    """A parser target that only looks at the prolog: a DOCTYPE, or the root element."""

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        raise _Rooted

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise _Refused

    def close(self) -> None:
        return None


class _Replay:
    """``head`` (bytes already read from ``rest``), then the rest: what ``iterparse`` reads."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head, self._rest = head, rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        return self._rest.read(size)


def _events(stream: IO[bytes], location: str) -> Iterator[tuple[str, ET.Element]]:
    """``iterparse``'s start and end events of a CVAT XML file that has no DOCTYPE.

    The prolog is parsed first on its own, with a target that hears of a DOCTYPE (which
    ``iterparse`` never reports). expat parses the rest of what it was fed after a handler
    refuses (the error comes when the chunk is done), entities included, up to 8 MiB or a
    hundred times the bytes read so far: so the root element must start within the first
    64 KiB (a CVAT file's starts after about 40 bytes).

    Raises:
        CrowdSourceError: not well-formed XML (with its line and column), a DOCTYPE, no root
            element in the first 64 KiB, a broken ``.zip`` member, an encoding that is not
            known or not of one byte a character (expat reads UTF-8 and UTF-16 itself).
        StorageError: the file could not be read (a damaged bzip2 member says no more).
    """
    try:
        head = b""
        while len(head) < _PROLOG and (more := stream.read(_PROLOG - len(head))):
            head += more  # a stream may give less than asked before its end
        try:
            ET.XMLParser(target=_Prolog()).feed(head)
        except _Rooted:
            pass
        except _Refused:
            raise CrowdSourceError(
                location, "", "a DOCTYPE (entity declarations), which CVAT never writes: refused"
            ) from None
        except ET.ParseError:
            pass  # iterparse reports it, with its line
        else:
            if len(head) == _PROLOG:
                raise CrowdSourceError(
                    location, "", f"no root element in the first {_PROLOG} bytes"
                )
        yield from ET.iterparse(_Replay(head, stream), events=("start", "end"))
    except ET.ParseError as exc:
        line, column = exc.position
        raise CrowdSourceError(
            location, f"line {line}, column {column}", f"not well-formed XML: {exc}"
        ) from exc
    except _BROKEN_MEMBER as exc:  # a damaged archive member
        raise CrowdSourceError(location, "", f"broken archive: {exc}") from exc
    except GtToolkitError:  # CrowdSourceError is a ValueError, StorageError an OSError
        raise
    except OSError as exc:  # a damaged bzip2 member says 'Invalid data stream'; a failed read
        raise StorageError(f"cannot read {location}: {exc.strerror or exc}") from exc
    except (LookupError, ValueError) as exc:  # encoding="bogus", "shift_jis": no XML to read
        raise CrowdSourceError(location, "", f"an encoding expat cannot read: {exc}") from exc


@contextlib.contextmanager
def _archived(location: str, store: S3Store | None) -> Iterator[IO[bytes]]:
    """The ``annotations.xml`` of a CVAT export archive, streamed (an S3 one via a temp file).

    Raises:
        CrowdSourceError: not a zip archive, or none of that name in it.
    """
    with contextlib.ExitStack() as stack:
        if is_s3_uri(location):
            spool = stack.enter_context(tempfile.TemporaryFile())
            for chunk in iter_chunks(location, store=store):
                spool.write(chunk)
            source: str | IO[bytes] = spool
        else:
            source = os.fspath(location)
        try:
            archive = stack.enter_context(zipfile.ZipFile(source))
            member = stack.enter_context(archive.open("annotations.xml"))
        except OSError as exc:
            raise StorageError(f"cannot read {location}: {exc.strerror or exc}") from exc
        except (zipfile.BadZipFile, KeyError, RuntimeError, NotImplementedError) as exc:
            # RuntimeError: an encrypted member; NotImplementedError: an unknown compression
            raise CrowdSourceError(location, "", f"not a CVAT export archive: {exc}") from exc
        yield member


def _not_merged(location: str, where: str, image: ET.Element) -> None:
    """Refuse a parent job's export after a consensus merge: not an annotator.

    CVAT's merge (``IntersectMerge.merge_items``) marks every shape it writes into the
    parent job ``source="consensus"``, after clearing that job's own shapes. Read as one
    more annotator, the merge would agree with every majority and, on a frame it left empty,
    vote against what the replicas drew. Its shapes cannot be told apart from a reviewer's
    later ones by anything else in the file, so the file is refused whole, not skipped:
    the user leaves it out of the folder.

    Raises:
        CrowdSourceError: a shape of ``image`` has ``source="consensus"``.
    """
    for k, shape in enumerate(image):
        if (shape.get("source") or "").strip().lower() == "consensus":
            raise CrowdSourceError(
                location,
                f"{where}, shape {k}",
                f'<{shape.tag} source="consensus">: CVAT\'s merge of the consensus replicas,'
                " so this file is their parent job's export, not an annotator (it would"
                " agree with every majority); leave it out of the folder of replica exports",
            )


# a number as CVAT writes one ("70.40", "-3.5", "1e-05"): ASCII, no spaces, no "_"
_NUMBER_TEXT = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?", re.ASCII)


def _number(text: str | None) -> float | None:
    """A coordinate or rotation written as a decimal number; ``None`` for anything else.

    ``float`` also takes ``" 70.4"``, ``"7_0.4"``, ``"inf"`` and other scripts' digits
    (``"７０.４"``), none of which CVAT writes and which JSON, the other sources' text of
    numbers, refuses: read, one broken file was boxes here and rejects anywhere else.
    """
    if text is None or _NUMBER_TEXT.fullmatch(text) is None:
        return None
    return coordinate(float(text))


def _job_names(path: PurePosixPath) -> tuple[str, str]:
    """A job file's short and longer name: the job folder's for ``<job>/annotations.xml``."""
    if path.name.lower() == "annotations.xml" and path.parent.name:
        return path.parent.name, str(path.parent)
    return path.stem, str(path.with_suffix(""))


def _assignee(meta: ET.Element) -> str | None:
    """The job's (or task's) assignee: username, else email; ``None`` when not named."""
    for owner in ("job", "task", "project"):
        assignee = meta.find(f"{owner}/assignee")
        if assignee is None:
            continue
        for field in ("username", "email"):
            text = (assignee.findtext(field) or "").strip()
            if text:
                return text
    return None


# label types no <box> can carry: CVAT draws a label of one of these types only as that
# shape (or as an image tag). "any", "rectangle" (the UI's), "bbox" (the server's enum) and
# none (older CVAT) stay box labels, and so does a type this list does not know
_NOT_ON_A_BOX = frozenset(
    {"tag", "skeleton", "polygon", "polyline", "points", "ellipse", "cuboid", "cuboid_3d", "mask"}
)


def _label_names(meta: ET.Element) -> Iterator[tuple[str, bool]]:
    """The declared label names, as the boxes' ``label`` attributes spell them; box labels?

    CVAT writes a name's text as it is; stripped here but not on the boxes, ``car `` was
    declared ``car`` and every box labelled ``car `` was unknown to the run. A skeleton's
    point labels (a ``<parent>`` names the skeleton), the skeleton itself and a label of a
    type CVAT draws only as another shape (``tag``: image tags only; ``polygon``: only
    polygons) are no box's: declared, they became classes of the detection outputs
    (COCO categories ``nose``, ``blurry``, ``road``) that no box can ever have.
    """
    for owner in ("job", "task", "project"):
        for label in meta.iterfind(f"{owner}/labels/label"):
            name = label.findtext("name") or ""
            kind = (label.findtext("type") or "").strip().lower()
            on_a_box = not (label.findtext("parent") or "").strip() and kind not in _NOT_ON_A_BOX
            if name.strip():
                yield name, on_a_box
