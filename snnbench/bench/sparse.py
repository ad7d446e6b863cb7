"""``snnbench bench sparse``: the sparse LIF backward (SparseProp, LocalZO) against dense BPTT.

Workload (docs/design.md §5): T = 100, B = 256, 700 input channels, hidden ∈ {200, 400, 1000, 4000}, β = exp(−1 ms / 10 ms),
θ = 1. Two kinds of rows:

- ``layer``: hidden layer 2 alone, Linear 700→H + LIF, in the scope of the published SparseProp
  speed-ups. Its input is the spike train of a first LIF layer (700→700) fed with data-like trains
  (``input``: ``bernoulli``; ``latency``, one spike per input as in latency-coded images;
  ``events``, bursty event-camera / audio-like trains; see :func:`input_spikes`). Forward = input
  trace + matmul + scan (+ recording); backward from a given ∂L/∂s to ∂L/∂W and the input gradient —
  dense: everywhere; sparse: at the first layer's active entries, as in the training stack. Swept over
  the active fraction at ``sweep_hidden``. ``--preset nmnist`` runs the published N-MNIST-shaped
  layer (700→200, T = 300, B = 256, event-like input) alone.
- ``step``: the two-layer network with a 20-way leaky readout and the training loss; backward includes
  the second layer's input gradient at the first layer's active entries.

Implementations: ``dense_pytorch`` (autograd through the PyTorch time loop, fast-sigmoid surrogate),
``dense_fused`` (the same LIF — ``subtract`` reset, detached — through snnbench.kernels.neuron's
fused forward and reverse-time backward; what the ``surrogate`` training method runs on CUDA),
``sparseprop`` and ``localzo`` (kernels/sparse_backward.py). LocalZO's δ is calibrated per size so that about
``target_active`` of the entries are active; SparseProp gets the matched band B_th = δ·E|z|. A sweep of
δ at one size gives other active fractions.

Every row is in the shared bench vocabulary (:mod:`snnbench.bench.harness`): ``median_ms``,
``p20_ms``, ``p80_ms`` of the backward (also ``bwd_ms``), ``fwd_ms`` (with ``fwd_p20_ms`` /
``fwd_p80_ms``), ``step_ms``, the speed-up against ``dense_pytorch`` of the same kind and size,
``bytes`` (the DRAM bytes the row's backward must move at least), ``gbps`` and ``frac_of_ceiling``
(of the copy bandwidth measured in the same process). Sparse layer rows carry their backward
``design`` (the input gradient's algorithm, :data:`kernels.sparse_grad.INPUT_GRAD_DESIGNS`; the
weight gradient is the same column-gathered kernel in all), the bytes the design gathers through the
cache (``gathered_bytes``, split into ``dw_`` / ``dx_``; ``gathered_gbps``,
``gathered_frac_of_ceiling``), and the largest relative error of dW and dx against the dense masked
gradients for the same active set.

This module must not import ``snnbench.config`` (pydantic is absent on the GPU machines).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Callable, Optional, Sequence

import torch

from snnbench.bench import harness
from snnbench.bench.harness import copy_ceiling, header, measure, render, with_bandwidth, write_json
from snnbench.bench.timing import gbps, json_out_path, release_memory
from snnbench.errors import BenchInputError
from snnbench.kernels.sparse_backward import (
    INPUT_GRAD_DESIGNS,
    SpikeRule,
    backward_bytes,
    input_trace,
    lif_record_forward,
    matched_b_th,
    reference_lif_scan,
    sparse_input_grad,
    sparse_weight_grad,
)
from snnbench.kernels.sparse_grad import pair_slots, valid_pairs
from snnbench.training.snn_mlp import SNNConfig, SpikingMLP, TrainingMethod, dense_lif_bptt
from snnbench.training.sparse_train import time_steps
from snnbench.records.env import triton_interpreted

FULL = {
    "timesteps": 100,
    "batch": 256,
    "inputs": 700,
    "outputs": 20,
    "hidden": [200, 400, 1000, 4000],
    "target_active": 0.01,
    "sweep_hidden": 1000,
    "sweep_targets": [0.001, 0.003, 0.03],
    "input_rate": 0.02,
    "inputs_kinds": ["bernoulli", "latency", "events"],
    "timing": {"warmup_ms": 25, "rep_ms": 100},
}
# The published N-MNIST-shaped protocol (``--preset nmnist``): hidden layer 2 of 200 on 700
# event-like inputs, T = 300, B = 256, layer rows only.
NMNIST_PRESET = FULL | {
    "timesteps": 300,
    "outputs": 10,
    "hidden": [200],
    "target_active": 0.0075,  # SparseProp's published layer-2 active fraction on N-MNIST
    "sweep_hidden": 200,
    "inputs_kinds": ["events"],
    "step": False,
}
QUICK = {
    "timesteps": 20,
    "batch": 16,
    "inputs": 50,
    "outputs": 5,
    "hidden": [32, 64],
    "target_active": 0.02,
    "sweep_hidden": 64,
    "sweep_targets": [0.05],
    "input_rate": 0.1,
    "inputs_kinds": ["bernoulli", "latency", "events"],
    "kinds_hidden": [24, 64],  # the other sizes: Bernoulli only, to keep the smoke run short
    "timing": {"warmup_ms": 2, "rep_ms": 20},
}
BETA = math.exp(-1.0 / 10.0)
U_STD = 0.6  # target standard deviation of the free membrane, so that some neurons reach θ = 1
SURROGATE_WIDTH = 100.0  # SparseProp's fast-sigmoid slope, also the dense baselines' surrogate


def _weights(n_in: int, n_out: int, input_rate: float, generator: torch.Generator, device: str) -> torch.Tensor:
    """N(0, σ²) weights so that the membrane's stationary std is about U_STD for this input rate."""
    current_std = U_STD * math.sqrt(1.0 - BETA**2)
    sigma = current_std / math.sqrt(max(n_in * input_rate, 1e-6))
    return (torch.randn(n_in, n_out, generator=generator) * sigma).to(device)


