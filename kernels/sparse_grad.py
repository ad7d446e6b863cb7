"""Backward of a sparse LIF layer: the weight gradient and the input gradient over active entries
(math in :mod:`kernels.sparse_backward`), Triton kernels and PyTorch reference."""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .common import interpreting, launch, resolve_backend
from .sparse_common import TRACE_DTYPES, ActiveSet, Backend, check_beta, check_same_device, check_tensor

__all__ = [
    "INPUT_GRAD_DESIGNS",
    "sparse_weight_grad",
    "sparse_input_grad",
    "reference_sparse_weight_grad",
    "reference_sparse_input_grad",
    "backward_bytes",
    "valid_pairs",
    "pair_slots",
    "weight_grad_launch",
    "pairs_launch",
    "input_grad_by_rows",
]

# How the input gradient is computed (docs/design.md, "Sparse backward designs"):
# - "pairs": blocks of the previous layer's entries (batch-grouped) paired with this layer's entries
#   of the same batch element, one W[i, j]·β^(t−τ)·δ per pair;
# - "rows": V[t, b, :] = Σ_{entries at (t, b)} δ·Wᵀ[j, :] with one program per (t, b) row, then a
#   reverse-time scan G_t = V_t + β·G_{t+1} in place, read at the previous layer's entries;
# - "scan": the same, fused: one program per (b, input block) walks t backwards, so V never exists.
INPUT_GRAD_DESIGNS = ("pairs", "rows", "scan")

# ---------------------------------------------------------------------------------------------
# Triton kernels


PAIR_BLOCK_P, PAIR_BLOCK_Q = 32, 64  # the "pairs" kernel's tile (launch and byte model)


