"""FTBC on RTS SNNs, as the RTS code runs it (``main_simulation_cifar.py``: ``bias_corr_model`` calling
``emp_bias_corr_moving_avg_timestep``).

For every round (``--num_cali_iters``), every calibration batch and every IF layer l in order, the
official loop resets the SNN and, for t = 0..T-1, runs one step of the whole SNN (every layer with its
own current bias) and corrects layer l at that step::

    u   = (v + x_t) - b_t                       # layer l's step, with its own current bias b_t
    s   = θ·H(u - θ);  v = u - s
    δ   = mean_{batch, space}(s) - mean_{batch, space}(a)     # a: the ANN activation
    b'  = b_t + α·δ
    v   = ((v + s) + b_t) - b'                  # the step again, with the new bias
    v   = v - θ·H(v - θ);  b_t ← b'

δ is a mean over the whole batch, so step t + 1 of every neuron waits for step t of all of them: the
recurrence cannot run per neuron in one fused kernel (as the QCFS variant's statistics do). The fast
path is the layer-major sweep instead: one ANN forward and one SNN simulation per batch (the IF layers
on the fused kernel), and just before layer l runs, its T-step correction above on its whole input
``x[T, B, ...]`` in tensor ops (T steps of a few element-wise ops and one channel mean). The official
loop costs T·L forwards of the whole SNN and T·L of the whole ANN per batch. Both implementations give
the same biases bit for bit (tests/test_ftbc_rts_official.py); ``"reference"`` is the official loop
with snnbench's step-by-step simulation.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from snnbench.conversion.convert import reset, simulate, step_once
from snnbench.conversion.layers import (
    LayerPair,
    ann_activations,
    before_each_layer,
    bias_rows,
    channel_dims,
    layer_pairs,
    unfold,
)
from snnbench.kernels.common import finite_scalar

IMPLEMENTATIONS = ("fast", "reference")


def _row(bias_t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A ``[C]`` bias shaped for one step ``[B, C, ...]`` (the official ``view(1, -1, 1, 1)``)."""
    return bias_t.view((1, -1) + (1,) * (like.dim() - 2))


def _spike(mem: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    return mem.ge(theta).float() * theta


@torch.no_grad()
def _layer_recurrence(pair: LayerPair, currents: torch.Tensor, activation: torch.Tensor, alpha: float) -> None:
    """Layer l's T-step correction on its input ``currents[T, B, ...]`` (before the shift)."""
    neuron = pair.spiking.neuron
    theta = neuron.thresh.reshape(())
    steps, channels = currents.shape[0], currents.shape[2]
    bias = bias_rows(pair.spiking, steps, channels)
    ann_mean = activation.mean(channel_dims(activation))
    mem: Optional[torch.Tensor] = None
    for t in range(steps):
        x = currents[t] if neuron.input_shift is None else currents[t] + neuron.input_shift
        mem = 0 + x if mem is None else mem + x  # the official membrane starts as the integer 0
        mem = mem - _row(bias[t], mem)
        out = _spike(mem, theta)
        mem = correct_step(mem - out, out, bias, t, ann_mean, alpha, theta)
    neuron.set_bias(bias)


def correct_step(
    mem: torch.Tensor,
    out: torch.Tensor,
    bias: torch.Tensor,
    t: int,
    ann_mean: torch.Tensor,
    alpha: float,
    theta: torch.Tensor,
) -> torch.Tensor:
    """The official correction of step t: writes the new ``b_t`` into ``bias`` and returns the membrane
    of the step re-run with it. ``mem``: the membrane after the step's reset; ``out``: the step's output."""
    delta = out.mean(channel_dims(out)) - ann_mean
    new = bias[t] + alpha * delta
    mem = mem + out
    mem = mem + _row(bias[t], mem)
    mem = mem - _row(new, mem)
    mem = mem - _spike(mem, theta)
    bias[t] = bias[t] + alpha * delta
    return mem


def _sweep(ann: nn.Module, snn: nn.Module, pairs: list[LayerPair], x: torch.Tensor, steps: int, alpha: float) -> None:
    acts = ann_activations(ann, pairs, x)

    def calibrate_layer(pair: LayerPair, folded: torch.Tensor) -> None:
        _layer_recurrence(pair, unfold(folded, steps), acts.pop(pair.name), alpha)

    with before_each_layer(pairs, calibrate_layer):
        simulate(snn, x, steps)


def _official_batch(
    ann: nn.Module, snn: nn.Module, pairs: list[LayerPair], x: torch.Tensor, steps: int, alpha: float
) -> None:
    """The official loop: per layer, reset and step the whole SNN T times; after each step, correct
    the layer's carried membrane and bias (its ANN target recomputed per step, as the script does)."""
    for pair in pairs:
        layer = pair.spiking
        bias = bias_rows(layer, steps, _channels(ann, pair, x))
        layer.neuron.set_bias(bias)
        theta = layer.neuron.thresh.reshape(())
        reset(snn)
        for t in range(steps):
            out = _module_output(lambda: step_once(snn, x), layer)
            target = _module_output(lambda: ann(x), pair.qcfs)
            ann_mean = target.mean(channel_dims(target))
            layer.carry = correct_step(layer.carry, out, layer.neuron.bias, t, ann_mean, alpha, theta)
        reset(snn)


def _channels(ann: nn.Module, pair: LayerPair, x: torch.Tensor) -> int:
    return _module_output(lambda: ann(x), pair.qcfs).shape[1]


@torch.no_grad()
def _module_output(run: Callable[[], object], module: nn.Module) -> torch.Tensor:
    """What ``module`` outputs during ``run()`` (the official ``ActivationSaverHook``)."""
    kept: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: kept.append(out.detach().clone()))
    try:
        run()
    finally:
        handle.remove()
    return kept[0]


@torch.no_grad()
def rts_ftbc_calibrate(
    ann: nn.Module,
    snn: nn.Module,
    rounds: list[list[torch.Tensor]],
    steps: int,
    alpha: float = 0.005,
    *,
    implementation: str = "fast",
) -> None:
    """Calibrate the ``[T, C]`` biases of the RTS SNN ``snn`` in place: for each round, each batch
    of it, each IF layer in order, the official moving-average correction (module docstring)."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be 'fast' or 'reference', got {implementation!r}")
    finite_scalar("alpha", alpha)
    ann.eval()
    snn.eval()
    pairs = layer_pairs(ann, snn)
    batch_step = _sweep if implementation == "fast" else _official_batch
    for batches in rounds:
        for x in batches:
            batch_step(ann, snn, pairs, x, steps, alpha)