def _localzo(delta: float) -> SpikeRule:
    return SpikeRule("localzo", delta=delta, q=1, distribution="normal")


def _sparseprop(delta: float) -> SpikeRule:
    return SpikeRule("sparseprop", b_th=matched_b_th(delta, "normal"), width=SURROGATE_WIDTH)


def calibrate_delta(current: torch.Tensor, target: float, start: float = 0.05) -> tuple[float, float]:
    """δ whose LocalZO active fraction on ``current`` is close to ``target`` (the fraction is ~linear in δ)."""
    delta = start
    fraction = 0.0
    for _ in range(4):
        _, active, _ = lif_record_forward(current, BETA, _localzo(delta), seed=1)
        fraction = active.fraction
        if fraction <= 0:
            delta *= 10.0
            continue
        if abs(fraction / target - 1.0) < 0.1:
            break
        delta = min(max(delta * target / fraction, 1e-5), 10.0)
    return delta, fraction


# ---------------------------------------------------------------------------------------------
# One layer


INPUT_KINDS = ("bernoulli", "latency", "events")


def input_spikes(kind: str, T: int, B: int, N: int, rate: float, gen: torch.Generator) -> torch.Tensor:
    """Spike trains ``[T, B, N]`` that look like the data of the training track.

    - ``bernoulli``: every entry fires with probability ``rate``;
    - ``latency``: Fashion-MNIST-like latency code — one spike per input at τ_eff·ln(x/(x − 0.2))
      steps for an intensity x ~ U(0, 1) (τ_eff = 20 steps; x < 0.2 never fires);
    - ``events``: N-MNIST / SHD-like — each sample's activity is a burst around its own time (a
      Gaussian bump of width T/6), channels have exponentially distributed gains (a few busy ones),
      the mean rate is ``rate`` and counts are clipped to 1.
    """
    if kind == "bernoulli":
        return (torch.rand(T, B, N, generator=gen) < rate).float()
    if kind == "latency":
        from snnbench.data.spiking import latency_times

        times = torch.from_numpy(latency_times(torch.rand(B, N, generator=gen).numpy(), steps=T).astype("int64"))
        x = torch.zeros(T, B, N)
        b, i = (times < T).nonzero(as_tuple=True)
        x[times[b, i], b, i] = 1.0
        return x
    if kind == "events":
        t = torch.arange(T, dtype=torch.float32)[:, None, None]
        centre = (0.2 + 0.6 * torch.rand(1, B, 1, generator=gen)) * T
        bump = torch.exp(-0.5 * ((t - centre) / (T / 6.0)) ** 2)
        gain = -torch.log(torch.rand(1, 1, N, generator=gen).clamp(min=1e-6))
        p = bump * gain
        p = (p * (rate / float(p.mean()))).clamp(max=1.0)
        return (torch.rand(T, B, N, generator=gen) < p).float()
    raise ValueError(f"input kind must be one of {INPUT_KINDS}, got {kind!r}")


