"""Serve the classifier ``train.py`` saved: the four functions SageMaker's PyTorch server calls.

The model archive carries this file in ``code/`` (``train.py`` copies it there), so the
endpoint needs only ``SAGEMAKER_PROGRAM=inference.py`` and
``SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code``.

Requests: an image body (``image/jpeg``, ``image/png`` or ``application/x-image``), or
``application/json`` as ``{"image": "<base64 JPEG or PNG>", "top_k": 3}``. The answer
(``application/json``) is ``{"predictions": [{"class_id", "label", "probability"}, …]}``, most
likely first, ``top_k`` long (default: the one saved at training time). A request that cannot
be served raises ``ValueError`` with the reason, which the server returns as the error body;
:func:`model_fn` fails at start-up with the missing file named (not "Worker died").
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from pathlib import Path
from typing import Any

import contract
import torch
from image_io import rgb_image
from PIL import Image
from train import build_model, eval_transform


def model_fn(model_dir: str) -> dict[str, Any]:
    """Load ``model.pth`` and ``classes.json`` from the model directory."""
    root = Path(model_dir)
    missing = [n for n in (contract.MODEL_FILE, contract.CLASSES_FILE) if not (root / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{model_dir} lacks {missing}: was it written by train.py?")
    info = json.loads((root / contract.CLASSES_FILE).read_text(encoding="utf-8"))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(info["arch"], len(info["classes"]), pretrained=False)
    state = torch.load(root / contract.MODEL_FILE, map_location=device, weights_only=True)
    model.load_state_dict(state)
    model.to(device).eval()
    return {
        "model": model,
        "classes": list(info["classes"]),
        "transform": eval_transform(int(info["image_size"])),
        "top_k": int(info["top_k"]),
        "device": device,
    }


def _image(data: bytes) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return rgb_image(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"the request body is not a JPEG or PNG image: {exc}") from exc


def input_fn(request_body: bytes | str, request_content_type: str) -> dict[str, Any]:
    """An image and an optional ``top_k`` from an image body or a JSON document."""
    content_type = request_content_type.split(";")[0].strip().lower()
    raw = request_body.encode() if isinstance(request_body, str) else bytes(request_body)
    if content_type in contract.IMAGE_CONTENT_TYPES:
        return {"image": _image(raw), "top_k": None}
    if content_type == contract.JSON_CONTENT_TYPE:
        try:
            document = json.loads(raw)
            encoded = document["image"]
            top_k = document.get("top_k")
            data = base64.b64decode(encoded, validate=True)
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise ValueError(
                'expected JSON {"image": "<base64 JPEG or PNG>", "top_k": <int, optional>}'
            ) from exc
        if top_k is not None and (
            isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1
        ):
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        return {"image": _image(data), "top_k": top_k}
    accepted = ", ".join([*contract.IMAGE_CONTENT_TYPES, contract.JSON_CONTENT_TYPE])
    raise ValueError(f"unsupported content type {request_content_type!r}; send one of: {accepted}")


def predict_fn(data: dict[str, Any], model: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``top_k`` most likely classes with their softmax probabilities."""
    tensor = model["transform"](data["image"]).unsqueeze(0).to(model["device"])
    with torch.no_grad():
        probabilities = torch.softmax(model["model"](tensor), dim=1)[0]
    k = min(data["top_k"] or model["top_k"], len(model["classes"]))
    values, indices = torch.topk(probabilities, k)
    return [
        {"class_id": int(i), "label": model["classes"][int(i)], "probability": float(p)}
        for p, i in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def output_fn(prediction: list[dict[str, Any]], accept: str) -> str:
    """``{"predictions": [...]}`` as JSON (the only answer type this endpoint speaks)."""
    if not contract.accepts_json(accept or ""):
        raise ValueError(f"unsupported accept type {accept!r}; use {contract.JSON_CONTENT_TYPE}")
    return json.dumps({contract.PREDICTIONS_KEY: prediction})
