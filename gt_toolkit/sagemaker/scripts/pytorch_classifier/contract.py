"""The contract between the PyTorch classifier scripts and the request builder (no torch here).

SageMaker's training container turns the job's ``HyperParameters`` into command-line
arguments (each value JSON-decoded, then ``--name value``) and runs ``train.py`` with them;
CloudWatch and the tuner read the script's metrics back out of its log with the
``MetricDefinitions`` regexes. When the builder and the script each keep their own copy of the
names, the formats drift and a tuning job fails with "A metric is required for this
hyperparameter tuning job objective". So both import this file: the builder packs it beside the
scripts in ``sourcedir.tar.gz``, and ``make test`` checks, without torch, that every
hyperparameter the builder sends parses here and that every regex matches :func:`metric_line`.

The file imports the standard library only: in the container it is a top-level module next to
``train.py`` (``import contract``), in gt_toolkit it is
``gt_toolkit.sagemaker.scripts.pytorch_classifier.contract``.

**Data layout.** One folder per class under each channel (``train/<class>/<image>``,
``validation/<class>/<image>``), as ``gt-convert class-folders`` writes it. Class ids follow the
folder names in sorted order; entries starting with ``.`` are ignored; images are
:data:`IMAGE_SUFFIXES`. :func:`check_class_folders` is the one rule for what is wrong with such
a layout; the script runs it at start-up and the pre-flight runs it before the job is paid for.

**Metric line.** Once per epoch the script prints one line::

    #metrics epoch=3 train:loss=0.41 train:accuracy=0.8 validation:loss=0.39 validation:accuracy=1

**Model artefact.** ``model.pth`` (the state dict), ``classes.json`` (architecture, image size,
class names in id order, default top-k) and ``code/`` (the scripts, so the inference container
finds ``code/inference.py`` in the model archive without a repack).
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "ARCHITECTURES",
    "CLASSES_FILE",
    "CODE_DIR",
    "HYPERPARAMETERS",
    "IMAGE_CONTENT_TYPES",
    "IMAGE_SUFFIXES",
    "INFERENCE_SCRIPT",
    "JSON_CONTENT_TYPE",
    "METRIC_NAMES",
    "METRIC_PREFIX",
    "MODEL_FILE",
    "OBJECTIVE_METRIC",
    "PREDICTIONS_KEY",
    "SOURCE_FILES",
    "TRAIN_SCRIPT",
    "ClassFolderCheck",
    "Hyperparameter",
    "build_parser",
    "check_class_folders",
    "image_files",
    "list_channel",
    "metric_definitions",
    "metric_line",
    "metric_regex",
    "parse_bool",
]

TRAIN_SCRIPT: Final = "train.py"
INFERENCE_SCRIPT: Final = "inference.py"
SOURCE_FILES: Final = (TRAIN_SCRIPT, INFERENCE_SCRIPT, "contract.py")
"""What ``sourcedir.tar.gz`` holds (and what ``train.py`` copies into the model's ``code/``)."""

MODEL_FILE: Final = "model.pth"
CLASSES_FILE: Final = "classes.json"
CODE_DIR: Final = "code"

ARCHITECTURES: Final = ("resnet18", "resnet34", "resnet50")
IMAGE_SUFFIXES: Final = (".jpg", ".jpeg", ".png")
IMAGE_CONTENT_TYPES: Final = ("image/jpeg", "image/png", "application/x-image")
JSON_CONTENT_TYPE: Final = "application/json"
PREDICTIONS_KEY: Final = "predictions"
"""The inference answer: ``{"predictions": [{"class_id", "label", "probability"}, …]}``."""

METRIC_PREFIX: Final = "#metrics"
METRIC_NAMES: Final = ("train:loss", "train:accuracy", "validation:loss", "validation:accuracy")
OBJECTIVE_METRIC: Final = "validation:accuracy"
_NUMBER: Final = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def parse_bool(text: str) -> bool:
    """``True``/``true``/``1``/``yes`` and their opposites, as SageMaker passes booleans.

    Raises:
        argparse.ArgumentTypeError: anything else (argparse turns it into a usage error).
    """
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


@dataclass(frozen=True, slots=True)
class Hyperparameter:
    """One hyperparameter the training script accepts: its type, default and valid range.

    ``low``/``high`` bound numbers (``low_open`` excludes ``low`` itself); ``choices`` lists
    the strings a text value may take.
    """

    name: str
    kind: type[int] | type[float] | type[str] | type[bool]
    default: int | float | str | bool
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()

    def problem(self, value: object) -> str | None:
        """Why ``value`` is not acceptable, or ``None`` when it is."""
        if self.kind is bool:
            return None if isinstance(value, bool) else f"{self.name} must be true or false"
        if self.kind is str:
            if not isinstance(value, str):
                return f"{self.name} must be text, got {value!r}"
            if self.choices and value not in self.choices:
                return f"{self.name} {value!r} is not one of: {', '.join(self.choices)}"
            return None
        integer_only = self.kind is int
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (integer_only and not isinstance(value, int))
        ):
            return f"{self.name} must be {'an integer' if integer_only else 'a number'}"
        if not math.isfinite(value):
            return f"{self.name} must be finite, got {value}"
        too_low = self.low is not None and (
            value <= self.low if self.low_open else value < self.low
        )
        if too_low or (self.high is not None and value > self.high):
            low = "(" if self.low_open else "["
            return f"{self.name} must be in {low}{self.low}, {self.high}], got {value}"
        return None


