"""Sparse backward of SparseProp-style LIF layers: active-entry recording, sparse dW and sparse dx.

One layer (docs/design.md §5), time-major, threshold θ (default 1), no bias, no recurrence::

    I   = x @ W                                  # [T, B, H], a dense matmul (torch)
    u_t = β·u_{t-1} + I_t − θ·s_{t-1}            # u_{-1} = s_{-1} = 0; θ taken off after the decay
    s_t = H(u_t − θ)                             # spike when u_t > θ (strict, as in SparseProp)
    tr_t = β·tr_{t-1} + x_t                      # input trace, per input, [T, B, N_in]

The reset path is not differentiated, so every u_t is linear in W with ∂u_t/∂W_ij = tr_{t,i}, and with
δ = g·∂L/∂s (g: the spike-derivative estimate; zero outside the active set)::

    ∂L/∂W_ij         = Σ_{(b,t,j) active} δ_{b,t,j} · tr_{b,t,i}
    ∂L/∂x_{b,τ,i}    = Σ_j W_ij Σ_{t ≥ τ} β^{t-τ} δ_{b,t,j}       (needed only where the previous layer
                                                                  is active: elsewhere its g is 0)

Active sets (``rule``):
- ``sparseprop``: |u − θ| < b_th, g = 1/(k·|u − θ| + 1)² (fast sigmoid, k = ``width``; SparseProp) or,
  with ``surrogate="gaussian"``, the normal pdf of std 1/``width`` (the S3GD baseline of the LocalZO
  paper: std δ, band δ·E|z|);
- ``localzo``: g = (1/q) Σ_k |z_k|/(2δ) · 1[|u − θ| < δ|z_k|] ≠ 0, z_k i.i.d. from ``distribution``
  (normal; uniform on [-√3, √3]; Laplace with scale 1/√2). z is never stored: both backends draw it
  from snnbench.kernels.neuron's counter-based Philox stream (key = seed, counter = (b·H + j, 0, t,
  k div 4)), so a seed gives the same active set on the CPU and the GPU, and the same z as the fused
  neuron kernels' LocalZO backward over that layer. The reference evaluates Philox only inside the
  band |u − θ| < δ·max|z| the stream can reach (outside it g is 0 for every draw) and, with numba,
  only where a compiled bound on the entry's own draws (philox_cpu.reachable) says g may be nonzero.

Recording (forward, two launches of one scan kernel, no racy counter): pass 1 runs the scan, writes
the spikes and counts the active entries of each (b, j); a torch cumsum turns the counts into
offsets; pass 2 re-runs the scan (cheaper than storing u) and writes every active entry at
offset + running count. Entries are stored grouped by neuron, order (j, b, t) — the order the weight
gradient wants — plus a permutation to order (b, j, t), grouped by batch element, for the input
gradient. Both orders are exact functions of the active set, so the result is deterministic.

Backward kernels:
- weight gradient: one program per (block of inputs, neuron j) walks j's entries and sums
  δ·tr[b, t, i-block]: no atomics, a fixed order for a given block configuration (bit-identical
  repeats; on CUDA the autotuned configuration may differ between processes, which changes the
  summation order within fp32 rounding). Programs are numbered so that all neurons of one input block
  run together and the trace columns they read stay in L2.
- input gradient: one program per block of the previous layer's entries (grouped by batch element)
  pairs them with this layer's entries of the same batch element (t ≥ τ) and sums
  W[i, j]·β^{t−τ}·δ. Work is (previous entries) × (this layer's entries per batch element).

With ``StackConfig.delay = 1`` (the official SparseProp recurrence ``u[t+1] = β·u[t] + W·x[t]``) each
layer sees its input one step late; the input gradient then pairs entries with t ≥ τ + 1 and decay
β^{t−τ−1} (``shift`` of :func:`sparse_input_grad`).

No dense [T, B, H] gradient is ever allocated: memory and time grow with the number of entries. Only
the forward's own outputs (spikes) and the input trace are dense.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, ContextManager, Literal, Optional, Sequence

import torch
import triton
import triton.language as tl

from . import philox_cpu
from .common import interpreting, resolve_backend
from .localzo import DISTRIBUTION_ID, DISTRIBUTIONS, localzo_gain, localzo_gain_reference
from .surrogates import SURROGATE_ID, surrogate_grad, surrogate_grad_reference


Rule = Literal["sparseprop", "localzo"]
Distribution = Literal["normal", "uniform", "laplace"]
Backend = Literal["auto", "triton", "torch"]

RULES = ("sparseprop", "localzo")
BAND_SURROGATES = ("fast_sigmoid", "gaussian")
TRACE_DTYPES = (torch.float32, torch.float16)
_SQRT3 = math.sqrt(3.0)
_LAPLACE_SCALE = 1.0 / math.sqrt(2.0)
# E|z| for one draw: the B_th that gives SparseProp the active band of a LocalZO run (docs/design.md §5).
MEAN_ABS_Z = {"normal": math.sqrt(2.0 / math.pi), "uniform": _SQRT3 / 2.0, "laplace": _LAPLACE_SCALE}
# The largest |z| the Philox stream can give: its open uniforms are at least 2⁻²⁴ (and below 1), so
# Box-Muller's radius is at most √(48·ln 2) and the exponential at most 24·ln 2/√2. 1% headroom
# covers fp32 rounding of log/sqrt; the band only has to contain every entry that can be active.
_MIN_UNIFORM_LOG = 24.0 * math.log(2.0)
MAX_ABS_Z = {
    "normal": 1.01 * math.sqrt(2.0 * _MIN_UNIFORM_LOG),
    "uniform": 1.01 * _SQRT3,
    "laplace": 1.01 * _MIN_UNIFORM_LOG * _LAPLACE_SCALE,
}


def layer_seed(seed: int, layer: int) -> int:
    """The LocalZO seed of hidden layer ``layer`` in a step seeded ``seed`` (shared by the dense twin)."""
    return (int(seed) * 1_000_003 + int(layer) * 7919) % (2**31 - 1)


def matched_b_th(delta: float, distribution: str = "normal") -> float:
    """SparseProp's band B_th = δ·E|z| that matches a LocalZO run with q = 1."""
    return delta * MEAN_ABS_Z[distribution]


