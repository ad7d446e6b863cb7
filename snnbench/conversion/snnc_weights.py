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

Only the layer's own weight moves (its bias, threshold and the other layers stay). The operations are
the official ones in its order, so the weights equal the official code's bit for bit on the CPU when
``generator`` is seeded as its global RNG was.
"""

from __future__ import annotations

import torch
from torch import nn

from snnbench.conversion.convert import SpikingLayer, simulate
from snnbench.conversion.layers import LayerPair, ann_activations, layer_pairs, unfold
from snnbench.conversion.snnc_calibration import step_sum
from snnbench.conversion.snnc_layer import channel_view, preceding_affine


def floor_straight_through(x: torch.Tensor) -> torch.Tensor:
    """``floor(x)`` forward, identity backward (the difference is exact for x ≥ 0, so the value is the
    floor itself)."""
    return x + (x.floor() - x).detach()


def quantised_output(affine: nn.Module, x: torch.Tensor, theta: torch.Tensor, steps: int) -> torch.Tensor:
    """The IF layer's rate over T steps as the official loop models it: ``⌊clamp(a/θ·T, 0, T)⌋·θ/T``."""
    out = affine(x)
    theta = channel_view(theta, out)
    levels = torch.clamp(out / theta * steps, min=0, max=steps)
    return floor_straight_through(levels) * theta / steps


def channel_summed_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SNN Calibration's ``lp_loss`` (p = 2): squared error summed over channels, mean over the rest."""
    return (pred - target).abs().pow(2).sum(1).mean()


@torch.no_grad()
def _cached_layer_data(
    ann: nn.Module,
    snn: nn.Module,
    pair: LayerPair,
    affine: nn.Module,
    samples: torch.Tensor,
    steps: int,
    batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The affine layer's mean input over a T-step simulation and the ANN's activation, per image."""
    name = pair.name
    inputs, targets = [], []
    for start in range(0, samples.shape[0] - batch_size + 1, batch_size):
        x = samples[start : start + batch_size]
        targets.append(ann_activations(ann, [pair], x)[name])
        seen: dict[str, torch.Tensor] = {}

        def capture(_m: nn.Module, args: tuple, out: torch.Tensor) -> None:
            seen.update(input=args[0], output=out)

        def check_source(_m: nn.Module, args: tuple) -> None:
            # A residual block's layer integrates its convolution plus the shortcut
            # (weights_cali_res_layer, not built here): refuse it rather than fit the wrong output.
            if args[0] is not seen.get("output"):
                raise ValueError(
                    f"IF layer {name!r} does not integrate its convolution alone (a residual sum?); "
                    "the weights calibration of residual blocks is not built: use weights: false"
                )

        handles = [affine.register_forward_hook(capture), pair.spiking.register_forward_pre_hook(check_source)]
        try:
            simulate(snn, x, steps)
        finally:
            for h in handles:
                h.remove()
        inputs.append(step_sum(unfold(seen["input"], steps)))
    return torch.cat(inputs) / steps, torch.cat(targets)


def _fit_layer(
    affine: nn.Module,
    layer: SpikingLayer,
    data: tuple[torch.Tensor, torch.Tensor],
    steps: int,
    options: dict,
    generator: torch.Generator,
) -> None:
    inputs, targets = data
    theta = layer.neuron.thresh.detach()
    weight, was_trained = affine.weight, affine.weight.requires_grad
    optimizer = torch.optim.Adam([weight], lr=options["lr"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=options["iterations"], eta_min=0.0)
    weight.requires_grad_(True)
    try:
        with torch.enable_grad():
            for _ in range(options["iterations"]):
                pick = torch.randperm(options["samples"], generator=generator)[: options["batch_size"]]
                pick = pick.to(inputs.device)
                optimizer.zero_grad()
                error = channel_summed_error(quantised_output(affine, inputs[pick], theta, steps), targets[pick])
                error.backward()
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
    affines = preceding_affine(snn)
    ann.eval()
    snn.eval()
    for pair in layer_pairs(ann, snn):
        data = _cached_layer_data(ann, snn, pair, affines[pair.name], samples, steps, batch_size)
        _fit_layer(affines[pair.name], pair.spiking, data, steps, options, generator)
