"""The numba loops of :mod:`kernels.philox_cpu`, at module level: imported (and numba with it, about
a second) on first use only.

They live at the top of a module rather than inside a function because numba's cache key includes
the pickled closure of a function: a loop calling a jitted helper from its closure got a new key in
every process, so each process compiled the loops anew (~2 s) and the cache grew by one entry per run.
"""

from __future__ import annotations

import numba
import numpy as np

from .common import numba_cache_allowed
from .localzo import M32, PHILOX_KEYS, PHILOX_ROUNDS

_CACHE = numba_cache_allowed(__name__)

_ROUND_A, _ROUND_B = PHILOX_ROUNDS
_KEY_A, _KEY_B = PHILOX_KEYS


@numba.njit(inline="always")
def philox(k0, k1, x0, x1, x2, x3, rounds):  # pragma: no cover - compiled
    mask = np.uint64(M32)
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


@numba.njit(cache=_CACHE, nogil=True)
def philox_loop(k0, k1, c0, c1, c2, c3, o0, o1, o2, o3, rounds):  # pragma: no cover - compiled
    for i in range(c0.shape[0]):
        o0[i], o1[i], o2[i], o3[i] = philox(k0, k1, c0[i], c1[i], c2[i], c3[i], rounds)


@numba.njit(cache=_CACHE, nogil=True)
def reach_loop(k0, k1, d, plane, first_step, band, delta, q, dist, out):  # pragma: no cover - compiled
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
            r = philox(k0, k1, index, np.uint64(0), t, np.uint64(g), 10)
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
