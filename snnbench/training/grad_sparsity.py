"""The fraction of exact zeros in the gradient at every LIF layer's input (LocalZO's sparsity measure).

A forward pre-hook on each LIF module puts a tensor hook on the tensor that enters it; in the backward
that hook sees ``∂L/∂x`` for every element ``[T, B, ...]`` of the layer's input and adds its number of
exact zeros and of elements to per-layer counters. The counters stay on the device (no synchronisation
per layer and step) and are read once, by :meth:`GradZeroMeter.summary`.

The run's figure is the ratio of the summed counts: zeros over elements, per layer and over all layers
together (each element weighs the same, so wide early layers count more than the narrow head). With
equal batches it equals the mean over iterations of each iteration's fraction, the paper's average.
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch
from torch import nn


class GradZeroMeter:
    """Count exact zeros of ``∂L/∂(LIF input)`` per layer while ``enabled``; a context manager."""

    def __init__(self, layers: dict[str, nn.Module]) -> None:
        self.layers = layers
        self.enabled = True
        self._zeros: dict[str, torch.Tensor] = {}
        self._total: dict[str, int] = {name: 0 for name in layers}
        self._handles: list = []

    def __enter__(self) -> "GradZeroMeter":
        for name, module in self.layers.items():
            self._handles.append(module.register_forward_pre_hook(self._pre_hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _pre_hook(self, name: str):
        def hook(_module, args):
            x = args[0]
            if self.enabled and torch.is_grad_enabled() and x.requires_grad:
                # A fresh view per call: a hook on ``x`` itself would stay on a tensor that enters again
                # (a reused leaf) and count every later backward once more.
                x = x.view_as(x)
                x.register_hook(self._grad_hook(name))
                return (x, *args[1:])
            return None

        return hook

    def _grad_hook(self, name: str):
        def hook(grad: torch.Tensor) -> None:
            zeros = (grad == 0).sum()
            self._zeros[name] = self._zeros[name] + zeros if name in self._zeros else zeros
            self._total[name] += grad.numel()

        return hook

    def reset(self) -> None:
        self._zeros.clear()
        self._total = {name: 0 for name in self.layers}

    def counts(self) -> dict[str, tuple[int, int]]:
        """``{layer: (zeros, elements)}`` so far (one device sync)."""
        return {
            name: (int(self._zeros[name].item()) if name in self._zeros else 0, self._total[name])
            for name in self.layers
        }


def zero_fractions(counts: dict[str, tuple[int, int]]) -> dict[str, Optional[float]]:
    """Per-layer fractions and ``overall`` from summed ``(zeros, elements)`` counts (None if nothing seen)."""
    out: dict[str, Optional[float]] = {name: (z / n if n else None) for name, (z, n) in counts.items()}
    zeros = sum(z for z, _ in counts.values())
    total = sum(n for _, n in counts.values())
    out["overall"] = zeros / total if total else None
    return out


def add_counts(a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    names: Iterable[str] = dict.fromkeys([*a, *b])
    return {n: (a.get(n, (0, 0))[0] + b.get(n, (0, 0))[0], a.get(n, (0, 0))[1] + b.get(n, (0, 0))[1]) for n in names}
