"""The classifier endpoint's requests: what is served, and the HTTP status of what is not.

``contract.decode_request`` / ``encode_answer`` are what ``inference.py`` runs on a request
(no torch); the end-to-end tests send requests through the real ``sagemaker_inference``
Transformer, which the PyTorch inference container serves with, with ``endpoint_handler.py``
(inference.py's ``input_fn``/``output_fn``, a stand-in model) as the serving module.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sagemaker_inference.errors import BaseInferenceToolkitError
from sagemaker_inference.transformer import Transformer

from gt_toolkit.sagemaker.scripts.pytorch_classifier import contract
from gt_toolkit.sagemaker.scripts.pytorch_classifier.contract import RequestError
from gt_toolkit.sagemaker.scripts.pytorch_classifier.image_io import decode_rgb
from scripts.serve_once import Answer, invoke
from tests.sagemaker import endpoint_handler

SCRIPT_DIR = Path(contract.__file__).parent
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


# -- inside the container ---------------------------------------------------------------------


def test_in_the_container_the_error_keeps_its_status() -> None:
    with pytest.raises(BaseInferenceToolkitError) as caught, contract.http_errors():
        decode(JPEG, "text/csv")
    error = caught.value
    assert (error.status_code, error.phrase) == (415, "Unsupported Media Type")
    assert error.message.startswith("unsupported content type 'text/csv'")
    assert isinstance(error.__cause__, RequestError)


def test_without_sagemaker_inference_the_request_error_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``serve_once.py`` and a local caller catch ``ValueError``, as before."""
    monkeypatch.setitem(sys.modules, "sagemaker_inference.errors", None)  # not importable
    with pytest.raises(RequestError, match="top_k") as caught, contract.http_errors():
        decode(_json(image=B64, top_k=0), "application/json")
    assert caught.value.__cause__ is None


def test_other_errors_pass_through_unchanged() -> None:
    """A bug on the server's side stays a 500: only the client's mistakes are converted."""
    with pytest.raises(KeyError), contract.http_errors():
        raise KeyError("model")


def _function(tree: ast.Module, name: str) -> str:
    (found,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    return ast.dump(found)


@pytest.mark.parametrize("name", ["input_fn", "output_fn"])
def test_the_handler_runs_inference_pys_own_input_and_output_fn(name: str) -> None:
    """So the end-to-end tests below check what the endpoint runs (inference.py needs torch)."""
    shipped = ast.parse((SCRIPT_DIR / contract.INFERENCE_SCRIPT).read_text(encoding="utf-8"))
    handler = ast.parse(Path(endpoint_handler.__file__).read_text(encoding="utf-8"))
    assert _function(shipped, name) == _function(handler, name)


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """Send one request through a fresh Transformer serving ``endpoint_handler``."""
    monkeypatch.setenv("SAGEMAKER_PROGRAM", endpoint_handler.__name__)
    monkeypatch.delenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", raising=False)
    transformer = Transformer()

    def send(body: bytes, content_type: str, accept: str = "application/json") -> Answer:
        return invoke(transformer, str(tmp_path), body, content_type, accept)

    yield send


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "labels"),
    [
        (JPEG, "image/jpeg", "application/json", ["one"]),
        (PNG, "image/png", "*/*", ["one"]),
        (PNG, "application/x-image", "", ["one"]),
        (PNG, "image/png", "text/html, */*;q=0.8", ["one"]),  # a browser's: answered as JSON
        (
            _json(image=B64, top_k=2).encode(),
            "application/json",
            "application/json",
            ["one", "two"],
        ),
        (
            _json(image=B64, top_k=5).encode(),
            "application/json; charset=utf-8",  # bytes: only exact application/json is decoded
            "*/*",
            endpoint_handler.CLASSES,
        ),
    ],
)
def test_the_container_serves_a_good_request_with_200(
    endpoint: Any, body: bytes, content_type: str, accept: str, labels: list[str]
) -> None:
    answer = endpoint(body, content_type, accept)
    assert answer.status == 200, answer.body
    assert answer.content_type == "application/json"
    assert [p["label"] for p in json.loads(answer.body)["predictions"]] == labels


CONTAINER_BAD_REQUESTS: list[tuple[bytes, str, str, int, str]] = [
    (b"a,b\n1,2\n", "text/csv", "application/json", 415, "unsupported content type 'text/csv'"),
    (JPEG, "image/gif", "application/json", 415, "unsupported content type 'image/gif'"),
    (b"not an image", "image/jpeg", "application/json", 400, "not a JPEG or PNG image"),
    (b"{", "application/json", "application/json", 400, NOT_THE_DOCUMENT),
    (_json(top_k=2).encode(), "application/json", "*/*", 400, '"image" is None'),
    (_json(image=B64, top_k=0).encode(), "application/json", "", 400, "top_k must be"),
    (JPEG, "image/jpeg", "text/html", 406, "unsupported accept type 'text/html'"),
    (PNG, "image/png", "application/json;q=0", 406, "'application/json;q=0'"),
]
PHRASES = {400: "Bad Request", 406: "Not Acceptable", 415: "Unsupported Media Type"}


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "message"),
    CONTAINER_BAD_REQUESTS,
    ids=[f"{i}-{row[3]}" for i, row in enumerate(CONTAINER_BAD_REQUESTS)],
)
def test_the_container_answers_a_bad_request_with_its_status(
    endpoint: Any, body: bytes, content_type: str, accept: str, status: int, message: str
) -> None:
    """Before, every one of these was a 500 (the Transformer's answer to a plain ValueError)."""
    answer = endpoint(body, content_type, accept)
    assert (answer.status, answer.phrase) == (status, PHRASES[status]), answer.body
    assert message in answer.body.splitlines()[0]  # then the container's traceback


def test_a_body_the_container_cannot_decode_is_still_its_500(endpoint: Any) -> None:
    """A known limit: the Transformer decodes an ``application/json`` (or ``text/csv``) body as
    UTF-8 before ``input_fn`` is called, so bytes that are not UTF-8 fail there, as a 500."""
    answer = endpoint(b"\xff\xfe", "application/json")
    assert answer.status == 500
    assert "codec can't decode" in answer.body
    assert endpoint(b"\xff\xfe", "application/json; charset=utf-8").status == 400
