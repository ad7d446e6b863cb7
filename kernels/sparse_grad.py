"""Backward of a sparse LIF layer: the weight gradient and the input gradient over active entries
(math in :mod:`kernels.sparse_backward`), Triton kernels and PyTorch reference."""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .common import interpreting, resolve_backend
from .sparse_common import TRACE_DTYPES, ActiveSet, Backend, check_beta, check_same_device, check_tensor

__all__ = [
    "sparse_weight_grad",
    "sparse_input_grad",
    "reference_sparse_weight_grad",
    "reference_sparse_input_grad",
]

# ---------------------------------------------------------------------------------------------
# Triton kernels


def _weight_grad_configs() -> list[triton.Config]:
    if interpreting():
        return [triton.Config({"BLOCK_I": 128, "BLOCK_K": 16}, num_warps=4)]
    # (BLOCK_I, BLOCK_K, warps, stages): 16–64 accumulator values per thread; the light ones leave
    # registers for more loads in flight, the wide ones read each entry's index once per row.
    return [
        triton.Config({"BLOCK_I": bi, "BLOCK_K": bk}, num_warps=w, num_stages=st)
        for bi, bk, w, st in [
            (256, 16, 4, 2), (128, 32, 4, 3), (512, 16, 8, 3), (256, 32, 8, 3), (256, 32, 4, 2),
            (512, 32, 8, 2), (1024, 16, 8, 2), (1024, 8, 4, 3), (128, 64, 4, 3),
        ]
    ]


def _entries_bucket(n_entries: int, H: int) -> int:
    """log2 of the mean entries per neuron: the density the best block shape depends on."""
    return max(0, int(math.log2(max(1.0, n_entries / max(1, H)))))


