from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from gt_toolkit.convert import ConvertOptions, convert_output
from gt_toolkit.errors import ConversionError
from tests.helpers import DATA, image_mirror, read_jsonl

OUTPUTS = DATA / "outputs"
CONSOLE = OUTPUTS / "console-job.manifest"
API = OUTPUTS / "api-job.manifest"
CLASSIFIED = OUTPUTS / "classification-single.manifest"


def test_lst_single_and_multi_label(tmp_path: Path) -> None:
    out = tmp_path / "lst"
    result = convert_output(
        "lst",
        OUTPUTS / "classification-single.manifest",
        out,
        ConvertOptions(copy_images=False, validation_fraction=0),
    )
    rows = [x.split("\t") for x in (out / "train.lst").read_text().splitlines()]
    assert rows == [
        ["0", "1", "p1.jpg"],
        ["1", "0", "p2.jpg"],
        ["2", "0", "p3.jpg"],
        ["3", "2", "p4.jpg"],
    ]
    assert result.extra["class_index"] == {"0": "cat", "1": "dog", "2": "bird"}
    multi = tmp_path / "multi"
    convert_output(
        "lst",
        OUTPUTS / "classification-multi.manifest",
        multi,
        ConvertOptions(copy_images=False, validation_fraction=0),
    )
    rows = [x.split("\t") for x in (multi / "train.lst").read_text().splitlines()]
    assert rows[0] == ["0", "1", "1", "0", "s1.jpg"]
    assert rows[2] == ["2", "0", "0", "0", "s3.jpg"]


def test_class_folders_refuses_multi_label(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="single-label"):
        convert_output(
            "class-folders",
            OUTPUTS / "classification-multi.manifest",
            tmp_path / "f",
            ConvertOptions(images_dir=str(tmp_path)),
        )


def test_class_folders_downloads_from_s3_and_writes_back(
    store: Any, bucket: str, tmp_path: Path
) -> None:
    rows = []
    for i, (cls, name) in enumerate([(0, "cat"), (1, "dog"), (0, "cat")]):
        key = f"pets/p{i}.jpg"
        store.put_bytes(f"s3://{bucket}/{key}", f"image-{i}".encode())
        rows.append(
            {
                "source-ref": f"s3://{bucket}/{key}",
                "animal": cls,
                "animal-metadata": {
                    "class-name": name,
                    "type": "groundtruth/image-classification",
                    "creation-date": "2024-01-01T00:00:00",
                },
            }
        )
    store.put_bytes(f"s3://{bucket}/out/output.manifest", b"\n".join(orjson.dumps(r) for r in rows))
    local = tmp_path / "folders"
    result = convert_output(
        "class-folders", f"s3://{bucket}/out/output.manifest", local, ConvertOptions(store=store)
    )
    written = sorted(p.relative_to(local).as_posix() for p in local.rglob("*.jpg"))
    # each image in exactly one split, under its class folder
    assert sorted(w.split("/", 1)[1] for w in written) == ["cat/p0.jpg", "cat/p2.jpg", "dog/p1.jpg"]
    assert {w.split("/", 1)[0] for w in written} <= {"train", "validation"}
    dog = next(w for w in written if w.endswith("p1.jpg"))
    assert (local / dog).read_bytes() == b"image-1"
    split_of = {w.rsplit("/", 1)[1]: w.split("/", 1)[0] for w in written}
    missing = {
        f"class {name!r} has no {split} images"
        for name, images in (("cat", ["p0.jpg", "p2.jpg"]), ("dog", ["p1.jpg"]))
        for split in ("train", "validation")
        if split not in {split_of[i] for i in images}
    }
    assert set(result.notes) == missing
    # and S3 to S3
    convert_output(
        "class-folders",
        f"s3://{bucket}/out/output.manifest",
        f"s3://{bucket}/folders/",
        ConvertOptions(store=store),
    )
    assert store.get_bytes(f"s3://{bucket}/folders/{split_of['p2.jpg']}/cat/p2.jpg") == b"image-2"


