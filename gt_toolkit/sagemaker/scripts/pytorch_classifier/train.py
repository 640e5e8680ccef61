"""Fine-tune a torchvision ResNet on ``train/<class>/`` and ``validation/<class>/`` folders.

SageMaker's PyTorch container runs this file as the ``sagemaker_program``; it also runs on a
laptop (``make train-smoke``)::

    python train.py --train data/train --validation data/validation --model_dir model
        --output_data_dir out --epochs 1 --pretrained false --device cpu

Arguments, the metric line and the artefact layout are defined in ``contract.py`` (read it
first). This bundle runs without gt_toolkit, so it raises builtin errors and exits non-zero
with one readable line on bad input. ``device=auto`` trains on CUDA when PyTorch sees a GPU.

When the job carries a Debugger hook configuration (``DebugHookConfig``), the model and the loss
are registered with ``smdebug`` if the image has it; otherwise a ``#warning`` line says that
tensor rules will find no data. TensorBoard scalars are written when ``tensorboard_dir`` is set
(the builder points it at ``TensorBoardOutputConfig``'s local path).

With ``checkpoint_dir`` set (the builder points it at ``CheckpointConfig``'s local path), every
epoch ends by replacing this run's checkpoint there (model, optimiser, schedule, best epoch and
its weights, history, random states), and a start finds it again: a spot job that SageMaker
restarts goes on after its last finished epoch. ``contract.plan_resume`` decides what to do
with the files it finds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import contract
import image_io
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import models, transforms

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEBUG_HOOK_CONFIG = Path("/opt/ml/input/config/debughookconfig.json")


class ClassFolders(Dataset[tuple[Any, int]]):
    """``(image tensor, class id)`` pairs from one channel's class folders."""

    def __init__(self, root: Path, classes: Sequence[str], transform: Callable[..., Any]) -> None:
        self.items = [
            (path, class_id)
            for class_id, name in enumerate(classes)
            for path in contract.image_files(root / name)
        ]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, class_id = self.items[index]
        return self.transform(image_io.read_rgb(path)), class_id