def layer_inputs(
    kind: str, H: int, cfg: dict, device: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A hidden layer 2 and what feeds it: data-like trains through a first LIF layer (N → N).

    Returns (layer-1 current, layer-1 spikes = this layer's input, this layer's weight [N, H],
    this layer's current). The layer-1 current gives the previous layer's active set, at whose
    entries the input gradient is computed, as in the training stack.
    """
    T, B, N = cfg["timesteps"], cfg["batch"], cfg["inputs"]
    gen = torch.Generator().manual_seed(H * 7 + INPUT_KINDS.index(kind))
    data = input_spikes(kind, T, B, N, cfg["input_rate"], gen).to(device)
    rate0 = max(float(data.mean()), 1e-4)
    current1 = (data.reshape(T * B, N) @ _weights(N, N, rate0, gen, device)).view(T, B, N)
    x = reference_lif_scan(current1, BETA)[1]
    w = _weights(N, H, max(float(x.mean()), 1e-4), gen, device)
    return current1, x, w, (x.reshape(T * B, N) @ w).view(T, B, H)


def _layer_rows(
    H: int,
    cfg: dict,
    device: str,
    timing: dict,
    deltas: list[tuple[float, float]],
    with_dense: bool,
    kind: str = "bernoulli",
) -> list[dict[str, Any]]:
    """Hidden layer 2 alone (the scope of the published SparseProp speed-ups): forward, and backward
    from a given ∂L/∂s to ∂L/∂W and the input gradient at the previous layer's active entries."""
    T, B = cfg["timesteps"], cfg["batch"]
    current1, x, w, _ = layer_inputs(kind, H, cfg, device)
    w.requires_grad_(True)
    gen = torch.Generator().manual_seed(H + 1)
    grad_s = torch.randn(T, B, H, generator=gen).to(device)
    ceiling_gbps = cfg["ceiling_gbps"]
    # dense: the (fwd, bwd) medians of dense_pytorch, every speed-up's base
    rows, dense = _dense_layer_rows(x, w, grad_s, H, cfg, device, timing, kind) if with_dense else ([], None)

    traces = {dtype: input_trace(x, BETA, dtype=dtype) for dtype in (torch.float32, torch.float16)}
    backend = _sparse_backend(device)
    designs = list(cfg["designs"]) if backend == "triton" else ["pairs"]  # the reference has one
    sparse_impls = [
        ("sparseprop", _sparseprop, torch.float32, designs[:1]),
        ("localzo", _localzo, torch.float32, designs),
        ("localzo_fp16", _localzo, torch.float16, designs),  # the same entries, the trace gathered as fp16
    ]
    flat_grad = grad_s.reshape(-1)
    for target, delta in deltas:
        for name, make_rule, trace_dtype, impl_designs in sparse_impls:
            rule = make_rule(delta)
            tr = traces[trace_dtype]
            _, prev, _ = lif_record_forward(current1, BETA, rule, seed=2)  # layer 1's active entries
            forward = _sparse_forward(x, w, rule, trace_dtype, cfg, H)
            _, active, _ = forward()
            fwd = measure(forward, device, **timing)
            counts = {"pair_count": valid_pairs(active, prev), "pair_slot_count": pair_slots(active, prev)}
            for design in impl_designs:
                backward = _sparse_backward(w, tr, active, prev, flat_grad, backend, design)
                dw, dx = backward()
                bwd = measure(backward, device, **timing)
                model = _design_bytes(design, cfg, H, active, prev, tr, counts["pair_count"])
                row = _row("layer", H, name, active.fraction, fwd, bwd, dense, model["moved_bytes"], ceiling_gbps)
                rate = gbps(model["gathered_bytes"], bwd["median_ms"])
                row.update(
                    input=kind,
                    design=design if backend == "triton" else "reference",
                    backend=backend,
                    target_active=target,
                    delta=delta,
                    entries=len(active),
                    prev_entries=len(prev),
                    prev_active_fraction=prev.fraction,
                    trace_dtype=str(trace_dtype).replace("torch.", ""),
                    **counts,
                    **model,
                    gathered_gbps=rate,
                    gathered_frac_of_ceiling=rate / ceiling_gbps if ceiling_gbps else None,
                    max_rel_err=_dense_check(traces[torch.float32], active, grad_s, dw),
                    max_rel_err_dx=_dense_input_check(w.detach(), active, grad_s, prev, dx),
                )
                if name == "sparseprop":
                    row["b_th"] = rule.b_th
                rows.append(row)
    return rows


def _dense_layer_rows(
    x: torch.Tensor, w: torch.Tensor, grad_s: torch.Tensor, H: int, cfg: dict, device: str, timing: dict, kind: str
) -> tuple[list[dict[str, Any]], Optional[tuple[float, float]]]:
    """The dense layer rows and the (fwd, bwd) medians of dense_pytorch, the sparse rows' speed-up base."""
    T, B, N = cfg["timesteps"], cfg["batch"], cfg["inputs"]
    dense_bytes = 4 * (2 * T * B * N + 2 * T * B * H + N * H)  # x, grad_s, the current's grad, dx, dW
    rows, dense = [], None
    for impl, backend in _dense_impls(device):
        fwd, bwd = _dense_layer(x, w, grad_s, backend, device, timing)
        if impl == "dense_pytorch":
            dense = (fwd["median_ms"], bwd["median_ms"])
        rows.append(dict(_row("layer", H, impl, 1.0, fwd, bwd, dense, dense_bytes, cfg["ceiling_gbps"]), input=kind))
    w.grad = None
    return rows, dense


def _sparse_forward(
    x: torch.Tensor, w: torch.Tensor, rule: SpikeRule, trace_dtype: torch.dtype, cfg: dict, H: int
) -> Callable:
    """Layer 2's sparse forward: the input trace, the current and the recorded LIF spikes."""
    T, B, N = cfg["timesteps"], cfg["batch"], cfg["inputs"]

    def forward():
        input_trace(x, BETA, dtype=trace_dtype)  # part of the sparse forward's work, timed with it
        cur = (x.reshape(T * B, N) @ w.detach()).view(T, B, H)
        return lif_record_forward(cur, BETA, rule, seed=3)

    return forward


def _sparse_backward(w: torch.Tensor, tr, active, prev, flat_grad: torch.Tensor, backend: str, design: str) -> Callable:
    """Layer 2's sparse backward from ∂L/∂s at the active entries: ``(dW, dx)``."""

    def backward():
        delta_q = active.g * flat_grad[active.index]
        dw = sparse_weight_grad(tr, active, delta_q, backend)
        return dw, sparse_input_grad(w.detach(), active, delta_q, prev, BETA, backend, design=design)

    return backward


def _design_bytes(design: str, cfg: dict, H: int, active, prev, tr: torch.Tensor, pairs: int) -> dict[str, Any]:
    """The DRAM bytes the design's backward moves at least and the bytes it gathers through the cache."""
    return backward_bytes(
        design,
        T=cfg["timesteps"],
        B=cfg["batch"],
        N_in=cfg["inputs"],
        H=H,
        entries=len(active),
        prev_entries=len(prev),
        trace_itemsize=tr.element_size(),
        pairs=pairs,
    )


def _sparse_backend(device: str) -> str:
    """The Triton kernels on CUDA; the PyTorch reference on a CPU (interpreted kernels would take
    minutes even at the quick sizes)."""
    return "triton" if device == "cuda" else "torch"


def _dense_input_check(w, active, grad_s, prev, dx) -> float:
    """Largest |dx − dense dx| / max|dense dx| at the previous layer's entries (same active set and g)."""
    if len(prev) == 0:
        return 0.0
    delta = active.dense() * grad_s
    acc = torch.zeros_like(delta[0])
    grad_current = torch.empty_like(delta)
    for t in range(delta.shape[0] - 1, -1, -1):
        acc = BETA * acc + delta[t]
        grad_current[t] = acc
    ref = (grad_current @ w.t()).reshape(-1)[prev.index.long()]
    scale = float(ref.abs().max()) or 1.0
    return float((dx - ref).abs().max()) / scale


def _dense_impls(device: str) -> list[tuple[str, str]]:
    """Dense baselines and their neuron backend: the fused kernels need CUDA (or the interpreter)."""
    impls = [("dense_pytorch", "torch")]
    if device == "cuda" or triton_interpreted():
        impls.append(("dense_fused", "triton"))
    return impls


def _dense_layer(x, w, grad_s, backend: str, device: str, timing: dict) -> tuple[dict, dict]:
    """Forward and backward times (median, p20, p80) of Linear + LIF with dense BPTT on ``backend``."""
    T, B, N = x.shape
    H = w.shape[1]

    x = x.detach().requires_grad_(True)  # hidden layer 2: its backward includes the input gradient

    def forward() -> torch.Tensor:
        current = (x.reshape(T * B, N) @ w).view(T, B, H)
        return dense_lif_bptt(current, BETA, "fast_sigmoid", SURROGATE_WIDTH, backend=backend)

    s = forward()
    s.backward(grad_s, retain_graph=True)
    return measure(forward, device, **timing), measure(lambda: s.backward(grad_s, retain_graph=True), device, **timing)


def _dense_check(tr, active, grad_s, dw) -> float:
    """Largest |dW − dense masked dW| / max|dense dW| for the same active set and g."""
    T, B, H = active.shape
    dense_delta = active.dense() * grad_s
    ref = tr.reshape(T * B, -1).t() @ dense_delta.reshape(T * B, H)
    scale = float(ref.abs().max()) or 1.0
    return float((dw - ref).abs().max()) / scale


def _row(
    kind,
    H,
    impl,
    fraction,
    fwd: dict,
    bwd: dict,
    dense: Optional[tuple[float, float]],
    n_bytes: float,
    ceiling_gbps: Optional[float],
) -> dict[str, Any]:
    """A row in the harness vocabulary: median_ms / p20_ms / p80_ms are the backward's (the time the
    speed-ups are about), ``bwd_ms`` repeats the median and ``fwd_*`` time the forward."""
    row = {
        "kind": kind,
        "hidden": H,
        "impl": impl,
        "active_fraction": fraction,
        **bwd,
        "bwd_ms": bwd["median_ms"],
        "fwd_ms": fwd["median_ms"],
        "fwd_p20_ms": fwd["p20_ms"],
        "fwd_p80_ms": fwd["p80_ms"],
        "step_ms": fwd["median_ms"] + bwd["median_ms"],
    }
    if n_bytes:
        with_bandwidth(row, n_bytes, ceiling_gbps)
    if dense:
        row["bwd_speedup"] = dense[1] / row["bwd_ms"]
        row["step_speedup"] = (dense[0] + dense[1]) / row["step_ms"]
    return row


# ---------------------------------------------------------------------------------------------
# The two-layer training step


def _step_rows(H: int, cfg: dict, device: str, timing: dict, delta: float, target: float) -> list[dict[str, Any]]:
    T, B, N, C = cfg["timesteps"], cfg["batch"], cfg["inputs"], cfg["outputs"]
    gen = torch.Generator().manual_seed(10_000 + H)
    x = (torch.rand(T, B, N, generator=gen) < cfg["input_rate"]).float().to(device)
    y = torch.randint(0, C, (B,), generator=gen).to(device)
    net_cfg = SNNConfig(inputs=N, outputs=C, hidden=(H, H), dt=1e-3, tau_mem=10e-3, tau_out=10e-3, pool="max")
    model = SpikingMLP(net_cfg).to(device)
    with torch.no_grad():
        model.weights[0].copy_(_weights(N, H, cfg["input_rate"], gen, device))
        s1 = dense_lif_bptt(
            (x.reshape(T * B, N) @ model.weights[0]).view(T, B, H), BETA, "fast_sigmoid", 1.0, backend="torch"
        )
        rate1 = float(s1.mean())
        model.weights[1].copy_(_weights(H, H, max(rate1, 1e-3), gen, device))
        model.weights[2].copy_(_weights(H, C, max(rate1, 1e-3), gen, device))
    dense = TrainingMethod("surrogate", surrogate="fast_sigmoid", width=SURROGATE_WIDTH)
    methods = [(impl, dense, backend) for impl, backend in _dense_impls(device)] + [
        ("sparseprop", TrainingMethod("sparseprop", rule=_sparseprop(delta)), "auto"),
        ("localzo", TrainingMethod("localzo", rule=_localzo(delta)), "auto"),
    ]
    rows: list[dict[str, Any]] = []
    dense = None
    params = list(model.parameters())
    for impl, method, backend in methods:

        def forward(method=method, backend=backend):
            out = model(x, method, seed=5, backend=backend)
            return model.loss(out, y), out

        loss, out = forward()
        loss.backward(retain_graph=True)
        fwd = measure(lambda: forward(), device, **timing)
        bwd = measure(lambda: loss.backward(retain_graph=True), device, **timing)
        for p in params:
            p.grad = None
        fractions = out.active_fraction
        sections = time_steps(model, method, [(x, y)] * 2, torch.device(device), seed=5, backend=backend)
        if impl == "dense_pytorch":
            dense = (fwd["median_ms"], bwd["median_ms"])
        row = _row("step", H, impl, sum(fractions) / len(fractions), fwd, bwd, dense, 0, None)
        row["layers"] = sections.layers
        if method.sparse:
            row.update(target_active=target, delta=delta)
        rows.append(row)
        del loss, out
    return rows


# ---------------------------------------------------------------------------------------------
# Correctness on the device: the Triton kernels against the PyTorch reference of the same math


def check_against_reference(device: str, T: int = 40, B: int = 24, N: int = 90, H: int = 70) -> list[dict[str, Any]]:
    """Max errors of the Triton path against the reference on ``device`` tensors (same active entries)."""
    from snnbench.kernels import sparse_backward as sb
    from snnbench.training.snn_mlp import SpikingMLP as _MLP

    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(T, B, N, generator=gen) < 0.1).float().to(device)
    w = _weights(N, H, 0.1, gen, device)
    current = (x.reshape(T * B, N) @ w).view(T, B, H)
    checks: list[dict[str, Any]] = []
    for rule in (_sparseprop(0.2), _localzo(0.2), SpikeRule("localzo", delta=0.1, q=3, distribution="laplace")):
        s_tri, a_tri, g_dense = sb.lif_record_forward(current, BETA, rule, seed=7, backend="triton", dense_g=True)
        u, s_ref = sb.reference_lif_scan(current, BETA)
        entry: dict[str, Any] = {"check": f"{rule.rule}/{rule.distribution}/q={rule.q}", "entries": len(a_tri)}
        entry["spike_mismatch"] = int((s_tri != s_ref).sum())
        # LocalZO too: both backends draw z from one Philox stream (log/cos may differ by an ulp on
        # the GPU, which can flip an entry that lies exactly on the band's edge).
        a_ref = sb.active_set_from_dense(sb.reference_spike_g(u - 1.0, rule, seed=7))
        entry["index_equal"] = bool(torch.equal(a_tri.index, a_ref.index))
        entry["entries_reference"] = len(a_ref)
        a_dense = sb.active_set_from_dense(g_dense)
        entry["record_matches_dense_g"] = bool(
            torch.equal(a_dense.index, a_tri.index) and torch.equal(a_dense.by_batch, a_tri.by_batch)
        )
        delta = torch.randn(len(a_tri), generator=gen).to(device)
        tr = sb.input_trace(x, BETA, "triton")
        entry["trace_err"] = float((tr - sb.reference_input_trace(x, BETA)).abs().max())
        dw_t = sb.sparse_weight_grad(tr, a_tri, delta, "triton")
        dw_r = sb.reference_sparse_weight_grad(tr, a_tri, delta)
        entry["dw_rel_err"] = float((dw_t - dw_r).abs().max() / dw_r.abs().max().clamp(min=1e-12))
        prev_cur = torch.randn(T, B, N, generator=gen).to(device)
        _, prev, _ = sb.lif_record_forward(prev_cur, BETA, _sparseprop(0.3), backend="triton")
        w_prev = torch.randn(N, H, generator=gen).to(device)
        dx_r = sb.reference_sparse_input_grad(w_prev, a_tri, delta, prev, BETA)
        for design in INPUT_GRAD_DESIGNS:
            dx_t = sb.sparse_input_grad(w_prev, a_tri, delta, prev, BETA, "triton", design=design)
            err = float((dx_t - dx_r).abs().max() / dx_r.abs().max().clamp(min=1e-12)) if len(prev) else 0.0
            entry[f"dx_rel_err_{design}"] = err
        entry["dx_rel_err"] = max(entry[f"dx_rel_err_{d}"] for d in INPUT_GRAD_DESIGNS)
        checks.append(entry)
    # The whole sparse stack against its dense twin (same forward kernel, dense masked backward).
    cfg = SNNConfig(inputs=N, outputs=5, hidden=(H, H + 3), pool="max")
    model = _MLP(cfg, torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        for k, p in enumerate(model.weights):
            p.mul_(6.0 if k == 0 else 3.0)
    y = torch.randint(0, 5, (B,), generator=gen).to(device)
    grads = {}
    for name in ("localzo", "localzo_dense"):
        method = TrainingMethod(name, rule=_localzo(0.3))
        model.zero_grad()
        out = model(x, method, seed=11)
        model.loss(out, y).backward()
        grads[name] = [p.grad.clone() for p in model.weights]
        fractions = out.active_fraction
    errs = [
        float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))
        for a, b in zip(grads["localzo"], grads["localzo_dense"])
    ]
    checks.append({"check": "stack localzo vs localzo_dense", "grad_rel_err": errs, "active_fraction": fractions})
    return checks


