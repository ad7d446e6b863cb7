"""Dense surrogate gradients σ'(u) of the spike H(u): the Triton device function and its PyTorch twin.

σ'(u) with sharpness α (all but fast_sigmoid integrate to 1)::

    sigmoid      α·σ(αu)·(1-σ(αu))                     atan      (α/2)/(1+(παu/2)²)
    rectangle    α·1[|u| < 1/(2α)]   (width 1/α)       triangle  α·max(0, 1-α|u|)  (half-width 1/α)
    fast_sigmoid 1/(α|u|+1)²  (SuperSpike/SparseProp) gaussian  α/√(2π)·exp(-(αu)²/2)  (std 1/α)

``localzo`` is not a function of u alone: its estimate lives in :mod:`kernels.localzo`. Kernels take a
surrogate as a ``tl.constexpr`` id, ``SURROGATE_ID[name]``, and compare it with the named ids below.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = [
    "SURROGATES",
    "DEFAULT_ALPHA",
    "SURROGATE_ID",
    "SIGMOID",
    "ATAN",
    "RECTANGLE",
    "TRIANGLE",
    "FAST_SIGMOID",
    "GAUSSIAN",
    "LOCALZO",
    "surrogate_grad",
    "surrogate_grad_reference",
]

SURROGATES = ("sigmoid", "atan", "rectangle", "triangle", "fast_sigmoid", "gaussian", "localzo")
DEFAULT_ALPHA = {
    "sigmoid": 4.0,
    "atan": 2.0,
    "rectangle": 1.0,
    "triangle": 1.0,
    "fast_sigmoid": 10.0,
    "gaussian": 2.0,
}
SURROGATE_ID = {name: i for i, name in enumerate(SURROGATES)}
# The ids as compile-time constants a kernel can compare against (globals in a @triton.jit body
# must be tl.constexpr).
SIGMOID = tl.constexpr(SURROGATE_ID["sigmoid"])
ATAN = tl.constexpr(SURROGATE_ID["atan"])
RECTANGLE = tl.constexpr(SURROGATE_ID["rectangle"])
TRIANGLE = tl.constexpr(SURROGATE_ID["triangle"])
FAST_SIGMOID = tl.constexpr(SURROGATE_ID["fast_sigmoid"])
GAUSSIAN = tl.constexpr(SURROGATE_ID["gaussian"])
LOCALZO = tl.constexpr(SURROGATE_ID["localzo"])


@triton.jit
def surrogate_grad(u, alpha, SURROGATE: tl.constexpr):
    """σ'(u) of the dense surrogates (any id but LOCALZO)."""
    if SURROGATE == SIGMOID:
        sig = tl.sigmoid(alpha * u)
        grad = alpha * sig * (1.0 - sig)
    elif SURROGATE == ATAN:
        a = 1.5707963267948966 * alpha * u
        grad = 0.5 * alpha / (1.0 + a * a)
    elif SURROGATE == RECTANGLE:
        grad = tl.where(tl.abs(u) < 0.5 / alpha, alpha, 0.0)
    elif SURROGATE == TRIANGLE:
        grad = alpha * tl.maximum(1.0 - alpha * tl.abs(u), 0.0)
    elif SURROGATE == FAST_SIGMOID:
        d = alpha * tl.abs(u) + 1.0
        grad = 1.0 / (d * d)
    else:
        a = alpha * u
        grad = 0.3989422804014327 * alpha * tl.exp(-0.5 * a * a)
    return grad


def surrogate_grad_reference(u: torch.Tensor, surrogate: str, alpha: float) -> torch.Tensor:
    """:func:`surrogate_grad` in PyTorch, the same fp32 operations in the same order."""
    a = torch.tensor(alpha, dtype=torch.float32)
    if surrogate == "sigmoid":
        sig = torch.sigmoid(a * u)
        return a * sig * (1.0 - sig)
    if surrogate == "atan":
        z = 1.5707963267948966 * a * u
        return 0.5 * a / (1.0 + z * z)
    if surrogate == "rectangle":
        return torch.where(u.abs() < 0.5 / a, a, torch.zeros_like(u))
    if surrogate == "triangle":
        return a * torch.clamp(1.0 - a * u.abs(), min=0.0)
    if surrogate == "fast_sigmoid":
        return 1.0 / (a * u.abs() + 1.0) ** 2
    return 0.3989422804014327 * a * torch.exp(-0.5 * (a * u) ** 2)
