"""``snnbench bench convert`` on the CPU: the official step-by-step peer is the same neuron and FLOPs are
counted by hand. The quick run end to end (every row with its speed and accuracy fields) is checked
on the GPU check's dry run, which runs it (tests/test_gpu_check.py)."""

from __future__ import annotations

import torch
from torch import nn

from snnbench.bench import convert as cb
from snnbench.kernels import multistep_if


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
