"""The RTS code of the FTBC repository (``RTS/rts_snn_conversion``), transcribed step by step.

A test oracle independent of snnbench's conversion code: ``SPIKE_layer`` (models/spiking_layer.py)
and ``emp_bias_corr_moving_avg_timestep`` / ``bias_corr_model`` (main_simulation_cifar.py), every
floating-point operation the official one, in the official order:

- SNN step (``SPIKE_layer.forward``): ``x = pre + shift`` with ``shift = θ / (2·shift_snn)`` (0 when
  shift_snn is 0); ``mem += x`` (``mem`` starts as the integer 0); ``mem -= b_t``;
  ``spike = mem.ge(θ).float()·θ``; ``mem -= spike``. The SNN runs one step per call; the classifier
  is a SPIKE_layer too (the official VGG16_spiking / ResNetSpiking), never calibrated.
- calibration: per batch, per activation in order: ``init_layer()``; for t: the ANN's output of the
  activation and one SNN step's output of its layer; ``δ = mean(snn) - mean(ann)`` (over batch and
  space); ``b' = b_t + α·δ``; ``mem += snn_out; mem += b_t; mem -= b'``; ``spike = mem.ge(θ)·θ``;
  ``mem -= spike``; ``b_t = b_t + α·δ``.

The SPIKE_layer here receives the layer's pre-activation (what its ``ops`` would compute) from the
ANN's own modules; only snnbench's :class:`ThresholdReLU` type is used, to find the activations.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from snnbench.models.rts import ThresholdReLU


class OfficialSpikeLayer(nn.Module):
    """``SPIKE_layer`` with its ``ops`` left to the module before it."""

    def __init__(self, thresh: float, T: int, shift_snn: int, channels: int) -> None:
        super().__init__()
        self.t = 0
        self.T = T
        self.shift_snn = shift_snn
        self.thresh = torch.tensor(thresh, dtype=torch.float32)
        self.mem = 0
        if self.shift_snn > 0:
            self.shift = self.thresh / (2 * self.shift_snn)
        else:
            self.shift = 0
        self.enable_time_based_bias = False
        self.time_based_biases = [torch.zeros((channels,)) for _ in range(self.T)]

    def init_mem(self) -> None:
        self.mem = 0
        self.t = 0

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        x = input + self.shift
        self.mem += x
        if self.enable_time_based_bias:
            time_based_bias = self.time_based_biases[self.t]
            if self.mem.dim() == 4:
                reshaped_bias = time_based_bias.view(1, -1, 1, 1)
            else:
                reshaped_bias = time_based_bias.view(1, -1)
            self.mem -= reshaped_bias
        spike = self.mem.ge(self.thresh).float() * self.thresh
        self.mem -= spike
        self.t += 1
        return spike


def _channels(ann: nn.Module, x: torch.Tensor) -> dict[str, int]:
    found: dict[str, int] = {}
    handles = [
        m.register_forward_hook(lambda _m, _i, out, name=name: found.__setitem__(name, out.shape[1]))
        for name, m in ann.named_modules()
        if isinstance(m, ThresholdReLU)
    ]
    with torch.no_grad():
        ann(x)
    for h in handles:
        h.remove()
    return found


def official_snn(ann: nn.Module, thresholds: dict[str, float], T: int, shift_snn: int, x: torch.Tensor) -> nn.Module:
    """A copy of ``ann`` with SPIKE_layers at its threshold ReLUs and after its last linear layer."""
    channels = _channels(ann, x)
    snn = copy.deepcopy(ann).eval()
    for name, module in list(snn.named_modules()):
        if isinstance(module, ThresholdReLU):
            parent_name, _, child = name.rpartition(".")
            parent = snn.get_submodule(parent_name) if parent_name else snn
            setattr(parent, child, OfficialSpikeLayer(thresholds[name], T, shift_snn, channels[name]))
    last = [name for name, m in snn.named_modules() if isinstance(m, nn.Linear)][-1]
    parent_name, _, child = last.rpartition(".")
    parent = snn.get_submodule(parent_name) if parent_name else snn
    linear = getattr(parent, child)
    classifier = OfficialSpikeLayer(thresholds["output"], T, shift_snn, linear.out_features)
    setattr(parent, child, nn.Sequential(linear, classifier))
    return snn


def _layers(snn: nn.Module) -> list[OfficialSpikeLayer]:
    return [m for m in snn.modules() if isinstance(m, OfficialSpikeLayer)]


def init_layer(snn: nn.Module) -> None:
    for m in _layers(snn):
        m.init_mem()


def set_time_based_bias(snn: nn.Module) -> None:
    for m in _layers(snn):
        m.enable_time_based_bias = True


def _module_output(model: nn.Module, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    stored: list[torch.Tensor] = []
    h = module.register_forward_hook(lambda _m, _i, out: stored.append(out.detach().clone()))
    model.eval()
    model(x)
    h.remove()
    return stored[0].detach()


def emp_bias_corr_moving_avg_timestep(ann, module_ann, snn, module_snn, t, T, train_data, curr_t_alpha) -> None:
    org_out = _module_output(ann, module_ann, train_data)
    snn_out = _module_output(snn, module_snn, train_data)
    if len(org_out.shape) == 4:
        ann_mean = org_out.mean(dim=[0, 2, 3])
        snn_mean = snn_out.mean(dim=[0, 2, 3])
    else:
        ann_mean = org_out.mean(dim=0)
        snn_mean = snn_out.mean(dim=0)
    time_based_bias = (snn_mean - ann_mean).detach()
    time_based_bias1 = module_snn.time_based_biases[t] + curr_t_alpha * time_based_bias
    if module_snn.mem.dim() == 4:
        reshaped_bias = time_based_bias1.view(1, -1, 1, 1)
        reshaped_bias_old = module_snn.time_based_biases[t].view(1, -1, 1, 1)
    else:
        reshaped_bias = time_based_bias1.view(1, -1)
        reshaped_bias_old = module_snn.time_based_biases[t].view(1, -1)
    module_snn.mem += snn_out
    module_snn.mem += reshaped_bias_old
    module_snn.mem -= reshaped_bias
    snn_out_new = module_snn.mem.ge(module_snn.thresh).float() * module_snn.thresh
    module_snn.mem -= snn_out_new
    module_snn.time_based_biases[t] = module_snn.time_based_biases[t] + curr_t_alpha * time_based_bias


@torch.no_grad()
def official_rts_ftbc(
    ann: nn.Module,
    thresholds: dict[str, float],
    rounds: list[list[torch.Tensor]],
    T: int,
    shift_snn: int,
    curr_t_alpha: float,
) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The calibrated official SNN and its biases ``[T, C]`` by activation name. ``rounds``: the
    batches of each ``--num_cali_iters`` round (the official loader's, already cut to
    ``num_cali_sample_batches + 1``)."""
    ann = copy.deepcopy(ann).eval()
    snn = official_snn(ann, thresholds, T, shift_snn, rounds[0][0])
    set_time_based_bias(snn)
    ann_modules, snn_modules = dict(ann.named_modules()), dict(snn.named_modules())
    mapping = [name for name, m in ann.named_modules() if isinstance(m, ThresholdReLU)]
    for batches in rounds:
        for inputs in batches:
            for name in mapping:
                init_layer(snn)
                for t in range(T):
                    emp_bias_corr_moving_avg_timestep(
                        ann, ann_modules[name], snn, snn_modules[name], t, T, inputs, curr_t_alpha
                    )
    return snn, {name: torch.stack(snn_modules[name].time_based_biases) for name in mapping}


@torch.no_grad()
def official_outputs(snn: nn.Module, x: torch.Tensor, T: int) -> torch.Tensor:
    """``validate_snn_accuracy``'s per-step outputs ``[T, B, classes]`` (the classifier's spikes)."""
    init_layer(snn)
    return torch.stack([snn(x) for _ in range(T)])
