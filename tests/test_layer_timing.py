"""Per-layer timing in the published scope: sampled over training, against both dense baselines."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from snnbench.training.snn_mlp import SNNConfig, SpikingMLP, dense_baseline, training_method
from snnbench.training.sparse_train import LayerSampler, PeakMemory, TrainSettings, train

CPU = torch.device("cpu")


def _spikes(n=24, T=20, N=12, classes=3):
    gen = torch.Generator().manual_seed(0)
    return TensorDataset(
        (torch.rand(n, T, N, generator=gen) < 0.3).float(), torch.randint(0, classes, (n,), generator=gen)
    )


def test_sampler_times_every_layer_on_every_stride_th_step():
    data = _spikes()
    model = SpikingMLP(
        SNNConfig(inputs=12, outputs=3, hidden=(10, 10), weight_multiplier=4.0),
        generator=torch.Generator().manual_seed(0),
    )
    method = training_method("sparseprop", {"b_th": 0.3})
    sampler = LayerSampler(method, dense_baseline(method), CPU, stride=2, warmup=1)
    log = train(model, method, data, TrainSettings(epochs=2, batch_size=4, lr=1e-3), 20, CPU, sampler=sampler)
    assert log.steps == 12 and sampler.samples == len(range(1, 12, 2))
    metrics = sampler.metrics(2, log.active_fraction)
    for layer in (1, 2):
        for phase in ("fwd", "bwd", "fwdbwd"):
            assert metrics[f"layer{layer}_{phase}_ms"] > 0
            assert metrics[f"layer{layer}_{phase}_speedup_vs_torch_loop"] > 0
        fwd, bwd = metrics[f"layer{layer}_fwd_ms"], metrics[f"layer{layer}_bwd_ms"]
        assert abs(metrics[f"layer{layer}_fwdbwd_ms"] - fwd - bwd) < 1e-3
        assert 0 < metrics[f"layer{layer}_active_fraction"] < 1
    # on the CPU the fused baseline is the PyTorch loop: measured once, reported under both names
    assert metrics["layer2_fused_bwd_ms"] == metrics["layer2_torch_loop_bwd_ms"]
    assert metrics["layer_timing"]["samples"] == sampler.samples
    assert sampler.sums.keys() >= {"method.hidden2.bwd", "torch_loop.hidden2.bwd", "method.hidden1.fwd"}
    assert not any(k.startswith("fused.") for k in sampler.sums)


@pytest.mark.parametrize(
    "name, params", [("localzo", {"delta": 0.3}), ("sparseprop", {"b_th": 0.3}), ("surrogate", {})]
)
def test_sampled_passes_leave_training_unchanged(name, params):
    # the sampler runs before the step and clears gradients: the trained weights are the same
    data = _spikes()
    method = training_method(name, params)
    weights = []
    for sampler in (None, LayerSampler(method, dense_baseline(method), CPU, stride=1, warmup=0)):
        model = SpikingMLP(
            SNNConfig(inputs=12, outputs=3, hidden=(10, 10), weight_multiplier=4.0),
            generator=torch.Generator().manual_seed(0),
        )
        train(model, method, data, TrainSettings(epochs=1, batch_size=4, lr=1e-3), 20, CPU, seed=3, sampler=sampler)
        weights.append([w.detach().clone() for w in model.weights])
    for a, b in zip(*weights):
        assert torch.equal(a, b)


def test_paused_work_does_not_count_toward_the_peak():
    with PeakMemory(CPU) as memory:
        with memory.paused():
            big = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
            del big
        small = torch.ones(2**20 // 4)
        del small
    assert memory.peak_bytes < 32 * 2**20


def test_the_dense_method_on_the_cpu_is_timed_once_as_the_torch_loop():
    data = _spikes(n=8)
    model = SpikingMLP(SNNConfig(inputs=12, outputs=3, hidden=(10, 10)), generator=torch.Generator().manual_seed(0))
    method = training_method("surrogate", {"surrogate": "fast_sigmoid", "width": 100.0})
    sampler = LayerSampler(method, dense_baseline(method), CPU, stride=1, warmup=0)
    train(model, method, data, TrainSettings(epochs=1, batch_size=4, lr=1e-3), 20, CPU, sampler=sampler)
    metrics = sampler.metrics(2, [1.0, 1.0])
    assert metrics["layer2_bwd_ms"] == metrics["layer2_torch_loop_bwd_ms"]
    assert metrics["layer2_fwdbwd_speedup_vs_torch_loop"] == 1.0
