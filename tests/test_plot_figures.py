"""Figures a reader can trust, checked on the matplotlib objects (data and labels), not on pixels."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from snnbench.report.inputs import BenchFile
from snnbench.report.plots import build_figures
from tests.test_plots import conv_record, train_record

GPU_ENV = {"hardware": {"device": "cuda", "name": "NVIDIA H200"}}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _by_name(figures):
    return {f.name: f.fig for f in figures}


def _data_lines(ax):
    return [line for line in ax.lines if line.get_gid() != "reference"]


def test_accuracy_t_axis_reads_1_2_4_and_cpu_gpu_never_share_a_figure():
    gpu = dict(conv_record("ftbc", 0, (61, 69, 73, 76)), env=GPU_ENV)
    figures, skipped = build_figures([conv_record("qcfs", 0, (40, 55, 66, 72)), gpu], [])
    figs = _by_name(figures)
    assert set(figs) == {"acc_vs_t_cifar100_vgg16_cpu-x86_64", "acc_vs_t_cifar100_vgg16_nvidia-h200"}
    cpu_ax = figs["acc_vs_t_cifar100_vgg16_cpu-x86_64"].axes[0]
    gpu_ax = figs["acc_vs_t_cifar100_vgg16_nvidia-h200"].axes[0]
    assert [t.get_text() for t in cpu_ax.get_xticklabels()] == ["1", "2", "4", "8"]
    assert [line.get_label() for line in _data_lines(cpu_ax)] == ["qcfs (n=1)"]
    assert [line.get_label() for line in _data_lines(gpu_ax)] == ["ftbc (n=1)"]
    assert list(_data_lines(gpu_ax)[0].get_ydata()) == [61, 69, 73, 76]
    title = gpu_ax.get_title()
    assert "cifar100" in title and "vgg16" in title and "NVIDIA H200" in title


def test_one_x_value_is_points_not_a_line_and_labels_are_human():
    records = [train_record("localzo", 200, 40.0, 0.01), train_record("sparseprop", 200, 30.0, 0.012)]
    bench = BenchFile(
        path=Path("h200/sparse.json"),
        rows=[
            {"kind": "layer", "impl": impl, "hidden": h, "active_fraction": 0.01, "bwd_speedup": s}
            for impl, s in (("dense_fused", 5.0), ("localzo", 40.0))
            for h in (200, 1000)
        ],
        env=GPU_ENV,
    )
    figures, _ = build_figures(records, [bench])
    figs = _by_name(figures)
    ax = figs["bwd_speedup_vs_hidden_shd_snn_mlp"].axes[0]
    for line in _data_lines(ax):
        assert len(line.get_xdata()) == 1 and line.get_linestyle() == "None" and line.get_marker() == "o"
    assert ax.get_ylabel() == "backward speed-up vs dense BPTT (×)"
    bench_ax = figs["bwd_speedup_vs_hidden_sparse_nvidia-h200"].axes[0]
    labels = [line.get_label() for line in _data_lines(bench_ax)]
    assert labels == ["dense fused", "localzo"]  # not "impl=dense_fused"
    assert [t.get_text() for t in bench_ax.get_xticklabels()] == ["200", "1000"]
    assert all(line.get_linestyle() == "-" for line in _data_lines(bench_ax))


def test_single_time_step_bandwidth_is_bars_and_empty_figures_are_not_made():
    rows = [
        {"impl": "ftbc_stats_kernel", "layer": name, "T": 32, "median_ms": 0.1, "frac_of_ceiling": f}
        for name, f in (("layer1.2", 0.7), ("classifier.5", 0.1))
    ]
    bench = BenchFile(path=Path("h200/ftbc.json"), rows=rows, env=GPU_ENV)
    empty = dict(conv_record("qcfs", 0, ()), env=GPU_ENV)
    figures, skipped = build_figures([empty], [bench])
    figs = _by_name(figures)
    assert set(figs) == {"bandwidth_vs_copy_ftbc_nvidia-h200"}
    ax = figs["bandwidth_vs_copy_ftbc_nvidia-h200"].axes[0]
    assert not _data_lines(ax)
    assert [round(p.get_height(), 3) for p in ax.patches] == [0.7, 0.1]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["layer1.2", "classifier.5"]
    assert "ftbc stats kernel" in ax.get_title() and "T = 32" in ax.get_title() and "NVIDIA H200" in ax.get_title()
    assert ax.get_ylabel() == "fraction of the measured ceiling"
    assert any("accuracy vs T for cifar100 · vgg16: nothing to draw" in s for s in skipped)
