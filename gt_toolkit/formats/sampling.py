"""Reproducible subsamples and stable train/validation splits.

Both are driven by a keyed hash of each item's identity (its ``source-ref``, or ``source``)
and the seed, not by a random stream. So the same seed always gives the same choice, and
adding new items to a manifest never moves old items between train and validation.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

__all__ = [
    "SampleResult",
    "hash_unit",
    "item_key",
    "percent_to_count",
    "sample_items",
    "sample_percent",
    "split_items",
    "split_name",
]

T = TypeVar("T")
SplitName = Literal["train", "validation"]


def item_key(data: Mapping[str, Any]) -> str:
    """The identity of a manifest object: ``source-ref``, else ``source``."""
    for name in ("source-ref", "source"):
        value = data.get(name)
        if isinstance(value, str):
            return value
    raise KeyError("the object has neither 'source-ref' nor 'source'")


def hash_unit(key: str, seed: int | str) -> float:
    """A uniform number in [0, 1) fixed by ``(seed, key)``: blake2b, not Python's ``hash``."""
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def percent_to_count(percent: float, total: int) -> int:
    """The console's rule: ``k = round(percent / 100 * n)`` (Python's round, half to even)."""
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be within 0..100, got {percent}")
    return round(percent / 100 * total)


@dataclass(slots=True)
class SampleResult(Generic[T]):
    """The chosen items in their original order, with what a report needs."""

    items: list[T]
    indices: list[int]
    total: int
    seed: int | str
    requested: int
    keys: list[str] = field(default_factory=list)


def sample_items(
    items: Iterable[T],
    *,
    count: int,
    seed: int | str = 0,
    key: Callable[[T], str],
) -> SampleResult[T]:
    """Pick ``count`` items in one pass (bottom-k reservoir), keeping their original order.

    Each item's priority is :func:`hash_unit` of its key; the ``count`` smallest win, ties
    broken by position. Memory is O(count), whatever the input size.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    heap: list[tuple[float, int, str, T]] = []  # max-heap on (priority, index) via negation
    total = 0
    for index, item in enumerate(items):
        total += 1
        if count == 0:
            continue
        k = key(item)
        entry = (-hash_unit(k, seed), -index, k, item)
        if len(heap) < count:
            heapq.heappush(heap, entry)
        elif entry > heap[0]:
            heapq.heapreplace(heap, entry)
    chosen = sorted(heap, key=lambda e: -e[1])
    return SampleResult(
        items=[e[3] for e in chosen],
        indices=[-e[1] for e in chosen],
        total=total,
        seed=seed,
        requested=count,
        keys=[e[2] for e in chosen],
    )


def sample_percent(
    items: Callable[[], Iterable[T]],
    *,
    percent: float,
    seed: int | str = 0,
    key: Callable[[T], str],
    margin: float = 6.0,
) -> SampleResult[T]:
    """Pick ``round(percent/100 * n)`` items in one pass without knowing ``n`` in advance.

    The sample is exactly :func:`sample_items` with that count (the smallest hashes win), but
    ``n`` is only known at the end. Hashes are uniform, so the k-th smallest of ``n`` lies
    within a few standard deviations of ``p``: the pass keeps only items whose hash is below
    a bound that shrinks as items arrive (``p`` plus ``margin`` standard deviations), about
    ``p * n`` items in memory. At the end, if at least ``k`` kept items lie below the final
    bound, every item of the true sample was kept and the answer is exact. Otherwise (odds
    around 1e-9 at the default margin) ``items`` is called again for a second, counting
    pass; that is why it is a factory.
    """
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be within 0..100, got {percent}")
    p = percent / 100

    def bound(t: int) -> float:
        return min(1.0, p + margin * math.sqrt(p * (1 - p) / t) + 1 / t)

    kept: list[tuple[float, int, str, T]] = []
    prune_at = 1024
    t = 0
    for t, item in enumerate(items(), start=1):
        k = key(item)
        u = hash_unit(k, seed)
        if u < bound(t):
            kept.append((u, t - 1, k, item))
            if len(kept) >= prune_at:
                limit = bound(t)
                kept = [e for e in kept if e[0] < limit]
                prune_at = max(1024, 2 * len(kept))
    count = percent_to_count(percent, t)
    final = bound(t) if t else 1.0
    below = sorted(e for e in kept if e[0] < final)
    if len(below) < count:  # the true sample may hold an item the pass let go
        return sample_items(items(), count=count, seed=seed, key=key)
    chosen = sorted(below[:count], key=lambda e: e[1])
    return SampleResult(
        items=[e[3] for e in chosen],
        indices=[e[1] for e in chosen],
        total=t,
        seed=seed,
        requested=count,
        keys=[e[2] for e in chosen],
    )


def split_name(key: str, *, seed: int | str = 0, validation_fraction: float) -> SplitName:
    """Assign one item to ``train`` or ``validation`` from its key alone (stable)."""
    if not 0 <= validation_fraction <= 1:
        raise ValueError(f"validation_fraction must be within 0..1, got {validation_fraction}")
    # A different salt from sampling, so a sample and its split are independent.
    return "validation" if hash_unit(key, f"split:{seed}") < validation_fraction else "train"


def split_items(
    items: Iterable[T],
    *,
    validation_fraction: float,
    seed: int | str = 0,
    key: Callable[[T], str],
) -> Iterator[tuple[SplitName, T]]:
    """Stream ``(split, item)`` pairs; see :func:`split_name`."""
    for item in items:
        yield split_name(key(item), seed=seed, validation_fraction=validation_fraction), item
