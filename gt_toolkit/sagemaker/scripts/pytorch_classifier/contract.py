"""The contract between the PyTorch classifier scripts and the request builder (no torch here).

SageMaker's training container turns the job's ``HyperParameters`` into command-line
arguments (each value JSON-decoded, then ``--name value``) and runs ``train.py`` with them;
CloudWatch and the tuner read the script's metrics back out of its log with the
``MetricDefinitions`` regexes. When the builder and the script each keep their own copy of the
names, the formats drift and a tuning job fails with "A metric is required for this
hyperparameter tuning job objective". So both import this file: the builder packs it beside the
scripts in ``sourcedir.tar.gz``, and ``make test`` checks, without torch, that every
hyperparameter the builder sends parses here and that every regex matches :func:`metric_line`.

The file imports the standard library only (and, inside the serving container,
``sagemaker_inference``'s error class): in the container it is a top-level module next to
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

**Requests.** :func:`decode_request` reads what ``inference.py``'s ``input_fn`` is sent and
:func:`encode_answer` writes its answer; a request they cannot serve raises
:class:`RequestError` with its HTTP status (415 content type, 400 body, 406 ``Accept``), which
:func:`http_errors` hands to the serving container so that the client gets that status, not 500.

**Checkpoints.** With ``checkpoint_dir`` set, the script writes ``checkpoint-<fingerprint>.pt``
there after every epoch and resumes from it on start. :func:`run_fingerprint` says which run a
checkpoint belongs to (the training hyperparameters and the classes), so jobs of one tuning job
sharing a checkpoint prefix never read or overwrite each other's file; :func:`plan_resume` is the
whole decision (nothing to resume, resume, already finished, another run's file, unreadable
file), with the reading of the file (``torch.load``) passed in.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final, TypeVar, cast

__all__ = [
    "ARCHITECTURES",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_KEYS",
    "CLASSES_FILE",
    "CODE_DIR",
    "IMAGE_CONTENT_TYPES",
    "IMAGE_SUFFIXES",
    "INFERENCE_SCRIPT",
    "JSON_CONTENT_TYPE",
    "KINDS",
    "METRIC_NAMES",
    "METRIC_PREFIX",
    "MODEL_FILE",
    "NOT_TRAINING",
    "PREDICTIONS_KEY",
    "SOURCE_FILES",
    "TOOLKIT_KEYS",
    "TRAINING_KEYS",
    "TRAIN_SCRIPT",
    "ClassFolderCheck",
    "Hyperparameters",
    "Limits",
    "RequestError",
    "ResumePlan",
    "accepts_json",
    "argument_problem",
    "build_parser",
    "check_class_folders",
    "checkpoint_name",
    "checkpoint_problem",
    "decode_request",
    "encode_answer",
    "http_errors",
    "image_files",
    "is_checkpoint_name",
    "is_toolkit_key",
    "list_channel",
    "metric_definitions",
    "metric_line",
    "metric_regex",
    "parse_bool",
    "partial_checkpoint_name",
    "plan_resume",
    "run_fingerprint",
    "unreadable_line",
]

TRAIN_SCRIPT: Final = "train.py"
INFERENCE_SCRIPT: Final = "inference.py"
SOURCE_FILES: Final = (TRAIN_SCRIPT, INFERENCE_SCRIPT, "contract.py", "image_io.py")
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
class Limits:
    """What a hyperparameter field accepts beyond its type (kept in the field's metadata).

    ``low``/``high`` bound numbers (``low_open`` excludes ``low`` itself); ``choices`` lists
    the strings a text value may take.
    """

    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()


def _hp(default: Any, help: str, **limits: Any) -> Any:
    return field(default=default, metadata={"limits": Limits(help, **limits)})


_MAX_SEED: Final = 2**64 - 1
"""The largest seed ``torch.manual_seed`` takes (a larger one is a RuntimeError at start-up)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Hyperparameters:
    """Every hyperparameter ``train.py`` accepts (one ``--name`` option per field), defaults.

    The builder sends these (``gt_toolkit.sagemaker.pytorch`` subclasses it to refuse bad
    values where they are written) and the script's parser is made from the same fields.
    """

    arch: str = _hp("resnet18", "torchvision ResNet to fine-tune", choices=ARCHITECTURES)
    pretrained: bool = _hp(True, "start from torchvision's ImageNet weights")
    train_only_top_layer: bool = _hp(False, "freeze everything but the new head")
    epochs: int = _hp(10, "passes over the training images", low=1, high=1000)
    batch_size: int = _hp(32, "images per optimiser step", low=1, high=4096)
    learning_rate: float = _hp(0.001, "optimiser step size", low=0, high=1, low_open=True)
    optimizer: str = _hp("sgd", "sgd (with momentum) or adamw", choices=("sgd", "adamw"))
    momentum: float = _hp(0.9, "SGD momentum", low=0, high=0.999)
    weight_decay: float = _hp(0.0001, "L2 penalty", low=0, high=1)
    image_size: int = _hp(224, "square input side in pixels", low=32, high=1024)
    top_k: int = _hp(5, "classes the endpoint returns by default", low=1, high=1000)
    num_workers: int = _hp(2, "data-loader worker processes", low=0, high=64)
    seed: int = _hp(0, "random seed (shuffling, head initialisation)", low=0, high=_MAX_SEED)
    device: str = _hp("auto", "auto picks CUDA when present", choices=("auto", "cpu", "cuda"))
    tensorboard_dir: str = _hp("", "write TensorBoard scalars here (empty: off)")
    checkpoint_dir: str = _hp(
        "", "save a checkpoint here after every epoch and resume from it (empty: off)"
    )

    def problems(self) -> list[str]:
        """Every value outside its type or limits, one line each."""
        return [
            problem
            for f in fields(self)
            if (
                problem := _problem(
                    f.name, KINDS[f.name], f.metadata["limits"], getattr(self, f.name)
                )
            )
        ]

    def values(self) -> dict[str, Any]:
        """Name -> value, leaving out empty text (``tensorboard_dir`` off: no empty argument)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != ""}


KINDS: Final[dict[str, type]] = {
    f.name: {"str": str, "int": int, "float": float, "bool": bool}[str(f.type)]
    for f in fields(Hyperparameters)
}
"""Each hyperparameter's Python type (the fields' annotations, which are strings here)."""

NOT_TRAINING: Final = frozenset({"checkpoint_dir", "tensorboard_dir", "top_k"})
"""Hyperparameters that cannot change the trained weights: where files go, and the endpoint's
default answer length (only written into ``classes.json``). Everything else, ``epochs`` (the
length of the cosine schedule), ``num_workers`` (each loader worker seeds its own augmentation)
and ``device`` included, is part of a run's identity."""

