"""The LocalZO draw: |z| from a counter-based Philox4x32-10 stream and the estimate it gives, as
Triton device functions and their PyTorch twins.

``g(u) = (1/q) Σ_k |z_k|/(2δ)·1[|u| < δ|z_k|]`` whose ``z`` come from the stream with key = seed and
counter = (n mod 2³², n div 2³², t, k div 4) for neuron n (flat index within a step) at step t —
regenerated wherever needed, never stored. The PyTorch twin re-implements the same Philox and the same
float conversions, so both backends draw the same ``z`` for the same seed (bit-exact integers; log/cos
may differ by an ulp on a GPU). :mod:`kernels.philox_cpu` computes the same integer words in a numba
loop. Kernels take a distribution as a ``tl.constexpr`` id, ``DISTRIBUTION_ID[name]``.
"""

from __future__ import annotations

from typing import Union

import torch
import triton
import triton.language as tl

__all__ = [
    "DISTRIBUTIONS",
    "DISTRIBUTION_ID",
    "NORMAL",
    "UNIFORM",
    "LAPLACE",
    "abs_z",
    "localzo_gain",
    "M32",
    "PHILOX_KEYS",
    "PHILOX_ROUNDS",
    "philox4x32",
    "localzo_abs_z",
    "localzo_gain_reference",
]

DISTRIBUTIONS = ("normal", "uniform", "laplace")
DISTRIBUTION_ID = {name: i for i, name in enumerate(DISTRIBUTIONS)}
NORMAL = tl.constexpr(DISTRIBUTION_ID["normal"])
UNIFORM = tl.constexpr(DISTRIBUTION_ID["uniform"])
LAPLACE = tl.constexpr(DISTRIBUTION_ID["laplace"])

# --------------------------------------------------------------------------------------------------
# Triton device functions
# --------------------------------------------------------------------------------------------------


@triton.jit
def _uniform_open(r):
    # 23 random bits → (2i+1)·2⁻²⁴: exact in fp32, strictly inside (0, 1), so log() stays finite and
    # the PyTorch reference reproduces it bit for bit.
    return ((r >> 9).to(tl.float32) * 2.0 + 1.0) * 5.9604644775390625e-08


@triton.jit
def abs_z(r_a, r_b, J: tl.constexpr, DIST: tl.constexpr):
    """|z| of sample J (0..3) of a Philox block; normals take Box-Muller pairs (r0,r1) and (r2,r3)."""
    if DIST == NORMAL:
        rad = tl.sqrt(-2.0 * tl.log(_uniform_open(r_a)))
        ang = 6.283185307179586 * _uniform_open(r_b)
        if J % 2 == 0:
            z = tl.abs(rad * tl.cos(ang))
        else:
            z = tl.abs(rad * tl.sin(ang))
    elif DIST == UNIFORM:
        z = 1.7320508075688772 * _uniform_open(r_a)
    else:
        z = -0.7071067811865476 * tl.log(_uniform_open(r_a))
    return z


