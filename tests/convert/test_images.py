"""Image file names in converted datasets: unique, stable, and always one plain file name."""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gt_toolkit.convert import images
from gt_toolkit.convert.images import MAX_NAME_BYTES, ImageNamer, windows_unsafe
from gt_toolkit.storage.files import folded


def test_same_stems_get_a_hash_and_the_first_keeps_its_name() -> None:
    namer = ImageNamer()
    first = namer("s3://b/a/img.jpg")
    second = namer("s3://b/b/img.jpg")
    assert first == "img.jpg"
    assert second != first and second.startswith("img-") and second.endswith(".jpg")
    assert namer("s3://b/a/img.jpg") == first  # stable for a source-ref seen again


def test_a_key_ending_in_dot_dot_is_not_the_parent_folder() -> None:
    assert ImageNamer()("s3://b/a/..") == "image"


@given(st.lists(st.text(st.sampled_from("ab./-_"), min_size=1, max_size=12), max_size=20))
def test_every_name_is_one_plain_segment_and_distinct(keys: list[str]) -> None:
    namer = ImageNamer()
    refs = list(dict.fromkeys(f"s3://bucket/{k}" for k in keys))
    names = [namer(ref) for ref in refs]
    for name in names:
        assert name not in ("", ".", "..") and "/" not in name
        assert PurePosixPath(name).name == name
    assert len(set(names)) == len(names)


def _stem_key(name: str) -> str:
    return PurePosixPath(name).stem.casefold()


def test_a_hashed_name_another_image_holds_is_hashed_again() -> None:
    """``c/img-<hash of b/img.jpg>.jpg`` (an export of this tool beside its originals) came
    first: ``b/img.jpg`` was given that same name, and its label file replaced c's."""
    clash = hashlib.blake2b(b"s3://b/b/img.jpg", digest_size=4).hexdigest()
    refs = [f"s3://b/c/img-{clash}.jpg", "s3://b/a/img.jpg", "s3://b/b/img.jpg"]
    namer = ImageNamer()
    names = [namer(ref) for ref in refs]
    assert names[:2] == [f"img-{clash}.jpg", "img.jpg"]
    assert len({_stem_key(n) for n in names}) == 3
    assert [namer(ref) for ref in refs] == names  # stable for source-refs seen again


def test_stems_that_differ_only_in_case_are_two_names() -> None:
    """``IMG.jpg`` and ``img.jpg`` are one file on a case-insensitive disk (macOS, Windows)."""
    namer = ImageNamer()
    names = [namer(r) for r in ("s3://b/a/IMG.jpg", "s3://b/b/img.jpg", "s3://b/c/Img.png")]
    assert names[0] == "IMG.jpg"
    assert len({_stem_key(n) for n in names}) == 3


@given(
    st.lists(st.text(st.sampled_from("aA./-_"), min_size=1, max_size=6), max_size=12),
    st.data(),
)
def test_stems_stay_distinct_among_names_that_look_hashed(keys: list[str], data: Any) -> None:
    """Some refs are named like the hashed names of others: every stem is still one file's."""
    refs = list(dict.fromkeys(f"s3://bucket/{k}" for k in keys))
    for ref in list(refs):
        if data.draw(st.booleans()):
            digest = hashlib.blake2b(ref.encode(), digest_size=4).hexdigest()
            stem = PurePosixPath(PurePosixPath(ref).name).stem
            refs.insert(0, f"s3://bucket/copy/{stem}-{digest}.jpg")
    refs = list(dict.fromkeys(refs))
    namer = ImageNamer()
    names = [namer(ref) for ref in refs]
    assert len({_stem_key(n) for n in names}) == len(names)


def test_a_hashed_name_reads_back_with_its_hashed_stem() -> None:
    """``A.`` has no suffix: the second ``A.`` was named ``A.-<hash>``, whose stem is ``A``
    (the suffix is ``.-<hash>``): its label file ``A.txt`` was the image ``A``'s. A name
    written to disk loses its final dot, which Windows drops (``A.`` would be ``A``)."""
    refs = ("s3://b/A", "s3://b/x/A.", "s3://b/y/A.", "s3://b/z/a.b.")
    for namer, second in ((ImageNamer(written=False), "A."), (ImageNamer(), "A-")):
        names = [namer(r) for r in refs]
        assert names[0] == "A" and names[1].startswith(second)
        assert len({_stem_key(n) for n in names}) == 4
        assert all(PurePosixPath(n).name == n for n in names)


