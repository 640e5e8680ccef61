from __future__ import annotations

from gt_toolkit.formats.worker_answers import parse_bounding_box_answer
from gt_toolkit.testing.simulated_crowd import make_skills, simulate_crowd, worker_response_document


def test_simulator_is_deterministic_and_seed_sensitive() -> None:
    skills = make_skills(3, seed=1)
    a = simulate_crowd(images=3, boxes_per_image=5, skills=skills, labels=("a", "b"), seed=7)
    b = simulate_crowd(
        images=3, boxes_per_image=5, skills=make_skills(3, seed=1), labels=("a", "b"), seed=7
    )
    c = simulate_crowd(images=3, boxes_per_image=5, skills=skills, labels=("a", "b"), seed=8)
    assert [x.answers for x in a] == [x.answers for x in b]
    assert [x.answers for x in a] != [x.answers for x in c]
    assert all(len(x.truth) == 5 for x in a)


def test_simulated_boxes_inside_image_and_whole_pixels() -> None:
    crowd = simulate_crowd(
        images=5, boxes_per_image=[1, 10, 40, 0, 3], skills=make_skills(4), seed=2
    )
    assert [len(x.truth) for x in crowd] == [1, 10, 40, 0, 3]
    for img in crowd:
        for answer in img.answers:
            for b in answer:
                assert b["left"] >= 0 and b["top"] >= 0 and b["width"] >= 1 and b["height"] >= 1
                assert b["left"] + b["width"] <= img.image_size["width"]
                assert b["top"] + b["height"] <= img.image_size["height"]


def test_worker_response_document_parses_back() -> None:
    img = simulate_crowd(images=1, boxes_per_image=3, skills=make_skills(2), seed=3)[0]
    doc = worker_response_document(img)
    assert [a["workerId"] for a in doc["answers"]] == img.worker_ids
    for answer, boxes in zip(doc["answers"], img.answers, strict=True):
        parsed = parse_bounding_box_answer(answer["answerContent"], worker_id=answer["workerId"])
        assert parsed.boxes == boxes
        assert parsed.image_size == {
            "width": img.image_size["width"],
            "height": img.image_size["height"],
        }
        assert answer["submissionTime"].endswith("Z")
