"""snnbench/bench/harness.py: timing with spread, the row vocabulary, atomic writes and the renderer."""

from __future__ import annotations

import inspect
import io
import json

import pytest
import torch
from rich.console import Console

from snnbench.bench import harness


def test_cpu_timing_has_ordered_quantiles():
    t = harness.measure(lambda: torch.ones(2000).cumsum(0), "cpu", warmup_ms=1, rep_ms=5)
    assert set(t) == {"median_ms", "p20_ms", "p80_ms"}
    assert 0 < t["p20_ms"] <= t["median_ms"] <= t["p80_ms"]


def test_bandwidth_flops_and_ceiling_fields():
    row = harness.with_bandwidth({"median_ms": 2.0}, 4e9, ceiling_gbps=4000.0)
    assert row["gbps"] == pytest.approx(2000.0) and row["frac_of_ceiling"] == pytest.approx(0.5)
    row = harness.with_bandwidth({"graph_ms": 1.0}, 4e9, None, ms_key="graph_ms", prefix="graph_")
    assert row["graph_gbps"] == pytest.approx(4000.0) and row["graph_frac_of_ceiling"] is None
    row = harness.with_flops({"median_ms": 10.0}, 1e13, peak_tflops=1000.0)
    assert row["tflops"] == pytest.approx(1000.0) and row["frac_of_peak"] == pytest.approx(1.0)
    ceiling = harness.copy_ceiling(4096, torch.float32, "cpu", warmup_ms=1, rep_ms=2)
    assert ceiling["bytes"] == 2 * 4096 * 4 and ceiling["p20_ms"] <= ceiling["p80_ms"]


def test_write_json_is_atomic_and_header_is_complete(tmp_path):
    path = tmp_path / "sub" / "x.json"
    result = harness.header("demo", "cpu", rows=[{"impl": "a", "median_ms": 1.0}])
    harness.write_json(path, result)
    saved = json.loads(path.read_text())
    assert saved["schema"] == harness.SCHEMA and saved["environment"]["torch"] == torch.__version__
    assert "quantiles" in saved["timing"]["method"]
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temporary left behind


def test_bench_entry_takes_the_common_run_parameters_once(tmp_path):
    seen = []

    @harness.bench_entry
    def run_toy_bench(run: harness.BenchRun, *, size: int = 3) -> dict:
        """A toy bench."""
        seen.append((run, size))
        return {"size": size}

    quiet = Console(file=io.StringIO())
    assert run_toy_bench(out=tmp_path, console=quiet, device="cpu", quick=True, size=5) == {"size": 5}
    assert seen[-1] == (harness.BenchRun("cpu", tmp_path, True, quiet), 5)
    run_toy_bench()  # the defaults: device resolved from auto, a console chosen, nothing written
    run, size = seen[-1]
    assert run.device in ("cpu", "cuda") and run.out is None and not run.quick and size == 3
    assert hasattr(run.console, "print")
    assert list(inspect.signature(run_toy_bench).parameters) == ["device", "out", "quick", "console", "size"]
    assert run_toy_bench.__name__ == "run_toy_bench" and run_toy_bench.__doc__ == "A toy bench."
    with pytest.raises(TypeError):
        run_toy_bench("cpu", None, False, None, 5)  # a bench's own options are keyword-only
    assert [key for _, key, _ in harness.TIMING_COLUMNS] == ["median_ms", "p20_ms", "p80_ms"]


def test_render_lists_untimed_rows_by_reason():
    screen = io.StringIO()
    rows = [
        {"impl": "a", "median_ms": 1.5, "frac_of_ceiling": 0.5},
        {"impl": "b", "median_ms": None, "note": "skipped: not installed"},
    ]
    harness.render(
        rows,
        [("impl", "impl", ""), ("ms", "median_ms", ".3g"), ("%", "frac_of_ceiling", "%")],
        Console(file=screen, width=100),
        "t",
    )
    text = screen.getvalue()
    assert "1.5" in text and "50%" in text and "1 rows not timed: skipped: not installed" in text