# The trace dtype is part of the key too (the autotuner adds every tensor argument's dtype).
@triton.autotune(configs=_weight_grad_configs(), key=["H", "N_in", "ENTRIES_BUCKET"])
@triton.jit(do_not_specialize=["ENTRIES_BUCKET"])
def _sparse_weight_grad_kernel(
    tr_ptr,
    index_ptr,
    delta_ptr,
    col_ptr,
    dwt_ptr,
    H,
    N_in,
    ENTRIES_BUCKET,  # autotune key only (unused in the body)
    BLOCK_I: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    # pid = i_block·H + j: consecutive programs share the input block, so the trace columns they
    # gather stay hot in L2 while every neuron of that block is processed.
    pid = tl.program_id(0)
    j = pid % H
    i_block = pid // H
    offs_i = i_block * BLOCK_I + tl.arange(0, BLOCK_I)
    mask_i = offs_i < N_in
    start = tl.load(col_ptr + j)
    end = tl.load(col_ptr + j + 1)
    # A [BLOCK_K, BLOCK_I] accumulator: every step is an elementwise FMA, and the reduction over
    # entries (across warps) happens once at the end instead of once per step.
    acc = tl.zeros([BLOCK_K, BLOCK_I], dtype=tl.float32)
    for k0 in range(start, end, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        mask_k = ks < end
        e = tl.load(index_ptr + ks, mask=mask_k, other=0)
        d = tl.load(delta_ptr + ks, mask=mask_k, other=0.0)
        row = (e // H).to(tl.int64)  # (t·B + b): the trace row of this entry
        tile = tl.load(
            tr_ptr + row[:, None] * N_in + offs_i[None, :],
            mask=mask_k[:, None] & mask_i[None, :],
            other=0.0,
        )
        acc += tile.to(tl.float32) * d[:, None]
    tl.store(dwt_ptr + j.to(tl.int64) * N_in + offs_i, tl.sum(acc, axis=0), mask=mask_i)


@triton.jit
def _decode_entry(e, B, H):
    """(t, b, j) of flat entry indices e = t·B·H + b·H + j (ActiveSet.decode on the device)."""
    plane = B * H
    t = e // plane
    rem = e - t * plane
    b = rem // H
    return t, b, rem - b * H


@triton.jit(do_not_specialize=["n"])
def _pack_by_batch_kernel(
    index_ptr, by_batch_ptr, delta_ptr, t_out, j_out, b_out, delta_out, n, B, H, BLOCK: tl.constexpr
):
    # This layer's entries in (b, j, t) order, decoded once so the pairing loop reads them contiguously.
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    pos = tl.load(by_batch_ptr + offs, mask=mask, other=0)
    e = tl.load(index_ptr + pos, mask=mask, other=0)
    d = tl.load(delta_ptr + pos, mask=mask, other=0.0)
    t, b, j = _decode_entry(e, B, H)
    tl.store(t_out + offs, t, mask=mask)
    tl.store(j_out + offs, j, mask=mask)
    tl.store(b_out + offs, b, mask=mask)
    tl.store(delta_out + offs, d, mask=mask)


@triton.jit(do_not_specialize=["n_prev"])  # entry counts change every step
def _sparse_input_grad_kernel(
    prev_index_ptr,
    prev_by_batch_ptr,
    n_prev,
    H_prev,
    q_t_ptr,
    q_j_ptr,
    q_b_ptr,
    q_delta_ptr,
    batch_ptr,
    w_ptr,
    out_ptr,
    B,
    H,
    log2_beta,
    shift,
    BLOCK_P: tl.constexpr,
    BLOCK_Q: tl.constexpr,
):
    # A block of the previous layer's entries, consecutive in (b, i, τ) order, so they span one or
    # two batch elements; they are paired with this layer's entries of those batch elements.
    ps = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    mask_p = ps < n_prev
    pos = tl.load(prev_by_batch_ptr + ps, mask=mask_p, other=0)
    e = tl.load(prev_index_ptr + pos, mask=mask_p, other=0)
    tau, b, i = _decode_entry(e, B, H_prev)
    b_lo = tl.min(tl.where(mask_p, b, B), axis=0)
    b_hi = tl.max(tl.where(mask_p, b, -1), axis=0)
    q_start = tl.load(batch_ptr + b_lo)
    q_end = tl.load(batch_ptr + b_hi + 1)
    w_rows = w_ptr + i.to(tl.int64)[:, None] * H
    acc = tl.zeros([BLOCK_P], dtype=tl.float32)
    for q0 in range(q_start, q_end, BLOCK_Q):
        qs = q0 + tl.arange(0, BLOCK_Q)
        mask_q = qs < q_end
        tq = tl.load(q_t_ptr + qs, mask=mask_q, other=0)
        jq = tl.load(q_j_ptr + qs, mask=mask_q, other=0)
        bq = tl.load(q_b_ptr + qs, mask=mask_q, other=-1)
        dq = tl.load(q_delta_ptr + qs, mask=mask_q, other=0.0)
        lag = tq[None, :] - tau[:, None] - shift  # shift = 1: this layer sees the input one step late
        valid = mask_p[:, None] & mask_q[None, :] & (bq[None, :] == b[:, None]) & (lag >= 0)
        w = tl.load(w_rows + jq[None, :], mask=valid, other=0.0)
        decay = tl.exp2(tl.where(valid, lag, 0).to(tl.float32) * log2_beta)
        acc += tl.sum(tl.where(valid, w * decay * dq[None, :], 0.0), axis=1)
    tl.store(out_ptr + pos, acc, mask=mask_p)

# ---------------------------------------------------------------------------------------------
# Host functions


def _check_active(name: str, active: ActiveSet) -> None:
    if not isinstance(active, ActiveSet):
        raise ValueError(f"{name} must be an ActiveSet, got {type(active).__name__}")


def _check_delta(delta: torch.Tensor, active: ActiveSet) -> None:
    if not isinstance(delta, torch.Tensor) or delta.dim() != 1 or delta.numel() != len(active):
        raise ValueError(
            f"delta must be a 1-d tensor with one value per active entry ({len(active)}), "
            f"got {tuple(delta.shape) if isinstance(delta, torch.Tensor) else type(delta).__name__}"
        )
    if delta.dtype != torch.float32:
        raise ValueError(f"delta must be float32, got {delta.dtype}")


def sparse_weight_grad(
    trace: torch.Tensor, active: ActiveSet, delta: torch.Tensor, backend: Backend = "auto"
) -> torch.Tensor:
    """``dW[N_in, H] = Σ_{active (b,t,j)} δ · tr[t, b, :]`` with δ given per entry (``index`` order).

    ``trace`` is float32 or float16 (see :func:`input_trace`); dW is accumulated and returned in fp32.
    """
    check_tensor("trace", trace, 3, finite=False, dtypes=TRACE_DTYPES)
    _check_active("active", active)
    _check_delta(delta, active)
    T, B, H = active.shape
    if trace.shape[:2] != (T, B):
        raise ValueError(f"trace must be [T={T}, B={B}, N_in], got shape {tuple(trace.shape)}")
    check_same_device(trace=trace, index=active.index, delta=delta)
    if resolve_backend(backend, trace, delta, name="trace") == "torch":
        return reference_sparse_weight_grad(trace, active, delta)
    N_in = trace.shape[2]
    dwt = torch.empty((H, N_in), dtype=torch.float32, device=trace.device)
    if len(active) == 0 or N_in == 0:
        dwt.zero_()
        return dwt.t()
    trace = trace.contiguous()
    grid = lambda meta: (triton.cdiv(N_in, meta["BLOCK_I"]) * H,)  # noqa: E731
    _sparse_weight_grad_kernel[grid](
        trace, active.index, delta.contiguous(), active.col_ptr, dwt, H, N_in,
        _entries_bucket(len(active), H),
    )
    return dwt.t()


def sparse_input_grad(
    weight: torch.Tensor,
    active: ActiveSet,
    delta: torch.Tensor,
    prev: ActiveSet,
    beta: float,
    backend: Backend = "auto",
    shift: int = 0,
) -> torch.Tensor:
    """∂L/∂x at the previous layer's active entries (one value per entry of ``prev``, its ``index`` order).

    ``weight[N_prev, H]`` maps the previous layer's spikes to this layer's currents; ``delta`` holds
    δ = g·∂L/∂s per entry of ``active`` (this layer). ``shift = 1``: the previous layer's spikes at τ
    enter this layer's current at τ + 1 (the official SparseProp recurrence's one-step synaptic delay).
    """
    check_tensor("weight", weight, 2, finite=False)
    _check_active("active", active)
    _check_active("prev", prev)
    _check_delta(delta, active)
    beta = check_beta(beta)
    T, B, H = active.shape
    Tp, Bp, H_prev = prev.shape
    if (Tp, Bp) != (T, B):
        raise ValueError(f"prev must have T={T}, B={B}, got shape {prev.shape}")
    if tuple(weight.shape) != (H_prev, H):
        raise ValueError(f"weight must be [{H_prev}, {H}], got shape {tuple(weight.shape)}")
    check_same_device(weight=weight, index=active.index, prev_index=prev.index, delta=delta)
    if shift not in (0, 1):
        raise ValueError(f"shift must be 0 or 1, got {shift!r}")
    if resolve_backend(backend, weight, delta, name="weight") == "torch":
        return reference_sparse_input_grad(weight, active, delta, prev, beta, shift)
    out = torch.zeros(len(prev), dtype=torch.float32, device=weight.device)
    n_prev, n_cur = len(prev), len(active)
    if n_prev == 0 or n_cur == 0:
        return out
    device = weight.device
    q_t = torch.empty(n_cur, dtype=torch.int32, device=device)
    q_j = torch.empty_like(q_t)
    q_b = torch.empty_like(q_t)
    q_delta = torch.empty(n_cur, dtype=torch.float32, device=device)
    BLOCK = 1024
    _pack_by_batch_kernel[(triton.cdiv(n_cur, BLOCK),)](
        active.index, active.by_batch, delta.contiguous(), q_t, q_j, q_b, q_delta, n_cur, B, H, BLOCK=BLOCK
    )
    BLOCK_P, BLOCK_Q = 32, 64
    _sparse_input_grad_kernel[(triton.cdiv(n_prev, BLOCK_P),)](
        prev.index, prev.by_batch, n_prev, H_prev,
        q_t, q_j, q_b, q_delta, active.batch_ptr,
        weight.contiguous(), out, B, H, math.log2(beta), int(shift),
        BLOCK_P=BLOCK_P, BLOCK_Q=BLOCK_Q,
    )
    return out

# ---------------------------------------------------------------------------------------------
# PyTorch reference: the same math, the test oracle and the CPU path


def reference_sparse_weight_grad(trace: torch.Tensor, active: ActiveSet, delta: torch.Tensor) -> torch.Tensor:
    T, B, H = active.shape
    N_in = trace.shape[2]
    rows = trace.reshape(T * B, N_in)
    e = active.index.long()
    dwt = torch.zeros((H, N_in), dtype=torch.float32, device=trace.device)
    chunk = max(1, (1 << 22) // max(1, N_in))  # bound the [entries, N_in] temporary
    for s in range(0, e.numel(), chunk):
        es = e[s : s + chunk]
        dwt.index_add_(0, es % H, rows[es // H].float() * delta[s : s + chunk, None])
    return dwt.t()


def reference_sparse_input_grad(
    weight: torch.Tensor, active: ActiveSet, delta: torch.Tensor, prev: ActiveSet, beta: float, shift: int = 0
) -> torch.Tensor:
    T, B, H = active.shape
    out = torch.zeros(len(prev), dtype=torch.float32, device=weight.device)
    if len(prev) == 0 or len(active) == 0:
        return out
    device = weight.device
    # This layer's entries sorted by (b, t): each previous-layer entry (b, τ, i) pairs with the
    # contiguous run of entries of its batch element at t ≥ τ + shift. Pairs are built in chunks.
    t_all, b_all, j_all = active.decode()
    key = b_all * T + t_all
    key, order = torch.sort(key, stable=True)
    t_q, j_q, d_q = t_all[order], j_all[order], delta[order]
    tau, b_p, i_p = prev.decode()
    start = torch.searchsorted(key, b_p * T + tau + shift)  # τ + shift = T: an empty run
    length = torch.searchsorted(key, (b_p + 1) * T) - start
    powers = torch.tensor([beta], dtype=torch.float64, device=device).pow(torch.arange(T, device=device)).float()
    budget = 1 << 22
    cum = torch.cumsum(length, 0)
    n_prev = len(prev)
    p0 = 0
    while p0 < n_prev:
        before = int(cum[p0 - 1]) if p0 else 0
        p1 = int(torch.searchsorted(cum, torch.tensor(before + budget, device=device), right=True))
        p1 = min(max(p1, p0 + 1), n_prev)
        n = length[p0:p1]
        owner = torch.repeat_interleave(torch.arange(p0, p1, device=device), n)
        first = torch.cumsum(n, 0) - n
        q = start[owner] + torch.arange(owner.numel(), device=device) - first[owner - p0]
        terms = weight[i_p[owner], j_q[q]] * powers[t_q[q] - tau[owner] - shift] * d_q[q]
        out.index_add_(0, owner, terms)
        p0 = p1
    return out
