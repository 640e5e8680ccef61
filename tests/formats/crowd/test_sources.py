from __future__ import annotations

import json
import random
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gt_toolkit import iter_crowd_images
from gt_toolkit.consolidation.reconsolidate import reconsolidate
from gt_toolkit.formats.crowd import CrowdImage
from gt_toolkit.formats.crowd.sources import open_crowd_source
from gt_toolkit.testing import crowd_exports
from gt_toolkit.testing.crowd_exports import (
    coco_per_annotator,
    coco_with_raters,
    cvat_job_exports,
    label_studio_export,
)
from gt_toolkit.testing.simulated_crowd import CrowdImage as SimulatedImage
from gt_toolkit.testing.simulated_crowd import (
    make_skills,
    simulate_crowd,
    worker_response_document,
)
from tests.helpers import SAMPLES, consolidated_boxes

LABELS = ["car", "person"]


def simulated(seed: int, workers: int, boxes: int) -> list[CrowdImage]:
    """A small crowd; about one worker in five did not see each image."""
    skills = make_skills(workers, seed=seed, wrong_label_rate=0.2)
    rng = random.Random(seed)
    images = []
    crowd = simulate_crowd(images=4, boxes_per_image=boxes, skills=skills, labels=LABELS, seed=seed)
    for n, sim in enumerate(crowd):
        saw = [i for i in range(workers) if rng.random() > 0.2] or [0]
        images.append(sim.as_source_image(f"s3://bkt/sim/img_{n}.jpg", saw))
    return images


def write_all(images: list[CrowdImage], root: Path) -> dict[str, Path]:
    """The crowd as a Ground Truth job and as every tool's export."""
    job = root / "job"
    (job / "manifests" / "output").mkdir(parents=True)
    lines = [json.dumps({"source-ref": i.key}) for i in images]
    (job / "manifests" / "output" / "output.manifest").write_text("\n".join(lines) + "\n")
    for n, image in enumerate(images):
        folder = job / "annotations" / "worker-response" / "iteration-1" / str(n)
        folder.mkdir(parents=True)
        assert image.image_size is not None
        sim = SimulatedImage(
            image.image_size, [], list(image.boxes), list(image.annotators), [5.0] * 9
        )
        (folder / "answers.json").write_text(json.dumps(worker_response_document(sim)))
    paths = {"gt-job": job}

    def dump(name: str, value: Any) -> Path:
        path = root / name
        path.write_text(value if isinstance(value, str) else json.dumps(value))
        return path

    paths["label-studio"] = dump("ls.json", crowd_exports.label_studio_export(images))
    paths["label-studio-min"] = dump(
        "ls-min.json", crowd_exports.label_studio_export(images, minimal=True)
    )
    paths["coco-raters"] = dump("raters.json", crowd_exports.coco_with_raters(images))
    for kind, files, suffix in (
        ("cvat", crowd_exports.cvat_job_exports(images), "xml"),
        ("coco-per-annotator", crowd_exports.coco_per_annotator(images), "json"),
    ):
        (root / kind).mkdir()
        for name, value in files.items():
            dump(f"{kind}/{name}.{suffix}", value)
        paths[kind] = root / kind
    return paths


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000), workers=st.integers(2, 5), boxes=st.integers(0, 6))
def test_the_same_crowd_in_every_source_consolidates_the_same(
    tmp_path_factory: Any, seed: int, workers: int, boxes: int
) -> None:
    images = simulated(seed, workers, boxes)
    root = tmp_path_factory.mktemp("crowd")
    results = {}
    for name, path in write_all(images, root).items():
        kind = "label-studio" if name.startswith("label-studio") else name
        prefix = None if kind == "gt-job" else "s3://bkt/sim/"
        out = root / f"{name}.manifest"
        with open_crowd_source(path, kind) as source:
            report = reconsolidate(source, out, labels=LABELS, image_prefix=prefix)
        assert report.complete and report.ingest.images == len(images), name
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        results[name] = consolidated_boxes(lines)
    reference = results.pop("gt-job")
    assert list(reference) == [i.key for i in images]
    for name, got in results.items():
        assert got == reference, name


