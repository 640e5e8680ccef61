"""Seeded subsamples and stable splits."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gt_toolkit.formats.sampling import (
    Splitter,
    hash_unit,
    percent_to_count,
    sample_items,
    sample_percent,
    split_name,
)


def _refs(n: int, start: int = 0) -> list[str]:
    return [f"s3://my-bucket/img_{i:05d}.jpg" for i in range(start, start + n)]


def test_sample_is_deterministic_sized_and_in_original_order() -> None:
    refs = _refs(1000)
    a = sample_items(refs, count=200, seed=7, key=str)
    b = sample_items(iter(refs), count=200, seed=7, key=str)
    assert a.items == b.items
    assert len(a.items) == 200 and a.total == 1000
    assert a.indices == sorted(a.indices)
    assert [refs[i] for i in a.indices] == a.items


def test_different_seeds_pick_differently() -> None:
    refs = _refs(1000)
    a = sample_items(refs, count=100, seed=1, key=str).items
    b = sample_items(refs, count=100, seed=2, key=str).items
    assert a != b


def test_sample_is_the_k_smallest_hashes() -> None:
    refs = _refs(300)
    expected = sorted(sorted(refs, key=lambda r: hash_unit(r, 3))[:30])
    assert sorted(sample_items(refs, count=30, seed=3, key=str).items) == expected


@pytest.mark.parametrize(
    ("percent", "n", "k"),
    [(20, 40, 8), (10, 5, 0), (50, 3, 2), (100, 7, 7), (33.3, 1000, 333), (0.1, 999, 1)],
)
def test_percent_follows_the_console_rounding(percent: float, n: int, k: int) -> None:
    assert percent_to_count(percent, n) == k


@pytest.mark.parametrize(
    ("percent", "n", "k"),
    [(7, 150, 10), (7.0, 350, 24), (1.4, 250, 4), (2.8, 125, 4), (3.5, 300, 10), (1.8, 250, 4)],
)
def test_percent_rounds_an_exact_half_to_even(percent: float, n: int, k: int) -> None:
    """7% of 150 is 10.5, which half to even makes 10; in floats 0.07 * 150 is
    10.500000000000002 and gave 11, and 1.4% of 250 (3.5) gave 3 instead of 4."""
    assert percent_to_count(percent, n) == k


@pytest.mark.parametrize(
    ("percent", "n", "k"),
    [
        (np.float64(7), 150, 10),
        (np.float64(1.4), 250, 4),
        (np.float32(50), 150, 75),
        (np.int64(7), 150, 10),
        # a float32 1.4 is 1.399999976158142 as a float: 3.49999 of 250, rounded to 3
        (np.float32(1.4), 250, 4),
        (np.float32(0.3), 1500, 4),  # 4.5000001: 5, where a half goes to even
    ],
    ids=["float64", "float64-1.4", "float32", "int64", "float32-1.4", "float32-0.3"],
)
def test_a_numpy_percent_counts_as_its_value(percent: float, n: int, k: int) -> None:
    """The exact rule read a float's repr, and a numpy float64 (a float subclass, from a
    pandas config) is 'np.float64(7.0)': 'Invalid literal for Fraction', a traceback."""
    assert percent_to_count(percent, n) == k
    refs = _refs(n)
    assert len(sample_percent(lambda: refs, percent=percent, seed=0, key=str).items) == k


def test_count_larger_than_input_keeps_everything() -> None:
    refs = _refs(5)
    assert sample_items(refs, count=50, seed=0, key=str).items == refs


def test_sample_is_roughly_uniform() -> None:
    # Each of 10 blocks of 1,000 items should get about a tenth of a 2,000 sample.
    refs = _refs(10_000)
    chosen = sample_items(refs, count=2000, seed=11, key=str).indices
    per_block = [sum(1 for i in chosen if b * 1000 <= i < (b + 1) * 1000) for b in range(10)]
    assert all(140 <= c <= 260 for c in per_block), per_block


def test_split_is_stable_when_items_are_added() -> None:
    old = _refs(2000)
    before = {r: split_name(r, seed=5, validation_fraction=0.2) for r in old}
    grown = _refs(3000, start=0) + _refs(500, start=10_000)
    after = {r: split_name(r, seed=5, validation_fraction=0.2) for r in grown}
    assert all(after[r] == before[r] for r in old)
    share = sum(v == "validation" for v in after.values()) / len(after)
    assert 0.17 < share < 0.23


def test_split_extremes() -> None:
    assert split_name("s3://b/x", validation_fraction=0.0) == "train"
    assert split_name("s3://b/x", validation_fraction=1.0) == "validation"
    with pytest.raises(ValueError, match="validation_fraction"):
        split_name("s3://b/x", validation_fraction=1.5)


@given(st.lists(st.text(max_size=10), max_size=60), st.integers(0, 70), st.integers(0, 5))
def test_sample_size_and_membership(items: list[str], count: int, seed: int) -> None:
    result = sample_items(items, count=count, seed=seed, key=str)
    assert len(result.items) == min(count, len(items))
    assert result.indices == sorted(set(result.indices))
    assert [items[i] for i in result.indices] == result.items


@given(st.lists(st.text(max_size=10), min_size=1, max_size=40, unique=True), st.integers(0, 40))
def test_sample_does_not_depend_on_input_order(items: list[str], count: int) -> None:
    a = sample_items(items, count=count, seed=1, key=str).items
    b = sample_items(list(reversed(items)), count=count, seed=1, key=str).items
    assert sorted(a) == sorted(b)


@given(
    st.lists(st.text(max_size=8), max_size=300),
    st.floats(0, 100, allow_nan=False),
    st.integers(0, 3),
)
def test_one_pass_percent_equals_the_counted_sample(
    items: list[str], percent: float, seed: int
) -> None:
    calls: list[int] = []

    def factory() -> list[str]:
        calls.append(1)
        return items

    got = sample_percent(factory, percent=percent, seed=seed, key=str)
    want = sample_items(items, count=percent_to_count(percent, len(items)), seed=seed, key=str)
    assert (got.items, got.indices, got.total) == (want.items, want.indices, want.total)


def test_percent_is_one_pass_on_a_large_input() -> None:
    refs = _refs(20_000)
    calls: list[int] = []

    def factory() -> list[str]:
        calls.append(1)
        return refs

    got = sample_percent(factory, percent=10, seed=4, key=str)
    assert calls == [1]
    assert got.items == sample_items(refs, count=2000, seed=4, key=str).items


def test_percent_falls_back_to_a_second_pass_when_the_bound_was_too_tight() -> None:
    refs = _refs(2_000)
    calls: list[int] = []

    def factory() -> list[str]:
        calls.append(1)
        return refs

    # A negative margin keeps too few candidates: the result must still be exact.
    got = sample_percent(factory, percent=30, seed=2, key=str, margin=-3.0)
    assert calls == [1, 1]
    assert got.items == sample_items(refs, count=600, seed=2, key=str).items


@given(
    st.lists(
        st.tuples(st.text(max_size=6), st.frozensets(st.sampled_from("abcd"), max_size=3)),
        max_size=80,
        unique_by=lambda item: item[0],
    ),
    st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0]),
)
def test_stratified_split_gives_every_stratum_its_share_of_smallest_hashes(
    items: list[tuple[str, frozenset[str]]], fraction: float
) -> None:
    splitter = Splitter(validation_fraction=fraction, seed=7)
    splitter.plan(items)
    got = [splitter(key) for key, _ in items]
    counts = Counter(c for _, classes in items for c in classes)
    strata: dict[str, list[int]] = {}
    for i, (_, classes) in enumerate(items):
        rarest = min(classes, key=lambda c: (counts[c], c)) if classes else ""
        strata.setdefault(rarest, []).append(i)
    for members in strata.values():
        ranked = sorted(members, key=lambda i: (splitter.unit(items[i][0]), i))
        chosen = set(ranked[: round(fraction * len(members))])
        assert {i for i in members if got[i] == "validation"} == chosen
    with pytest.raises(ValueError, match="not among the items"):
        splitter("one too many")


@given(
    st.lists(
        st.tuples(st.text(max_size=6), st.frozensets(st.sampled_from("abcd"), max_size=3)),
        max_size=60,
        unique_by=lambda item: item[0],  # a key listed twice: its first planned item is its
    ),
    st.sampled_from([0.1, 0.25, 0.5]),
    st.data(),
)
def test_items_left_out_after_planning_do_not_shift_the_plan(
    items: list[tuple[str, frozenset[str]]], fraction: float, data: st.DataObject
) -> None:
    """The converting pass refuses some planned records (duplicates, images with no size).

    Each later item took the split planned for the one before it: a rare class's planned
    validation images went to the records after them (with 20 of 40 common-class records
    refused, a rare class planned at 5 of 10 validation images got 3 or 6).
    """
    full = Splitter(validation_fraction=fraction, seed=3)
    full.plan(items)
    planned = [full(key) for key, _ in items]
    kept = [i for i in range(len(items)) if data.draw(st.booleans(), label=f"keep {i}")]
    splitter = Splitter(validation_fraction=fraction, seed=3)
    splitter.plan(items)
    assert [splitter(items[i][0]) for i in kept] == [planned[i] for i in kept]


def test_split_name_is_the_splitters_rule() -> None:
    splitter = Splitter(validation_fraction=0.3, seed=2)
    keys = _refs(500)
    assert [splitter(k) for k in keys] == [
        split_name(k, seed=2, validation_fraction=0.3) for k in keys
    ]
    assert all(splitter.unit(k) == hash_unit(k, "split:2") for k in keys)


def test_a_refused_item_does_not_lend_its_split_to_a_look_alike_key() -> None:
    """The plan knew each item by 4 bytes of its split hash; two keys that share them (one
    pair in 2**32, found here among some 50k keys) are told apart. When the converting pass
    refused the first, the second took its planned split: a validation image went to train,
    and its class got one validation image fewer than planned."""
    probe = Splitter(validation_fraction=0.5, seed=0)
    top: dict[int, str] = {}
    for n in itertools.count():
        key = f"s3://b/img{n}.jpg"
        first = top.setdefault(int(probe.unit(key) * 2**32), key)
        if first != key:
            break
    for j in itertools.count():  # other items of their strata, till the two are split apart
        items = [(first, ["rare"]), (key, ["common"]), (f"s3://b/r{j}.jpg", ["rare"])]
        items += [(f"s3://b/c{j}.jpg", ["common"]), (f"s3://b/d{j}.jpg", ["common"])]
        planned = Splitter(validation_fraction=0.5, seed=0)
        planned.plan(items)
        expected = {k: planned(k) for k, _ in items}
        if expected[first] != expected[key]:
            break
    splitter = Splitter(validation_fraction=0.5, seed=0)
    splitter.plan(items)
    asked = [k for k, _ in items if k != first]  # the converter refused the first one
    assert {k: splitter(k) for k in asked} == {k: expected[k] for k in asked}


@pytest.mark.parametrize("percent", ["NaN", "sNaN", "-0.1", "100.5"])
def test_a_decimal_percent_out_of_range_or_nan_is_a_validation_error(percent: str) -> None:
    """7bb3c7e reads a Decimal percent exactly; a Decimal NaN compared with 0 raised
    decimal.InvalidOperation out of the range check, not the ValidationError it gives for a
    float NaN."""
    from decimal import Decimal

    from gt_toolkit.errors import ValidationError

    with pytest.raises(ValidationError, match=r"percent must be within 0\.\.100"):
        percent_to_count(Decimal(percent), 250)


@given(
    key=st.text(max_size=40),
    seed=st.one_of(st.integers(-(10**6), 10**6), st.text(max_size=8)),
    fraction=st.floats(0, 1),
)
def test_the_splits_inlined_hash_is_hash_unit(key: str, seed: int | str, fraction: float) -> None:
    """Splitter.__call__ hashes inline (once per converted line): it must stay hash_unit."""
    want = "validation" if hash_unit(key, f"split:{seed}") < fraction else "train"
    assert Splitter(validation_fraction=fraction, seed=seed)(key) == want


def _documented_hash(key: str, seed: int | str) -> float:
    """hash_unit as its docstring states it, written plainly: one blake2b over the whole input."""
    import hashlib

    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@given(
    keys=st.lists(st.text(max_size=60), min_size=1, max_size=5),
    seed=st.one_of(st.integers(-(10**6), 10**6), st.text(max_size=8)),
    fraction=st.floats(0, 1),
)
def test_the_salted_hash_copies_are_the_documented_hash(
    keys: list[str], seed: int | str, fraction: float
) -> None:
    """hash_unit, Splitter.unit and Splitter() copy a blake2b pre-fed with the seed per key
    instead of hashing seed + key anew: every key gives the plain hash's number and split,
    however many keys one pre-fed object served before (a copy must leave it untouched)."""
    splitter = Splitter(validation_fraction=fraction, seed=seed)
    for key in keys:
        want = _documented_hash(key, f"split:{seed}")
        assert hash_unit(key, f"split:{seed}") == want
        assert splitter.unit(key) == want
        assert splitter(key) == ("validation" if want < fraction else "train")
        assert hash_unit(key, seed) == _documented_hash(key, seed)
    sample = sample_items(keys, count=2, seed=seed, key=str)
    plain = sorted(range(len(keys)), key=lambda i: (_documented_hash(keys[i], seed), i))[:2]
    assert sample.indices == sorted(plain)
