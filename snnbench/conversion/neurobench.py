"""NeuroBench-style metrics of a converted SNN, named as NeuroBench names them.

- ``footprint``: bytes of all parameters and buffers (NeuroBench ``Footprint``);
- ``parameter_count``: number of parameters;
- ``connection_sparsity``: share of zero weights in the connection layers (Linear, Conv);
- ``activation_sparsity``: share of zero outputs of the spiking layers, over all layers, time steps
  and samples (NeuroBench ``ActivationSparsity``);
- ``synaptic_operations``: per sample, summed over all time steps (NeuroBench ``SynapticOperations``):
  ``Effective_ACs`` — nonzero-input × nonzero-weight products of layers whose input is spikes,
  ``Effective_MACs`` — the same count for layers whose input is not spikes (the image fed at every
  step, average-pooled spikes), ``Dense`` — every synapse evaluation, as if inputs and weights were
  all nonzero (zero padding still excluded). Biases are not synaptic operations.

Spikes: NeuroBench treats an input as spikes when every value is 0 or ±1. A converted SNN emits θ·s
(θ per layer or per channel; on hardware θ folds into the next layer's weights), so an input is
also spikes when it *is* a spiking layer's output (the same tensor or a view of it, e.g. through
Flatten). Anything computed from spikes (average pooling, the image) counts as MACs.

The network is the time-folded network of :mod:`snnbench.conversion.convert`: connection layers see
``[T·B, ...]`` inputs, so counting over one simulation and dividing by ``B`` gives per-sample counts
over all ``T`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

CONNECTION_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass
class LayerCount:
    kind: str
    calls: int = 0
    effective_acs: float = 0.0
    effective_macs: float = 0.0
    dense: float = 0.0


@dataclass
class NeuroBenchResult:
    footprint: int
    parameter_count: int
    connection_sparsity: float
    activation_sparsity: float
    effective_macs: float  # per sample
    effective_acs: float  # per sample
    dense: float  # per sample
    samples: int
    timesteps: int
    layers: dict[str, LayerCount] = field(default_factory=dict)  # totals over the batch

    def as_dict(self) -> dict[str, Any]:
        """The record form: NeuroBench's metric names and nesting."""
        return {
            "footprint": self.footprint,
            "parameter_count": self.parameter_count,
            "connection_sparsity": self.connection_sparsity,
            "activation_sparsity": self.activation_sparsity,
            "synaptic_operations": {
                "Effective_MACs": self.effective_macs,
                "Effective_ACs": self.effective_acs,
                "Dense": self.dense,
            },
            "samples": self.samples,
            "timesteps": self.timesteps,
        }


