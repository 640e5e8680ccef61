from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit.convert import ConvertOptions, convert_output
from gt_toolkit.errors import ValidationError
from gt_toolkit.formats.sampling import split_name
from tests.helpers import DATA, read_jsonl

OUTPUTS = DATA / "outputs"
CONSOLE = OUTPUTS / "console-job.manifest"
API = OUTPUTS / "api-job.manifest"


def test_augmented_split_channels_and_facts(tmp_path: Path) -> None:
    out = tmp_path / "aug"
    result = convert_output("augmented", API, out, ConvertOptions(validation_fraction=0.5, seed=3))
    train, val = read_jsonl(out / "train.manifest"), read_jsonl(out / "validation.manifest")
    assert len(train) + len(val) == 4
    for line in train + val:
        assert list(line) == ["source-ref", "boxes"]  # image first, no metadata by default
        want = split_name(line["source-ref"], seed=3, validation_fraction=0.5)
        assert (line in val) == (want == "validation")
    channels = json.loads((out / "channels.json").read_text())
    assert channels["attribute_names"] == ["source-ref", "boxes"]
    cfg = {c["ChannelName"]: c for c in channels["InputDataConfig"]}
    assert set(cfg) == {"train", "validation"}
    src = cfg["train"]["DataSource"]["S3DataSource"]
    assert src["S3DataType"] == "AugmentedManifestFile"
    assert src["AttributeNames"] == ["source-ref", "boxes"]
    assert cfg["train"]["RecordWrapperType"] == "RecordIO"
    assert cfg["train"]["InputMode"] == "Pipe"
    assert channels["num_training_samples"] == {"train": len(train), "validation": len(val)}
    assert channels["hyperparameters"]["num_training_samples"] == str(len(train))
    assert channels["num_classes"] == 3
    assert channels["label_width_required"] == 2 + 5 * 2
    assert result.stats.clipped_boxes == 1
    clipped = next(x for x in train + val if x["source-ref"].endswith("d.png"))
    assert clipped["boxes"]["annotations"][0]["width"] == 40


def test_augmented_rejects_empty_by_default_and_keeps_metadata_on_request(tmp_path: Path) -> None:
    out = tmp_path / "aug"
    result = convert_output(
        "augmented",
        CONSOLE,
        out,
        ConvertOptions(include_metadata=True, rejects=tmp_path / "r.jsonl", validation_fraction=0),
    )
    lines = read_jsonl(out / "train.manifest")
    assert [x["source-ref"][-11:] for x in lines] == ["img_001.jpg", "img_004.jpg", "img_005.jpg"]
    assert all(x["dogs-and-toys-metadata"]["type"] == "groundtruth/object-detection" for x in lines)
    assert lines[1]["dogs-and-toys"]["annotations"][0]["class_id"] == 1  # "1" normalised
    reasons = sorted(
        json.loads(x)["reason"] for x in (tmp_path / "r.jsonl").read_text().splitlines()
    )
    assert reasons == ["empty-image", "failed-object", "invalid-json"]
    assert result.stats.rejected_total == 3
    notes = json.loads((out / "channels.json").read_text())["notes"]
    assert any("one channel is empty" in n for n in notes)


def test_augmented_to_and_from_s3(store: Any, bucket: str) -> None:
    store.put_bytes(f"s3://{bucket}/job/output.manifest", API.read_bytes())
    convert_output(
        "augmented",
        f"s3://{bucket}/job/output.manifest",
        f"s3://{bucket}/channels",
        ConvertOptions(store=store, validation_fraction=0.5),
    )
    channels = json.loads(store.get_bytes(f"s3://{bucket}/channels/channels.json"))
    uris = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in channels["InputDataConfig"]]
    assert uris == [
        f"s3://{bucket}/channels/train.manifest",
        f"s3://{bucket}/channels/validation.manifest",
    ]
    n = sum(len(store.get_bytes(u).splitlines()) for u in uris)
    assert n == 4
    assert not any("local paths" in x for x in channels["notes"])


@pytest.mark.parametrize(
    ("prefix", "why"),
    [("s3://b/", "bad bucket name 'b'"), ("my-bucket/train/", "must be an s3://bucket/folder/")],
    ids=["bucket-s3-refuses", "no-scheme"],
)
def test_a_channel_prefix_no_s3_uri_can_start_is_refused(
    tmp_path: Path, prefix: str, why: str
) -> None:
    """channels.json's S3Uri values are the prefix joined to the manifest names: s3://b/
    (a bucket S3 does not allow) or a prefix without s3:// wrote channels no training job can
    read, exit 0, as 8471f82 had stopped for --image-prefix only."""
    out = tmp_path / "aug"
    options = ConvertOptions(channel_prefix=prefix)
    with pytest.raises(ValidationError, match=f"channel_prefix {why}"):
        convert_output("augmented", CONSOLE, out, options)
    assert not out.exists()
    good = convert_output("augmented", CONSOLE, out, ConvertOptions(channel_prefix="s3://bkt-x/c"))
    facts = json.loads(Path(good.outputs["channels"]).read_text())
    uris = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in facts["InputDataConfig"]]
    assert uris == ["s3://bkt-x/c/train.manifest", "s3://bkt-x/c/validation.manifest"]


@pytest.mark.slow
def test_the_duplicate_check_keeps_a_hash_per_image_not_its_source_ref(tmp_path: Path) -> None:
    """A second line of one image is refused, so every source-ref read is remembered: held
    as the refs themselves, a million lines took 134 MB more (199 MB in all, past the goal
    of 150); as their hashes, 66 MB. With 300-byte refs a line cost over 300 bytes."""
    import gc
    import tracemalloc

    import orjson

    line = orjson.loads(CONSOLE.read_text().splitlines()[0])

    def peak(lines: int) -> int:
        src = tmp_path / f"{lines}.manifest"
        with src.open("wb") as fh:
            for i in range(lines):
                line["source-ref"] = f"s3://gt-demo-bucket/{'d' * 260}/p{i:07d}.jpg"
                fh.write(orjson.dumps(line) + b"\n")
        gc.collect()
        tracemalloc.start()
        try:
            result = convert_output("augmented", src, tmp_path / f"aug{lines}", ConvertOptions())
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            assert result.stats.objects == lines

    per_line = (peak(60000) - peak(30000)) / 30000  # past the bounded batches: the growth
    assert per_line < 150, f"{per_line:.0f} bytes per line"
