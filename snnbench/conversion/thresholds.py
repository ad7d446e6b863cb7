"""Data-based thresholds: QCFS λ for untrained models (benchmarks, tests), and the thresholds of
ReLU ANNs (``relu_thresholds``: max, percentile or SNN Calibration's MSE search).

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


def _mse_threshold(a: torch.Tensor, steps: int) -> torch.Tensor:
    """SNN Calibration's search: of θ = max·(1 − 0.01·i), i = 0..94, the one whose T-step
    clip-floor quantisation ``floor(clamp(a/θ·T, 0, T))·θ/T`` is closest to ``a`` in mean squared error."""
    top = a.max()
    thetas = [top * (1.0 - i * 0.01) for i in range(95)]
    errs = [(a - torch.clamp(a / theta * steps, 0, steps).floor() * theta / steps).pow(2).mean() for theta in thetas]
    # One host sync for the search, not one per candidate; argmin keeps the first minimum, as a
    # strict "<" scan does.
    return thetas[int(torch.stack(errs).argmin())]


def _channel_mse_threshold(a: torch.Tensor, steps: int) -> torch.Tensor:
    """SNN Calibration's per-channel search (``--channel_wise_vth``): the same 95 candidates per
    channel from that channel's maximum, each channel keeping its first minimum of the summed squared
    error; in the official reduction order (a sum over batch and space per candidate). ``[C]``."""
    top = a.amax(dim=(0, 2, 3)).reshape(1, -1, 1, 1)
    thetas, errs = [], []
    for i in range(95):
        theta = top * (1.0 - i * 0.01)
        quantised = torch.clamp(a / theta * steps, min=0, max=steps).floor() * theta / steps
        thetas.append(theta.flatten())
        errs.append((a - quantised).abs().pow(2.0).sum((0, 2, 3)))
    # A NaN error (a dead channel: 0/0) never wins, as in the official strict "<" scan; argmin keeps
    # each channel's first minimum, as that scan does.
    best = torch.stack(errs).nan_to_num(nan=float("inf")).argmin(0)
    return torch.stack(thetas).gather(0, best.unsqueeze(0)).squeeze(0)


def _statistic(a: torch.Tensor, rule, steps: int, generator: torch.Generator, granularity: str = "layer"):
    if rule.kind == "mse" and granularity == "channel" and a.dim() == 4:
        return _channel_mse_threshold(a, steps)
    if rule.kind == "max":
        return a.max()
    if rule.kind == "mse":
        return _mse_threshold(a, steps)
    values = a.flatten()
    if values.numel() > _MAX_SAMPLES:
        values = values[torch.randint(values.numel(), (_MAX_SAMPLES,), generator=generator).to(values.device)]
    return torch.quantile(values, rule.percentile / 100.0)


@torch.no_grad()
def relu_thresholds(
    model: nn.Module, batches: list[torch.Tensor], rule, steps: int, momentum: float = 0.9, granularity: str = "layer"
) -> dict[str, float | list[float]]:
    """Set the threshold of every :class:`ClipReLU` of ``model`` from its ReLU outputs on ``batches``.

    All layers are measured in one forward per batch of the unclipped network, as SNN Calibration
    does. ``max``: the largest activation over all batches. ``percentile(p)`` and ``mse``: per batch,
    combined by SNN Calibration's moving average (θ ← m·θ + (1 − m)·θ_batch, m = 0.9). ``steps`` is
    the simulation length ``mse`` quantises to. ``granularity="channel"`` (``mse`` only) searches
    one threshold per channel of every convolutional layer, SNN Calibration's ``--channel_wise_vth``
    (linear layers keep one, as there). Returns the thresholds by layer name.
    """
    if granularity not in ("layer", "channel"):
        raise ValueError(f"threshold_granularity must be 'layer' or 'channel', got {granularity!r}")
    if granularity == "channel" and rule.kind != "mse":
        raise ValueError("threshold_granularity 'channel' needs threshold 'mse' (SNN Calibration's per-channel rule)")
    from snnbench.models.activations import ClipReLU

    layers = {name: m for name, m in model.named_modules() if isinstance(m, ClipReLU)}
    for m in layers.values():
        m.thresh.fill_(float("inf"))
    found: dict[str, torch.Tensor] = {}
    generator = torch.Generator(device="cpu").manual_seed(0)

    def hook(name: str):
        def record(_m, _inputs, output: torch.Tensor) -> None:
            value = _statistic(output.detach().float(), rule, steps, generator, granularity)
            if name not in found:
                found[name] = value
            elif rule.kind == "max":
                found[name] = torch.maximum(found[name], value)
            else:
                found[name] = momentum * found[name] + (1 - momentum) * value

        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in layers.items()]
    was_training = model.training
    model.eval()
    try:
        for x in batches:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    out: dict[str, float | list[float]] = {}
    for name, m in layers.items():
        value = found.get(name, torch.zeros(()))
        # A layer (or channel) that never fired gets θ = 1: it stays silent in the SNN, as in the ANN.
        # (SNN Calibration keeps θ = 0 there, which also never emits anything.)
        theta = torch.where(value > 0, value, torch.ones_like(value)).float().reshape(-1).to(m.thresh.device)
        m.thresh = theta.clone() if theta.numel() > 1 else m.thresh.fill_(float(theta))
        out[name] = m.thresh.tolist() if m.thresh.numel() > 1 else float(m.thresh)
    return out
