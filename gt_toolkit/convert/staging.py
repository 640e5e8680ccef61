"""Where a conversion writes: nothing appears at the output unless the whole run succeeds.

A converter writes every file (annotations, manifests, copied images) through a
:class:`StagedOutput`. Locally the files go to a hidden ``.<name>.<host>.<pid>.<token>.part`` folder
beside the output (:func:`~gt_toolkit.storage.files.make_part_folder`: a later run removes it
if this one is killed), which is moved into place when the run ends without an error and deleted
when it fails. S3 has no multi-object commit, so on S3 the objects are written at their final
keys and the keys are remembered; a failed run deletes every object it wrote. The files that
say a dataset is complete (``channels.json``, ``data.yaml``) are written last.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO

from gt_toolkit.errors import StorageError
from gt_toolkit.storage.files import (
    Location,
    atomic_output,
    join_location,
    make_part_folder,
    write_bytes,
    write_json,
    write_lines,
)
from gt_toolkit.storage.s3 import S3Store, is_s3_uri

__all__ = ["StagedOutput"]


class StagedOutput:
    """The output of one conversion: final locations to report, staged locations to write.

    Args:
        out: the output the user named: a folder, a file (``x.json``, ``x.manifest``) or an
            ``s3://`` prefix or key.
        store: the S3 store for ``s3://`` outputs.

    Use as a context manager: leaving the block normally commits, an exception aborts.
    """

    def __init__(self, out: Location, *, store: S3Store | None = None) -> None:
        self.out = os.fspath(out)
        self.store = store if store is not None else S3Store()
        self._s3 = is_s3_uri(self.out)
        self._written: list[str] = []
        self._parent = Path(self.out).absolute().parent
        self._stage: Path | None = None

    def location(self, *parts: str) -> str:
        """A final location under the output (what summaries and ``data.yaml`` name)."""
        return join_location(self.out, *parts) if parts else self.out

    def beside(self, name: str) -> str:
        """A final location next to a file output (``coco -o x.json`` puts ``images/`` there)."""
        if self._s3:
            return join_location(self.out.rsplit("/", 1)[0], name)
        return str(Path(self.out).parent / name)

    def staged(self, location: str) -> str:
        """Where to write the file that will appear at the final ``location``."""
        if self._s3:
            self._written.append(location)
            return location
        path = Path(location).absolute()
        try:
            rel = path.relative_to(self._parent)
        except ValueError:
            raise StorageError(f"{location} is outside the output folder {self.out}") from None
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

    def _stage_dir(self) -> Path:
        if self._stage is None:
            try:
                self._parent.mkdir(parents=True, exist_ok=True)
                self._stage = make_part_folder(self._parent, Path(self.out).name or "out")
            except OSError as exc:
                raise StorageError(f"cannot write {self.out}: {exc.strerror or exc}") from exc
        return self._stage

    def commit(self) -> None:
        """Move the staged files into place (locally; S3 objects are already there)."""
        if self._stage is None:
            return
        try:
            for child in sorted(self._stage.iterdir()):
                _merge(child, self._parent / child.name)
        except OSError as exc:
            raise StorageError(f"cannot move the output into {self.out}: {exc}") from exc
        finally:
            shutil.rmtree(self._stage, ignore_errors=True)
            self._stage = None

    def abort(self) -> None:
        """Delete everything this run wrote."""
        if self._stage is not None:
            shutil.rmtree(self._stage, ignore_errors=True)
            self._stage = None
        if self._written:
            self.store.delete_objects(self._written)
            self._written.clear()

    def __enter__(self) -> StagedOutput:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def _merge(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; folders that already exist are merged file by file."""
    if src.is_dir() and dst.is_dir():
        for child in src.iterdir():
            _merge(child, dst / child.name)
        src.rmdir()
        return
    if dst.is_dir():
        raise IsADirectoryError(f"{dst} is a folder; the output has a file of that name")
    src.replace(dst)
