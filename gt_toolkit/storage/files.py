"""Local-or-S3 edges: stream lines in, write outputs atomically.

A *location* is a local path or an ``s3://`` URI; every reader and writer in the toolkit takes
either. Local writes go to a temporary file in the same folder and are renamed into place;
S3 writes are staged in a local temporary file and uploaded only once complete, so a crash
never leaves half a manifest behind.

A process killed in the middle of a write (``kill -9``, out of memory) cannot remove its
temporary file. Each one is named after the host and process that write it
(``.<name>.<host>.<pid>.<token>.part``), and the first write of a later run into the same
folder removes this host's whose process no longer runs (another machine's, in a shared
folder, are left alone); staging folders of whole trees (:func:`make_part_folder`) are named
and swept the same way, and S3 staging files live in one per-user folder under the system temp
folder, swept likewise.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import itertools
import os
import re
import secrets
import shutil
import socket
import stat
import tempfile
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson

from gt_toolkit.errors import StorageError
from gt_toolkit.storage.s3 import S3Store, is_s3_uri

__all__ = [
    "AllOrNone",
    "LineWriter",
    "ListedFolder",
    "Location",
    "atomic_output",
    "check_links",
    "check_writable",
    "folded",
    "inside_location",
    "is_part_name",
    "iter_chunks",
    "iter_line_batches",
    "iter_raw_lines",
    "join_location",
    "json_bytes",
    "link_target",
    "make_part_folder",
    "part_name",
    "read_bytes",
    "remove_file",
    "same_location",
    "sweep_parts",
    "write_bytes",
    "write_json",
    "write_lines",
]

Location = str | os.PathLike[str]
_CHUNK = 1 << 20
_BATCH = 4096
# The end of every temporary name this module makes: ".<host>.<pid>.<token>.part".
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0])[:63] or "host"
_PART_RE = re.compile(rf"\.{re.escape(_HOST)}\.(\d+)\.[0-9a-f]{{16}}\.part\Z")
_ANY_PART_RE = re.compile(r"\.[A-Za-z0-9-]{1,63}\.\d+\.[0-9a-f]{16}\.part\Z")
_swept: set[str] = set()
# folders remembered as swept at most: runs stage into folders of new names, and a
# long-lived process (a notebook, a warm Lambda) kept every one
_SWEPT_HELD = 1024
_swept_lock = threading.Lock()


class ListedFolder(NamedTuple):
    """A folder a run lists, and the name endings of the files it reads there (empty: all).

    A file put inside it becomes one more source of the next run only when the listing would
    keep it: a run may write its other files there (``x.json.rejects.jsonl`` in a CVAT folder).
    """

    location: str
    extensions: tuple[str, ...] = ()

    def lists(self, location: str) -> bool:
        """Whether the listing keeps a file named so (any case, as every listing compares)."""
        endings = tuple(e.lower() for e in self.extensions)
        return not endings or location.lower().endswith(endings)


def _store(store: S3Store | None) -> S3Store:
    return store if store is not None else S3Store()


def folded(name: str) -> str:
    """The form in which two names are one file on a case-insensitive disk (APFS, NTFS).

    Such disks compare letter by letter by simple case mapping, not by ``casefold()``,
    which also makes ``ss`` of ``ß`` (``Straße`` and ``Strasse`` are two files there) and
    ``fi`` of ``ﬁ``: each character is taken to its single-character upper then lower case,
    where it has one (``Σ``, ``σ`` and ``ς`` are one letter; ``İ``, whose lower case is
    two characters, stays itself). NFC first: APFS takes a name's composed and decomposed
    spellings (``é``, ``e`` + U+0301) as one file too.
    """
    if name.isascii():  # already NFC: most names, once per image
        return name.lower()
    text = unicodedata.normalize("NFC", name)
    if text.isascii():
        return text.lower()
    out = []
    for char in text:
        upper = char.upper()
        char = upper if len(upper) == 1 else char
        lower = char.lower()
        out.append(lower if len(lower) == 1 else char)
    return "".join(out)


def join_location(base: Location, *parts: str) -> str:
    """Join path parts onto a local folder or an ``s3://`` prefix."""
    text = os.fspath(base)
    if is_s3_uri(text):
        return "/".join([text.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(text, *parts))


def same_location(a: str, b: str) -> bool:
    """One file by two names: same S3 URI, same real path, or one inode (a hard link)."""
    if is_s3_uri(a) or is_s3_uri(b):
        return a == b
    if _real(a) == _real(b):
        return True
    try:
        return Path(a).samefile(b)
    except OSError:  # one of them does not exist (yet): no inode to share
        return False


def _real(location: str) -> Path:
    """``location``'s real path, its links followed as far as they lead.

    ``Path.resolve()`` raised ``RuntimeError`` (a traceback, not a refusal) for a link in a
    loop; ``realpath`` leaves a loop as it is, for the write to refuse in one line.
    """
    return Path(os.path.realpath(location))


def inside_location(location: str, folder: str) -> bool:
    """``location`` is ``folder`` or under it: by S3 prefix, else by each real parent folder.

    On S3 ``s3://b/jobs`` holds ``s3://b/jobs/x``, not ``s3://b/jobs2/x``. Locally every
    folder above the real path is compared with the folder, by path and then by inode, so a
    symlink, a bind mount or a case-insensitive disk does not hide it.
    """
    if is_s3_uri(location) or is_s3_uri(folder):
        prefix = folder.rstrip("/")
        return location.rstrip("/") == prefix or location.startswith(prefix + "/")
    here = _real(location)
    return any(same_location(str(p), folder) for p in (here, *here.parents))


def iter_chunks(location: Location, *, store: S3Store | None = None) -> Iterator[bytes]:
    """Stream the bytes of a local file or S3 object in 1 MiB chunks."""
    text = os.fspath(location)
    if is_s3_uri(text):
        yield from _store(store).iter_chunks(text)
        return
    try:
        fh = Path(text).open("rb")  # noqa: SIM115 - closed in finally, generator-friendly
    except OSError as exc:
        raise StorageError(f"cannot read {text}: {exc.strerror or exc}") from exc
    try:
        while chunk := fh.read(_CHUNK):
            yield chunk
    finally:
        fh.close()


def iter_line_batches(location: Location, *, store: S3Store | None = None) -> Iterator[list[bytes]]:
    r"""Stream a file's lines in batches (one per 1 MiB chunk), split on ``\n``.

    Lines come without their newline and without a trailing ``\r`` (CRLF files); a final
    line without a newline is still yielded. Splitting a whole chunk at once in C is what
    keeps per-line overhead low; memory is bounded by the chunk and the longest line.
    Chunks of a line that spans many are joined once, when the line ends: adding each chunk
    to the text so far copied a 300 MB line 300 times (a minute, where this takes a second).
    """
    pending: list[bytes] = []
    for chunk in iter_chunks(location, store=store):
        if b"\n" not in chunk:
            pending.append(chunk)
            continue
        if pending:
            pending.append(chunk)
            data = b"".join(pending)
        else:
            data = chunk
        parts = data.split(b"\n")
        tail = parts.pop()
        pending = [tail] if tail else []
        if b"\r" in data:
            parts = [p[:-1] if p.endswith(b"\r") else p for p in parts]
        yield parts
    if pending:
        last = b"".join(pending)
        yield [last[:-1] if last.endswith(b"\r") else last]


def iter_raw_lines(location: Location, *, store: S3Store | None = None) -> Iterator[bytes]:
    r"""Stream a file's lines as raw bytes (see :func:`iter_line_batches`)."""
    return itertools.chain.from_iterable(iter_line_batches(location, store=store))


def read_bytes(location: Location, *, store: S3Store | None = None) -> bytes:
    """Read a whole (small) file or object."""
    return b"".join(iter_chunks(location, store=store))


@contextlib.contextmanager
def atomic_output(
    location: Location, *, store: S3Store | None = None, durable: bool = True
) -> Iterator[IO[bytes]]:
    """Open a binary file for writing that appears at ``location`` only if the block succeeds.

    Local: a temporary file beside the target, ``fsync``-ed and renamed over it; it gets the
    permissions ``open()`` would give (the process umask applies, and is never changed).
    A target that is a symbolic link is written where the link leads (:func:`link_target`):
    the temporary file is made beside the file the link names and renamed onto it, and the
    link stays (renamed over, the link became a plain file and its target never changed).
    ``durable=False`` skips the ``fsync`` (the rename still makes the file appear whole): for
    thousands of small, regenerable files, where one ``fsync`` each dominates the run.
    S3: a private local staging file uploaded when the block ends without an exception.
    """
    text = os.fspath(location)
    if is_s3_uri(text):
        fd, tmp_path = _new_part(_staging_folder(), "upload", mode=0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
            _store(store).upload_file(tmp_path, text)
        finally:
            tmp_path.unlink(missing_ok=True)
        return
    target, text = _followed(text)
    _check_target(target, text)
    made: list[Path] = []
    try:
        made = _make_folders(target.parent)
        fd, tmp_path = _new_part(target.parent, f".{target.name}", mode=0o666)
    except OSError as exc:
        _remove_empty(made)
        raise _cannot_write(text, exc) from exc
    fh = _Output(io.FileIO(fd, "wb"), text)
    try:
        yield fh
        try:
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        except OSError as exc:  # a full disk shows here, if not in the caller's writes
            raise _cannot_write(text, exc) from exc
        fh.close()
        try:
            tmp_path.replace(target)
        except OSError as exc:  # the target became a folder meanwhile
            raise _cannot_write(text, exc) from exc
    except BaseException:
        # closing writes what is still buffered: on a full disk that fails again, and its
        # bare OSError (no file named) took the place of the error that said which file
        with contextlib.suppress(OSError):
            fh.close()
        tmp_path.unlink(missing_ok=True)
        _remove_empty(made)
        raise


def link_target(location: Location) -> str:
    """Where a write to ``location`` lands: the file a local symbolic link leads to, else itself.

    A user who points ``--summary latest.json`` at a shared file means that file to change;
    a rename over the link replaced the link with a plain file and left the shared one as it
    was. Links to links are followed to the end. A link to a file that does not exist yet,
    in a folder that does, leads to that file: the write creates it, as a shell's ``>`` and
    ``open(O_CREAT)`` do (a run killed while it replaced the file leaves such a link, and
    refused, every later run failed). ``s3://`` locations, and local names that are no link,
    come back unchanged (not made absolute: messages keep the user's spelling).

    Raises:
        StorageError: the link cannot lead to a file: it goes round a loop, the folder of
            the file it names is missing, it names a folder (``newdir/``), or a folder on
            its way cannot be looked into (not a folder, no permission).
    """
    text = os.fspath(location)
    return text if is_s3_uri(text) else str(_followed(text)[0])


def _followed(text: str) -> tuple[Path, str]:
    """The path a local write to ``text`` replaces, and the name its messages give it.

    A link's messages name both: ``latest.json (a link to /shared/run.json)``.
    """
    # is_symlink() raises for a name too long to look up; islink() says False, and the write
    # then says why
    if not os.path.islink(text):  # noqa: PTH114
        return Path(text), text
    try:
        real = os.path.realpath(text, strict=True)
    except OSError as exc:
        try:
            leads = os.readlink(text)  # noqa: PTH115 - as the link says it, a final "/" too
        except OSError:  # pragma: no cover - removed meanwhile
            leads = "?"
        if exc.errno == errno.ELOOP:
            why = "a loop of links"
        elif exc.errno == errno.ENOENT:
            real = os.path.realpath(text)  # followed as far as the links lead
            folder = os.path.dirname(real)  # noqa: PTH120
            # the folder as the last link spells it, asked of the kernel: realpath() takes
            # "missing/.." away unasked (a link to ../missing/../shared/new.txt made
            # shared/new.txt, the link leading nowhere still)
            spelt = os.path.dirname(_chain_end(text)) or os.curdir  # noqa: PTH120
            if _names_a_folder(text):
                why = "which names a folder, not a file"
            elif os.path.isdir(spelt) and os.path.isdir(folder):  # noqa: PTH112 - made there
                return Path(real), f"{text} (a link to {real})"
            elif not os.path.isdir(folder):  # noqa: PTH112
                why = f"whose folder {folder} does not exist"
            else:
                why = f"whose folder {spelt} does not exist"
        else:  # a file on the way, no permission to look: it may well exist
            why = f"which cannot be followed ({exc.strerror or exc})"
        raise StorageError(
            f"cannot write {text}: it is a link to {leads}, {why} (the link is followed, "
            "not replaced)"
        ) from exc
    if not os.path.isdir(real) and _names_a_folder(text):  # noqa: PTH112
        # ../shared/a.txt/ to a file that is there: realpath() drops the "/" and named the
        # file, which the write replaced, the link still failing "Not a directory"
        raise StorageError(
            f"cannot write {text}: it is a link to {os.readlink(text)}, which names a folder, "  # noqa: PTH115
            "not a file (the link is followed, not replaced)"
        )
    return Path(real), f"{text} (a link to {real})"


def _chain_end(text: str) -> str:
    """The name the last link of the chain at ``text`` gives, as it spells it (not resolved)."""
    end = text
    for path, leads in _chain(text):
        end = os.path.join(os.path.dirname(path), leads)  # noqa: PTH118, PTH120
    return end


def _names_a_folder(text: str) -> bool:
    """Whether a link of the chain at ``text`` names a folder (``newdir/``, ``x/.``).

    Followed by the kernel, such a link makes no file: ``open(O_CREAT)`` says "Is a
    directory"; ``realpath`` drops the ``/`` and named a file ``newdir``.
    """
    return any(os.path.basename(leads) in ("", ".", "..") for _, leads in _chain(text))  # noqa: PTH119


def _chain(text: str) -> Iterator[tuple[str, str]]:
    """Each link of the chain at ``text``: its name and what it says (``Path`` drops a "/")."""
    path = text
    for _ in range(40):  # the kernel's own bound; a loop was refused before
        try:
            leads = os.readlink(path)  # noqa: PTH115
        except OSError:  # no link (any more): the end of the chain
            return
        yield path, leads
        path = os.path.join(os.path.dirname(path), leads)  # noqa: PTH118, PTH120


_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""A write that fails for want of room: the disk, the user's quota, the file size limit."""


class _Output(io.BufferedWriter):
    """The file :func:`atomic_output` gives: a write that finds no room names the target.

    Without it the caller's write failed with a bare ``OSError: No space left on device``,
    the one line of which named no file (the run writes several). Only this file's writes
    are told so: a full temporary folder (a spill file in the block) stays its own error.
    """

    def __init__(self, raw: io.FileIO, target: str) -> None:
        super().__init__(raw)
        self._target = target

    def write(self, data: Any, /) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise _cannot_write(self._target, exc) from exc
            raise


def _make_folders(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, outermost first."""
    missing: list[Path] = []
    while not folder.is_dir() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    made: list[Path] = []
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another writer made it meanwhile
            path.mkdir()
            made.append(path)
    return made


def _remove_empty(made: list[Path]) -> None:
    """Remove the folders a failed write created, innermost first, if nothing else is there."""
    for path in reversed(made):
        with contextlib.suppress(OSError):  # not empty: another writer's file stays
            path.rmdir()


def _cannot_write(text: str, exc: OSError) -> StorageError:
    return StorageError(f"cannot write {text}: {exc.strerror or exc}")


def check_writable(location: Location, *, store: S3Store | None = None) -> None:
    """Refuse, before a run, a file it could only fail to write once its output is in place.

    The run's summary is written last; a path through a file, into a folder this user may
    not write, or a name too long (the file's, or a folder's the write makes) would
    otherwise fail after the output had replaced the earlier one. The nearest existing
    folder is asked by the write's own first step: its temporary file is made there and
    removed. An ``s3://`` object is asked by S3 itself (:meth:`S3Store.check_writable`: a
    missing bucket, a key this user may not write). Only the write itself can tell a full
    disk.

    A name that ends with ``/`` names a folder, not a file: ``--summary reports/`` wrote a
    file named ``reports``, and ``s3://b/reports/`` an object whose key ends with ``/``,
    which S3 consoles show as a folder and listings (this toolkit's too) leave out.

    A symbolic link is asked about the file it leads to (:func:`link_target`), as
    :func:`atomic_output` writes there: a link in a loop, to a file in a missing folder, or
    into a folder this user may not write, is refused here; one to a file not there yet, in
    a folder this user may write, is not (the write creates that file).

    Raises:
        StorageError: the target is a folder or a device, or its name ends with ``/``, a
            part of its path is not a folder, it is a link that cannot lead to a file, or the
            temporary file cannot be made; on S3,
            the bucket does not exist or the key may not be written.
    """
    text = os.fspath(location)
    if text.endswith(("/", os.sep)):
        raise StorageError(f"cannot write {text}: it names a folder (give a file name)")
    if is_s3_uri(text):
        _store(store).check_writable(text)
        return
    target, text = _followed(text)
    _check_target(target, text)
    folder, names = target.parent, [target.name]
    try:  # a name too long to look up (under a folder that exists) is an OSError here
        while not folder.is_dir():
            if folder.exists() or folder.is_symlink():  # a file, or a link to nowhere
                raise StorageError(f"cannot write {text}: {folder} is not a folder")
            names.append(folder.name)  # a folder the write makes
            folder = folder.parent
    except StorageError:  # an OSError too: wrapped again, it said "cannot write X:" twice
        raise
    except OSError as exc:
        raise _cannot_write(text, exc) from exc
    # the probe's own name is cut, and it is made in the nearest folder that exists: the
    # names of the folders the write makes on the way are checked here too
    if any(len(os.fsencode(name)) > _name_max(folder) for name in names):
        raise _cannot_write(text, OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG)))
    try:
        fd, probe = _new_part(folder, f".{target.name}", mode=0o600)
    except OSError as exc:  # no permission, a read-only disk, a name too long
        raise _cannot_write(text, exc) from exc
    os.close(fd)
    probe.unlink(missing_ok=True)


def check_links(
    locations: Iterable[str], *, reads: Callable[[str], bool], shown: Callable[[str], str] = str
) -> set[str]:
    """Refuse, before any of a run's files is written, one whose name is a link it cannot follow.

    A run that writes many files into a folder (a converter's dataset, a review) writes a
    name that is a symbolic link where the link leads, as :func:`atomic_output` does. Found
    only then, a link in a loop or into a missing folder failed the run with part of its files
    written; one that leads to another file the run writes (``img_001.txt -> img_002.txt``,
    as a tool that replaces duplicates with links leaves them) put both files' bytes in one,
    silently; one that leads to a file the run reads (``reads``: given a real path)
    overwrote that input. Each is refused here, in one line, as is a link to a folder, a
    device, or into a folder this user may not write (:func:`check_writable`).

    Args:
        locations: every local file the run is about to write, absolute or as given.
        reads: whether the run reads the file at this real path.
        shown: a location as the messages name it (the user's spelling).

    Returns:
        The ``locations`` that are links (the only ``lstat`` of each file the run makes).
    """
    # one lstat a file: a folder of 100,000 labels holds no link, mostly
    names = list(locations)
    links = sorted(location for location in names if os.path.islink(location))  # noqa: PTH114
    linked = set(links)
    if not links:
        return linked
    # a real path by its folder's, asked once a folder: realpath() of each of 100,000 names
    # (a lookup per folder on its way, twice) took 4 s for one link among them
    real_folder = functools.lru_cache(maxsize=4096)(os.path.realpath)
    # a link's folder, followed as the kernel follows it: realpath() leaves a loop on the way
    # as it is spelt (out/a -> a/../x made out/x, where the write fails "Too many levels")
    link_folder = functools.lru_cache(maxsize=4096)(_strict_real)
    reals = {
        _real_in(location, real_folder): location for location in names if location not in linked
    }
    probed: set[str] = set()
    landed: dict[str, str] = {}
    for location in links:
        spelt = shown(location)
        real = _link_end(location, link_folder)
        if real is None:  # a chain of links, one into a folder not there, ...: the whole way
            check_writable(spelt)
            real = link_target(spelt)
            said = f"{spelt} (a link to {real})"
        else:  # check_writable's questions, its probe once a folder
            said = f"{spelt} (a link to {real})"
            _check_target(Path(real), said)
            folder, name = os.path.split(real)
            if folder not in probed:
                try:
                    fd, probe = _new_part(Path(folder), f".{name}", mode=0o600)
                except OSError as exc:  # no permission, a read-only disk
                    raise _cannot_write(said, exc) from exc
                os.close(fd)
                probe.unlink(missing_ok=True)
                probed.add(folder)
        other = landed.get(real) or (shown(reals[real]) if real in reals else None)
        if other is not None:
            raise StorageError(
                f"cannot write {said}: the run writes {other} too, and one would replace "
                "the other (replace the link with a file of its own)"
            )
        if reads(real):  # a file not there yet: one the run would list in a folder it reads
            what = "that file" if os.path.lexists(real) else "the folder it would be made in"
            raise StorageError(f"cannot write {said}: the run reads {what}")
        landed[real] = spelt
    return linked


def _real_in(location: str, real_folder: Callable[[str], str]) -> str:
    """The real path of ``location``, no link itself, by its folder's (``real_folder``)."""
    folder, name = os.path.split(location)
    if name in ("", ".", ".."):
        return os.path.realpath(location)
    return os.path.join(real_folder(folder or os.curdir), name)  # noqa: PTH118


def _strict_real(folder: str) -> str | None:
    """The real path of ``folder`` as the kernel follows it; ``None``: it cannot be followed."""
    try:
        return os.path.realpath(folder, strict=True)
    except OSError:  # a loop, a missing part, no permission: the whole way says which
        return None


def _link_end(location: str, real_folder: Callable[[str], str | None]) -> str | None:
    """Where the link ``location`` leads, if quickly told; ``None``: ask :func:`link_target`.

    Told quickly: one link (no chain) to a file, there or not yet, in a folder that is,
    by a name the folder's disk takes.

    The folders' real paths come from ``real_folder`` (asked once a folder): the labels of a
    dataset linked into one shared folder cost a ``readlink`` and two ``lstat`` each.
    """
    try:
        leads = os.readlink(location)  # noqa: PTH115 - a final "/" kept
    except OSError:
        return None
    head, name = os.path.split(os.path.join(os.path.dirname(location), leads))  # noqa: PTH118, PTH120
    if name in ("", ".", ".."):
        return None
    folder = real_folder(head or os.curdir)
    if folder is None:  # a loop, a folder not there, ...: said the whole way
        return None
    real = os.path.join(folder, name)  # noqa: PTH118
    if len(os.fsencode(name)) > _name_max(Path(folder)):  # no file of it: said the whole way
        return None
    if not os.path.isdir(folder) or os.path.islink(real):  # noqa: PTH112, PTH114
        return None
    return real


def _check_target(target: Path, text: str) -> None:
    """Refuse a target the rename would break: a folder, or a device or pipe it would replace.

    ``-o some/folder`` or ``-o /dev/stdout`` fails in one line before the file is written,
    instead of a traceback from the rename (a folder) or a device node swapped for a file
    (as root). A target that cannot be looked at is left to the write, which says why.
    ``text`` is the name the messages give it (a link's, with where it leads).
    """
    try:
        mode = target.stat().st_mode
    except OSError:
        return
    if stat.S_ISDIR(mode):
        raise StorageError(f"cannot write {text}: it is a folder (give a file name)")
    if not stat.S_ISREG(mode):
        raise StorageError(f"cannot write {text}: not a regular file (a device or a pipe)")


_NAME_MAX = 255
"""Bytes a file name may take (ext4, XFS, APFS; NTFS counts 255 UTF-16 units, never more)."""


_NAME_MAXES: dict[str, int] = {}  # absolute folder -> its file system's answer
_NAME_MAXES_HELD = 256  # folders remembered at most (a run writes into a handful)


def _name_max(folder: Path) -> int:
    """The longest file name ``folder``'s file system takes, in bytes (255 if it will not say).

    The one limit rule: :func:`check_writable` refuses a name over it, and a temporary
    name (:func:`_part_stem`) is cut to it. Asked once per folder: every atomic write asks
    (a label file per image), and the question costs a path lookup. Only absolute folders
    are remembered (a relative one names another folder after a ``chdir``), and a few
    hundred at most: each run stages into folders of new names, and a long-lived process
    (a notebook, a warm Lambda) kept every one.
    """
    key = os.fspath(folder)
    found = _NAME_MAXES.get(key)
    if found is None:
        try:
            found = os.pathconf(folder, "PC_NAME_MAX")
        except (OSError, ValueError, AttributeError):  # no pathconf (Windows), or no answer
            return _NAME_MAX
        if folder.is_absolute():
            if len(_NAME_MAXES) >= _NAME_MAXES_HELD:
                _NAME_MAXES.clear()
            _NAME_MAXES[key] = found
    return found


def _new_part(folder: Path, stem: str, *, mode: int) -> tuple[int, Path]:
    """Create ``folder/<stem>.<host>.<pid>.<token>.part`` exclusively, after a sweep.

    ``os.open`` applies the umask to ``mode`` itself, so no thread ever changes the umask.
    The stem (the target's name) is cut to keep the name within the disk's limit: a target
    named near the limit (an image's 246-byte label file) could be written, its temporary
    file could not ("File name too long"). A sweep reads only the name's end.
    """
    _sweep(folder)
    stem = _part_stem(stem, folder)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        path = folder / part_name(stem)
        try:
            return os.open(path, flags, mode), path
        except FileExistsError:  # pragma: no cover - a 64-bit token collision
            continue


def _part_stem(stem: str, folder: Path) -> str:
    """``stem`` cut at a whole character so that :func:`part_name` of it fits a name in ``folder``.

    Counted as the disk stores it (``os.fsencode``: a name that is not UTF-8 is cut too,
    where ``str.encode`` raised), against the limit :func:`check_writable` applies
    (:func:`_name_max`): cut to 255 bytes on a disk that holds fewer (eCryptfs: 143), a
    name the check let through had a temporary name the disk refused.
    """
    room = _name_max(folder) - len(part_name("").encode())
    while stem and len(os.fsencode(stem)) > room:  # none fits: the disk says why
        stem = stem[: -max(1, (len(os.fsencode(stem)) - room) // 4)]
    return stem


def part_name(stem: str) -> str:
    """A fresh temporary name: ``<stem>.<host>.<pid>.<token>.part``.

    The host and process say whose it is, so a sweep can tell one left by a killed process.
    """
    return f"{stem}.{_HOST}.{os.getpid()}.{secrets.token_hex(8)}.part"


def is_part_name(name: str) -> bool:
    """Whether ``name`` is one that :func:`part_name` makes, on any host."""
    return _ANY_PART_RE.search(name) is not None


def make_part_folder(parent: Path, stem: str) -> Path:
    """Create a private ``parent/.<stem>.<host>.<pid>.<token>.part`` folder, after a sweep.

    For writers that stage a whole tree and move it into place at the end (the converters):
    the folder carries the same name pattern as a temporary file, so a later run removes it
    when the process that made it was killed. Its name is cut as a temporary file's is: a
    converter's output folder named near the limit (240 bytes) could not be staged.
    """
    _sweep(parent)
    stem = _part_stem(f".{stem}", parent)
    while True:
        path = parent / part_name(stem)
        try:
            path.mkdir(mode=0o700)
            return path
        except FileExistsError:  # pragma: no cover - a 64-bit token collision
            continue


def _staging_folder() -> Path:
    """Where S3 uploads are staged: one private folder per user under the temp folder."""
    folder = Path(tempfile.gettempdir()) / f"gt-toolkit-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def sweep_parts(folder: Path) -> None:
    """Remove the temporary files and folders of this host's processes that no longer run.

    For a writer that makes part names of its own (:func:`part_name`) in a folder no
    atomic write of this run sweeps first: once per folder and process, as every sweep.
    """
    _sweep(folder)


def _sweep(folder: Path) -> None:
    """Remove temporary files and folders of processes that no longer run (once per folder)."""
    key = os.fspath(folder)
    with _swept_lock:
        if key in _swept:
            return
        if len(_swept) >= _SWEPT_HELD:  # a folder swept twice costs a listing, nothing more
            _swept.clear()
        _swept.add(key)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        match = _PART_RE.search(entry.name)
        if match is not None and not _running(int(match[1])):
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    Path(entry.path).unlink()


def _running(pid: int) -> bool:
    """True when a process ``pid`` exists (whoever owns it)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_bytes(
    location: Location, data: bytes, *, store: S3Store | None = None, durable: bool = True
) -> None:
    """Write a whole file or object atomically (see :func:`atomic_output` for ``durable``)."""
    with atomic_output(location, store=store, durable=durable) as fh:
        fh.write(data)


def remove_file(location: Location, *, store: S3Store | None = None) -> None:
    """Delete a file or S3 object (an earlier run's output); one that is not there is no error.

    Raises:
        StorageError: it is there and could not be deleted.
    """
    text = os.fspath(location)
    if is_s3_uri(text):
        _store(store).delete_objects([text])
        return
    try:
        Path(text).unlink(missing_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot delete {text}: {exc.strerror or exc}") from exc


class AllOrNone:
    """Files that appear together or not at all, wherever each one lives.

    Each file opened through :meth:`open` is written like :func:`atomic_output` and is
    in place when its block ends; when a later file or the whole block fails, the files
    already in place are removed again, so a failed run leaves none of them. An earlier
    run's local copies that this run replaces are kept first (:meth:`open` keeps each one,
    :meth:`keep_earlier` all of them at once) and put back then: without that, a rerun that
    failed took the earlier files with it, and left the earlier ones it had not reached
    naming files that were gone (a review's report its pictures, an agreement page its
    JSON, a consolidated manifest's worker-quality tables their manifest). Only what this
    run replaced is put back, and a name that holds another run's file by then is left to
    it. For several files under one output folder, the converters' ``StagedOutput``
    stages them all instead.
    """

    def __init__(self, *, store: S3Store | None = None) -> None:
        self._store = store
        self._placed: list[str] = []
        # a local file this run placed -> its inode then: a failure removes it only while
        # the name still holds that file (another run may have placed its own there since)
        self._mine: dict[str, tuple[int, int] | None] = {}
        self._kept: dict[Path, Path] = {}  # a file this run replaces -> its earlier copy
        self._own: set[tuple[int, int]] = set()  # the files this run placed, by inode
        self._unkept: dict[Path, str] = {}  # an earlier file no copy could be made of: why
        self._asides: dict[tuple[Path, str], Path] = {}  # (folder, stem) -> keep-aside folder

    @contextlib.contextmanager
    def open(self, location: Location) -> Iterator[IO[bytes]]:
        """Write one of the files (see :func:`atomic_output`), its earlier copy kept first.

        The earlier local file is kept as :meth:`keep_earlier` keeps it, unless a call of
        that already kept it (elsewhere, or before anything was written).
        """
        self.keep_earlier([location])
        with atomic_output(location, store=self._store) as fh:
            yield fh
        self.adopt(location)

    def adopt(self, location: Location) -> None:
        """Count a file this run already put in place (a reader's rejects file) as one of them.

        Its earlier copy is put back on failure only when :meth:`keep_earlier` kept it
        before the file was written.
        """
        text = os.fspath(location)
        if not is_s3_uri(text):
            text = str(_landing(text))  # a link stays: the file it leads to is this run's
        self._placed.append(text)
        if not is_s3_uri(text):
            self._mine[text] = identity = _identity(Path(text))
            if identity is not None:
                self._own.add(identity)

    def keep_earlier(
        self, locations: Iterable[Location], *, beside: Path | None = None, stem: str = "earlier"
    ) -> None:
        """Keep the earlier copy of each local file among ``locations``, to put back on failure.

        Call it before writing any of them. The copies are second names of the files (no
        bytes copied; a copy where the file system has no hard links) in a
        ``.<stem>.<host>.<pid>.<token>.part`` folder (:func:`make_part_folder`) in ``beside``
        (default: each file's own folder), so one a killed run leaves is removed by the next
        run there. They go when the block ends; one that cannot be put back stays, named in
        the error, its folder renamed ``.<stem>.<host>.<pid>.<token>.kept`` so that no later
        run sweeps it. S3 objects are not kept: a failed run that replaced one leaves it removed.
        A file no copy can be made of (another user's, unreadable, where hard links to it are
        not allowed) is replaced all the same, as before copies were kept: the run failed at
        its end for a file it may replace; a failed run says that file is gone.
        A symbolic link's file is the one it leads to (:func:`link_target`): that file is
        kept and put back, as that is the file the write replaces, and the link stays.
        """
        for location in locations:
            text = os.fspath(location)
            if is_s3_uri(text):
                continue
            path = _landing(text)  # a link: the file it leads to is what the write replaces
            if path in self._kept or not _is_file(path):
                continue
            identity = _identity(path)
            if identity is None or identity in self._own:  # placed by this run, by another name
                continue
            key = (beside or path.parent, stem)
            try:
                if key not in self._asides:
                    self._asides[key] = make_part_folder(*key)
                self._kept[path] = _keep_copy(path, self._asides[key] / str(len(self._kept)))
            except OSError as exc:
                self._unkept[path] = exc.strerror or str(exc)

    def __enter__(self) -> AllOrNone:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self._drop_asides()
            return
        removed: set[Path] = set()
        for location in reversed(self._placed):
            # a name that holds another file than this run placed holds another run's: it
            # stays (one that holds none was this run's by another name, removed already)
            if location in self._mine and _identity(Path(location)) not in (
                None,
                self._mine[location],
            ):
                continue
            try:
                remove_file(location, store=self._store)
            except StorageError as failed:  # the fault that failed the run may block this too
                exc.add_note(f"left in place: {location} ({failed})")
                continue
            removed.add(Path(location))
        for path, why in self._unkept.items():
            if path in removed:
                exc.add_note(f"the earlier {path} is gone: no copy of it could be kept ({why})")
        stuck: list[tuple[Path, Path, OSError]] = []
        for path, copy in self._kept.items():
            # never replaced by this run: the name holds what it held; one now empty was
            # removed in the block (an earlier run's stale side file) and gets it back
            if path not in removed and _identity(path) is not None:
                continue
            try:
                shutil.move(copy, path)
            except OSError as fault:  # the fault that failed the run may block this
                stuck.append((path, copy, fault))
        kept = self._keep_asides({copy.parent for _, copy, _ in stuck})
        for path, copy, cause in stuck:
            exc.add_note(f"the earlier {path} is kept as {kept[copy.parent] / copy.name} ({cause})")

    def _keep_asides(self, folders: set[Path]) -> dict[Path, Path]:
        """Give ``folders`` a name no sweep removes; drop the other keep-aside folders.

        A temporary name is removed by the next run into the folder once this process is
        gone: the earlier files that could not be put back, named in the error, were swept
        away by the rerun the error led to. Returns each folder's name now (its own where
        the rename fails too).
        """
        names: dict[Path, Path] = {}
        for folder in folders:
            kept = folder.with_name(f"{folder.name.removesuffix('.part')}.kept")
            try:
                folder.rename(kept)
            except OSError:
                kept = folder
            names[folder] = kept
        for folder in self._asides.values():
            if folder not in folders:
                shutil.rmtree(folder, ignore_errors=True)
        return names

    def _drop_asides(self) -> None:
        for folder in self._asides.values():
            shutil.rmtree(folder, ignore_errors=True)


def _landing(text: str) -> Path:
    """The local file a write to ``text`` replaces (:func:`link_target`), or ``text`` itself.

    A link that cannot lead to a file is left as it is: the write itself refuses it, and says
    why. One to a file not there yet leads to that file: the write creates it.
    """
    try:
        return _followed(text)[0]
    except StorageError:
        return Path(text)


def _is_file(path: Path) -> bool:
    """``path.is_file()``, or False where it cannot be looked at (a name too long).

    The write itself then says why, as "cannot write" (``is_file`` raised a bare OSError).
    """
    try:
        return path.is_file()
    except OSError:
        return False


def _identity(path: Path) -> tuple[int, int] | None:
    """The file a name holds (device and inode, the name itself if a link); None if none."""
    try:
        st = path.lstat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _keep_copy(path: Path, copy: Path) -> Path:
    """``copy`` made the earlier ``path``: a second name of it (no bytes copied) where it can be."""
    try:
        os.link(path, copy, follow_symlinks=False)  # a link stays a link when put back
    except OSError:  # a file system without hard links
        shutil.copy2(path, copy, follow_symlinks=False)
    return copy


def json_bytes(obj: object) -> bytes:
    """Indented JSON with a final newline: how reports and side files (not manifests) look."""
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n"


def write_json(location: Location, obj: object, *, store: S3Store | None = None) -> None:
    """Write :func:`json_bytes` atomically."""
    write_bytes(location, json_bytes(obj), store=store)


def write_lines(location: Location, lines: Iterable[bytes], *, store: S3Store | None = None) -> int:
    r"""Write byte lines (each gets a ``\n``) atomically; return how many were written."""
    with atomic_output(location, store=store) as fh:
        writer = LineWriter(fh)
        writer.add_all(lines)
        writer.flush()
    return writer.count


class LineWriter:
    r"""Writes byte lines (each gets a ``\n``) to an open file, joined in batches.

    Per line the cost is a list append; one ``write`` goes out per 4,096 lines. Call
    :meth:`flush` before the file closes.
    """

    __slots__ = ("_batch", "_fh", "count")

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._batch: list[bytes] = []
        self.count = 0

    def add(self, line: bytes) -> None:
        """Queue one line (without its newline)."""
        batch = self._batch
        batch.append(line)
        if len(batch) >= _BATCH:
            self.flush()

    def add_all(self, lines: Iterable[bytes]) -> None:
        """Queue every line of ``lines``: :meth:`add` in one loop, no call per line."""
        batch = self._batch  # flush clears this list in place: it stays the batch
        append = batch.append
        for line in lines:
            append(line)
            if len(batch) >= _BATCH:
                self.flush()

    def flush(self) -> None:
        """Write the queued lines."""
        if self._batch:
            self._fh.write(b"\n".join(self._batch) + b"\n")
            self.count += len(self._batch)
            self._batch.clear()
