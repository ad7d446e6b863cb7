"""The threshold ReLU with a shift of RTS (Deng & Gu, ICLR 2021, "Optimal conversion of conventional
ANNs to SNNs"), as its code (``RTS/rts_snn_conversion/models/new_relu.py``) trains it.

``a = clamp(z - θ/(2·shift_relu), 0, θ)`` with a fixed (not trained) threshold θ (the script's integer
``--thresh``) and the shift of ``--shift_relu`` (0: none, the script's default). Its gradient passes
where ``|z' - θ/2| <= θ/2`` (``z'`` the shifted input), the official ``thReLU`` backward. After
training, the conversion measures each layer's largest activation (``max_active``) and fires its IF
layer at that value (conversion/rts.py).
"""

from __future__ import annotations

import torch
from torch import nn

from snnbench.models.activations import ClipReLU


class _ThresholdReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, thresh: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, thresh)
        # The official ``x·[0 <= x <= θ] + θ·[x > θ]``; bit for bit the clamp (both give +0 below 0).
        return torch.minimum(torch.relu(x), thresh)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, thresh = ctx.saved_tensors
        return grad * ((x - thresh / 2).abs() <= thresh / 2).to(grad.dtype), None


class ThresholdReLU(ClipReLU):
    """RTS's activation: a ReLU clipped at the fixed ``thresh`` after a shift of θ/(2·shift_relu).

    ``max_active`` is the largest output seen by :func:`snnbench.conversion.rts.rts_thresholds` (the
    IF threshold of the converted layer); it starts at 0."""

    def __init__(self, thresh: float = 1.0, shift_relu: int = 0) -> None:
        super().__init__(thresh)
        if isinstance(shift_relu, bool) or not isinstance(shift_relu, int) or shift_relu < 0:
            raise ValueError(f"shift_relu must be a non-negative integer, got {shift_relu!r}")
        self.shift_relu = shift_relu
        self.register_buffer("max_active", torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        thresh = self.thresh.to(x.dtype)
        if self.shift_relu:
            x = x - thresh / (self.shift_relu * 2)
        return _ThresholdReLUFunction.apply(x, thresh)

    def extra_repr(self) -> str:
        return f"thresh={self.thresh.item():.4g}, shift_relu={self.shift_relu}"


def rts_everywhere(model: nn.Module, thresh: float, shift_relu: int) -> nn.Module:
    """``model`` with every QCFS replaced by a :class:`ThresholdReLU` (θ = ``thresh``)."""
    from snnbench.models.qcfs import QCFS

    if not thresh > 0:
        raise ValueError(f"rts_thresh must be positive, got {thresh!r}")
    for name, module in list(model.named_modules()):
        if isinstance(module, QCFS):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, ThresholdReLU(float(thresh), shift_relu))
    return model
