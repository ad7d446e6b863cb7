"""Training the QCFS ANN that conversion starts from.

SGD with momentum (or Adam), cosine schedule, weight decay, mixed precision on CUDA. A trained model
is cached under ``<cache>/ann/<hash>.pt`` where the hash covers everything that changes the weights
(dataset, model, training settings, seed), so every method of a sweep and every rerun reuses it. The
training state is saved after each epoch, so a crashed run resumes from its last finished epoch.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn
from filelock import FileLock
from torch.utils.data import DataLoader, Dataset

from snnbench.context import ProgressReporter
from snnbench.safe_io import UnusableFileError, load_tensors
from snnbench.training.loaders import seeded_train_loader
from snnbench.training.optim import lr_schedule, optimizer_by_name


@dataclass
class TrainResult:
    model: nn.Module
    train_s: float
    cached: bool
    epochs_run: int


def make_optimizer(model: nn.Module, training) -> torch.optim.Optimizer:
    # QCFS thresholds are not weight-decayed: decay would drag λ, and so θ, towards zero.
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("thresh") or p.ndim == 1 else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": training.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return optimizer_by_name(
        groups, training.optimizer, training.lr, momentum=training.momentum, nesterov=training.momentum > 0
    )


def make_scheduler(optimizer, training, steps_per_epoch: int):
    return lr_schedule(optimizer, training.schedule, training.epochs * steps_per_epoch)


def _atomic_save(obj: Any, path: Path) -> None:
    """Write-then-rename with a private temporary name, so a reader never sees a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_cached_ann(model: nn.Module, path: Path, device: Any = "cpu") -> nn.Module:
    """Load a cached trained ANN into ``model``; a file that does not fit it is named in the error."""
    state = load_tensors(path, "the cached trained ANN", map_location=device)
    try:
        model.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnusableFileError(
            f"{path}: the cached trained ANN does not fit the model ({first}); delete it to retrain"
        ) from None
    return model


