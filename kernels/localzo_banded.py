"""LocalZO's g over whole layers, computed only where a draw can reach (the CPU path's cost).

``localzo_gain_reference`` runs Philox as ~100 elementwise tensor ops per element. g is zero wherever
|u − θ| ≥ δ·|z_k| for every draw k, so the reference needs to run only inside the band
|u − θ| < δ·max|z|, and on the CPU only where a compiled bound on the entry's own draws
(:func:`philox_cpu.reachable`) says some draw reaches. Both filters drop only entries whose g is 0:
the result is the reference's, element for element.
"""

from __future__ import annotations

import torch

from . import philox_cpu
from .localzo import localzo_gain_reference
from .sparse_common import MAX_ABS_Z


def localzo_gain_banded(
    u_minus_theta: torch.Tensor, seed: int, delta: float, q: int, distribution: str, first_step: int = 0
) -> torch.Tensor:
    """Dense g of a layer ``u − θ[T, B, H]`` (float32, same shape), with the kernels' z for step
    ``first_step + t`` and neuron ``b·H + j``."""
    band = delta * MAX_ABS_Z[distribution]
    g = torch.zeros(u_minus_theta.shape, dtype=torch.float32, device=u_minus_theta.device)
    candidates = philox_cpu.reachable(u_minus_theta, int(seed), delta, q, distribution, band, first_step)
    if candidates is None:
        candidates = u_minus_theta.abs() < band
    t, b, j = candidates.nonzero(as_tuple=True)
    if t.numel():
        H = u_minus_theta.shape[2]
        g[t, b, j] = localzo_gain_reference(
            u_minus_theta[t, b, j], int(seed), t + first_step, b * H + j, delta, q, distribution
        )
    return g
