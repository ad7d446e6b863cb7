"""Forward of a sparse LIF layer: the input trace and the LIF scan that records the active entries
(math and entry orders in :mod:`kernels.sparse_backward`), Triton kernels and PyTorch reference."""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from .common import launch, resolve_backend
from .localzo import DISTRIBUTION_ID, localzo_gain
from .localzo_banded import localzo_gain_banded
from .scan_cpu import input_trace_cpu, lif_scan_cpu
from .sparse_common import (
    TRACE_DTYPES,
    ActiveSet,
    Backend,
    SpikeRule,
    check_beta,
    check_index_range,
    check_rule_and_seed,
    check_tensor,
)
from .surrogates import SURROGATE_ID, surrogate_grad, surrogate_grad_reference

__all__ = [
    "input_trace",
    "input_trace_unchecked",
    "lif_record_forward",
    "lif_record_unchecked",
    "lif_forward",
    "trace_launch",
    "record_launch",
    "reference_input_trace",
    "reference_spike_g",
    "reference_lif_scan",
    "active_set_from_dense",
    "reference_lif_record_forward",
]

# ---------------------------------------------------------------------------------------------
# Triton kernels


@triton.jit
def _input_trace_kernel(x_ptr, tr_ptr, T, N, beta, BLOCK: tl.constexpr):
    # One program owns BLOCK columns of the flattened (B, N_in) plane for all T steps.
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    tr = tl.zeros([BLOCK], dtype=tl.float32)
    for t in range(T):
        x = tl.load(x_ptr + t * N + offs, mask=mask, other=0.0).to(tl.float32)
        tr = beta * tr + x  # fp32 in registers; only the stored copy is rounded to tr's dtype
        tl.store(tr_ptr + t * N + offs, tr.to(tr_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["seed"])  # a new seed every step must not trigger a new compile
def _lif_record_kernel(
    cur_ptr,
    spike_ptr,
    count_ptr,
    off_col_ptr,
    off_batch_ptr,
    index_ptr,
    g_ptr,
    by_batch_ptr,
    dense_g_ptr,
    T,
    B,
    H,
    beta,
    theta,
    b_th,
    width,
    delta,
    seed,
    WRITE: tl.constexpr,
    DENSE_G: tl.constexpr,
    LOCALZO: tl.constexpr,
    DIST: tl.constexpr,
    Q: tl.constexpr,
    SURR: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_J: tl.constexpr,
):
    # One program owns a BLOCK_B × BLOCK_J tile of (batch, neuron) for all T steps: u, s and the
    # per-(b, j) running count live in registers. Pass 1 (WRITE=False) stores spikes and counts;
    # pass 2 (WRITE=True) re-runs the identical scan and writes entries at offset + running count.
    b = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    j = tl.program_id(1) * BLOCK_J + tl.arange(0, BLOCK_J)
    mask = (b < B)[:, None] & (j < H)[None, :]
    bj = b[:, None] * H + j[None, :]
    plane = B * H
    u = tl.zeros([BLOCK_B, BLOCK_J], dtype=tl.float32)
    s = tl.zeros([BLOCK_B, BLOCK_J], dtype=tl.float32)
    count = tl.zeros([BLOCK_B, BLOCK_J], dtype=tl.int32)
    zero_hi = tl.zeros([BLOCK_B, BLOCK_J], dtype=tl.uint32)  # b·H + j < 2³¹: the counter's high word
    if WRITE:
        off_col = tl.load(off_col_ptr + j[None, :] * B + b[:, None], mask=mask, other=0)
        off_batch = tl.load(off_batch_ptr + bj, mask=mask, other=0)
    for t in range(T):
        flat = t * plane + bj
        cur = tl.load(cur_ptr + flat, mask=mask, other=0.0).to(tl.float32)
        u = beta * u + cur - theta * s  # reset by θ after the decay (s is 0 or 1: θ = 1 subtracts s exactly)
        s = tl.where(u > theta, 1.0, 0.0)
        d = tl.abs(u - theta)
        if LOCALZO:
            g = localzo_gain(d, seed, t, bj.to(tl.uint32), zero_hi, delta, Q, DIST)
            active = (g > 0.0) & mask
        else:
            g = surrogate_grad(d, width, SURR)  # a surrogates.SURROGATE_ID: the dense baseline's shape
            active = (d < b_th) & mask
        g = tl.where(active, g, 0.0)
        if WRITE:
            pos = off_col + count
            tl.store(index_ptr + pos, flat, mask=active)
            tl.store(g_ptr + pos, g, mask=active)
            tl.store(by_batch_ptr + off_batch + count, pos, mask=active)
        else:
            tl.store(spike_ptr + flat, s, mask=mask)
            if DENSE_G:
                tl.store(dense_g_ptr + flat, g, mask=mask)
        count += active.to(tl.int32)
    if not WRITE:
        tl.store(count_ptr + bj, count, mask=mask)


# ---------------------------------------------------------------------------------------------
# Host functions


def input_trace(
    x: torch.Tensor, beta: float, backend: Backend = "auto", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``tr_t = β·tr_{t-1} + x_t`` for ``x[T, B, N]``, accumulated in fp32 and stored as ``dtype``.

    ``torch.float16`` halves the bytes the weight gradient gathers per active entry (its dominant
    cost) at a relative rounding error of 2⁻¹¹ per trace value; inputs whose trace could overflow
    fp16 raise before the launch.
    """
    check_tensor("x", x, 3)
    beta = check_beta(beta)
    if dtype not in TRACE_DTYPES:
        raise ValueError(f"dtype must be one of {TRACE_DTYPES}, got {dtype!r}")
    if dtype != torch.float32 and x.numel():
        # |tr| ≤ max|x|·Σ_k β^k ≤ max|x|·min(T, 1/(1−β)): checked before anything is launched.
        bound = float(x.abs().amax()) * (x.shape[0] if beta == 1.0 else min(x.shape[0], 1.0 / (1.0 - beta)))
        if bound > torch.finfo(dtype).max:
            raise ValueError(
                f"an input trace of {dtype} could overflow: max|x|·min(T, 1/(1−β)) = {bound:.4g} > "
                f"{torch.finfo(dtype).max:.0f}; use float32"
            )
    return input_trace_unchecked(x, beta, backend, dtype)


def input_trace_unchecked(x: torch.Tensor, beta: float, backend: Backend, dtype: torch.dtype) -> torch.Tensor:
    """:func:`input_trace` on arguments already checked."""
    if resolve_backend(backend, x, name="x") == "torch":
        fast = input_trace_cpu(x, beta)
        return (reference_input_trace(x, beta) if fast is None else fast).to(dtype)
    return trace_launch(x.contiguous(), beta, dtype)


_TRACE_BLOCK = 256


def trace_launch(x: torch.Tensor, beta: float, dtype: torch.dtype) -> torch.Tensor:
    """The trace kernel's launch on a contiguous ``x`` (the compile check drives it with meta tensors)."""
    T, N = x.shape[0], x[0].numel()
    tr = torch.empty(x.shape, dtype=dtype, device=x.device)
    if x.numel():
        launch(_input_trace_kernel, (triton.cdiv(N, _TRACE_BLOCK),), x, tr, T, N, beta, BLOCK=_TRACE_BLOCK)
    return tr


def _offsets(count_bj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Exclusive prefix sums of the per-(b, j) counts in both entry orders."""
    B, H = count_bj.shape
    flat_col = count_bj.t().reshape(-1)  # order (j, b)
    off_col = (torch.cumsum(flat_col, 0) - flat_col).to(torch.int32)
    flat_batch = count_bj.reshape(-1)  # order (b, j)
    off_batch = (torch.cumsum(flat_batch, 0) - flat_batch).to(torch.int32)
    total = int(flat_batch.sum().item())
    device = count_bj.device
    end = torch.tensor([total], dtype=torch.int32, device=device)
    col_ptr = torch.cat([off_col.view(H, B)[:, 0], end]) if B else torch.zeros(H + 1, dtype=torch.int32, device=device)
    batch_ptr = (
        torch.cat([off_batch.view(B, H)[:, 0], end]) if H else torch.zeros(B + 1, dtype=torch.int32, device=device)
    )
    return off_col, off_batch, col_ptr.to(torch.int32), batch_ptr.to(torch.int32), total


def lif_record_forward(
    current: torch.Tensor,
    beta: float,
    rule: SpikeRule,
    seed: int = 0,
    backend: Backend = "auto",
    dense_g: bool = False,
) -> tuple[torch.Tensor, ActiveSet, Optional[torch.Tensor]]:
    """Run the LIF scan over ``current[T, B, H]``; return spikes, the active set and (optionally) dense g.

    ``dense_g=True`` also returns g as a dense [T, B, H] tensor, for the dense twin of the sparse path.
    """
    check_tensor("current", current, 3)
    beta = check_beta(beta)
    check_rule_and_seed(rule, seed)
    check_index_range(current.numel())
    return lif_record_unchecked(current, beta, rule, seed, backend, dense_g)


def lif_record_unchecked(
    current: torch.Tensor, beta: float, rule: SpikeRule, seed: int, backend: Backend, dense_g: bool
) -> tuple[torch.Tensor, ActiveSet, Optional[torch.Tensor]]:
    """:func:`lif_record_forward` on arguments already checked."""
    if resolve_backend(backend, current, name="current") == "torch":
        return reference_lif_record_forward(current, beta, rule, seed, dense_g)

    current = current.contiguous()
    T, B, H = current.shape
    device = current.device
    spikes = torch.empty_like(current)
    count = torch.empty((B, H), dtype=torch.int32, device=device)
    g_dense = torch.empty_like(current) if dense_g else spikes  # placeholder pointer when unused
    if current.numel():
        record_launch(
            current, (spikes, count, count, count, count, spikes, count, g_dense), beta, rule, seed, False, dense_g
        )
    else:
        count.zero_()
    off_col, off_batch, col_ptr, batch_ptr, total = _offsets(count)
    index = torch.empty(total, dtype=torch.int32, device=device)
    g = torch.empty(total, dtype=torch.float32, device=device)
    by_batch = torch.empty(total, dtype=torch.int32, device=device)
    if total:
        record_launch(current, (spikes, count, off_col, off_batch, index, g, by_batch, g_dense), beta, rule, seed, True)
    active = ActiveSet(index, g, col_ptr, by_batch, batch_ptr, (T, B, H))
    return spikes, active, (g_dense if dense_g else None)


_RECORD_BLOCK_B, _RECORD_BLOCK_J = 16, 64


def record_launch(
    current: torch.Tensor, buffers: tuple, beta: float, rule: SpikeRule, seed: int, write: bool, dense_g: bool = False
) -> None:
    """One pass of the recording scan over a contiguous ``current[T, B, H]``. ``buffers``: spikes, count,
    off_col, off_batch, index, g, by_batch, dense g (any tensor where a pass does not use one). A rule's
    unused switches are passed as fixed values, so changing them never compiles another kernel."""
    T, B, H = current.shape
    localzo = rule.rule == "localzo"
    grid = (triton.cdiv(B, _RECORD_BLOCK_B), triton.cdiv(H, _RECORD_BLOCK_J))
    launch(
        _lif_record_kernel,
        grid,
        current,
        *buffers,
        T,
        B,
        H,
        beta,
        float(rule.theta),
        float(rule.b_th),
        float(rule.width),
        float(rule.delta),
        int(seed),
        WRITE=write,
        DENSE_G=dense_g,
        LOCALZO=localzo,
        DIST=DISTRIBUTION_ID[rule.distribution] if localzo else 0,
        Q=int(rule.q) if localzo else 1,
        SURR=SURROGATE_ID["fast_sigmoid" if localzo else rule.surrogate],
        BLOCK_B=_RECORD_BLOCK_B,
        BLOCK_J=_RECORD_BLOCK_J,
    )


def lif_forward(current: torch.Tensor, beta: float, theta: float = 1.0, backend: Backend = "auto") -> torch.Tensor:
    """Spikes only (evaluation): pass 1 of the scan without recording (threshold and reset ``theta``)."""
    check_tensor("current", current, 3)
    beta = check_beta(beta)
    if resolve_backend(backend, current, name="current") == "torch":
        return _lif_scan(current, beta, theta)[1]
    current = current.contiguous()
    spikes = torch.empty_like(current)
    if current.numel():
        count = torch.empty(current.shape[1:], dtype=torch.int32, device=current.device)
        # The band is unused without recording: the plain SparseProp pass with θ.
        rule = SpikeRule("sparseprop", theta=float(theta), b_th=1.0, width=1.0, delta=1.0)
        record_launch(current, (spikes, count, count, count, count, spikes, count, spikes), beta, rule, 0, False)
    return spikes


# ---------------------------------------------------------------------------------------------
# PyTorch reference: the same math, the test oracle and the CPU path


def reference_input_trace(x: torch.Tensor, beta: float) -> torch.Tensor:
    tr = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    acc = torch.zeros(x.shape[1:], dtype=torch.float32, device=x.device)
    for t in range(x.shape[0]):
        acc = beta * acc + x[t].float()
        tr[t] = acc
    return tr


def _lif_scan(current: torch.Tensor, beta: float, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The CPU path's scan: the compiled loop (the same bits) where it applies, else the reference."""
    fast = lif_scan_cpu(current, beta, theta)
    return reference_lif_scan(current, beta, theta) if fast is None else fast


def reference_spike_g(u_minus_theta: torch.Tensor, rule: SpikeRule, seed: int = 0) -> torch.Tensor:
    """Dense g for every element of ``u − θ[T, B, H]`` (zero outside the active set)."""
    if rule.rule == "sparseprop":
        d = u_minus_theta.abs()
        g = surrogate_grad_reference(d, rule.surrogate, rule.width)
        return torch.where(d < rule.b_th, g, torch.zeros_like(g))
    return localzo_gain_banded(u_minus_theta, seed, rule.delta, rule.q, rule.distribution)


def reference_lif_scan(current: torch.Tensor, beta: float, theta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Membrane ``u`` and spikes ``s`` of the LIF layer (no gradient)."""
    T = current.shape[0]
    u_all = torch.empty_like(current, dtype=torch.float32)
    spikes = torch.empty_like(u_all)
    u = torch.zeros(current.shape[1:], dtype=torch.float32, device=current.device)
    s = torch.zeros_like(u)
    for t in range(T):
        u = beta * u + current[t] - theta * s
        s = (u > theta).float()
        u_all[t] = u
        spikes[t] = s
    return u_all, spikes


def active_set_from_dense(g: torch.Tensor) -> ActiveSet:
    """The ActiveSet of the nonzero entries of a dense ``g[T, B, H]``, in the canonical orders."""
    T, B, H = g.shape
    device = g.device
    check_index_range(g.numel())
    mask = g != 0
    count_bj = mask.sum(0).to(torch.int64)  # [B, H]
    off_col, off_batch, col_ptr, batch_ptr, total = _offsets(count_bj)
    jbt = mask.permute(2, 1, 0).nonzero()  # (j, b, t) lexicographic = order of ``index``
    j, b, t = jbt.unbind(1)
    index = (t * (B * H) + b * H + j).to(torch.int32)
    values = g[t, b, j].float()
    bjt = mask.permute(1, 2, 0).nonzero()  # (b, j, t) lexicographic
    b2, j2, t2 = bjt.unbind(1)
    rank = torch.arange(total, device=device) - off_batch.long().view(B, H)[b2, j2]
    by_batch = (off_col.long().view(H, B)[j2, b2] + rank).to(torch.int32)
    return ActiveSet(index, values, col_ptr, by_batch, batch_ptr, (T, B, H))


def reference_lif_record_forward(
    current: torch.Tensor, beta: float, rule: SpikeRule, seed: int = 0, dense_g: bool = False
) -> tuple[torch.Tensor, ActiveSet, Optional[torch.Tensor]]:
    u, spikes = _lif_scan(current, beta, rule.theta)
    g = reference_spike_g(u - rule.theta, rule, seed)
    return spikes, active_set_from_dense(g), (g if dense_g else None)
