"""``snnbench bench sparse`` on the CPU: its rows at tiny sizes with the kernels interpreted, its
options, its correctness check. The quick run end to end (JSON, rows on every input kind, screen) is
checked on the GPU check's dry run, which runs it (tests/test_gpu_check.py)."""

from __future__ import annotations

import io
import json

from tests.helpers import timed_once


def _tiny_cfg() -> dict:
    """The quick tier at a few neurons and steps, every design, 1 ms timings (the kernels interpreted)."""
    from snnbench.bench import sparse
    from snnbench.bench.sweep import load_section, tier_of

    return dict(
        tier_of(load_section("sparse", sparse.SWEEP_KEYS, sparse.TIERS), "quick", sparse.TIERS),
        timesteps=6,
        batch=4,
        inputs=10,
        designs=["pairs", "rows", "scan"],
        ceiling_gbps=10.0,
        timing={"warmup_ms": 1, "rep_ms": 1},
    )


def _check_times(rows: list[dict]) -> None:
    for r in rows:  # the shared row vocabulary: the backward's time and the forward's
        assert r["median_ms"] > 0 and r["bwd_ms"] == r["median_ms"] and r["fwd_ms"] > 0
        assert r["step_ms"] == r["fwd_ms"] + r["bwd_ms"]


def test_every_design_gets_its_row_and_byte_model(monkeypatch):
    """With the kernels (interpreted here, on a card in a real run) a layer gets one row per design,
    each with its own bytes gathered and moved, all on the same entries and all exact; the dense
    baselines beside them include the fused Triton one (a CPU run has only dense_pytorch)."""
    from snnbench.bench import sparse_rows

    monkeypatch.setattr(sparse_rows, "_sparse_backend", lambda device: "triton")
    monkeypatch.setattr(sparse_rows, "measure", timed_once)
    cfg = _tiny_cfg()
    rows = sparse_rows.layer_rows(8, cfg, "cpu", cfg["timing"], [(0.05, 0.3)], True)
    _check_times(rows)
    dense = {r["impl"]: r for r in rows if "design" not in r}
    assert set(dense) == {"dense_pytorch", "dense_fused"}
    assert all(r["active_fraction"] == 1.0 and r["bytes"] > 0 and r["input"] == "bernoulli" for r in dense.values())
    layer = {(r["impl"], r["design"]): r for r in rows if "design" in r}
    assert set(layer) == {("sparseprop", "pairs")} | {
        (i, d) for i in ("localzo", "localzo_fp16") for d in ("pairs", "rows", "scan")
    }
    for (impl, design), r in layer.items():
        assert r["backend"] == "triton" and r["entries"] > 0 and r["prev_entries"] > 0
        assert r["gathered_bytes"] == r["dw_gathered_bytes"] + r["dx_gathered_bytes"]
        assert r["bytes"] == r["moved_bytes"] and r["frac_of_ceiling"] > 0 and r["gathered_frac_of_ceiling"] > 0
        assert r["max_rel_err_dx"] < 1e-5
        if design == "pairs":
            assert r["dx_gathered_bytes"] == 4 * r["pair_count"] and r["pair_slot_count"] >= r["pair_count"]
        else:
            assert r["dx_gathered_bytes"] == 4 * r["entries"] * 10  # one Wᵀ row of 10 inputs per entry
        if impl == "localzo_fp16":
            same = layer[("localzo", design)]
            assert r["entries"] == same["entries"] and r["dw_gathered_bytes"] * 2 == same["dw_gathered_bytes"]
            assert 0 < r["max_rel_err"] < 2.0**-10
        else:
            assert r["max_rel_err"] < 1e-5
    assert layer[("localzo", "rows")]["dx_moved_bytes"] > layer[("localzo", "scan")]["dx_moved_bytes"]
    assert all(r["bwd_speedup"] > 0 for r in layer.values())  # against dense_pytorch's backward


def test_training_step_rows_include_the_fused_dense_baseline(monkeypatch):
    """The two-layer training step, dense (PyTorch and the fused Triton neuron, interpreted here) and
    sparse (SparseProp, LocalZO at the target activity), each row timed with its speed-up."""
    from snnbench.bench import sparse_rows

    monkeypatch.setattr(sparse_rows, "measure", timed_once)
    cfg = _tiny_cfg()
    rows = sparse_rows.step_rows(8, cfg, "cpu", cfg["timing"], 0.3, 0.05)
    _check_times(rows)
    assert [r["impl"] for r in rows] == ["dense_pytorch", "dense_fused", "sparseprop", "localzo"]
    assert all(r["kind"] == "step" and r["bwd_speedup"] > 0 and r["layers"] for r in rows)
    for r in rows[2:]:
        assert 0 < r["active_fraction"] < 0.2 and r["target_active"] == 0.05 and r["delta"] == 0.3