def _weight_grad_configs() -> list[triton.Config]:
    if interpreting():
        return [triton.Config({"BLOCK_I": 128, "BLOCK_K": 16}, num_warps=4)]
    # (BLOCK_I, BLOCK_K, warps, stages): 16–64 accumulator values per thread; the light ones leave
    # registers for more loads in flight, the wide ones read each entry's index once per row.
    return [
        triton.Config({"BLOCK_I": bi, "BLOCK_K": bk}, num_warps=w, num_stages=st)
        for bi, bk, w, st in [
            (256, 16, 4, 2),
            (128, 32, 4, 3),
            (512, 16, 8, 3),
            (256, 32, 8, 3),
            (256, 32, 4, 2),
            (512, 32, 8, 2),
            (1024, 16, 8, 2),
            (1024, 8, 4, 3),
        ]  # (128, 64, 4, 3) spilled 72 bytes on sm_90 with Triton 3.8 (the compile check)
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
    grad = _weighted_row_sum(index_ptr, delta_ptr, tr_ptr, start, end, offs_i, mask_i, N_in, H, BLOCK_I, BLOCK_K)
    tl.store(dwt_ptr + j.to(tl.int64) * N_in + offs_i, grad, mask=mask_i)


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


@triton.jit
def _weighted_row_sum(
    idx_ptr, d_ptr, src_ptr, start, end, offs_i, mask_i, row_len, ROW_OF, BLOCK_I: tl.constexpr, BLOCK_K: tl.constexpr
):
    """Σ δ·src[idx // ROW_OF, block] over the entries start..end, in fp32: each entry gathers a
    contiguous slice of one row of ``src`` (whole sectors, unlike a pair's single W[i, j]). The weight
    gradient gathers trace rows (entry e → row e // H); the input gradient rows of Wᵀ (ROW_OF 1,
    which Triton's specialisation on 1 folds away)."""
    acc = tl.zeros([BLOCK_K, BLOCK_I], dtype=tl.float32)
    for k0 in range(start, end, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        mask_k = ks < end
        e = tl.load(idx_ptr + ks, mask=mask_k, other=0)
        d = tl.load(d_ptr + ks, mask=mask_k, other=0.0)
        row = (e // ROW_OF).to(tl.int64)
        tile = tl.load(
            src_ptr + row[:, None] * row_len + offs_i[None, :],
            mask=mask_k[:, None] & mask_i[None, :],
            other=0.0,
        )
        acc += tile.to(tl.float32) * d[:, None]
    return tl.sum(acc, axis=0)


@triton.jit
def _rows_v_kernel(
    j_ptr,
    d_ptr,
    row_ptr,
    wt_ptr,
    v_ptr,
    n_rows,
    N_prev,
    ROWS: tl.constexpr,
    BLOCK_I: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    # ROWS (t, b) rows × one input block of V[t, b, :] = Σ_{entries at (t, b)} δ·Wᵀ[j, :].
    offs_i = tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)
    mask_i = offs_i < N_prev
    first = tl.program_id(0) * ROWS
    for row in range(first, tl.minimum(first + ROWS, n_rows)):
        v = _weighted_row_sum(
            j_ptr,
            d_ptr,
            wt_ptr,
            tl.load(row_ptr + row),
            tl.load(row_ptr + row + 1),
            offs_i,
            mask_i,
            N_prev,
            1,
            BLOCK_I,
            BLOCK_K,
        )
        tl.store(v_ptr + tl.cast(row, tl.int64) * N_prev + offs_i, v, mask=mask_i)


@triton.jit
def _reverse_scan_kernel(v_ptr, T, M, beta, BLOCK: tl.constexpr):
    # In place over [T, M]: G_t = V_t + β·G_{t+1}. M = B·N_prev is small (179 200 in the bench's
    # layer), so one step's loads cannot fill the memory pipe: four steps are loaded before the carry
    # runs through them (the loads never depend on it).
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for s0 in range(0, T, 4):
        t0 = T - 1 - s0
        p0 = v_ptr + t0.to(tl.int64) * M + offs
        m1, m2, m3 = mask & (t0 >= 1), mask & (t0 >= 2), mask & (t0 >= 3)
        v0 = tl.load(p0, mask=mask, other=0.0)
        v1 = tl.load(p0 - M, mask=m1, other=0.0)
        v2 = tl.load(p0 - 2 * M, mask=m2, other=0.0)
        v3 = tl.load(p0 - 3 * M, mask=m3, other=0.0)
        acc = v0 + beta * acc
        tl.store(p0, acc, mask=mask)
        acc = v1 + beta * acc
        tl.store(p0 - M, acc, mask=m1)
        acc = v2 + beta * acc
        tl.store(p0 - 2 * M, acc, mask=m2)
        acc = v3 + beta * acc
        tl.store(p0 - 3 * M, acc, mask=m3)


@triton.jit
def _fused_scan_kernel(
    j_ptr, d_ptr, bt_ptr, wt_ptr, g_ptr, T, B, N_prev, beta, BLOCK_I: tl.constexpr, BLOCK_K: tl.constexpr
):
    # One (b, input block) walks t backwards: V_t from the entries at (b, t) (grouped in (b, t)
    # order), G_t = V_t + β·G_{t+1} written straight to G[t, b, block]. A chain of T steps.
    b = tl.program_id(0)
    offs_i = tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)
    mask_i = offs_i < N_prev
    acc = tl.zeros([BLOCK_I], dtype=tl.float32)
    for step in range(0, T):
        t = T - 1 - step
        v = _weighted_row_sum(
            j_ptr,
            d_ptr,
            wt_ptr,
            tl.load(bt_ptr + b * T + t),
            tl.load(bt_ptr + b * T + t + 1),
            offs_i,
            mask_i,
            N_prev,
            1,
            BLOCK_I,
            BLOCK_K,
        )
        acc = v + beta * acc
        tl.store(g_ptr + (t.to(tl.int64) * B + b) * N_prev + offs_i, acc, mask=mask_i)


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
    return weight_grad_launch(trace.contiguous(), active, delta.contiguous())


def weight_grad_launch(trace: torch.Tensor, active: ActiveSet, delta: torch.Tensor) -> torch.Tensor:
    """The weight gradient's launch on checked, contiguous arguments (the compile check drives it with
    meta tensors)."""
    H, N_in = active.shape[2], trace.shape[2]
    dwt = torch.empty((H, N_in), dtype=torch.float32, device=trace.device)
    if len(active) == 0 or N_in == 0:
        dwt.zero_()
        return dwt.t()
    grid = lambda meta: (triton.cdiv(N_in, meta["BLOCK_I"]) * H,)  # noqa: E731
    launch(
        _sparse_weight_grad_kernel,
        grid,
        trace,
        active.index,
        delta,
        active.col_ptr,
        dwt,
        H,
        N_in,
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
    design: str = "pairs",
) -> torch.Tensor:
    """∂L/∂x at the previous layer's active entries (one value per entry of ``prev``, its ``index`` order).

    ``weight[N_prev, H]`` maps the previous layer's spikes to this layer's currents; ``delta`` holds
    δ = g·∂L/∂s per entry of ``active`` (this layer). ``shift = 1``: the previous layer's spikes at τ
    enter this layer's current at τ + 1 (the official SparseProp recurrence's one-step synaptic delay).
    ``design`` (Triton only, one of :data:`INPUT_GRAD_DESIGNS`): "rows" and "scan" hold one dense
    fp32 [T, B, N_prev] buffer; "pairs" allocates nothing dense.
    """
    if design not in INPUT_GRAD_DESIGNS:
        raise ValueError(f"design must be one of {INPUT_GRAD_DESIGNS}, got {design!r}")
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
    if len(prev) == 0 or len(active) == 0:
        return torch.zeros(len(prev), dtype=torch.float32, device=weight.device)
    if design != "pairs":
        return input_grad_by_rows(weight, active, delta, prev, beta, shift, fused=design == "scan")
    return pairs_launch(weight.contiguous(), active, delta.contiguous(), prev, beta, shift)


_PACK_BLOCK = 1024


def pairs_launch(
    weight: torch.Tensor, active: ActiveSet, delta: torch.Tensor, prev: ActiveSet, beta: float, shift: int
) -> torch.Tensor:
    """The "pairs" design's launches on checked, contiguous arguments with entries in both sets (the
    compile check drives it with meta tensors)."""
    T, B, H = active.shape
    n_prev, n_cur = len(prev), len(active)
    device = weight.device
    out = torch.zeros(n_prev, dtype=torch.float32, device=device)
    q_t = torch.empty(n_cur, dtype=torch.int32, device=device)
    q_j = torch.empty_like(q_t)
    q_b = torch.empty_like(q_t)
    q_delta = torch.empty(n_cur, dtype=torch.float32, device=device)
    launch(
        _pack_by_batch_kernel,
        (triton.cdiv(n_cur, _PACK_BLOCK),),
        active.index,
        active.by_batch,
        delta,
        q_t,
        q_j,
        q_b,
        q_delta,
        n_cur,
        B,
        H,
        BLOCK=_PACK_BLOCK,
    )
    launch(
        _sparse_input_grad_kernel,
        (triton.cdiv(n_prev, PAIR_BLOCK_P),),
        prev.index,
        prev.by_batch,
        n_prev,
        prev.shape[2],
        q_t,
        q_j,
        q_b,
        q_delta,
        active.batch_ptr,
        weight,
        out,
        B,
        H,
        math.log2(beta),
        int(shift),
        BLOCK_P=PAIR_BLOCK_P,
        BLOCK_Q=PAIR_BLOCK_Q,
    )
    return out


def input_grad_by_rows(weight, active: ActiveSet, delta, prev: ActiveSet, beta: float, shift: int, fused: bool):
    """The "rows" / "scan" designs: G[t, b, :] = Σ_{t' ≥ t} β^(t'−t) Σ_{entries at (t', b)} δ·Wᵀ[j, :],
    then ∂L/∂x at a previous-layer entry (τ, b, i) is G[τ + shift, b, i] (0 past the last step)."""
    T, B, H = active.shape
    N_prev = weight.shape[0]
    device = weight.device
    wt = weight.t().contiguous()  # [H, N_prev]: an entry's weights are one contiguous row
    if fused:  # group by (b, t); stable, so the order within a group (and the sum) is fixed
        t, b, j = active.decode()
        key, order = torch.sort((b * T + t).to(torch.int32), stable=True)
        j_sorted = j[order].to(torch.int32)
    else:  # index = (t·B + b)·H + j: sorting the (unique) index sorts by (t, b) row
        index, order = torch.sort(active.index)
        key = torch.div(index, H, rounding_mode="floor")
        j_sorted = (index - key * H).to(torch.int32)
    n_rows = T * B
    d_sorted = delta[order].contiguous()
    bounds = torch.arange(n_rows + 1, device=device, dtype=torch.int32)
    ptr = torch.searchsorted(key, bounds).to(torch.int32)
    g = torch.empty((T, B, N_prev), dtype=torch.float32, device=device)
    if fused:  # narrow blocks: B·⌈N_prev/64⌉ programs, each a chain of T steps
        launch(
            _fused_scan_kernel,
            (B, triton.cdiv(N_prev, 64)),
            j_sorted,
            d_sorted,
            ptr,
            wt,
            g,
            T,
            B,
            N_prev,
            beta,
            BLOCK_I=64,
            BLOCK_K=16,
            num_warps=2,
        )
    else:
        # One row per program on a card (25 600 programs in the bench's layer); in the interpreter a
        # launch per program costs milliseconds, so one program takes every row.
        rows_per = n_rows if interpreting() else 1
        launch(
            _rows_v_kernel,
            (triton.cdiv(n_rows, rows_per), triton.cdiv(N_prev, 256)),
            j_sorted,
            d_sorted,
            ptr,
            wt,
            g,
            n_rows,
            N_prev,
            ROWS=rows_per,
            BLOCK_I=256,
            BLOCK_K=16,
        )
        M = B * N_prev
        launch(_reverse_scan_kernel, (triton.cdiv(M, 256),), g, T, M, beta, BLOCK=256, num_warps=2)
    # prev's index τ·B·N + b·N + i plus shift·B·N is the flat position of (τ + shift, b, i) in G.
    src = prev.index.long() + shift * B * N_prev
    inside = src < T * B * N_prev
    flat = g.view(-1)
    return torch.where(inside, flat[src.clamp(max=T * B * N_prev - 1)], torch.zeros((), device=device))


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


# ---------------------------------------------------------------------------------------------
# Byte model of each design (what `bench sparse` reports; docs/design.md, "Sparse backward designs")


def valid_pairs(active: ActiveSet, prev: ActiveSet, shift: int = 0) -> int:
    """(previous-layer entry, entry) pairs of one batch element with t ≥ τ + shift: the terms of ∂L/∂x,
    and the W[i, j] loads of the "pairs" design."""
    T, B, _ = active.shape
    if len(active) == 0 or len(prev) == 0:
        return 0
    t, b, _ = active.decode()
    key = torch.sort(b * T + t).values
    tau, bp, _ = prev.decode()
    upto = torch.searchsorted(key, (bp + 1) * T) - torch.searchsorted(key, bp * T + tau + shift)
    return int(upto.clamp(min=0).sum())


def pair_slots(active: ActiveSet, prev: ActiveSet) -> int:
    """Pairs the "pairs" kernel evaluates: each block of PAIR_BLOCK_P previous entries against every
    entry of the batch elements it spans, in tiles of PAIR_BLOCK_Q (masked ones included)."""
    n = len(prev)
    if n == 0 or len(active) == 0:
        return 0
    _, b, _ = prev.decode()
    b = b[prev.by_batch.long()]
    first = b[::PAIR_BLOCK_P]
    last = b[
        torch.clamp(torch.arange(PAIR_BLOCK_P - 1, n + PAIR_BLOCK_P - 1, PAIR_BLOCK_P, device=b.device), max=n - 1)
    ]
    ptr = active.batch_ptr.long()
    span = ptr[last + 1] - ptr[first]
    tiles = torch.div(span + PAIR_BLOCK_Q - 1, PAIR_BLOCK_Q, rounding_mode="floor")
    return int(tiles.sum()) * PAIR_BLOCK_P * PAIR_BLOCK_Q


def backward_bytes(
    design: str,
    *,
    T: int,
    B: int,
    N_in: int,
    H: int,
    entries: int,
    prev_entries: int,
    trace_itemsize: int,
    pairs: int = 0,
) -> dict[str, int]:
    """Bytes of one layer's sparse backward (weight gradient + input gradient at ``prev_entries``).

    ``*_gathered_bytes``: what the kernels load through the cache hierarchy, one row slice per entry
    (mostly L2 hits); ``*_moved_bytes``: the DRAM traffic at least (each tensor read or written once).
    ``pairs``: :func:`valid_pairs` (the "pairs" design's W loads).
    """
    if design not in INPUT_GRAD_DESIGNS:
        raise ValueError(f"design must be one of {INPUT_GRAD_DESIGNS}, got {design!r}")
    A, P, rows = entries, prev_entries, T * B
    # dW: one trace row slice per entry; at best the trace once, dW once, (index, g, ∂L/∂s) per entry.
    dw_gathered = A * N_in * trace_itemsize
    dw_moved = rows * N_in * trace_itemsize + 4 * N_in * H + 12 * A
    if design == "pairs":
        dx_gathered = 4 * pairs
        # W once; (t, j, b, δ) packed, written and read back; per previous entry its position,
        # index and result.
        dx_moved = 4 * N_in * H + 32 * A + 12 * P
    else:
        dx_gathered = 4 * A * N_in  # one Wᵀ row slice per entry
        # Wᵀ made (read + write); the sort's keys and order and the permuted (j, δ); the dense
        # [T, B, N_in] buffer: rows writes V, scans it (read + write); scan writes G once; the
        # gather at the previous entries.
        dense = 4 * rows * N_in * (3 if design == "rows" else 1)
        dx_moved = 8 * N_in * H + 24 * A + dense + 12 * P
    return {
        "dw_gathered_bytes": dw_gathered,
        "dx_gathered_bytes": dx_gathered,
        "gathered_bytes": dw_gathered + dx_gathered,
        "dw_moved_bytes": dw_moved,
        "dx_moved_bytes": dx_moved,
        "moved_bytes": dw_moved + dx_moved,
    }
