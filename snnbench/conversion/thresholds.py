"""Data-based QCFS thresholds for untrained models (benchmarks, tests).

A freshly initialised QCFS model has λ = 8 everywhere, far above its pre-activations, so every
activation quantises to zero and every IF layer stays silent: a calibration on it would be trivial.
Setting each λ to a high quantile of its own input (layer by layer, in one forward pass) gives a
random model whose layers quantise and spike like a trained one.
"""

from __future__ import annotations

import torch
from torch import nn

from snnbench.models.qcfs import QCFS

_MAX_SAMPLES = 1 << 20  # torch.quantile refuses very large inputs; a random subsample is plenty


@torch.no_grad()
def set_thresholds_from_data(model: nn.Module, x: torch.Tensor, quantile: float = 0.99, seed: int = 0) -> None:
    """Set every QCFS ``thresh`` of ``model`` to the ``quantile`` of its positive inputs on batch ``x``."""
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    generator = torch.Generator(device="cpu").manual_seed(seed)

    def pre_hook(module: QCFS, inputs: tuple[torch.Tensor, ...]) -> None:
        values = inputs[0].detach().float().flatten()
        values = values[values > 0]
        if values.numel() == 0:
            return
        if values.numel() > _MAX_SAMPLES:
            pick = torch.randint(values.numel(), (_MAX_SAMPLES,), generator=generator).to(values.device)
            values = values[pick]
        module.thresh.fill_(float(torch.quantile(values, quantile).clamp_min(1e-3)))

    handles = [m.register_forward_pre_hook(pre_hook) for m in model.modules() if isinstance(m, QCFS)]
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
