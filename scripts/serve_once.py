"""Serve one image through the classifier's inference.py, as SageMaker's PyTorch server would.

``python serve_once.py MODEL_DIR IMAGE`` loads ``MODEL_DIR/code/inference.py`` (the copy
``train.py`` put in the model), calls ``model_fn``, then ``input_fn`` / ``predict_fn`` /
``output_fn`` once with the image's bytes (``image/jpeg``) and once as JSON (base64,
``top_k=2``), and prints the two answers as a JSON list. Needs torch and torchvision only, so
it runs on a machine without gt_toolkit's dependencies (a GPU box) too.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path


def main(model_dir: str, image_path: str) -> int:
    """Print ``[answer to the bytes request, answer to the JSON request]``."""
    sys.path.insert(0, str(Path(model_dir) / "code"))
    import inference  # the model's own copy, as the endpoint imports it

    model = inference.model_fn(model_dir)
    image = Path(image_path).read_bytes()
    as_bytes = inference.predict_fn(inference.input_fn(image, "image/jpeg"), model)
    document = json.dumps({"image": base64.b64encode(image).decode(), "top_k": 2})
    as_json = inference.predict_fn(inference.input_fn(document, "application/json"), model)
    answers = [inference.output_fn(p, "application/json") for p in (as_bytes, as_json)]
    print(json.dumps(answers))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