def test_class_folders_refuses_two_classes_one_folder_name(tmp_path: Path) -> None:
    # "a/b" and "a_b" are two classes; made safe as folder names both would be "a_b"
    lines = (OUTPUTS / "classification-single.manifest").read_text().splitlines()
    renamed = [orjson.loads(line) for line in lines[:2]]
    renamed[0]["animal-metadata"]["class-name"] = "a/b"
    renamed[1]["animal-metadata"]["class-name"] = "a_b"
    src = tmp_path / "clash.manifest"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in renamed))
    with pytest.raises(ConversionError, match="'a/b' and 'a_b' would share the folder 'a_b'"):
        convert_output(
            "class-folders", src, tmp_path / "f", ConvertOptions(images_dir=str(tmp_path))
        )
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize(
    ("first", "second"),
    [("Dog", "dog"), ("\u00c9T\u00c9", "\u00e9t\u00e9")],
    ids=["case", "accented-case"],
)
def test_class_folders_refuses_two_classes_one_folder_on_a_case_insensitive_disk(
    tmp_path: Path, first: str, second: str
) -> None:
    """'Dog/' and 'dog/' are two folders here and one on a laptop's disk (APFS, NTFS): the
    dataset copied there had one class with both classes' images, and no word said so."""
    lines = (OUTPUTS / "classification-single.manifest").read_text().splitlines()
    renamed = [orjson.loads(line) for line in lines[:2]]
    renamed[0]["animal-metadata"]["class-name"] = first
    renamed[1]["animal-metadata"]["class-name"] = second
    src = tmp_path / "clash.manifest"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in renamed))
    for name in ("p1.jpg", "p2.jpg"):  # the images, found under --images-dir
        (tmp_path / name).write_bytes(b"image")
    with pytest.raises(ConversionError, match="case-insensitive disk") as refused:
        convert_output(
            "class-folders", src, tmp_path / "f", ConvertOptions(images_dir=str(tmp_path))
        )
    assert f"{first!r} and {second!r} would share the folder" in str(refused.value)
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize(
    ("first", "second"),
    [("Stra\u00dfe", "Strasse"), ("\ufb01sh", "fish"), ("Stra\u00dfe", "STRASSE")],
    ids=["sharp-s", "ligature", "sharp-s-upper"],
)
def test_class_folders_keeps_two_classes_that_casefold_alone_makes_one(
    tmp_path: Path, first: str, second: str
) -> None:
    """casefold() maps 'ß' to 'ss' and 'ﬁ' to 'fi'; no case-insensitive disk does (APFS and
    NTFS compare by simple case mapping): two classes, two folders, were refused."""
    lines = (OUTPUTS / "classification-single.manifest").read_text().splitlines()
    renamed = [orjson.loads(line) for line in lines[:2]]
    renamed[0]["animal-metadata"]["class-name"] = first
    renamed[1]["animal-metadata"]["class-name"] = second
    src = tmp_path / "two.manifest"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in renamed))
    for name in ("p1.jpg", "p2.jpg"):
        (tmp_path / name).write_bytes(b"image")
    options = ConvertOptions(images_dir=str(tmp_path), validation_fraction=0)
    convert_output("class-folders", src, tmp_path / "f", options)
    assert sorted(p.name for p in (tmp_path / "f" / "train").iterdir()) == sorted([first, second])


def test_lst_refuses_an_image_name_that_would_split_its_row(tmp_path: Path) -> None:
    lines = [orjson.loads(x) for x in CLASSIFIED.read_text().splitlines()]
    lines[2]["source-ref"] = lines[2]["source-ref"].replace("p3", "p\t3")
    src = tmp_path / "tab.manifest"
    src.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    with pytest.raises(ConversionError, match=r"line 3: the image name 'p\\t3.jpg'"):
        convert_output("lst", src, tmp_path / "lst", ConvertOptions(copy_images=False))
    assert not (tmp_path / "lst").exists()


@pytest.mark.parametrize("target", ["lst", "class-folders"])
def test_a_second_line_of_one_image_is_a_reject_not_a_second_class(
    tmp_path: Path, target: str
) -> None:
    """Two jobs' outputs concatenated: p1.jpg is a dog on line 1 and a cat on line 4.

    It was copied into both ``dog/`` and ``cat/`` (two rows of ``.lst``), exit 0: the
    per-image detection targets reject such a line as ``duplicate-source-ref``.
    """
    lines = [orjson.loads(x) for x in CLASSIFIED.read_text().splitlines()[:3]]
    again = {**lines[0], "animal": 0}
    again["animal-metadata"] = {**lines[0]["animal-metadata"], "class-name": "cat"}
    src = tmp_path / "twice.manifest"
    src.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in [*lines, again]))
    rejects = tmp_path / "rejects.jsonl"
    out = tmp_path / "out"
    options = ConvertOptions(
        validation_fraction=0, rejects=rejects, images_dir=str(image_mirror(tmp_path, src))
    )
    result = convert_output(target, src, out, options)
    assert result.stats.rejected == {"duplicate-source-ref": 1}
    assert result.stats.lost_total == 1  # the run reports a loss (exit 1)
    assert result.stats.objects == 3
    assert dict(result.stats.images_per_class) == {"dog": 1, "cat": 2}
    assert [(r["line"], r["reason"]) for r in read_jsonl(rejects)] == [(4, "duplicate-source-ref")]
    copies = sorted(p.relative_to(out / "train").as_posix() for p in (out / "train").rglob("*.jpg"))
    if target == "class-folders":
        assert copies == ["cat/p2.jpg", "cat/p3.jpg", "dog/p1.jpg"]
    else:
        assert copies == ["p1.jpg", "p2.jpg", "p3.jpg"]
        rows = [x.split("\t") for x in (out / "train.lst").read_text().splitlines()]
        assert [row[1:] for row in rows] == [["1", "p1.jpg"], ["0", "p2.jpg"], ["0", "p3.jpg"]]


