"""Progress bars on stderr, only when a person is watching a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(
    items: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it"
) -> Iterator[T]:
    """Wrap ``items`` in a tqdm bar on stderr when stderr is a terminal, else pass through."""
    if not sys.stderr.isatty():
        yield from items
        return
    yield from tqdm(items, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)
