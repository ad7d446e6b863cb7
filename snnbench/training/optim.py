"""Optimizers and learning-rate schedules by name, for both training tracks."""

from __future__ import annotations

from typing import Any, Iterable

import torch


def optimizer_by_name(
    params: Iterable[Any],
    name: str,
    lr: float,
    *,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    """``adam`` or ``sgd`` over ``params`` (tensors, or groups whose own ``weight_decay`` wins)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    raise ValueError(f"unknown optimizer {name!r}; expected adam or sgd")


def lr_schedule(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int):
    """Stepped once per batch: ``cosine`` anneals to zero over ``total_steps``; anything else is constant."""
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
