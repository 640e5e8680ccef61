from __future__ import annotations

import dataclasses
import json
import math
import random
import re
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gt_toolkit.evaluation.agreement import (
    Value,
    match_units,
    measure_agreement,
    value_distance,
    write_agreement,
)
from gt_toolkit.formats.crowd import CrowdImage
from gt_toolkit.formats.crowd.sources import open_crowd_source
from gt_toolkit.testing.simulated_crowd import make_skills, simulate_crowd
from tests.helpers import SAMPLES

JOB = SAMPLES / "job-output" / "samples-balls"


def sample_images() -> list[CrowdImage]:
    with open_crowd_source(JOB) as source:
        return list(source.images())


def independent_alpha(images: list[CrowdImage], *, label: str | None = None) -> float:
    """``krippendorff.alpha`` on the same matched units: annotators x units, each box its
    own value, "nothing" one shared value, the distance looked up in a table."""
    names = sorted({a for image in images for a in image.annotators})
    domain: list[Value] = [None]
    columns = []
    for image in images:
        if len(image.annotators) < 2:
            continue
        units, unit_labels = match_units(image)
        for values, unit_label in zip(units, unit_labels, strict=True):
            if label is not None and unit_label != label:
                continue
            column = [np.nan] * len(names)
            for annotator, value in zip(image.annotators, values, strict=True):
                if value is not None:
                    domain.append(value)
                column[names.index(annotator)] = 0 if value is None else len(domain) - 1
            columns.append(column)
    table = np.array([[value_distance(a, b) for b in domain] for a in domain])

    def metric(v1: Any, v2: Any, i1: Any, i2: Any, n_v: Any, dtype: Any = np.float64) -> Any:
        return table[v1.astype(int), v2.astype(int)]

    return float(
        krippendorff.alpha(
            reliability_data=np.array(columns).T,
            value_domain=np.arange(len(domain)),
            level_of_measurement=metric,
        )
    )


def test_alpha_matches_the_krippendorff_package_on_the_samples() -> None:
    images = sample_images()
    report = measure_agreement(images)
    assert report.units > 100 and report.sampled_values == report.values  # exact D_e
    assert report.alpha == pytest.approx(independent_alpha(images), abs=1e-9)
    (ball,) = report.per_class
    assert ball.alpha == pytest.approx(report.alpha)


def crowd(seed: int, workers: int, boxes: int) -> list[CrowdImage]:
    """Two labels, varied image sizes, and annotators who did not see some images."""
    skills = make_skills(workers, seed=seed, wrong_label_rate=0.25, jitter=0.08)
    rng = random.Random(seed)
    out = []
    for n in range(5):
        size = {"width": rng.choice([320, 640]), "height": rng.choice([240, 480])}
        (sim,) = simulate_crowd(
            images=1,
            boxes_per_image=boxes,
            skills=skills,
            labels=("car", "person"),
            image_size=size,
            seed=seed * 10 + n,
        )
        saw = [i for i in range(workers) if rng.random() > 0.25]
        out.append(sim.as_source_image(f"img_{n}.jpg", saw))
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 100_000), workers=st.integers(2, 6), boxes=st.integers(1, 6))
def test_alpha_matches_the_krippendorff_package_per_crowd_and_class(
    seed: int, workers: int, boxes: int
) -> None:
    images = crowd(seed, workers, boxes)
    report = measure_agreement(images)
    assume(report.alpha is not None)  # nothing pairable: the package refuses such data too
    assert report.alpha == pytest.approx(independent_alpha(images), abs=1e-9)
    for row in report.per_class:
        if row.alpha is not None:
            assert row.alpha == pytest.approx(independent_alpha(images, label=row.label), abs=1e-9)


def box(label: str, left: float, top: float, width: float = 20, height: float = 20) -> Any:
    return {"label": label, "left": left, "top": top, "width": width, "height": height}


def image(key: str, *answers: list[Any]) -> CrowdImage:
    names = ("ann", "bob", "cat")[: len(answers)]
    return CrowdImage(
        key=key, image_size={"width": 100, "height": 100}, annotators=names, boxes=answers
    )


