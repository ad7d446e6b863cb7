"""FTBC, the official per-layer loop: slow, obviously correct, the oracle for the fast path.

For every calibration batch and every IF layer l in module order, it runs the whole ANN (hooked to
keep layer l's activation) and the whole SNN with step-by-step IF neurons (hooked to keep layer l's
input), then the teacher-forced recurrence in plain PyTorch, one step at a time (docs/design.md §4):
O(L) full forwards per batch, as in the FTBC repository's ``bias_corr_model``. Like that script it calibrates on every
one of the K batches (its layer loop is rebuilt per batch), and its IF membrane update is the
script's, in the same floating-point order: ``u = (v - b_t) + x_t``.
"""

from __future__ import annotations

import types
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from torch import nn

from snnbench.conversion.convert import SpikingLayer, simulate, spiking_layers
from snnbench.conversion.layers import LayerPair, bias_rows, calibration_pairs, channel_dims, unfold
from snnbench.models.hooks import forward_hooks


def _per_channel(p: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    return p.reshape(()) if p.numel() == 1 else p.reshape((1, -1) + (1,) * (step.dim() - 2))


def step_by_step_simulate(
    neuron, x: torch.Tensor, v_init: Optional[torch.Tensor] = None, t_offset: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The official IF layer: a Python loop over time of element-wise torch ops (``neuron`` is a
    MultiStepIF: its ``thresh`` and per-step ``bias``). Also the tests' oracle for the fused kernels."""
    theta = _per_channel(neuron.thresh.float(), x[0])
    bias = neuron.bias_for(x.shape[0], t_offset)
    mem = (theta / 2 if v_init is None else v_init.float()) + torch.zeros_like(x[0], dtype=torch.float32)
    spikes = []
    for t in range(x.shape[0]):
        if bias is not None:
            mem = mem - _per_channel(bias[t], x[t])
        mem = mem + x[t].float()
        spike = (mem >= theta).float() * theta
        mem = mem - spike
        spikes.append(spike.to(x.dtype))
    return torch.stack(spikes), mem


@contextmanager
def official_if_neurons(snn: nn.Module) -> Iterator[None]:
    """Run every IF layer of ``snn`` with the step-by-step loop instead of its (fused) kernel."""
    neurons = [layer.neuron for _, layer in spiking_layers(snn)]
    for neuron in neurons:
        neuron.simulate = types.MethodType(step_by_step_simulate, neuron)
    try:
        yield
    finally:
        for neuron in neurons:
            del neuron.simulate


@torch.no_grad()
def _capture(model_call, module: nn.Module, want_input: bool) -> torch.Tensor:
    stored: list[torch.Tensor] = []

    def hook(_m, inputs, output):
        if not stored:
            stored.append((inputs[0] if want_input else output).detach().clone())

    with forward_hooks([module], hook):
        model_call()
    return stored[0]


@torch.no_grad()
def _correct_layer(
    pair: LayerPair, currents: torch.Tensor, activation: torch.Tensor, steps: int, alpha: float, own_bias: bool
) -> None:
    layer: SpikingLayer = pair.spiking
    channels = currents.shape[2]
    theta = _per_channel(layer.neuron.thresh.float(), currents[0])
    bias = bias_rows(layer, steps, channels)
    dims = channel_dims(activation)
    a = activation.float()
    v = theta / 2 + torch.zeros_like(a)
    for t in range(steps):
        u = (v - _per_channel(bias[t], currents[t]) if own_bias else v) + currents[t].float()
        err = (u >= theta).float() * theta - a
        u_forced = u - err
        v = u_forced - (u_forced >= theta).float() * theta
        bias[t] = alpha * err.mean(dims) + bias[t]
    layer.neuron.set_bias(bias)


def reference_batch(
    ann: nn.Module, snn: nn.Module, pairs: list[LayerPair], x: torch.Tensor, steps: int, alpha: float, own_bias: bool
) -> None:
    """One calibration batch the official way: for each IF layer in order, whole ANN and SNN forwards
    (the SNN's neurons inside :func:`official_if_neurons`) and that layer's bias correction."""
    for pair in pairs:
        activation = _capture(lambda: ann(x), pair.qcfs, want_input=False)
        folded = _capture(lambda: simulate(snn, x, steps), pair.spiking, want_input=True)
        _correct_layer(pair, unfold(folded, steps), activation, steps, alpha, own_bias)


@torch.no_grad()
def ftbc_calibrate_reference(
    ann: nn.Module, snn: nn.Module, batches: list, steps: int, alpha: float = 0.4, *, passes=1, own_bias=False
) -> None:
    """The contract of :func:`snnbench.conversion.ftbc.ftbc_calibrate_fast` (without its kernel
    ``backend`` and time ``chunk``), the official way."""
    pairs = calibration_pairs(ann, snn, alpha)
    with official_if_neurons(snn):
        for _ in range(passes):
            for x in batches:
                reference_batch(ann, snn, pairs, x, steps, alpha, own_bias)
