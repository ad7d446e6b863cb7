"""RTS conversion (Deng & Gu, ICLR 2021), as ``RTS/rts_snn_conversion/main_simulation_cifar.py`` runs it.

The ANN has threshold ReLUs (models/rts.py). Its conversion:

- each IF layer fires at its layer's largest activation on data (the script's ``max_active``, the
  running ``max`` of every activation's output, starting at 0);
- each IF layer is the script's ``SPIKE_layer``: the membrane starts at 0, every step's input is
  ``x_t + θ/(2·shift_snn)`` (the shift; none when ``shift_snn`` is 0; the scripts pass the T they
  simulate, one run per T: the pipeline does the same unless a suite fixes ``shift_snn``) and a calibrated bias comes off after the input, ``u = (v + x_t) - b_t``; soft reset,
  output θ·s;
- the classifier spikes too (``spiking_output``): an IF layer after the last linear layer fires at
  the largest logit; the prediction is the mean of its output over time.

Deviation: the script's ``max_active`` also sees the test set (its ANN accuracy pass runs before the
maximum is read); here it comes from training batches only.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from snnbench.conversion.convert import OutputSpikingLayer, convert, spiking_layers
from snnbench.models.rts import ThresholdReLU

OUTPUT = "output"  # the key of the classifier's threshold in :func:`rts_thresholds`' result


def is_rts(model: nn.Module) -> bool:
    return any(isinstance(m, ThresholdReLU) for m in model.modules())


def _last_linear(model: nn.Module) -> str:
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError("spiking_output needs a model that ends in a linear layer")
    return names[-1]


@torch.no_grad()
def rts_thresholds(ann: nn.Module, batches: list[torch.Tensor]) -> dict[str, float]:
    """Each threshold ReLU's largest output over ``batches`` (stored in its ``max_active``) and the
    largest logit (key ``"output"``). A layer that never fired on these batches gets θ = 1 (the
    kernels need θ > 0), where the official code's θ = 0 outputs θ·s = 0 always: the two differ only
    if such a layer fires on other data (docs/conversion.md, RTS deviations)."""
    layers = {name: m for name, m in ann.named_modules() if isinstance(m, ThresholdReLU)}
    found = {name: torch.zeros((), device=m.thresh.device) for name, m in layers.items()}
    found[OUTPUT] = torch.zeros((), device=next(iter(layers.values())).thresh.device)

    def hook(name: str):
        return lambda _m, _i, out: found.__setitem__(name, torch.maximum(found[name], out.max()))

    handles = [m.register_forward_hook(hook(name)) for name, m in layers.items()]
    was_training = ann.training
    ann.eval()
    try:
        for x in batches:
            found[OUTPUT] = torch.maximum(found[OUTPUT], ann(x).max())
    finally:
        for h in handles:
            h.remove()
        ann.train(was_training)
    out = {name: float(value) if float(value) > 0 else 1.0 for name, value in found.items()}
    for name, m in layers.items():
        m.max_active.fill_(out[name])
    return out


def convert_rts(ann: nn.Module, thresholds: dict[str, float], shift_snn: int, spiking_output: bool = True) -> nn.Module:
    """The RTS SNN of ``ann``: IF layers at ``thresholds`` (by activation name, and ``"output"`` for
    the spiking classifier), each run as the script's SPIKE_layer with ``shift_snn``."""
    if isinstance(shift_snn, bool) or not isinstance(shift_snn, int) or shift_snn < 0:
        raise ValueError(f"shift_snn must be a non-negative integer, got {shift_snn!r}")
    snn = convert(ann)
    if spiking_output:
        name = _last_linear(snn)
        parent_name, _, child = name.rpartition(".")
        parent = snn.get_submodule(parent_name) if parent_name else snn
        linear = getattr(parent, child)
        layer = OutputSpikingLayer(torch.zeros(1), linear.out_features).to(linear.weight.device)
        setattr(parent, child, nn.Sequential(linear, layer))
        thresholds = {**thresholds, f"{name}.1": thresholds[OUTPUT]}
    for name, layer in spiking_layers(snn):
        layer.neuron.thresh.fill_(thresholds[name])
        layer.neuron.use_rts(shift_snn)
    return snn


def shift_for(shift_snn: Optional[int], steps: int) -> int:
    """``shift_snn`` as given, or (None) the simulated T, as the scripts pass ``--shift_snn $T``."""
    return steps if shift_snn is None else int(shift_snn)
