"""A serving module for ``sagemaker_inference``'s Transformer without torch (``SAGEMAKER_PROGRAM``).

``input_fn`` and ``output_fn`` are ``inference.py``'s, word for word (test_serving.py compares
their syntax trees); ``model_fn`` and ``predict_fn`` stand in for the model.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from gt_toolkit.sagemaker.scripts.pytorch_classifier import contract, image_io

CLASSES = ["one", "two", "three-or-more"]


def model_fn(model_dir: str) -> dict[str, Any]:
    return {"classes": CLASSES, "top_k": 1, "model_dir": model_dir}


def input_fn(request_body: bytes | str, request_content_type: str | None) -> dict[str, Any]:
    """An image and an optional ``top_k`` from an image body or a JSON document."""
    with contract.http_errors():
        image, top_k = contract.decode_request(
            request_body, request_content_type, image_io.decode_rgb
        )
    return {"image": image, "top_k": top_k}


def predict_fn(data: dict[str, Any], model: dict[str, Any]) -> list[dict[str, Any]]:
    """Fixed probabilities, ``top_k`` long; the image must be the RGB one ``input_fn`` read."""
    image = data["image"]
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    k = min(data["top_k"] or model["top_k"], len(model["classes"]))
    return [
        {"class_id": i, "label": label, "probability": p}
        for i, (label, p) in enumerate(zip(model["classes"], (0.5, 0.3, 0.2), strict=True))
    ][:k]


def output_fn(prediction: list[dict[str, Any]], accept: str) -> tuple[str, str]:
    """``{"predictions": [...]}`` as JSON (the only answer type this endpoint speaks).

    With its content type: the container otherwise labels the answer with the request's
    ``Accept`` (``text/html, */*;q=0.8`` from a browser).
    """
    with contract.http_errors():
        return contract.encode_answer(prediction, accept), contract.JSON_CONTENT_TYPE