def test_shipped_samples_say_the_same_in_every_format(tmp_path: Path) -> None:
    sources = {
        "gt-job": SAMPLES / "job-output" / "samples-balls",
        "label-studio": SAMPLES / "crowd" / "label-studio.json",
        "cvat": SAMPLES / "crowd" / "cvat",
        "coco-raters": SAMPLES / "crowd" / "coco-raters.json",
    }
    results = {}
    for kind, path in sources.items():
        out = tmp_path / f"{kind}.manifest"
        prefix = None if kind in ("gt-job", "label-studio") else "s3://gt-toolkit-demo/images/"
        with open_crowd_source(path, kind) as source:
            reconsolidate(source, out, labels=["ball"], image_prefix=prefix)
        results[kind] = consolidated_boxes([json.loads(x) for x in out.read_text().splitlines()])
    assert len(results["gt-job"]) == 40
    assert results["label-studio"] == results["cvat"] == results["coco-raters"] == results["gt-job"]


def many_images(n: int) -> list[CrowdImage]:
    box = {"label": "car", "left": 10.0, "top": 20.0, "width": 50.0, "height": 40.0}
    return [
        CrowdImage(
            key=f"s3://bkt/many/{i:06d}.jpg",
            image_size={"width": 640, "height": 480},
            annotators=("ana", "ben", "chen"),
            boxes=([box] * 3, [box] * 2, [box]),
        )
        for i in range(n)
    ]


WRITERS = {
    "label-studio": lambda images, root: dump(root / "ls.json", label_studio_export(images)),
    "coco-raters": lambda images, root: dump(root / "c.json", coco_with_raters(images)),
    "cvat": lambda images, root: dump_all(root, cvat_job_exports(images), "xml"),
    "coco-per-annotator": lambda images, root: dump_all(root, coco_per_annotator(images), "json"),
}


def dump(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value))
    return path


def dump_all(root: Path, files: dict[str, Any], suffix: str) -> Path:
    for name, value in files.items():
        text = value if isinstance(value, str) else json.dumps(value)
        (root / f"{name}.{suffix}").write_text(text)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_reading_memory_does_not_grow_with_the_job(tmp_path: Path, kind: str) -> None:
    # four times the images, the same peak of Python
    # memory: the answers wait on disk, not in memory
    def peak(n: int) -> int:
        root = tmp_path / str(n)
        root.mkdir()
        path = WRITERS[kind](many_images(n), root)
        tracemalloc.start()
        try:
            count = sum(1 for _ in iter_crowd_images(path, kind))
            top = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert count == n
        return top

    small, large = peak(200), peak(800)
    assert large < 1.3 * small, (small, large)


def test_exports_on_s3_read_like_local_files(
    s3_client: Any, store: Any, bucket: str, tmp_path: Path
) -> None:
    images = simulated(7, 3, 4)
    paths = write_all(images, tmp_path)
    for kind in ("label-studio", "cvat", "coco-per-annotator"):
        local = paths[kind]
        files = [local] if local.is_file() else sorted(local.iterdir())
        for f in files:
            key = f"exports/{kind}/{f.name}" if local.is_dir() else f"exports/{f.name}"
            s3_client.put_object(Bucket=bucket, Key=key, Body=f.read_bytes())
        remote = f"s3://{bucket}/exports/" + (kind if local.is_dir() else local.name)
        with open_crowd_source(remote, kind, store=store) as source:
            got = list(source.images())
        assert got == list(iter_crowd_images(local, kind)), kind


