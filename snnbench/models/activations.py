"""Activations an IF layer can replace: QCFS, and the thresholded ReLU of a ReLU ANN.

A QCFS activation carries its trained threshold λ. A ReLU ANN has none: its ReLUs become
:class:`ClipReLU` with a threshold taken from activation statistics on training batches
(``threshold: max | percentile(p) | mse``), and the IF layer fires at that threshold. The clipped
output ``min(max(x, 0), θ)`` is what an IF layer with threshold θ can emit at most, so it is the
target calibration methods compare the SNN with.
"""

from __future__ import annotations

import torch
from torch import nn

from snnbench.models.qcfs import QCFS


class ClipReLU(nn.Module):
    """``clamp(x, 0, θ)`` with a fixed (not trained) threshold ``thresh``; θ = ∞ is a plain ReLU."""

    def __init__(self, thresh: float = float("inf")) -> None:
        super().__init__()
        self.register_buffer("thresh", torch.tensor([float(thresh)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        thresh = self.thresh.to(x.dtype)
        if thresh.numel() > 1:  # one threshold per channel (dim 1 of [B, C, ...])
            thresh = thresh.reshape((-1,) + (1,) * (x.dim() - 2))
        return torch.minimum(torch.relu(x), thresh)

    def extra_repr(self) -> str:
        if self.thresh.numel() > 1:
            return f"thresh=[{self.thresh.numel()} channels]"
        return f"thresh={self.thresh.item():.4g}"


# What ``convert`` turns into IF layers: each has a threshold ``thresh``.
THRESHOLD_ACTIVATIONS = (QCFS, ClipReLU)
