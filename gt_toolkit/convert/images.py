"""Image file names and copies for the targets that ship images with their labels.

Local copies of the images (``--images-dir`` / ``--images-prefix``) are found by the storage
layer's one mirror, :class:`~gt_toolkit.storage.image_mirror.ImageMirror`.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any

from gt_toolkit.convert.options import ConvertOptions
from gt_toolkit.errors import ConversionError
from gt_toolkit.storage.files import folded, write_bytes
from gt_toolkit.storage.image_mirror import ImageMirror
from gt_toolkit.storage.s3 import S3Store, is_s3_uri

if TYPE_CHECKING:
    from gt_toolkit.convert.staging import StagedOutput

__all__ = [
    "MAX_NAME_BYTES",
    "ImageCopier",
    "ImageNamer",
    "check_file_name",
    "copier_for",
    "windows_unsafe",
]


_CONTROL = re.compile("[\x00-\x1f]")
_NOT_XML = re.compile("[\x00-\x1f\ufffe\uffff]")  # and no line break: one name a line


def check_file_name(name: str, line_no: int, target: str, *, xml: bool = False) -> None:
    """Refuse an image file name that a line- or XML-based index cannot hold.

    ``.lst`` rows are tab-separated lines, VOC's image sets one stem per line and its XML
    refuses control characters and the non-characters U+FFFE and U+FFFF (``xml``): such a
    character in a name would split or break the file its reader sees.

    Raises:
        ConversionError: naming the manifest line and the character.
    """
    bad = (_NOT_XML if xml else _CONTROL).search(name)
    if bad:
        raise ConversionError(
            f"line {line_no}: the image name {name!r} holds {bad[0]!r}, which {target} files "
            "cannot carry: rename the image"
        )


MAX_NAME_BYTES = 200
"""The longest image file name (UTF-8) a dataset gets. File systems hold 255 bytes a name;
this leaves room for the label file's own extension (``<stem>.json``) and the temporary
names writers make beside a file as they write it (boto3's download adds 9 bytes)."""

_MAX_SUFFIX_BYTES = 16  # an extension longer than this is no image type's: part of the stem


class ImageNamer:
    """Unique, stable file names for images: the source-ref's base name, de-duplicated.

    Two source-refs with one stem (``a/img.jpg``, ``b/img.jpg``, ``c/img.png``) must not
    overwrite each other's image or annotation file; later ones get a short hash of their
    source-ref before the extension. Stems are compared as a case-insensitive disk does
    (:func:`~gt_toolkit.storage.files.folded`: ``IMG.jpg``, ``img.jpg``, but not ``Straße``
    and ``Strasse``): the dataset is one folder on a laptop's disk too, where such files
    replace each other. A hashed stem that another image already holds (a dataset this tool
    wrote, listed beside its originals) is hashed again. A name over :data:`MAX_NAME_BYTES`
    (S3 keys take 1,024 bytes, a file system 255 a name) is cut and hashed the same way:
    written as it was, it failed the run with "File name too long". So is a name Windows
    cannot hold (:func:`windows_unsafe`: ``CON``, ``aux.jpg``, ``img.jpg.``): copied to a
    Windows disk, or synced there, the file could not be made, or was another one.

    Args:
        written: the names are files the run writes (copied images, the label files named
            after them). ``False`` (``coco`` without ``--copy-images``): they name the
            images where they are, so a long or Windows-reserved name stays the image's
            own, the one its reader finds; only a clash is hashed (two entries of one name
            are one image to a reader that keys them by it), a name no file has. A clash
            is of the whole name there, as written (``img.jpg`` and ``img.png`` share no
            label file; ``IMG.jpg`` and ``img.jpg`` are two S3 objects, two reader keys).
    """

    def __init__(self, *, written: bool = True) -> None:
        self._owner: dict[str, str] = {}
        self._written = written

    def __call__(self, source_ref: str) -> str:
        """The file name for ``source_ref``."""
        # Once per record: the text after the last '/' is the path's name (no Path made)
        # unless it is empty or a dot part, which pathlib's rules then name.
        base = source_ref.rpartition("/")[2]
        if base in ("", ".", ".."):
            base = PurePosixPath(source_ref).name  # a key ending in '/..' has the name '..'
        first = base if base not in ("", "..") else "image"  # PurePosixPath(first).name
        if self._written and windows_unsafe(first):
            first = _windows_safe(first, _digest(source_ref))
        name, salt = first, ""
        if self._written and len(name.encode()) > MAX_NAME_BYTES:
            name = _hashed(PurePosixPath(first), _digest(source_ref))
        owner = self._owner
        # a written name's stem is its label file's too (img.jpg, img.png: one img.txt), and
        # a case-insensitive disk holds one file for IMG.jpg and img.jpg: compared folded. A
        # name no file is written for clashes only with the very same name (its reader's
        # key, and S3's: IMG.jpg and img.jpg, or an NFC and an NFD é, are two objects there)
        key = _folded_stem if self._written else _whole
        while owner.setdefault(key(name), source_ref) != source_ref:
            name, salt = _hashed(PurePosixPath(first), _digest(f"{source_ref}{salt}")), f"{salt}#"
        return name


_RESERVED = re.compile(r"(?i:CON|PRN|AUX|NUL|(?:COM|LPT)[0-9\u00b9\u00b2\u00b3]) *")


def windows_unsafe(name: str) -> bool:
    """Whether Windows cannot make a file or folder of this name.

    A device name (``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM0``-``COM9``, ``LPT0``-``LPT9``,
    in any case) before the first dot opens the device (``aux.jpg``, ``LPT1.tar.gz``), and a
    name's final dots and spaces are dropped (``img.jpg.`` is ``img.jpg``, another file).
    """
    return name[-1:] in (".", " ") or _RESERVED.fullmatch(name.partition(".")[0]) is not None


def _windows_safe(name: str, digest: str) -> str:
    """A name Windows can hold for ``name`` (:func:`windows_unsafe`), hashed as a long one.

    ``digest`` goes after a device name (``CON-1a2b3c4d.jpg``, ``aux-1a2b3c4d.tar.gz``:
    before the first dot, where Windows looks), else the final dots and spaces are dropped
    and it goes to the stem (:func:`_hashed`: ``img-1a2b3c4d.jpg`` for ``img.jpg.``).
    """
    name = name.rstrip(". ") or "image"
    head, dot, rest = name.partition(".")
    if _RESERVED.fullmatch(head):
        return f"{head.rstrip()}-{digest}{dot}{rest}"
    return _hashed(PurePosixPath(name), digest)


def _whole(name: str) -> str:
    """The name itself: what :class:`ImageNamer` compares where no file is written."""
    return name


def _folded_stem(name: str) -> str:
    """The stem as a case-insensitive disk compares it: what a written name clashes on."""
    return folded(_stem(name))


def _stem(name: str) -> str:
    """``PurePosixPath(name).stem`` of a bare file name, without making the path."""
    i = name.rfind(".")
    return name[:i] if 0 < i < len(name) - 1 else name


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()


def _hashed(p: PurePosixPath, digest: str) -> str:
    """``p``'s name with ``digest`` added to its stem, read back with that stem.

    ``A.`` has no suffix: ``A.-1f2e`` would read as the stem ``A`` and the suffix ``.-1f2e``
    (label file ``A.txt``, another image's), so the dots of such a stem become ``_``. The
    stem is cut (at a whole character) to keep the name within :data:`MAX_NAME_BYTES`.
    """
    stem, suffix = p.stem, p.suffix
    if len(suffix.encode()) > _MAX_SUFFIX_BYTES:
        stem, suffix = p.name, ""
    room = MAX_NAME_BYTES - len(suffix.encode()) - len(digest) - 1
    stem = stem.encode()[:room].decode("utf-8", "ignore")
    hashed = f"{stem}-{digest}"
    if PurePosixPath(hashed + suffix).stem != hashed:
        hashed = f"{stem.replace('.', '_')}-{digest}"
    return hashed + suffix


class ImageCopier:
    """Copy images (and write small per-image files) with a bounded thread pool.

    Sources are ``source-ref`` URIs; with ``images_dir`` they are looked up in that local
    mirror first (:class:`~gt_toolkit.storage.image_mirror.ImageMirror`), so no download is
    needed. At most ``4 * workers`` copies are in flight, so memory stays
    bounded; failures are collected so every one is listed, and the block raises
    :class:`ConversionError` at its end when any failed: a dataset with missing images is
    not a finished output.
    """

    def __init__(
        self,
        *,
        store: S3Store | None,
        workers: int = 16,
        images_dir: str | None = None,
        images_prefix: str | None = None,
    ) -> None:
        self.store = store if store is not None else S3Store()
        self.workers = max(1, workers)
        self.mirror = ImageMirror(images_dir, images_prefix) if images_dir else None
        self.errors: list[str] = []
        self.done = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[Future[None], str] = {}
        self._folders: dict[Path, tuple[int, int] | None] = {}

    def local_path(self, source_ref: str) -> Path | None:
        """The local mirror file of ``source_ref``, if there is one."""
        return self.mirror.local_path(source_ref) if self.mirror is not None else None

    def __enter__(self) -> ImageCopier:
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="gt-copy")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            for future in self._pending:
                future.cancel()
        self._collect(wait(self._pending).done)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if exc_type is None and self.errors:
            shown = "; ".join(self.errors[:3])
            raise ConversionError(
                f"{len(self.errors)} of {len(self.errors) + self.done} image copies or "
                f"writes failed, so nothing was written: {shown}"
            )

    def copy(self, out: StagedOutput, source_ref: str, dest: str) -> None:
        """Queue the copy of ``source_ref`` that appears at ``dest`` (a final location in ``out``).

        Raises:
            ConversionError: the image is in the folder its copy goes to (checked before
                ``out`` is asked for the place, so a failed run deletes nothing of it).
        """
        self._refuse_own_folder(source_ref, dest)
        self.submit(source_ref, out.staged(dest))

    def _refuse_own_folder(self, source_ref: str, dest: str) -> None:
        """Refuse a copy into the folder that holds its image, by any name.

        The copy would land on the image itself (or on another of the run's images there),
        and the run lists it as its own: on S3 a run that failed deleted the image with the
        objects it wrote (``coco s3://b/m -o s3://b/x.json --copy-images`` with the images
        under ``s3://b/images/``), and a rerun that did not copy it again removed it.
        """
        if is_s3_uri(dest):  # from S3, or from a local copy of the image there
            clash = is_s3_uri(source_ref) and source_ref.rsplit("/", 1)[0] == dest.rsplit("/", 1)[0]
        elif (local := self.local_path(source_ref)) is not None:
            here = self._folder_id(local.parent)
            clash = here is not None and here == self._folder_id(Path(dest).parent)
        else:  # downloaded from S3
            clash = False
        if clash:
            folder = dest.rsplit("/", 1)[0] if is_s3_uri(dest) else str(Path(dest).parent)
            raise ConversionError(
                f"the image {source_ref} is in {folder}, where the run copies the images: "
                "give -o another path"
            )

    def _folder_id(self, folder: Path) -> tuple[int, int] | None:
        """A folder's device and inode (``None``: not there), asked once per folder a run meets."""
        if folder not in self._folders:
            try:
                stat = folder.stat()
            except OSError:
                self._folders[folder] = None
            else:
                self._folders[folder] = (stat.st_dev, stat.st_ino)
        return self._folders[folder]

    def submit(self, source_ref: str, dest: str) -> None:
        """Queue one copy of ``source_ref`` to ``dest``; blocks while too many are in flight."""
        self._run(self._copy, source_ref, dest, what=source_ref)

    def submit_write(self, dest: str, data: bytes) -> None:
        """Queue one small file write (annotation files on S3 are many round trips)."""
        if not is_s3_uri(dest):
            # One small file per image: an fsync each would dominate (measured 98 s for 200k).
            write_bytes(dest, data, durable=False)
            return
        self._run(write_bytes, dest, data, what=dest, store=self.store)

    def _run(self, fn: Callable[..., None], *args: Any, what: str, **kwargs: Any) -> None:
        if self._pool is None:
            raise ConversionError("ImageCopier must be used as a context manager")
        while len(self._pending) >= 4 * self.workers:
            self._collect(wait(self._pending, return_when=FIRST_COMPLETED).done)
        self._pending[self._pool.submit(fn, *args, **kwargs)] = what

    def _collect(self, done: Iterable[Future[None]]) -> None:
        for future in done:
            what = self._pending.pop(future)
            if future.cancelled():
                continue
            exc = future.exception()
            if exc is not None:
                self.errors.append(f"{what}: {exc}")
            else:
                self.done += 1

    def _copy(self, source_ref: str, dest: str) -> None:
        local = self.local_path(source_ref)
        if local is not None:
            if is_s3_uri(dest):
                self.store.upload_file(local, dest)
            else:
                Path(dest).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(local, dest)
            return
        if not is_s3_uri(source_ref):
            raise ConversionError(f"no local copy of {source_ref} and it is not an s3:// URI")
        if is_s3_uri(dest):
            self.store.put_bytes(dest, self.store.get_bytes(source_ref))
        else:
            self.store.download_file(source_ref, dest)


def copier_for(options: ConvertOptions) -> ImageCopier:
    """An :class:`ImageCopier` configured from the options."""
    return ImageCopier(
        store=options.store,
        workers=options.workers,
        images_dir=options.images_dir,
        images_prefix=options.images_prefix,
    )
