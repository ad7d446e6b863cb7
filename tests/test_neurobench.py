"""NeuroBench-style metrics against networks small enough to count by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snnbench.conversion.convert import SpikingLayer, convert, simulate
from snnbench.models.qcfs import QCFS
from snnbench.conversion.neurobench import connection_sparsity, footprint, is_binary, neurobench_metrics


def _linear(weight):
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=torch.float32))
    return layer


def _two_layer_snn(theta: float = 1.0) -> nn.Module:
    # Linear(3→2) with one zero weight, an IF layer, Linear(2→1).
    return nn.Sequential(
        _linear([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]),
        SpikingLayer(torch.tensor([theta])),
        _linear([[1.0, 1.0]]),
    )


@pytest.mark.parametrize("theta", [1.0, 2.0])
def test_hand_counted_linear_network(theta):
    snn = _two_layer_snn(theta)
    # Layer 1 currents per step: z = W1·x = [0.5, 2.5]·θ. With v0 = θ/2 and soft reset:
    # t=1: u = [θ, 3θ]   → spikes [1, 1], v = [0, 2θ];  t=2: u = [0.5θ, 4.5θ] → spikes [0, 1].
    x = torch.tensor([[0.5, 0.0, 2.0]]).repeat(2, 1) * theta
    spikes = simulate(snn[:2], x, 2)
    assert torch.equal(spikes[:, 0], torch.tensor([[theta, theta], [0.0, theta]]))

    m = neurobench_metrics(snn, x, steps=2)
    ops = m["synaptic_operations"]
    # Layer 1 (input not spikes): inputs 0 and 2 are nonzero; input 0 reaches 2 nonzero weights,
    # input 2 reaches 1 → 3 MACs per step, 2 steps.
    assert ops["Effective_MACs"] == 6
    # Layer 2 (input θ·s, spikes): 2 spikes at t=1, 1 at t=2, each reaching 1 weight.
    assert ops["Effective_ACs"] == 3
    # Dense: (3·2 + 2·1) synapses × 2 steps, whatever the values.
    assert ops["Dense"] == 16
    assert m["activation_sparsity"] == pytest.approx(1 / 4)  # one silent output of four
    assert m["connection_sparsity"] == pytest.approx(1 / 8)  # one zero weight of eight
    assert m["parameter_count"] == 8
    # 8 float32 weights + the IF layer's θ buffer (1 float) + its empty bias buffer.
    assert m["footprint"] == 8 * 4 + 4
    assert m["samples"] == 2 and m["timesteps"] == 2


def test_conv_counts_exclude_zero_padding():
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.weight[0, 0, 1, 1] = 0.0  # the centre tap
    snn = nn.Sequential(conv, SpikingLayer(torch.tensor([100.0])))  # never fires
    x = torch.full((1, 1, 2, 2), 0.5)
    ops = neurobench_metrics(snn, x, steps=3)["synaptic_operations"]
    # A 2×2 image under a padded 3×3 kernel: each of the 4 outputs sees all 4 pixels (16 products),
    # minus the zero centre tap once per output → 12 per step; dense keeps the centre → 16.
    assert ops["Effective_MACs"] == 12 * 3
    assert ops["Effective_ACs"] == 0
    assert ops["Dense"] == 16 * 3


def test_silent_layer_gives_no_effective_ops_downstream():
    snn = nn.Sequential(_linear([[1.0, 1.0]]), SpikingLayer(torch.tensor([50.0])), _linear([[3.0]]))
    m = neurobench_metrics(snn, torch.full((4, 2), 0.5), steps=5)
    assert m["activation_sparsity"] == 1.0
    assert m["synaptic_operations"]["Effective_ACs"] == 0  # spikes, but none
    assert m["synaptic_operations"]["Effective_MACs"] == 2 * 5
    assert m["synaptic_operations"]["Dense"] == (2 + 1) * 5


def test_binary_input_counts_as_accumulates():
    # NeuroBench's rule: a 0/1 input (an event camera frame) needs no multiplications.
    snn = nn.Sequential(_linear([[1.0, 1.0, 1.0]]), SpikingLayer(torch.tensor([1.0])))
    m = neurobench_metrics(snn, torch.tensor([[1.0, 0.0, 1.0]]), steps=3)
    assert m["synaptic_operations"] == {"Effective_MACs": 0, "Effective_ACs": 2 * 3, "Dense": 3 * 3}
    assert is_binary(torch.tensor([0.0, 1.0, -1.0])) and not is_binary(torch.tensor([0.0, 0.5]))


def test_pooled_spikes_count_as_multiply_accumulates():
    # Average-pooled spikes take values like θ/4: not spikes any more.
    snn = nn.Sequential(SpikingLayer(torch.tensor([1.0])), nn.AvgPool1d(2), nn.Flatten(), _linear([[1.0, 1.0]]))
    x = torch.tensor([[[2.0, 0.0, 2.0, 2.0]]])  # [B=1, C=1, L=4]: positions 0, 2, 3 fire every step
    ops = neurobench_metrics(snn, x, steps=2)["synaptic_operations"]
    assert ops == {"Effective_MACs": 2 * 2, "Effective_ACs": 0, "Dense": 2 * 2}


def test_converted_model_metrics_are_consistent():
    torch.manual_seed(0)
    ann = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        QCFS(4, 1.0),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 2 * 2, 8),
        QCFS(4, 1.0),
        nn.Linear(8, 3),
    )
    snn = convert(ann)
    x = torch.rand(5, 1, 4, 4)
    m = neurobench_metrics(snn, x, steps=4)
    ops = m["synaptic_operations"]
    assert 0.0 <= m["activation_sparsity"] <= 1.0
    assert 0 < ops["Effective_ACs"] + ops["Effective_MACs"] <= ops["Dense"]
    assert ops["Effective_ACs"] > 0  # the last Linear reads spikes
    assert m["footprint"] == footprint(snn) and m["connection_sparsity"] == connection_sparsity(snn) == 0.0
    # Dense counts do not depend on the data.
    assert neurobench_metrics(snn, torch.zeros_like(x), steps=4)["synaptic_operations"]["Dense"] == ops["Dense"]
    # Simulated in time chunks, as the accuracy evaluation does on large inputs: the same counts.
    assert neurobench_metrics(snn, x, steps=4, chunk=1) == m


def test_flattened_spikes_still_count_as_accumulates():
    # θ = 2 spikes are not 0/1 valued, but a view of a spiking layer's output is still spikes.
    snn = nn.Sequential(SpikingLayer(torch.tensor([2.0])), nn.Flatten(), _linear([[1.0, 1.0, 1.0, 1.0]]))
    x = torch.tensor([[[4.0, 0.0], [4.0, 0.0]]])  # [B=1, 2, 2]: two inputs fire every step
    ops = neurobench_metrics(snn, x, steps=2)["synaptic_operations"]
    assert ops == {"Effective_MACs": 0, "Effective_ACs": 2 * 2, "Dense": 4 * 2}


def _full_conv_count(layer, x):
    """The definition: a float64 convolution of the 0/1 masks, summed (what _count shortens)."""
    x64, w64 = (x != 0).double(), (layer.weight != 0).double()
    return float(layer._conv_forward(x64, w64, None).sum())


@pytest.mark.parametrize("groups,stride,padding_mode", [(1, 1, "zeros"), (2, 2, "zeros"), (4, 1, "circular")])
def test_summed_conv_count_equals_the_full_convolution(groups, stride, padding_mode):
    from snnbench.conversion.neurobench import _count

    torch.manual_seed(0)
    conv = nn.Conv2d(4, 8, 3, stride=stride, padding=1, groups=groups, bias=False, padding_mode=padding_mode)
    with torch.no_grad():
        conv.weight[conv.weight.abs() < 0.1] = 0.0  # some zero weights
    x = torch.relu(torch.randn(6, 4, 5, 5))  # about half the inputs zero
    assert _count(conv, x, dense=False) == _full_conv_count(conv, x)


def test_counts_taken_during_the_evaluation_are_those_of_the_first_samples():
    # The accuracy evaluation counts the first `samples` images of its batches in the same simulation.
    from snnbench.conversion.neurobench import NeuroBenchCounter

    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), QCFS(4, 1.0), nn.Flatten(), nn.Linear(64, 3), QCFS(4, 1.0))
    snn = convert(ann)
    x = torch.rand(7, 1, 4, 4)
    with NeuroBenchCounter(snn) as counter:
        for batch in (x[:3], x[3:6], x[6:]):  # batches of 3, 3, 1; count the first 5 images
            counter.select(len(batch), 5 - counter.samples)
            simulate(snn, batch, 4)
    assert counter.result(4).as_dict() == neurobench_metrics(snn, x[:5], steps=4)