# ---------------------------------------------------------------------------------------------
# Driver


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline numbers: one-layer backward speed-ups near the target active fraction."""
    out: dict[str, Any] = {}
    for r in rows:
        if r["kind"] == "layer" and r["impl"] in ("sparseprop", "localzo", "localzo_fp16") and "bwd_speedup" in r:
            key = (
                f"layer2_H{r['hidden']}_{r.get('input', 'bernoulli')}_{r['impl']}_{r.get('design', 'pairs')}"
                f"_at_{r.get('target_active')}"
            )
            out[key] = {
                "bwd_speedup": round(r["bwd_speedup"], 2),
                "active_fraction": round(r["active_fraction"], 5),
                "gathered_frac_of_ceiling": r.get("gathered_frac_of_ceiling"),
            }
        if r["kind"] == "step" and "bwd_speedup" in r and r["impl"] != "dense_pytorch":
            out[f"step_H{r['hidden']}_{r['impl']}"] = {
                "bwd_speedup": round(r["bwd_speedup"], 2),
                "step_speedup": round(r["step_speedup"], 2),
                "active_fraction": round(r["active_fraction"], 5),
            }
    return out


COLUMNS = [
    ("kind", "kind", ""),
    ("input", "input", ""),
    ("H", "hidden", ""),
    ("impl", "impl", ""),
    ("design", "design", ""),
    ("trace", "trace_dtype", ""),
    ("active", "active_fraction", ".3%"),
    ("fwd ms", "fwd_ms", ".3f"),
    *harness.timing_columns(".3f", median="bwd ms"),
    ("bwd ×", "bwd_speedup", ".1f"),
    ("step ×", "step_speedup", ".2f"),
    ("GB/s", "gbps", ".0f"),
    ("of copy", "frac_of_ceiling", ".1%"),
    ("gathered GB/s", "gathered_gbps", ".0f"),
    ("rel err dW", "max_rel_err", ".1e"),
    ("rel err dx", "max_rel_err_dx", ".1e"),
]


def _stages(H: int, cfg: dict[str, Any], device: str, timing: dict[str, Any], console: Any) -> list:
    """``(name, rows_fn)`` for hidden size ``H``: the layer rows per input kind (δ set for the target
    activity, plus the δ sweep at ``sweep_hidden``) and the training-step rows."""
    T, B, N = cfg["timesteps"], cfg["batch"], cfg["inputs"]
    stages = []
    every_kind = cfg.get("kinds_hidden") is None or H in cfg["kinds_hidden"]
    for kind in cfg["inputs_kinds"] if every_kind else cfg["inputs_kinds"][:1]:
        current = layer_inputs(kind, H, cfg, device)[3]
        delta, fraction = calibrate_delta(current, cfg["target_active"])
        del current
        console.print(f"H={H}, {kind} input: δ={delta:.4g} gives {100 * fraction:.3f}% active in layer 2")
        deltas = [(cfg["target_active"], delta)]
        if H == cfg["sweep_hidden"]:
            deltas += [(t, delta * t / cfg["target_active"]) for t in cfg["sweep_targets"]]
        stages.append((f"layer/{kind}", lambda k=kind, d=deltas: _layer_rows(H, cfg, device, timing, d, True, k)))
    if cfg.get("step", True):
        gen = torch.Generator().manual_seed(H)
        x = (torch.rand(T, B, N, generator=gen) < cfg["input_rate"]).float().to(device)
        current = (x.reshape(T * B, N) @ _weights(N, H, cfg["input_rate"], gen, device)).view(T, B, H)
        delta, fraction = calibrate_delta(current, cfg["target_active"])
        del x, current
        stages.append(("step", lambda d=delta: _step_rows(H, cfg, device, timing, d, cfg["target_active"])))
    return stages


def _settings(
    device: str,
    quick: bool,
    preset: Optional[str],
    hidden: Optional[Sequence[int]],
    designs: Optional[Sequence[str]],
    inputs: Optional[Sequence[str]],
    step: Optional[bool] = None,
) -> dict[str, Any]:
    """The sweep for this call, every option checked (a bad one is a ValueError: exit 2)."""
    if preset not in (None, "nmnist"):
        raise BenchInputError(f"--preset {preset}: expected nmnist or nothing")
    cfg = dict(NMNIST_PRESET if preset == "nmnist" else QUICK if (quick or device == "cpu") else FULL)
    if hidden:
        bad = [h for h in hidden if int(h) != h or h < 1]
        if bad:
            raise BenchInputError(f"--hidden: sizes must be positive integers, got {bad}")
        cfg["hidden"] = [int(h) for h in hidden]
    cfg["designs"] = list(designs or INPUT_GRAD_DESIGNS)
    for name, chosen, allowed in (("design", cfg["designs"], INPUT_GRAD_DESIGNS), ("input", inputs or [], INPUT_KINDS)):
        unknown = [c for c in chosen if c not in allowed]
        if unknown:
            raise BenchInputError(f"--{name} must be among {', '.join(allowed)}, got {', '.join(map(str, unknown))}")
    if inputs:
        cfg["inputs_kinds"] = list(inputs)
    if step is not None:
        cfg["step"] = bool(step)
    return cfg


def working_set_bytes(cfg: dict[str, Any], hidden: int) -> int:
    """fp32 bytes a layer (and step) row of ``hidden`` neurons holds at once, at least: the input and
    its gradient [T, B, N], six [T, B, H] traces (current, membrane, spikes and their gradients), the
    weights and their gradient [N, H] and the second layer [H, H]."""
    tb, n = cfg["timesteps"] * cfg["batch"], cfg["inputs"]
    return 4 * (2 * tb * n + 6 * tb * hidden + 2 * n * hidden + hidden * hidden)


@harness.bench_entry
def run_sparse_bench(
    run: harness.BenchRun,
    *,
    hidden: Optional[Sequence[int]] = None,
    preset: Optional[str] = None,
    designs: Optional[Sequence[str]] = None,
    inputs: Optional[Sequence[str]] = None,
    step: Optional[bool] = None,
) -> dict[str, Any]:
    """Run the sweep; write ``out/sparse.json`` (``sparse_<preset>.json``) atomically after every
    stage (a cut-off run keeps its rows). ``designs``: the input-gradient designs to compare (all by
    default); ``inputs``: the data-like input kinds (all by default); ``step=False`` skips the
    two-layer training-step rows."""
    device, console = run.device, run.console
    cfg = _settings(device, run.quick, preset, hidden, designs, inputs, step)
    largest = max(cfg["hidden"] + [cfg["sweep_hidden"]])
    harness.refuse_beyond_memory(
        working_set_bytes(cfg, largest), device, f"--hidden {largest} (T = {cfg['timesteps']}, B = {cfg['batch']})"
    )
    timing = dict(cfg["timing"])
    note = ""
    if device == "cpu":
        note = "no GPU: small sizes; the sparse rows time the PyTorch reference, not the Triton kernels"
        console.print(note)
    ceiling = copy_ceiling(1 << (26 if device == "cuda" else 22), torch.float32, device, **timing)
    cfg["ceiling_gbps"] = ceiling["gbps"]
    result = header(
        "sparse",
        device,
        note=note,
        config={k: v for k, v in cfg.items() if k not in ("timing", "ceiling_gbps")}
        | {"beta": BETA, "theta": 1.0, "surrogate_width": SURROGATE_WIDTH},
        ceiling=ceiling,
        bytes_note=BYTES_NOTE,
        rows=[],
    )
    result["timing"].update(timing)
    path = json_out_path(run.out, f"sparse_{preset}.json" if preset else "sparse.json")
    started = time.perf_counter()
    if device == "cuda":
        result["correctness"] = check_against_reference(device)
        console.print(json.dumps(result["correctness"], indent=1))

    for H in cfg["hidden"]:
        for stage, fn in _stages(H, cfg, device, timing, console):
            try:
                result["rows"].extend(fn())
            except torch.cuda.OutOfMemoryError as err:  # the dense baseline at the largest size
                result.setdefault("skipped", []).append({"hidden": H, "stage": stage, "error": str(err)[:200]})
            release_memory(device)
            result["summary"] = summarize(result["rows"])
            result["elapsed_s"] = round(time.perf_counter() - started, 1)
            write_json(path, result)
    title = f"sparse backward on {result['environment']['hardware'].get('name', device)} ({device})"
    render(result["rows"], COLUMNS, console, title)
    console.print(json.dumps(result["summary"], indent=2, default=str))
    if path is not None:
        console.print(f"wrote {path}")
    return result


BYTES_NOTE = (
    "bytes: DRAM bytes the row's backward must move at least (each tensor once; sparse rows: the design's "
    "model, kernels.sparse_grad.backward_bytes; dense rows: x, ∂L/∂s, ∂L/∂I, dx, dW); gbps = bytes / median "
    "backward time; frac_of_ceiling = gbps / the copy's gbps measured in the same process. gathered_bytes: "
    "what the kernels load through the cache, one trace row slice (dW) and one W row slice or W[i, j] per "
    "pair (dx) per entry, mostly L2 hits; gathered_gbps = gathered_bytes / median backward time."
)
