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
    for r in rows:
        assert r["fwd_ms"] > 0 and r["bwd_ms"] > 0
        if r["impl"] in ("sparseprop", "localzo"):
            assert 0 < r["active_fraction"] < 0.2
            assert r["bwd_speedup"] > 0
        if r["kind"] == "layer" and r["impl"] in ("sparseprop", "localzo"):
            assert r["max_rel_err"] < 1e-5  # dW equals the dense masked gradient
            assert r["ceiling_fraction"] > 0
    assert result["summary"] and "sparse backward" in (tmp_path / "console.txt").read_text()