def test_hand_computed_crowd() -> None:
    # img_1: both drew the same box. img_2: both drew (10,10), only ann drew (50,50).
    # Three units of two values: sums over ordered pairs / (m - 1) are 0, 0 and 2, so
    # D_o = 2/6. The six values are four boxes at (10,10), one at (50,50) and one
    # "nothing": of 30 ordered pairs only the 12 among the (10,10) boxes have d = 0, so
    # D_e = 18/30. img_2 alone: D_o = 2/4.
    images = [
        image("img_1", [box("car", 10, 10)], [box("car", 10, 10)]),
        image("img_2", [box("car", 10, 10), box("car", 50, 50)], [box("car", 10, 10)]),
    ]
    report = measure_agreement(images)
    assert report.units == 3 and report.values == 6
    assert report.observed_disagreement == pytest.approx(2 / 6)
    assert report.expected_disagreement == pytest.approx(18 / 30)
    assert report.alpha == pytest.approx(1 - (2 / 6) / (18 / 30))
    worst, best = report.per_image
    assert (worst.key, best.key, best.alpha) == ("img_2", "img_1", 1.0)
    assert worst.alpha == pytest.approx(1 - (2 / 4) / (18 / 30))
    assert report.pair_alpha == [[None, report.alpha], [report.alpha, None]]
    assert report.pair_units == [[0, 3], [3, 0]]


def test_an_object_given_two_labels_is_one_unit_of_its_voted_label() -> None:
    # two say car, one says truck: one object, so one unit (the label disagreement is in
    # its values), counted under the label most annotators gave
    crowd = image("a", [box("car", 10, 10)], [box("car", 11, 10)], [box("truck", 10, 11)])
    units, labels = match_units(crowd)
    assert labels == ["car"] and len(units) == 1
    assert [v[0] for v in units[0] if v is not None] == ["car", "car", "truck"]
    report = measure_agreement([crowd])
    assert (report.units, report.values) == (1, 3)
    assert [(c.label, c.units) for c in report.per_class] == [("car", 1)]


def test_labels_and_iou_set_the_distance() -> None:
    a: Value = ("car", 0.0, 0.0, 0.2, 0.2)
    assert value_distance(a, a) == 0.0
    assert value_distance(a, ("person", 0.0, 0.0, 0.2, 0.2)) == 1.0
    assert value_distance(a, ("car", 0.1, 0.0, 0.3, 0.2)) == pytest.approx(1 - 1 / 3)
    assert value_distance(a, None) == 1.0 and value_distance(None, None) == 0.0


def test_a_reservoir_sample_estimates_the_expected_disagreement() -> None:
    images = sample_images()
    exact = measure_agreement(images)
    sampled = measure_agreement(images, sample_size=200, seed=3)
    assert sampled.sampled_values == 200 < sampled.values
    assert sampled.alpha == pytest.approx(exact.alpha, abs=0.05)
    assert measure_agreement(images, sample_size=200, seed=3).alpha == sampled.alpha


def test_annotators_are_scored_against_the_consensus() -> None:
    # cat drew a loose box and a spurious one: lower precision and a positive size bias
    images = [
        image(
            f"img_{i}",
            [box("car", 10, 10)],
            [box("car", 10, 10)],
            [box("car", 8, 8, 24, 24), box("car", 70, 70)],
        )
        for i in range(3)
    ]
    report = measure_agreement(images)
    by_name = {q.worker_id: q for q in report.per_annotator}
    assert by_name["ann"].precision == 1.0 and by_name["cat"].precision == 0.5
    assert by_name["cat"].size_bias > 0.1 > abs(by_name["ann"].size_bias)
    assert report.annotators == ["ann", "bob", "cat"]


def test_page_and_json_escape_hostile_names(tmp_path: Path) -> None:
    hostile = "<script>alert(1)</script>"
    images = [
        CrowdImage(
            key=f"{hostile}.jpg",
            image_size={"width": 100, "height": 100},
            annotators=(hostile, "bob"),
            boxes=([box(hostile, 10, 10)], [box(hostile, 11, 10)]),
        )
    ]
    written = write_agreement(measure_agreement(images), tmp_path, notes=[hostile])
    page = Path(written["html"]).read_text()
    assert hostile not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    doc = json.loads(Path(written["json"]).read_text())
    assert doc["per_class"][0]["label"] == hostile
    assert doc["matrix"]["annotators"] == sorted([hostile, "bob"])


