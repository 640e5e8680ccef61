"""Where a conversion writes: nothing appears at the output unless the whole run succeeds.

A converter writes every file (annotations, manifests, copied images) through a
:class:`StagedOutput`. Locally the files go to a hidden ``.<name>.<host>.<pid>.<token>.part`` folder
beside the output (:func:`~gt_toolkit.storage.files.make_part_folder`: a later run removes it
if this one is killed), which is moved into place when the run ends without an error and deleted
when it fails. S3 cannot move anything, so there the objects go under a hidden part prefix of
the same name beside the output, are copied to their final keys inside S3 when the run succeeds
and are deleted then, or when it fails: an earlier run's objects at the same keys stay as they
were until the copies replace them. A killed run's part prefix is deleted by a later run that
succeeds in the same folder once nothing has been written there for a day. The files that say
a dataset is complete (``channels.json``, ``data.yaml``) are written last, and on S3 copied last.
A file that belongs with the output though no converter writes it (``gt-convert``'s summary)
is committed with it, or a failed run leaves neither (:meth:`StagedOutput.write_along`).

A rerun into the same output must not leave the earlier run's files beside its own (a trainer
would find the labels of images the user removed), yet a folder may hold the user's files too.
So each committed run lists the files it wrote in a hidden :data:`LISTING` file in the output
folder (S3: the object of that name under the prefix), under its kind (the conversion target),
and the next committed run of that kind removes the files listed there that it did not write
again, then lists its own. Runs of other kinds into the same folder keep their files (and any
file they list), and what the run reads (its ``--images-dir``, its records' images) stays
too and leaves the list.
A file output (``coco -o x.json``) lists only the folders it writes beside it (``images/``), in
``.x.json.gt-toolkit-files.json``. A failed run removes nothing and leaves the list as it was.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO

import orjson

from gt_toolkit.errors import NoMatchingObjectsError, StorageError
from gt_toolkit.storage.files import (
    AllOrNone,
    Location,
    atomic_output,
    check_links,
    check_writable,
    inside_location,
    is_part_name,
    join_location,
    link_target,
    make_part_folder,
    part_name,
    read_bytes,
    remove_file,
    sweep_parts,
    write_bytes,
    write_json,
    write_lines,
)
from gt_toolkit.storage.s3 import S3Object, S3Store, is_s3_uri

__all__ = ["LISTING", "StagedOutput", "beside_location", "listing_of"]

LISTING = ".gt-toolkit-files.json"
"""The list of files the last run of each kind (a conversion target) wrote into a folder
output: hidden, so that no trainer's file pattern picks it up, and named after the tool, so
that a user who finds it knows whose it is."""

_ABOUT = (
    "the files the last gt-toolkit run of each kind wrote here; the next run of a kind "
    "removes those of its kind it does not write"
)

# What reading a list can raise: a list that cannot be read, is not JSON, or is not ours.
_UNREADABLE = (StorageError, orjson.JSONDecodeError, LookupError, TypeError)

_STALE_PART_AGE = timedelta(days=1)
"""How long an S3 part prefix must have gone unwritten before a run beside it deletes it."""

# Copies in flight while an S3 run's objects are copied into place (the image copier's default).
_COPY_WORKERS = 16

logger = logging.getLogger(__name__)


def beside_location(out: str, name: str) -> str:
    """``name`` in the folder that holds the file output ``out`` (local or ``s3://``)."""
    if is_s3_uri(out):
        return join_location(out.rsplit("/", 1)[0], name)
    return str(Path(out).parent / name)


def listing_of(out: str, *, file_output: bool) -> str:
    """Where a run into ``out`` lists the files it wrote.

    :data:`LISTING` in a folder output; ``.<name>.gt-toolkit-files.json`` beside a file
    output (for the folders it fills there).
    """
    if not file_output:
        return join_location(out, LISTING)
    root, _, name = out.rstrip("/").rpartition("/")
    return join_location(root or ".", f".{name}{LISTING}")


class StagedOutput:
    """The output of one conversion: final locations to report, staged locations to write.

    Args:
        out: the output the user named: a folder, a file (``x.json``, ``x.manifest``) or an
            ``s3://`` prefix or key.
        store: the S3 store for ``s3://`` outputs.
        kind: what writes it (the conversion target): a rerun replaces the files of its own
            kind only, so ``augmented`` and ``od-json`` can share a folder.
        reads: what the run reads (its input, ``--images-dir``; :meth:`read` adds each
            record's image): never removed, though an earlier run listed it. ``coco -o x.json
            --images-dir images`` reads the images an earlier ``--copy-images`` run wrote
            there, and its x.json names them: they are the user's now, and leave the list.

    Use as a context manager: leaving the block normally commits, an exception aborts.
    """

    def __init__(
        self,
        out: Location,
        *,
        store: S3Store | None = None,
        kind: str = "output",
        reads: Iterable[Location] = (),
    ) -> None:
        self.out = os.fspath(out)
        self.kind = kind
        self.reads = [os.fspath(location) for location in reads]
        self._read: set[str] = set()
        self._read_folders: dict[str, bool] = {}
        self.store = store if store is not None else S3Store()
        self._s3 = is_s3_uri(self.out)
        self._s3_stage = _S3Stage(self.out, self.store) if self._s3 else None
        self._parent = _absolute(self.out).parent
        self._stage: Path | None = None
        self._last: Path | None = None  # the local file staged last (see :meth:`commit`)
        self._beside: set[str] = set()
        # what :meth:`read` keeps: the files under the output's parent, where stale ones lie
        self._read_under = f"{self._s3_stage.root if self._s3_stage else self._parent}/"
        self._cwd = str(Path.cwd()).rstrip("/")  # a run does not move: its relative names' base
        self._along = AllOrNone(store=self.store)  # see :meth:`write_along`
        self._staged_along: set[str] = set()  # the final locations it staged: never listed
        self._after: list[tuple[str, bytes]] = []  # written after the commit, elsewhere

    def location(self, *parts: str) -> str:
        """A final location under the output (what summaries and ``data.yaml`` name)."""
        return join_location(self.out, *parts) if parts else self.out

    def beside(self, name: str) -> str:
        """A final location next to a file output (``coco -o x.json`` puts ``images/`` there).

        That folder is part of the output: a rerun removes the files an earlier run wrote there.
        """
        self._beside.add(name)
        return beside_location(self.out, name)

    def staged(self, location: str) -> str:
        """Where to write the file that will appear at the final ``location``."""
        if self._s3_stage is not None:
            return self._s3_stage.staged(location)
        path = _absolute(location)
        try:
            rel = path.relative_to(self._parent)
        except ValueError:
            raise StorageError(f"{location} is outside the output folder {self.out}") from None
        self._last = rel
        return str(self._stage_dir() / rel)

    @contextlib.contextmanager
    def open(self, location: str, *, durable: bool = True) -> Iterator[IO[bytes]]:
        """Open the file for ``location`` for writing (see :func:`atomic_output`)."""
        with atomic_output(self.staged(location), store=self.store, durable=durable) as fh:
            yield fh

    def write_bytes(self, location: str, data: bytes, *, durable: bool = True) -> None:
        """Write a whole file for ``location``."""
        write_bytes(self.staged(location), data, store=self.store, durable=durable)

    def write_json(self, location: str, obj: object) -> None:
        """Write indented JSON for ``location`` (reports and side files)."""
        write_json(self.staged(location), obj, store=self.store)

    def write_lines(self, location: str, lines: Iterable[bytes]) -> int:
        r"""Write byte lines (each gets a ``\n``) for ``location``; return how many."""
        return write_lines(self.staged(location), lines, store=self.store)

    def write_along(self, location: str, data: bytes) -> None:
        """Write a file that belongs with the output though no converter writes it (a summary).

        It appears with the output or not at all: written after the converter's commit, a
        Ctrl-C or a crash between them left the output without its summary (elsewhere the
        window is now one file's write). Where the output's files go
        (under its folder, or its S3 prefix's) it is staged with them, and moves in before
        the file that says the output is complete. Elsewhere it is checked writable now (a
        missing bucket fails the run before the commit), an earlier file of its name is kept
        aside (:class:`~gt_toolkit.storage.files.AllOrNone`) and put back when the run
        fails before the output is in place (after, none is left), and it is written once
        the commit has ended, as the file that says an output
        is complete is: written in place before the commit, a run killed during it (an S3
        output's copies take minutes) left the new summary describing an output that was
        not there. It is not listed (:data:`LISTING`): no output file, it is the run's, and
        the next run writes its own.

        A local ``location`` that is a symbolic link is written where it leads
        (:func:`~gt_toolkit.storage.files.link_target`, creating the file it names if that is
        not there yet; one that cannot lead to a file fails the run now): staged there when
        that is under the output's folder, elsewhere otherwise. The link itself stays.
        """
        if not is_s3_uri(location):
            location = link_target(location)
        if self._s3_stage is not None:
            if is_s3_uri(location) and _relative(location, self._s3_stage.root):
                self._s3_stage.staged(location, first=True)  # copied before the last file
                self._staged_along.add(location)
                write_bytes(self._s3_stage.written[location], data, store=self.store)
                return
        elif not is_s3_uri(location) and _absolute(location).is_relative_to(self._parent):
            last = self._last  # the converter's last file still moves in last
            self.write_bytes(location, data)
            self._last = last
            self._staged_along.add(str(_absolute(location)))
            return
        check_writable(location, store=self.store)  # a file it cannot write fails the run now
        self._along.keep_earlier([location])
        if not is_s3_uri(location):  # no summary shows while the output moves in
            with contextlib.suppress(FileNotFoundError):
                Path(location).unlink()
        self._after.append((location, data))

    def _stage_dir(self) -> Path:
        if self._stage is None:
            try:
                self._parent.mkdir(parents=True, exist_ok=True)
                self._stage = make_part_folder(self._parent, _absolute(self.out).name or "out")
            except OSError as exc:
                raise StorageError(f"cannot write {self.out}: {exc.strerror or exc}") from exc
        return self._stage

    def commit(self) -> None:
        """Move the staged files into place (S3: copy them), then list them.

        The file that says the output is complete goes last (:meth:`_last_file`), also where
        an earlier run's folder makes the move file by file. Listing them (:meth:`_relist`)
        removes the files the previous run listed and this one did not write.
        """
        if self._s3_stage is not None:
            written = self._s3_stage.commit()
        elif self._stage is None:
            return
        else:
            written = {str(self._parent / rel) for rel in _files_under(self._stage)}
            try:
                # a name that is a link is moved in where it leads: refused before anything
                # moves, one in a loop, to another file of the run, or to one it reads
                links = check_links(written, reads=self._reads, shown=self._spelt)
                self._check_shapes(written)
                last = self._last_file(self._stage)
                # out of the way of the merge, and still in the stage: where it waits, goes
                held = None if last is None else (self._stage / part_name(".last"), last)
                if held is not None:
                    (self._stage / held[1]).replace(held[0])
                pairs = [
                    (child, self._parent / child.name)
                    for child in sorted(self._stage.iterdir())
                    if held is None or child != held[0]
                ]
                if held is not None:
                    pairs.append((held[0], self._parent / held[1]))
                _merge_all(pairs, {Path(link) for link in links})
            except OSError as exc:
                raise StorageError(f"cannot move the output into {self.out}: {exc}") from exc
            finally:
                shutil.rmtree(self._stage, ignore_errors=True)
                self._stage = None
        written -= self._staged_along
        if written:
            self._relist(written)

    def _check_shapes(self, written: set[str]) -> None:
        """Refuse, before anything moves in, a staged file where a folder is, or the reverse.

        Found by the merge (:func:`_merge`), a folder ``labels/train/img_001.txt``, or a file
        (or a link to a file, there or not yet) where the output has the folder ``labels``,
        failed the run with the files merged before it already in place: the new summary
        beside the earlier labels. A link to a folder where the output has a file is
        :func:`~gt_toolkit.storage.files.check_links`'s.
        """
        top = str(self._parent)
        folders: set[str] = set()
        for folder in {os.path.dirname(location) for location in written}:  # noqa: PTH120
            while folder not in folders and folder != top and len(folder) > len(top):
                folders.add(folder)
                folder = os.path.dirname(folder)  # noqa: PTH120
        for folder in sorted(folders):
            if os.path.isdir(folder) or not os.path.lexists(folder):  # noqa: PTH112
                continue
            spelt = self._spelt(folder)
            if os.path.islink(folder):  # noqa: PTH114
                leads = link_target(spelt)  # a loop, or one into a missing folder, says so
                # one to a file not there yet is no folder either: the files under it could
                # only be moved in by making a folder where the link leads, as no shell does
                what = "a file" if os.path.lexists(leads) else "which does not exist"
                raise StorageError(
                    f"{spelt} is a link to {leads}, {what}; the output has a folder of that name"
                )
            raise StorageError(f"{spelt} is a file; the output has a folder of that name")
        for location in written:
            if os.path.isdir(location) and not os.path.islink(location):  # noqa: PTH112, PTH114
                spelt = self._spelt(location)
                raise StorageError(f"{spelt} is a folder; the output has a file of that name")

    def _spelt(self, location: str) -> str:
        """An output file's name as the user spells the output (``yolo/labels/a.txt``)."""
        rel = _relative(location, str(_absolute(self.out)))
        if location == str(_absolute(self.out)):
            return self.out
        return join_location(self.out, rel) if rel else location

    def _last_file(self, stage: Path) -> Path | None:
        """The staged file that says the output is complete (relative), to move in last.

        A file output itself (``x.json`` names the images beside it, though it was opened
        first), else the file staged last (converters write ``data.yaml`` or
        ``channels.json`` last), where its folder exists already: a new folder arrives
        whole, in one rename. ``None``: nothing to hold back.
        """
        own = Path(_absolute(self.out).name)
        if (stage / own).is_file():
            return own
        last = self._last
        if last is None or not (self._parent / last).parent.is_dir():
            return None
        return last if (stage / last).is_file() else None  # an unwritten one is no file

    def _relist(self, written: set[str]) -> None:
        """Remove what the previous run listed and this one did not write; list this run's files.

        ``written`` holds the final locations of every file this run wrote. The new list is
        written last, naming also the files that could not be removed, so a later run tries
        again.
        """
        final = self.out.rstrip("/") if self._s3 else str(_absolute(self.out))
        file_output = final in written  # then: what it writes in folders beside it
        listing = listing_of(final, file_output=file_output)
        root = final.rsplit("/", 1)[0] if file_output else final
        folders = frozenset(self._beside) if file_output else None
        new = {rel for loc in written if (rel := _relative(loc, root)) and _owned(rel, folders)}
        listed = self._read_listing(listing, folders)
        others = {kind: files for kind, files in (listed or {}).items() if kind != self.kind}
        stale = set((listed or {}).get(self.kind, ())) - new
        stale -= {rel for rel in stale if self._reads(join_location(root, rel))}
        shared = self._named_beside(root, listing) if stale else set()
        if shared is not None:  # and what the other kinds of run here wrote stays theirs
            shared.update(name for files in others.values() for name in files)
        kept = stale if shared is None else self._remove(root, sorted(stale - shared))
        runs = others | ({self.kind: sorted(new | kept)} if new or kept else {})
        try:
            if runs:
                doc = {"about": _ABOUT, "runs": dict(sorted(runs.items()))}
                write_json(listing, doc, store=self.store)
            elif listed is not None:
                remove_file(listing, store=self.store)
        except StorageError as exc:  # the output is in place: only a later rerun loses
            _warn(listing, f"{exc}; a later run into this output will not remove these files")

    def read(self, location: str) -> None:
        """Note one more file the run reads (see ``reads``): a record's image, by its name.

        Only one beside the output can be stale: the others are not kept (a million records).
        """
        # once per record: a prefix test, no path made for an S3 image of a local output
        # (0.2 us a record; a local name costs no more while it needs no normalising,
        # where an abspath of every one took 7.8 us)
        if self._s3:
            if location.startswith(self._read_under):
                self._read.add(location)
        elif not location.startswith("s3://"):  # is_s3_uri, whose isinstance a str needs not
            canonical = _plain_absolute(location, self._cwd)
            if canonical.startswith(self._read_under):
                self._read.add(canonical)

    def _reads(self, location: str) -> bool:
        """Whether the run reads ``location``: a record's image, or in ``reads`` by any name.

        Asked of every stale file, so each folder is compared with ``reads`` once (a path
        takes most of a millisecond: 100,000 stale images would take minutes) and the file
        itself by its inode.
        """
        if _canonical(location) in self._read:
            return True
        folder = location.rpartition("/")[0]
        if folder not in self._read_folders:
            self._read_folders[folder] = any(inside_location(folder, r) for r in self.reads)
        if self._read_folders[folder]:
            return True
        if self._s3:
            return location in self.reads
        with contextlib.suppress(OSError):
            found = Path(location).stat()
            return (found.st_dev, found.st_ino) in self._read_inodes
        return False

    @functools.cached_property
    def _read_inodes(self) -> set[tuple[int, int]]:
        """The device and inode of each local file or folder in ``reads`` that exists."""
        inodes = set()
        for location in self.reads:
            with contextlib.suppress(OSError, ValueError):
                found = Path(location).stat()
                inodes.add((found.st_dev, found.st_ino))
        return inodes

    def _read_listing(
        self, listing: str, folders: frozenset[str] | None
    ) -> dict[str, list[str]] | None:
        """The files each kind of run listed (``None``: no list; unreadable: warned, none).

        A path that reaches outside the output (``..``, absolute, another folder beside a
        file output) is never followed: the list may be hand-edited or foreign.
        """
        try:
            exists = self.store.exists(listing) if self._s3 else os.path.lexists(listing)
            if not exists:
                return None
            runs = self._listed(listing)
        except _UNREADABLE as exc:
            _warn(listing, f"cannot read it ({exc}); none of the files it lists was removed")
            return {}
        owned = {
            kind: [rel for rel in files if _owned(rel, folders)] for kind, files in runs.items()
        }
        outside = sum(map(len, runs.values())) - sum(map(len, owned.values()))
        if outside:
            _warn(listing, f"{outside} listed paths outside the output ignored")
        return owned

    def _listed(self, listing: str) -> dict[str, list[str]]:
        """The paths a list names, by kind of run (raises one of :data:`_UNREADABLE`)."""
        runs = orjson.loads(read_bytes(listing, store=self.store))["runs"]
        if not isinstance(runs, dict) or not all(isinstance(f, list) for f in runs.values()):
            raise TypeError("'runs' is not an object of lists")
        return {
            str(kind): [rel for rel in files if isinstance(rel, str)]
            for kind, files in runs.items()
        }

    def _named_beside(self, root: str, listing: str) -> set[str] | None:
        """The files the other lists in ``root`` name: those stay (``None``: cannot tell).

        ``coco -o a.json`` and ``coco -o b.json`` in one folder share ``images/``: an image
        both wrote is b's as much as a's. A list that cannot be read names nothing.
        """
        try:
            if self._s3:
                found = list(self.store.iter_in_folder(join_location(root, ".")))
            else:
                found = [str(p) for p in Path(root).glob(f"*{LISTING}")]
        except StorageError as exc:
            _warn(root, f"cannot look for other lists ({exc}); no earlier file was removed")
            return None
        named: set[str] = set()
        for other in found:
            if other != listing and other.endswith(LISTING):
                with contextlib.suppress(*_UNREADABLE):
                    named.update(name for files in self._listed(other).values() for name in files)
        return named

    def _remove(self, root: str, stale: list[str]) -> set[str]:
        """Delete ``stale`` (relative to ``root``); return those that are still there."""
        if not stale:
            return set()
        kept: set[str] = set()
        why = ""
        if self._s3:
            try:
                self.store.delete_objects(join_location(root, rel) for rel in stale)
            except StorageError as exc:
                kept, why = set(stale), str(exc)
        else:
            names = _FolderNames()
            # a name that is not the one on disk is no file of the earlier run's: on a
            # case-insensitive disk the stale IMG_1.txt is this run's img_1.txt
            kept = {
                rel
                for rel in stale
                if names.has(Path(root) / rel) and not _remove_file(Path(root), rel)
            }
            why = f"such as {min(kept, default='')}"
        if kept:
            _warn(root, f"{len(kept)} files an earlier run wrote could not be removed ({why})")
        return kept

    def abort(self) -> None:
        """Delete everything this run wrote."""
        if self._stage is not None:
            shutil.rmtree(self._stage, ignore_errors=True)
            self._stage = None
        if self._s3_stage is not None:
            self._s3_stage.abort()

    def __enter__(self) -> StagedOutput:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.commit()
            else:
                self.abort()
        except BaseException as failed:  # a Ctrl-C in the commit too
            self._along.__exit__(type(failed), failed, failed.__traceback__)
            raise
        self._along.__exit__(exc_type, exc, tb)  # the earlier files elsewhere: back, or gone
        if exc_type is None:
            self._write_after()

    def _write_after(self) -> None:
        """Write the files :meth:`write_along` holds for after the commit, the output in place.

        One that fails leaves none at its name: the earlier run's, put back there, described
        an output that is gone (the run fails; the output, in place, stays). An earlier S3
        object that cannot be removed either (the fault that failed the put) is named.
        """
        for location, data in self._after:  # after the output, as its last file
            try:
                write_bytes(location, data, store=self.store)
            except BaseException:
                try:  # an earlier S3 object stays in place until removed
                    remove_file(location, store=self.store)
                except StorageError as exc:
                    _warn(
                        location,
                        f"the earlier run's file could not be removed ({exc}); it does not "
                        "describe this output",
                    )
                raise


class _S3Stage:
    """An S3 output's hidden part prefix: the run writes there, and a commit copies into place.

    Objects written straight at their final keys replace an earlier run's as the run goes, and
    a failed run could only delete them, leaving that output with holes; staged, a failed run
    deletes only its own prefix. The prefix is ``.<name>.<host>.<pid>.<token>.part/`` beside
    the output, named as a local part folder, and holds the keys relative to the output's
    folder: so the folders beside a file output (``images/``) fit in, and a trainer that reads
    everything under the output prefix never sees a staged object.
    """

    def __init__(self, out: str, store: S3Store) -> None:
        text = out.rstrip("/")
        in_bucket = "/" in text.removeprefix("s3://")  # else the output is the whole bucket
        self.root, self.name = text.rsplit("/", 1) if in_bucket else (text, "out")
        self.out = text
        self.store = store
        self.prefix: str | None = None  # made on the first write
        self.written: dict[str, str] = {}  # final -> staged, in the order the run staged them

    def staged(self, location: str, *, first: bool = False) -> str:
        """The staged key for the final ``location`` (``first``: copied before the others)."""
        rel = _relative(location, self.root)
        if not rel:
            raise StorageError(f"{location} is outside the output folder {self.root}")
        if self.prefix is None:
            self.prefix = join_location(self.root, part_name(f".{self.name}"))
        self.written.pop(location, None)  # written again: it lands where its last write did
        self.written[location] = staged = f"{self.prefix}/{rel}"
        if first:  # the last one staged is copied last: it says the output is complete
            self.written = {location: staged} | self.written
        return staged

    def commit(self) -> set[str]:
        """Copy the staged objects to their final keys, delete them; return the final keys.

        Then sweep the folder's stale part prefixes, by the time S3 gave this run's objects.
        """
        if self.prefix is None:
            return set()
        try:
            staged = self._staged_objects()
            moves = self._moves(staged)
            self._copy(moves)
        finally:
            self.abort()
        if clock := max((obj.modified for obj in staged.values() if obj.modified), default=None):
            _sweep_parts(self.store, self.root, self.name, clock)
        return {dst for _, dst, _ in moves}

    def _staged_objects(self) -> dict[str, S3Object]:
        """The objects under the part prefix, by URI."""
        try:
            return {
                obj.uri: obj for obj in self.store.iter_objects(f"{self.prefix}/", extensions=None)
            }
        except NoMatchingObjectsError:
            return {}

    def _moves(self, staged: dict[str, S3Object]) -> list[tuple[str, str, int]]:
        """Staged key, final key and size of each object staged, in the order of staging.

        A file output itself goes last, though: it says the output is complete, as
        ``data.yaml`` does.

        Listed, not assumed: the sizes tell which copies need parts (over 5 GiB), and a staged
        object deleted under the run fails it before anything is copied: committed without
        it, the output would lack that file, and the earlier run's would go as stale.
        """
        sizes = {uri: obj.size for uri, obj in staged.items()}
        gone = [src for src in self.written.values() if src not in sizes]
        if gone:
            raise StorageError(
                f"{len(gone)} of {len(self.written)} staged objects are gone (such as "
                f"{gone[0]}): deleted while the run went on; nothing was copied into place"
            )
        # x.json names the images beside it, though it was opened first; sorted() is
        # stable: the others keep the order the run staged them
        moves = sorted(self.written.items(), key=lambda item: item[0] == self.out)
        return [(src, dst, sizes[src]) for dst, src in moves]

    def _copy(self, moves: list[tuple[str, str, int]]) -> None:
        """Copy in parallel, but the last move only once all the others are in place.

        It is the file that says the output is complete (:meth:`_moves`). A copy that fails
        fails the run; the copies already made stay (taking them back would delete the earlier
        run's objects at those keys).
        """
        with ThreadPoolExecutor(_COPY_WORKERS, thread_name_prefix="gt-commit") as pool:
            futures = [pool.submit(self.store.copy, s, d, size=n) for s, d, n in moves[:-1]]
        failed = [exc for future in futures if (exc := future.exception()) is not None]
        done = len(futures) - len(failed)
        for src, dst, size in moves[-1:] if not failed else ():
            try:
                self.store.copy(src, dst, size=size)
                done += 1
            except StorageError as exc:
                failed.append(exc)
        if failed:
            raise StorageError(
                f"cannot copy {len(failed)} of {len(moves)} files into place ({failed[0]}); "
                f"the copies already made ({done}) stay: rerun to finish"
            ) from failed[0]

    def abort(self) -> None:
        """Delete the staged objects (if that fails, a run beside it a day later does)."""
        if self.prefix is None:
            return
        try:
            self.store.delete_objects(self.written.values())  # a key never written: no error
        except StorageError as exc:
            _warn(self.prefix, f"cannot delete these staged objects ({exc})")
        self.prefix = None
        self.written.clear()


def _sweep_parts(store: S3Store, root: str, name: str, now: datetime) -> None:
    """Delete the part prefixes of output ``name`` in ``root`` that no run wrote to for a day.

    Only this output's (``.<name>.<host>.<pid>.<token>.part``): a folder of the user's
    named like a part prefix of no output here (``.backup.2024.<16 hex>.part``) stays.

    A run killed mid-way (``kill -9``, a Lambda timeout) cannot delete its part prefix.
    Locally a dead process id tells its folder; S3 runs may be on any machine, so the age of
    the newest object there tells instead (:data:`_STALE_PART_AGE`; a live run writes more
    often). ``now`` is S3's time too (a machine's clock days ahead swept live runs' prefixes).
    Like the local sweep, a failure is no error.
    """
    try:
        for folder in store.iter_folders_in_folder(join_location(root, ".")):
            base = folder.rstrip("/").rpartition("/")[2]
            if not (base.startswith(f".{name}.") and is_part_name(base)):
                continue
            try:
                objects = list(store.iter_objects(folder, extensions=None))
            except NoMatchingObjectsError:  # deleted meanwhile
                continue
            if all(obj.modified and now - obj.modified > _STALE_PART_AGE for obj in objects):
                store.delete_objects(obj.uri for obj in objects)
    except StorageError as exc:
        logger.debug("cannot sweep %s for stale part prefixes: %s", root, exc)


def _merge_all(pairs: list[tuple[Path, Path]], links: set[Path]) -> None:
    """Merge each ``src`` into its ``dst`` (:func:`_merge`), every copy across disks first.

    A folder merged into one on another disk is copied whole into a part folder inside it
    (:func:`_bring_near`), and only once every such copy is whole does anything move in, by
    renames: merged file by file across disks, a Ctrl-C in the copies (minutes, with
    images) left some files new and the others the earlier run's; and copied folder by
    folder as the merge met them, ``ds/Annotations`` was renamed into place before
    ``ds/JPEGImages``, a link to another disk, was copied there, so a Ctrl-C in that copy
    left the new annotations beside the earlier images. Renames leave that only between two
    of them. The copies go when the merge ends, whole or not. ``links``: the places that are
    links (:func:`~gt_toolkit.storage.files.check_links` found them).
    """
    moved: dict[Path, Path] = {}
    near: list[Path] = []
    try:
        for src, dst in pairs:
            _bring_near(src, dst, links, moved, near)
        for src, dst in pairs:
            _merge(src, dst, moved)
    finally:
        for copy in near:  # a folder, or a file's copy (gone once renamed into place)
            if copy.is_dir() and not copy.is_symlink():
                shutil.rmtree(copy, ignore_errors=True)
            else:
                copy.unlink(missing_ok=True)


def _bring_near(
    src: Path,
    dst: Path,
    links: set[Path],
    moved: dict[Path, Path],
    near: list[Path],
    *,
    inside: bool = False,
) -> None:
    """Copy each folder under ``src`` whose place ``dst`` is on another disk to that disk.

    The copy goes to a part folder inside ``dst`` (:func:`make_part_folder`: one a killed
    run leaves is swept by the next run there, and added to ``near``); ``moved`` then says
    which copy stands for the staged folder. The folders it fills there are swept first: no
    atomic write of the run goes into them (the stage is beside the link), and what a
    killed run's copies left there stayed for good. The copy's own folders are looked at in
    turn: one may be a link to yet another disk. A file ``inside`` a folder on the disk of
    its place is asked about only when its place is one of the ``links``.
    """
    if not src.is_dir():
        if not inside or dst in links:
            _bring_file_near(src, dst, moved, near)
        return
    if not dst.is_dir():  # a folder moved in by one rename
        return
    if _device(src) != _device(dst):
        for top, _dirs, _files in os.walk(src):
            sweep_parts(dst / Path(top).relative_to(src))  # one not there yet: nothing to sweep
        part = make_part_folder(dst, src.name)
        near.append(part)
        copy = part / src.name
        shutil.copytree(src, copy, symlinks=True)
        moved[src] = src = copy
    for child in src.iterdir():
        _bring_near(child, dst / child.name, links, moved, near, inside=True)


def _bring_file_near(src: Path, dst: Path, moved: dict[Path, Path], near: list[Path]) -> None:
    """Copy the staged file ``src`` beside the file its place ``dst`` leads to, on its disk.

    A label linked into a shared folder on another disk was copied there as the merge met
    it, between the renames of the others: a Ctrl-C among many such copies left some of
    them new and the others the earlier run's. A place on the stage's disk, or one whose
    folder the run makes, is left to the merge (one rename).
    """
    where = Path(link_target(dst)) if dst.is_symlink() else dst
    folder = where.parent
    if not folder.is_dir() or _device(src) == _device(folder):
        return
    sweep_parts(folder)  # a killed run's copies there: no atomic write goes into it
    copy = folder / part_name(f".{where.name}")
    near.append(copy)
    shutil.copy2(src, copy)
    moved[src] = copy


def _merge(src: Path, dst: Path, moved: dict[Path, Path]) -> None:
    """Move ``src`` to ``dst``; folders that already exist are merged file by file.

    A ``dst`` that is a symbolic link to a file (``-o prior.manifest`` pointed at a shared
    file) is written where it leads, as every atomic write is
    (:func:`~gt_toolkit.storage.files.atomic_output`): the file moves beside that file
    first (a copy, from another disk) and is renamed onto it; the link stays. So does a
    ``dst`` on another disk than the stage (``-o ds``, a link to a folder on another disk:
    the stage is made beside the link; a rename across disks failed the run, ``Invalid
    cross-device link``): a folder merged there is the copy ``moved`` names
    (:func:`_merge_all`).
    """
    copy = moved.get(src)
    if copy is not None and src.is_file():  # copied beside the file dst is, or leads to
        copy.replace(Path(link_target(dst)) if dst.is_symlink() else dst)
        src.unlink()
        return
    if copy is not None:  # the staged folder was copied to dst's disk: the copy moves in
        _merge(copy, dst, moved)
        shutil.rmtree(src)
        return
    if src.is_dir() and dst.is_dir():
        for child in src.iterdir():
            _merge(child, dst / child.name, moved)
        src.rmdir()
        return
    if dst.is_dir():
        raise IsADirectoryError(f"{dst} is a folder; the output has a file of that name")
    if dst.is_symlink():
        # one that cannot lead to a file was refused before anything moved; one to a file not
        # there yet creates it
        _move_beside(src, Path(link_target(dst)))
        return
    try:
        src.replace(dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _move_beside(src, dst)


def _device(path: Path) -> int:
    """The disk a folder is on (its links followed)."""
    return path.stat().st_dev


def _move_beside(src: Path, dst: Path) -> None:
    """Move ``src`` (a file or a folder) to ``dst`` by way of a temporary name beside ``dst``.

    Across disks a move is a copy: made under a part name (:func:`part_name`) and renamed
    onto ``dst`` whole. A copy a killed run left in ``dst``'s folder is swept first: no
    atomic write sweeps the folders under an output on another disk (``-o ds``, a link
    there), and a rerun's copies into ``labels/train`` left the killed run's there for good.
    """
    sweep_parts(dst.parent)
    near = dst.parent / part_name(f".{dst.name}")
    try:
        shutil.move(src, near)
        near.replace(dst)
    except BaseException:
        if near.is_dir() and not near.is_symlink():
            shutil.rmtree(near, ignore_errors=True)
        else:
            near.unlink(missing_ok=True)
        raise


def _absolute(location: str) -> Path:
    """A local location made absolute, ``..`` taken off as a shell's ``cd`` does.

    ``-o ..`` is the folder above: kept as ``/cwd/..``, its parent was the working folder,
    where the run wrote its files straight, neither staged nor listed.
    """
    return Path(os.path.abspath(location))  # noqa: PTH100 - resolve() follows a symlinked -o


def _plain_absolute(location: str, cwd: str) -> str:
    """:func:`_absolute`'s text, without its normalising where there is none to do."""
    if location.startswith(".") or location.endswith("/") or "//" in location or "/." in location:
        return str(_absolute(location))  # ./x, a/, a//b, a/../b, a/./b, a/.hidden: the full way
    return location if location.startswith("/") else f"{cwd}/{location}"


def _canonical(location: str) -> str:
    """One spelling of a location: an S3 URI as it is, a local path absolute."""
    return location if is_s3_uri(location) else str(_absolute(location))


def _files_under(folder: Path) -> Iterator[str]:
    """The files (anything but a folder) under ``folder``, relative to it."""
    for top, _dirs, files in os.walk(folder):
        for name in files:
            yield Path(top, name).relative_to(folder).as_posix()


def _relative(location: str, root: str) -> str:
    """``location`` relative to ``root`` as a POSIX path, or ``""`` when it is not under it."""
    return location[len(root) + 1 :] if location.startswith(f"{root}/") else ""


def _owned(rel: str, folders: frozenset[str] | None) -> bool:
    """Whether ``rel`` names a file of the output: plainly inside it, and not its list.

    ``folders`` are a file output's folders beside it (``None``: a folder output, all of it).
    No file's name holds a NUL: such a path raised out of the commit, after the output was in
    place, at every later run.
    """
    parts = rel.split("/")
    if "\0" in rel or PurePosixPath(rel).is_absolute() or any(p in ("", ".", "..") for p in parts):
        return False
    if folders is None:
        return rel != LISTING
    return len(parts) > 1 and parts[0] in folders


class _FolderNames:
    """Whether a path's name is spelled as its folder lists it (one listing per folder)."""

    def __init__(self) -> None:
        self._names: dict[Path, frozenset[str]] = {}

    def has(self, path: Path) -> bool:
        """``False`` when the folder lists no entry of exactly that name (or cannot be read)."""
        folder = path.parent
        if folder not in self._names:
            try:
                self._names[folder] = frozenset(entry.name for entry in folder.iterdir())
            except OSError:  # gone, not a folder: nothing of that name to remove
                self._names[folder] = frozenset()
        return path.name in self._names[folder]


def _remove_file(root: Path, rel: str) -> bool:
    """Delete ``root/rel`` and the folders it leaves empty; ``False``: it could not be.

    A folder there now (the user's) is left alone, and so is a path that a symlinked folder
    leads outside ``root``.
    """
    path = root / rel
    try:
        real, top = Path(os.path.realpath(path.parent)), Path(os.path.realpath(root))
        if not real.is_relative_to(top):  # not resolve(): a loop raised RuntimeError
            return True
        if path.is_dir() and not path.is_symlink():
            return True
        path.unlink()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    folder = path.parent
    while folder != root:
        try:
            folder.rmdir()
        except OSError:  # not empty: other files are there
            break
        folder = folder.parent
    return True


def _warn(where: str, problem: str) -> None:
    """One line on stderr (by default): the run goes on."""
    logger.warning("warning: %s: %s", where, problem)
