"""`snnbench plot`: PNG and SVG per figure, with titles naming dataset, model and card; figures
without data are skipped with a reason."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.report.inputs import load_inputs
from snnbench.report.plots import make_plots
from snnbench.report.published import load_published, published_records

runner = CliRunner()
CPU_ENV = {"hardware": {"device": "cpu", "name": "x86_64"}}


def conv_record(method, seed, accs):
    return {
        "schema": 1,
        "key": f"cifar100/vgg16/{method}/seed={seed}/x",
        "track": "conversion",
        "dataset": "cifar100",
        "model": "vgg16",
        "method": method,
        "seed": seed,
        "env": CPU_ENV,
        "metrics": {"ann_acc": 76.0, "snn_acc": {str(t): a for t, a in zip((1, 2, 4, 8), accs)}},
    }


def train_record(method, hidden, speed, active):
    return {
        "schema": 1,
        "key": f"shd/snn_mlp/{method}/seed=0/h{hidden}",
        "track": "training",
        "dataset": "shd",
        "model": "snn_mlp",
        "method": method,
        "seed": 0,
        "env": {"hardware": {"device": "cuda", "name": "NVIDIA H200"}},
        "config": {"model": {"params": {"hidden": hidden}}},
        "metrics": {"test_acc": 70.0, "bwd_speedup": speed, "active_fraction": active, "hidden": hidden},
    }


@pytest.fixture
def inputs(tmp_path):
    runs = tmp_path / "runs.jsonl"
    records = [
        conv_record("qcfs", 0, (40, 55, 66, 72)),
        conv_record("qcfs", 1, (42, 57, 64, 73)),
        conv_record("ftbc", 0, (60, 68, 72, 75)),
    ]
    records += [train_record("localzo", h, s, a) for h, s, a in ((200, 40.0, 0.01), (1000, 120.0, 0.004))]
    runs.write_text("".join(json.dumps(r) + "\n" for r in records))
    bench = tmp_path / "h200"
    bench.mkdir()
    (bench / "neuron.json").write_text(
        json.dumps(
            {
                "env": {"hardware": {"device": "cuda", "name": "NVIDIA H200"}},
                "rows": [
                    {
                        "impl": impl,
                        "T": t,
                        "N": n,
                        "dtype": "fp32",
                        "mode": "fwd",
                        "median_ms": 1.0,
                        "frac_of_ceiling": f,
                    }
                    for impl, f in (("triton", 0.9), ("torch", 0.2))
                    for t in (4, 8, 32)
                    for n in (1048576, 8388608)
                ],
            }
        )
    )
    (bench / "sparse.json").write_text(
        json.dumps(
            {
                "env": {"hardware": {"device": "cuda", "name": "NVIDIA H200"}},
                "rows": [
                    {"impl": impl, "hidden": h, "T": 100, "active_fraction": a, "speedup": s}
                    for impl, k in (("localzo", 1.0), ("sparseprop", 0.5))
                    for h, a, s in ((200, 0.01, 30 * k), (1000, 0.008, 90 * k))
                ],
            }
        )
    )
    return runs, bench


def test_every_figure_from_records_and_bench(inputs, tmp_path):
    runs, bench = inputs
    data = load_inputs([runs, bench])
    out = tmp_path / "plots"
    report = make_plots(data.records, data.bench, out, published_records(load_published()))
    names = {p.name for p in report.written}
    for stem in (
        "acc_vs_t_cifar100_vgg16",
        "bwd_speedup_vs_hidden_shd_snn_mlp",
        "bwd_speedup_vs_hidden_sparse_nvidia-h200",
        "bwd_speedup_vs_active_fraction",
        "bandwidth_vs_copy_neuron_nvidia-h200",
    ):
        assert {f"{stem}.png", f"{stem}.svg"} <= names, (stem, sorted(names))
    assert not report.skipped
    svg = (out / "acc_vs_t_cifar100_vgg16.svg").read_text()
    # Title names dataset, model and card; the published QCFS curves of the same pair are drawn.
    assert "cifar100" in svg and "vgg16" in svg and "x86_64" in svg and "published" in svg
    assert (out / "acc_vs_t_cifar100_vgg16.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "NVIDIA H200" in (out / "bandwidth_vs_copy_neuron_nvidia-h200.svg").read_text()


def test_figures_without_data_are_skipped_with_a_reason(tmp_path):
    runs = tmp_path / "only_conv.jsonl"
    runs.write_text(json.dumps(conv_record("qcfs", 0, (1, 2, 3, 4))) + "\n")
    result = runner.invoke(app, ["plot", str(runs), "--out", str(tmp_path / "p"), "--no-published"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "skipped speed-up vs hidden size" in text and "skipped bandwidth vs copy ceiling" in text
    assert (tmp_path / "p" / "acc_vs_t_cifar100_vgg16.png").exists()

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = runner.invoke(app, ["plot", str(empty), "--out", str(tmp_path / "q")])
    assert result.exit_code == 0 and "no figure could be drawn" in " ".join(result.output.split())
    assert runner.invoke(app, ["plot", str(tmp_path / "missing.jsonl")]).exit_code == 2


def test_all_published_draws_published_only_figures(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    report = make_plots([], [], tmp_path / "p", published_records(load_published()), all_published=True)
    names = {p.name for p in report.written}
    assert "acc_vs_t_imagenet_vgg16.svg" in names