HYPERPARAMETERS: Final = (
    Hyperparameter(
        "arch", str, "resnet18", "torchvision ResNet to fine-tune", choices=ARCHITECTURES
    ),
    Hyperparameter("pretrained", bool, True, "start from torchvision's ImageNet weights"),
    Hyperparameter("train_only_top_layer", bool, False, "freeze everything but the new head"),
    Hyperparameter("epochs", int, 10, "passes over the training images", low=1, high=1000),
    Hyperparameter("batch_size", int, 32, "images per optimiser step", low=1, high=4096),
    Hyperparameter(
        "learning_rate", float, 0.001, "optimiser step size", low=0, high=1, low_open=True
    ),
    Hyperparameter(
        "optimizer", str, "sgd", "sgd (with momentum) or adamw", choices=("sgd", "adamw")
    ),
    Hyperparameter("momentum", float, 0.9, "SGD momentum", low=0, high=0.999),
    Hyperparameter("weight_decay", float, 0.0001, "L2 penalty", low=0, high=1),
    Hyperparameter("image_size", int, 224, "square input side in pixels", low=32, high=1024),
    Hyperparameter("top_k", int, 5, "classes the endpoint returns by default", low=1, high=1000),
    Hyperparameter("num_workers", int, 2, "data-loader worker processes", low=0, high=64),
    Hyperparameter("seed", int, 0, "random seed (shuffling, head initialisation)", low=0),
    Hyperparameter(
        "device", str, "auto", "auto picks CUDA when present", choices=("auto", "cpu", "cuda")
    ),
    Hyperparameter("tensorboard_dir", str, "", "write TensorBoard scalars here (empty: off)"),
)
"""Every hyperparameter ``train.py`` accepts; the builder refuses any other name."""


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The training script's parser: :data:`HYPERPARAMETERS` plus the SageMaker paths.

    Option names keep the underscores SageMaker sends (``--learning_rate 0.001``); the channel
    and model paths default to the ``SM_CHANNEL_*`` / ``SM_MODEL_DIR`` variables the container
    sets. Unknown options are errors, so a name the builder sends and the script lacks fails
    the contract test instead of being ignored in a paid job.
    """
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog=TRAIN_SCRIPT, description="Fine-tune a torchvision ResNet on class folders."
    )
    for hp in HYPERPARAMETERS:
        convert = parse_bool if hp.kind is bool else hp.kind
        parser.add_argument(
            f"--{hp.name}",
            type=convert,
            default=hp.default,
            choices=hp.choices or None,
            help=f"{hp.help} (default: {hp.default})",
        )
    paths = (
        ("train", "SM_CHANNEL_TRAIN", "training class folders"),
        ("validation", "SM_CHANNEL_VALIDATION", "validation class folders"),
        ("model_dir", "SM_MODEL_DIR", "where the model artefact is written"),
        ("output_data_dir", "SM_OUTPUT_DATA_DIR", "where extra outputs (metrics.json) go"),
    )
    for name, variable, what in paths:
        default = env.get(variable)
        parser.add_argument(
            f"--{name}", default=default, required=default is None, help=f"{what} (${variable})"
        )
    return parser


def metric_line(epoch: int, values: Mapping[str, float]) -> str:
    """The one log line per epoch that :func:`metric_regex` reads back.

    Non-finite values are left out (a regex should find no value rather than a wrong one);
    names outside :data:`METRIC_NAMES` are a programming error.
    """
    unknown = sorted(set(values) - set(METRIC_NAMES))
    if unknown:
        raise ValueError(f"unknown metric names {unknown}; known: {', '.join(METRIC_NAMES)}")
    finite = [
        f"{name}={values[name]:.6g}"
        for name in METRIC_NAMES
        if name in values and math.isfinite(values[name])
    ]
    return " ".join([METRIC_PREFIX, f"epoch={epoch}", *finite])


def metric_regex(name: str) -> str:
    """The ``MetricDefinitions`` regex for ``name``: its value on a :func:`metric_line`."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}")
    return f"{METRIC_PREFIX} .*\\s{re.escape(name)}={_NUMBER}"


