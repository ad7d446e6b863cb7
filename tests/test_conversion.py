"""ANN→SNN conversion: the IF simulation matches QCFS where theory says it must, chunked simulation
equals one simulation, calibrated biases survive a save/load, and the digits pipeline converts."""

from pathlib import Path

import pytest
import torch
from torch import nn

from snnbench.config import load_suite
from snnbench.conversion.convert import accuracy_curve, convert, simulate, spiking_layers
from snnbench.conversion.pipeline import run_conversion_cell
from snnbench.models.qcfs import QCFS
from snnbench.neurons import MultiStepIF
from snnbench.records.cells import expand
from snnbench.context import RunContext
from tests.helpers import tiny_digits_suite


@pytest.mark.parametrize("levels", [1, 2, 4, 8])
def test_if_rate_equals_qcfs_when_t_equals_levels(levels):
    # With v0 = θ/2, soft reset and a constant input, T = L steps of IF emit exactly
    # floor(x·L/θ + 1/2) spikes (clipped to [0, L]): the QCFS value. This is why conversion works.
    theta = torch.rand(1) * 3 + 0.5
    act = QCFS(levels, thresh=theta.item())
    x = torch.randn(64, 5) * 2 * theta
    expected = act(x)
    neuron = MultiStepIF(theta)
    rate = neuron(x.unsqueeze(0).expand(levels, -1, -1)).mean(0)
    torch.testing.assert_close(rate, expected, rtol=0, atol=1e-5)


def test_per_channel_threshold_and_bias_broadcast_over_channel_dim():
    theta = torch.tensor([0.5, 1.0, 2.0])
    neuron = MultiStepIF(theta, channels=3)
    bias = torch.randn(4, 3) * 0.1
    neuron.set_bias(bias)
    x = torch.rand(4, 2, 3, 5, 5)
    out = neuron(x)
    v = (theta / 2).reshape(1, 3, 1, 1).expand(2, 3, 5, 5).clone()
    for t in range(4):
        u = v + x[t] - bias[t].reshape(1, 3, 1, 1)
        s = (u >= theta.reshape(1, 3, 1, 1)).float()
        v = u - theta.reshape(1, 3, 1, 1) * s
        torch.testing.assert_close(out[t], theta.reshape(1, 3, 1, 1) * s)


def small_ann(levels: int = 4) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        QCFS(levels, 1.5),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 16, 12),
        QCFS(levels, 1.0),
        nn.Linear(12, 10),
    ).eval()


def test_convert_replaces_every_qcfs_and_keeps_the_ann():
    ann = small_ann()
    snn = convert(ann)
    layers = dict(spiking_layers(snn))
    assert len(layers) == 2
    assert not any(isinstance(m, QCFS) for m in snn.modules())
    assert any(isinstance(m, QCFS) for m in ann.modules())
    assert layers["1"].neuron.thresh.item() == pytest.approx(1.5)


def test_convert_rejects_a_model_without_qcfs():
    with pytest.raises(ValueError, match="no QCFS"):
        convert(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))


def test_chunked_simulation_equals_one_simulation():
    snn = convert(small_ann())
    for _, layer in spiking_layers(snn):
        layer.neuron.set_bias(torch.randn(7, layer.neuron.channels) * 0.05)
    x = torch.rand(5, 1, 8, 8)
    whole = simulate(snn, x, 9)
    chunked = simulate(snn, x, 9, chunk=4)
    torch.testing.assert_close(whole, chunked)


def test_accuracy_curve_uses_the_running_mean():
    logits = torch.tensor([[[1.0, 0.0]], [[0.0, 3.0]]])  # T=2, B=1: step 1 says 0, mean says 1
    assert accuracy_curve(logits, torch.tensor([1])).tolist() == [0, 1]


def test_calibrated_model_survives_save_and_load(tmp_path):
    ann = small_ann()
    snn = convert(ann)
    for _, layer in spiking_layers(snn):
        layer.neuron.set_bias(torch.randn(6, layer.neuron.channels))
    x = torch.rand(3, 1, 8, 8)
    expected = simulate(snn, x, 6)
    torch.save(snn.state_dict(), tmp_path / "snn.pt")
    fresh = convert(ann)
    fresh.load_state_dict(torch.load(tmp_path / "snn.pt", weights_only=True))
    torch.testing.assert_close(simulate(fresh, x, 6), expected)


def test_digits_pipeline_converts_close_to_the_ann(tmp_path):
    suite = load_suite(
        tiny_digits_suite(
            tmp_path,
            datasets=[{"name": "digits"}],
            models=[{"name": "digits_cnn", "width": 16}],
            timesteps=[1, 4, 32],
            training={"epochs": 12, "batch_size": 64, "lr": 0.05},
        )
    )
    cell = expand(suite)[0]
    metrics = run_conversion_cell(cell, RunContext(device=torch.device("cpu"), cache_dir=tmp_path))
    assert metrics["ann_acc"] > 90
    assert abs(metrics["snn_acc"]["32"] - metrics["ann_acc"]) < 3
    assert metrics["snn_acc"]["1"] < metrics["snn_acc"]["32"]
    assert len(metrics["snn_acc_curve"]) == 32
    assert metrics["ann_source"] == "trained"
    assert (Path(tmp_path) / "ann").is_dir()
