"""The LIF scan and the input trace of the sparse training path as compiled CPU loops (numba).

The PyTorch references (:func:`kernels.lif_record.reference_lif_scan`, ``reference_input_trace``) walk
t with a handful of whole-step tensor ops each; at the training track's sizes (B·H of a few thousand
per step, T = 100) op dispatch costs more than the arithmetic, and the two scans were a quarter of the
CPU LocalZO / SparseProp forward. These loops do the same fp32 operations in the same order, element by
element, so u, the spikes and the trace are bit-identical (tests/test_scan_cpu.py); the references stay
the test oracle. Off the CPU, or for inputs that are not fp32, the functions return None and the caller
keeps its reference.
"""

from __future__ import annotations

import functools
from typing import Optional

import numpy as np
import torch


@functools.cache
def _compiled() -> dict:
    """The numba loops, built on first use (importing numba costs about a second)."""
    import numba

    from .common import numba_cache_allowed

    cache = numba_cache_allowed(__name__)

    @numba.njit(cache=cache, nogil=True)
    def _lif_loop(current, beta, theta, u_all, spikes):  # pragma: no cover - compiled
        # current, u_all, spikes: [T, N] float32; beta, theta: float32 (the references' scalars).
        T, N = current.shape
        for t in range(T):  # t outer: rows are contiguous; the state is the previous row
            for n in range(N):
                u = beta * u_all[t - 1, n] if t else np.float32(0.0)
                s = spikes[t - 1, n] if t else np.float32(0.0)
                u = (u + current[t, n]) - theta * s  # the reference's (β·u + I_t) − θ·s
                u_all[t, n] = u
                spikes[t, n] = np.float32(1.0) if u > theta else np.float32(0.0)

    @numba.njit(cache=cache, nogil=True)
    def _trace_loop(x, beta, out):  # pragma: no cover - compiled
        T, N = x.shape
        for t in range(T):
            for n in range(N):
                out[t, n] = (beta * out[t - 1, n] if t else np.float32(0.0)) + x[t, n]

    return {"lif": _lif_loop, "trace": _trace_loop}


def _usable(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() >= 1 and not x.requires_grad


def lif_scan_cpu(current: torch.Tensor, beta: float, theta: float) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """``(u, spikes)`` of ``reference_lif_scan(current, beta, theta)`` for an fp32 CPU ``current[T, ...]``,
    or None where the reference must run."""
    if not _usable(current):
        return None
    T = current.shape[0]
    flat = current.detach().contiguous().reshape(T, -1).numpy()
    u_all, spikes = np.empty_like(flat), np.empty_like(flat)
    if flat.size:
        _compiled()["lif"](flat, np.float32(beta), np.float32(theta), u_all, spikes)
    return torch.from_numpy(u_all).view(current.shape), torch.from_numpy(spikes).view(current.shape)


def input_trace_cpu(x: torch.Tensor, beta: float) -> Optional[torch.Tensor]:
    """``reference_input_trace(x, beta)`` for an fp32 CPU ``x[T, ...]``, or None."""
    if not _usable(x):
        return None
    T = x.shape[0]
    flat = x.detach().contiguous().reshape(T, -1).numpy()
    out = np.empty_like(flat)
    if flat.size:
        _compiled()["trace"](flat, np.float32(beta), out)
    return torch.from_numpy(out).view(x.shape)