def test_names_one_only_to_casefold_keep_their_own_names() -> None:
    """``Straße.jpg`` and ``Strasse.jpg`` are two files on every disk: the second was renamed
    (casefold maps ß to ss), where class folders and output paths follow the disks' rule."""
    namer = ImageNamer()
    refs = ["s3://b/a/Stra\u00dfe.jpg", "s3://b/b/Strasse.jpg", "s3://b/c/\ufb01le.jpg"]
    assert [namer(r) for r in refs] == ["Stra\u00dfe.jpg", "Strasse.jpg", "\ufb01le.jpg"]
    # and what such a disk takes as one file still gets a name of its own
    for twin in ("s3://b/d/STRASSE.jpg", "s3://b/e/stra\u1e9ee.jpg", "s3://b/f/\ufb01LE.jpg"):
        assert namer(twin) not in ("STRASSE.jpg", "stra\u1e9ee.jpg", "\ufb01LE.jpg")


def test_a_name_too_long_for_a_file_system_is_cut_and_hashed() -> None:
    """A 300-byte key name (S3 takes 1,024) failed the run with "File name too long"."""
    namer = ImageNamer()
    long_a = "s3://b/a/" + "\u00e9" * 150 + ".jpg"  # 304 bytes, two-byte letters
    long_b = "s3://b/b/" + "\u00e9" * 150 + ".jpg"  # the same name in another folder
    dotted = "s3://b/c/x." + "y" * 300  # an "extension" no image type has
    names = [namer(r) for r in (long_a, long_b, dotted, "s3://b/short.jpg")]
    assert all(len(n.encode()) <= MAX_NAME_BYTES for n in names)
    assert names[0].endswith(".jpg") and names[1].endswith(".jpg")
    assert names[0].startswith("\u00e9" * 90)  # cut at a whole letter
    assert names[3] == "short.jpg"
    assert len({_stem_key(n) for n in names}) == 4
    assert [namer(r) for r in (long_a, long_b, dotted)] == names[:3]  # stable
    assert ImageNamer()(long_a) == names[0]  # and from one run to the next
    assert PurePosixPath(names[2]).suffix == ""  # its label file is <name>.txt


@given(
    st.lists(
        st.tuples(
            st.text(st.sampled_from("aA\u00e9\u00c9\u00df."), min_size=1, max_size=3),
            st.integers(0, 130),
            st.sampled_from(["", ".jpg", ".JPG", ".jpeg", "." + "x" * 20]),
        ),
        max_size=8,
    )
)
def test_long_names_stay_short_distinct_and_stable(parts: list[tuple[str, int, str]]) -> None:
    """Names of any length, clashing or not: within the limit, one file each, the same again."""
    refs = list(
        dict.fromkeys(f"s3://bucket/{i % 2}/{s * n}{e}" for i, (s, n, e) in enumerate(parts))
    )
    namer = ImageNamer()
    names = [namer(ref) for ref in refs]
    assert all(0 < len(n.encode()) <= MAX_NAME_BYTES for n in names)
    assert all("/" not in n and n not in (".", "..") for n in names)
    assert len({folded(PurePosixPath(n).stem) for n in names}) == len(names)
    again = ImageNamer()
    assert [again(ref) for ref in refs] == names


def _pathlib_names(refs: list[str]) -> list[str]:
    """ImageNamer's names as it made them with PurePosixPath at every step (the reference)."""
    owner: dict[str, str] = {}
    names = []
    for ref in refs:
        base = PurePosixPath(ref).name
        p = PurePosixPath(base if base not in ("", "..") else "image")
        if images.windows_unsafe(p.name):  # CON.jpg, a. (the text holds dots)
            p = PurePosixPath(images._windows_safe(p.name, images._digest(ref)))
        name, salt = p.name, ""
        if len(name.encode()) > images.MAX_NAME_BYTES:
            name = images._hashed(p, images._digest(ref))
        while owner.setdefault(folded(PurePosixPath(name).stem), ref) != ref:
            name, salt = images._hashed(p, images._digest(f"{ref}{salt}")), f"{salt}#"
        names.append(name)
    return names


_REFS = st.builds(  # short names, and names over MAX_NAME_BYTES (cut and hashed)
    lambda text, tail: text + "é" * tail,
    st.text(alphabet="a/.É\u0301-", max_size=12),
    st.sampled_from([0, 0, 0, 130]),
)


@given(st.lists(_REFS, max_size=12))
def test_image_names_without_paths_are_pathlibs(refs: list[str]) -> None:
    """The namer takes a ref's name and stem by string ops; pathlib's rules still hold."""
    namer = ImageNamer()
    assert [namer(ref) for ref in refs] == _pathlib_names(refs)


@given(st.text(alphabet="CONnulAUXaux1.Lpt \u00b9-x", min_size=1, max_size=10))
def test_names_written_to_disk_are_ones_windows_can_hold(base: str) -> None:
    """Any name, device names and final dots and spaces among them: what the namer gives a
    file the run writes is one Windows can make, and a name it need not change stays."""
    ref = f"s3://b/k/{base}"
    name = ImageNamer()(ref)
    assert not windows_unsafe(name)
    assert "/" not in name and name not in (".", "..")
    if not windows_unsafe(PurePosixPath(ref).name or "image") and base not in (".", ".."):
        assert name == PurePosixPath(ref).name
