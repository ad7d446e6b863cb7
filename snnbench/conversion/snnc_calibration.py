"""Calibration of the SNN Calibration family, as the FTBC repository's ``SNNC`` code runs it.

- ``light`` (``bias_corr_model``, ``correct_mempot=False``): per layer, in order, the mean output of
  the SNN over T against the ANN's, per channel; the difference comes off the layer's convolution
  bias. One SNN simulation per layer (the bias sits before the layer's input, so a layer cannot be
  corrected inside the pass that computes its input).
- ``advanced`` (``correct_mempot=True``): per layer, the initial membrane of every neuron becomes
  ``(mean_batch ANN − mean_batch SNN/T)·T``; one pass (the membrane is the layer's own state).
- FTBC ``ours_wo_avg`` (``bias_corr_model_update_step_by_step``) and ``ours_w_avg``
  (``x_bias_corr_model_update_step_by_step``): per-step, per-channel biases, see :func:`ftbc_snnc`;
  a residual block's output layer (the official ``SpikeResModule``) gets them as the ImageNet copy
  does, or none (``residual_biases=False``) as the CIFAR copy, which ignores them.

The ANN targets are the *unclipped* ReLU activations (SNN Calibration's ANN mode), and means are
taken in the official order (``mean(3).mean(2).mean(0)``), so the biases match bit for bit.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from snnbench.conversion.convert import simulate
from snnbench.conversion.layers import (
    LayerPair,
    ann_activations,
    before_each_layer,
    bias_rows,
    layer_pairs,
    unfold,
)
from snnbench.conversion.snnc_layer import SNNCSpikingLayer, channel_view, preceding_affine, residual_layers
from snnbench.models.hooks import forward_hooks


def channel_mean(t: torch.Tensor) -> torch.Tensor:
    """The per-channel mean of ``[B, C, H, W]`` or ``[B, C]``, in SNN Calibration's order."""
    return t.mean(3).mean(2).mean(0) if t.dim() == 4 else t.mean(0)


def step_sum(out: torch.Tensor) -> torch.Tensor:
    """``Σ_t out[t]``, accumulated as the official hook does (``output + stored``)."""
    total = out[0]
    for t in range(1, out.shape[0]):
        total = out[t] + total
    return total


def _snnc_pairs(ann: nn.Module, snn: nn.Module) -> list[LayerPair]:
    pairs = layer_pairs(ann, snn)
    plain = [p.name for p in pairs if not isinstance(p.spiking, SNNCSpikingLayer)]
    if plain:
        raise ValueError(f"IF layer {plain[0]!r} is not an SNN Calibration layer; convert with family: snnc")
    return pairs


@torch.no_grad()
def snnc_light(ann: nn.Module, snn: nn.Module, x: torch.Tensor, steps: int) -> None:
    """``bias_corr_model(correct_mempot=False)`` on the batch ``x``; ``ann`` gives the targets."""
    pairs = _snnc_pairs(ann, snn)
    convs = preceding_affine(snn)
    acts = ann_activations(ann, pairs, x)
    for pair in pairs:
        stored: list[torch.Tensor] = []
        with forward_hooks([pair.spiking], lambda _m, _i, out: stored.append(out)):
            simulate(snn, x, steps)
        snn_out = step_sum(unfold(stored[0], steps)) / steps
        bias = channel_mean(snn_out) - channel_mean(acts[pair.name])
        conv = convs[pair.name]
        if conv.bias is None:
            conv.bias = nn.Parameter(-bias)
        else:
            conv.bias.data = conv.bias.data - bias


@torch.no_grad()
def snnc_advanced(ann: nn.Module, snn: nn.Module, x: torch.Tensor, steps: int) -> None:
    """``bias_corr_model(correct_mempot=True)``: each neuron's initial membrane, from the batch ``x``."""
    pairs = _snnc_pairs(ann, snn)
    acts = ann_activations(ann, pairs, x)

    def correct_layer(pair: LayerPair, folded: torch.Tensor) -> None:
        layer: SNNCSpikingLayer = pair.spiking
        out, _ = layer.run(unfold(folded, steps))
        snn_out = step_sum(out) / steps
        ann_mean, snn_mean = acts.pop(pair.name).mean(0, keepdim=True), snn_out.mean(0, keepdim=True)
        layer.initial = ((ann_mean - snn_mean) * steps).contiguous()

    with before_each_layer(pairs, correct_layer):
        simulate(snn, x, steps)


