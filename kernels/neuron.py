"""Multi-step IF / LIF neurons: one launch runs the whole time loop forward, one runs it backward.

Semantics (docs/design.md §3), per neuron, time-major ``x[T, ...]``, channel = dim 2 of ``x``::

    h_t = (β·v_{t-1} + (1-β)·v_reset·[leak] - b_t[c]) + γ·x_t   # IF: β = γ = 1, no leak term
    u_t = h_t - θ[c] ;  s_t = H(u_t) = 1 if u_t >= 0
    v_t = h_t - θ·s_t                       (soft reset)
    v_t = h_t·(1 - s_t) + v_reset·s_t       (hard reset)
    v_t = h_t, h_{t+1} -= θ·s_t ; s_t = 1 if u_t > 0   (subtract reset)

``subtract`` is the reset of SparseProp and snntorch's ``Leaky``: the previous step's spike takes θ
off *after* the decay, ``h_t = β·h_{t-1} + x_t − θ·s_{t-1}``, and a neuron fires strictly above θ.
(``soft`` takes θ off at the spike step, so the reset decays with the membrane.) Its ``v_final``
is ``h_T``, before the reset still pending from ``s_T``: passing it as the next call's ``v_init``
would skip that reset, so a subtract-reset run is not resumable across calls.

LIF uses ``β = 1 - 1/τ`` and either ``γ = 1`` (``h = v - (v - v_reset)/τ + x``) or, with
``decay_input``, ``γ = 1/τ`` (``h = v + (x - (v - v_reset))/τ``); ``beta=`` sets β directly.

Forward kernel: one program owns ``BLOCK`` neurons of a step, keeps ``v`` in registers and walks
t = 0..T-1 reading ``x_t`` once and writing the spike once (the next step's ``x`` is loaded before
this step's arithmetic so two loads are in flight per warp). For backward it stores only
``u_t = h_t - θ`` in ``save_dtype`` (bf16 by default): the spike is the sign of ``u`` (kept exact,
see ``_sign_safe``), ``h = u + θ``, and every surrogate is a function of ``u``. Inference saves
nothing.

Backward kernel: the same tiling, t = T-1..0, carrying ``∂L/∂v`` in registers::

    gs  = ∂L/∂s_t (+ unless detach_reset: -θ·gv soft, (v_reset - h_t)·gv hard, -θ·∂L/∂h_{t+1} subtract)
    gh  = gs·σ'(u_t) + gv·∂v_t/∂h_t          (1 soft and subtract, 1 - s_t hard)
    ∂L/∂x_t = γ·gh ;  gv ← β·gh   (after t = 0, gv = ∂L/∂v_init)

σ' is a dense surrogate of ``u`` or the LocalZO estimate
``g = (1/q) Σ_k |z_k|/(2δ)·1[|u| < δ|z_k|]`` whose ``z`` are regenerated from a counter-based
Philox4x32-10 stream (key = seed, counter = (n mod 2³², n div 2³², t, k div 4)) — never stored. The
PyTorch reference re-implements the same Philox and the same float conversions, so both backends
draw the same ``z`` for the same seed (bit-exact integers; log/cos may differ by an ulp on a GPU).

Bytes moved per element and step (``x``/``out`` in the I/O dtype, ``u`` in ``save_dtype``)::

    inference forward   sizeof(x) + sizeof(out)                 fp32: 8   bf16: 4   fp32→uint8: 5
    training forward    sizeof(x) + sizeof(out) + sizeof(u)     fp32/bf16 u: 10
    backward            sizeof(grad_out) + sizeof(u) + sizeof(grad_x)           fp32/bf16 u: 10

plus ``4·N`` bytes for ``v_final`` (and ``v_init``/its gradient when they are tensors).
"""

from __future__ import annotations

import math
import os
import struct
import weakref
from dataclasses import dataclass
from typing import Optional, Union

import torch
import triton
import triton.language as tl

__all__ = [
    "SURROGATES",
    "DISTRIBUTIONS",
    "DEFAULT_ALPHA",
    "multistep_if",
    "multistep_lif",
    "multistep_neuron",
    "neuron_reference",
    "neuron_forward",
    "neuron_backward",
    "localzo_abs_z",
    "localzo_gain_reference",
    "philox4x32",
    "traffic_bytes",
]

SURROGATES = ("sigmoid", "atan", "rectangle", "triangle", "fast_sigmoid", "gaussian", "localzo")
DISTRIBUTIONS = ("normal", "uniform", "laplace")
# σ'(u) with sharpness α (all but fast_sigmoid integrate to 1):
#   sigmoid      α·σ(αu)·(1-σ(αu))                     atan      (α/2)/(1+(παu/2)²)
#   rectangle    α·1[|u| < 1/(2α)]   (width 1/α)       triangle  α·max(0, 1-α|u|)  (half-width 1/α)
#   fast_sigmoid 1/(α|u|+1)²  (SuperSpike/SparseProp) gaussian  α/√(2π)·exp(-(αu)²/2)  (std 1/α)
DEFAULT_ALPHA = {
    "sigmoid": 4.0,
    "atan": 2.0,
    "rectangle": 1.0,
    "triangle": 1.0,
    "fast_sigmoid": 10.0,
    "gaussian": 2.0,
}
_SURROGATE_ID = {name: i for i, name in enumerate(SURROGATES)}
_DISTRIBUTION_ID = {name: i for i, name in enumerate(DISTRIBUTIONS)}
_OUTPUT_ID = {"spike": 0, "scaled": 1, "uint8": 2}
_RESET_ID = {"soft": 0, "hard": 1, "subtract": 2}
_SAVE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_SAVE_ID = {torch.float32: 1, torch.bfloat16: 2, torch.float16: 3}
_IO_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_LOCALZO = _SURROGATE_ID["localzo"]
_MAX_SEED = 2**63


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


# --------------------------------------------------------------------------------------------------
# Triton device functions
# --------------------------------------------------------------------------------------------------


