"""One training-track cell: load spikes, build the spiking MLP, train with the cell's method (timing each
hidden layer against both dense baselines every few steps), evaluate, then time the whole step of the
method and the dense surrogate side by side on the same batches with the same weights."""

from __future__ import annotations

import time
from typing import Any

import torch

from snnbench.data.registry import load_dataset
from snnbench.training.snn_mlp import SpikingMLP, TrainingMethod, config_for, dense_baseline, training_method
from snnbench.training.sparse_train import (
    LayerSampler,
    PeakMemory,
    TrainSettings,
    batches,
    evaluate,
    summarize,
    time_steps,
    train,
)

SPEEDUP_BATCHES = 3  # batches timed for both the method and the dense surrogate (after one warm-up)
LAYER_TIMING_STRIDE = 10  # per-layer timing of the method and both dense baselines every 10th training step
SUPPORTED_MODELS = ("snn_mlp",)


def _settings(cell) -> TrainSettings:
    t = cell.training
    return TrainSettings(
        epochs=t.epochs,
        batch_size=t.batch_size,
        lr=t.lr,
        optimizer=t.optimizer,
        momentum=t.momentum,
        weight_decay=t.weight_decay,
        schedule=t.schedule,
    )


def load_cell_data(cell, data_root):
    """The spike-train bundle a training-track cell trains on."""
    return load_dataset(cell.dataset, data_root)


def build_cell_model(cell, bundle, device: torch.device) -> tuple[SpikingMLP, TrainingMethod]:
    """(seeded network, validated method) of a training-track cell; the preflight builds the same."""
    if cell.model.name not in SUPPORTED_MODELS:
        raise ValueError(f"training track supports models {SUPPORTED_MODELS}, got {cell.model.name!r}")
    method = training_method(cell.method.name, cell.method.params)
    if len(bundle.input_shape) != 1:
        raise ValueError(f"the training track needs spike trains [T, inputs]; {bundle.name!r} has {bundle.input_shape}")
    (inputs,) = bundle.input_shape
    cfg = config_for(cell.dataset.name, inputs, bundle.num_classes, cell.model.params)
    torch.manual_seed(cell.seed)
    init_gen = torch.Generator().manual_seed(int(cell.seed))
    return SpikingMLP(cfg, generator=init_gen).to(device), method


def check_cell_inputs(cell, bundle, cache_dir, data_root) -> None:
    """Nothing to read: a training-track cell keeps no cache."""


def run_training_cell(cell, ctx) -> dict[str, Any]:
    """Train ``cell.model`` on ``cell.dataset`` with ``cell.method``; return JSON-ready metrics."""
    device = ctx.device
    bundle = load_cell_data(cell, ctx.data_root)
    timesteps = max(cell.timesteps)
    model, method = build_cell_model(cell, bundle, device)
    cfg = model.cfg
    settings = _settings(cell)

    dense = dense_baseline(method)
    sampler = LayerSampler(method, dense, device, stride=LAYER_TIMING_STRIDE, backend=settings.backend)
    with PeakMemory(device) as memory:  # this cell's training only; see PeakMemory for the CPU caveats
        sampler.pause = memory.paused  # the baselines' passes never count toward the method's peak
        log = train(
            model,
            method,
            bundle.train,
            settings,
            timesteps,
            device,
            seed=cell.seed,
            progress=ctx.progress,
            sampler=sampler,
        )

    start = time.perf_counter()
    test_acc = evaluate(model, bundle.test, cell.training.eval_batch_size, timesteps, device)
    evaluate_s = time.perf_counter() - start

    sample = list(batches(bundle.train, settings.batch_size, timesteps, device, limit=SPEEDUP_BATCHES))
    method_timing = time_steps(model, method, sample, device, seed=cell.seed)
    dense_timing = method_timing if dense == method else time_steps(model, dense, sample, device, seed=cell.seed)

    metrics: dict[str, Any] = {
        "test_acc": round(test_acc, 4),
        "train_s": round(log.seconds, 3),
        "evaluate_s": round(evaluate_s, 3),
        "final_loss": round(log.loss, 5),
        "steps": log.steps,
        "peak_mem_bytes": memory.peak_bytes,
        "peak_mem_kind": memory.kind,
        "hidden": list(cfg.hidden) if len(set(cfg.hidden)) > 1 else cfg.hidden[0],
        "timesteps": timesteps,
        "dense_baseline": {"surrogate": dense.surrogate, "width": dense.width},
    }
    metrics.update(summarize(log, method_timing, dense_timing))
    metrics.update(sampler.metrics(len(cfg.hidden), log.active_fraction))
    if method.rule is not None:
        rule = method.rule
        metrics["rule"] = (
            {"b_th": round(rule.b_th, 6), "width": rule.width}
            if rule.rule == "sparseprop"
            else {"delta": rule.delta, "q": rule.q, "distribution": rule.distribution}
        )
    return metrics
