"""Micro-benchmarks of hot paths, as pytest-benchmark tests.

In the normal test run they are quick smoke tests (a few fixed rounds). The CI gate
(scripts/ci_gate.sh) reruns them with ``--benchmark-only`` and compares against the committed
baseline ``results/baseline/pytest-bench/perf_baseline.json`` with pytest-benchmark's own
``--benchmark-compare-fail=min:300%`` — generous, and on the minimum, which load spikes on a
shared CI machine do not move.
"""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("pytest_benchmark")

ROUNDS = dict(rounds=15, iterations=1, warmup_rounds=1)


def _records(n_seeds: int = 3):
    from snnbench.report.published import load_published

    base = {
        "schema": 1,
        "suite": "bench",
        "track": "conversion",
        "dataset": "digits",
        "model": "digits_cnn",
        "config": {"training": {"epochs": 5}, "method": {"params": {}}},
        "metrics": {
            "ann_acc": 98.0,
            "snn_acc": {str(t): 90.0 + t / 10 for t in (1, 2, 4, 8, 16, 32)},
            "calibrate_s": 0.1,
            "train_s": 3.0,
        },
    }
    records = []
    for method in ("qcfs", "light", "ftbc"):
        for seed in range(n_seeds):
            r = copy.deepcopy(base)
            r.update(method=method, seed=seed, key=f"digits/digits_cnn/{method}/seed={seed}/x")
            r["metrics"]["ann_acc"] += seed * 0.1
            records.append(r)
    return records, load_published()


def test_bench_if_reference_simulation(benchmark):
    from snnbench.kernels import multistep_if

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, 32, 64, 4, 4, generator=gen)
    thresh = torch.full((64,), 0.8)

    def simulate(x, thresh):  # the CPU path of every converted SNN, which runs without autograd
        with torch.no_grad():
            return multistep_if(x, threshold=thresh, output="scaled", backend="torch")

    out, v = benchmark.pedantic(simulate, args=(x, thresh), **ROUNDS)
    # The output is θ·s; soft reset keeps the membrane bounded by θ plus one step's input.
    assert torch.all(v < 0.8 + 1.0)
    assert bool(((out == 0) | ((out - 0.8).abs() < 1e-6)).all())


def test_bench_lif_module_host_path(benchmark):
    """Host time of one training call of a LIF layer (forward + backward), kernels not launched:
    the checks, allocation and autograd every layer of a network pays per step."""
    from snnbench.kernels.neuron import host_only
    from snnbench.neurons import MultiStepLIF

    layer = MultiStepLIF(tau=2.0, backend="triton")  # under the interpreter flag, on CPU tensors
    x = torch.randn(4, 2, 64, requires_grad=True)
    grad = torch.ones(4, 2, 64)

    def step():
        return torch.autograd.grad(layer(x), x, grad)[0]

    with host_only():
        out = benchmark.pedantic(step, rounds=15, iterations=100, warmup_rounds=1)
    assert out.shape == x.shape


def test_bench_store_append(benchmark, tmp_path):
    from snnbench.records.store import ResultStore, read_records

    store = ResultStore(tmp_path / "r.jsonl")
    record = _records(1)[0][0]
    counter = iter(range(10_000))

    def append():
        store.append(dict(record, key=f"k{next(counter)}"))

    benchmark.pedantic(append, **ROUNDS)
    # Every append is read back, however many times the benchmark called it (once under xdist,
    # where pytest-benchmark does not time).
    assert len(read_records(store.path).records) == next(counter) > 0


def test_bench_leaderboard_build(benchmark):
    from snnbench.report.table import build_leaderboard, render_markdown

    records, sources = _records()

    def build():
        return render_markdown(build_leaderboard(records, sources, include_published="all"))

    text = benchmark.pedantic(build, **ROUNDS)
    assert "digits · digits_cnn" in text and "published [" in text


def test_bench_compare_cells(benchmark, tmp_path):
    from snnbench.report.compare import Cells, compare_cells

    cells = {f"cell{i}": {f"snn_acc.{t}": 90.0 + t for t in range(32)} | {"median_ms": 1.0} for i in range(200)}
    base = Cells(tmp_path / "a.jsonl", "results", cells, ["1"])
    new = Cells(tmp_path / "b.jsonl", "results", cells, ["1"])
    result = benchmark.pedantic(compare_cells, args=(base, new), **ROUNDS)
    assert not result.regressions and len(result.changes) == 200 * 33