@triton.jit
def _surrogate_grad(u, alpha, SURROGATE: tl.constexpr):
    """σ'(u) of the dense surrogates; ids follow ``SURROGATES``."""
    if SURROGATE == 0:
        sig = tl.sigmoid(alpha * u)
        grad = alpha * sig * (1.0 - sig)
    elif SURROGATE == 1:
        a = 1.5707963267948966 * alpha * u
        grad = 0.5 * alpha / (1.0 + a * a)
    elif SURROGATE == 2:
        grad = tl.where(tl.abs(u) < 0.5 / alpha, alpha, 0.0)
    elif SURROGATE == 3:
        grad = alpha * tl.maximum(1.0 - alpha * tl.abs(u), 0.0)
    elif SURROGATE == 4:
        d = alpha * tl.abs(u) + 1.0
        grad = 1.0 / (d * d)
    else:
        a = alpha * u
        grad = 0.3989422804014327 * alpha * tl.exp(-0.5 * a * a)
    return grad


@triton.jit
def _uniform_open(r):
    # 23 random bits → (2i+1)·2⁻²⁴: exact in fp32, strictly inside (0, 1), so log() stays finite and
    # the PyTorch reference reproduces it bit for bit.
    return ((r >> 9).to(tl.float32) * 2.0 + 1.0) * 5.9604644775390625e-08


@triton.jit
def _abs_z(r_a, r_b, J: tl.constexpr, DIST: tl.constexpr):
    """|z| of sample J (0..3) of a Philox block; normals take Box-Muller pairs (r0,r1) and (r2,r3)."""
    if DIST == 0:
        rad = tl.sqrt(-2.0 * tl.log(_uniform_open(r_a)))
        ang = 6.283185307179586 * _uniform_open(r_b)
        if J % 2 == 0:
            z = tl.abs(rad * tl.cos(ang))
        else:
            z = tl.abs(rad * tl.sin(ang))
    elif DIST == 1:
        z = 1.7320508075688772 * _uniform_open(r_a)
    else:
        z = -0.7071067811865476 * tl.log(_uniform_open(r_a))
    return z


