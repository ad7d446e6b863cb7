"""The rows of ``snnbench bench sparse``: one hidden layer (``layer`` rows, per input kind and active
fraction) and the two-layer training step (``step`` rows), dense baselines and sparse designs timed on
the same entries, with the bytes each backward must move; and the workload they share (weights that put
the membrane near θ, δ calibrated to a target active fraction, data-like input trains)."""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch

from snnbench.bench.harness import measure, with_bandwidth
from snnbench.bench.timing import gbps
from snnbench.kernels.sparse_backward import (
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

BETA = math.exp(-1.0 / 10.0)
U_STD = 0.6  # target standard deviation of the free membrane, so that some neurons reach θ = 1
SURROGATE_WIDTH = 100.0  # SparseProp's fast-sigmoid slope, also the dense baselines' surrogate


def random_weights(n_in: int, n_out: int, input_rate: float, generator: torch.Generator, device: str) -> torch.Tensor:
    """N(0, σ²) weights so that the membrane's stationary std is about U_STD for this input rate."""
    current_std = U_STD * math.sqrt(1.0 - BETA**2)
    sigma = current_std / math.sqrt(max(n_in * input_rate, 1e-6))
    return (torch.randn(n_in, n_out, generator=generator) * sigma).to(device)


def localzo_rule(delta: float) -> SpikeRule:
    return SpikeRule("localzo", delta=delta, q=1, distribution="normal")


def sparseprop_rule(delta: float) -> SpikeRule:
    return SpikeRule("sparseprop", b_th=matched_b_th(delta, "normal"), width=SURROGATE_WIDTH)


def calibrate_delta(current: torch.Tensor, target: float, start: float = 0.05) -> tuple[float, float]:
    """δ whose LocalZO active fraction on ``current`` is close to ``target`` (the fraction is ~linear in δ)."""
    delta = start
    fraction = 0.0
    for _ in range(4):
        _, active, _ = lif_record_forward(current, BETA, localzo_rule(delta), seed=1)
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
    current1 = (data.reshape(T * B, N) @ random_weights(N, N, rate0, gen, device)).view(T, B, N)
    x = reference_lif_scan(current1, BETA)[1]
    w = random_weights(N, H, max(float(x.mean()), 1e-4), gen, device)
    return current1, x, w, (x.reshape(T * B, N) @ w).view(T, B, H)


def layer_rows(
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
        ("sparseprop", sparseprop_rule, torch.float32, designs[:1]),
        ("localzo", localzo_rule, torch.float32, designs),
        ("localzo_fp16", localzo_rule, torch.float16, designs),  # the same entries, the trace gathered as fp16
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


def step_rows(H: int, cfg: dict, device: str, timing: dict, delta: float, target: float) -> list[dict[str, Any]]:
    T, B, N, C = cfg["timesteps"], cfg["batch"], cfg["inputs"], cfg["outputs"]
    gen = torch.Generator().manual_seed(10_000 + H)
    x = (torch.rand(T, B, N, generator=gen) < cfg["input_rate"]).float().to(device)
    y = torch.randint(0, C, (B,), generator=gen).to(device)
    net_cfg = SNNConfig(inputs=N, outputs=C, hidden=(H, H), dt=1e-3, tau_mem=10e-3, tau_out=10e-3, pool="max")
    model = SpikingMLP(net_cfg).to(device)
    with torch.no_grad():
        model.weights[0].copy_(random_weights(N, H, cfg["input_rate"], gen, device))
        s1 = dense_lif_bptt(
            (x.reshape(T * B, N) @ model.weights[0]).view(T, B, H), BETA, "fast_sigmoid", 1.0, backend="torch"
        )
        rate1 = float(s1.mean())
        model.weights[1].copy_(random_weights(H, H, max(rate1, 1e-3), gen, device))
        model.weights[2].copy_(random_weights(H, C, max(rate1, 1e-3), gen, device))
    dense = TrainingMethod("surrogate", surrogate="fast_sigmoid", width=SURROGATE_WIDTH)
    methods = [(impl, dense, backend) for impl, backend in _dense_impls(device)] + [
        ("sparseprop", TrainingMethod("sparseprop", rule=sparseprop_rule(delta)), "auto"),
        ("localzo", TrainingMethod("localzo", rule=localzo_rule(delta)), "auto"),
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
