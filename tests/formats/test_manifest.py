"""Manifest parsing, rejects, policies and atomic writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gt_toolkit import ManifestError, read_manifest, write_manifest
from gt_toolkit.formats.manifest import (
    MAX_LINE_CHARS,
    ManifestLine,
    ReadStats,
    RejectedLine,
    RejectReason,
    dataset_object_id,
    iter_accepted_lines,
    parse_line,
    parse_manifest_lines,
)
from gt_toolkit.storage.s3 import S3Store, bucket_name_problem

GOOD = b'{"source-ref": "s3://my-bucket/a.jpg"}'

# One row per reject reason the issue names: (raw line, expected reason).
BAD_LINES = [
    pytest.param(b'{"source-ref": "s3://my-bucket/a.jpg"', RejectReason.INVALID_JSON, id="json"),
    pytest.param(b'["s3://my-bucket/a.jpg"]', RejectReason.NOT_OBJECT, id="array"),
    pytest.param(b'"just a string"', RejectReason.NOT_OBJECT, id="string"),
    pytest.param(b'{"image": "s3://my-bucket/a.jpg"}', RejectReason.NO_SOURCE, id="no-source"),
    pytest.param(
        b'{"source-ref": "https://my-bucket.s3.amazonaws.com/a.jpg"}',
        RejectReason.BAD_SOURCE_REF,
        id="https-ref",
    ),
    pytest.param(b'{"source-ref": "s3://my-bucket/"}', RejectReason.BAD_SOURCE_REF, id="no-key"),
    pytest.param(b'{"source-ref": "s3://B/a.jpg"}', RejectReason.BAD_SOURCE_REF, id="bad-bucket"),
    pytest.param(b'{"source-ref": 7}', RejectReason.BAD_SOURCE_REF, id="ref-not-string"),
    pytest.param(b'{"source": 7}', RejectReason.BAD_SOURCE, id="source-not-string"),
    pytest.param(
        b'{"source-ref": "s3://my-bucket/a.jpg", "$x": 1}',
        RejectReason.DOLLAR_ATTRIBUTE,
        id="dollar",
    ),
    pytest.param(
        b'{"source-ref": "s3://my-bucket/a.jpg", "\\u0024x": 1}',
        RejectReason.DOLLAR_ATTRIBUTE,
        id="escaped-dollar",
    ),
    pytest.param(
        b'{"source-ref": "s3://my-bucket\\n/a.jpg"}', RejectReason.BAD_SOURCE_REF, id="newline"
    ),
    pytest.param(b'{"source-ref": "s3://my..bucket/a"}', RejectReason.BAD_SOURCE_REF, id="dots"),
    pytest.param(
        b'{"source-ref": "s3://my.-bucket/a"}', RejectReason.BAD_SOURCE_REF, id="dot-dash"
    ),
    pytest.param(b'{"source-ref": "s3://10.0.0.1/a"}', RejectReason.BAD_SOURCE_REF, id="ip"),
    pytest.param(b'{"source-ref": "s3://xn--bucket/a"}', RejectReason.BAD_SOURCE_REF, id="xn"),
    pytest.param(b'{"source-ref": "s3://b-s3alias/a"}', RejectReason.BAD_SOURCE_REF, id="alias"),
    pytest.param(
        b'{"source-ref": null, "source": "text"}', RejectReason.BAD_SOURCE_REF, id="null-ref"
    ),
    pytest.param(
        b'{"source-ref": "s3://B/a.jpg", "source-ref": "s3://my-bucket/a.jpg"}',
        RejectReason.DUPLICATE_SOURCE,
        id="repeated-ref",
    ),
    pytest.param(
        b'{"source-ref": "bad", "source\\u002dref": "s3://my-bucket/a.jpg"}',
        RejectReason.DUPLICATE_SOURCE,
        id="repeated-escaped-ref",
    ),
    pytest.param(b'{"source": 1, "source": "ok"}', RejectReason.DUPLICATE_SOURCE, id="repeated"),
    pytest.param(b"\xef\xbb\xbf" + GOOD, RejectReason.BOM, id="bom"),
    pytest.param(b'{"source": "caf\xe9"}', RejectReason.INVALID_UTF8, id="latin1"),
    pytest.param(
        b'{"source": "' + b"x" * MAX_LINE_CHARS + b'"}', RejectReason.TOO_LONG, id="too-long"
    ),
]


@pytest.mark.parametrize(("raw", "reason"), BAD_LINES)
def test_each_bad_line_is_rejected_with_its_reason(raw: bytes, reason: RejectReason) -> None:
    items = list(parse_manifest_lines([GOOD, raw, GOOD], source="m.manifest"))
    assert [type(i) for i in items] == [ManifestLine, RejectedLine, ManifestLine]
    rejected = items[1]
    assert isinstance(rejected, RejectedLine)
    assert rejected.reason is reason
    assert rejected.line_no == 2
    assert rejected.raw == raw
    assert str(rejected).startswith("m.manifest:2: ")


def test_long_line_counts_characters_not_bytes() -> None:
    # 60,000 two-byte characters: 120,000 bytes but fewer characters than the limit.
    raw = orjson.dumps({"source": "é" * 60_000})
    assert len(raw) > MAX_LINE_CHARS
    (item,) = parse_manifest_lines([raw], source="m")
    assert isinstance(item, ManifestLine)


def test_text_source_and_extra_keys_are_accepted() -> None:
    raw = b'{"source": "The parcel arrived late", "site": "plant-7"}'
    (item,) = parse_manifest_lines([raw], source="m")
    assert isinstance(item, ManifestLine)
    assert item.data == {"source": "The parcel arrived late", "site": "plant-7"}


@pytest.mark.parametrize(
    ("lines", "ids"),
    [
        ([GOOD, GOOD, GOOD], [0, 1, 2]),
        ([GOOD, b"", GOOD, b"  ", b"", GOOD, b""], [0, 1, 2]),  # blank lines take no number
        ([b"", GOOD, GOOD], [0, 1]),
        ([GOOD, b"{not json", GOOD], [0, 2]),  # a rejected line keeps its number
    ],
)
def test_dataset_object_id_counts_every_line_but_blank_ones(
    tmp_path: Path, lines: list[bytes], ids: list[int]
) -> None:
    path = tmp_path / "m.manifest"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    blank: list[int] = []
    read = read_manifest(path, policy="collect", blank_lines=blank)
    assert [dataset_object_id(line.line_no, blank) for line in read] == ids


def test_crlf_and_blank_lines() -> None:
    blank: list[int] = []
    items = list(parse_manifest_lines([GOOD + b"\r", b"", b"  ", GOOD], source="m", blank=blank))
    assert [i.line_no for i in items] == [1, 4]
    assert blank == [2, 3]
    assert all(isinstance(i, ManifestLine) and i.raw == GOOD for i in items)


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_strict_policy_names_file_line_and_reason(tmp_path: Path) -> None:
    path = _write(tmp_path / "in.manifest", [GOOD, GOOD, b"{nope"])
    with pytest.raises(ManifestError) as info:
        list(read_manifest(path))
    assert str(info.value).startswith(f"{path}:3: invalid-json")
    assert info.value.line_no == 3


def test_collect_policy_keeps_going_and_writes_every_reject(tmp_path: Path) -> None:
    lines = [GOOD] + [p.values[0] for p in BAD_LINES] + [GOOD]  # type: ignore[misc]
    path = _write(tmp_path / "in.manifest", lines)
    rejects = tmp_path / "rejects.jsonl"
    stats = ReadStats()
    accepted = list(read_manifest(path, policy="collect", rejects=rejects, stats=stats))
    assert [a.line_no for a in accepted] == [1, len(lines)]
    records = [json.loads(r) for r in rejects.read_text().splitlines()]
    assert [r["line"] for r in records] == list(range(2, len(lines)))
    assert {r["file"] for r in records} == {str(path)}
    assert [r["reason"] for r in records] == [p.values[1].value for p in BAD_LINES]  # type: ignore[union-attr]
    # The raw text is kept (undecodable bytes as escapes), so nothing is lost.
    assert records[0]["raw"] == lines[1].decode()
    assert "\\xe9" in next(r["raw"] for r in records if r["reason"] == "invalid-utf8")
    assert stats.accepted == 2 and stats.rejected_total == len(BAD_LINES)
    assert stats.lines == len(lines)
    assert "rejected" in stats.summary()


def test_no_rejects_file_when_everything_is_fine(tmp_path: Path) -> None:
    path = _write(tmp_path / "in.manifest", [GOOD, GOOD])
    rejects = tmp_path / "rejects.jsonl"
    assert len(list(read_manifest(path, policy="collect", rejects=rejects))) == 2
    assert not rejects.exists()


def test_final_line_without_newline_is_read(tmp_path: Path) -> None:
    path = tmp_path / "in.manifest"
    path.write_bytes(GOOD + b"\n" + GOOD)
    assert [m.line_no for m in read_manifest(path)] == [1, 2]


def test_write_is_atomic_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out.manifest"
    out.write_text("old\n")

    def records() -> Any:
        yield {"source-ref": "s3://my-bucket/a.jpg"}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_manifest(records(), out)
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.manifest"]


def test_s3_read_and_write_round_trip(store: S3Store, bucket: str) -> None:
    uri = f"s3://{bucket}/m/in.manifest"
    store.put_bytes(uri, GOOD + b"\n{bad\n" + GOOD + b"\n")
    rejects = f"s3://{bucket}/m/rejects.jsonl"
    lines = list(read_manifest(uri, policy="collect", rejects=rejects, store=store))
    assert len(lines) == 2
    assert json.loads(store.get_bytes(rejects))["line"] == 2
    out = f"s3://{bucket}/m/out.manifest"
    assert write_manifest(lines, out, store=store) == 2
    assert store.get_bytes(out) == GOOD + b"\n" + GOOD + b"\n"


def test_s3_write_uploads_nothing_on_failure(store: S3Store, bucket: str) -> None:
    out = f"s3://{bucket}/out.manifest"

    def records() -> Any:
        yield {"source-ref": "s3://my-bucket/a.jpg"}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_manifest(records(), out, store=store)
    assert not store.exists(out)


# -- properties --------------------------------------------------------------------------
keys = st.text(min_size=1, max_size=12).filter(lambda k: not k.startswith("$"))
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
bucket_names = st.from_regex(r"[a-z0-9][a-z0-9\-]{1,20}[a-z0-9]", fullmatch=True).filter(
    lambda name: bucket_name_problem(name) is None
)
object_keys = st.text(min_size=1, max_size=30).filter(lambda k: "\n" not in k)


@given(
    bucket=bucket_names,
    key=object_keys,
    extra=st.dictionaries(
        keys.filter(lambda k: k not in ("source-ref", "source")), values, max_size=5
    ),
)
def test_accepted_lines_round_trip(bucket: str, key: str, extra: dict[str, Any]) -> None:
    record = {"source-ref": f"s3://{bucket}/{key}", **extra}
    raw = orjson.dumps(record)
    (item,) = parse_manifest_lines([raw], source="m")
    assert isinstance(item, ManifestLine)
    assert item.data == record
    assert orjson.loads(orjson.dumps(item.data)) == record


@given(st.lists(st.binary(max_size=60), max_size=8))
def test_every_nonblank_line_is_accepted_or_rejected_never_dropped(lines: list[bytes]) -> None:
    lines = [line.replace(b"\n", b" ") for line in lines]
    blank: list[int] = []
    items = list(parse_manifest_lines(lines, source="m", blank=blank))
    assert sorted([i.line_no for i in items] + blank) == list(range(1, len(lines) + 1))


# Lines built from parts that sit near the rules: "$" names (also escaped), repeated and
# escaped source keys, bucket names that break one rule each, values of the wrong type.
_NAMES = [
    '"source-ref"',
    '"source"',
    '"source\\u002dref"',
    '"\\u0073ource"',
    '"$x"',
    '"\\u0024x"',
    '"x$"',
    '"label"',
    '"sources"',
]
_BUCKETS = st.sampled_from(
    ["my-bucket", "bkt", "my.bucket", "b\\n", "B", "my..b", "a.-b", "1.2.3.4", "xn--b", "b-s3alias"]
) | st.from_regex(r"[a-z0-9.\-]{1,8}", fullmatch=True)
_VALUES = st.one_of(
    st.builds(
        lambda b, k: f'"s3://{b}/{k}"', _BUCKETS, st.sampled_from(["", "a.jpg", "d/\\u00e9"])
    ),
    st.sampled_from(["null", "7", '"text"', "[]", '{"source-ref": "s3://bkt/a"}', '"s3://"']),
)
_PAIRS = st.lists(st.tuples(st.sampled_from(_NAMES), _VALUES), max_size=4)
_LINES = st.builds(
    lambda pairs: ("{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}").encode(), _PAIRS
)


def _slow_verdict(raw: bytes) -> object:
    parsed = parse_line(raw)
    return parsed[0] if isinstance(parsed, tuple) else parsed


@given(st.lists(_LINES | st.binary(min_size=1, max_size=40), min_size=1, max_size=6))
def test_the_fast_path_gives_the_rule_checks_verdict_on_every_line(lines: list[bytes]) -> None:
    lines = [line.replace(b"\n", b" ") for line in lines]
    assume(all(line.strip() for line in lines))
    verdicts: dict[int, object] = {}
    for item in iter_accepted_lines(
        lines,
        source="m",
        require_source=True,
        on_reject=lambda r: verdicts.setdefault(r.line_no, r.reason),
        blank=[],
    ):
        verdicts[item.line_no] = item.data
    assert [verdicts[n] for n in range(1, len(lines) + 1)] == [_slow_verdict(x) for x in lines]