def test_write_agreement_writes_both_files_or_neither(tmp_path: Path) -> None:
    from gt_toolkit.errors import StorageError

    report = measure_agreement([image("a", [box("car", 10, 10)], [box("car", 11, 10)])])
    (tmp_path / "agreement.html").mkdir()
    with pytest.raises(StorageError, match=r"agreement\.html"):
        write_agreement(report, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["agreement.html"]  # no JSON without its page


def test_annotators_a_given_worker_model_never_saw_are_named(tmp_path: Path) -> None:
    # a saved table fitted on ann and bob, used on a crowd where cat answers too: cat's
    # model columns are the crowd's figures, which the report and the page must say
    from gt_toolkit.consolidation.worker_model import fit_worker_model

    fitted_on = [image(f"f{i}", [box("car", 10, 10)], [box("car", 11, 10)]) for i in range(4)]
    model = fit_worker_model(fitted_on)
    crowd = [image("a", [box("car", 10, 10)], [box("car", 11, 10)], [box("car", 10, 12)])]
    report = measure_agreement(crowd, worker_model=model)
    assert report.unknown_workers == ["cat"]
    rows = {q.worker_id: q for q in report.per_annotator}
    assert rows["cat"].miss_rate == model.crowd.miss_rate
    written = write_agreement(report, tmp_path)
    assert json.loads(Path(written["json"]).read_text())["unknown_workers"] == ["cat"]
    assert "1 annotators are not in the worker model" in Path(written["html"]).read_text()
    assert measure_agreement(fitted_on, worker_model=model).unknown_workers == []
    assert measure_agreement(crowd).unknown_workers is None


def test_boxes_of_labels_left_out_count_nowhere() -> None:
    # with labels=["car"], ann's person box is not a value, and it must not lower ann's
    # precision nor count among ann's or the image's boxes either: the same crowd
    # without the person box gives the same figures
    with_person = image(
        "a", [box("car", 10, 10), box("person", 60, 60)], [box("car", 11, 10)], [box("car", 10, 11)]
    )
    without = image("a", [box("car", 10, 10)], [box("car", 11, 10)], [box("car", 10, 11)])
    got = measure_agreement([with_person], labels=["car"])
    assert got.to_json() == measure_agreement([without], labels=["car"]).to_json()
    ann = got.per_annotator[0]
    assert (ann.worker_id, ann.boxes, ann.precision) == ("ann", 1, 1.0)
    assert got.per_image[0].boxes == 3


def test_an_undefined_alpha_says_why(tmp_path: Path) -> None:
    same = [image(f"i{n}", [box("car", 10, 10)], [box("car", 10, 10)]) for n in range(2)]
    lone = [image("i", [box("car", 10, 10)])]
    for crowd, why in ((same, "agree fully"), (lone, "no object"), ([], "no object")):
        report = measure_agreement(crowd)
        assert report.alpha is None and why in (report.undefined_because() or "")
        folder = tmp_path / str(len(crowd))
        written = write_agreement(report, folder)
        assert why in json.loads(Path(written["json"]).read_text())["alpha_undefined"]
        assert "α is undefined: " in Path(written["html"]).read_text()
    defined = measure_agreement([image("i", [box("car", 10, 10)], [box("car", 12, 10)])])
    assert defined.alpha is not None and defined.undefined_because() is None


def test_the_page_matrix_shows_the_busiest_annotators_only(tmp_path: Path) -> None:
    # the matrix grows with the square of the annotators (1,500 made a 128 MB page): the
    # page keeps those who answered the most images, the JSON keeps every pair
    from gt_toolkit.evaluation.agreement import MATRIX_ANNOTATORS, page_context

    names = [f"w{n:03}" for n in range(MATRIX_ANNOTATORS + 5)]
    crowd = [
        CrowdImage(
            key=f"i{n}",
            image_size={"width": 100, "height": 100},
            annotators=(names[n], names[(n + 1) % len(names)]),
            boxes=([box("car", 10, 10)], [box("car", 11, 10)]),
        )
        for n in range(len(names))
    ]
    busy = names[-5:]  # one more image each: shown though last by name
    crowd += [
        CrowdImage(
            key=f"again{n}",
            image_size={"width": 100, "height": 100},
            annotators=(a, b),
            boxes=([box("car", 10, 10)], [box("car", 11, 10)]),
        )
        for n, (a, b) in enumerate(zip(busy, busy[1:] + busy[:1], strict=True))
    ]
    report = measure_agreement(crowd)
    assert len(report.pair_alpha) == len(names)
    context = page_context(report, title="t")
    rows = context["matrix"]
    assert (context["matrix_shown"], context["matrix_total"]) == (MATRIX_ANNOTATORS, len(names))
    assert [r["number"] for r in rows] == list(range(1, MATRIX_ANNOTATORS + 1))
    shown = [r["name"] for r in rows]
    assert shown == sorted(shown) and set(busy) <= set(shown)
    assert all(len(r["cells"]) == MATRIX_ANNOTATORS for r in rows)
    assert shown[-5:] == busy and shown[:-5] == names[: MATRIX_ANNOTATORS - 5]
    i, j = shown.index(busy[0]), shown.index(busy[1])
    k = len(names) - 5
    assert rows[i]["cells"][j]["units"] == report.pair_units[k][k + 1] == 2
    page = Path(write_agreement(report, tmp_path)["html"]).read_text()
    assert f"{MATRIX_ANNOTATORS} of {len(names)} annotators" in page
    assert len(re.findall(r"<th>\d+ w\d+</th>", page)) == MATRIX_ANNOTATORS  # matrix rows
    small = page_context(measure_agreement(crowd[:3]), title="t")
    assert small["matrix_shown"] == small["matrix_total"] == 4


def test_write_agreement_to_s3(store: Any, s3_client: Any, bucket: str) -> None:
    report = measure_agreement([image("a", [box("car", 10, 10)], [box("car", 11, 10)])])
    written = write_agreement(report, f"s3://{bucket}/runs/agreement", store=store)
    keys = {o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {"runs/agreement/agreement.json", "runs/agreement/agreement.html"}
    body = s3_client.get_object(Bucket=bucket, Key="runs/agreement/agreement.json")["Body"]
    assert json.loads(body.read())["units"] == 1
    assert written["html"] == f"s3://{bucket}/runs/agreement/agreement.html"


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 100_000), workers=st.integers(2, 5), scale=st.sampled_from([0.5, 3]))
def test_an_image_without_a_size_is_measured_in_a_frame_of_its_own(
    seed: int, workers: int, scale: float
) -> None:
    # one image's size unknown and its boxes in another unit: D_e compared its pixels with
    # the other images' fractions (nearly every cross pair at d = 1), so alpha moved with
    # the unit; measured against its boxes' far corner, it does not
    images = crowd(seed, workers, 4)
    first = images[0]
    stretched = [
        [{**b, **{k: b[k] * scale for k in ("left", "top", "width", "height")}} for b in answer]
        for answer in first.boxes
    ]
    unsized = [dataclasses.replace(first, image_size=None, boxes=tuple(stretched)), *images[1:]]
    plain = [dataclasses.replace(first, image_size=None), *images[1:]]
    report = measure_agreement(unsized)
    assume(report.alpha is not None)
    assert report.alpha == pytest.approx(measure_agreement(plain).alpha, abs=1e-9)
    assert report.alpha == pytest.approx(independent_alpha(unsized), abs=1e-9)