def test_lst_keeps_what_each_row_needs_not_its_manifest_line(tmp_path: Path) -> None:
    """The rows wait for the class index; each held its whole record (the parsed line):
    with 16 kB of metadata per line, each line took 18 kB to the end of the run, now 1 to 3 kB."""
    import gc
    import tracemalloc

    line = orjson.loads(CLASSIFIED.read_text().splitlines()[0])
    line["animal-metadata"]["worker-notes"] = "x" * 16384

    def peak(lines: int) -> int:
        src = tmp_path / f"{lines}.manifest"
        with src.open("wb") as fh:
            for i in range(lines):
                line["source-ref"] = f"s3://gt-demo-bucket/pets/p{i}.jpg"
                fh.write(orjson.dumps(line) + b"\n")
        out = tmp_path / f"lst{lines}"
        gc.collect()
        tracemalloc.start()
        try:
            result = convert_output("lst", src, out, ConvertOptions(copy_images=False))
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            assert result.stats.objects == lines

    per_line = (peak(5000) - peak(1000)) / 4000
    assert per_line < 8192, f"{per_line:.0f} bytes per line"


@pytest.mark.parametrize("target", ["lst", "class-folders"])
def test_image_names_too_long_for_a_file_get_short_hashed_ones(
    tmp_path: Path, target: str, store: Any, bucket: str
) -> None:
    """A 304-byte key name failed the copy with "File name too long" (exit 1)."""
    lines = [orjson.loads(x) for x in CLASSIFIED.read_text().splitlines()]
    long_name = "\u00e9" * 150 + ".jpg"
    for i, line in enumerate(lines):
        line["source-ref"] = f"s3://{bucket}/{i}/{long_name}"
        store.put_bytes(line["source-ref"], b"image")
    src = tmp_path / "long.manifest"
    src.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    out = tmp_path / target
    result = convert_output(target, src, out, ConvertOptions(store=store, validation_fraction=0))
    images = list(out.rglob("*.jpg"))
    assert len(images) == result.stats.objects == 4  # the fifth line is a failed object
    assert len({p.name.casefold() for p in images}) == 4
    assert all(len(p.name.encode()) <= 200 for p in images)
    if target == "lst":
        rows = (out / "train.lst").read_text().splitlines()
        assert sorted(row.split("\t")[2] for row in rows) == sorted(p.name for p in images)


def test_class_folders_refuses_a_class_name_too_long_for_a_folder(tmp_path: Path) -> None:
    """The folder name is the class a trainer learns, so it is not cut: the run said only
    "File name too long" of a staged copy."""
    lines = [orjson.loads(x) for x in CLASSIFIED.read_text().splitlines()]
    lines[1]["animal-metadata"]["class-name"] = "cat " + "x" * 300
    src = tmp_path / "long.manifest"
    src.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    mirror = image_mirror(tmp_path, src)
    with pytest.raises(ConversionError, match=r"line 2: the class 'cat xx.*304 bytes.*255"):
        convert_output("class-folders", src, tmp_path / "f", ConvertOptions(images_dir=str(mirror)))
    assert not (tmp_path / "f").exists()


def test_class_folders_refuses_a_class_windows_reserves_as_a_device(tmp_path: Path) -> None:
    """A class ``aux`` made the folder ``train/aux/``, which Windows cannot make (a device
    name, whatever follows a dot): the folder name is the class, so it is not renamed."""
    lines = [orjson.loads(x) for x in CLASSIFIED.read_text().splitlines()]
    lines[1]["animal-metadata"]["class-name"] = "Aux.v2"
    src = tmp_path / "aux.manifest"
    src.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    mirror = image_mirror(tmp_path, src)
    with pytest.raises(ConversionError, match=r"^line 2: the class 'Aux.v2' makes the folder"):
        convert_output("class-folders", src, tmp_path / "f", ConvertOptions(images_dir=str(mirror)))
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("copy", [True, False])
def test_lst_names_an_image_windows_reserves_only_when_it_copies_it(
    tmp_path: Path, copy: bool
) -> None:
    """Copied, ``con.jpg`` is renamed as a long name is (Windows cannot make it); not
    copied, the row names the image's own file, where the job finds it."""
    lines = [orjson.loads(x) for x in CLASSIFIED.read_text().splitlines()]
    lines[0]["source-ref"] = "s3://bkt/pets/con.jpg"
    src = tmp_path / "con.manifest"
    src.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    mirror = image_mirror(tmp_path, src)
    out = tmp_path / "lst"
    options = ConvertOptions(images_dir=str(mirror), validation_fraction=0, copy_images=copy)
    convert_output("lst", src, out, options)
    rows = [row.split("\t")[2] for row in (out / "train.lst").read_text().splitlines()]
    con = next(name for name in rows if name.lower().startswith("con"))
    assert (con == "con.jpg") is not copy
    if copy:
        assert con.startswith("con-") and con.endswith(".jpg")
        assert (out / "train" / con).is_file()