TRAINING_KEYS: Final = tuple(name for name in KINDS if name not in NOT_TRAINING)
"""The hyperparameters :func:`run_fingerprint` covers; a new field joins them by default."""

TOOLKIT_KEYS: Final = frozenset({"_tuning_objective_metric", "default_user_module_name"})
"""Hyperparameters the training toolkit keeps from the script besides the ``sagemaker_*`` ones
(a tuning job adds ``_tuning_objective_metric`` to each of its training jobs)."""


def is_toolkit_key(name: str) -> bool:
    """Whether the framework container keeps this hyperparameter instead of passing it on."""
    return name.startswith("sagemaker_") or name in TOOLKIT_KEYS


def _problem(name: str, kind: type, limits: Limits, value: object) -> str | None:
    """Why ``value`` is not acceptable for the field ``name``, or ``None`` when it is."""
    if kind is bool:
        return None if isinstance(value, bool) else f"{name} must be true or false"
    if kind is str:
        if not isinstance(value, str):
            return f"{name} must be text, got {value!r}"
        if limits.choices and value not in limits.choices:
            return f"{name} {value!r} is not one of: {', '.join(limits.choices)}"
        return None
    integer_only = kind is int
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer_only and not isinstance(value, int))
    ):
        return f"{name} must be {'an integer' if integer_only else 'a number'}"
    if not math.isfinite(value):
        return f"{name} must be finite, got {value}"
    low, high = limits.low, limits.high
    too_low = low is not None and (value <= low if limits.low_open else value < low)
    if too_low or (high is not None and value > high):
        return f"{name} must be in {'(' if limits.low_open else '['}{low}, {high}], got {value}"
    return None


