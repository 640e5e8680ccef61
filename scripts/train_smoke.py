"""``make train-smoke``: run the shipped PyTorch scripts for real, once, on the samples.

1. Convert ``samples/ball-count.manifest`` (the 40 sample images labelled ``one``, ``two`` or
   ``three-or-more`` balls, a Ground Truth image-classification output) with
   ``gt-convert class-folders`` (stratified, so every class is in both splits).
2. Build the training request with :func:`build_pytorch_training_request`, unpack the
   ``sourcedir.tar.gz`` the builder would upload, and run its ``train.py`` with the arguments the
   framework container would derive from the request (:func:`script_argv`) and the
   ``SM_CHANNEL_*`` variables, in a Python that has torch (``--torch-python``).
3. Check every ``MetricDefinitions`` regex against the lines the script printed.
4. Serve one image through ``inference.py`` from the model's ``code/`` folder (as the endpoint
   would, ``serve_once.py``), as image bytes and as JSON, and decode the answers with
   ``decode_classification``.

``--keep DIR`` keeps the class folders, the unpacked bundle, the model and ``argv.txt`` (the
container's arguments), so steps 2 and 4 can be rerun where only torch is installed, e.g. on a
GPU machine (later arguments win)::

    cd DIR && python3 sourcedir/train.py $(cat argv.txt) --device cuda --epochs 5
        --train folders/train --validation folders/validation --model_dir model
    python3 scripts/serve_once.py DIR/model samples/images/img_000.jpg

Prints the time of each step; exits non-zero when any step fails. The orchestration runs in the
project's environment; only steps 2 and 4 need torch.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from gt_toolkit.convert import ConvertOptions, convert_output
from gt_toolkit.sagemaker.predictions import decode_classification
from gt_toolkit.sagemaker.pytorch import (
    PyTorchClassifierHyperparameters,
    build_pytorch_training_request,
    pack_pytorch_source,
    script_argv,
)
from gt_toolkit.sagemaker.training import TrainingResources

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
SERVE_ONCE = REPO / "scripts" / "serve_once.py"


def class_folders(work: Path) -> Path:
    """Step 1: the samples' ball-count labels converted to class folders."""
    out = work / "folders"
    options = ConvertOptions(
        images_dir=str(SAMPLES / "images"),
        images_prefix="s3://gt-toolkit-demo/images/",
        stratify=True,
        validation_fraction=0.25,
    )
    result = convert_output("class-folders", SAMPLES / "ball-count.manifest", out, options)
    if result.notes:
        raise SystemExit(f"conversion: {result.notes}")
    print(f"class folders: {json.dumps(result.extra['images_per_folder'])}")
    return out


def train(args: argparse.Namespace, work: Path, folders: Path) -> tuple[Path, str]:
    """Step 2: the builder's request, run by the unpacked bundle's train.py."""
    request = build_pytorch_training_request(
        job_name="ball-count-smoke",
        role_arn="arn:aws:iam::123456789012:role/SageMakerRole",
        region="us-east-1",
        train_uri="s3://gt-toolkit-demo/folders/train/",
        validation_uri="s3://gt-toolkit-demo/folders/validation/",
        output_uri="s3://gt-toolkit-demo/models",
        source_dir_uri="s3://gt-toolkit-demo/code/sourcedir.tar.gz",
        hyperparameters=PyTorchClassifierHyperparameters(
            arch=args.arch,
            epochs=args.epochs,
            batch_size=8,
            image_size=args.image_size,
            pretrained=False,  # no network here; the weights download is the container's
            num_workers=0,
            device=args.device,
            learning_rate=0.01,
        ),
        resources=TrainingResources(
            instance_type="ml.g5.xlarge" if args.device == "cuda" else "ml.m5.xlarge"
        ),
    )
    code = work / "sourcedir"
    code.mkdir()
    bundle = work / "sourcedir.tar.gz"
    bundle.write_bytes(pack_pytorch_source())
    with tarfile.open(bundle) as tar:
        tar.extractall(code, filter="data")
    model_dir = work / "model"
    env = {
        "SM_CHANNEL_TRAIN": str(folders / "train"),
        "SM_CHANNEL_VALIDATION": str(folders / "validation"),
        "SM_MODEL_DIR": str(model_dir),
        "SM_OUTPUT_DATA_DIR": str(work / "output"),
        "PATH": "/usr/bin:/bin",
        "PYTHONUNBUFFERED": "1",
    }
    argv = [args.torch_python, "train.py", *script_argv(request["HyperParameters"])]
    (work / "argv.txt").write_text(" ".join(argv[2:]) + "\n", encoding="utf-8")
    print("$ " + " ".join(argv[1:]))
    done = subprocess.run(argv, cwd=code, env=env, capture_output=True, text=True, check=False)
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        raise SystemExit(f"train.py failed ({done.returncode}):\n{done.stderr[-3000:]}")
    log = done.stdout
    metric_lines = [line for line in log.splitlines() if line.startswith("#metrics")]
    for definition in request["AlgorithmSpecification"]["MetricDefinitions"]:
        regex = definition["Regex"]
        values = [m.group(1) for line in metric_lines if (m := re.search(regex, line))]
        if len(values) != len(metric_lines) or not values:
            raise SystemExit(f"{definition['Name']}: the regex missed a metric line")
        print(f"metric {definition['Name']}: {', '.join(values)}")
    if args.log:
        Path(args.log).write_text(log, encoding="utf-8")
    return model_dir, log


def serve(args: argparse.Namespace, model_dir: Path) -> None:
    """Step 4: model_fn / input_fn / predict_fn / output_fn on one image, decoded."""
    image = SAMPLES / "images" / "img_000.jpg"
    done = subprocess.run(
        [args.torch_python, str(SERVE_ONCE), str(model_dir), str(image)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"inference failed:\n{done.stderr[-3000:]}")
    as_bytes, as_json = json.loads(done.stdout)
    for label, answer in (("image/jpeg", as_bytes), ("application/json", as_json)):
        scores = decode_classification(answer)
        shown = ", ".join(f"{s.label} {s.probability:.3f}" for s in scores)
        print(f"served {image.name} as {label}: {shown}")
    if len(decode_classification(as_json)) != 2:
        raise SystemExit("the JSON request asked for top_k=2")


def main(argv: list[str] | None = None) -> int:
    """Run the four steps and print their times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-python", default=sys.executable)
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--log", help="keep train.py's output here")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    found = shutil.which(args.torch_python)
    if found is None:
        raise SystemExit(f"no Python at {args.torch_python} (make train-smoke installs one)")
    args.torch_python = str(Path(found).absolute())  # a venv python is a symlink: keep it
    times = {}
    with tempfile.TemporaryDirectory(prefix="train-smoke-") as tmp:
        work = Path(args.keep or tmp).absolute()
        if args.keep:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
        started = time.perf_counter()
        folders = class_folders(work)
        times["class folders"] = time.perf_counter() - started
        started = time.perf_counter()
        model_dir, _ = train(args, work, folders)
        times[f"train {args.epochs} epoch(s) on {args.device}"] = time.perf_counter() - started
        started = time.perf_counter()
        serve(args, model_dir)
        times["serve one image (load + 2 requests)"] = time.perf_counter() - started
    for step, seconds in times.items():
        print(f"time: {step}: {seconds:.1f} s")
    print("train-smoke: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
