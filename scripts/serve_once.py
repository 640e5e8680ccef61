"""Serve one image through the classifier's inference.py, as SageMaker's PyTorch server would.

``python serve_once.py MODEL_DIR IMAGE`` loads ``MODEL_DIR/code/inference.py`` (the copy
``train.py`` put in the model), calls ``model_fn``, then ``input_fn`` / ``predict_fn`` /
``output_fn`` once with the image's bytes (``image/jpeg``) and once as JSON (base64,
``top_k=2``), then sends one bad request (text as ``image/jpeg``), and prints
``{"answers": [bytes answer, JSON answer], "bad_request": {"status", "message", "via"}}``.

Where ``sagemaker_inference`` is installed (the toolkit the PyTorch inference container serves
with), the bad request and the image go through its real ``Transformer``, so the status is the
one the container would send (400; a 500 there means inference.py let the error escape as a
server failure); elsewhere the bad request's status is the one ``input_fn``'s error carries.
Needs torch and torchvision only, so it runs on a machine without gt_toolkit's dependencies
(a GPU box) too. :class:`Context` and :func:`invoke` are what ``make test`` sends its requests
through the Transformer with (a stand-in model there).
"""

from __future__ import annotations

import base64
import json
import os
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

BAD_REQUEST = (b"this is not an image", "image/jpeg")
"""A request the endpoint must refuse with 400: its body is no JPEG."""


class _RequestProcessor:
    """The model server's per-request headers, as ``Transformer.transform`` reads them."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def get_request_properties(self) -> dict[str, str]:
        return self._headers


class Context:
    """What ``sagemaker_inference``'s ``Transformer.transform`` uses of the model server's context.

    TorchServe's (or MMS's) context for one request: ``system_properties["model_dir"]``, the
    request headers, and the two setters the answer's status and content type go through;
    ``model_name`` is read by the PyTorch toolkit's own copy of ``transform`` when it logs an
    error. A new context starts at 200, as the server's does.
    """

    def __init__(self, model_dir: str, headers: dict[str, str]) -> None:
        self.system_properties = {"model_dir": model_dir}
        self.request_processor = [_RequestProcessor(headers)]
        self.model_name = Path(model_dir).name
        self.status, self.phrase, self.content_type = 200, "", ""

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        """Where ``Transformer.handle_error`` puts an error's status (the server's signature)."""
        self.status, self.phrase = code, phrase

    def set_response_content_type(self, idx: int, value: str) -> None:
        """Where ``Transformer.transform`` puts the answer's content type."""
        self.content_type = value


@dataclass(frozen=True)
class Answer:
    """What the container sends back: status, reason phrase, content type and body (text)."""

    status: int
    phrase: str
    content_type: str
    body: str


def invoke(transformer: Any, model_dir: str, body: bytes, content_type: str, accept: str) -> Answer:
    """One request through a ``sagemaker_inference`` ``Transformer``, as the server sends it.

    The transformer imports the serving module named by ``SAGEMAKER_PROGRAM`` (default
    ``inference.py``) and calls its ``model_fn`` on the first request. On an error its body is
    the message, a newline and the traceback.
    """
    context = Context(model_dir, {"Content-Type": content_type, "Accept": accept})
    (answer,) = transformer.transform([{"body": body}], context)
    text = answer.decode() if isinstance(answer, bytes) else str(answer)
    return Answer(context.status, context.phrase, context.content_type, text)


def _labels(answer: str) -> list[str]:
    return [p["label"] for p in json.loads(answer)["predictions"]]


def main(model_dir: str, image_path: str) -> int:
    """Print the two answers and the bad request's status (see the module's docstring)."""
    sys.path.insert(0, str(Path(model_dir) / "code"))
    import inference  # the model's own copy, as the endpoint imports it

    model = inference.model_fn(model_dir)
    image = Path(image_path).read_bytes()
    as_bytes = inference.predict_fn(inference.input_fn(image, "image/jpeg"), model)
    document = json.dumps({"image": base64.b64encode(image).decode(), "top_k": 2})
    as_json = inference.predict_fn(inference.input_fn(document, "application/json"), model)
    answers = [inference.output_fn(p, "application/json")[0] for p in (as_bytes, as_json)]
    try:
        from sagemaker_inference.transformer import Transformer
    except ImportError:
        try:
            inference.input_fn(*BAD_REQUEST)
            bad = {"status": 200, "message": "", "via": "input_fn"}
        except ValueError as exc:  # contract.RequestError, with the status the container sends
            bad = {"status": getattr(exc, "status", 500), "message": str(exc), "via": "input_fn"}
    else:
        os.environ["SAGEMAKER_PROGRAM"] = "inference.py"
        transformer = Transformer()
        served = invoke(transformer, model_dir, image, "image/jpeg", "application/json")
        if served.status != 200 or _labels(served.body) != _labels(answers[0]):
            raise SystemExit(f"the Transformer served the image differently: {served}")
        refused = invoke(transformer, model_dir, *BAD_REQUEST, "application/json")
        via = f"sagemaker_inference {version('sagemaker-inference')} Transformer"
        bad = {"status": refused.status, "message": refused.body.splitlines()[0], "via": via}
    print(json.dumps({"answers": answers, "bad_request": bad}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
