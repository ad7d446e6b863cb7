"""Philox4x32-10 counters on the CPU in one compiled loop (numba), bit-equal to ``tl.philox``.

The PyTorch reference of the neuron kernels (``localzo.philox4x32``) spends ~100 full-array integer
ops per element, which made the CPU LocalZO forward slower than the dense step. This loop computes
the same 32-bit words element by element in registers. Only the integer stream lives here: the
float transforms (uniforms, Box-Muller) stay in the PyTorch reference, so z is bit-identical
whichever path produced the words. Off the CPU these functions return None and the caller keeps its
PyTorch loop.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .localzo import DISTRIBUTION_ID as _DIST_ID
from .localzo import M32 as _M32
from .localzo import PHILOX_KEYS, PHILOX_ROUNDS

_ROUND_A, _ROUND_B = PHILOX_ROUNDS
_KEY_A, _KEY_B = PHILOX_KEYS

_COMPILED: dict = {}


def _compiled() -> dict:
    """The numba loops, built on first use (importing numba costs about a second)."""
    if _COMPILED:
        return _COMPILED
    import numba

    @numba.njit(inline="always")
    def _philox(k0, k1, x0, x1, x2, x3, rounds):  # pragma: no cover - compiled
        mask = np.uint64(_M32)
        mul_a, mul_b = np.uint64(_ROUND_A), np.uint64(_ROUND_B)
        key_a, key_b = np.uint64(_KEY_A), np.uint64(_KEY_B)
        shift = np.uint64(32)
        for _ in range(rounds):
            pb = mul_b * x2  # < 2⁶⁴: both factors are below 2³²
            pa = mul_a * x0
            x0, x1, x2, x3 = (pb >> shift) ^ x1 ^ k0, pb & mask, (pa >> shift) ^ x3 ^ k1, pa & mask
            k0 = (k0 + key_a) & mask
            k1 = (k1 + key_b) & mask
        return x0, x1, x2, x3

    @numba.njit(cache=True, nogil=True)
    def _philox_loop(k0, k1, c0, c1, c2, c3, o0, o1, o2, o3, rounds):  # pragma: no cover - compiled
        for i in range(c0.shape[0]):
            o0[i], o1[i], o2[i], o3[i] = _philox(k0, k1, c0[i], c1[i], c2[i], c3[i], rounds)

    @numba.njit(cache=True, nogil=True)
    def _reach_loop(k0, k1, d, plane, first_step, band, delta, q, dist, out):  # pragma: no cover - compiled
        # d = |u − θ| of a [T, B·H] layer, flat. out[e] = some draw k may have δ·|z_k| > d[e]: |z_k|
        # is recomputed in fp64 and widened by 10⁻⁴ (relative) and 10⁻⁵ (on |cos|, |sin| of
        # Box-Muller) — far above the fp32 rounding of the reference's log, sqrt, cos and products —
        # so no entry the reference would find active is dropped.
        low_bits = np.uint64(9)
        for e in range(d.shape[0]):
            out[e] = False
            if not d[e] < band:
                continue
            # radius √(−2·ln ua) ≥ x (with the margins below) ⟺ ua ≤ exp(−x²/2); 1e-3 more slack
            x = d[e] / (delta * (1.0 + 1e-4) * (1.0 + 1e-5))
            reach_u = np.exp(-0.5 * x * x) * (1.0 + 1e-3)
            t = np.uint64(first_step + e // plane)
            index = np.uint64(e % plane)  # b·H + j < 2³¹: the counter's high word is 0
            for g in range((q + 3) // 4):
                r = _philox(k0, k1, index, np.uint64(0), t, np.uint64(g), 10)
                for j in range(min(4, q - 4 * g)):
                    if dist == 0:
                        a = r[0] if j < 2 else r[2]
                        b = r[1] if j < 2 else r[3]
                        ua = (np.float64(a >> low_bits) * 2.0 + 1.0) * 5.9604644775390625e-08
                        if not ua < reach_u:  # cheap first test: the radius alone cannot reach
                            continue
                        ub = (np.float64(b >> low_bits) * 2.0 + 1.0) * 5.9604644775390625e-08
                        ang = 6.283185307179586 * ub
                        trig = np.cos(ang) if j % 2 == 0 else np.sin(ang)
                        z = np.sqrt(-2.0 * np.log(ua)) * (abs(trig) + 1e-5)
                    else:
                        u = (np.float64(r[j] >> low_bits) * 2.0 + 1.0) * 5.9604644775390625e-08
                        z = 1.7320508075688772 * u if dist == 1 else -0.7071067811865476 * np.log(u)
                    if d[e] < delta * z * (1.0 + 1e-4):
                        out[e] = True

    _COMPILED.update(philox=_philox_loop, reach=_reach_loop)
    return _COMPILED


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
