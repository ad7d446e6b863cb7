"""``snnbench bench sparse`` on the CPU in quick mode: rows, speed-up columns and the JSON file."""

from __future__ import annotations

import json

from rich.console import Console


def test_sparse_bench_quick_cpu(tmp_path):
    from snnbench.bench.sparse import run_sparse_bench

    console = Console(file=open(tmp_path / "console.txt", "w"), width=160)
    result = run_sparse_bench(device="cpu", out=tmp_path, quick=True, hidden=[24], console=console)
    saved = json.loads((tmp_path / "sparse.json").read_text())
    assert saved["benchmark"] == "sparse" and saved["environment"]["torch"]
    rows = saved["rows"]
    impls = {(r["kind"], r["impl"]) for r in rows}
    assert {("layer", "dense_pytorch"), ("layer", "sparseprop"), ("layer", "localzo")} <= impls
    assert {("step", "dense_pytorch"), ("step", "sparseprop"), ("step", "localzo")} <= impls
    # The tests interpret Triton, so the fused dense baseline runs too, as it would on CUDA.
    assert {("layer", "dense_fused"), ("step", "dense_fused")} <= impls
    # hidden layer 2 on each data-like input, sparse and dense
    assert {(r["input"], r["impl"]) for r in rows if r["kind"] == "layer"} >= {
        (kind, impl) for kind in ("bernoulli", "latency", "events") for impl in ("dense_pytorch", "localzo")
    }
    for r in rows:
        assert r["fwd_ms"] > 0 and r["bwd_ms"] > 0
        if r["impl"] in ("sparseprop", "localzo", "localzo_fp16"):
            assert 0 < r["active_fraction"] < 0.2
            assert r["bwd_speedup"] > 0
        if r["kind"] == "layer" and r["impl"] in ("sparseprop", "localzo"):
            assert r["max_rel_err"] < 1e-5  # dW equals the dense masked gradient
            assert r["prev_entries"] > 0 and r["max_rel_err_dx"] < 1e-5  # so does the input gradient
            assert r["ceiling_fraction"] > 0 and r["gathered_gbps"] > 0
    by_impl = {(r["impl"], r["input"], r["target_active"]): r for r in rows if r["kind"] == "layer" and "target_active" in r}
    for (impl, kind, target), r in by_impl.items():
        if impl == "localzo_fp16":
            # The same entries as LocalZO with an fp32 trace; dW off by the fp16 rounding (2⁻¹¹) only.
            assert r["entries"] == by_impl[("localzo", kind, target)]["entries"]
            assert 0 < r["max_rel_err"] < 2.0**-10
            assert r["gathered_bytes"] * 2 == by_impl[("localzo", kind, target)]["gathered_bytes"]
    assert result["summary"] and "sparse backward" in (tmp_path / "console.txt").read_text()


def test_device_correctness_check_passes_on_the_interpreter():
    # The check `bench sparse` runs first on a GPU, here with the interpreted kernels on small sizes.
    from snnbench.bench.sparse import check_against_reference

    checks = check_against_reference("cpu", T=8, B=5, N=14, H=11)
    for entry in checks[:-1]:
        assert entry["spike_mismatch"] == 0 and entry["record_matches_dense_g"], entry
        assert entry["index_equal"] and entry["entries"] == entry["entries_reference"] > 0, entry
        assert entry["trace_err"] < 1e-6 and entry["dw_rel_err"] < 1e-5 and entry["dx_rel_err"] < 1e-5, entry
    assert max(checks[-1]["grad_rel_err"]) < 1e-5


def test_input_kinds_look_like_the_data():
    import torch

    from snnbench.bench.sparse import input_spikes

    gen = torch.Generator().manual_seed(0)
    latency = input_spikes("latency", 100, 8, 50, 0.0, gen)
    assert float(latency.sum(0).max()) == 1.0 and 0.5 < float(latency.sum(0).mean()) < 0.85  # ≤ 1 spike per input
    events = input_spikes("events", 100, 8, 50, 0.02, gen)
    assert 0.01 < float(events.mean()) < 0.03 and set(events.unique().tolist()) <= {0.0, 1.0}
    def peak_to_mean(x):  # of each sample's spikes per step, averaged over samples
        per_step = x.sum(2)
        return float((per_step.amax(0) / per_step.mean(0).clamp(min=1e-9)).mean())

    bernoulli = input_spikes("bernoulli", 100, 8, 50, 0.02, gen)
    assert peak_to_mean(events) > 1.5 * peak_to_mean(bernoulli)  # bursty in time, unlike Bernoulli
