"""The QCFS activation (quantization-clip-floor-shift) of Bu et al., ICLR 2022.

``a = λ · clamp(floor(z·L/λ + 0.5) / L, 0, 1)`` with a straight-through floor and a trainable
threshold λ per layer. Converting to an SNN replaces each QCFS module by an IF neuron with θ = λ.
The threshold is stored as ``thresh`` (FTBC's name); official QCFS checkpoints call it ``up``.
"""

from __future__ import annotations

import torch
from torch import nn


class _FloorSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


class QCFS(nn.Module):
    """Quantized clip-floor-shift activation with ``levels`` steps and a trainable threshold."""

    def __init__(self, levels: int = 4, thresh: float = 8.0) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        self.levels = int(levels)
        self.thresh = nn.Parameter(torch.tensor([float(thresh)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lam = self.thresh
        y = x / lam
        y = torch.clamp(y, 0, 1)
        y = _FloorSTE.apply(y * self.levels + 0.5) / self.levels
        return y * lam

    # L travels with the weights: snnbench's state dicts hold it as ``<module>._extra_state``, so a
    # checkpoint loaded into a model built with another L is refused instead of silently requantised.
    def get_extra_state(self) -> torch.Tensor:
        return torch.tensor(self.levels)

    def set_extra_state(self, state: torch.Tensor) -> None:
        stored = int(state)
        if stored != self.levels:
            raise ValueError(
                f"the checkpoint was trained with QCFS levels L={stored} but the model is built with "
                f"L={self.levels}; set `levels: {stored}` in the model entry (or training.levels)"
            )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Official QCFS checkpoints (and caches older than this field) store no L: keep the model's.
        state_dict.setdefault(prefix + "_extra_state", torch.tensor(self.levels))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, thresh={self.thresh.item():.4g}"
