"""Philox4x32-10 counters on the CPU in one compiled loop (numba), bit-equal to ``tl.philox``.

The PyTorch reference of the neuron kernels (``localzo.philox4x32``) spends ~100 full-array integer
ops per element, which made the CPU LocalZO forward slower than the dense step. This loop computes
the same 32-bit words element by element in registers. Only the integer stream lives here: the
float transforms (uniforms, Box-Muller) stay in the PyTorch reference, so z is bit-identical
whichever path produced the words. Off the CPU these functions return None and the caller keeps its
PyTorch loop.
"""

from __future__ import annotations

import functools
from typing import Optional

import numpy as np
import torch

from .localzo import DISTRIBUTION_ID as _DIST_ID
from .localzo import M32 as _M32


@functools.cache
def _compiled() -> dict:
    """The numba loops (kernels/philox_loops.py), imported on first use (importing numba costs about a
    second)."""
    from . import philox_loops

    return {"philox": philox_loops.philox_loop, "reach": philox_loops.reach_loop}


def philox4x32_words(seed: int, counters: tuple, rounds: int = 10) -> Optional[tuple[torch.Tensor, ...]]:
    """The four Philox words (int64 in [0, 2³²)) of CPU counter tensors, or None off the CPU."""
    tensors = [c for c in counters if isinstance(c, torch.Tensor)]
    if any(c.device.type != "cpu" for c in tensors):
        return None
    loops = _compiled()
    device = tensors[0].device if tensors else None
    c = torch.broadcast_tensors(*(torch.as_tensor(v, dtype=torch.int64, device=device) & _M32 for v in counters))
    shape = c[0].shape
    flat = [np.ascontiguousarray(v.reshape(-1).numpy()).view(np.uint64) for v in c]
    out = [np.empty_like(flat[0]) for _ in range(4)]
    loops["philox"](np.uint64(seed & _M32), np.uint64((seed >> 32) & _M32), *flat, *out, rounds)
    return tuple(torch.from_numpy(o.view(np.int64)).view(shape) for o in out)


def reachable(
    u_minus_theta: torch.Tensor, seed: int, delta: float, q: int, distribution: str, band: float, first_step: int = 0
) -> Optional[torch.Tensor]:
    """A superset of the LocalZO-active entries of a CPU layer ``u − θ[T, B, H]`` (bool, same shape):
    False only where |u − θ| ≥ ``band`` or every draw k of the stream (seed, first_step + t, b·H + j) has
    δ·|z_k| ≤ |u − θ|, so g = 0 there. None off the CPU.

    The reference then runs its exact fp32 test on the survivors only: about the active entries
    instead of every entry of the band, and the same result.
    """
    if u_minus_theta.device.type != "cpu":
        return None
    loops = _compiled()
    T, B, H = u_minus_theta.shape
    out = np.empty(u_minus_theta.numel(), dtype=np.bool_)
    if out.size:
        d = u_minus_theta.detach().abs().to(torch.float64).reshape(-1).numpy()
        loops["reach"](
            np.uint64(seed & _M32),
            np.uint64((seed >> 32) & _M32),
            d,
            B * H,
            int(first_step),
            float(band),
            float(delta),
            int(q),
            _DIST_ID[distribution],
            out,
        )
    return torch.from_numpy(out).view(T, B, H)