@triton.jit
def localzo_gain(u, seed, t, c0, c1, delta, Q: tl.constexpr, DIST: tl.constexpr):
    """LocalZO estimate g(u) for neurons with counters (c0, c1) = element index lo/hi at step t.

    Every kernel that must draw the same z calls this (the neuron backward, the sparse recording).
    """
    zero = c0 * 0
    c2 = zero + t
    au = tl.abs(u)
    acc = tl.zeros(u.shape, tl.float32)
    for g in tl.static_range((Q + 3) // 4):
        r0, r1, r2, r3 = tl.philox(seed, c0, c1, c2, zero + g)
        for j in tl.static_range(4):
            if g * 4 + j < Q:
                if DIST == NORMAL:
                    if j < 2:
                        z = abs_z(r0, r1, j, DIST)
                    else:
                        z = abs_z(r2, r3, j, DIST)
                else:
                    if j == 0:
                        z = abs_z(r0, r0, j, DIST)
                    elif j == 1:
                        z = abs_z(r1, r1, j, DIST)
                    elif j == 2:
                        z = abs_z(r2, r2, j, DIST)
                    else:
                        z = abs_z(r3, r3, j, DIST)
                acc += tl.where(au < delta * z, z, 0.0)
    return acc / (2.0 * delta * Q)


# --------------------------------------------------------------------------------------------------
# PyTorch twin: the test oracle and the CPU path
# --------------------------------------------------------------------------------------------------

M32 = 0xFFFFFFFF
PHILOX_KEYS = (0x9E3779B9, 0xBB67AE85)  # the Weyl increments of the key, per round
PHILOX_ROUNDS = (0xD2511F53, 0xCD9E8D57)  # the round multipliers
_PHILOX_KEY_A, _PHILOX_KEY_B = PHILOX_KEYS
_PHILOX_ROUND_A, _PHILOX_ROUND_B = PHILOX_ROUNDS


def _mulhilo32(a: int, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # The 32×32→64-bit product: int64 multiplication wraps modulo 2⁶⁴ on every torch backend, so
    # its 64 bits are the unsigned product's; an arithmetic shift then a mask reads the high word.
    # (One multiply instead of a 16-bit split: Philox is most of the CPU LocalZO forward.)
    # test_reference_philox_is_bit_exact checks this against tl.philox.
    p = a * b
    return (p >> 32) & M32, p & M32


def philox4x32(seed: int, c0, c1, c2, c3, rounds: int = 10) -> tuple[torch.Tensor, ...]:
    """Philox4x32-10 as ``tl.philox`` computes it; counters and results are int64 in [0, 2³²)."""
    k0, k1 = seed & M32, (seed >> 32) & M32
    device = next((c.device for c in (c0, c1, c2, c3) if isinstance(c, torch.Tensor)), None)
    c0, c1, c2, c3 = (torch.as_tensor(c, dtype=torch.int64, device=device) & M32 for c in (c0, c1, c2, c3))
    c0, c1, c2, c3 = torch.broadcast_tensors(c0, c1, c2, c3)
    for _ in range(rounds):
        hi_b, lo_b = _mulhilo32(_PHILOX_ROUND_B, c2)
        hi_a, lo_a = _mulhilo32(_PHILOX_ROUND_A, c0)
        c0, c1, c2, c3 = hi_b ^ c1 ^ k0, lo_b, hi_a ^ c3 ^ k1, lo_a
        k0 = (k0 + _PHILOX_KEY_A) & M32
        k1 = (k1 + _PHILOX_KEY_B) & M32
    return c0, c1, c2, c3


_PHILOX_CHUNK = 1 << 16


def _uniform_open_ref(r: torch.Tensor) -> torch.Tensor:
    return ((r >> 9).to(torch.float32) * 2.0 + 1.0) * 5.9604644775390625e-08


def localzo_abs_z(
    seed: int, t: Union[int, torch.Tensor], index: torch.Tensor, q: int, distribution: str
) -> torch.Tensor:
    """|z_k| for neurons ``index`` (flat index within a step) at step ``t`` (one, or one per neuron):
    shape [q, *index.shape]."""
    index = index.to(torch.int64)
    samples = []
    for g in range((q + 3) // 4):
        r = philox4x32(seed, index & M32, index >> 32, t, g)
        for j in range(min(4, q - 4 * g)):
            if distribution == "normal":
                a, b = (r[0], r[1]) if j < 2 else (r[2], r[3])
                rad = torch.sqrt(-2.0 * torch.log(_uniform_open_ref(a)))
                ang = 6.283185307179586 * _uniform_open_ref(b)
                z = rad * (torch.cos(ang) if j % 2 == 0 else torch.sin(ang))
                samples.append(z.abs())
            elif distribution == "uniform":
                samples.append(1.7320508075688772 * _uniform_open_ref(r[j]))
            else:
                samples.append(-0.7071067811865476 * torch.log(_uniform_open_ref(r[j])))
    return torch.stack(samples)


def localzo_gain_reference(
    u: torch.Tensor,
    seed: int,
    t: Union[int, torch.Tensor],
    index: torch.Tensor,
    delta: float,
    q: int,
    distribution: str,
) -> torch.Tensor:
    """g(u) = (1/q) Σ_k |z_k|/(2δ)·1[|u| < δ|z_k|] with the kernel's z for (seed, t, index)."""
    flat_u = u.reshape(-1)
    flat_index = index.reshape(-1)
    flat_t = t.expand_as(index).reshape(-1) if isinstance(t, torch.Tensor) else None
    out = torch.empty_like(flat_u, dtype=torch.float32)
    delta32 = torch.tensor(delta, dtype=torch.float32)
    # Philox is ~100 elementwise integer ops: in chunks that stay in cache it runs ~3× faster on a CPU.
    for s in range(0, flat_u.numel(), _PHILOX_CHUNK):
        chunk = slice(s, s + _PHILOX_CHUNK)
        z = localzo_abs_z(seed, t if flat_t is None else flat_t[chunk], flat_index[chunk], q, distribution)
        hit = torch.where(flat_u[chunk].abs() < delta32 * z, z, torch.zeros_like(z))
        acc = hit[0]
        for k in range(1, q):
            acc = acc + hit[k]
        out[chunk] = acc / (2.0 * delta32 * q)
    return out.view(u.shape)