def test_an_unsized_image_is_framed_by_its_boxes_far_corner() -> None:
    sized = image("a", [box("car", 10, 10, 30, 40)], [box("car", 60, 50, 40, 30)])
    unsized = dataclasses.replace(sized, image_size=None)
    units, _ = match_units(unsized)
    # far corner (100, 80): the boxes' edges as fractions of it
    values = sorted(v for unit in units for v in unit if v is not None)
    assert values == [("car", 0.1, 0.125, 0.4, 0.625), ("car", 0.6, 0.625, 1.0, 1.0)]


def test_a_failed_rerun_puts_the_earlier_json_back_beside_its_page(tmp_path: Path) -> None:
    from gt_toolkit.errors import StorageError

    earlier = measure_agreement([image("a", [box("car", 10, 10)], [box("car", 11, 10)])])
    written = write_agreement(earlier, tmp_path)
    json_before = Path(written["json"]).read_bytes()
    (tmp_path / "agreement.html").unlink()
    (tmp_path / "agreement.html").mkdir()  # the rerun's page cannot be written
    rerun = measure_agreement([image("b", [box("bus", 40, 40)], [box("car", 90, 90)])])
    with pytest.raises(StorageError, match=r"agreement\.html"):
        write_agreement(rerun, tmp_path)
    # The page fails before the JSON is in place, so the earlier JSON stays beside it.
    assert Path(written["json"]).read_bytes() == json_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agreement.html", "agreement.json"]


