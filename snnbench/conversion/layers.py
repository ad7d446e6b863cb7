"""What every calibration method needs: ANN/SNN layer pairs, activation capture and bias bookkeeping."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, NamedTuple

import torch
from torch import nn

from snnbench.conversion.convert import OutputSpikingLayer, SpikingLayer, spiking_layers
from snnbench.kernels.common import finite_scalar
from snnbench.models.activations import THRESHOLD_ACTIVATIONS


class LayerPair(NamedTuple):
    name: str
    qcfs: nn.Module  # the ANN activation (QCFS, or ClipReLU of a ReLU ANN)
    spiking: SpikingLayer  # the IF layer it became


def layer_pairs(ann: nn.Module, snn: nn.Module) -> list[LayerPair]:
    """Each IF layer of ``snn`` with the ANN activation it was converted from, in module order."""
    ann_modules = dict(ann.named_modules())
    pairs = []
    for name, layer in spiking_layers(snn):
        if isinstance(layer, OutputSpikingLayer):
            continue
        qcfs = ann_modules.get(name)
        if not isinstance(qcfs, THRESHOLD_ACTIVATIONS):
            raise ValueError(
                f"IF layer {name!r} has no activation counterpart in the ANN; was the SNN converted from it?"
            )
        pairs.append(LayerPair(name, qcfs, layer))
    if not pairs:
        raise ValueError("the SNN has no IF layers to calibrate")
    return pairs


def calibration_pairs(ann: nn.Module, snn: nn.Module, alpha: float) -> list[LayerPair]:
    """What both FTBC implementations do first: check α, put both networks in eval mode, pair the layers."""
    finite_scalar("alpha", alpha)  # checked, used as given
    ann.eval()
    snn.eval()
    return layer_pairs(ann, snn)


def channel_dims(step_tensor: torch.Tensor) -> list[int]:
    """The dims to average over in a ``[B, C, ...]`` tensor: all but the channel dim."""
    return [0] + list(range(2, step_tensor.dim()))


def bias_rows(layer: SpikingLayer, steps: int, channels: int) -> torch.Tensor:
    """A writable copy of the layer's ``[T, C]`` bias with at least ``steps`` rows (zeros if none yet)."""
    neuron = layer.neuron
    device = neuron.thresh.device
    if not neuron.has_bias():
        return torch.zeros(steps, channels, device=device)
    bias = neuron.bias.detach().to(device, torch.float32).clone()
    if bias.shape[1] != channels:
        raise ValueError(f"existing bias has {bias.shape[1]} channels, the layer input has {channels}")
    if bias.shape[0] < steps:
        bias = torch.cat([bias, bias.new_zeros(steps - bias.shape[0], channels)])
    return bias


def unfold(folded: torch.Tensor, steps: int) -> torch.Tensor:
    """``[T·B, ...]`` → ``[T, B, ...]``."""
    return folded.reshape((steps, -1) + tuple(folded.shape[1:]))


@torch.no_grad()
def ann_activations(ann: nn.Module, pairs: list[LayerPair], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """One ANN forward; the output of every activation of ``pairs`` by name."""
    acts: dict[str, torch.Tensor] = {}
    handles = [
        p.qcfs.register_forward_hook(lambda _m, _i, out, name=p.name: acts.__setitem__(name, out.detach()))
        for p in pairs
    ]
    try:
        ann(x)
    finally:
        for h in handles:
            h.remove()
    return acts


@contextmanager
def before_each_layer(pairs: list[LayerPair], fn: Callable[[LayerPair, torch.Tensor], None]) -> Iterator[None]:
    """Call ``fn(pair, folded_input)`` before every IF layer runs, in execution order.

    ``fn`` may change the layer's bias: the layer then runs with it, so a method that calibrates in
    ``fn`` feeds the next layers with the calibrated output in the same forward pass.
    """
    handles = [p.spiking.register_forward_pre_hook(lambda _m, inputs, pair=p: fn(pair, inputs[0])) for p in pairs]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def snapshot_biases(snn: nn.Module) -> dict[str, torch.Tensor]:
    return {name: layer.neuron.bias.detach().clone() for name, layer in spiking_layers(snn)}


def restore_biases(snn: nn.Module, biases: dict[str, torch.Tensor]) -> None:
    for name, layer in spiking_layers(snn):
        layer.neuron.set_bias(biases[name])


def max_bias_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    worst = 0.0
    for name in a:
        x, y = a[name], b[name]
        if x.shape != y.shape:
            return float("inf")
        if x.numel():
            worst = max(worst, float((x.float() - y.float()).abs().max()))
    return worst