def _without_average(
    x: torch.Tensor, theta: torch.Tensor, bias: torch.Tensor, ann_mean: torch.Tensor, alpha: float, v: torch.Tensor
) -> None:
    """``emp_bias_corr_one_step`` for t = 0..T-1 on one layer: its T steps run once, because the
    official loop's simulation at step t continues the one of step t-1 (one model step per call)."""
    theta_view = channel_view(theta, x[0])
    for t in range(x.shape[0]):
        old = channel_view(bias[t], x[t])
        v = v + x[t]
        v = v - old
        spike = (v >= theta_view).float() * theta_view
        v = v - spike
        delta = channel_mean(spike) - ann_mean
        # The official step then redoes the membrane with the new bias: add back, subtract again.
        v = v + spike
        v = v + old
        v = v - (old + alpha * channel_view(delta, x[t]))
        v = v - (v > theta_view).float() * theta_view
        bias[t] = bias[t] + alpha * delta


def _with_average(
    x: torch.Tensor, theta: torch.Tensor, bias: torch.Tensor, ann_mean: torch.Tensor, alpha: float, v: torch.Tensor
) -> None:
    """``x_bias_corr_model_update_step_by_step`` on one layer in one pass. The official loop re-runs
    steps 0..t from the start for every t, but steps < t use biases that no longer change, so each
    step runs twice here: with the old b_t (the output its average reads) and with the new b_t (the
    state the re-run of step t+1 starts from). The running sums are accumulated in the same order."""
    theta_view = channel_view(theta, x[0])
    prefix = torch.zeros_like(x[0])
    for t in range(x.shape[0]):
        u = (v + x[t]) - channel_view(bias[t], x[t])
        average = (prefix + (u >= theta_view).float() * theta_view) / (t + 1)
        bias[t] = alpha * (channel_mean(average) - ann_mean) + (1 - alpha) * bias[t]
        u = (v + x[t]) - channel_view(bias[t], x[t])
        spike = (u >= theta_view).float() * theta_view
        v = u - spike
        prefix = prefix + spike


def _calibrated_pairs(ann: nn.Module, snn: nn.Module, residual_biases: bool) -> list[LayerPair]:
    """The layers FTBC gives per-step biases. The FTBC repository's CIFAR ``SpikeResModule`` never
    reads its ``time_dependent_biases`` (its ImageNet one does): there a block's output layer is updated
    but runs, and feeds the next layers, without them, which ``residual_biases=False`` reproduces."""
    pairs = _snnc_pairs(ann, snn)
    if residual_biases:
        return pairs
    residual = residual_layers(snn)
    return [pair for pair in pairs if pair.name not in residual]


@torch.no_grad()
def ftbc_snnc(
    ann: nn.Module,
    snn: nn.Module,
    batches: list[torch.Tensor],
    steps: int,
    alpha: float,
    average: bool,
    residual_biases: bool = True,
) -> None:
    """FTBC on the SNN Calibration family: ``ours_w_avg`` if ``average`` else ``ours_wo_avg``.

    One SNN simulation per batch: just before layer l runs, its T steps of input (computed with the
    biases layers < l got from this batch, as the official per-layer simulations have them) go
    through the official per-step update, and the layer then runs with its new biases.
    ``residual_biases=False`` leaves a residual block's output layer without biases."""
    pairs = _calibrated_pairs(ann, snn, residual_biases)
    update = _with_average if average else _without_average
    for x in batches:
        acts = ann_activations(ann, pairs, x)

        def calibrate_layer(pair: LayerPair, folded: torch.Tensor) -> None:
            layer: SNNCSpikingLayer = pair.spiking
            currents = layer.shifted(unfold(folded, steps))
            bias = bias_rows(layer, steps, currents.shape[2])
            ann_mean = channel_mean(acts.pop(pair.name))
            update(currents, layer.neuron.thresh, bias, ann_mean, alpha, layer.start(currents[0]).float())
            layer.neuron.set_bias(bias)

        with before_each_layer(pairs, calibrate_layer):
            simulate(snn, x, steps)


def relu_targets(ann: nn.Module) -> nn.Module:
    """A copy of a thresholded ReLU ANN with every threshold at ∞: SNN Calibration's ANN mode, whose
    unclipped ReLU activations are the targets of its calibrations."""
    from snnbench.models.activations import ClipReLU

    targets = copy.deepcopy(ann)
    for module in targets.modules():
        if isinstance(module, ClipReLU):
            module.thresh = torch.full((1,), float("inf"), device=module.thresh.device)
    return targets