def footprint(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def connection_sparsity(model: nn.Module) -> float:
    zeros = total = 0
    for module in model.modules():
        if isinstance(module, CONNECTION_LAYERS):
            zeros += int((module.weight == 0).sum())
            total += module.weight.numel()
    return zeros / total if total else 0.0


def is_binary(x: torch.Tensor) -> bool:
    """NeuroBench's test for a spike tensor: every value is 0, 1 or -1."""
    return bool(((x == 0) | (x == 1) | (x == -1)).all())


def _count(layer: nn.Module, x: torch.Tensor, dense: bool) -> float:
    """Products of nonzero inputs and nonzero weights (all of them when ``dense``), float64 exact.

    Only the total is wanted, and a sum of products is linear in both factors: the inputs are summed
    over the batch first and the weights over the output channels of each group, so one tiny
    convolution of ``[1, C, ...]`` gives the count that a full float64 convolution of the batch
    would (every partial sum is an integer below 2**53, so both are exact and equal)."""
    x64 = torch.ones_like(x, dtype=torch.float64) if dense else (x != 0).to(torch.float64)
    w64 = torch.ones_like(layer.weight, dtype=torch.float64) if dense else (layer.weight != 0).to(torch.float64)
    if isinstance(layer, nn.Linear):
        # Σ_out Σ_in x_in·w_out,in = Σ_in (Σ_rows x_in)·(Σ_out w_out,in): no [rows, out] product needed.
        return float(x64.reshape(-1, x64.shape[-1]).sum(0) @ w64.sum(0))
    groups = layer.groups
    # [groups, C_in / groups, k...]: a valid weight of `groups` output channels for the same conv.
    w_sum = w64.reshape((groups, -1) + tuple(w64.shape[1:])).sum(1)
    return float(layer._conv_forward(x64.sum(0, keepdim=True), w_sum, None).sum())


def _leading_rows(x: torch.Tensor, batch: int, rows: int) -> torch.Tensor:
    """The rows of the first ``rows`` samples of a time-folded ``[T·batch, ...]`` tensor."""
    if rows == batch:
        return x
    steps = x.shape[0] // batch
    return x.reshape((steps, batch) + tuple(x.shape[1:]))[:, :rows].reshape((steps * rows,) + tuple(x.shape[1:]))


class NeuroBenchCounter:
    """Counts synaptic operations and activation sparsity while a converted SNN simulates.

    Attach it with ``with NeuroBenchCounter(snn) as counter``; before simulating a batch of
    ``batch`` samples, ``counter.select(batch, rows)`` says how many of its leading samples count
    (0: none), so the accuracy evaluation also yields the metrics of its first samples without a
    second simulation. ``counter.result(steps)`` sums everything counted."""

    def __init__(self, snn: nn.Module) -> None:
        self.snn = snn
        self.batch = self.rows = 0
        self.samples = 0  # samples counted so far
        self.layers: dict[str, LayerCount] = {}
        self._dense: dict[tuple, float] = {}  # dense counts depend only on the layer and input shape
        # Spiking outputs of the forward pass in progress, by storage address; holding the tensors
        # keeps an address from being reused by a non-spike tensor before the pass ends.
        self._live_spikes: dict[int, torch.Tensor] = {}
        self._zeros = self._total = 0
        self._handles: list = []

    def select(self, batch: int, rows: int) -> None:
        self.batch, self.rows = int(batch), max(0, min(int(rows), int(batch)))
        self.samples += self.rows

    def _connection_hook(self, name: str):
        def hook(module: nn.Module, args: tuple, _output: Any) -> None:
            if not self.rows:
                return
            full = args[0]
            x = _leading_rows(full, self.batch, self.rows)
            count = self.layers.setdefault(name, LayerCount(type(module).__name__))
            count.calls += 1
            ops = _count(module, x, dense=False)
            if full.untyped_storage().data_ptr() in self._live_spikes or is_binary(x):
                count.effective_acs += ops
            else:
                count.effective_macs += ops
            shape_key = (name, tuple(x.shape))
            if shape_key not in self._dense:
                self._dense[shape_key] = _count(module, x, dense=True)
            count.dense += self._dense[shape_key]

        return hook

    def _spiking_hook(self, _module: nn.Module, _args: tuple, output: torch.Tensor) -> None:
        if not self.rows:
            return
        counted = _leading_rows(output, self.batch, self.rows)
        self._zeros += int((counted == 0).sum())
        self._total += counted.numel()
        self._live_spikes[output.untyped_storage().data_ptr()] = output

    def _end_of_pass(self, *_: Any) -> None:
        self._live_spikes.clear()

    def __enter__(self) -> "NeuroBenchCounter":
        from snnbench.conversion.convert import SpikingLayer

        for name, module in self.snn.named_modules():
            if isinstance(module, CONNECTION_LAYERS):
                self._handles.append(module.register_forward_hook(self._connection_hook(name)))
            elif isinstance(module, SpikingLayer):
                self._handles.append(module.register_forward_hook(self._spiking_hook))
        self._handles.append(self.snn.register_forward_hook(self._end_of_pass))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._live_spikes.clear()

    def result(self, steps: int) -> NeuroBenchResult:
        samples = max(self.samples, 1)
        snn = self.snn
        return NeuroBenchResult(
            footprint=footprint(snn),
            parameter_count=sum(p.numel() for p in snn.parameters()),
            connection_sparsity=connection_sparsity(snn),
            activation_sparsity=self._zeros / self._total if self._total else 0.0,
            effective_macs=sum(c.effective_macs for c in self.layers.values()) / samples,
            effective_acs=sum(c.effective_acs for c in self.layers.values()) / samples,
            dense=sum(c.dense for c in self.layers.values()) / samples,
            samples=samples,
            timesteps=int(steps),
            layers=self.layers,
        )


def neurobench_result(
    snn: nn.Module,
    x_batch: torch.Tensor,
    steps: int,
    *,
    chunk: Optional[int] = None,
) -> NeuroBenchResult:
    """Simulate ``x_batch`` (``[B, ...]``, fed at every step) for ``steps`` and count everything.

    ``chunk``: time steps simulated at once, as in the accuracy evaluation (the counts do not depend
    on it; the memory does)."""
    from snnbench.conversion.convert import simulate

    batch = int(x_batch.shape[0])
    with NeuroBenchCounter(snn) as counter, torch.no_grad():
        counter.select(batch, batch)
        simulate(snn, x_batch, steps, chunk=chunk)
    return counter.result(steps)


def neurobench_metrics(snn: nn.Module, x_batch: torch.Tensor, steps: int, **kwargs: Any) -> dict[str, Any]:
    """NeuroBench-named metrics of ``snn`` on ``x_batch`` over ``steps`` (plain JSON types)."""
    return neurobench_result(snn, x_batch, steps, **kwargs).as_dict()
