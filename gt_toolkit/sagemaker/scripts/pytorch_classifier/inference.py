"""Serve the classifier ``train.py`` saved: the four functions SageMaker's PyTorch server calls.

The model archive carries this file in ``code/`` (``train.py`` copies it there), so the
endpoint needs only ``SAGEMAKER_PROGRAM=inference.py`` and
``SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code``.

Requests: an image body (``image/jpeg``, ``image/png`` or ``application/x-image``), or
``application/json`` as ``{"image": "<base64 JPEG or PNG>", "top_k": 3}``. The answer
(``application/json``) is ``{"predictions": [{"class_id", "label", "probability"}, …]}``, most
likely first, ``top_k`` long (default: the one saved at training time). A request that cannot
be served raises ``contract.RequestError`` (a ``ValueError``) with the reason; in the serving
container ``contract.http_errors`` hands it on so that the client gets 415 (content type), 400
(body, ``top_k``) or 406 (``Accept``) with the reason, not 500. :func:`model_fn` fails at
start-up with the missing file named (not "Worker died").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import contract
import image_io
import torch
from train import build_model, eval_transform


def model_fn(model_dir: str) -> dict[str, Any]:
    """Load ``model.pth`` and ``classes.json`` from the model directory."""
    image_io.require_codecs()  # else a server fault would answer as the client's bad image
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


def input_fn(request_body: bytes | str, request_content_type: str | None) -> dict[str, Any]:
    """An image and an optional ``top_k`` from an image body or a JSON document."""
    with contract.http_errors():
        image, top_k = contract.decode_request(
            request_body, request_content_type, image_io.decode_rgb
        )
    return {"image": image, "top_k": top_k}


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


def output_fn(prediction: list[dict[str, Any]], accept: str) -> tuple[str, str]:
    """``{"predictions": [...]}`` as JSON (the only answer type this endpoint speaks).

    With its content type: the container otherwise labels the answer with the request's
    ``Accept`` (``text/html, */*;q=0.8`` from a browser).
    """
    with contract.http_errors():
        return contract.encode_answer(prediction, accept), contract.JSON_CONTENT_TYPE