def eval_transform(image_size: int) -> Callable[..., Any]:
    """Resize, centre-crop and normalise: what validation and the endpoint both apply."""
    return transforms.Compose(
        [
            transforms.Resize(round(image_size * 256 / 224)),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def train_transform(image_size: int) -> Callable[..., Any]:
    """Light augmentation for fine-tuning: random crop and horizontal flip."""
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(image_size, scale=(0.6, 1.0)),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def build_model(arch: str, num_classes: int, *, pretrained: bool) -> nn.Module:
    """A torchvision ResNet whose last layer predicts ``num_classes`` classes."""
    if arch not in contract.ARCHITECTURES:
        raise ValueError(f"arch {arch!r} is not one of: {', '.join(contract.ARCHITECTURES)}")
    factory = getattr(models, arch)
    try:
        model = factory(weights="DEFAULT" if pretrained else None)
    except OSError as exc:  # no network (e.g. EnableNetworkIsolation): say what to do
        raise SystemExit(
            f"cannot download the pretrained {arch} weights ({exc}); set pretrained=false "
            "or let the job reach the internet"
        ) from exc
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def pick_device(wanted: str) -> torch.device:
    """``auto`` is CUDA when PyTorch sees a GPU, else the CPU; ``cuda`` without one fails."""
    if wanted == "cuda" and not torch.cuda.is_available():
        raise SystemExit("device=cuda but PyTorch sees no GPU")
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(wanted)


def _check(args: argparse.Namespace) -> list[str]:
    """The classes, or exit listing every problem with the hyperparameters and the data.

    Every image's header is opened here (cheap), so a file that is no image stops the job
    before the model is built; one broken further in fails its epoch with its path named.
    """
    chosen = {name: getattr(args, name) for name in contract.KINDS}
    problems = contract.Hyperparameters(**chosen).problems()
    for label in ("train", "validation"):
        if not Path(getattr(args, label)).is_dir():
            problems.append(f"the {label} channel {getattr(args, label)} is not a folder")
    if problems:
        raise SystemExit("; ".join(problems))
    check = contract.check_class_folders(
        {label: contract.list_channel(getattr(args, label)) for label in ("train", "validation")}
    )
    for warning in check.warnings:
        print(f"#warning {warning}", flush=True)
    if check.errors:
        raise SystemExit("; ".join(check.errors))
    unreadable = image_io.unreadable_images(
        path
        for label in ("train", "validation")
        for name in check.classes
        for path in contract.image_files(Path(getattr(args, label)) / name)
    )
    if unreadable:
        shown = "; ".join(unreadable[:20])
        more = f" and {len(unreadable) - 20} more" if len(unreadable) > 20 else ""
        raise SystemExit(f"{len(unreadable)} image(s) cannot be read: {shown}{more}")
    return check.classes


def _debug_hook(model: nn.Module, criterion: nn.Module) -> Callable[[bool], None] | None:
    """Register with smdebug when the job asked for a Debugger hook.

    Returns the function that switches the hook between training and evaluation steps (the
    Overfit rule compares the two), or ``None`` without a hook.
    """
    if not DEBUG_HOOK_CONFIG.exists():
        return None
    try:  # only in images that ship smdebug
        import smdebug.pytorch as smd
        from smdebug import modes
    except ImportError:
        print(
            "#warning the job has a DebugHookConfig but this image has no smdebug: "
            "Debugger tensor rules will find no data",
            flush=True,
        )
        return None
    hook = smd.Hook.create_from_json_file()
    hook.register_module(model)
    hook.register_loss(criterion)

    def set_mode(training: bool) -> None:
        hook.set_mode(modes.TRAIN if training else modes.EVAL)

    return set_mode


def _run_epoch(
    model: nn.Module,
    loader: DataLoader[Any],
    criterion: nn.Module,
    device: torch.device,
    optimizer: torch.optim.Optimizer | None,
) -> tuple[float, float]:
    """Mean loss and accuracy over ``loader``; trains when an optimizer is given."""
    model.train(optimizer is not None)
    total_loss, correct, seen = 0.0, 0, 0
    with torch.set_grad_enabled(optimizer is not None):
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            logits = model(images)
            loss = criterion(logits, labels)
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            total_loss += float(loss.item()) * labels.size(0)
            correct += int((logits.argmax(dim=1) == labels).sum().item())
            seen += labels.size(0)
    return total_loss / max(seen, 1), correct / max(seen, 1)


def _save(args: argparse.Namespace, classes: list[str], state: dict[str, Any]) -> None:
    """Write ``model.pth``, ``classes.json`` and the scripts into ``code/`` (see contract)."""
    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(state, model_dir / contract.MODEL_FILE)
    info = {
        "arch": args.arch,
        "image_size": args.image_size,
        "classes": classes,
        "top_k": args.top_k,
    }
    (model_dir / contract.CLASSES_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
    code = model_dir / contract.CODE_DIR
    code.mkdir(exist_ok=True)
    here = Path(__file__).resolve().parent
    for name in contract.SOURCE_FILES:
        shutil.copyfile(here / name, code / name)


def _loaders(
    args: argparse.Namespace, classes: list[str], device: torch.device
) -> tuple[DataLoader[Any], DataLoader[Any]]:
    """Shuffled, augmented training batches and plain validation batches."""
    train_set = ClassFolders(Path(args.train), classes, train_transform(args.image_size))
    validation_set = ClassFolders(Path(args.validation), classes, eval_transform(args.image_size))
    common = {
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "pin_memory": device.type == "cuda",
    }
    # a last batch of one image breaks batch norm in training mode: drop the remainder then
    train_loader = DataLoader(
        train_set, shuffle=True, drop_last=len(train_set) > args.batch_size, **common
    )
    print(
        f"#info device={device} classes={len(classes)} train={len(train_set)} "
        f"validation={len(validation_set)} arch={args.arch}",
        flush=True,
    )
    return train_loader, DataLoader(validation_set, shuffle=False, **common)


def _optimizer(args: argparse.Namespace, model: nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW over the trainable parameters (only the head if asked)."""
    if args.train_only_top_layer:
        for name, parameter in model.named_parameters():
            parameter.requires_grad = name.startswith("fc.")
    params = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=args.learning_rate, momentum=args.momentum, weight_decay=args.weight_decay
        )
    return torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=args.weight_decay)


def _tensorboard(directory: str) -> Any:
    """A SummaryWriter when a directory is given (TensorBoardOutputConfig), else ``None``."""
    if not directory:
        return None
    try:  # needs the tensorboard package, which the framework images carry
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        print(f"#warning no TensorBoard output: {exc}", flush=True)
        return None
    return SummaryWriter(directory)


class Run:
    """The model, optimiser and schedule of one run, and how far it got.

    Built fresh (seeded, so the same hyperparameters start the same way) or restored from a
    checkpoint, after which the run goes on as the interrupted one would have: the random
    states come back too, so the next epoch shuffles and augments the same way (on the CPU the
    numbers are the same to the last digit; GPU kernels need not be deterministic).
    """

    def __init__(
        self,
        args: argparse.Namespace,
        classes: list[str],
        device: torch.device,
        *,
        pretrained: bool,
    ) -> None:
        random.seed(args.seed)
        torch.manual_seed(args.seed)
        self.model = build_model(args.arch, len(classes), pretrained=pretrained).to(device)
        self.optimizer = _optimizer(args, self.model)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=args.epochs
        )
        self.epoch = 0
        self.best: dict[str, float] = {}
        self.best_epoch = 0
        self.best_weights: dict[str, Any] = {}
        self.history: list[dict[str, float]] = []

    def weights(self) -> dict[str, Any]:
        """The model's weights, copied to the CPU (what ``model.pth`` holds)."""
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def checkpoint(self, fingerprint: str) -> dict[str, Any]:
        """Everything :meth:`restore` needs, keyed as ``contract.CHECKPOINT_KEYS``."""
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {
            "format": contract.CHECKPOINT_FORMAT,
            "fingerprint": fingerprint,
            "epoch": self.epoch,
            "model": self.weights(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "best": self.best,
            "best_epoch": self.best_epoch,
            "best_model": None if self.best_epoch == self.epoch else self.best_weights,
            "history": self.history,
            "rng": {"python": random.getstate(), "torch": torch.get_rng_state(), "cuda": cuda},
        }

    def restore(self, content: Any) -> None:
        """Take up a checkpoint that ``contract.checkpoint_problem`` accepted."""
        self.model.load_state_dict(content["model"])
        self.optimizer.load_state_dict(content["optimizer"])
        self.schedule.load_state_dict(content["scheduler"])
        self.epoch, self.best_epoch = int(content["epoch"]), int(content["best_epoch"])
        self.best = {k: float(v) for k, v in content["best"].items()}
        self.best_weights = content["best_model"] or content["model"]
        self.history = list(content["history"])
        rng = content["rng"]
        random.setstate(_as_tuples(rng["python"]))
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])


def _as_tuples(value: Any) -> Any:
    """``random.getstate()`` as it was saved: lists (if a loader made them) back to tuples."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list | tuple) else value


def _read_checkpoint(path: Path) -> Any:
    """Load a checkpoint onto the CPU, tensors and plain data only (no code from the file)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def _write_checkpoint(directory: Path, name: str, content: dict[str, Any]) -> None:
    """Replace ``name`` atomically, so an interruption mid-write leaves the previous epoch's.

    The partial file is hidden and never taken for a checkpoint; ``Path.replace`` is
    ``os.replace``, atomic within one file system.
    """
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / contract.partial_checkpoint_name(name)
    with partial.open("wb") as handle:
        torch.save(content, handle)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(directory / name)


def _start(
    args: argparse.Namespace, classes: list[str], device: torch.device, fingerprint: str
) -> Run:
    """A fresh run, or the one this run's checkpoint holds (see ``contract.plan_resume``)."""
    if not args.checkpoint_dir:
        return Run(args, classes, device, pretrained=args.pretrained)
    plan = contract.plan_resume(args.checkpoint_dir, fingerprint, args.epochs, _read_checkpoint)
    for note in plan.notes:
        print(note, flush=True)
    if plan.checkpoint is None:
        return Run(args, classes, device, pretrained=args.pretrained)
    run = Run(args, classes, device, pretrained=False)  # the checkpoint has the weights
    try:
        run.restore(plan.checkpoint)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        print(contract.unreadable_line(plan.name, f"{type(exc).__name__}: {exc}"), flush=True)
        return Run(args, classes, device, pretrained=args.pretrained)
    print(plan.resumed_line(), flush=True)
    return run


def _report(values: dict[str, float], epoch: int) -> None:
    """One epoch's metric line, which the job's ``MetricDefinitions`` read from the log."""
    print(contract.metric_line(epoch, values), flush=True)


def train(args: argparse.Namespace) -> dict[str, float]:
    """Fine-tune, print one metric line per epoch, save the best epoch; the best metrics."""
    classes = _check(args)
    device = pick_device(args.device)
    fingerprint = contract.run_fingerprint(vars(args), classes)
    train_loader, validation_loader = _loaders(args, classes, device)
    run = _start(args, classes, device, fingerprint)
    if run.best_weights:  # resumed: the model folder of a restarted job starts empty
        _save(args, classes, run.best_weights)
    if run.epoch >= args.epochs:  # finished before: a tuning job still needs its objective
        for entry in run.history:
            _report({k: v for k, v in entry.items() if k != "epoch"}, int(entry["epoch"]))
    criterion = nn.CrossEntropyLoss()
    set_hook_mode = _debug_hook(run.model, criterion) or (lambda training: None)
    writer = _tensorboard(args.tensorboard_dir)
    for epoch in range(run.epoch + 1, args.epochs + 1):
        started = time.perf_counter()
        set_hook_mode(True)
        train_loss, train_acc = _run_epoch(
            run.model, train_loader, criterion, device, run.optimizer
        )
        run.schedule.step()
        set_hook_mode(False)
        val_loss, val_acc = _run_epoch(run.model, validation_loader, criterion, device, None)
        values = {
            "train:loss": train_loss,
            "train:accuracy": train_acc,
            "validation:loss": val_loss,
            "validation:accuracy": val_acc,
        }
        _report(values, epoch)
        print(f"#info epoch={epoch} seconds={time.perf_counter() - started:.1f}", flush=True)
        run.epoch = epoch
        run.history.append({"epoch": epoch, **values})
        for name, value in values.items() if writer is not None else ():
            writer.add_scalar(name, value, epoch)
        if not run.best or val_acc > run.best["validation:accuracy"]:
            run.best, run.best_epoch, run.best_weights = values, epoch, run.weights()
            _save(args, classes, run.best_weights)
        if args.checkpoint_dir:
            name = contract.checkpoint_name(fingerprint)
            _write_checkpoint(Path(args.checkpoint_dir), name, run.checkpoint(fingerprint))
            print(f"#info checkpoint epoch={epoch} {name}", flush=True)
    if writer is not None:
        writer.close()
    if args.output_data_dir:
        out = Path(args.output_data_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(
            json.dumps({"history": run.history, "best": run.best}, indent=1), encoding="utf-8"
        )
    return run.best


def main(argv: Sequence[str] | None = None) -> int:
    """Parse SageMaker's arguments and train; exit status 0 only when a model was saved."""
    args = contract.build_parser().parse_args(argv)
    best = train(args)
    print(f"#info best {json.dumps(best, sort_keys=True)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
