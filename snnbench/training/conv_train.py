"""Direct training of spiking CNNs (the ``direct`` track): surrogate-gradient or LocalZO BPTT through
time-major ``[T, B, C, H, W]`` networks, with the TET loss or the mean-over-time cross-entropy.

Encodings: static images are repeated over the ``T`` steps (direct encoding: the first convolution
sees the analogue image every step); event data arrive as ``[B, T, 2, H, W]`` frames and are only made
time-major. The loss is

- ``tet`` (Deng et al., ICLR 2022): ``(1-λ)·(1/T)·Σ_t CE(o_t, y) + λ·MSE(o, φ)`` with every logit of
  every step pulled towards ``φ`` (``tet_means``, 1) — λ = ``tet_lambda``, 0.05 in the TET and LocalZO
  code; λ = 0 drops the regulariser;
- ``mean``: ``CE((1/T)·Σ_t o_t, y)``, the tdBN / plain-BPTT objective.

Both are chosen per model entry (``loss``, ``tet_lambda``, ``tet_means`` next to the model's own
parameters), so one suite can hold the TET and the tdBN variants of a network. Prediction is always the
arg-max of the time-averaged logits.

Per cell it records accuracy after every epoch, epoch / forward / backward time, peak memory and the
fraction of exact zeros in ``∂L/∂(LIF input)`` per layer and overall (see ``grad_sparsity``). The model
and the record's metrics are cached under ``<cache>/direct/<hash>.pt`` and the training state after each
epoch, so a rerun reuses a finished cell and a crashed one resumes from its last epoch.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from filelock import FileLock
from torch import nn
from torch.utils.data import DataLoader, Dataset

from snnbench.config import config_hash
from snnbench.context import ProgressReporter
from snnbench.models.registry import build_spiking_model, spiking_model_parameters
from snnbench.models.spiking_cnn import lif_layers
from snnbench.records.device import synchronize
from snnbench.data.registry import data_identity
from snnbench.safe_io import UnusableFileError, load_tensors
from snnbench.training.ann import (
    _atomic_save,
    check_resume_state,
    make_optimizer,
    make_scheduler,
    resume_training,
    training_state,
)
from snnbench.training.loaders import seeded_train_loader
from snnbench.training.grad_sparsity import GradZeroMeter, add_counts, zero_fractions
from snnbench.training.sparse_train import PeakMemory

FRAMEWORK_DEFAULTS: dict[str, Any] = {"loss": "mean", "tet_lambda": 0.05, "tet_means": 1.0}
LOSSES = ("tet", "mean")
EVENT_DATASETS = ("dvs_cifar10", "dvs_gesture")


def model_parameters(name: str) -> set[str]:
    """What a suite may set on direct-track model ``name``: its constructor's and the loss keys."""
    return spiking_model_parameters(name) | set(FRAMEWORK_DEFAULTS)


