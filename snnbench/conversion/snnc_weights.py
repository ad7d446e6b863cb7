"""SNN Calibration's weights calibration (``weights_cali_model``), the first half of ``advanced``.

Layer by layer, in order, each IF layer's convolution (or linear layer) learns weights whose one-step
quantised output matches the ANN's ReLU output:

- the layer's input is its mean input over a T-step simulation of the SNN as calibrated so far (the
  layers before it already have their new weights), and the target the ANN's unclipped activation,
  both cached for ``samples`` images in passes of ``batch_size``;
- ``iterations`` Adam steps (cosine learning rate to 0), each on ``batch_size`` cached images drawn by
  ``randperm``: ``clamp(W·x̄ + b)/θ·T`` to [0, T], floored with a straight-through gradient, times θ/T,
  against the target with SNN Calibration's loss (the squared error summed over channels, averaged
  over the rest). No input shift, no initial membrane: the official loop has neither.
- a residual block's output layer (``weights_cali_res_layer``) also caches the shortcut's mean input
  over T and adds it to the convolution's output before the quantiser.

Only the layer's own weight moves (its bias, threshold and the other layers stay). The operations are
the official ones in its order, so the weights equal the official code's bit for bit on the CPU when
``generator`` is seeded as its global RNG was.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import nn

from snnbench.conversion.convert import SpikingLayer, simulate
from snnbench.conversion.layers import LayerPair, ann_activations, layer_pairs, unfold
from snnbench.conversion.snnc_calibration import step_sum
from snnbench.conversion.snnc_layer import channel_view, preceding_affine, shortcut_sources


def floor_straight_through(x: torch.Tensor) -> torch.Tensor:
    """``floor(x)`` forward, identity backward (the difference is exact for x ≥ 0, so the value is the
    floor itself)."""
    return x + (x.floor() - x).detach()


def quantised_output(
    affine: nn.Module, x: torch.Tensor, residual: Optional[torch.Tensor], theta: torch.Tensor, steps: int
) -> torch.Tensor:
    """The IF layer's rate over T steps as the official loop models it: ``⌊clamp(a/θ·T, 0, T)⌋·θ/T``
    with ``a`` the layer's output, plus the shortcut's mean input for a residual block's layer."""
    out = affine(x)
    if residual is not None:
        out = out + residual
    theta = channel_view(theta, out)
    levels = torch.clamp(out / theta * steps, min=0, max=steps)
    return floor_straight_through(levels) * theta / steps


def channel_summed_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SNN Calibration's ``lp_loss`` (p = 2): squared error summed over channels, mean over the rest."""
    return (pred - target).abs().pow(2).sum(1).mean()


class LayerData(NamedTuple):
    inputs: torch.Tensor  # the affine layer's mean input over T steps, per image
    residuals: Optional[torch.Tensor]  # a residual block's shortcut, mean over T steps (else None)
    targets: torch.Tensor  # the ANN's activation


@torch.no_grad()
def _simulated_inputs(
    snn: nn.Module, pair: LayerPair, affine: nn.Module, shortcut: Optional[nn.Module], x: torch.Tensor, steps: int
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The affine layer's input and the shortcut's output (folded ``[T·B, ...]``) in one simulation."""
    seen: dict[str, Optional[torch.Tensor]] = {}

    def at_layer(_m: nn.Module, _args: tuple) -> None:
        seen["block"] = seen.get("shortcut")  # the shortcut's output as the layer's add read it

    handles = [
        affine.register_forward_hook(lambda _m, args, _out: seen.update(input=args[0])),
        pair.spiking.register_forward_pre_hook(at_layer),
    ]
    if shortcut is not None:
        handles.append(shortcut.register_forward_hook(lambda _m, _a, out: seen.update(shortcut=out)))
    try:
        simulate(snn, x, steps)
    finally:
        for h in handles:
            h.remove()
    folded = seen["input"]
    assert folded is not None
    return folded, seen.get("block")


@torch.no_grad()
def _cached_layer_data(
    ann: nn.Module,
    snn: nn.Module,
    pair: LayerPair,
    modules: tuple[nn.Module, Optional[nn.Module]],
    samples: torch.Tensor,
    steps: int,
    batch_size: int,
) -> LayerData:
    """What ``weights_cali_layer`` (``weights_cali_res_layer`` with a shortcut) caches: per batch of
    ``batch_size``, the ANN's activation and the layer's inputs summed over T steps; then ÷ T."""
    affine, shortcut = modules
    inputs, residuals, targets = [], [], []
    for start in range(0, samples.shape[0] - batch_size + 1, batch_size):
        x = samples[start : start + batch_size]
        targets.append(ann_activations(ann, [pair], x)[pair.name])
        folded, residual = _simulated_inputs(snn, pair, affine, shortcut, x, steps)
        inputs.append(step_sum(unfold(folded, steps)))
        if residual is not None:
            residuals.append(step_sum(unfold(residual, steps)))
    return LayerData(torch.cat(inputs) / steps, torch.cat(residuals) / steps if residuals else None, torch.cat(targets))


def _fit_layer(
    affine: nn.Module, layer: SpikingLayer, data: LayerData, steps: int, options: dict, generator: torch.Generator
) -> None:
    theta = layer.neuron.thresh.detach()
    weight, was_trained = affine.weight, affine.weight.requires_grad
    optimizer = torch.optim.Adam([weight], lr=options["lr"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=options["iterations"], eta_min=0.0)
    weight.requires_grad_(True)
    try:
        with torch.enable_grad():
            for _ in range(options["iterations"]):
                pick = torch.randperm(options["samples"], generator=generator)[: options["batch_size"]]
                pick = pick.to(data.inputs.device)
                residual = None if data.residuals is None else data.residuals[pick]
                optimizer.zero_grad()
                out = quantised_output(affine, data.inputs[pick], residual, theta, steps)
                channel_summed_error(out, data.targets[pick]).backward()
                optimizer.step()
                schedule.step()
    finally:
        weight.grad = None
        weight.requires_grad_(was_trained)


def snnc_weights(
    ann: nn.Module,
    snn: nn.Module,
    samples: torch.Tensor,
    steps: int,
    *,
    lr: float,
    iterations: int,
    batch_size: int,
    generator: torch.Generator,
) -> None:
    """``weights_cali_model`` on ``samples`` (its ``num_cali_samples`` images, a multiple of
    ``batch_size``): every IF layer's preceding weight, in order; ``ann`` gives the targets."""
    count = samples.shape[0]
    if count < batch_size or count % batch_size:
        raise ValueError(f"the weights calibration needs a multiple of {batch_size} images, got {count}")
    options = {"lr": lr, "iterations": iterations, "batch_size": batch_size, "samples": count}
    affines, shortcuts = preceding_affine(snn), shortcut_sources(snn)
    ann.eval()
    snn.eval()
    for pair in layer_pairs(ann, snn):
        modules = (affines[pair.name], shortcuts.get(pair.name))
        data = _cached_layer_data(ann, snn, pair, modules, samples, steps, batch_size)
        _fit_layer(affines[pair.name], pair.spiking, data, steps, options, generator)