def training_state(model, optimizer, scheduler, scaler, generator, **extra: Any) -> dict[str, Any]:
    """What a resumed run needs: weights, optimizer, schedule, loss scale and both RNG streams."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "scaler": scaler.state_dict(),
        **extra,
    }


def resume_training(path: Path, what: str, device, parts: tuple, read: Callable[[dict[str, Any]], Any]) -> Any:
    """Restore ``parts`` (model, optimizer, scheduler, scaler, generator) from the resume state at
    ``path`` and return ``read(state)``, the track's own fields; a state of another model or layout is
    refused by name (delete it to start over) instead of surfacing as a KeyError mid-run."""
    state = load_tensors(path, what, map_location=device)
    try:
        restore_training_state(state, *parts)
        return read(state)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        raise UnusableFileError(
            f"{path}: not a training-resume state of this model ({type(err).__name__}: {err}); "
            "delete it to train from the start"
        ) from None


def check_resume_state(path: Path, what: str, model, training, read: Callable[[dict[str, Any]], Any]) -> None:
    """Read the resume state at ``path`` as the trainer will (:func:`resume_training` into the
    trainer's optimizer, schedule, loss scale and generator) on the CPU, leaving the global RNG as it
    was: a state the cell would refuse is refused before any cell runs."""
    optimizer = make_optimizer(model, training)
    scheduler = make_scheduler(optimizer, training, 1)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    rng = torch.get_rng_state()
    try:
        resume_training(path, what, "cpu", (model, optimizer, scheduler, scaler, torch.Generator()), read)
    finally:
        torch.set_rng_state(rng)


def read_ann_resume_fields(state: dict[str, Any]) -> tuple[int, float]:
    """The ANN trainer's own fields of a resume state: epoch and elapsed seconds."""
    return int(state["epoch"]), float(state["elapsed_s"])


ANN_RESUME_WHAT = "the ANN training-resume state"


def restore_training_state(state: dict[str, Any], model, optimizer, scheduler, scaler, generator) -> None:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    # RNG states are byte tensors, kept on the CPU whatever map_location said.
    generator.set_state(state["generator"].cpu())
    # Augmentation draws from the global RNG and AMP keeps a loss scale: both resume as they were.
    torch.set_rng_state(state["torch_rng"].cpu())
    scaler.load_state_dict(state["scaler"])


@torch.no_grad()
def evaluate_ann(model: nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 256) -> float:
    """Top-1 accuracy in percent."""
    model.eval()
    correct = total = 0
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        x, y = x.to(device), y.to(device)
        correct += (model(x).argmax(1) == y).sum().item()
        total += y.numel()
    return 100.0 * correct / max(total, 1)


def train_ann(
    model: nn.Module,
    train_set: Dataset,
    training,
    *,
    device: torch.device,
    seed: int,
    checkpoint_path: Optional[Path] = None,
    progress: Optional[ProgressReporter] = None,
    num_workers: int = 0,
) -> TrainResult:
    """Train (or load from ``checkpoint_path``) and return the model in eval mode.

    Cells that share a configuration (every method of a sweep, run side by side on Ray) share one
    checkpoint: a lock makes one of them train while the others wait and then load its result.
    """
    lock = FileLock(str(checkpoint_path) + ".lock") if checkpoint_path is not None else nullcontext()
    if checkpoint_path is not None:
        checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    with lock:
        return _train_or_load(
            model,
            train_set,
            training,
            device=device,
            seed=seed,
            checkpoint_path=checkpoint_path,
            progress=progress,
            num_workers=num_workers,
        )


def _train_or_load(
    model: nn.Module,
    train_set: Dataset,
    training,
    *,
    device: torch.device,
    seed: int,
    checkpoint_path: Optional[Path],
    progress: Optional[ProgressReporter],
    num_workers: int,
) -> TrainResult:
    progress = progress or ProgressReporter()
    model.to(device)
    state_path = checkpoint_path.with_suffix(".state.pt") if checkpoint_path else None
    if checkpoint_path is not None and checkpoint_path.exists():
        load_cached_ann(model, checkpoint_path, device)
        return TrainResult(model.eval(), 0.0, cached=True, epochs_run=0)

    loader = seeded_train_loader(
        train_set, training.batch_size, seed, device, num_workers=num_workers, persistent_workers=True
    )
    generator = loader.generator  # its state travels in the resume checkpoint
    optimizer = make_optimizer(model, training)
    scheduler = make_scheduler(optimizer, training, len(loader))
    use_amp = bool(training.amp and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    loss_fn = nn.CrossEntropyLoss()

    start_epoch, elapsed = 0, 0.0
    if state_path is not None and state_path.exists():
        start_epoch, elapsed = resume_training(
            state_path,
            ANN_RESUME_WHAT,
            device,
            (model, optimizer, scheduler, scaler, generator),
            read_ann_resume_fields,
        )

    epochs_run = 0
    with progress.track("epochs", training.epochs) as epoch_bar:
        epoch_bar.advance(start_epoch)
        for epoch in range(start_epoch, training.epochs):
            t0 = time.perf_counter()
            model.train()
            with progress.track(f"epoch {epoch + 1} batches", len(loader)) as batch_bar:
                for x, y in loader:
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    with torch.autocast(device.type, enabled=use_amp):
                        loss = loss_fn(model(x), y)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    scheduler.step()
                    batch_bar.advance()
            elapsed += time.perf_counter() - t0
            epochs_run += 1
            if state_path is not None:
                _atomic_save(
                    training_state(model, optimizer, scheduler, scaler, generator, epoch=epoch + 1, elapsed_s=elapsed),
                    state_path,
                )
            epoch_bar.advance()
    model.eval()
    if checkpoint_path is not None:
        _atomic_save(model.state_dict(), checkpoint_path)
        if state_path is not None and state_path.exists():
            state_path.unlink()
    return TrainResult(model, elapsed, cached=False, epochs_run=epochs_run)