def test_a_rerun_whose_worker_model_fails_keeps_the_earlier_pages(tmp_path: Path) -> None:
    # As `gt-convert agreement --worker-model fit` writes: the pages, then the model, in one
    # AllOrNone. The model cannot be written (its name is a folder now): the rerun's pages go.
    from gt_toolkit.errors import StorageError
    from gt_toolkit.storage.files import AllOrNone

    earlier = measure_agreement([image("a", [box("car", 10, 10)], [box("car", 11, 10)])])
    written = write_agreement(earlier, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    (tmp_path / "worker-model.json").mkdir()
    rerun = measure_agreement([image("b", [box("bus", 40, 40)], [box("car", 90, 90)])])
    with pytest.raises(StorageError, match=r"worker-model\.json"), AllOrNone() as together:
        write_agreement(rerun, tmp_path, together=together)
        with together.open(tmp_path / "worker-model.json") as model:
            model.write(b"{}")
    # Before: both pages were removed with the failed run; the earlier ones were gone too.
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before and set(before) == {Path(w).name for w in written.values()}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "agreement.html",
        "agreement.json",
        "worker-model.json",
    ]  # no keep-aside folder is left


def test_an_earlier_page_that_is_a_link_is_put_back_as_the_link(tmp_path: Path) -> None:
    # agreement.json links to a file kept elsewhere (a shared results folder). The kept
    # copy was a hard link to the link's target, so a failed rerun left a plain file there.
    from gt_toolkit.errors import StorageError
    from gt_toolkit.storage.files import AllOrNone

    earlier = measure_agreement([image("a", [box("car", 10, 10)], [box("car", 11, 10)])])
    out = tmp_path / "out"
    written = write_agreement(earlier, out)
    shared = tmp_path / "shared.json"
    Path(written["json"]).rename(shared)
    Path(written["json"]).symlink_to(shared)
    (out / "worker-model.json").mkdir()
    rerun = measure_agreement([image("b", [box("bus", 40, 40)], [box("car", 90, 90)])])
    with pytest.raises(StorageError), AllOrNone() as together:
        write_agreement(rerun, out, together=together)
        with together.open(out / "worker-model.json") as model:
            model.write(b"{}")
    assert Path(written["json"]).is_symlink()
    assert Path(written["json"]).readlink() == shared