def metric_definitions() -> list[dict[str, str]]:
    """``MetricDefinitions`` for every metric the script prints (``Name`` and ``Regex``)."""
    return [{"Name": name, "Regex": metric_regex(name)} for name in METRIC_NAMES]


def image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The images directly inside one class folder, sorted (other files are skipped)."""
    return sorted(
        entry
        for entry in Path(folder).iterdir()
        if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES
    )


def list_channel(root: str | os.PathLike[str]) -> list[str]:
    """Every file under ``root`` as a relative POSIX path, plus ``"<dir>/"`` for empty folders.

    The same shape an S3 listing gives (keys relative to the channel prefix), so
    :func:`check_class_folders` reads both.
    """
    base = Path(root)
    entries = []
    for folder, dirs, files in os.walk(base):
        here = Path(folder)
        entries += [(here / name).relative_to(base).as_posix() for name in files]
        if not dirs and not files and here != base:
            entries.append(here.relative_to(base).as_posix() + "/")
    return sorted(entries)


@dataclass(frozen=True, slots=True)
class ClassFolderCheck:
    """What :func:`check_class_folders` found: the classes (sorted, id order) and the problems.

    ``counts`` is the number of usable images per channel; ``errors`` stop training;
    ``warnings`` name files the trainer skips.
    """

    classes: list[str]
    counts: dict[str, int]
    errors: list[str]
    warnings: list[str]


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _scan(paths: list[str]) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Images per class folder, and the files a trainer skips (by reason)."""
    images: dict[str, int] = {}
    skipped: dict[str, list[str]] = {"outside": [], "nested": [], "not images": []}
    for path in paths:
        parts = path.split("/")
        if any(part.startswith(".") for part in parts):
            continue
        if len(parts) == 1:
            skipped["outside"].append(path)
            continue
        images.setdefault(parts[0], 0)
        if parts[1:] == [""]:
            continue  # an empty folder (or an S3 folder marker)
        if len(parts) > 2:
            skipped["nested"].append(path)
        elif not _is_image(parts[1]):
            skipped["not images"].append(path)
        else:
            images[parts[0]] += 1
    return images, skipped


def check_class_folders(channels: Mapping[str, list[str]]) -> ClassFolderCheck:
    """Check class-folder channels given as listings (``{"train": ["cat/a.jpg", …], …}``).

    Errors: a channel with fewer than two classes, a class folder without images, class sets
    that differ between channels. Warnings: files outside any class folder, in nested folders,
    or that are not images (the trainer skips those). Hidden entries (``.x``) are ignored.
    The first channel's classes are the model's.
    """
    errors: list[str] = []
    warnings: list[str] = []
    per_channel: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for channel, paths in channels.items():
        images, skipped = _scan(paths)
        per_channel[channel] = sorted(images)
        counts[channel] = sum(images.values())
        if len(images) < 2:
            errors.append(f"{channel}: needs at least two class folders, found {sorted(images)}")
        empty = sorted(name for name, count in images.items() if count == 0)
        if empty:
            errors.append(f"{channel}: class folders without images: {empty}")
        for kind, files in skipped.items():
            if files:
                more = f" and {len(files) - 5} more" if len(files) > 5 else ""
                shown = ", ".join(files[:5]) + more
                warnings.append(f"{channel}: {len(files)} file(s) {kind} skipped: {shown}")
    names = list(per_channel)
    for other in names[1:]:
        first, second = set(per_channel[names[0]]), set(per_channel[other])
        if first != second:
            errors.append(
                f"{names[0]} and {other} class folders differ: only in {names[0]} "
                f"{sorted(first - second)}, only in {other} {sorted(second - first)}"
            )
    classes = per_channel[names[0]] if names else []
    return ClassFolderCheck(classes=classes, counts=counts, errors=errors, warnings=warnings)