def test_every_input_kind_gets_its_layer_stage_at_the_sizes_the_tier_names():
    """The quick tier runs layer 2 on every data-like input at hidden 24 and 64, on Bernoulli input
    alone at the other sizes; the training step at every size."""
    from rich.console import Console

    from snnbench.bench import sparse

    cfg = sparse._settings("cpu", True, None, None, None, None)
    assert cfg["kinds_hidden"] == [24, 64]
    quiet = Console(file=io.StringIO())
    assert [name for name, _ in sparse._stages(24, cfg, "cpu", cfg["timing"], quiet)] == [
        "layer/bernoulli",
        "layer/latency",
        "layer/events",
        "step",
    ]
    assert [name for name, _ in sparse._stages(32, cfg, "cpu", cfg["timing"], quiet)] == ["layer/bernoulli", "step"]


def test_sparse_bench_cli_options(tmp_path, monkeypatch):
    """`bench sparse` takes its sizes, designs and input kinds on the command line; bad ones exit 2."""
    from typer.testing import CliRunner

    from snnbench.cli import app

    monkeypatch.setenv("TRITON_INTERPRET", "0")  # the options, not the interpreted fused baseline
    runner = CliRunner()
    args = [
        "bench",
        "sparse",
        "--device",
        "cpu",
        "--quick",
        "--hidden",
        "16",
        "--design",
        "rows",
        "--inputs",
        "latency",
        "--no-step",
        "--out",
        str(tmp_path),
    ]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    rows = json.loads((tmp_path / "sparse.json").read_text())["rows"]
    assert {r["hidden"] for r in rows} == {16} and json.loads((tmp_path / "sparse.json").read_text())["config"][
        "designs"
    ] == ["rows"]
    assert {r.get("input") for r in rows if r["kind"] == "layer"} == {"latency"}
    assert {r["kind"] for r in rows} == {"layer"}  # --no-step
    for bad, message in (
        (["--design", "tiles"], "design must be among pairs, rows, scan"),
        (["--hidden", "10,x"], "expected positive integers"),
        (["--inputs", "audio"], "input must be among"),
    ):
        done = runner.invoke(app, ["bench", "sparse", "--device", "cpu", "--quick", *bad])
        assert done.exit_code == 2 and message in done.output, done.output


def test_device_correctness_check_passes_on_the_interpreter():
    # The check `bench sparse` runs first on a GPU, here with the interpreted kernels on small sizes.
    from snnbench.bench.sparse_checks import check_against_reference

    checks = check_against_reference("cpu", T=8, B=5, N=14, H=11)
    for entry in checks[:-1]:
        assert entry["spike_mismatch"] == 0 and entry["record_matches_dense_g"], entry
        assert entry["index_equal"] and entry["entries"] == entry["entries_reference"] > 0, entry
        assert entry["trace_err"] < 1e-6 and entry["dw_rel_err"] < 1e-5 and entry["dx_rel_err"] < 1e-5, entry
        assert {"dx_rel_err_pairs", "dx_rel_err_rows", "dx_rel_err_scan"} <= set(entry)
    assert max(checks[-1]["grad_rel_err"]) < 1e-5


def test_input_kinds_look_like_the_data():
    import torch

    from snnbench.bench.sparse_rows import input_spikes

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


def test_committed_h200_file_compares_with_a_new_one(tmp_path):
    """results/bench/h200/sparse.json (renamed in place to the harness vocabulary) compares with a file
    the bench writes now: the same row's numbers meet under bytes, gbps, frac_of_ceiling."""
    from snnbench.report.compare import compare_files
    from tests.helpers import REPO

    old_path = REPO / "results/bench/h200/sparse.json"
    old = json.loads(old_path.read_text())
    base = next(r for r in old["rows"] if (r["kind"], r["impl"], r["hidden"]) == ("layer", "dense_pytorch", 1000))
    row = {
        "kind": "layer",
        "hidden": 1000,
        "impl": "dense_pytorch",
        "active_fraction": 1.0,
        "median_ms": base["bwd_ms"],
        "p20_ms": base["bwd_ms"],
        "p80_ms": base["bwd_ms"],
        "bwd_ms": base["bwd_ms"],
        "fwd_ms": base["fwd_ms"],
        "step_ms": base["step_ms"],
        "bytes": base["bytes"],
        "gbps": base["gbps"] / 2,
        "frac_of_ceiling": base["frac_of_ceiling"],
    }
    new = {"benchmark": "sparse", "schema": 2, "environment": old["environment"], "rows": [row]}
    (tmp_path / "new.json").write_text(json.dumps(new))
    result = compare_files(old_path, tmp_path / "new.json", [], [])
    compared = {
        c.metric
        for c in result.changes
        if c.cell.startswith("hidden=1000, impl=dense_pytorch, kind=layer") and c.base is not None and c.new is not None
    }
    assert {"bwd_ms", "bytes", "gbps", "frac_of_ceiling"} <= compared
    assert {c.metric for c in result.regressions} == {"gbps"}  # halved under its new name