def argument_problem(name: str, text: str) -> str | None:
    """Why the script refuses ``--name text``, or ``None`` when it takes it.

    The container hands the script every value as text; a tuning job picks the values itself,
    so each one it may pick must parse as the field's type and lie within its limits (argparse
    checks the type and the choices, :meth:`Hyperparameters.problems` the limits, at start-up).
    """
    field_ = next((f for f in fields(Hyperparameters) if f.name == name), None)
    if field_ is None:
        return f"{TRAIN_SCRIPT} takes no --{name}"
    kind = KINDS[name]
    try:
        value = parse_bool(text) if kind is bool else kind(text)
    except (ValueError, argparse.ArgumentTypeError):
        wanted = {bool: "true or false", int: "an integer"}.get(kind, "a number")
        return f"{name} {text!r} is not {wanted}"
    return _problem(name, kind, field_.metadata["limits"], value)


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The training script's parser: :class:`Hyperparameters` plus the SageMaker paths.

    Option names keep the underscores SageMaker sends (``--learning_rate 0.001``); the channel
    and model paths default to the ``SM_CHANNEL_*`` / ``SM_MODEL_DIR`` variables the container
    sets. Unknown options are errors, so a name the builder sends and the script lacks fails
    the contract test instead of being ignored in a paid job.
    """
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog=TRAIN_SCRIPT, description="Fine-tune a torchvision ResNet on class folders."
    )
    for f in fields(Hyperparameters):
        kind, limits = KINDS[f.name], f.metadata["limits"]
        parser.add_argument(
            f"--{f.name}",
            type=parse_bool if kind is bool else kind,
            default=f.default,
            choices=limits.choices or None,
            help=f"{limits.help} (default: {f.default})",
        )
    paths = (
        ("train", "SM_CHANNEL_TRAIN", "training class folders", True),
        ("validation", "SM_CHANNEL_VALIDATION", "validation class folders", True),
        ("model_dir", "SM_MODEL_DIR", "where the model artefact is written", True),
        ("output_data_dir", "SM_OUTPUT_DATA_DIR", "where metrics.json goes (optional)", False),
    )
    for name, variable, what, needed in paths:
        default = env.get(variable)
        parser.add_argument(
            f"--{name}",
            default=default,
            required=needed and default is None,
            help=f"{what} (${variable})",
        )
    return parser


def accepts_json(accept: str) -> bool:
    """Whether an HTTP ``Accept`` header lets the endpoint answer JSON.

    A header may list several media ranges (``text/html, */*;q=0.8`` from a browser,
    ``application/json, text/plain``); any of JSON, ``application/*`` or ``*/*`` without
    ``q=0`` will do. An empty header accepts anything.
    """
    if not accept.strip():
        return True
    for item in accept.split(","):
        media, *params = (part.strip().lower() for part in item.split(";"))
        if media in (JSON_CONTENT_TYPE, "application/*", "*/*") and not any(
            _weight(p) == 0 for p in params
        ):
            return True
    return False


def _weight(param: str) -> float | None:
    """A media range's ``q`` weight (``None`` for another parameter or a malformed one)."""
    name, _, value = param.partition("=")
    if name.strip() != "q":
        return None
    try:
        return float(value)
    except ValueError:
        return None


# -- the endpoint's requests ------------------------------------------------------------------

_Image = TypeVar("_Image")
_SHOWN: Final = 80
"""How many characters of a client's value an error message repeats."""


class RequestError(ValueError):
    """A request the endpoint cannot serve: the HTTP status to answer and why, on one line.

    A ``ValueError``, so callers outside the serving container (``serve_once.py``) catch it as
    before; inside it, :func:`http_errors` hands it on with its status kept.
    """

    def __init__(self, status: HTTPStatus, message: str) -> None:
        self.status = int(status)
        self.phrase = status.phrase
        self.message = " ".join(message.split())
        super().__init__(self.message)


def _shown(value: object) -> str:
    """``repr(value)`` cut to :data:`_SHOWN` characters (it is the client's, of any length)."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _not_the_document(why: str) -> RequestError:
    return RequestError(
        HTTPStatus.BAD_REQUEST,
        f'expected JSON {{"image": "<base64 JPEG or PNG>", "top_k": <int, optional>}}: {why}',
    )


def decode_request(
    body: bytes | bytearray | str | None,
    content_type: str | None,
    read_image: Callable[[bytes], _Image],
) -> tuple[_Image, int | None]:
    """The image and the ``top_k`` asked for (``None``: the model's default) of one request.

    The body is the image (:data:`IMAGE_CONTENT_TYPES`) or ``{"image": "<base64>", "top_k":
    3}`` (:data:`JSON_CONTENT_TYPE`); parameters after ``;`` in the content type are ignored.
    ``read_image`` turns the image's bytes into what the model takes (``image_io.decode_rgb``)
    and raises ``OSError`` for bytes that are not an image, so this file needs no Pillow.

    Raises:
        RequestError: 415 for another content type; 400 for a body that is not an image, not
            that JSON document, or a ``top_k`` that is not a positive integer.
    """
    media = (content_type or "").split(";")[0].strip().lower()
    # the container hands an application/json body over as text
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body or b"")
    top_k = None
    if media == JSON_CONTENT_TYPE:
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # JSON, UTF-8, or a 5,000-digit number
            raise _not_the_document(f"the body is not JSON ({exc})") from exc
        if not isinstance(document, dict):
            raise _not_the_document(f"the body is a JSON {type(document).__name__}")
        encoded = document.get("image")
        if not isinstance(encoded, str):
            raise _not_the_document(f'"image" is {_shown(encoded)}, not base64 text')
        try:
            raw = base64.b64decode(encoded, validate=True)
        except ValueError as exc:  # binascii.Error, or text that is not ASCII
            raise _not_the_document(f'"image" is not base64 ({exc})') from exc
        top_k = document.get("top_k")
        if top_k is not None and (
            isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1
        ):
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"top_k must be a positive integer, got {_shown(top_k)}"
            )
    elif media not in IMAGE_CONTENT_TYPES:
        accepted = ", ".join([*IMAGE_CONTENT_TYPES, JSON_CONTENT_TYPE])
        raise RequestError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"unsupported content type {_shown(content_type)}; send one of: {accepted}",
        )
    try:
        image = read_image(raw)
    except OSError as exc:
        raise RequestError(
            HTTPStatus.BAD_REQUEST, f"the request body is not a JPEG or PNG image: {exc}"
        ) from exc
    return image, top_k


def encode_answer(predictions: Sequence[Mapping[str, Any]], accept: str | None) -> str:
    """``{"predictions": [...]}`` as JSON, the only answer type the endpoint speaks.

    Raises:
        RequestError: 406 when ``accept`` rules JSON out (:func:`accepts_json`).
    """
    if not accepts_json(accept or ""):
        raise RequestError(
            HTTPStatus.NOT_ACCEPTABLE,
            f"unsupported accept type {_shown(accept)}; use {JSON_CONTENT_TYPE}",
        )
    return json.dumps({PREDICTIONS_KEY: list(predictions)})


def _toolkit_error() -> type[Exception] | None:
    """``sagemaker_inference``'s error that keeps its status; ``None`` outside the container."""
    try:
        from sagemaker_inference.errors import BaseInferenceToolkitError
    except ImportError:
        return None
    found: type[Exception] = BaseInferenceToolkitError
    return found


@contextmanager
def http_errors() -> Iterator[None]:
    """Re-raise a :class:`RequestError` so that the serving container answers with its status.

    The PyTorch inference container runs ``input_fn``/``output_fn`` in
    ``sagemaker_inference``'s ``Transformer``, which answers 500 to every exception but its
    ``BaseInferenceToolkitError(status_code, message, phrase)``; a 500 tells the client (and
    the endpoint's 5XX alarms) that the server failed when the request was wrong. Where that
    package is not installed the :class:`RequestError` goes on unchanged.
    """
    try:
        yield
    except RequestError as error:
        toolkit_error = _toolkit_error()
        if toolkit_error is None:
            raise
        raise toolkit_error(error.status, error.message, error.phrase) from error


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
    """The images directly inside one class folder, sorted.

    Other files are skipped, and so are hidden ones (``._cat.jpg``, the resource forks macOS
    leaves beside copied files), as :func:`check_class_folders` counts them.
    """
    return sorted(
        entry
        for entry in Path(folder).iterdir()
        if entry.is_file() and _is_image(entry.name) and not entry.name.startswith(".")
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


# -- checkpoints ------------------------------------------------------------------------------

CHECKPOINT_FORMAT: Final = 1
"""Bumped when the checkpoint's content changes shape; an older file is then unreadable."""
CHECKPOINT_KEYS: Final = (
    "format",
    "fingerprint",
    "epoch",
    "model",
    "optimizer",
    "scheduler",
    "best",
    "best_epoch",
    "best_model",
    "history",
    "rng",
)
"""What ``train.py`` saves: ``epoch`` is the last finished one; ``best_model`` is ``None`` when
the best epoch is that one (its weights are ``model``), so the file holds one copy only."""
_CHECKPOINT_AFFIXES: Final = ("checkpoint-", ".pt")
_FINGERPRINT_DIGITS: Final = 16
_CHECKPOINT_RE: Final = re.compile(
    f"{re.escape(_CHECKPOINT_AFFIXES[0])}[0-9a-f]{{{_FINGERPRINT_DIGITS}}}"
    f"{re.escape(_CHECKPOINT_AFFIXES[1])}"
)


def run_fingerprint(hyperparameters: Mapping[str, Any], classes: Sequence[str]) -> str:
    """16 hex digits naming one run: its :data:`TRAINING_KEYS` values and its classes in id order.

    ``hyperparameters`` are the values as the script parsed them (``vars(args)``; other keys,
    the ``sagemaker_*`` ones, paths and :data:`NOT_TRAINING` are left out), so the order of
    the keys and how a number was written in the request do not matter.
    """
    chosen = {name: hyperparameters[name] for name in TRAINING_KEYS}
    text = json.dumps(
        {"hyperparameters": chosen, "classes": list(classes)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_FINGERPRINT_DIGITS]


def checkpoint_name(fingerprint: str) -> str:
    """The checkpoint file of the run ``fingerprint`` (one per run: the latest epoch only)."""
    prefix, suffix = _CHECKPOINT_AFFIXES
    return f"{prefix}{fingerprint}{suffix}"


def is_checkpoint_name(name: str) -> bool:
    """Whether a file in the checkpoint folder is some run's checkpoint."""
    return _CHECKPOINT_RE.fullmatch(name) is not None


def partial_checkpoint_name(name: str) -> str:
    """Where a checkpoint is written before it replaces ``name`` (hidden, never resumed from)."""
    return f".{name}.partial"


def checkpoint_problem(content: object, fingerprint: str, epochs: int) -> str | None:
    """Why ``content`` (a loaded checkpoint) cannot be resumed by the run ``fingerprint``."""
    if not isinstance(content, Mapping):
        return f"it holds a {type(content).__name__}, not a checkpoint"
    missing = [key for key in CHECKPOINT_KEYS if key not in content]
    if missing:
        return f"it lacks {', '.join(missing)}"
    if content["format"] != CHECKPOINT_FORMAT:
        return f"format {content['format']!r}, this script reads {CHECKPOINT_FORMAT}"
    if content["fingerprint"] != fingerprint:
        return f"it was written by run {content['fingerprint']!r}"
    epoch = content["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch <= epochs:
        return f"its epoch {epoch!r} is not 1 to {epochs}"
    return None


def unreadable_line(name: str, why: str) -> str:
    """The one log line for a checkpoint that cannot be used: training starts from scratch.

    ``why`` (often an exception's text) is put on one line and cut at 300 characters.
    """
    text = " ".join(why.split())
    text = text if len(text) <= 300 else text[:299] + "…"
    return f"#warning checkpoint {name} cannot be read ({text}); training from scratch"


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """What :func:`plan_resume` decided.

    ``checkpoint`` is the content to restore (``None``: train from epoch 1); ``notes`` are the
    lines to print before training (other runs' files ignored, an unreadable file).
    """

    name: str
    epochs: int
    checkpoint: Mapping[str, Any] | None = None
    notes: tuple[str, ...] = ()

    @property
    def start_epoch(self) -> int:
        """The first epoch to train; ``epochs + 1`` when the checkpoint finished the run."""
        return 1 if self.checkpoint is None else int(self.checkpoint["epoch"]) + 1

    def resumed_line(self) -> str | None:
        """The one line saying where training goes on (``None`` when starting from scratch)."""
        if self.checkpoint is None:
            return None
        if self.start_epoch > self.epochs:
            return (
                f"#info {self.name} already holds all {self.epochs} epochs: not training "
                f"again, writing its best model (epoch {self.checkpoint['best_epoch']})"
            )
        return f"#info resumed from epoch {self.start_epoch - 1} of {self.epochs} ({self.name})"


def plan_resume(
    directory: str | os.PathLike[str],
    fingerprint: str,
    epochs: int,
    read: Callable[[Path], object],
) -> ResumePlan:
    """Whether and where to resume the run ``fingerprint`` from the checkpoints in ``directory``.

    Only this run's file (:func:`checkpoint_name`) is read; other runs' files are named in a
    note and left alone (in a tuning job they belong to jobs running beside this one). A file
    that ``read`` cannot load (any exception: a truncated upload, an older format) or whose
    content :func:`checkpoint_problem` refuses gives a note and a fresh start, never a failed
    job.
    """
    folder = Path(directory)
    name = checkpoint_name(fingerprint)
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    others = [n for n in present if is_checkpoint_name(n) and n != name]
    notes: list[str] = []
    if others:
        more = f" and {len(others) - 5} more" if len(others) > 5 else ""
        notes.append(
            f"#info ignored {len(others)} checkpoint(s) of other runs (other hyperparameters "
            f"or classes): {', '.join(others[:5])}{more}"
        )
    if name not in present:
        return ResumePlan(name, epochs, notes=tuple(notes))
    try:
        content = read(folder / name)
    except Exception as exc:  # whatever the reader raises, the job goes on from scratch
        why = f"{type(exc).__name__}: {exc}"
        return ResumePlan(name, epochs, notes=(*notes, unreadable_line(name, why)))
    problem = checkpoint_problem(content, fingerprint, epochs)
    if problem is not None:
        notes.append(unreadable_line(name, problem))
        return ResumePlan(name, epochs, notes=tuple(notes))
    return ResumePlan(name, epochs, cast("Mapping[str, Any]", content), tuple(notes))
