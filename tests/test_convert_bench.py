"""``snnbench bench convert`` on the CPU: the official step-by-step peer is the same neuron, FLOPs are
counted by hand, and the quick run writes every row with its speed and accuracy fields."""

from __future__ import annotations

import json

import torch
from torch import nn

from snnbench.bench import convert as cb
from snnbench.kernels import multistep_if


class _Quiet:
    def print(self, *args):
        pass


def test_step_if_is_the_snnbench_if_neuron():
    x = torch.randn(6, 3, 40) * 0.8 + 0.3
    theta = torch.tensor([0.7])
    neuron = cb.StepIF(theta)
    steps = torch.stack([neuron(x[t]) for t in range(x.shape[0])])
    ours, v = multistep_if(x, threshold=0.7, output="scaled", backend="torch")
    assert torch.equal(steps, ours) and torch.equal(neuron.v, v)


def test_dense_flops_counts_convs_and_linears():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    assert cb.dense_flops(net, torch.zeros(5, 3, 8, 8)) == 2 * (4 * 64 * 27) + 2 * 256 * 10


def test_quick_cpu_run_writes_every_row(tmp_path):
    result = cb.run_convert_bench(device="cpu", out=tmp_path, quick=True, models=["vgg16"], console=_Quiet())
    saved = json.loads((tmp_path / "convert.json").read_text())
    assert saved["benchmark"] == "convert" and saved["schema"] == 2 and saved["rows"] == result["rows"]
    by = {(r["impl"], r["option"]): r for r in saved["rows"]}
    assert set(by) == {
        ("snnbench", "none"),
        ("official_loop", "none"),
        ("spikingjelly", "none"),
        ("snnbench", "bf16"),
        ("snnbench", "channels_last"),
        ("snnbench", "cuda_graph"),
    }
    ours, official = by[("snnbench", "none")], by[("official_loop", "none")]
    assert official["pred_agreement"] == 1.0 and official["max_abs_logit_diff"] < 1e-3
    assert ours["speedup_vs_official_loop"] == official["median_ms"] / ours["median_ms"]
    assert ours["image_steps_per_s"] == ours["images_per_s"] * ours["T"]
    assert ours["flops"] > 0 and ours["tflops"] > 0 and ours["frac_of_peak"] is None  # no card peak on a CPU
    assert by[("snnbench", "channels_last")]["max_abs_logit_diff"] < 1e-3
    assert by[("snnbench", "cuda_graph")]["note"].startswith("skipped")
    assert by[("spikingjelly", "none")]["median_ms"] or by[("spikingjelly", "none")]["note"].startswith("skipped")