_ON_THE_BACK: dict[str, dict[str, Any]] = {
    "box": {"type": "rectanglelabels", "from_name": "label", "original_width": 50,
            "original_height": 50, "value": {"x": 1.0, "y": 1.0, "width": 5.0, "height": 5.0,
                                             "rotation": 0, "rectanglelabels": ["car"]}},
    "polygon": {"type": "polygonlabels", "from_name": "outline",
                "value": {"points": [[1.0, 1.0], [2.0, 2.0], [1.0, 2.0]],
                          "polygonlabels": ["car"]}},
    "choices": {"type": "choices", "from_name": "quality", "value": {"choices": ["ok"]}},
}  # fmt: skip


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    workers=st.integers(2, 5),
    back=st.lists(
        st.tuples(st.booleans(), st.lists(st.sampled_from(sorted(_ON_THE_BACK)), max_size=3)),
        min_size=1,
    ),
)
# one annotator drew nothing on image and only an outline on image2, no box on image2
@example(seed=0, workers=2, back=[(False, []), (True, ["polygon"])])
def test_what_is_drawn_on_a_second_image_of_the_task_changes_nothing_on_the_first(
    tmp_path_factory: Any, seed: int, workers: int, back: list[tuple[bool, list[str]]]
) -> None:
    # Property: the same crowd in a Label Studio project that shows a second image
    # ($image2), where annotators also drew boxes, outlines or choices, consolidates the
    # same on $image, read with --image-name image or without it: what is on image2 says
    # nothing of image (its boxes are rejects). Tasks where nobody drew on image are left
    # alone: there every annotator who drew on image2 abstains by the documented rule. Some
    # annotators (the flag) drew nothing on image, in both exports
    images = simulated(seed, workers, 3)
    plain = label_studio_export(images)
    plans = iter(back * len(images) * workers)
    shown = []
    for task in plain:
        plan = [next(plans) for _ in task["annotations"]]
        for ann, (nothing, _) in zip(task["annotations"], plan, strict=True):
            ann["result"] = [] if nothing else ann["result"]
        task = json.loads(json.dumps(task))
        shown.append(task)
        task["data"]["image2"] = task["data"]["image"] + ".back.jpg"
        if not any(ann["result"] for ann in task["annotations"]):
            continue
        for ann, (_, kinds) in zip(task["annotations"], plan, strict=True):
            for k, kind in enumerate(kinds):
                result = {"id": f"back{k}", "to_name": "image2", **_ON_THE_BACK[kind]}
                ann["result"].insert(k % (len(ann["result"]) + 1), result)
    root = tmp_path_factory.mktemp("two-images")
    results = {}
    for name, export, image_name in (
        ("plain", plain, None),
        ("rule", shown, None),
        ("image-name", shown, "image"),
    ):
        path = dump(root / f"{name}.json", export)
        out = root / f"{name}.manifest"
        with open_crowd_source(
            path, "label-studio", image_name=image_name, on_reject=lambda _: None
        ) as source:
            reconsolidate(source, out, labels=LABELS, image_prefix="s3://bkt/sim/")
        results[name] = consolidated_boxes([json.loads(x) for x in out.read_text().splitlines()])
    assert results["rule"] == results["plain"]
    assert results["image-name"] == results["plain"]


def _turn(left: float, top: float) -> int:
    """A turn in degrees drawn from a box's corner (so each export gives its box the same)."""
    return (round(left * 100) * 7 + round(top * 100) * 13) % 360


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000), workers=st.integers(2, 5), boxes=st.integers(1, 6))
def test_turned_boxes_consolidate_the_same_from_cvat_xml_and_cvat_coco(
    tmp_path_factory: Any, seed: int, workers: int, boxes: int
) -> None:
    # CVAT writes a turned box upright with rotation="deg" in its XML and with
    # attributes.rotation in its COCO export (both about the centre): one job, one result
    import re

    images = [
        CrowdImage(
            key=image.key,
            image_size=image.image_size,
            annotators=image.annotators,
            boxes=tuple(
                [{**b, **{k: round(b[k], 2) for k in ("left", "top", "width", "height")}}  # type: ignore[literal-required]
                 for b in answer]
                for answer in image.boxes
            ),
        )
        for image in simulated(seed, workers, boxes)
    ]  # fmt: skip
    root = tmp_path_factory.mktemp("turned")
    turned = 0
    (root / "cvat").mkdir()
    for name, text in cvat_job_exports(images).items():

        def rotate(match: re.Match[str]) -> str:
            nonlocal turned
            deg = _turn(float(match["x"]), float(match["y"]))
            turned += deg != 0
            return f'{match[0]} rotation="{deg}.00"'

        text = re.sub(r'xtl="(?P<x>[-\d.]+)" ytl="(?P<y>[-\d.]+)"', rotate, text)
        (root / "cvat" / f"{name}.xml").write_text(text)
    (root / "coco").mkdir()
    for name, coco in coco_per_annotator(images).items():
        for ann in coco["annotations"]:
            ann["attributes"] = {"occluded": False, "rotation": float(_turn(*ann["bbox"][:2]))}
        (root / "coco" / f"{name}.json").write_text(json.dumps(coco))
    results = []
    for kind in ("cvat", "coco-per-annotator"):
        out = root / f"{kind}.manifest"
        folder = root / ("cvat" if kind == "cvat" else "coco")
        with open_crowd_source(folder, kind) as source:
            report = reconsolidate(source, out, labels=LABELS, image_prefix="s3://bkt/sim/")
        assert report.complete and report.ingest.rotated == turned, kind
        results.append(consolidated_boxes([json.loads(x) for x in out.read_text().splitlines()]))
    assert turned and results[0] == results[1]
