"""Correctness on the device for ``snnbench bench sparse``: the Triton sparse kernels against the
PyTorch reference of the same math on the same active entries, recorded in the JSON."""

from __future__ import annotations

from typing import Any

import torch

from snnbench.kernels.sparse_backward import (
    INPUT_GRAD_DESIGNS,
    SpikeRule,
)
from snnbench.training.snn_mlp import SNNConfig, TrainingMethod
from snnbench.bench.sparse_rows import BETA, localzo_rule, random_weights, sparseprop_rule


def check_against_reference(device: str, T: int = 40, B: int = 24, N: int = 90, H: int = 70) -> list[dict[str, Any]]:
    """Max errors of the Triton path against the reference on ``device`` tensors (same active entries)."""
    from snnbench.kernels import sparse_backward as sb
    from snnbench.training.snn_mlp import SpikingMLP as _MLP

    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(T, B, N, generator=gen) < 0.1).float().to(device)
    w = random_weights(N, H, 0.1, gen, device)
    current = (x.reshape(T * B, N) @ w).view(T, B, H)
    checks: list[dict[str, Any]] = []
    for rule in (sparseprop_rule(0.2), localzo_rule(0.2), SpikeRule("localzo", delta=0.1, q=3, distribution="laplace")):
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
        _, prev, _ = sb.lif_record_forward(prev_cur, BETA, sparseprop_rule(0.3), backend="triton")
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
        method = TrainingMethod(name, rule=localzo_rule(0.3))
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
