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
  from the counter-based Philox stream of kernels.localzo (key = seed, counter = (b·H + j, 0, t,
  k div 4)), so a seed gives the same active set on the CPU and the GPU, and the same z as the fused
  neuron kernels' LocalZO backward over that layer. The reference evaluates Philox only inside the
  band |u − θ| < δ·max|z| the stream can reach (outside it g is 0 for every draw) and, on the CPU,
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
  Two other input-gradient designs (``design="rows"`` / ``"scan"``) gather one row of Wᵀ per entry
  into a dense [T, B, N_prev] buffer and scan it backwards in time; docs/design.md compares the
  bytes each design gathers and moves.

With ``StackConfig.delay = 1`` (the official SparseProp recurrence ``u[t+1] = β·u[t] + W·x[t]``) each
layer sees its input one step late; the input gradient then pairs entries with t ≥ τ + 1 and decay
β^{t−τ−1} (``shift`` of :func:`sparse_input_grad`).

No dense [T, B, H] gradient is ever allocated: memory and time grow with the number of entries. Only
the forward's own outputs (spikes) and the input trace are dense.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager, Optional, Sequence

import torch

from .lif_record import (  # noqa: F401  (re-exported: the sparse API lives here)
    active_set_from_dense,
    input_trace,
    input_trace_unchecked,
    lif_forward,
    lif_record_forward,
    lif_record_unchecked,
    reference_input_trace,
    reference_lif_record_forward,
    reference_lif_scan,
    reference_spike_g,
)
from .sparse_common import (  # noqa: F401
    BAND_SURROGATES,
    MAX_ABS_Z,
    MEAN_ABS_Z,
    RULES,
    TRACE_DTYPES,
    ActiveSet,
    Backend,
    Distribution,
    Rule,
    SpikeRule,
    check_beta,
    check_index_range,
    check_rule_and_seed,
    check_same_device,
    check_tensor,
    layer_seed,
    matched_b_th,
)
from .sparse_grad import (  # noqa: F401
    INPUT_GRAD_DESIGNS,
    backward_bytes,
    reference_sparse_input_grad,
    reference_sparse_weight_grad,
    sparse_input_grad,
    sparse_weight_grad,
)


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
    # How the Triton path computes each input gradient: one of sparse_grad.INPUT_GRAD_DESIGNS.
    input_grad_design: str = "pairs"


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
                traces.append(input_trace_unchecked(h, cfg.beta, cfg.backend, torch.float32))
                current = (h.reshape(T * B, -1) @ w).view(T, B, -1)
                seed = layer_seed(cfg.seed, layer)
                h, active, _ = lif_record_unchecked(current, cfg.beta, cfg.rule, seed, cfg.backend, False)
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
                    hidden_weights[layer],
                    active,
                    delta,
                    actives[layer - 1],
                    cfg.beta,
                    cfg.backend,
                    cfg.delay,
                    cfg.input_grad_design,
                )
        return (None, None, *grads)


def sparse_lif_stack(x: torch.Tensor, weights: Sequence[torch.Tensor], cfg: StackConfig):
    """Apply :class:`SparseLIFStackFunction`; returns (readout currents, [spike counts per layer]).

    Everything is checked here, once per call, so the layers run without further validation.
    """
    check_tensor("x", x, 3, finite=False)
    names = [f"weights[{k}]" for k in range(len(weights))]
    for name, w in zip(names, weights):
        check_tensor(name, w, 2, finite=False)
    check_same_device(x=x, **dict(zip(names, weights)))
    width = x.shape[2]
    T, B = x.shape[:2]
    for name, w in zip(names, weights):
        if w.shape[0] != width:
            raise ValueError(f"{name} must have {width} rows, got shape {tuple(w.shape)}")
        width = w.shape[1]
        check_index_range(T * B * width)
    check_beta(cfg.beta)
    if cfg.delay not in (0, 1):
        raise ValueError(f"delay must be 0 or 1, got {cfg.delay!r}")
    if cfg.input_grad_design not in INPUT_GRAD_DESIGNS:
        raise ValueError(f"input_grad_design must be one of {INPUT_GRAD_DESIGNS}, got {cfg.input_grad_design!r}")
    check_rule_and_seed(cfg.rule, layer_seed(cfg.seed, 0))
    # One host sync for the input and every weight (a non-finite weight would make every current so).
    finite = torch.stack([torch.isfinite(t).all() for t in (x, *weights)]).tolist()
    for name, ok in zip(["x", *names], finite):
        if not ok:
            raise ValueError(f"{name} holds non-finite values")
    outputs = SparseLIFStackFunction.apply(x, cfg, *weights)
    return outputs[0], list(outputs[1:])