@dataclass(frozen=True)
class SpikeRule:
    """How a layer picks its active entries and their g. Plain data: travels through autograd."""

    rule: Rule = "localzo"
    theta: float = 1.0  # threshold: spike when u > θ; the next step subtracts θ·s (neuron.py's "subtract")
    # sparseprop
    b_th: float = 0.04
    width: float = 100.0
    surrogate: Literal["fast_sigmoid", "gaussian"] = "fast_sigmoid"  # g inside the band
    # localzo
    delta: float = 0.05
    q: int = 1
    distribution: Distribution = "normal"

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")
        if self.surrogate not in BAND_SURROGATES:
            raise ValueError(f"surrogate must be one of {BAND_SURROGATES}, got {self.surrogate!r}")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {self.distribution!r}")
        for name in ("b_th", "width", "delta"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not math.isfinite(self.theta):
            raise ValueError(f"theta must be finite, got {self.theta!r}")
        if int(self.q) != self.q or self.q < 1:
            raise ValueError(f"q must be a positive integer, got {self.q!r}")


@dataclass
class ActiveSet:
    """The active entries of one layer of shape (T, B, H).

    ``index``: int32 flat time-major index t·B·H + b·H + j, grouped by neuron, order (j, b, t);
    ``g``: float32 spike-derivative estimate of each entry; ``col_ptr``: int32 [H + 1], neuron j's
    entries are ``index[col_ptr[j]:col_ptr[j+1]]``; ``by_batch``: int32 positions into ``index`` in
    order (b, j, t); ``batch_ptr``: int32 [B + 1] segment starts of ``by_batch`` per batch element.
    """

    index: torch.Tensor
    g: torch.Tensor
    col_ptr: torch.Tensor
    by_batch: torch.Tensor
    batch_ptr: torch.Tensor
    shape: tuple[int, int, int]

    def __len__(self) -> int:
        return int(self.index.numel())

    @property
    def fraction(self) -> float:
        T, B, H = self.shape
        return len(self) / max(1, T * B * H)

    def decode(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(t, b, j) of every entry, int64, in ``index`` order."""
        T, B, H = self.shape
        e = self.index.long()
        return e // (B * H), (e // H) % B, e % H

    def dense(self, values: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Scatter ``values`` (default g) into a dense [T, B, H] tensor: for tests and the dense twin."""
        T, B, H = self.shape
        out = torch.zeros(T * B * H, dtype=torch.float32, device=self.index.device)
        out[self.index.long()] = self.g if values is None else values
        return out.view(T, B, H)


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
# Input checks


def _check_tensor(
    name: str, t: torch.Tensor, ndim: int, finite: bool = True, dtypes: tuple = (torch.float32,)
) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    if t.dtype not in dtypes:
        expected = " or ".join(str(d).replace("torch.", "") for d in dtypes)
        raise ValueError(f"{name} must be {expected}, got {t.dtype}")
    if finite and t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} holds non-finite values")


def _check_same_device(**tensors: torch.Tensor) -> None:
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        raise ValueError(f"tensors must share one device, got {devices}")


def _check_beta(beta: float) -> float:
    beta = float(beta)
    if not (0.0 < beta <= 1.0):
        raise ValueError(f"beta must be in (0, 1], got {beta!r}")
    return beta


def _check_index_range(numel: int) -> None:
    if numel >= 2**31:
        raise ValueError(f"T·B·H = {numel} does not fit the int32 entry index")


# ---------------------------------------------------------------------------------------------
# Host functions: forward


def input_trace(
    x: torch.Tensor, beta: float, backend: Backend = "auto", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``tr_t = β·tr_{t-1} + x_t`` for ``x[T, B, N]``, accumulated in fp32 and stored as ``dtype``.

    ``torch.float16`` halves the bytes the weight gradient gathers per active entry (its dominant
    cost) at a relative rounding error of 2⁻¹¹ per trace value; inputs whose trace could overflow
    fp16 raise before the launch.
    """
    _check_tensor("x", x, 3)
    beta = _check_beta(beta)
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
    return _trace(x, beta, backend, dtype)


def _trace(x: torch.Tensor, beta: float, backend: Backend, dtype: torch.dtype) -> torch.Tensor:
    """:func:`input_trace` on arguments already checked."""
    if resolve_backend(backend, x, name="x") == "torch":
        tr = reference_input_trace(x, beta).to(dtype)
    else:
        x = x.contiguous()
        T = x.shape[0]
        N = x[0].numel()
        tr = torch.empty(x.shape, dtype=dtype, device=x.device)
        if x.numel():
            BLOCK = 256
            _input_trace_kernel[(triton.cdiv(N, BLOCK),)](x, tr, T, N, beta, BLOCK=BLOCK)
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
    batch_ptr = torch.cat([off_batch.view(B, H)[:, 0], end]) if H else torch.zeros(B + 1, dtype=torch.int32, device=device)
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
    _check_tensor("current", current, 3)
    beta = _check_beta(beta)
    _check_rule_and_seed(rule, seed)
    _check_index_range(current.numel())
    return _record(current, beta, rule, seed, backend, dense_g)


def _check_rule_and_seed(rule: SpikeRule, seed: int) -> None:
    if not isinstance(rule, SpikeRule):
        raise ValueError(f"rule must be a SpikeRule, got {type(rule).__name__}")
    if int(seed) != seed or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")


def _record(
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
    BLOCK_B, BLOCK_J = 16, 64
    grid = (triton.cdiv(B, BLOCK_B), triton.cdiv(H, BLOCK_J))
    common = dict(
        LOCALZO=rule.rule == "localzo",
        DIST=DISTRIBUTION_ID[rule.distribution],
        Q=int(rule.q),
        SURR=SURROGATE_ID[rule.surrogate],
        BLOCK_B=BLOCK_B,
        BLOCK_J=BLOCK_J,
    )
    scalars = (T, B, H, beta, float(rule.theta), float(rule.b_th), float(rule.width), float(rule.delta), int(seed))
    dummy_i32 = count
    if current.numel():
        _lif_record_kernel[grid](
            current, spikes, count, dummy_i32, dummy_i32, dummy_i32, spikes, dummy_i32, g_dense,
            *scalars, WRITE=False, DENSE_G=dense_g, **common,
        )
    else:
        count.zero_()
    off_col, off_batch, col_ptr, batch_ptr, total = _offsets(count)
    index = torch.empty(total, dtype=torch.int32, device=device)
    g = torch.empty(total, dtype=torch.float32, device=device)
    by_batch = torch.empty(total, dtype=torch.int32, device=device)
    if total:
        _lif_record_kernel[grid](
            current, spikes, count, off_col, off_batch, index, g, by_batch, g_dense,
            *scalars, WRITE=True, DENSE_G=False, **common,
        )
    active = ActiveSet(index, g, col_ptr, by_batch, batch_ptr, (T, B, H))
    return spikes, active, (g_dense if dense_g else None)


def lif_forward(current: torch.Tensor, beta: float, theta: float = 1.0, backend: Backend = "auto") -> torch.Tensor:
    """Spikes only (evaluation): pass 1 of the scan without recording (threshold and reset ``theta``)."""
    _check_tensor("current", current, 3)
    beta = _check_beta(beta)
    if resolve_backend(backend, current, name="current") == "torch":
        return reference_lif_scan(current, beta, theta)[1]
    current = current.contiguous()
    T, B, H = current.shape
    spikes = torch.empty_like(current)
    if current.numel():
        count = torch.empty((B, H), dtype=torch.int32, device=current.device)
        BLOCK_B, BLOCK_J = 16, 64
        grid = (triton.cdiv(B, BLOCK_B), triton.cdiv(H, BLOCK_J))
        _lif_record_kernel[grid](
            current, spikes, count, count, count, count, spikes, count, spikes,
            T, B, H, beta, float(theta), 1.0, 1.0, 1.0, 0,
            WRITE=False, DENSE_G=False, LOCALZO=False, DIST=0, Q=1, SURR=SURROGATE_ID["fast_sigmoid"],
            BLOCK_B=BLOCK_B, BLOCK_J=BLOCK_J,
        )
    return spikes


# ---------------------------------------------------------------------------------------------
# Host functions: backward


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
    _check_tensor("trace", trace, 3, finite=False, dtypes=TRACE_DTYPES)
    _check_active("active", active)
    _check_delta(delta, active)
    T, B, H = active.shape
    if trace.shape[:2] != (T, B):
        raise ValueError(f"trace must be [T={T}, B={B}, N_in], got shape {tuple(trace.shape)}")
    _check_same_device(trace=trace, index=active.index, delta=delta)
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
    _check_tensor("weight", weight, 2, finite=False)
    _check_active("active", active)
    _check_active("prev", prev)
    _check_delta(delta, active)
    beta = _check_beta(beta)
    T, B, H = active.shape
    Tp, Bp, H_prev = prev.shape
    if (Tp, Bp) != (T, B):
        raise ValueError(f"prev must have T={T}, B={B}, got shape {prev.shape}")
    if tuple(weight.shape) != (H_prev, H):
        raise ValueError(f"weight must be [{H_prev}, {H}], got shape {tuple(weight.shape)}")
    _check_same_device(weight=weight, index=active.index, prev_index=prev.index, delta=delta)
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


def reference_input_trace(x: torch.Tensor, beta: float) -> torch.Tensor:
    tr = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    acc = torch.zeros(x.shape[1:], dtype=torch.float32, device=x.device)
    for t in range(x.shape[0]):
        acc = beta * acc + x[t].float()
        tr[t] = acc
    return tr


def reference_spike_g(u_minus_theta: torch.Tensor, rule: SpikeRule, seed: int = 0) -> torch.Tensor:
    """Dense g for every element of ``u − θ[T, B, H]`` (zero outside the active set)."""
    d = u_minus_theta.abs()
    if rule.rule == "sparseprop":
        g = surrogate_grad_reference(d, rule.surrogate, rule.width)
        return torch.where(d < rule.b_th, g, torch.zeros_like(g))
    g = torch.zeros_like(d, dtype=torch.float32)
    # Philox costs ~100 tensor ops per element, so the PyTorch stream runs only where some draw can
    # reach: inside the band δ·max|z|, then (with numba) where a compiled bound on this entry's own
    # draws says g may be nonzero. Both filters only drop entries whose g is 0, so g is unchanged.
    band = rule.delta * MAX_ABS_Z[rule.distribution]
    candidates = philox_cpu.reachable(u_minus_theta, int(seed), rule.delta, rule.q, rule.distribution, band)
    t, b, j = (d < band if candidates is None else candidates).nonzero(as_tuple=True)
    H = d.shape[2]
    if t.numel():
        g[t, b, j] = localzo_gain_reference(
            u_minus_theta[t, b, j], int(seed), t, b * H + j, rule.delta, rule.q, rule.distribution
        )
    return g


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
    _check_index_range(g.numel())
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
    u, spikes = reference_lif_scan(current, beta, rule.theta)
    g = reference_spike_g(u - rule.theta, rule, seed)
    return spikes, active_set_from_dense(g), (g if dense_g else None)


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
# The autograd Function: a stack of sparse LIF layers followed by a linear readout projection


Timer = Optional[Callable[[str], ContextManager]]


@dataclass(frozen=True)
class StackConfig:
    """What the sparse stack needs besides tensors.

    ``timer`` (optional): ``timer(name)`` is a context manager timing a forward section; if the timer
    also has ``begin(name)``, the backward calls it where each hidden layer's backward starts, closing
    the section open before (the caller opens ``readout.bwd`` before ``loss.backward()``). The dense
    path marks the same points with gradient hooks, so both methods' sections cover the same work:
    ``readout.bwd`` = loss, readout and ∂L/∂s of the last hidden layer; ``hiddenL.bwd`` = that
    layer's backward up to the next mark.
    """

    beta: float
    rule: SpikeRule
    seed: int = 0
    backend: Backend = "auto"
    timer: Timer = None
    stats: Optional[dict] = None  # filled by the forward: the per-layer active fraction
    # 1: every hidden layer computes u[t] from its input at t − 1 (u[0] from zeros), the official
    # SparseProp recurrence ``u[t+1] = β·u[t] + W·x[t]``; 0: from its input at t.
    delay: int = 0


def delayed(x: torch.Tensor, steps: int = 1) -> torch.Tensor:
    """``x`` one step later along time (dim 0): a zero first step, the last step dropped."""
    if steps == 0 or x.shape[0] == 0:
        return x
    return torch.cat([torch.zeros_like(x[:1]), x[:-1]])


def _section(cfg: StackConfig, name: str):
    return cfg.timer(name) if cfg.timer is not None else contextlib.nullcontext()


def _mark_backward(cfg: StackConfig, name: str) -> None:
    begin = getattr(cfg.timer, "begin", None)
    if begin is not None:
        begin(name)


class SparseLIFStackFunction(torch.autograd.Function):
    """``x → LIF(x@W_1) → … → LIF(·@W_L) → s_L@W_out`` with the sparse backward of docs/design.md §5.

    Outputs: the readout currents ``[T, B, C]`` and each hidden layer's spike counts ``[B, H_l]``
    (for spike-rate regularisers; their gradient enters δ at the active entries). Gradients flow to
    every weight; the input ``x`` (data) receives none. The only dense gradient is the readout's
    ``[T, B, C]``; each hidden layer's gradient exists only at its active entries.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, cfg: StackConfig, *weights: torch.Tensor):
        if len(weights) < 2:
            raise ValueError("weights must hold at least one hidden weight and the readout weight")
        hidden_weights, w_out = weights[:-1], weights[-1]
        T, B, _ = x.shape
        h = x
        traces, actives, counts = [], [], []
        # Arguments were checked once in sparse_lif_stack: no per-layer validation (and host sync) here.
        for layer, w in enumerate(hidden_weights):
            with _section(cfg, f"hidden{layer + 1}.fwd"):
                h = delayed(h, cfg.delay)
                traces.append(_trace(h, cfg.beta, cfg.backend, torch.float32))
                current = (h.reshape(T * B, -1) @ w).view(T, B, -1)
                seed = layer_seed(cfg.seed, layer)
                h, active, _ = _record(current, cfg.beta, cfg.rule, seed, cfg.backend, False)
                actives.append(active)
                counts.append(h.sum(0))
        with _section(cfg, "readout.fwd"):
            out = (h.reshape(T * B, -1) @ w_out).view(T, B, -1)
        if cfg.stats is not None:
            cfg.stats["active_fraction"] = [a.fraction for a in actives]
        ctx.save_for_backward(h, *traces, *weights)
        ctx.actives = actives
        ctx.cfg = cfg
        ctx.n_hidden = len(hidden_weights)
        return (out, *counts)

    @staticmethod
    def backward(ctx, grad_out, *grad_counts):
        cfg: StackConfig = ctx.cfg
        L = ctx.n_hidden
        saved = ctx.saved_tensors
        last_spikes, traces, weights = saved[0], saved[1 : 1 + L], saved[1 + L :]
        hidden_weights, w_out = weights[:-1], weights[-1]
        actives: list[ActiveSet] = ctx.actives
        T, B, H_last = last_spikes.shape
        grads: list[Optional[torch.Tensor]] = [None] * (L + 1)
        # Still inside the caller's "readout.bwd" section (opened before loss.backward()).
        if grad_out is None:
            grad_out = torch.zeros((T, B, w_out.shape[1]), dtype=torch.float32, device=w_out.device)
        g_rows = grad_out.reshape(T * B, -1)
        grads[L] = last_spikes.reshape(T * B, H_last).t() @ g_rows
        t, b, j = actives[-1].decode()
        grad_s = (w_out[j] * g_rows[t * B + b]).sum(1)
        for layer in range(L - 1, -1, -1):
            active = actives[layer]
            _mark_backward(cfg, f"hidden{layer + 1}.bwd")
            if grad_counts[layer] is not None:
                if layer != L - 1:  # the last layer's (b, j) were decoded above
                    _, b, j = active.decode()
                grad_s = grad_s + grad_counts[layer][b, j]
            delta = active.g * grad_s
            grads[layer] = sparse_weight_grad(traces[layer], active, delta, cfg.backend)
            if layer > 0:
                grad_s = sparse_input_grad(
                    hidden_weights[layer], active, delta, actives[layer - 1], cfg.beta, cfg.backend, cfg.delay
                )
        return (None, None, *grads)


def sparse_lif_stack(x: torch.Tensor, weights: Sequence[torch.Tensor], cfg: StackConfig):
    """Apply :class:`SparseLIFStackFunction`; returns (readout currents, [spike counts per layer]).

    Everything is checked here, once per call, so the layers run without further validation.
    """
    _check_tensor("x", x, 3, finite=False)
    names = [f"weights[{k}]" for k in range(len(weights))]
    for name, w in zip(names, weights):
        _check_tensor(name, w, 2, finite=False)
    _check_same_device(x=x, **dict(zip(names, weights)))
    width = x.shape[2]
    T, B = x.shape[:2]
    for name, w in zip(names, weights):
        if w.shape[0] != width:
            raise ValueError(f"{name} must have {width} rows, got shape {tuple(w.shape)}")
        width = w.shape[1]
        _check_index_range(T * B * width)
    _check_beta(cfg.beta)
    if cfg.delay not in (0, 1):
        raise ValueError(f"delay must be 0 or 1, got {cfg.delay!r}")
    _check_rule_and_seed(cfg.rule, layer_seed(cfg.seed, 0))
    # One host sync for the input and every weight (a non-finite weight would make every current so).
    finite = torch.stack([torch.isfinite(t).all() for t in (x, *weights)]).tolist()
    for name, ok in zip(["x", *names], finite):
        if not ok:
            raise ValueError(f"{name} holds non-finite values")
    outputs = SparseLIFStackFunction.apply(x, cfg, *weights)
    return outputs[0], list(outputs[1:])
