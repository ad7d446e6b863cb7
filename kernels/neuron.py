"""Multi-step IF / LIF neurons: one launch runs the whole time loop forward, one runs it backward.

Semantics (docs/design.md §3), per neuron, time-major ``x[T, ...]``, channel = dim 2 of ``x``::

    h_t = (β·v_{t-1} + (1-β)·v_reset·[leak] - b_t[c]) + γ·x_t   # IF: β = γ = 1, no leak term
    h_t = (β·v_{t-1} + (1-β)·v_reset·[leak] + γ·x_t) - b_t[c]   # bias_order="after_input" (RTS code)
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

σ' is a dense surrogate of ``u`` (:mod:`kernels.surrogates`) or the LocalZO estimate, whose ``z`` are
regenerated from a counter-based Philox stream, never stored (:mod:`kernels.localzo`). The bytes the
kernels move are modelled by :func:`kernels.neuron_options.traffic_bytes`.
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import Optional, Union

import torch
import triton
import triton.language as tl

from .common import TunedLaunch, finite_scalar, interpreting, remember_finite, resolve_backend
from .localzo import DISTRIBUTIONS, localzo_abs_z, localzo_gain, localzo_gain_reference, philox4x32
from .neuron_options import (
    OUTPUT_SCALED,
    OUTPUT_UINT8,
    RESET_HARD,
    RESET_SOFT,
    RESET_SUBTRACT,
    SAVE_ID,
    NeuronCall,
    NeuronOptions,
    neuron_call,
    prepare,
    traffic_bytes,
    with_v_init,
)
from .neuron_reference import neuron_reference
from .surrogates import DEFAULT_ALPHA, LOCALZO, SURROGATES, surrogate_grad

__all__ = [
    "SURROGATES",
    "DISTRIBUTIONS",
    "DEFAULT_ALPHA",
    "multistep_if",
    "multistep_lif",
    "multistep_neuron",
    "run_neuron",
    "lif_options",
    "generic_options",
    "host_only",
    "NeuronOptions",
    "NeuronCall",
    "prepare",
    "neuron_reference",
    "neuron_forward",
    "neuron_backward",
    "MultiStepNeuronFunction",
    "localzo_abs_z",
    "localzo_gain_reference",
    "philox4x32",
    "traffic_bytes",
]

# Named values of the kernels' tl.constexpr switches; the host passes their .value.
_SAVE_NONE = tl.constexpr(0)  # inference: nothing saved; else a SAVE_ID
_SAVE_BF16 = tl.constexpr(SAVE_ID[torch.bfloat16])
_SAVE_FP16 = tl.constexpr(SAVE_ID[torch.float16])
_THRESH_SCALAR = tl.constexpr(0)  # a Python float argument
_THRESH_ONE = tl.constexpr(1)  # one value in memory
_THRESH_PER_CHANNEL = tl.constexpr(2)
_V_INIT_SCALAR = tl.constexpr(0)
_V_INIT_TENSOR = tl.constexpr(1)
_V_INIT_HALF = tl.constexpr(2)  # θ/2


# --------------------------------------------------------------------------------------------------
# Triton device functions
# --------------------------------------------------------------------------------------------------


@triton.jit
def _block(N, INDEX_64: tl.constexpr, BLOCK: tl.constexpr):
    """This program's BLOCK neuron indices (64-bit when a step has ~2**31 neurons) and their mask."""
    pid = tl.program_id(0)
    if INDEX_64:
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        offs = pid * BLOCK + tl.arange(0, BLOCK)
    return offs, offs < N


