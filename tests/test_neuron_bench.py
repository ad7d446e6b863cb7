"""``snnbench bench neuron``: its sweep file, baseline, summary and host-overhead targets. The quick
run end to end (JSON, screen) is checked on the GPU check's dry run, which runs it
(tests/test_gpu_check.py)."""

from __future__ import annotations

import pytest
import torch

from snnbench.bench import timing
from snnbench.bench.neuron import SWEEP_KEYS, TIERS, load_sweep, run_neuron_bench, summarize
from snnbench.bench.neuron_rows import point_row
from snnbench.bench.peers import plain_lif_loop
from snnbench.bench.sweep import default_sweep_file
from snnbench.kernels import multistep_lif


def test_the_sweep_lives_in_the_shipped_sweep_file_only():
    from snnbench.bench.sweep_file import check_neuron_sweep

    assert default_sweep_file().exists()
    assert set(load_sweep()) == set(SWEEP_KEYS) | set(TIERS)
    # The default run reads it without pydantic (the GPU machines lack it): the schema checks it here.
    check_neuron_sweep(load_sweep(), default_sweep_file())


def test_sweep_file_rejects_unknown_missing_and_absent(tmp_path):
    import yaml

    path = tmp_path / "kernels.yaml"
    section = yaml.safe_load(default_sweep_file().read_text())["neuron"]
    path.write_text(yaml.safe_dump({"neuron": {**section, "timestep": [4]}}))
    with pytest.raises(ValueError, match="unknown keys"):
        load_sweep(path)
    path.write_text(yaml.safe_dump({"neuron": {k: v for k, v in section.items() if k != "timing"}}))
    with pytest.raises(ValueError, match=r"missing keys \['timing'\]"):
        load_sweep(path)
    with pytest.raises(ValueError, match="not found"):
        load_sweep(tmp_path / "absent.yaml")
    path.write_text(yaml.safe_dump({"neuron": {**section, "timesteps": [2]}}))
    assert load_sweep(path)["timesteps"] == [2]


def test_plain_loop_baseline_is_the_same_neuron():
    # The PyTorch baseline must do the work snnbench does, or the speed-ups mean nothing.
    x = torch.randn(6, 4, 50) + 0.5
    model = load_sweep()["model"]
    ours, _ = multistep_lif(x, backend="torch", **model)
    agree = (plain_lif_loop(x, **model) == ours).float().mean()
    assert agree > 0.999  # h is computed in another order: spikes may differ where h ≈ θ to an ulp


def test_summary_reports_the_design_targets():
    rows = [
        {
            "impl": "snnbench",
            "mode": "fwd_bwd",
            "T": 32,
            "N": 8388608,
            "dtype": "fp32",
            "median_ms": 1.3,
            "copy_time_for_bytes_ms": 1.25,
            "bytes": 1,
        },
        {"impl": "spikingjelly", "mode": "fwd_bwd", "T": 32, "N": 8388608, "dtype": "fp32", "median_ms": 1.7},
        {
            "impl": "snnbench",
            "mode": "fwd",
            "T": 32,
            "N": 8388608,
            "dtype": "fp32",
            "median_ms": 0.5,
            "frac_of_ceiling": 0.95,
        },
    ]
    summary = summarize(rows)
    assert summary["fwd_bwd_target"]["met"] is False
    assert summary["fwd_bwd_target"]["speedup_vs_spikingjelly"] == pytest.approx(1.7 / 1.3)
    assert summary["inference_fwd"]["points_meeting_target"] == 1


def test_host_overhead_per_call_is_judged_against_its_target_per_row():
    """Eager minus graph replay, in µs per call, against 25 µs forward and 60 µs forward+backward."""

    def row(impl, mode, eager_ms, graph_ms):
        times = {"median_ms": eager_ms, "p20_ms": eager_ms, "p80_ms": eager_ms}
        return point_row(impl, mode, 8, 1024, "fp32", times, 1, "", None, graph_ms)

    rows = [
        row("snnbench", "fwd", 0.030, 0.010),
        row("snnbench", "fwd_bwd", 0.100, 0.030),
        row("snnbench_localzo", "fwd_bwd", 0.080, 0.030),
        row("copy", "fwd", 0.02, 0.001),
    ]
    assert rows[0]["host_us_per_call"] == pytest.approx(20.0)
    host = summarize(rows)["host_overhead"]
    assert host["target_us"] == {"fwd": 25.0, "fwd_bwd": 60.0}
    assert [(r["impl"], r["mode"], r["met"]) for r in host["rows"]] == [
        ("snnbench", "fwd", True),
        ("snnbench", "fwd_bwd", False),
        ("snnbench_localzo", "fwd_bwd", True),
    ]
    assert host["points_meeting_target"] == 2 and host["points"] == 3
    path = {"fwd": {"median_us": 30.0}, "fwd_bwd": {"median_us": 50.0}}
    assert {m: v["met"] for m, v in summarize(rows, path)["host_path"].items()} == {"fwd": False, "fwd_bwd": True}


def test_timing_helpers_on_cpu():
    assert timing.resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        assert timing.resolve_device("auto") == "cpu"
        with pytest.raises(ValueError, match="^device"):
            timing.resolve_device("cuda")
    with pytest.raises(ValueError, match="^device"):
        timing.resolve_device("tpu")
    assert timing.gbps(2e9, 1000.0) == pytest.approx(2.0)


def test_an_unknown_impl_is_refused_before_any_timing():
    with pytest.raises(ValueError, match=r"impls: unknown implementation\(s\) \['nosuch'\]"):
        run_neuron_bench(device="cpu", quick=True, impls=["copy", "nosuch"])
