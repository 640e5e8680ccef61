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
   ``decode_classification``; send one bad request (text as ``image/jpeg``), which must get
   400 (through ``sagemaker_inference``'s ``Transformer``, the container's, where the torch
   Python has it).
5. Resume from checkpoints (``--no-resume`` skips it) with E = ``--epochs`` + 1: a run of E
   epochs is killed once its epoch E-1 checkpoint is written (a spot reclaim), started again
   and must say ``resumed from epoch E-1 of E`` and report for epoch E what an uninterrupted
   run of E epochs reported (to the last digit on the CPU; GPU kernels need not be
   deterministic); started once more it must not train but still write the model; a run with
   other hyperparameters must ignore that checkpoint (and leave it); a truncated checkpoint
   must be reported and training start from scratch.

``--keep DIR`` keeps the class folders, the unpacked bundle, the model, its checkpoints and
``argv.txt`` (the container's arguments, checkpoints to ``DIR/checkpoints``), so steps 2 and 4
can be rerun where only torch is installed, e.g. on a GPU machine (later arguments win)::

    cd DIR && python3 sourcedir/train.py $(cat argv.txt) --device cuda --epochs 5
        --train folders/train --validation folders/validation --model_dir model
    python3 scripts/serve_once.py DIR/model samples/images/img_000.jpg

Prints the time of each step; exits non-zero when any step fails. The orchestration runs in the
project's environment; only steps 2, 4 and 5 need torch.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path

from gt_toolkit.convert import ConvertOptions, convert_output
from gt_toolkit.sagemaker.predictions import decode_classification
from gt_toolkit.sagemaker.pytorch import (
    PyTorchClassifierHyperparameters,
    build_pytorch_training_request,
    pack_pytorch_source,
    script_argv,
)
from gt_toolkit.sagemaker.scripts.pytorch_classifier import contract
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


class Trainer:
    """Runs the unpacked bundle's ``train.py`` from the work folder, as the container would.

    ``argv`` are the arguments the container derives from the builder's request; each run may
    add its own (later ones win), e.g. a model folder of its own.
    """

    def __init__(self, args: argparse.Namespace, work: Path, folders: Path, argv: list[str]):
        self.python, self.work, self.argv = args.torch_python, work, argv
        self.env = {
            "SM_CHANNEL_TRAIN": str(folders / "train"),
            "SM_CHANNEL_VALIDATION": str(folders / "validation"),
            "SM_MODEL_DIR": str(work / "model"),
            "SM_OUTPUT_DATA_DIR": str(work / "output"),
            "PATH": "/usr/bin:/bin",
            "PYTHONUNBUFFERED": "1",
        }

    def command(self, extra: list[str]) -> list[str]:
        """The command line of one run."""
        return [self.python, "sourcedir/train.py", *self.argv, *extra]

    def run(self, *extra: str) -> str:
        """Train to the end; its output (stdout), or exit naming the failure."""
        done = subprocess.run(
            self.command(list(extra)),
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"train.py failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout

    def run_until(self, line_start: str, *extra: str) -> str:
        """Train until a line starts with ``line_start``, then kill it as a spot reclaim would."""
        with subprocess.Popen(
            self.command(list(extra)),
            cwd=self.work,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as process:
            assert process.stdout is not None
            lines = []
            for line in process.stdout:
                lines.append(line)
                if line.startswith(line_start):
                    process.send_signal(signal.SIGKILL)
                    break
            process.wait()
        if process.returncode != -signal.SIGKILL:
            raise SystemExit(f"train.py ended ({process.returncode}) before {line_start!r}")
        return "".join(lines)


def metric_lines(log: str) -> list[str]:
    """The script's ``#metrics`` lines."""
    return [line for line in log.splitlines() if line.startswith(contract.METRIC_PREFIX)]


def train(args: argparse.Namespace, work: Path, folders: Path) -> tuple[Path, Trainer]:
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
        checkpoint_uri="s3://gt-toolkit-demo/checkpoints/ball-count-smoke",
    )
    code = work / "sourcedir"
    code.mkdir()
    bundle = work / "sourcedir.tar.gz"
    bundle.write_bytes(pack_pytorch_source())
    with tarfile.open(bundle) as tar:
        tar.extractall(code, filter="data")
    # CheckpointConfig's LocalPath is the container's; here the checkpoints go beside the model
    local = {**request["HyperParameters"], "checkpoint_dir": json.dumps("checkpoints")}
    argv = script_argv(local)
    (work / "argv.txt").write_text(" ".join(argv) + "\n", encoding="utf-8")
    trainer = Trainer(args, work, folders, argv)
    print("$ " + " ".join(trainer.command([])[1:]))
    log = trainer.run()
    sys.stdout.write(log)
    lines = metric_lines(log)
    for definition in request["AlgorithmSpecification"]["MetricDefinitions"]:
        regex = definition["Regex"]
        values = [m.group(1) for line in lines if (m := re.search(regex, line))]
        if len(values) != len(lines) or not values:
            raise SystemExit(f"{definition['Name']}: the regex missed a metric line")
        print(f"metric {definition['Name']}: {', '.join(values)}")
    if args.log:
        Path(args.log).write_text(log, encoding="utf-8")
    return work / "model", trainer


def expect(log: str, wanted: str, what: str) -> None:
    """Exit unless a line of ``log`` contains ``wanted``; print that line."""
    found = [line for line in log.splitlines() if wanted in line]
    if not found:
        raise SystemExit(f"{what}: no line with {wanted!r} in:\n{log[-3000:]}")
    print(f"{what}: {found[0]}")


def resume(args: argparse.Namespace, trainer: Trainer) -> dict[str, float]:
    """Step 5: interrupt, resume, finish, ignore another run's file, survive a broken one."""
    times: dict[str, float] = {}
    epochs = args.epochs + 1
    folder = trainer.work / "resume"
    longer = ["--epochs", str(epochs)]

    def own(name: str) -> list[str]:
        return [
            "--checkpoint_dir",
            str(folder / name),
            "--model_dir",
            str(folder / f"{name}-model"),
        ]

    def timed(label: str, step: Callable[[], str]) -> str:
        started = time.perf_counter()
        log = step()
        times[label] = time.perf_counter() - started
        return log

    reference = timed(
        f"resume: uninterrupted {epochs} epochs", lambda: trainer.run(*longer, *own("reference"))
    )
    timed(
        f"resume: {epochs} epochs killed after epoch {epochs - 1}",
        lambda: trainer.run_until(f"#info checkpoint epoch={epochs - 1} ", *longer, *own("spot")),
    )
    resumed = timed("resume: restarted", lambda: trainer.run(*longer, *own("spot")))
    expect(resumed, f"resumed from epoch {epochs - 1} of {epochs}", "restarted")
    last, wanted = metric_lines(resumed), metric_lines(reference)[-1:]
    if len(last) != 1 or (args.device == "cpu" and last != wanted):  # GPU kernels may differ
        raise SystemExit(f"the resumed run's epochs {last} are not the uninterrupted {wanted}")
    print(f"restarted: {last[0]}\nuninterrupted: {wanted[0]}")
    (checkpoint,) = (folder / "spot").glob("checkpoint-*.pt")
    first = checkpoint.read_bytes()
    shutil.rmtree(folder / "spot-model")
    again = timed("resume: started after the end", lambda: trainer.run(*longer, *own("spot")))
    expect(again, f"already holds all {epochs} epochs", "started after the end")
    # it reports the finished run's metrics again (a tuning job's objective) without training
    trained = "#info epoch=" in again or checkpoint.read_bytes() != first
    if trained or len(metric_lines(again)) != epochs:
        raise SystemExit("a finished run trained again or did not report its metrics")
    if not (folder / "spot-model" / contract.MODEL_FILE).is_file():
        raise SystemExit("a finished run wrote no model")
    other = ["--learning_rate", "0.005", "--epochs", "1", *own("spot")]
    log = timed("resume: other hyperparameters", lambda: trainer.run(*other))
    expect(
        log,
        f"ignored 1 checkpoint(s) of other runs (other hyperparameters or classes): "
        f"{checkpoint.name}",
        "other hyperparameters",
    )
    if checkpoint.read_bytes() != first or len(metric_lines(log)) != 1:
        raise SystemExit("the other run changed the first run's checkpoint or did not train")
    (mine,) = set((folder / "spot").glob("checkpoint-*.pt")) - {checkpoint}
    mine.write_bytes(mine.read_bytes()[: mine.stat().st_size // 2])
    log = timed("resume: truncated checkpoint", lambda: trainer.run(*other))
    expect(log, f"checkpoint {mine.name} cannot be read", "truncated checkpoint")
    if len(metric_lines(log)) != 1:
        raise SystemExit("after an unreadable checkpoint the run did not train from scratch")
    return times


def serve(args: argparse.Namespace, model_dir: Path) -> None:
    """Step 4: model_fn / input_fn / predict_fn / output_fn on one image, then a bad request."""
    image = SAMPLES / "images" / "img_000.jpg"
    done = subprocess.run(
        [args.torch_python, str(SERVE_ONCE), str(model_dir), str(image)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"inference failed:\n{done.stderr[-3000:]}")
    printed = json.loads(done.stdout)
    as_bytes, as_json = printed["answers"]
    for label, answer in (("image/jpeg", as_bytes), ("application/json", as_json)):
        scores = decode_classification(answer)
        shown = ", ".join(f"{s.label} {s.probability:.3f}" for s in scores)
        print(f"served {image.name} as {label}: {shown}")
    if len(decode_classification(as_json)) != 2:
        raise SystemExit("the JSON request asked for top_k=2")
    bad = printed["bad_request"]
    print(f"bad request (text as image/jpeg) via {bad['via']}: {bad['status']} {bad['message']}")
    if bad["status"] != HTTPStatus.BAD_REQUEST:
        raise SystemExit(f"a body that is no image got {bad['status']}, not 400")


def main(argv: list[str] | None = None) -> int:
    """Run the five steps and print their times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-python", default=sys.executable)
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--log", help="keep train.py's output here")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--no-resume", action="store_true", help="skip step 5 (checkpoints)")
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
        model_dir, trainer = train(args, work, folders)
        times[f"train {args.epochs} epoch(s) on {args.device}"] = time.perf_counter() - started
        started = time.perf_counter()
        serve(args, model_dir)
        times["serve one image (load + 2 requests + a bad one)"] = time.perf_counter() - started
        if not args.no_resume:
            times.update(resume(args, trainer))
    for step, seconds in times.items():
        print(f"time: {step}: {seconds:.1f} s")
    print("train-smoke: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
