"""Local-or-S3 edges: stream lines in, write outputs atomically.

A *location* is a local path or an ``s3://`` URI; every reader and writer in the toolkit takes
either. Local writes go to a temporary file in the same folder and are renamed into place;
S3 writes are staged in a local temporary file and uploaded only once complete, so a crash
never leaves half a manifest behind.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import orjson

from gt_toolkit.errors import StorageError
from gt_toolkit.storage.s3 import S3Store, is_s3_uri

__all__ = [
    "Location",
    "atomic_output",
    "iter_chunks",
    "iter_line_batches",
    "iter_raw_lines",
    "join_location",
    "read_bytes",
    "write_bytes",
    "write_json",
    "write_lines",
]

Location = str | os.PathLike[str]
_CHUNK = 1 << 20


def _store(store: S3Store | None) -> S3Store:
    return store if store is not None else S3Store()


def join_location(base: Location, *parts: str) -> str:
    """Join path parts onto a local folder or an ``s3://`` prefix."""
    text = os.fspath(base)
    if is_s3_uri(text):
        return "/".join([text.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(text, *parts))


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
    """
    pending = b""
    for chunk in iter_chunks(location, store=store):
        data = pending + chunk if pending else chunk
        parts = data.split(b"\n")
        pending = parts.pop()
        if b"\r" in data:
            parts = [p[:-1] if p.endswith(b"\r") else p for p in parts]
        if parts:
            yield parts
    if pending:
        yield [pending[:-1] if pending.endswith(b"\r") else pending]


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

    Local: a temporary file beside the target, ``fsync``-ed and renamed over it.
    ``durable=False`` skips the ``fsync`` (the rename still makes the file appear whole): for
    thousands of small, regenerable files, where one ``fsync`` each dominates the run.
    S3: a local temporary file uploaded when the block ends without an exception.
    """
    text = os.fspath(location)
    if is_s3_uri(text):
        with tempfile.NamedTemporaryFile("wb", suffix=".part", delete=False) as tmp:
            tmp_path = Path(tmp.name)
        try:
            with tmp_path.open("wb") as fh:
                yield fh
            _store(store).upload_file(tmp_path, text)
        finally:
            tmp_path.unlink(missing_ok=True)
        return
    target = Path(text)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
    except OSError as exc:
        raise StorageError(f"cannot write {text}: {exc.strerror or exc}") from exc
    tmp_path = Path(tmp_name)
    try:
        # mkstemp makes 0600 files; an output should get the permissions open() would give.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        tmp_path.replace(target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask (reading it means setting it; restore at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes(
    location: Location, data: bytes, *, store: S3Store | None = None, durable: bool = True
) -> None:
    """Write a whole file or object atomically (see :func:`atomic_output` for ``durable``)."""
    with atomic_output(location, store=store, durable=durable) as fh:
        fh.write(data)


def write_json(location: Location, obj: object, *, store: S3Store | None = None) -> None:
    """Write indented JSON atomically (for reports and side files, not manifests)."""
    write_bytes(location, orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n", store=store)


def write_lines(location: Location, lines: Iterable[bytes], *, store: S3Store | None = None) -> int:
    r"""Write byte lines (each gets a ``\n``) atomically; return how many were written."""
    count = 0
    with atomic_output(location, store=store) as fh:
        for line in lines:
            fh.write(line)
            fh.write(b"\n")
            count += 1
    return count
