"""The FTBC repository's calibration (``main_cali.py``: ``bias_corr_model``), transcribed step by step.

A test oracle independent of snnbench's conversion code: it builds its own SNN from a QCFS ANN the
way the official code switches its ``IF`` modules to ``T > 0`` (the image repeated T times and folded
into the batch; every activation unfolds, runs its time loop and folds back), and it keeps the biases
as the official code does, a Python list of T per-channel tensors per layer. Every floating-point
operation is the official one, in the official order:

- SNN step: ``mem = mem - b_t``, then ``mem = mem + x_t``; ``spike = H(mem - θ)·θ`` with
  ``H(z) = (z >= 0)``; ``mem = mem - spike``; ``mem`` starts at ``0.5·θ``;
- calibration of layer l (for each of the K batches, each activation in module order): the ANN's
  output of that activation (first call) and the SNN's input of it; ``mem = v + x_t``;
  ``e = H(mem - θ)·θ - a``; ``mem' = mem - e``; ``v = mem' - H(mem' - θ)·θ``;
  ``b_t = α·mean(e over batch and space) + b_t``.

``target_levels`` reproduces the script's quirk of ANN targets built before ``set_L`` (L = 8).
Only snnbench's QCFS module type is used (to find the activations and read λ and L).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from snnbench.models.qcfs import QCFS


class OfficialIF(nn.Module):
    """The official ``IF`` module in its spiking mode (``T > 0``)."""

    def __init__(self, thresh: torch.Tensor, steps: int) -> None:
        super().__init__()
        self.thresh = thresh.detach().clone()
        self.T = steps
        self.time_based_bias: list[torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        thre = self.thresh
        x = x.view([self.T, x.shape[0] // self.T] + list(x.shape[1:]))
        if self.time_based_bias is None:
            self.time_based_bias = [torch.zeros(x.shape[2])] * self.T
        mem = 0.5 * thre
        spikes = []
        for t in range(self.T):
            b = self.time_based_bias[t]
            b = b.view(1, -1, 1, 1) if x.dim() == 5 else b.view(1, -1)
            mem = mem - b
            mem = mem + x[t]
            spike = (mem - thre >= 0).float() * thre
            mem = mem - spike
            spikes.append(spike)
        return torch.stack(spikes, 0).flatten(0, 1).contiguous()


def official_snn(ann: nn.Module, steps: int) -> nn.Module:
    """A copy of ``ann`` whose QCFS activations run as the official spiking ``IF``."""
    snn = copy.deepcopy(ann).eval()
    for name, module in list(snn.named_modules()):
        if isinstance(module, QCFS):
            parent_name, _, child = name.rpartition(".")
            parent = snn.get_submodule(parent_name) if parent_name else snn
            setattr(parent, child, OfficialIF(module.thresh, steps))
    return snn


def _first_call(model: nn.Module, module: nn.Module, x: torch.Tensor, want_input: bool) -> torch.Tensor:
    kept: list[torch.Tensor] = []

    def hook(_m, inputs, output):
        if not kept:
            kept.append((inputs[0] if want_input else output).detach().clone())

    handle = module.register_forward_hook(hook)
    try:
        model(x)
    finally:
        handle.remove()
    return kept[0]


def _fold(x: torch.Tensor, steps: int) -> torch.Tensor:
    """The official input expansion: the image repeated T times, time folded into the batch."""
    return x.unsqueeze(0).repeat((steps,) + (1,) * x.dim()).flatten(0, 1)


@torch.no_grad()
def official_ftbc(
    ann: nn.Module,
    batches: list[torch.Tensor],
    steps: int,
    alpha: float,
    target_levels: int | None = None,
) -> dict[str, torch.Tensor]:
    """Official single-pass FTBC on ``batches``; the biases ``[T, C]`` of every activation, by name."""
    ann = copy.deepcopy(ann).eval()
    snn = official_snn(ann, steps)
    if target_levels is not None:
        for module in ann.modules():
            if isinstance(module, QCFS):
                module.levels = target_levels
    ann_modules = dict(ann.named_modules())
    for x in batches:
        for name, module_snn in snn.named_modules():
            if not isinstance(module_snn, OfficialIF):
                continue
            a = _first_call(ann, ann_modules[name], x, want_input=False)
            snn_in = _first_call(snn, module_snn, _fold(x, steps), want_input=True)
            snn_in = snn_in.view(steps, -1, *snn_in.shape[1:])
            thre = module_snn.thresh
            v = 0.5 * thre
            if module_snn.time_based_bias is None:
                module_snn.time_based_bias = [torch.zeros(snn_in.shape[2])] * steps
            for t in range(steps):
                mem = v + snn_in[t]
                err = (mem - thre >= 0).float() * thre - a
                mem_forced = mem - err
                v = mem_forced - (mem_forced - thre >= 0).float() * thre
                dims = [0, 2, 3] if err.dim() == 4 else [0]
                module_snn.time_based_bias[t] = alpha * err.mean(dim=dims) + module_snn.time_based_bias[t]
    return {name: torch.stack(m.time_based_bias) for name, m in snn.named_modules() if isinstance(m, OfficialIF)}


@torch.no_grad()
def official_logits(ann: nn.Module, biases: dict[str, torch.Tensor], x: torch.Tensor, steps: int) -> torch.Tensor:
    """Per-step logits ``[T, B, classes]`` of the official SNN with ``biases``."""
    snn = official_snn(ann, steps)
    for name, m in snn.named_modules():
        if isinstance(m, OfficialIF):
            m.time_based_bias = list(biases[name].unbind(0))
    return snn(_fold(x, steps)).view(steps, x.shape[0], -1)
