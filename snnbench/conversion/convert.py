"""ANN→SNN conversion: every QCFS activation becomes an IF layer with θ = λ, v₀ = θ/2, soft reset.

A thresholded ReLU (:class:`ClipReLU`, from a ReLU ANN) becomes an IF layer with its threshold, and a
max-pool becomes the spiking max-pool gate (:class:`SpikingMaxPool`).

The converted network runs on time-folded tensors ``[T·B, ...]``: stateless layers (conv, BN, pooling,
linear, residual adds) process all steps at once, and each :class:`SpikingLayer` unfolds to
``[T, B, ...]`` for its time loop. The input image is fed at every step and the output is the mean of
the logits over time, so one simulation to T_max gives the accuracy at every T ≤ T_max.
Simulations can run in chunks of time steps; each IF layer then carries its membrane across chunks.
"""

from __future__ import annotations

import copy
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from snnbench.models.activations import THRESHOLD_ACTIVATIONS
from snnbench.neurons import MultiStepIF


class SpikingLayer(nn.Module):
    """An IF neuron in a time-folded network: unfolds ``[T·B, ...]`` to ``[T, B, ...]`` and back."""

    def __init__(self, threshold: torch.Tensor, channels: Optional[int] = None) -> None:
        super().__init__()
        self.neuron = MultiStepIF(threshold, channels)
        self.steps = 1  # time steps folded into the batch of the current call
        self.carry: Optional[torch.Tensor] = None  # membrane after the previous chunk
        self.offset = 0  # global index of the first step of the current chunk

    def reset_state(self) -> None:
        self.carry = None
        self.offset = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.reshape((self.steps, -1) + tuple(x.shape[1:]))
        out, v = self.neuron.simulate(seq, v_init=self.carry, t_offset=self.offset)
        self.carry, self.offset = v, self.offset + self.steps
        return out.reshape(x.shape)


class OutputSpikingLayer(SpikingLayer):
    """An IF layer after the network's last layer (the RTS code's spiking classifier): it has no ANN
    activation counterpart, so no calibration method pairs or corrects it."""


class SpikingMaxPool(nn.Module):
    """The spiking max-pool gate (Rueckauer et al., 2017): in every window it passes the input of the
    neuron whose accumulated input (its spike count, for spiking inputs) is the largest so far.

    Its rate output tracks the max-pool of the input rates, which a max-pool of each step's spikes
    would overestimate. Like :class:`SpikingLayer` it carries its state across chunks of time."""

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        if pool.dilation not in (1, (1, 1)) or pool.ceil_mode:
            raise ValueError("the spiking max-pool gate supports MaxPool2d without dilation or ceil_mode")
        self.kernel_size, self.stride, self.padding = pool.kernel_size, pool.stride, pool.padding
        self.steps = 1
        self.carry: Optional[torch.Tensor] = None  # accumulated input after the previous chunk

    def reset_state(self) -> None:
        self.carry = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.reshape((self.steps, -1) + tuple(x.shape[1:]))
        total = seq.cumsum(0)
        if self.carry is not None:
            total = total + self.carry
        self.carry = total[-1]
        # Padding with -inf never wins; the tie-break is max_pool2d's (first maximum in the window).
        _, index = F.max_pool2d(total.flatten(0, 1), self.kernel_size, self.stride, self.padding, return_indices=True)
        picked = seq.flatten(0, 1).flatten(2).gather(2, index.flatten(2))
        return picked.reshape(index.shape)


def _temporal_modules(model: nn.Module) -> Iterator[nn.Module]:
    for module in model.modules():
        if isinstance(module, (SpikingLayer, SpikingMaxPool)):
            yield module


def spiking_layers(model: nn.Module) -> Iterator[tuple[str, SpikingLayer]]:
    for name, module in model.named_modules():
        if isinstance(module, SpikingLayer):
            yield name, module


def _channels_hint(model: nn.Module, qcfs_name: str) -> Optional[int]:
    # The channel count of a QCFS layer is that of the nearest preceding conv/linear/BN output.
    last = None
    for name, module in model.named_modules():
        if name == qcfs_name:
            return last
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d)):
            last = (
                getattr(module, "out_channels", None)
                or getattr(module, "out_features", None)
                or getattr(module, "num_features", None)
            )
    return last


def convert(ann: nn.Module) -> nn.Module:
    """A deep copy of ``ann`` with every QCFS or ClipReLU replaced by a :class:`SpikingLayer` (θ = its
    threshold) and every MaxPool2d by a :class:`SpikingMaxPool`."""
    snn = copy.deepcopy(ann).eval()
    activations, pools = [], []
    for name, module in snn.named_modules():
        if isinstance(module, THRESHOLD_ACTIVATIONS):
            activations.append((name, module))
        elif isinstance(module, nn.MaxPool2d):
            pools.append((name, module))
    if not activations:
        raise ValueError("the model has no QCFS or thresholded ReLU activation; nothing to convert")
    for name, module in activations:
        layer = SpikingLayer(module.thresh.detach().clone(), _channels_hint(ann, name))
        _replace(snn, name, layer.to(module.thresh.device))
    for name, module in pools:
        _replace(snn, name, SpikingMaxPool(module))
    return snn


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def _set_steps(snn: nn.Module, steps: int) -> None:
    for module in _temporal_modules(snn):
        module.steps = steps


def reset(snn: nn.Module) -> None:
    for module in _temporal_modules(snn):
        module.reset_state()


@torch.no_grad()
def simulate(snn: nn.Module, x: torch.Tensor, steps: int, chunk: Optional[int] = None) -> torch.Tensor:
    """Per-step logits ``[T, B, classes]`` for the image batch ``x[B, ...]`` fed at every step."""
    chunk = min(chunk or steps, steps)
    reset(snn)
    outputs = []
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        _set_steps(snn, n)
        folded = x.unsqueeze(0).expand((n,) + tuple(x.shape)).reshape((n * x.shape[0],) + tuple(x.shape[1:]))
        outputs.append(snn(folded).reshape((n, x.shape[0], -1)))
        done += n
    reset(snn)
    return torch.cat(outputs)


@torch.no_grad()
def step_once(snn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One more time step of a step-by-step simulation (the official codes' way): logits ``[B, classes]``
    for the image batch ``x``; every IF layer carries its membrane since the last :func:`reset`."""
    _set_steps(snn, 1)
    return snn(x).reshape((x.shape[0], -1))


def accuracy_curve(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Number correct at every T = 1..T_max when the prediction is the mean of logits up to T."""
    running = logits.float().cumsum(0)
    preds = running.argmax(-1)  # [T, B]; mean and sum have the same argmax
    return (preds == labels.unsqueeze(0)).sum(1)