def test_the_json_lists_the_pairs_that_met_and_grows_with_the_crowd_not_its_square() -> None:
    # 5,000 annotators on a few images each made a 569 MB agreement.json (and a 1.6 GB run):
    # a full matrix of 25 million cells, nearly all of pairs who never shared an image
    from gt_toolkit.evaluation.agreement import JSON_MATRIX_ANNOTATORS
    from gt_toolkit.storage.files import json_bytes

    names = [f"w{n:04}" for n in range(2 * JSON_MATRIX_ANNOTATORS + 2)]
    crowd = [
        CrowdImage(
            key=f"i{k}",
            image_size={"width": 100, "height": 100},
            annotators=(names[2 * k], names[2 * k + 1]),
            boxes=([box("car", 10, 10)], [box("car", 10 + k % 7, 10)]),
        )
        for k in range(len(names) // 2)
    ]
    report = measure_agreement(crowd)
    doc = report.to_json()
    matrix = doc["matrix"]
    assert matrix["annotators"] == names
    assert matrix["alpha"] is None and matrix["units"] is None  # past the full matrix's cap
    met = [(i, j, units) for i, j, _, units in matrix["pairs"]]
    assert met == [(2 * k, 2 * k + 1, 1) for k in range(len(names) // 2)]
    for i, j, alpha, _ in matrix["pairs"]:
        assert alpha == report.pair(i, j)[0] == report.pair(j, i)[0]
    assert report.pair(0, 2) == (None, 0)  # never met
    assert len(json_bytes(doc)) < 500 * len(names)
    # a small crowd keeps the full matrices, which say what the pairs say
    small = measure_agreement(crowd[:3]).to_json()["matrix"]
    for i, j, alpha, units in small["pairs"]:
        assert small["alpha"][i][j] == small["alpha"][j][i] == alpha
        assert small["units"][i][j] == small["units"][j][i] == units
    assert sum(map(sum, small["units"])) == 2 * sum(p[3] for p in small["pairs"])


def _reordered(images: list[CrowdImage], seed: int) -> list[CrowdImage]:
    """The same crowd with its images, each image's annotators and their boxes shuffled."""
    rng = random.Random(seed)
    out = []
    for im in images:
        order = list(range(len(im.annotators)))
        rng.shuffle(order)
        boxes = tuple(rng.sample(im.boxes[k], len(im.boxes[k])) for k in order)
        names = tuple(im.annotators[k] for k in order)
        out.append(dataclasses.replace(im, annotators=names, boxes=boxes))
    rng.shuffle(out)
    return out


def test_a_sampled_expected_disagreement_does_not_depend_on_the_reading_order() -> None:
    # beyond sample_size values D_e comes from a sample; drawn in reading order (Algorithm
    # R) it gave the same crowd, its images or annotators in another order, another alpha
    images = [im for seed in range(6) for im in crowd(seed, 4, 5)]
    images = [dataclasses.replace(im, key=f"{n}/{im.key}") for n, im in enumerate(images)]
    first = measure_agreement(images, sample_size=40)
    assert first.values > 40 and first.sampled_values == 40  # a sample, not every value
    for seed in range(3):
        again = measure_agreement(_reordered(images, seed), sample_size=40)
        assert again.expected_disagreement == pytest.approx(first.expected_disagreement, 1e-12)
        assert again.alpha == pytest.approx(first.alpha, abs=1e-12)
        for a, b in zip(again.per_class, first.per_class, strict=True):
            assert (a.label, a.units) == (b.label, b.units)
            assert a.alpha == pytest.approx(b.alpha, abs=1e-12)
        assert [i.key for i in again.per_image] == [i.key for i in first.per_image]
    assert measure_agreement(images, sample_size=40, seed=1).alpha != first.alpha


def test_the_same_crowd_in_another_order_writes_the_same_report_byte_for_byte() -> None:
    # every sum was a running += in reading order: the same crowd with its images,
    # annotators or boxes in another order gave figures that differed in their last
    # digits (alpha 0.5911508010724216 and ...218 on the samples), so other bytes
    from gt_toolkit.storage.files import json_bytes

    images = [im for seed in range(4) for im in crowd(seed, 5, 6)]
    images = [dataclasses.replace(im, key=f"{n}/{im.key}") for n, im in enumerate(images)]
    first = json_bytes(measure_agreement(images).to_json())
    for seed in range(4):
        assert json_bytes(measure_agreement(_reordered(images, seed)).to_json()) == first


def test_exact_sum_is_the_rounded_exact_sum_in_any_order() -> None:
    from gt_toolkit.consolidation.worker_quality import ExactSum

    rng = random.Random(3)
    terms = [rng.uniform(-1, 1) * 10 ** rng.randint(-20, 20) for _ in range(500)]
    sums = set()
    for _ in range(5):
        rng.shuffle(terms)
        total = ExactSum()
        total.extend(terms)
        sums.add(float(total))
    assert sums == {math.fsum(terms)}
    special = ExactSum()
    special.extend([1.0, math.inf, 2.0])
    assert float(special) == math.inf
    # in parts (one image's terms a call): the same total in any order of parts and terms
    parts = [terms[k : k + 37] for k in range(0, len(terms), 37)]
    totals = set()
    for _ in range(5):
        rng.shuffle(parts)
        total = ExactSum()
        for part in parts:
            total.extend(rng.sample(part, len(part)))
        totals.add(float(total))
    assert len(totals) == 1
    mixed = ExactSum()
    mixed.extend([math.inf, 1.0, -math.inf])  # fsum refuses inf - inf: term by term
    assert math.isnan(float(mixed))


def test_a_label_list_the_crowd_spelt_otherwise_is_an_error_not_an_empty_report() -> None:
    # labels=["Car"] on a crowd that drew "car" left every box out: alpha undefined,
    # "no object was drawn", as if nobody had drawn anything
    from gt_toolkit.errors import ConsolidationError

    images = [im for seed in range(2) for im in crowd(seed, 3, 4)]  # cars and people
    with pytest.raises(ConsolidationError, match="'car' looks like 'Car'"):
        measure_agreement(images, labels=["Car", "person"])
    with pytest.raises(ConsolidationError, match="looks like ' person'"):
        measure_agreement(images, labels=[" person"])
    only_cars = measure_agreement(images, labels=["car"])  # a filter: people left out
    assert only_cars.units and {c.label for c in only_cars.per_class} == {"car"}
    both = measure_agreement(images, labels=["car", "Car"])  # "car" listed too: no mismatch
    assert both.to_json() == only_cars.to_json()


def test_an_image_listed_twice_samples_and_lists_the_same_in_any_order() -> None:
    # one image on two manifest lines (one source-ref): its two copies gave two different
    # values one sample name and one hash, and the sample kept whichever came first where
    # the two straddled its cut (D_e 0.751 and 0.727 for one crowd in two orders); rows of
    # one key and one alpha were listed in reading order
    from gt_toolkit.storage.files import json_bytes

    size = {"width": 100, "height": 100}
    first = CrowdImage(
        key="k",
        image_size=size,
        annotators=("a", "b"),
        boxes=([box("car", 10, 10)], [box("car", 12, 10)]),
    )
    again = CrowdImage(
        key="k",
        image_size=size,
        annotators=("a", "b"),
        boxes=([box("car", 50, 60)], [box("car", 52, 61)]),
    )
    lone = CrowdImage(key="z", image_size=size, annotators=("a",), boxes=([box("car", 1, 1)],))
    lone_too = dataclasses.replace(lone, boxes=([box("car", 1, 1), box("car", 60, 60)],))
    crowd = [first, again, lone, lone_too]
    for sample_size in range(2, 5):
        reports = [
            json_bytes(measure_agreement(order, sample_size=sample_size).to_json())
            for order in (crowd, crowd[::-1], [again, first, lone, lone_too])
        ]
        assert reports[0] == reports[1] == reports[2], sample_size


def test_annotators_named_by_numbers_are_measured_as_their_text() -> None:
    # the sample's name took the image key and the annotator as text (f-string); from
    # 3021068 it measured their lengths first, and annotators=(1, 2) raised "TypeError:
    # object of type 'int' has no len()" where an earlier run gave a figure
    skills = make_skills(3, seed=4, spurious_rate=0.1)
    crowd = simulate_crowd(images=6, boxes_per_image=4, skills=skills, seed=4)
    as_text = [
        CrowdImage(
            key=img.as_source_image(str(k)).key,
            image_size=img.image_size,
            annotators=tuple(str(w) for w in range(len(img.answers))),
            boxes=tuple(img.answers),
        )
        for k, img in enumerate(crowd)
    ]
    as_numbers: list[Any] = [
        dataclasses.replace(img, annotators=tuple(range(len(img.annotators)))) for img in as_text
    ]
    for sample_size in (5, 2000):  # sampled, then exact
        text = measure_agreement(as_text, sample_size=sample_size)
        numbers = measure_agreement(as_numbers, sample_size=sample_size)
        assert text.alpha is not None and text.sampled_values <= sample_size
        assert (numbers.alpha, numbers.expected_disagreement, numbers.per_image) == (
            text.alpha,
            text.expected_disagreement,
            text.per_image,
        )