@triton.jit
def _localzo_gain(u, seed, t, c0, c1, delta, Q: tl.constexpr, DIST: tl.constexpr):
    """LocalZO estimate g(u) for neurons with counters (c0, c1) = element index lo/hi at step t.

    Reusable by other kernels that must draw the same z (e.g. a sparse LocalZO backward).
    """
    zero = c0 * 0
    c2 = zero + t
    au = tl.abs(u)
    acc = tl.zeros(u.shape, tl.float32)
    for g in tl.static_range((Q + 3) // 4):
        r0, r1, r2, r3 = tl.philox(seed, c0, c1, c2, zero + g)
        for j in tl.static_range(4):
            if g * 4 + j < Q:
                if DIST == 0:
                    if j < 2:
                        z = _abs_z(r0, r1, j, DIST)
                    else:
                        z = _abs_z(r2, r3, j, DIST)
                else:
                    if j == 0:
                        z = _abs_z(r0, r0, j, DIST)
                    elif j == 1:
                        z = _abs_z(r1, r1, j, DIST)
                    elif j == 2:
                        z = _abs_z(r2, r2, j, DIST)
                    else:
                        z = _abs_z(r3, r3, j, DIST)
                acc += tl.where(au < delta * z, z, 0.0)
    return acc / (2.0 * delta * Q)


@triton.jit
def _sign_safe(u, SAVE_MODE: tl.constexpr):
    """Round-trip u through the save dtype without flipping H(u): the spike is re-read as u >= 0."""
    if SAVE_MODE == 2:
        # a negative bf16 underflow would come back as -0.0 >= 0; keep it at least one normal away
        u = tl.where(u < 0.0, tl.minimum(u, -1.1754943508222875e-38), u)
    elif SAVE_MODE == 3:
        u = tl.minimum(tl.maximum(u, -65504.0), 65504.0)
        u = tl.where(u < 0.0, tl.minimum(u, -5.960464477539063e-08), u)
    return u


# --------------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------------


def _configs() -> list[triton.Config]:
    if _interpreting():
        return [triton.Config({"BLOCK": 256}, num_warps=4)]
    return [
        triton.Config({"BLOCK": 512}, num_warps=4),
        triton.Config({"BLOCK": 1024}, num_warps=4),
        triton.Config({"BLOCK": 1024}, num_warps=8),
        triton.Config({"BLOCK": 2048}, num_warps=8),
    ]


@triton.autotune(configs=_configs(), key=["N", "OUTPUT_MODE", "SAVE_MODE"])
@triton.jit
def _neuron_forward_kernel(
    x_ptr,
    out_ptr,
    saved_ptr,
    v_final_ptr,
    v_init_ptr,
    thresh_ptr,
    bias_ptr,
    N,
    T,
    C,
    INNER,
    thresh_value,
    v_init_value,
    beta,
    leak,
    gain,
    v_reset,
    OUTPUT_MODE: tl.constexpr,  # 0 spike, 1 θ·spike, 2 uint8 spike
    SAVE_MODE: tl.constexpr,  # 0 nothing, 1 fp32, 2 bf16, 3 fp16
    THRESH_MODE: tl.constexpr,  # 0 scalar argument, 1 one value in memory, 2 per channel
    V_INIT_MODE: tl.constexpr,  # 0 scalar argument, 1 tensor [N], 2 θ/2
    RESET_MODE: tl.constexpr,  # 0 soft, 1 hard, 2 subtract
    HAS_BIAS: tl.constexpr,
    INDEX_64: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    if INDEX_64:
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    if THRESH_MODE == 2 or HAS_BIAS:
        chan = (offs // INNER) % C
    if THRESH_MODE == 0:
        theta = thresh_value
    elif THRESH_MODE == 1:
        theta = tl.load(thresh_ptr).to(tl.float32)
    else:
        theta = tl.load(thresh_ptr + chan, mask=mask, other=1.0).to(tl.float32)
    if V_INIT_MODE == 0:
        v = tl.zeros([BLOCK], tl.float32) + v_init_value
    elif V_INIT_MODE == 1:
        v = tl.load(v_init_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        v = tl.zeros([BLOCK], tl.float32) + theta * 0.5

    # Pointers are 64-bit, so stepping by N is safe even when T·N exceeds 2**31.
    x_ptrs = x_ptr + offs
    out_ptrs = out_ptr + offs
    saved_ptrs = saved_ptr + offs
    x_next = tl.load(x_ptrs, mask=mask, other=0.0)
    pending = tl.zeros([BLOCK], tl.float32)  # θ·s_{t-1}, taken off after the decay (subtract reset)
    for t in range(T):
        x = x_next.to(tl.float32)
        x_ptrs += N
        x_next = tl.load(x_ptrs, mask=mask & (t + 1 < T), other=0.0)
        # The bias comes off before the input goes on: u = (v - b_t) + x_t, the floating-point
        # order of the official FTBC IF (the other order flips spikes by rounding).
        h = beta * v + leak
        if HAS_BIAS:
            h = h - tl.load(bias_ptr + t * C + chan, mask=mask, other=0.0)
        h = h + gain * x
        if RESET_MODE == 2:
            h = h - pending
        u = h - theta
        if RESET_MODE == 2:
            spike = u > 0.0
        else:
            spike = u >= 0.0
        if RESET_MODE == 1:
            v = tl.where(spike, v_reset, h)
        elif RESET_MODE == 0:
            v = tl.where(spike, u, h)
        else:
            v = h
            pending = tl.where(spike, theta, 0.0)
        if OUTPUT_MODE == 1:
            out = tl.where(spike, theta, 0.0)
        elif OUTPUT_MODE == 2:
            out = spike.to(tl.uint8)
        else:
            out = tl.where(spike, 1.0, 0.0)
        tl.store(out_ptrs, out.to(out_ptr.dtype.element_ty), mask=mask)
        if SAVE_MODE != 0:
            tl.store(saved_ptrs, _sign_safe(u, SAVE_MODE).to(saved_ptr.dtype.element_ty), mask=mask)
        out_ptrs += N
        saved_ptrs += N
    tl.store(v_final_ptr + offs, v, mask=mask)


@triton.autotune(configs=_configs(), key=["N", "SURROGATE", "Q"])
@triton.jit
def _neuron_backward_kernel(
    grad_out_ptr,
    saved_ptr,
    grad_v_final_ptr,
    grad_x_ptr,
    grad_v_init_ptr,
    thresh_ptr,
    N,
    T,
    C,
    INNER,
    last_step,
    thresh_value,
    beta,
    gain,
    v_reset,
    alpha,
    delta,
    seed,
    OUTPUT_SCALED: tl.constexpr,
    THRESH_MODE: tl.constexpr,
    RESET_MODE: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    SURROGATE: tl.constexpr,
    DIST: tl.constexpr,
    Q: tl.constexpr,
    HAS_GRAD_V_FINAL: tl.constexpr,
    WRITE_GRAD_V_INIT: tl.constexpr,
    INDEX_64: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    if INDEX_64:
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    if THRESH_MODE == 0:
        theta = thresh_value
    elif THRESH_MODE == 1:
        theta = tl.load(thresh_ptr).to(tl.float32)
    else:
        chan = (offs // INNER) % C
        theta = tl.load(thresh_ptr + chan, mask=mask, other=1.0).to(tl.float32)
    if SURROGATE == 6:
        if INDEX_64:
            rng_lo = (offs & 0xFFFFFFFF).to(tl.uint32)
            rng_hi = (offs >> 32).to(tl.uint32)
        else:
            rng_lo = offs.to(tl.uint32)
            rng_hi = rng_lo * 0
    if HAS_GRAD_V_FINAL:
        gv = tl.load(grad_v_final_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        gv = tl.zeros([BLOCK], tl.float32)

    go_ptrs = grad_out_ptr + last_step + offs
    saved_ptrs = saved_ptr + last_step + offs
    gx_ptrs = grad_x_ptr + last_step + offs
    go_next = tl.load(go_ptrs, mask=mask, other=0.0)
    u_next = tl.load(saved_ptrs, mask=mask, other=0.0)
    gh_later = tl.zeros([BLOCK], tl.float32)  # ∂L/∂h_{t+1}: the subtract reset of s_t lands there
    for i in range(T):
        go = go_next.to(tl.float32)
        u = u_next.to(tl.float32)
        go_ptrs -= N
        saved_ptrs -= N
        more = mask & (i + 1 < T)
        go_next = tl.load(go_ptrs, mask=more, other=0.0)
        u_next = tl.load(saved_ptrs, mask=more, other=0.0)

        if SURROGATE == 6:
            sg = _localzo_gain(u, seed, T - 1 - i, rng_lo, rng_hi, delta, Q, DIST)
        else:
            sg = _surrogate_grad(u, alpha, SURROGATE)
        if OUTPUT_SCALED:
            gs = go * theta
        else:
            gs = go
        if not DETACH_RESET:
            if RESET_MODE == 1:
                gs += gv * (v_reset - (u + theta))
            elif RESET_MODE == 0:
                gs -= gv * theta
            else:
                gs -= gh_later * theta
        if RESET_MODE == 1:
            gh = gs * sg + tl.where(u >= 0.0, 0.0, gv)
        else:
            gh = gs * sg + gv
        tl.store(gx_ptrs, (gain * gh).to(grad_x_ptr.dtype.element_ty), mask=mask)
        gx_ptrs -= N
        gv = beta * gh
        if RESET_MODE == 2:
            gh_later = gh
    if WRITE_GRAD_V_INIT:
        tl.store(grad_v_init_ptr + offs, gv, mask=mask)


# --------------------------------------------------------------------------------------------------
# Options, checked once before anything runs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NeuronOptions:
    """Scalar options of one call; tensors (threshold, bias, v_init) travel separately."""

    beta: float
    leak: float  # (1-β)·v_reset term added every step (0 for IF)
    gain: float  # γ, the weight of x_t
    reset: str  # "soft", "hard" or "subtract"
    v_reset: float
    detach_reset: bool
    output: str
    surrogate: str
    alpha: float
    distribution: str
    delta: float
    q: int
    seed: int
    save_dtype: torch.dtype
    threshold: float  # used when no threshold tensor is given
    v_init: Optional[float]  # scalar v_init; None with no tensor means θ/2


def _f32(value: float) -> float:
    # Both backends see the same fp32-rounded scalars, so their spikes agree bit for bit.
    return struct.unpack("f", struct.pack("f", float(value)))[0]


def _finite_scalar(name: str, value, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name}: must be positive, got {value}")
    try:
        rounded = _f32(value)
    except OverflowError:
        rounded = math.inf
    if not math.isfinite(rounded):
        raise ValueError(f"{name}: {value} is outside the float32 range (|value| < 3.4e38)")
    return rounded


def _choice(name: str, value, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {sorted(allowed)}, got {value!r}")
    return value


def _save_dtype(value) -> torch.dtype:
    if isinstance(value, torch.dtype):
        if value not in _SAVE_ID:
            raise ValueError(f"save_dtype: expected float32, bfloat16 or float16, got {value}")
        return value
    return _SAVE_DTYPES[_choice("save_dtype", value, _SAVE_DTYPES)]


def _check_x(x) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x: expected a tensor [T, ...], got {type(x).__name__}")
    if x.device.type not in ("cpu", "cuda"):
        raise ValueError(f"x: tensors on {x.device.type} are not supported; expected a cpu or cuda tensor")
    if x.dtype not in _IO_DTYPES:
        raise ValueError(f"x: unsupported dtype {x.dtype}; expected float32, float16 or bfloat16")
    if x.dim() < 2:
        raise ValueError(f"x: expected [T, ...] with at least one neuron dimension, got shape {list(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("x: T = 0 time steps; need at least one")


def _channels(x: torch.Tensor, name: str) -> int:
    if x.dim() < 3:
        raise ValueError(
            f"{name}: per-channel values need x of shape [T, B, C, ...] (channel = dim 2), got {list(x.shape)}"
        )
    return x.shape[2]


def _check_param_tensor(name: str, t: torch.Tensor, x: torch.Tensor) -> None:
    if t.device != x.device:
        raise ValueError(f"{name}: on {t.device}, but x is on {x.device}")
    if not t.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {t.dtype}")
    if t.requires_grad and torch.is_grad_enabled():
        raise ValueError(
            f"{name}: requires grad, but the neuron treats it as a constant; pass {name}.detach()"
        )


# Parameter tensors found finite, by identity and version. A module passes the same threshold, a
# slice of the same bias and its previous chunk's v_final on every call, so on CUDA the finiteness
# check — a host sync — runs once per parameter version instead of once per call. A view is known
# by its base tensor (alive, the same object) and its place in it; views share the base's version.
_KNOWN_FINITE: dict[tuple, tuple[weakref.ref, int]] = {}


def _finite_key(t: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    base = t._base if t._base is not None else t
    return base, (id(base), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)


def _known_finite(t: torch.Tensor) -> bool:
    base, key = _finite_key(t)
    entry = _KNOWN_FINITE.get(key)
    return entry is not None and entry[0]() is base and entry[1] == t._version


def _remember_finite(t: torch.Tensor) -> None:
    base, key = _finite_key(t)
    _KNOWN_FINITE[key] = (weakref.ref(base, lambda _ref: _KNOWN_FINITE.pop(key, None)), t._version)


def _check_finite(checks: list[tuple[str, torch.Tensor, torch.Tensor, bool]]) -> None:
    """Refuse non-finite (or, where ``positive``, non-positive) values in parameter tensors.

    ``checks``: (name, the caller's tensor, its prepared copy, positive). CPU tensors are checked on
    every call; CUDA tensors once per version (one sync for all of them), and never while a CUDA
    graph is being captured, where a sync is not allowed.
    """
    pending = [c for c in checks if not (c[1].is_cuda and _known_finite(c[1]))]
    if not pending:
        return
    if pending[0][2].is_cuda and torch.cuda.is_current_stream_capturing():
        return
    flags = torch.stack(
        [(torch.isfinite(t) & (t > 0)).all() if positive else torch.isfinite(t).all() for _, _, t, positive in pending]
    ).tolist()
    for (name, _, _, positive), ok in zip(pending, flags):
        if not ok:
            why = "finite and positive" if positive else "finite"
            raise ValueError(f"{name}: every value must be {why}")
    for _, given, _, _ in pending:
        if given.is_cuda:
            _remember_finite(given)


def _resolve_backend(backend: str, x: torch.Tensor) -> str:
    _choice("backend", backend, ("auto", "triton", "torch"))
    if backend == "auto":
        return "triton" if x.is_cuda else "torch"
    if backend == "triton" and not x.is_cuda and not _interpreting():
        raise ValueError(
            f"x: the triton backend needs a CUDA tensor, got one on {x.device}; "
            "use backend='torch' (or set TRITON_INTERPRET=1 before importing triton)"
        )
    return backend


def _prepare(
    x: torch.Tensor,
    threshold,
    bias,
    v_init,
    *,
    reset: str,
    v_reset,
    output: str,
    surrogate: str,
    alpha,
    detach_reset: bool,
    distribution: str,
    delta,
    q,
    seed,
    save_dtype,
    beta: float,
    leak: float,
    gain: float,
    default_v_init_half: bool,
    check_tensors: bool = True,
) -> tuple[NeuronOptions, Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Validate everything that can be checked before a launch; return options and fp32 tensors.
    ``check_tensors=False`` skips the data-dependent finiteness check (under torch.compile)."""
    _check_x(x)
    _choice("reset", reset, _RESET_ID)
    _choice("output", output, _OUTPUT_ID)
    _choice("surrogate", surrogate, SURROGATES)
    _choice("distribution", distribution, DISTRIBUTIONS)
    v_reset = _finite_scalar("v_reset", v_reset)
    if alpha is None:
        alpha = DEFAULT_ALPHA.get(surrogate, 1.0)
    alpha = _finite_scalar("alpha", alpha, positive=True)
    delta = _finite_scalar("delta", delta, positive=True)
    if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 64:
        raise ValueError(f"q: expected an integer number of samples in 1..64, got {q!r}")
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item()) if surrogate == "localzo" else 0
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < _MAX_SEED:
        raise ValueError(f"seed: expected an integer in [0, 2**63), got {seed!r}")
    save = _save_dtype(save_dtype)
    if output == "uint8" and x.requires_grad and torch.is_grad_enabled():
        raise ValueError("output: uint8 spikes are not differentiable; use output='spike' when training")

    to_check = []
    thresh_t = None
    thresh_value = 1.0
    if isinstance(threshold, torch.Tensor):
        _check_param_tensor("threshold", threshold, x)
        if threshold.numel() != 1:
            channels = _channels(x, "threshold")
            if threshold.dim() != 1 or threshold.numel() != channels:
                raise ValueError(
                    f"threshold: expected a scalar or [C] = [{channels}] per-channel tensor, got shape {list(threshold.shape)}"
                )
        thresh_t = threshold.detach().reshape(-1).to(torch.float32).contiguous()
        to_check.append(("threshold", threshold, thresh_t, True))
    else:
        thresh_value = _finite_scalar("threshold", threshold, positive=True)

    bias_t = None
    if bias is not None:
        if not isinstance(bias, torch.Tensor):
            raise ValueError(f"bias: expected a tensor [T, C], got {type(bias).__name__}")
        _check_param_tensor("bias", bias, x)
        channels = _channels(x, "bias")
        if tuple(bias.shape) != (x.shape[0], channels):
            raise ValueError(
                f"bias: expected shape [T, C] = [{x.shape[0]}, {channels}], got {list(bias.shape)}"
            )
        bias_t = bias.detach().to(torch.float32).contiguous()
        to_check.append(("bias", bias, bias_t, False))

    v_init_t = None
    v_init_value = None
    if isinstance(v_init, torch.Tensor):
        if v_init.device != x.device:
            raise ValueError(f"v_init: on {v_init.device}, but x is on {x.device}")
        if not v_init.is_floating_point():
            raise ValueError(f"v_init: expected a floating-point tensor, got {v_init.dtype}")
        try:
            ok = torch.broadcast_shapes(v_init.shape, x.shape[1:]) == x.shape[1:]
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(
                f"v_init: shape {list(v_init.shape)} does not broadcast to one step of x, {list(x.shape[1:])}"
            )
        v_init_t = v_init
        to_check.append(("v_init", v_init, v_init.detach(), False))
    elif v_init is not None:
        v_init_value = _finite_scalar("v_init", v_init)
    elif not default_v_init_half:
        v_init_value = v_reset

    if check_tensors:
        _check_finite(to_check)

    opts = NeuronOptions(
        beta=_f32(beta),
        leak=_f32(leak),
        gain=_f32(gain),
        reset=reset,
        v_reset=v_reset,
        detach_reset=bool(detach_reset),
        output=output,
        surrogate=surrogate,
        alpha=alpha,
        distribution=distribution,
        delta=delta,
        q=q,
        seed=seed,
        save_dtype=save,
        threshold=thresh_value,
        v_init=v_init_value,
    )
    return opts, thresh_t, bias_t, v_init_t


# --------------------------------------------------------------------------------------------------
# Host functions: shapes in, launches, shapes out
# --------------------------------------------------------------------------------------------------


def _layout(x: torch.Tensor) -> tuple[int, int, int, int]:
    """(T, N, C, INNER): neurons per step and how a flat neuron index maps to its channel."""
    T = x.shape[0]
    N = x[0].numel()
    if x.dim() >= 3:
        C = x.shape[2]
        inner = math.prod(x.shape[3:])
    else:
        C, inner = 1, 1
    return T, N, max(C, 1), max(inner, 1)


def _out_dtype(opts: NeuronOptions, x: torch.Tensor) -> torch.dtype:
    return torch.uint8 if opts.output == "uint8" else x.dtype


def _thresh_mode(thresh_t: Optional[torch.Tensor]) -> int:
    if thresh_t is None:
        return 0
    return 1 if thresh_t.numel() == 1 else 2


def _new_buffer(shape, dtype: torch.dtype, device) -> torch.Tensor:
    """Every buffer a kernel writes comes from here (tests swap in a poisoned allocator)."""
    return torch.empty(shape, dtype=dtype, device=device)


def _index_64(N: int) -> bool:
    return N + 4096 >= 2**31


def neuron_forward(
    x: torch.Tensor,
    opts: NeuronOptions,
    thresh_t: Optional[torch.Tensor],
    bias_t: Optional[torch.Tensor],
    v_init_t: Optional[torch.Tensor],
    save: bool,
    force_index_64: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Launch the forward scan. Returns (out[T, ...], v_final[...] fp32, saved u[T, N] or None)."""
    T, N, C, inner = _layout(x)
    xc = x.contiguous()
    out = _new_buffer(x.shape, _out_dtype(opts, x), x.device)
    v_final = _new_buffer(x.shape[1:], torch.float32, x.device)
    saved = _new_buffer((T, N), opts.save_dtype, x.device) if save else None
    if N == 0:
        return out, v_final, saved
    v0 = None
    if v_init_t is not None:
        v0 = v_init_t.detach().to(torch.float32).expand(x.shape[1:]).contiguous()
    if v0 is not None:
        v_init_mode = 1
    elif opts.v_init is None:
        v_init_mode = 2
    else:
        v_init_mode = 0
    dummy = v_final
    grid = lambda meta: (triton.cdiv(N, meta["BLOCK"]),)  # noqa: E731
    _neuron_forward_kernel[grid](
        xc,
        out,
        saved if save else dummy,
        v_final,
        v0 if v0 is not None else dummy,
        thresh_t if thresh_t is not None else dummy,
        bias_t if bias_t is not None else dummy,
        N,
        T,
        C,
        inner,
        opts.threshold,
        opts.v_init if opts.v_init is not None else 0.0,
        opts.beta,
        opts.leak,
        opts.gain,
        opts.v_reset,
        OUTPUT_MODE=_OUTPUT_ID[opts.output],
        SAVE_MODE=_SAVE_ID[opts.save_dtype] if save else 0,
        THRESH_MODE=_thresh_mode(thresh_t),
        V_INIT_MODE=v_init_mode,
        RESET_MODE=_RESET_ID[opts.reset],
        HAS_BIAS=bias_t is not None,
        INDEX_64=force_index_64 or _index_64(N),
    )
    return out, v_final, saved


def neuron_backward(
    grad_out: Optional[torch.Tensor],
    grad_v_final: Optional[torch.Tensor],
    saved: torch.Tensor,
    opts: NeuronOptions,
    thresh_t: Optional[torch.Tensor],
    x_shape: torch.Size,
    x_dtype: torch.dtype,
    want_grad_v_init: bool,
    force_index_64: bool = False,
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Launch the reverse scan. Returns (grad_x[x_shape], grad_v_init[N] fp32 or None)."""
    T, N = saved.shape
    C = x_shape[2] if len(x_shape) >= 3 else 1
    inner = math.prod(x_shape[3:]) if len(x_shape) >= 3 else 1
    if grad_out is None:
        grad_out = torch.zeros(x_shape, dtype=x_dtype, device=saved.device)
    grad_out = grad_out.contiguous()
    grad_x = _new_buffer(x_shape, x_dtype, saved.device)
    grad_v0 = _new_buffer(N, torch.float32, saved.device) if want_grad_v_init else None
    if N == 0:
        return grad_x, grad_v0
    gvf = grad_v_final.contiguous() if grad_v_final is not None else None
    dummy = saved
    grid = lambda meta: (triton.cdiv(N, meta["BLOCK"]),)  # noqa: E731
    _neuron_backward_kernel[grid](
        grad_out,
        saved,
        gvf if gvf is not None else dummy,
        grad_x,
        grad_v0 if grad_v0 is not None else dummy,
        thresh_t if thresh_t is not None else dummy,
        N,
        T,
        max(C, 1),
        max(inner, 1),
        (T - 1) * N,
        opts.threshold,
        opts.beta,
        opts.gain,
        opts.v_reset,
        opts.alpha,
        opts.delta,
        opts.seed,
        OUTPUT_SCALED=opts.output == "scaled",
        THRESH_MODE=_thresh_mode(thresh_t),
        RESET_MODE=_RESET_ID[opts.reset],
        DETACH_RESET=opts.detach_reset,
        SURROGATE=_SURROGATE_ID[opts.surrogate],
        DIST=_DISTRIBUTION_ID[opts.distribution],
        Q=opts.q,
        HAS_GRAD_V_FINAL=gvf is not None,
        WRITE_GRAD_V_INIT=want_grad_v_init,
        INDEX_64=force_index_64 or _index_64(N),
    )
    return grad_x, grad_v0


class MultiStepNeuronFunction(torch.autograd.Function):
    """Fused forward/backward scans; differentiable w.r.t. ``x`` and a tensor ``v_init``."""

    @staticmethod
    def forward(ctx, x, v_init_t, opts, thresh_t, bias_t, force_index_64=False):
        out, v_final, saved = neuron_forward(x, opts, thresh_t, bias_t, v_init_t, True, force_index_64)
        ctx.save_for_backward(saved)
        ctx.opts = opts
        ctx.thresh_t = thresh_t
        ctx.x_shape = x.shape
        ctx.x_dtype = x.dtype
        ctx.v_init_shape = None if v_init_t is None else v_init_t.shape
        ctx.v_init_dtype = None if v_init_t is None else v_init_t.dtype
        ctx.force_index_64 = force_index_64
        ctx.set_materialize_grads(False)
        return out, v_final

    @staticmethod
    def backward(ctx, grad_out, grad_v_final):
        (saved,) = ctx.saved_tensors
        want_v0 = ctx.needs_input_grad[1]
        grad_x, grad_v0 = neuron_backward(
            grad_out,
            grad_v_final,
            saved,
            ctx.opts,
            ctx.thresh_t,
            ctx.x_shape,
            ctx.x_dtype,
            want_v0,
            ctx.force_index_64,
        )
        if grad_v0 is not None:
            grad_v0 = grad_v0.view(ctx.x_shape[1:]).sum_to_size(ctx.v_init_shape).to(ctx.v_init_dtype)
        return grad_x, grad_v0, None, None, None, None


# --------------------------------------------------------------------------------------------------
# PyTorch reference: the test oracle and the CPU path
# --------------------------------------------------------------------------------------------------

_M32 = 0xFFFFFFFF
_PHILOX_KEY_A, _PHILOX_KEY_B = 0x9E3779B9, 0xBB67AE85
_PHILOX_ROUND_A, _PHILOX_ROUND_B = 0xD2511F53, 0xCD9E8D57


def _mulhilo32(a: int, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # The 32×32→64-bit product: int64 multiplication wraps modulo 2⁶⁴ on every torch backend, so
    # its 64 bits are the unsigned product's; an arithmetic shift then a mask reads the high word.
    # (One multiply instead of a 16-bit split: Philox is most of the CPU LocalZO forward.)
    # test_reference_philox_is_bit_exact checks this against tl.philox.
    p = a * b
    return (p >> 32) & _M32, p & _M32


def philox4x32(seed: int, c0, c1, c2, c3, rounds: int = 10) -> tuple[torch.Tensor, ...]:
    """Philox4x32-10 as ``tl.philox`` computes it; counters and results are int64 in [0, 2³²)."""
    k0, k1 = seed & _M32, (seed >> 32) & _M32
    device = next((c.device for c in (c0, c1, c2, c3) if isinstance(c, torch.Tensor)), None)
    c0, c1, c2, c3 = (torch.as_tensor(c, dtype=torch.int64, device=device) & _M32 for c in (c0, c1, c2, c3))
    c0, c1, c2, c3 = torch.broadcast_tensors(c0, c1, c2, c3)
    for _ in range(rounds):
        hi_b, lo_b = _mulhilo32(_PHILOX_ROUND_B, c2)
        hi_a, lo_a = _mulhilo32(_PHILOX_ROUND_A, c0)
        c0, c1, c2, c3 = hi_b ^ c1 ^ k0, lo_b, hi_a ^ c3 ^ k1, lo_a
        k0 = (k0 + _PHILOX_KEY_A) & _M32
        k1 = (k1 + _PHILOX_KEY_B) & _M32
    return c0, c1, c2, c3


_PHILOX_CHUNK = 1 << 16


def _uniform_open_ref(r: torch.Tensor) -> torch.Tensor:
    return ((r >> 9).to(torch.float32) * 2.0 + 1.0) * 5.9604644775390625e-08


def localzo_abs_z(seed: int, t: Union[int, torch.Tensor], index: torch.Tensor, q: int, distribution: str) -> torch.Tensor:
    """|z_k| for neurons ``index`` (flat index within a step) at step ``t`` (one, or one per neuron):
    shape [q, *index.shape]."""
    index = index.to(torch.int64)
    samples = []
    for g in range((q + 3) // 4):
        r = philox4x32(seed, index & _M32, index >> 32, t, g)
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
    u: torch.Tensor, seed: int, t: Union[int, torch.Tensor], index: torch.Tensor, delta: float, q: int, distribution: str
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


def _surrogate_grad_reference(u: torch.Tensor, surrogate: str, alpha: float) -> torch.Tensor:
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


class _Heaviside(torch.autograd.Function):
    """s = H(u) forward; the chosen surrogate (or LocalZO with the kernel's z) backward."""

    @staticmethod
    def forward(ctx, u, opts: NeuronOptions, t: int):
        ctx.save_for_backward(u)
        ctx.opts, ctx.t = opts, t
        return ((u > 0) if opts.reset == "subtract" else (u >= 0)).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        opts = ctx.opts
        if opts.surrogate == "localzo":
            index = torch.arange(u.numel(), device=u.device).view(u.shape)
            sg = localzo_gain_reference(u, opts.seed, ctx.t, index, opts.delta, opts.q, opts.distribution)
        else:
            sg = _surrogate_grad_reference(u, opts.surrogate, opts.alpha)
        return grad * sg, None, None


def _per_channel_view(p: torch.Tensor, step_shape: torch.Size) -> torch.Tensor:
    """A [C] (or one-value) parameter shaped to broadcast over one step [B, C, ...]."""
    if p.numel() == 1:
        return p.reshape(())
    return p.reshape((-1,) + (1,) * (len(step_shape) - 2))


def neuron_reference(
    x: torch.Tensor,
    opts: NeuronOptions,
    thresh_t: Optional[torch.Tensor],
    bias_t: Optional[torch.Tensor],
    v_init_t: Optional[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain PyTorch time loop with the kernels' semantics; autograd differentiates it."""
    step_shape = x.shape[1:]
    theta = opts.threshold if thresh_t is None else _per_channel_view(thresh_t, step_shape)
    if v_init_t is not None:
        v = v_init_t.to(torch.float32).expand(step_shape)
    elif opts.v_init is None:
        v = torch.zeros(step_shape, dtype=torch.float32, device=x.device) + torch.as_tensor(theta) * 0.5
    else:
        v = torch.full(step_shape, opts.v_init, dtype=torch.float32, device=x.device)
    outs = []
    pending = None  # θ·s_{t-1} of the subtract reset
    for t in range(x.shape[0]):
        # Same order as the kernel's (β·v + leak - b) + γ·x, without the identity ops of IF
        # (β = γ = 1, leak = 0): this loop is the CPU path of every converted network.
        h = v if opts.beta == 1.0 else opts.beta * v
        if opts.leak != 0.0:
            h = h + opts.leak
        if bias_t is not None:
            h = h - _per_channel_view(bias_t[t], step_shape)
        x_t = x[t].to(torch.float32)
        h = h + (x_t if opts.gain == 1.0 else opts.gain * x_t)
        if pending is not None:
            h = h - pending
        s = _Heaviside.apply(h - theta, opts, t)
        s_reset = s.detach() if opts.detach_reset else s
        if opts.reset == "hard":
            v = h * (1.0 - s_reset) + opts.v_reset * s_reset
        elif opts.reset == "soft":
            v = h - theta * s_reset
        else:
            v = h
            pending = theta * s_reset
        if opts.output == "uint8":
            outs.append(s.detach().to(torch.uint8))
        elif opts.output == "scaled":
            outs.append((theta * s).to(x.dtype))
        else:
            outs.append(s.to(x.dtype))
    return torch.stack(outs), v


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def multistep_neuron(
    x: torch.Tensor,
    *,
    beta: float,
    leak: float,
    gain: float,
    threshold: Union[float, torch.Tensor] = 1.0,
    v_init: Union[None, float, torch.Tensor] = None,
    default_v_init_half: bool = False,
    bias: Optional[torch.Tensor] = None,
    reset: str = "soft",
    v_reset: float = 0.0,
    output: str = "spike",
    surrogate: str = "sigmoid",
    alpha: Optional[float] = None,
    detach_reset: bool = False,
    distribution: str = "normal",
    delta: float = 0.05,
    q: int = 1,
    seed: Optional[int] = None,
    save_dtype: Union[str, torch.dtype] = "bf16",
    backend: str = "auto",
    _force_index_64: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The generic neuron ``h = β·v + leak + gain·x - b``; :func:`multistep_if` / ``_lif`` set β, leak, gain."""
    opts, thresh_t, bias_t, v_init_t = _prepare(
        x,
        threshold,
        bias,
        v_init,
        reset=reset,
        v_reset=v_reset,
        output=output,
        surrogate=surrogate,
        alpha=alpha,
        detach_reset=detach_reset,
        distribution=distribution,
        delta=delta,
        q=q,
        seed=seed,
        save_dtype=save_dtype,
        beta=beta,
        leak=leak,
        gain=gain,
        default_v_init_half=default_v_init_half,
    )
    if _resolve_backend(backend, x) == "torch":
        return neuron_reference(x, opts, thresh_t, bias_t, v_init_t)
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or (v_init_t is not None and v_init_t.requires_grad)
    )
    if not needs_grad:
        out, v_final, _ = neuron_forward(x, opts, thresh_t, bias_t, v_init_t, False, _force_index_64)
    else:
        out, v_final = MultiStepNeuronFunction.apply(x, v_init_t, opts, thresh_t, bias_t, _force_index_64)
    if v_final.is_cuda:
        # Passed back as the next chunk's v_init, it is as finite as this call's x (data, unchecked):
        # checking it again would cost a sync per chunk.
        _remember_finite(v_final)
    return out, v_final


def multistep_if(
    x: torch.Tensor,
    *,
    threshold: Union[float, torch.Tensor] = 1.0,
    v_init: Union[None, float, torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
    reset: str = "soft",
    v_reset: float = 0.0,
    output: str = "spike",
    surrogate: str = "sigmoid",
    alpha: Optional[float] = None,
    detach_reset: bool = False,
    distribution: str = "normal",
    delta: float = 0.05,
    q: int = 1,
    seed: Optional[int] = None,
    save_dtype: Union[str, torch.dtype] = "bf16",
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate-and-fire over ``x[T, ...]``: ``u = v + x_t - b_t[c]``; returns ``(spikes, v_final)``.

    ``v_init`` defaults to θ/2 (per channel when θ is). ``output``: ``"spike"`` (0/1 in x's dtype),
    ``"scaled"`` (θ·s, the converted-ANN activation) or ``"uint8"`` (inference only). ``v_final`` is
    fp32. Gradients flow to ``x`` and a tensor ``v_init``; threshold and bias are constants.
    ``reset``: ``"soft"`` (θ off at the spike), ``"hard"`` (to ``v_reset``) or ``"subtract"`` (θ off
    after the next decay, firing strictly above θ: SparseProp's and snntorch's LIF; module docstring).
    ``surrogate="localzo"`` uses ``distribution``, ``delta``, ``q`` and ``seed`` (drawn from torch's
    generator when None). ``backend="auto"`` runs Triton on CUDA tensors and the PyTorch reference
    otherwise.
    """
    return multistep_neuron(
        x,
        beta=1.0,
        leak=0.0,
        gain=1.0,
        threshold=threshold,
        v_init=v_init,
        default_v_init_half=True,
        bias=bias,
        reset=reset,
        v_reset=v_reset,
        output=output,
        surrogate=surrogate,
        alpha=alpha,
        detach_reset=detach_reset,
        distribution=distribution,
        delta=delta,
        q=q,
        seed=seed,
        save_dtype=save_dtype,
        backend=backend,
    )


def multistep_lif(
    x: torch.Tensor,
    *,
    tau: Optional[float] = None,
    beta: Optional[float] = None,
    decay_input: bool = True,
    threshold: Union[float, torch.Tensor] = 1.0,
    v_init: Union[None, float, torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
    reset: str = "hard",
    v_reset: float = 0.0,
    output: str = "spike",
    surrogate: str = "sigmoid",
    alpha: Optional[float] = None,
    detach_reset: bool = False,
    distribution: str = "normal",
    delta: float = 0.05,
    q: int = 1,
    seed: Optional[int] = None,
    save_dtype: Union[str, torch.dtype] = "bf16",
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Leaky integrate-and-fire over ``x[T, ...]``; returns ``(spikes, v_final)``.

    ``h = v + (x - (v - v_reset))/τ`` with ``decay_input`` (SpikingJelly's default), else
    ``h = v - (v - v_reset)/τ + x``. ``beta`` gives the decay ``β = 1 - 1/τ`` directly (e.g.
    ``exp(-dt/τ_mem)``); pass either ``tau`` (default 2) or ``beta``. The membrane leaks towards
    ``v_reset``, which is also the hard-reset value and the default ``v_init``. Other options as in
    :func:`multistep_if`; the default reset is hard, as in SpikingJelly's ``LIFNode``.
    """
    if tau is not None and beta is not None:
        raise ValueError("tau: give tau or beta, not both")
    if beta is None:
        tau = _finite_scalar("tau", 2.0 if tau is None else tau)
        if tau < 1.0:
            raise ValueError(f"tau: must be >= 1 (a decay 1 - 1/tau in [0, 1)), got {tau}")
        beta = 1.0 - 1.0 / tau
    else:
        beta = _finite_scalar("beta", beta)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta: must lie in [0, 1], got {beta}")
    v_reset_value = _finite_scalar("v_reset", v_reset)
    decay = 1.0 - beta
    gain = decay if decay_input else 1.0
    return multistep_neuron(
        x,
        beta=beta,
        leak=decay * v_reset_value,
        gain=gain,
        threshold=threshold,
        v_init=v_init,
        bias=bias,
        reset=reset,
        v_reset=v_reset,
        output=output,
        surrogate=surrogate,
        alpha=alpha,
        detach_reset=detach_reset,
        distribution=distribution,
        delta=delta,
        q=q,
        seed=seed,
        save_dtype=save_dtype,
        backend=backend,
    )


def traffic_bytes(
    T: int,
    N: int,
    x_dtype: torch.dtype,
    *,
    output: str = "spike",
    save_dtype: Optional[torch.dtype] = torch.bfloat16,
    backward: bool = False,
) -> int:
    """DRAM bytes the kernels move for T×N neurons (v_init scalar, no v_final gradient).

    Forward: x, out, v_final and, when ``save_dtype`` is given (training), u. Backward (added when
    ``backward``): grad_out, u and grad_x.
    """
    x_b = torch.empty((), dtype=x_dtype).element_size()
    out_b = 1 if output == "uint8" else x_b
    save_b = 0 if save_dtype is None else torch.empty((), dtype=save_dtype).element_size()
    total = T * N * (x_b + out_b + save_b) + 4 * N
    if backward:
        total += T * N * (out_b + save_b + x_b)
    return total
