"""Input manifests from data: an S3 prefix or a local folder to ``source-ref`` lines.

Both sources stream in key order (S3 lists keys sorted; the folder walk visits entries in the
same byte order), so a bucket of millions of keys never sits in memory.
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from gt_toolkit.errors import NoMatchingObjectsError, StorageError, ValidationError
from gt_toolkit.formats.manifest import write_manifest
from gt_toolkit.storage.files import Location, join_location
from gt_toolkit.storage.s3 import DEFAULT_IMAGE_EXTENSIONS, S3Store, is_s3_uri, parse_s3_uri
from gt_toolkit.text import not_utf8_at

__all__ = [
    "iter_folder_keys",
    "iter_input_records",
    "write_input_manifest",
]


def iter_folder_keys(
    folder: str | os.PathLike[str],
    *,
    extensions: Iterable[str] | None = DEFAULT_IMAGE_EXTENSIONS,
    exclude: Iterable[str] = (),
    key_prefix: str = "",
) -> Iterator[str]:
    """Relative POSIX keys of the files under ``folder``, recursively, in sorted key order.

    Links are followed, as ``aws s3 sync`` does, except a link back to a folder that is being
    walked: its files are listed already, and following it would never end. ``exclude``
    globs match the relative key and, as an S3 listing's do, the full key (``key_prefix``,
    the key of the prefix the folder is uploaded to, then the relative key).

    Raises:
        StorageError: the folder does not exist, a folder cannot be read, or a file name is
            not UTF-8 (S3 keys are).
        NoMatchingObjectsError: nothing matches.
    """
    root = Path(folder)
    if not root.is_dir():
        raise StorageError(f"{root}: not a folder")
    exts = tuple(e.lower() for e in extensions) if extensions is not None else None
    patterns = tuple(exclude)
    found = 0

    def walk(path: Path, rel: str, above: frozenset[tuple[int, int]]) -> Iterator[str]:
        try:
            st = path.stat()
            here = above | {(st.st_dev, st.st_ino)}
            if here == above:
                return
            with os.scandir(path) as it:
                # "name/" for folders sorts exactly as their keys do among sibling files.
                # Names only, and only those kept: a flat folder of a million images held a
                # DirEntry each, 460 bytes a file (460 MB); a name is about 70.
                names = sorted(
                    e.name + "/" if e.is_dir() else e.name
                    for e in it
                    if e.is_dir()
                    or (e.is_file() and (exts is None or e.name.lower().endswith(exts)))
                )
        except OSError as exc:
            raise StorageError(f"cannot list {path}: {exc.strerror or exc}") from exc
        for name in names:
            if name.endswith("/"):
                yield from walk(path / name[:-1], rel + name, here)
            else:
                yield _utf8_key(rel + name, str(path / name))

    for key in walk(root, "", frozenset()):  # of the extensions asked for: walk keeps no other
        if any(
            fnmatch.fnmatchcase(key, p) or fnmatch.fnmatchcase(key_prefix + key, p)
            for p in patterns
        ):
            continue
        found += 1
        yield key
    if not found:
        raise NoMatchingObjectsError(f"no file under {root} matches {list(exts or ['*'])}")


def _utf8_key(key: str, path: str) -> str:
    """``key``, when it can be an S3 key: a name that is not UTF-8 decodes to surrogates."""
    if not_utf8_at(key) is not None:
        raise StorageError(f"{path!r}: the file name is not UTF-8, so no S3 key can name it")
    return key


def _json_problems(value: object, where: str) -> list[str]:
    """Why ``value`` would not reach every manifest line as written, or ``[]``.

    The writer (orjson) fails on an integer beyond 64 bits or a lone surrogate, after the
    listing has started, and writes NaN and infinities as ``null``: a changed value, silently.
    """
    try:
        orjson.dumps(value)
    except TypeError as exc:
        return [f"{where}: not valid JSON to write: {exc}"]
    bad: list[str] = []

    def walk(item: object, path: str) -> None:
        if isinstance(item, float) and not math.isfinite(item):
            bad.append(f"{path} is {item}, which JSON cannot hold (it would be written as null)")
        elif isinstance(item, Mapping):
            for key, sub in item.items():
                walk(sub, f"{path}[{key!r}]")
        elif isinstance(item, list | tuple):
            for index, sub in enumerate(item):
                walk(sub, f"{path}[{index}]")

    walk(value, where)
    return bad


def iter_input_records(
    source: Location,
    *,
    s3_prefix: str | None = None,
    extensions: Iterable[str] | None = DEFAULT_IMAGE_EXTENSIONS,
    exclude: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
    store: S3Store | None = None,
) -> Iterator[dict[str, Any]]:
    """Stream ``{"source-ref": ...}`` records for an S3 prefix or a local folder.

    Args:
        source: ``s3://bucket/prefix/`` or a local folder.
        s3_prefix: for a folder, the ``s3://bucket/prefix/`` the files are (or will be)
            uploaded to; required for folders, ignored for S3 sources.
        extensions: suffixes to keep (case-insensitive); ``None`` keeps all files.
        exclude: glob patterns on the key relative to the source.
        extra: attributes added to every line (copied by Ground Truth into the output).
    """
    extra = dict(extra or {})
    problems = [
        f"extra attribute {name!r} is reserved or starts with '$'"
        for name in extra
        if name in ("source-ref", "source") or name.startswith("$")
    ]
    problems += _json_problems(extra, "extra attributes")
    if problems:
        raise ValidationError(problems, what="extra attributes")
    text = os.fspath(source)
    if is_s3_uri(text):
        store = store if store is not None else S3Store()
        for obj in store.iter_objects(text, extensions=extensions, exclude=exclude):
            yield {"source-ref": obj.uri, **extra}
        return
    if not Path(text).is_dir():
        raise StorageError(f"{text}: not a folder (nor an s3:// prefix)")
    if s3_prefix is None:
        raise ValidationError(
            [f"{text} is a local folder: give the s3://bucket/prefix/ its files are uploaded to"],
            what="manifest source",
        )
    _bucket, prefix_key = parse_s3_uri(s3_prefix, require_key=False)
    prefix_key = prefix_key.rstrip("/") + "/" if prefix_key.rstrip("/") else ""  # as joined
    for key in iter_folder_keys(
        text, extensions=extensions, exclude=exclude, key_prefix=prefix_key
    ):
        yield {"source-ref": join_location(s3_prefix, key), **extra}


def write_input_manifest(
    source: Location,
    out: Location,
    *,
    s3_prefix: str | None = None,
    extensions: Iterable[str] | None = DEFAULT_IMAGE_EXTENSIONS,
    exclude: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
    store: S3Store | None = None,
) -> int:
    """Write the input manifest for ``source`` to ``out`` (local or S3); return the line count."""
    records = iter_input_records(
        source,
        s3_prefix=s3_prefix,
        extensions=extensions,
        exclude=exclude,
        extra=extra,
        store=store,
    )
    return write_manifest(records, out, store=store)