@triton.jit
def _threshold(thresh_ptr, thresh_value, offs, mask, C, INNER, THRESH_MODE: tl.constexpr):
    """θ of neurons ``offs``: the scalar argument, one value in memory, or per channel."""
    if THRESH_MODE == _THRESH_SCALAR:
        theta = thresh_value
    elif THRESH_MODE == _THRESH_ONE:
        theta = tl.load(thresh_ptr).to(tl.float32)
    else:
        chan = (offs // INNER) % C
        theta = tl.load(thresh_ptr + chan, mask=mask, other=1.0).to(tl.float32)
    return theta


@triton.jit
def _sign_safe(u, SAVE_MODE: tl.constexpr):
    """Round-trip u through the save dtype without flipping H(u): the spike is re-read as u >= 0."""
    if SAVE_MODE == _SAVE_BF16:
        # a negative bf16 underflow would come back as -0.0 >= 0; keep it at least one normal away
        u = tl.where(u < 0.0, tl.minimum(u, -1.1754943508222875e-38), u)
    elif SAVE_MODE == _SAVE_FP16:
        u = tl.minimum(tl.maximum(u, -65504.0), 65504.0)
        u = tl.where(u < 0.0, tl.minimum(u, -5.960464477539063e-08), u)
    return u


# --------------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------------


def _configs() -> list[triton.Config]:
    if interpreting():
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
    OUTPUT_MODE: tl.constexpr,  # OUTPUT_ID: spike, θ·spike (scaled), uint8 spike
    SAVE_MODE: tl.constexpr,  # _SAVE_NONE or SAVE_ID of fp32, bf16, fp16
    THRESH_MODE: tl.constexpr,  # _THRESH_SCALAR, _THRESH_ONE, _THRESH_PER_CHANNEL
    V_INIT_MODE: tl.constexpr,  # _V_INIT_SCALAR, _V_INIT_TENSOR [N], _V_INIT_HALF
    RESET_MODE: tl.constexpr,  # RESET_ID: soft, hard, subtract
    HAS_BIAS: tl.constexpr,
    BIAS_AFTER_INPUT: tl.constexpr,  # u = (v + x_t) - b_t, the order of the RTS code's SPIKE_layer
    INDEX_64: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs, mask = _block(N, INDEX_64, BLOCK)
    if HAS_BIAS:
        chan = (offs // INNER) % C
    theta = _threshold(thresh_ptr, thresh_value, offs, mask, C, INNER, THRESH_MODE)
    if V_INIT_MODE == _V_INIT_SCALAR:
        v = tl.zeros([BLOCK], tl.float32) + v_init_value
    elif V_INIT_MODE == _V_INIT_TENSOR:
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
        if BIAS_AFTER_INPUT:
            h = h + gain * x
            if HAS_BIAS:
                h = h - tl.load(bias_ptr + t * C + chan, mask=mask, other=0.0)
        else:
            if HAS_BIAS:
                h = h - tl.load(bias_ptr + t * C + chan, mask=mask, other=0.0)
            h = h + gain * x
        if RESET_MODE == RESET_SUBTRACT:
            h = h - pending
        u = h - theta
        if RESET_MODE == RESET_SUBTRACT:
            spike = u > 0.0
        else:
            spike = u >= 0.0
        if RESET_MODE == RESET_HARD:
            v = tl.where(spike, v_reset, h)
        elif RESET_MODE == RESET_SOFT:
            v = tl.where(spike, u, h)
        else:
            v = h
            pending = tl.where(spike, theta, 0.0)
        if OUTPUT_MODE == OUTPUT_SCALED:
            out = tl.where(spike, theta, 0.0)
        elif OUTPUT_MODE == OUTPUT_UINT8:
            out = spike.to(tl.uint8)
        else:
            out = tl.where(spike, 1.0, 0.0)
        tl.store(out_ptrs, out.to(out_ptr.dtype.element_ty), mask=mask)
        if SAVE_MODE != _SAVE_NONE:
            tl.store(saved_ptrs, _sign_safe(u, SAVE_MODE).to(saved_ptr.dtype.element_ty), mask=mask)
        out_ptrs += N
        saved_ptrs += N
    tl.store(v_final_ptr + offs, v, mask=mask)


# The backward holds more per neuron (a surrogate, or LocalZO's draws): 8 neurons a thread spilled
# registers on sm_90 (Triton 3.6 and 3.8; the compile check), so it keeps the tiles of at most 4.
@triton.autotune(configs=[c for c in _configs() if c.kwargs["BLOCK"] <= 128 * c.num_warps], key=["N", "SURROGATE", "Q"])
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
    offs, mask = _block(N, INDEX_64, BLOCK)
    theta = _threshold(thresh_ptr, thresh_value, offs, mask, C, INNER, THRESH_MODE)
    if SURROGATE == LOCALZO:
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

        if SURROGATE == LOCALZO:
            sg = localzo_gain(u, seed, T - 1 - i, rng_lo, rng_hi, delta, Q, DIST)
        else:
            sg = surrogate_grad(u, alpha, SURROGATE)
        if OUTPUT_SCALED:
            gs = go * theta
        else:
            gs = go
        if not DETACH_RESET:
            if RESET_MODE == RESET_HARD:
                gs += gv * (v_reset - (u + theta))
            elif RESET_MODE == RESET_SOFT:
                gs -= gv * theta
            else:
                gs -= gh_later * theta
        if RESET_MODE == RESET_HARD:
            gh = gs * sg + tl.where(u >= 0.0, 0.0, gv)
        else:
            gh = gs * sg + gv
        tl.store(gx_ptrs, (gain * gh).to(grad_x_ptr.dtype.element_ty), mask=mask)
        gx_ptrs -= N
        gv = beta * gh
        if RESET_MODE == RESET_SUBTRACT:
            gh_later = gh
    if WRITE_GRAD_V_INIT:
        tl.store(grad_v_init_ptr + offs, gv, mask=mask)


# --------------------------------------------------------------------------------------------------
# Host functions: shapes in, launches, shapes out
# --------------------------------------------------------------------------------------------------

_host_only = False  # True inside host_only(): every step of a call but the kernel launches


@contextlib.contextmanager
def host_only():
    """Within it, neuron calls do everything but launch their kernels (their outputs stay unwritten):
    the host side of a call (checks, allocation, autograd) timed alone, on any machine."""
    global _host_only
    before, _host_only = _host_only, True
    try:
        yield
    finally:
        _host_only = before


@functools.lru_cache(maxsize=1024)
def _layout(shape: torch.Size) -> tuple[int, int, int, int, bool]:
    """(T, N, C, INNER, INDEX_64) of ``x``'s shape: the neurons of a step, how a flat neuron index maps
    to its channel, and whether indices need 64 bits (~2**31 neurons a step). A layer sees the same
    few shapes, so this is worked out once per shape."""
    N = math.prod(shape[1:])
    C = shape[2] if len(shape) >= 3 else 1
    return shape[0], N, max(C, 1), max(math.prod(shape[3:]), 1), N + 4096 >= 2**31


_launch_forward = TunedLaunch(_neuron_forward_kernel)
_launch_backward = TunedLaunch(_neuron_backward_kernel)


def _thresh_mode(thresh_t: Optional[torch.Tensor]) -> int:
    if thresh_t is None:
        return _THRESH_SCALAR.value
    return (_THRESH_ONE if thresh_t.numel() == 1 else _THRESH_PER_CHANNEL).value


def _new_buffer(shape, dtype: torch.dtype, device) -> torch.Tensor:
    """Every buffer a kernel writes comes from here (tests swap in a poisoned allocator)."""
    return torch.empty(shape, dtype=dtype, device=device)


def _grid(N: int):
    return lambda meta: (triton.cdiv(N, meta["BLOCK"]),)


def neuron_forward(
    x: torch.Tensor, opts: NeuronOptions, call: NeuronCall, save: bool, force_index_64: bool = False
) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Launch the forward scan. Returns (out[T, ...], v_final[...] fp32, saved u[T, N] or None)."""
    T, N, C, inner, index_64 = _layout(x.shape)
    out = _new_buffer(x.shape, torch.uint8 if opts.output_id == OUTPUT_UINT8.value else x.dtype, x.device)
    v_final = _new_buffer(x.shape[1:], torch.float32, x.device)
    saved = _new_buffer((T, N), opts.save_dtype, x.device) if save else None
    if N == 0 or _host_only:
        return out, v_final, saved
    v0 = None
    if call.v_init is not None:
        v0 = call.v_init.detach().to(torch.float32).expand(x.shape[1:]).contiguous()
        v_init_mode = _V_INIT_TENSOR.value
    elif opts.v_init is None:
        v_init_mode = _V_INIT_HALF.value
    else:
        v_init_mode = _V_INIT_SCALAR.value
    dummy = v_final
    _launch_forward(
        _grid(N),
        x.contiguous(),
        out,
        saved if save else dummy,
        v_final,
        v0 if v0 is not None else dummy,
        call.thresh if call.thresh is not None else dummy,
        call.bias if call.bias is not None else dummy,
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
        OUTPUT_MODE=opts.output_id,
        SAVE_MODE=opts.save_id if save else _SAVE_NONE.value,
        THRESH_MODE=_thresh_mode(call.thresh),
        V_INIT_MODE=v_init_mode,
        RESET_MODE=opts.reset_id,
        HAS_BIAS=call.bias is not None,
        BIAS_AFTER_INPUT=opts.bias_order == "after_input",
        INDEX_64=force_index_64 or index_64,
    )
    return out, v_final, saved


def neuron_backward(
    grad_out: Optional[torch.Tensor],
    grad_v_final: Optional[torch.Tensor],
    saved: torch.Tensor,
    opts: NeuronOptions,
    call: NeuronCall,
    x_shape: torch.Size,
    x_dtype: torch.dtype,
    want_grad_v_init: bool,
    force_index_64: bool = False,
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Launch the reverse scan (``call``: its θ and seed). Returns (grad_x[x_shape], grad_v_init[N]
    fp32 or None)."""
    T, N, C, inner, index_64 = _layout(x_shape)
    grad_x = _new_buffer(x_shape, x_dtype, saved.device)
    grad_v0 = _new_buffer(N, torch.float32, saved.device) if want_grad_v_init else None
    if N == 0 or _host_only:
        return grad_x, grad_v0
    if grad_out is None:
        grad_out = torch.zeros(x_shape, dtype=x_dtype, device=saved.device)
    gvf = grad_v_final.contiguous() if grad_v_final is not None else None
    dummy = saved
    localzo = opts.surrogate_id == LOCALZO.value
    _launch_backward(
        _grid(N),
        grad_out.contiguous(),
        saved,
        gvf if gvf is not None else dummy,
        grad_x,
        grad_v0 if grad_v0 is not None else dummy,
        call.thresh if call.thresh is not None else dummy,
        N,
        T,
        C,
        inner,
        (T - 1) * N,
        opts.threshold,
        opts.beta,
        opts.gain,
        opts.v_reset,
        opts.alpha,
        opts.delta,
        call.seed,
        OUTPUT_SCALED=opts.output_id == OUTPUT_SCALED.value,
        THRESH_MODE=_thresh_mode(call.thresh),
        RESET_MODE=opts.reset_id,
        DETACH_RESET=opts.detach_reset,
        SURROGATE=opts.surrogate_id,
        # Only LocalZO draws: other surrogates pass fixed values, so changing them compiles nothing new.
        DIST=opts.distribution_id if localzo else 0,
        Q=opts.q if localzo else 1,
        HAS_GRAD_V_FINAL=gvf is not None,
        WRITE_GRAD_V_INIT=want_grad_v_init,
        INDEX_64=force_index_64 or index_64,
    )
    return grad_x, grad_v0


class MultiStepNeuronFunction(torch.autograd.Function):
    """Fused forward/backward scans; differentiable w.r.t. ``x`` and a tensor ``v_init``
    (``call.v_init``, passed again as an argument so autograd sees it). The backward reads the saved
    ``u`` and θ, both through ``save_for_backward``: a threshold changed in place between forward and
    backward is refused by autograd's version check. The bias and ``v_init`` are not kept: the
    backward does not read them (``u`` already holds their effect)."""

    @staticmethod
    def forward(ctx, x, v_init_t, opts, call, force_index_64=False):
        out, v_final, saved = neuron_forward(x, opts, call, True, force_index_64)
        ctx.save_for_backward(saved, call.thresh)
        ctx.opts, ctx.seed, ctx.force_index_64 = opts, call.seed, force_index_64
        ctx.x_shape, ctx.x_dtype = x.shape, x.dtype
        ctx.v_init_shape = None if v_init_t is None else v_init_t.shape
        ctx.v_init_dtype = None if v_init_t is None else v_init_t.dtype
        ctx.set_materialize_grads(False)
        return out, v_final

    @staticmethod
    def backward(ctx, grad_out, grad_v_final):
        saved, thresh = ctx.saved_tensors
        grad_x, grad_v0 = neuron_backward(
            grad_out,
            grad_v_final,
            saved,
            ctx.opts,
            NeuronCall(thresh, None, None, ctx.seed),
            ctx.x_shape,
            ctx.x_dtype,
            ctx.needs_input_grad[1],
            ctx.force_index_64,
        )
        if grad_v0 is not None:
            grad_v0 = grad_v0.view(ctx.x_shape[1:]).sum_to_size(ctx.v_init_shape).to(ctx.v_init_dtype)
        return grad_x, grad_v0, None, None, None


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def _launch(
    x: torch.Tensor, opts: NeuronOptions, call: NeuronCall, backend: str, force_index_64: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    if resolve_backend(backend, x) == "torch":
        return neuron_reference(x, opts, call)
    if torch.is_grad_enabled() and (x.requires_grad or (call.v_init is not None and call.v_init.requires_grad)):
        out, v_final = MultiStepNeuronFunction.apply(x, call.v_init, opts, call, force_index_64)
    else:
        out, v_final, _ = neuron_forward(x, opts, call, False, force_index_64)
    if v_final.is_cuda:
        # Passed back as the next chunk's v_init, it is as finite as this call's x (data, unchecked):
        # checking it again would cost a sync per chunk.
        remember_finite(v_final)
    return out, v_final


def run_neuron(
    x: torch.Tensor,
    opts: NeuronOptions,
    threshold: Optional[torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
    v_init: Union[None, float, torch.Tensor] = None,
    *,
    backend: str = "auto",
    launch=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One call with options prepared once (:class:`NeuronOptions`, :func:`lif_options`): the hot path
    of the modules, which checks only ``x`` and this call's tensors. A float ``v_init`` overrides the
    options' for this call. ``launch(x, opts, call)`` replaces the kernels' launch (the custom op
    under torch.compile, which leaves the data-dependent finiteness check to eager calls)."""
    opts, v_init = with_v_init(opts, v_init)
    call = neuron_call(x, opts, threshold, bias, v_init, check_tensors=launch is None)
    return _launch(x, opts, call, backend) if launch is None else launch(x, opts, call)


def _multistep(
    x: torch.Tensor,
    build,
    *,
    threshold=1.0,
    bias=None,
    v_init=None,
    backend: str = "auto",
    _force_index_64: bool = False,
    **options,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A functional call: options built by ``build`` and checked for this call alone."""
    opts, call = prepare(x, threshold, bias, v_init, build=build, **options)
    return _launch(x, opts, call, backend, _force_index_64)


def generic_options(*, v_reset: float = 0.0, v_init=None, **options) -> NeuronOptions:
    """:class:`NeuronOptions` of :func:`multistep_neuron`, whose ``v_init`` defaults to ``v_reset``."""
    return NeuronOptions(v_reset=v_reset, v_init=v_reset if v_init is None else v_init, **options)


def multistep_neuron(
    x: torch.Tensor, *, beta: float, leak: float, gain: float, **options
) -> tuple[torch.Tensor, torch.Tensor]:
    """The generic neuron ``h = β·v + leak + gain·x - b``; :func:`multistep_if` / ``_lif`` set β, leak, gain.

    ``options``: the fields of :class:`kernels.neuron_options.NeuronOptions` (their defaults, but
    ``v_init`` defaults to ``v_reset``), the tensors ``threshold``, ``bias``, ``v_init``, and ``backend``.
    """
    return _multistep(x, generic_options, beta=beta, leak=leak, gain=gain, **options)


def multistep_if(x: torch.Tensor, **options) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate-and-fire over ``x[T, ...]``: ``u = v + x_t - b_t[c]``; returns ``(spikes, v_final)``.

    ``v_init`` defaults to θ/2 (per channel when θ is). ``output``: ``"spike"`` (0/1 in x's dtype),
    ``"scaled"`` (θ·s, the converted-ANN activation) or ``"uint8"`` (inference only). ``v_final`` is
    fp32. Gradients flow to ``x`` and a tensor ``v_init``; threshold and bias are constants.
    ``reset``: ``"soft"`` (θ off at the spike), ``"hard"`` (to ``v_reset``) or ``"subtract"`` (θ off
    after the next decay, firing strictly above θ: SparseProp's and snntorch's LIF; module docstring).
    ``surrogate="localzo"`` uses ``distribution``, ``delta``, ``q`` and ``seed`` (drawn from torch's
    generator when None). ``backend="auto"`` runs Triton on CUDA tensors and the PyTorch reference
    otherwise.

    Keywords and their defaults (held once, as the fields of
    :class:`kernels.neuron_options.NeuronOptions`): ``threshold=1.0`` (a float, one value or ``[C]``),
    ``v_init=None`` (θ/2; a float or a tensor broadcasting to one step), ``bias=None`` (``[T, C]``),
    ``reset="soft"``, ``v_reset=0.0``, ``output="spike"``, ``surrogate="sigmoid"``, ``alpha=None`` (the
    surrogate's ``DEFAULT_ALPHA``), ``detach_reset=False``, ``distribution="normal"``, ``delta=0.05``,
    ``q=1``, ``seed=None``, ``save_dtype="bf16"``, ``bias_order="before_input"`` (``"after_input"``:
    ``u = (v + x_t) - b_t``, the RTS code's order), ``backend="auto"``.
    """
    return _multistep(x, NeuronOptions, **options)


def lif_options(
    *,
    tau: Optional[float] = None,
    beta: Optional[float] = None,
    decay_input: bool = True,
    reset: str = "hard",
    v_reset: float = 0.0,
    v_init: Optional[float] = None,
    **options,
) -> NeuronOptions:
    """The :class:`NeuronOptions` of a leaky integrate-and-fire neuron (:func:`multistep_lif`)."""
    if tau is not None and beta is not None:
        raise ValueError("tau: give tau or beta, not both")
    if beta is None:
        tau = finite_scalar("tau", 2.0 if tau is None else tau)
        if tau < 1.0:
            raise ValueError(f"tau: must be >= 1 (a decay 1 - 1/tau in [0, 1)), got {tau}")
        beta = 1.0 - 1.0 / tau
    else:
        beta = finite_scalar("beta", beta)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta: must lie in [0, 1], got {beta}")
    decay = 1.0 - beta
    leak = decay * finite_scalar("v_reset", v_reset)
    return generic_options(
        beta=beta, leak=leak, gain=decay if decay_input else 1.0, reset=reset, v_reset=v_reset, v_init=v_init, **options
    )


def multistep_lif(x: torch.Tensor, **options) -> tuple[torch.Tensor, torch.Tensor]:
    """Leaky integrate-and-fire over ``x[T, ...]``; returns ``(spikes, v_final)``.

    ``h = v + (x - (v - v_reset))/τ`` with ``decay_input`` (SpikingJelly's default), else
    ``h = v - (v - v_reset)/τ + x``. ``beta`` gives the decay ``β = 1 - 1/τ`` directly (e.g.
    ``exp(-dt/τ_mem)``); pass either ``tau`` (default 2) or ``beta``. The membrane leaks towards
    ``v_reset``, which is also the hard-reset value and the default ``v_init``. Other options as in
    :func:`multistep_if` (with their defaults); the default reset is hard, as in SpikingJelly's ``LIFNode``.
    """
    return _multistep(x, lif_options, **options)
