"""The classifier endpoint's requests: what is served, and the HTTP status of what is not.

``contract.decode_request`` / ``encode_answer`` are what ``inference.py`` runs on a request
(no torch).
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from gt_toolkit.sagemaker.scripts.pytorch_classifier import contract
from gt_toolkit.sagemaker.scripts.pytorch_classifier.contract import RequestError
from gt_toolkit.sagemaker.scripts.pytorch_classifier.image_io import decode_rgb

ACCEPTED = "image/jpeg, image/png, application/x-image, application/json"
NOT_THE_DOCUMENT = 'expected JSON {"image": "<base64 JPEG or PNG>", "top_k": <int, optional>}'


def _encoded(img: Image.Image, kind: str) -> bytes:
    out = io.BytesIO()
    img.save(out, kind)
    return out.getvalue()


GRAY = Image.new("L", (8, 6), 100)
JPEG = _encoded(GRAY.convert("RGB"), "JPEG")
PNG = _encoded(GRAY, "PNG")
B64 = base64.b64encode(PNG).decode()


def _json(**document: Any) -> str:
    return json.dumps(document)


def decode(body: bytes | bytearray | str | None, content_type: str | None) -> Any:
    return contract.decode_request(body, content_type, decode_rgb)


# -- what is served ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "top_k"),
    [
        (JPEG, "image/jpeg", None),
        (PNG, "image/png", None),
        (bytearray(JPEG), "application/x-image", None),
        (JPEG, "image/jpeg; charset=binary", None),  # parameters and case do not matter
        (PNG, " IMAGE/PNG ", None),
        (_json(image=B64, top_k=3), "application/json", 3),  # the container hands over text
        (_json(image=B64, top_k=3).encode(), "application/json; charset=utf-8", 3),
        (_json(image=B64), "application/json", None),
        (_json(image=B64, top_k=None), "Application/JSON", None),
        (_json(image=base64.b64encode(JPEG).decode(), top_k=1, other="x"), "application/json", 1),
    ],
)
def test_a_good_request_gives_the_rgb_image_and_top_k(
    body: bytes | bytearray | str, content_type: str, top_k: int | None
) -> None:
    image, asked = decode(body, content_type)
    assert isinstance(image, Image.Image)
    assert (image.mode, image.size, asked) == ("RGB", (8, 6), top_k)


@pytest.mark.parametrize("accept", ["", None, "*/*", "application/json", "text/html, */*;q=0.8"])
def test_the_answer_is_json_predictions(accept: str | None) -> None:
    predictions = [{"class_id": 1, "label": "two", "probability": 0.75}]
    assert json.loads(contract.encode_answer(predictions, accept)) == {"predictions": predictions}


# -- what is not, and its status --------------------------------------------------------------

BAD_REQUESTS: list[tuple[bytes | str | None, str | None, int, str]] = [
    (JPEG, "text/csv", 415, f"unsupported content type 'text/csv'; send one of: {ACCEPTED}"),
    (JPEG, "image/gif", 415, "unsupported content type 'image/gif'"),
    (JPEG, None, 415, "unsupported content type None"),
    (JPEG, "", 415, "unsupported content type ''"),
    (
        b"this is not an image",
        "image/jpeg",
        400,
        "the request body is not a JPEG or PNG image: Pillow cannot identify the image format",
    ),
    (b"", "image/png", 400, "the request body is not a JPEG or PNG image"),
    (None, "image/png", 400, "the request body is not a JPEG or PNG image"),
    (JPEG[: len(JPEG) // 2], "image/jpeg", 400, "not a JPEG or PNG image: "),
    ("{", "application/json", 400, f"{NOT_THE_DOCUMENT}: the body is not JSON (Expecting"),
    (b"\xff\xfe\xfd", "application/json", 400, f"{NOT_THE_DOCUMENT}: the body is not JSON"),
    ("[" * 200_000, "application/json", 400, "the body is not JSON"),  # too deep
    ('{"top_k": 1' + "0" * 5000 + "}", "application/json", 400, "Exceeds the limit (4300 digits)"),
    ("[1, 2]", "application/json", 400, f"{NOT_THE_DOCUMENT}: the body is a JSON list"),
    ("null", "application/json", 400, "the body is a JSON NoneType"),
    (_json(top_k=3), "application/json", 400, f'{NOT_THE_DOCUMENT}: "image" is None, not base64'),
    (_json(image=5), "application/json", 400, '"image" is 5, not base64 text'),
    (_json(image="x" * 501), "application/json", 400, '"image" is not base64'),
    (_json(image="not base64!"), "application/json", 400, '"image" is not base64'),
    (_json(image="é"), "application/json", 400, '"image" is not base64'),
    (
        _json(image=base64.b64encode(b"text").decode()),
        "application/json",
        400,
        "the request body is not a JPEG or PNG image",
    ),
    (_json(image=B64, top_k=0), "application/json", 400, "top_k must be a positive integer, got 0"),
    (_json(image=B64, top_k=-2), "application/json", 400, "got -2"),
    (_json(image=B64, top_k="3"), "application/json", 400, "got '3'"),
    (_json(image=B64, top_k=2.0), "application/json", 400, "got 2.0"),
    (_json(image=B64, top_k=True), "application/json", 400, "got True"),
    (_json(image=B64, top_k=[3]), "application/json", 400, "got [3]"),
    (_json(image=B64, top_k="k" * 500), "application/json", 400, "got 'kkkkk"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    BAD_REQUESTS,
    ids=[f"{i}-{status}" for i, (_, _, status, _) in enumerate(BAD_REQUESTS)],
)
def test_a_bad_request_says_why_with_its_status(
    body: bytes | str | None, content_type: str | None, status: int, message: str
) -> None:
    with pytest.raises(RequestError) as caught:
        decode(body, content_type)
    error = caught.value
    assert isinstance(error, ValueError)  # local callers (serve_once.py) catch ValueError
    assert error.status == status
    assert message in error.message
    assert str(error) == error.message
    assert "\n" not in error.message and len(error.message) < 400


@pytest.mark.parametrize(
    ("accept", "message"),
    [
        ("text/html", "unsupported accept type 'text/html'; use application/json"),
        ("application/json;q=0, text/csv", "unsupported accept type"),
        ("image/png", "'image/png'"),
    ],
)
def test_an_answer_the_client_does_not_accept_is_406(accept: str, message: str) -> None:
    with pytest.raises(RequestError, match=message) as caught:
        contract.encode_answer([], accept)
    assert (caught.value.status, caught.value.phrase) == (406, "Not Acceptable")


def test_the_error_carries_its_status_phrase_and_one_line() -> None:
    error = RequestError(contract.HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "two\nlines  here")
    assert (error.status, error.phrase, error.message) == (
        415,
        "Unsupported Media Type",
        "two lines here",
    )
    assert type(error.status) is int


CONTENT_TYPES = st.sampled_from(
    [*contract.IMAGE_CONTENT_TYPES, contract.JSON_CONTENT_TYPE, "text/csv", "", "image/jpeg;x"]
)


@settings(max_examples=300)
@given(body=st.binary(max_size=300) | st.text(max_size=300), content_type=CONTENT_TYPES)
def test_any_body_is_served_or_refused_with_a_client_status(
    body: bytes | str, content_type: str
) -> None:
    """Nothing a client sends escapes as another exception (the container's 500)."""
    try:
        decode(body, content_type)
    except RequestError as error:
        assert error.status in (400, 415)


@given(body=st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()))
def test_any_base64_image_field_is_served_or_a_400(body: str) -> None:
    try:
        decode(_json(image=body), "application/json")
    except RequestError as error:
        assert error.status == 400


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)


@given(top_k=JSON_VALUES)
def test_top_k_is_a_positive_integer_or_absent(top_k: object) -> None:
    good = top_k is None or (type(top_k) is int and top_k >= 1)
    try:
        _, asked = decode(_json(image=B64, top_k=top_k), "application/json")
    except RequestError as error:
        assert not good
        assert error.status == 400
        assert error.message.startswith("top_k must be a positive integer, got ")
    else:
        assert good
        assert asked == top_k


@given(accept=st.text(max_size=40))
def test_any_accept_header_is_answered_or_a_406(accept: str) -> None:
    try:
        contract.encode_answer([], accept)
    except RequestError as error:
        assert error.status == 406
        assert not contract.accepts_json(accept)
    else:
        assert contract.accepts_json(accept)