def neuron_options(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """``MultiStepLIF`` options of a direct-track method (``surrogate`` or ``localzo``)."""
    if method == "surrogate":
        return {"surrogate": params["surrogate"], "alpha": params["width"]}
    if method == "localzo":
        return {
            "surrogate": "localzo",
            "distribution": params["distribution"],
            "delta": params["delta"],
            "q": params["q"],
        }
    raise ValueError(f"the direct track runs methods 'surrogate' and 'localzo', got {method!r}")


def tet_loss(outputs: torch.Tensor, labels: torch.Tensor, lamb: float = 0.05, means: float = 1.0) -> torch.Tensor:
    """TET over logits ``[T, B, K]``: mean over steps of each step's CE, plus λ·MSE towards ``means``."""
    per_step = torch.stack([F.cross_entropy(o_t, labels) for o_t in outputs.float()]).mean()
    if lamb == 0:
        return per_step
    return (1 - lamb) * per_step + lamb * F.mse_loss(outputs.float(), torch.full_like(outputs.float(), means))


def mean_loss(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs.float().mean(0), labels)


def encode(x: torch.Tensor, steps: int, events: bool) -> torch.Tensor:
    """A batch as time-major input: event frames ``[B, T, ...]`` transposed, images repeated over T."""
    if events:
        if x.shape[1] != steps:
            raise ValueError(f"event frames have {x.shape[1]} steps, the cell asks for T = {steps}")
        return x.transpose(0, 1).contiguous()
    return x.unsqueeze(0).expand(steps, *x.shape).contiguous()


@dataclass
class Framework:
    loss: str = "mean"
    tet_lambda: float = 0.05
    tet_means: float = 1.0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss: expected one of {list(LOSSES)}, got {self.loss!r}")
        if not 0 <= self.tet_lambda <= 1:
            raise ValueError(f"tet_lambda: must lie in [0, 1], got {self.tet_lambda}")

    def __call__(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.loss == "tet":
            return tet_loss(outputs, labels, self.tet_lambda, self.tet_means)
        return mean_loss(outputs, labels)


def split_model_params(params: dict[str, Any]) -> tuple[dict[str, Any], Framework]:
    """(constructor parameters, loss framework) of a direct-track model entry."""
    own = {k: v for k, v in params.items() if k not in FRAMEWORK_DEFAULTS}
    framework = Framework(**{k: params.get(k, v) for k, v in FRAMEWORK_DEFAULTS.items()})
    return own, framework


def load_direct_dataset(spec, data_root: Optional[Path], augment: bool, steps: int):
    """The bundle of a direct-track dataset (CIFAR with the LocalZO augmentation, event frames of T steps)."""
    if spec.name in ("cifar10", "cifar100"):
        from snnbench.data.direct import direct_cifar_bundle

        return direct_cifar_bundle(spec.name, spec, data_root, augment)
    if spec.name == "dvs_cifar10":
        from snnbench.data.dvs import dvs_cifar10_bundle

        return dvs_cifar10_bundle(spec, data_root, augment, steps=steps)
    if spec.name == "dvs_gesture":
        from snnbench.data.dvs import dvs_gesture_bundle

        return dvs_gesture_bundle(spec, data_root, augment, steps=steps)
    from snnbench.data.registry import load_dataset

    bundle = load_dataset(spec, data_root, augment)
    if len(bundle.input_shape) != 3:
        raise ValueError(f"the direct track needs image data [C, H, W]; {spec.name!r} has shape {bundle.input_shape}")
    return bundle


# ---------------------------------------------------------------------------------------------
# Training loop


class _Timer:
    """Wall time of a region, synchronising the GPU on both ends so its queued work is counted."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds = 0.0

    def __enter__(self):
        synchronize(self.device)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.seconds += time.perf_counter() - self._t0


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    steps: int,
    events: bool,
    device: torch.device,
    batch_size: int = 256,
    amp: bool = False,
) -> float:
    """Top-1 accuracy (%) of the time-averaged logits."""
    model.eval()
    correct = total = 0
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        x, y = encode(x.to(device), steps, events), y.to(device)
        with torch.autocast(device.type, enabled=amp):
            out = model(x)
        correct += (out.float().mean(0).argmax(1) == y).sum().item()
        total += y.numel()
    return 100.0 * correct / max(total, 1)


@dataclass
class _Step:
    """What one optimisation step needs besides the batch."""

    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    amp: bool


def _train_epoch(model, loader, framework, step: _Step, steps: int, events: bool, device, advance) -> dict[str, Any]:
    """One pass over ``loader``; the loss and correct sums stay on the device (no sync per batch)."""
    fwd, bwd = _Timer(device), _Timer(device)
    loss_sum, correct, seen, n_steps = 0.0, 0, 0, 0
    for x, y in loader:
        x, y = encode(x.to(device, non_blocking=True), steps, events), y.to(device, non_blocking=True)
        step.optimizer.zero_grad(set_to_none=True)
        with fwd, torch.autocast(device.type, enabled=step.amp):
            out = model(x)
            loss = framework(out, y)
        with bwd:
            step.scaler.scale(loss).backward()
        step.scaler.step(step.optimizer)
        step.scaler.update()
        step.scheduler.step()
        loss_sum += loss.detach().float() * y.numel()
        correct += (out.detach().float().mean(0).argmax(1) == y).sum()
        seen += y.numel()
        n_steps += 1
        advance()
    return {
        "train_acc": round(100.0 * float(correct) / max(seen, 1), 4),
        "loss": round(float(loss_sum) / max(seen, 1), 5),
        "forward_s": round(fwd.seconds, 4),
        "backward_s": round(bwd.seconds, 4),
        "steps": n_steps,
    }


def train_direct(
    model: nn.Module,
    train_set: Dataset,
    test_set: Dataset,
    training,
    framework: Framework,
    *,
    steps: int,
    events: bool,
    device: torch.device,
    seed: int,
    state_path: Optional[Path] = None,
    progress: Optional[ProgressReporter] = None,
) -> dict[str, Any]:
    """Train for ``training.epochs``; return the per-epoch history and the summed gradient-zero counts."""
    progress = progress or ProgressReporter()
    loader = seeded_train_loader(
        train_set, training.batch_size, seed, device, num_workers=4 if device.type == "cuda" else 0
    )
    generator = loader.generator  # its state travels in the resume checkpoint
    optimizer = make_optimizer(model, training)
    scheduler = make_scheduler(optimizer, training, len(loader))
    use_amp = bool(training.amp and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step = _Step(optimizer, scheduler, scaler, use_amp)
    history: list[dict[str, Any]] = []
    counts: dict[str, tuple[int, int]] = {}
    start_epoch = 0
    if state_path is not None and state_path.exists():
        start_epoch, history, counts = resume_training(
            state_path, RESUME_WHAT, device, (model, optimizer, scheduler, scaler, generator), read_resume_fields
        )

    layers = lif_layers(model)
    with GradZeroMeter(layers) as meter, progress.track("epochs", training.epochs) as epoch_bar:
        epoch_bar.advance(start_epoch)
        for epoch in range(start_epoch, training.epochs):
            model.train()
            meter.reset()
            whole = _Timer(device)
            with whole, progress.track(f"epoch {epoch + 1} batches", len(loader)) as batch_bar:
                record = _train_epoch(model, loader, framework, step, steps, events, device, batch_bar.advance)
            test_acc = evaluate(model, test_set, steps, events, device, training.eval_batch_size, use_amp)
            epoch_counts = meter.counts()
            counts = add_counts(counts, epoch_counts)
            history.append(
                {
                    "epoch": epoch + 1,
                    "test_acc": round(test_acc, 4),
                    **record,
                    "epoch_s": round(whole.seconds, 4),
                    "input_grad_zeros": round(zero_fractions(epoch_counts)["overall"] or 0.0, 6),
                }
            )
            if state_path is not None:
                _atomic_save(
                    training_state(
                        model,
                        optimizer,
                        scheduler,
                        scaler,
                        generator,
                        epoch=epoch + 1,
                        history=history,
                        counts={k: list(v) for k, v in counts.items()},
                    ),
                    state_path,
                )
            epoch_bar.advance()
    model.eval()
    return {"history": history, "counts": counts}


def summarize(history: list[dict[str, Any]], counts: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """The record's metrics from the per-epoch history and the run's summed zero counts."""
    fractions = zero_fractions(counts)
    steps = sum(h["steps"] for h in history) or 1
    fwd, bwd = sum(h["forward_s"] for h in history), sum(h["backward_s"] for h in history)
    pct = lambda f: None if f is None else round(100.0 * f, 4)  # noqa: E731
    return {
        "test_acc": history[-1]["test_acc"] if history else None,
        "best_test_acc": max((h["test_acc"] for h in history), default=None),
        "acc_per_epoch": [h["test_acc"] for h in history],
        "train_acc_per_epoch": [h["train_acc"] for h in history],
        "loss_per_epoch": [h["loss"] for h in history],
        "epoch_s_per_epoch": [h["epoch_s"] for h in history],
        "train_s": round(sum(h["epoch_s"] for h in history), 3),
        "epoch_s": round(sum(h["epoch_s"] for h in history) / max(len(history), 1), 4),
        "forward_s": round(fwd, 4),
        "backward_s": round(bwd, 4),
        "fwd_ms": round(1000 * fwd / steps, 3),
        "bwd_ms": round(1000 * bwd / steps, 3),
        "steps": steps,
        "input_grad_zeros_pct": pct(fractions["overall"]),
        "input_grad_zeros_pct_per_epoch": [round(100 * h["input_grad_zeros"], 4) for h in history],
        "input_grad_zeros_pct_layers": {k: pct(v) for k, v in fractions.items() if k != "overall"},
    }


# ---------------------------------------------------------------------------------------------
# One cell


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_cell_data(cell, data_root: Optional[Path]):
    """The bundle a direct-track cell trains on (its event frames have the cell's T)."""
    return load_direct_dataset(cell.dataset, data_root, cell.training.augment, max(cell.timesteps))


def build_cell_model(cell, bundle, device: torch.device) -> tuple[nn.Module, Framework, dict[str, Any]]:
    """(network, loss, neuron options) of a direct-track cell, seeded; the preflight builds the same."""
    own, framework = split_model_params(dict(cell.model.params))
    neuron = neuron_options(cell.method.name, cell.method.params)
    _seed_everything(cell.seed)
    model = build_spiking_model(
        cell.model.name, num_classes=bundle.num_classes, in_channels=bundle.input_shape[0], neuron=neuron, **own
    ).to(device)
    return model, framework, neuron


def cache_path(cell, cache_dir: Path, data_root: Optional[Path]) -> Path:
    """The cell's trained network and metrics (``.state.pt`` beside it: the resume state)."""
    folder = data_identity(cell.dataset, data_root)  # None for in-memory data: their keys stay as they were
    return Path(cache_dir) / "direct" / f"{config_hash(cell.key if folder is None else [cell.key, folder], 16)}.pt"


def load_cached(path: Path, model: nn.Module, device) -> dict[str, Any]:
    """The metrics of a cached cell, its weights loaded into ``model``; a file of another layout is
    refused by name."""
    saved = load_tensors(path, "the cached direct-trained SNN", map_location=device)
    try:
        model.load_state_dict(saved["model"])
        return dict(saved["metrics"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UnusableFileError(
            f"{path}: not a cached direct-trained SNN of this model ({type(err).__name__}: {first}); "
            "delete it to train again"
        ) from None


def read_resume_fields(state: dict[str, Any]) -> tuple[int, list, dict[str, tuple[int, int]]]:
    """The direct trainer's own fields of a resume state: epoch, history, gradient-zero counts."""
    return (
        state["epoch"],
        list(state["history"]),
        {k: (int(v[0]), int(v[1])) for k, v in state["counts"].items()},
    )


def check_cell_inputs(cell, bundle, cache_dir: Path, data_root: Optional[Path]) -> None:
    """What the cell will read from the cache, read now with the cell's own loaders (on the CPU)."""
    path = cache_path(cell, cache_dir, data_root)
    if not path.exists() and not path.with_suffix(".state.pt").exists():
        return
    model = build_cell_model(cell, bundle, torch.device("cpu"))[0]
    if path.exists():
        load_cached(path, model, "cpu")
    else:
        check_resume_state(path.with_suffix(".state.pt"), RESUME_WHAT, model, cell.training, read_resume_fields)


RESUME_WHAT = "the direct-training resume state"


def run_direct_cell(cell, ctx) -> dict[str, Any]:
    """Train ``cell.model`` on ``cell.dataset`` with ``cell.method``; return JSON-ready metrics."""
    device = ctx.device
    steps = max(cell.timesteps)
    events = cell.dataset.name in EVENT_DATASETS
    bundle = load_cell_data(cell, ctx.data_root)
    model, framework, neuron = build_cell_model(cell, bundle, device)
    path = cache_path(cell, ctx.cache_dir, ctx.data_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):  # cells of one configuration on Ray: one trains, the rest load
        if path.exists():
            return {**load_cached(path, model, device), "cached": True}
        with PeakMemory(device) as memory:
            run = train_direct(
                model,
                bundle.train,
                bundle.test,
                cell.training,
                framework,
                steps=steps,
                events=events,
                device=device,
                seed=cell.seed,
                state_path=path.with_suffix(".state.pt"),
                progress=ctx.progress,
            )
        metrics = summarize(run["history"], run["counts"])
        metrics.update(
            {
                "peak_mem_bytes": memory.peak_bytes,
                "peak_mem_kind": memory.kind,
                "timesteps": steps,
                "encoding": "event frames" if events else "direct",
                "loss": framework.loss,
                "tet_lambda": framework.tet_lambda if framework.loss == "tet" else None,
                "neuron": {k: v for k, v in neuron.items()},
                "params": sum(p.numel() for p in model.parameters()),
                "lif_layers": len(lif_layers(model)),
            }
        )
        _atomic_save({"model": model.state_dict(), "metrics": metrics}, path)
        state = path.with_suffix(".state.pt")
        if state.exists():
            state.unlink()
    return {**metrics, "cached": False}


__all__ = [
    "tet_loss",
    "mean_loss",
    "encode",
    "neuron_options",
    "model_parameters",
    "train_direct",
    "run_direct_cell",
    "summarize",
    "evaluate",
    "load_direct_dataset",
    "Framework",
    "split_model_params",
]
