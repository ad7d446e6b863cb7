"""The SNN Calibration family in the suite schema, the records and the fused-kernel bias order."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from snnbench.config import SuiteError, load_suite
from snnbench.conversion.convert import convert, simulate
from snnbench.conversion.graph import relu_graph
from snnbench.conversion.snnc_calibration import ftbc_snnc, relu_targets
from snnbench.conversion.snnc_layer import preceding_affine, residual_layers, to_snnc
from snnbench.models.activations import ClipReLU
from snnbench.records.cells import expand
from snnbench.records.labels import method_label

REPO = Path(__file__).resolve().parents[1]
SNNC_MODEL = {"name": "digits_cnn", "activation": "relu", "family": "snnc", "threshold": "mse"}


def _suite(tmp_path: Path, **fields) -> Path:
    data = yaml.safe_load((REPO / "suites" / "digits.yaml").read_text())
    data.update(fields)
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_families_suite_makes_each_family_only_its_own_cells() -> None:
    from snnbench.records.labels import ann_family

    cells = expand(load_suite(REPO / "suites" / "digits_families.yaml"))
    by_family: dict[str, set[str]] = {}
    for cell in cells:
        by_family.setdefault(ann_family(cell.model.params), set()).add(cell.method.name)
    assert by_family == {
        "qcfs": {"none", "light", "ftbc"},
        "snnc": {"none", "light", "advanced", "ftbc_snnc"},
        "rts": {"rts", "light", "ftbc_rts"},
    }
    assert len(cells) == (3 + 6 + 3) * 3


def test_a_family_method_stays_on_its_family_without_a_methods_list(tmp_path) -> None:
    suite = load_suite(
        _suite(tmp_path, models=[{"name": "digits_cnn"}, SNNC_MODEL], methods=["none", "ftbc", "advanced"])
    )
    pairs = {(c.model.params.get("family", "default"), c.method.name) for c in expand(suite)}
    assert pairs == {("default", "none"), ("default", "ftbc"), ("snnc", "none"), ("snnc", "advanced")}


@pytest.mark.parametrize(
    "fields,needles",
    [
        ({"models": [{"name": "digits_cnn", "family": "snnc"}]}, ["models.0", "activation: relu"]),
        ({"models": [{**SNNC_MODEL, "family": "rtss"}]}, ["models.0", "family must be"]),
        ({"models": [{**SNNC_MODEL, "threshold": "max", "threshold_granularity": "channel"}]}, ["models.0", "mse"]),
        ({"models": [{"name": "digits_cnn"}], "methods": ["qcfs", "advanced"]}, ["methods.1", "family: snnc"]),
        ({"models": [SNNC_MODEL], "methods": ["light", "ftbc"]}, ["methods.1", "family: snnc takes"]),
        (
            {"models": [SNNC_MODEL, {"name": "digits_cnn"}], "methods": ["advanced"]},
            ["models.1", "none of the methods"],
        ),
        (
            {"models": [SNNC_MODEL], "methods": [{"name": "ftbc_snnc", "bias_order": "late"}]},
            ["methods.0", "bias_order"],
        ),
        (
            {"models": [SNNC_MODEL], "methods": [{"name": "advanced", "weights_samples": 100}]},
            ["methods.0", "weights_samples (100) must be a multiple of weights_batch_size (32)"],
        ),
        ({"models": [SNNC_MODEL], "methods": [{"name": "advanced", "weights_lr": 0}]}, ["methods.0", "weights_lr"]),
        ({"models": [SNNC_MODEL], "methods": [{"name": "advanced", "weights": "yes"}]}, ["methods.0", "weights"]),
    ],
)
def test_family_mistakes_are_refused_by_field(tmp_path, fields, needles) -> None:
    with pytest.raises(SuiteError) as err:
        load_suite(_suite(tmp_path, **fields))
    for needle in needles:
        assert needle in str(err.value)


def test_records_carry_the_family_label() -> None:
    assert method_label("ftbc", {}, {}) == "FTBC (+QCFS)"
    assert method_label("ftbc", {}, {"activation": "relu"}) == "FTBC (+ReLU)"
    assert method_label("light", {}, {"activation": "rts"}) == "light (+RTS)"
    assert method_label("advanced", {"weights": True}, SNNC_MODEL) == "SNNC-AP"
    assert method_label("advanced", {"weights": False}, SNNC_MODEL) == "SNNC-AP (potentials only)"
    # Records from before the weights calibration have no ``weights``: they ran potentials only.
    assert method_label("advanced", {"batch_size": 128}, SNNC_MODEL) == "SNNC-AP (potentials only)"
    assert method_label("ftbc_snnc", {"average": True}, SNNC_MODEL) == "FTBC w/ avg (+SNNC)"


def _advanced_request(images: int, **params):
    from torch.utils.data import TensorDataset

    from snnbench.conversion.calibration import CalibrationRequest

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    graph = relu_graph(model, fold="snnc")
    for clip in (m for m in graph.modules() if isinstance(m, ClipReLU)):
        clip.thresh = torch.full((1,), 0.7)
    data = TensorDataset(torch.rand(images, 1, 8, 8), torch.zeros(images, dtype=torch.long))
    snn = to_snnc(convert(graph), 4)
    return CalibrationRequest(relu_targets(graph), snn, data, 4, params, torch.device("cpu"), seed=0, family="snnc")


def test_advanced_calibrates_weights_then_potentials_unless_told_not_to() -> None:
    from snnbench.conversion.calibration import calibrate

    small = {
        "batch_size": 8,
        "weights_samples": 16,
        "weights_batch_size": 8,
        "weights_iterations": 3,
        "weights_lr": 0.05,
    }
    results = {}
    for weights in (True, False):
        request = _advanced_request(24, **small, weights=weights)
        conv = next(m for m in request.snn.modules() if isinstance(m, nn.Conv2d))
        before = conv.weight.detach().clone()
        extra = calibrate("advanced", request)
        layer = next(m for m in request.snn.modules() if hasattr(m, "sim_length"))
        assert layer.initial.numel() > 0  # the potentials, in both variants
        results[weights] = (torch.equal(conv.weight, before), extra.get("weights_calibration_images"))
    assert results == {True: (False, 16), False: (True, None)}


def test_advanced_refuses_more_weight_samples_than_the_calibration_set_has() -> None:
    from snnbench.conversion.calibration import calibrate

    with pytest.raises(ValueError, match="weights_samples is 32 but the calibration set has 24 images"):
        calibrate("advanced", _advanced_request(24, weights_samples=32, weights_batch_size=8))


class _Residual(nn.Module):
    def __init__(self, conv_first: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv_first = conv_first

    def forward(self, x):
        return self.relu(self.conv(x) + x if self.conv_first else x + self.conv(x))


def test_a_residual_if_layer_is_its_blocks_convolution_plus_the_shortcut() -> None:
    snn = to_snnc(convert(relu_graph(_Residual(conv_first=True), fold="snnc")), 4)
    assert residual_layers(snn) == {"relu"}
    assert preceding_affine(snn) == {"relu": snn.conv}


@pytest.mark.parametrize("block,last_conv", [("BasicBlock", "conv2"), ("Bottleneck", "conv3")])
def test_torchvision_blocks_map_to_the_official_spike_res_module(block: str, last_conv: str) -> None:
    # out += identity after bn2 / bn3, the block's ReLU module called again: its second call is the
    # SpikeResModule's neuron, and the block's last convolution (not the downsample) its convolution.
    from torchvision.models import resnet

    model = resnet.ResNet(getattr(resnet, block), [1, 1, 1, 1], num_classes=3).eval()
    snn = to_snnc(convert(relu_graph(model, fold="snnc")), 2)
    names = {id(m): n for n, m in snn.named_modules()}
    convs = {layer: names[id(conv)] for layer, conv in preceding_affine(snn).items()}
    residual = residual_layers(snn)
    assert len(residual) == 4
    assert {convs[layer] for layer in residual} == {f"layer{i}.0.{last_conv}" for i in range(1, 5)}


def test_a_shortcut_that_is_no_modules_output_is_refused_by_name() -> None:
    # The weights calibration caches the shortcut's output through a hook: here it is the input itself.
    from snnbench.conversion.snnc_layer import shortcut_sources

    with pytest.raises(ValueError, match="'relu' adds 'x', not a module's output"):
        shortcut_sources(to_snnc(convert(relu_graph(_Residual(conv_first=True), fold="snnc")), 4))


def test_a_residual_sum_without_its_convolution_first_is_refused_by_name() -> None:
    # SpikeResModule is conv(input) + residual: the main branch is the add's first operand.
    graph = relu_graph(_Residual(conv_first=False), fold="snnc")
    with pytest.raises(ValueError, match="'relu' integrates 'x'"):
        preceding_affine(to_snnc(convert(graph), 4))


def test_the_kernel_bias_order_differs_from_the_official_by_rounding_only() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    graph = relu_graph(model, fold="snnc")
    for clip in (m for m in graph.modules() if isinstance(m, ClipReLU)):
        clip.thresh = torch.full((1,), 0.7)
    x = torch.rand(16, 1, 8, 8)
    snn = to_snnc(convert(graph), 8)
    ftbc_snnc(relu_targets(graph), snn, [x], 8, 0.3, average=False)
    official = simulate(snn, x, 8)
    layer = next(m for m in snn.modules() if hasattr(m, "bias_order"))
    layer.bias_order = "kernel"
    fused = simulate(snn, x, 8)
    assert layer.neuron.has_bias()
    # Same spikes up to the rare last-bit flip: the logits agree closely.
    assert torch.allclose(fused, official, atol=1e-3)


def test_an_snnc_cell_converts_once_per_t(tmp_path) -> None:
    from snnbench.context import RunContext
    from snnbench.conversion.pipeline import run_conversion_cell
    from tests.helpers import tiny_digits_suite

    model = {**SNNC_MODEL, "width": 4, "threshold_granularity": "channel", "threshold_batches": 2}
    suite = load_suite(
        tiny_digits_suite(
            tmp_path,
            models=[model],
            methods=[{"name": "ftbc_snnc", "batches": 2, "batch_size": 32, "iterations": 1}],
            timesteps=[2, 3],
            training={"epochs": 2, "batch_size": 64, "lr": 0.05},
        )
    )
    (cell,) = expand(suite)
    metrics = run_conversion_cell(cell, RunContext(device=torch.device("cpu"), cache_dir=tmp_path))
    assert metrics["conversion_per_t"] is True and set(metrics["snn_acc"]) == {"2", "3"}
    assert "snn_acc_curve" not in metrics
    # Thresholds differ per T (the MSE search quantises to T) and per channel in convolutions.
    per_t = metrics["thresholds"]
    assert set(per_t) == {"2", "3"} and per_t["2"] != per_t["3"]
    assert any(isinstance(v, list) and len(set(v)) > 1 for v in per_t["2"].values())
    assert metrics["calibration_batches"] == 2


@pytest.mark.parametrize("entry", [{}, {"residual_biases": False}])
def test_residual_biases_reach_the_calibration_and_stay_out_of_old_keys(entry) -> None:
    from torch.utils.data import TensorDataset

    from snnbench.config import MethodSpec
    from snnbench.conversion.calibration import CalibrationRequest, calibrate

    method = MethodSpec.model_validate({"name": "ftbc_snnc", "batches": 1, "batch_size": 4, "iterations": 1, **entry})
    # At its default the option is not in the record, so cells recorded before it keep their keys.
    assert ("residual_biases" in method.params) == bool(entry)
    graph = relu_graph(_Residual(conv_first=True), fold="snnc")
    for clip in (m for m in graph.modules() if isinstance(m, ClipReLU)):
        clip.thresh = torch.full((1,), 0.5)
    snn = to_snnc(convert(graph), 3)
    data = TensorDataset(torch.rand(4, 2, 4, 4), torch.zeros(4))
    cpu = torch.device("cpu")
    calibrate("ftbc_snnc", CalibrationRequest(relu_targets(graph), snn, data, 3, method.params, cpu, 0, family="snnc"))
    assert snn.relu.neuron.has_bias() == (entry == {})


def test_an_snnc_resnet_cell_runs_light_and_ftbc(tmp_path) -> None:
    from snnbench.context import RunContext
    from snnbench.conversion.pipeline import run_conversion_cell
    from tests.helpers import tiny_digits_suite

    model = {**SNNC_MODEL, "name": "resnet20", "width": 2, "threshold_batches": 1}
    suite = load_suite(
        tiny_digits_suite(
            tmp_path,
            models=[model],
            methods=[
                "light",
                {"name": "ftbc_snnc", "batches": 1, "batch_size": 32, "iterations": 1, "residual_biases": False},
            ],
            timesteps=[2],
        )
    )
    for cell in expand(suite):
        metrics = run_conversion_cell(cell, RunContext(device=torch.device("cpu"), cache_dir=tmp_path))
        assert 0.0 <= metrics["snn_acc"]["2"] <= 100.0
        assert len(metrics["thresholds"]["2"]) == 19  # the stem and two IF layers per block


def test_the_official_order_runs_the_same_on_the_fused_kernel() -> None:
    """The SNNC layer's (v + x_t) - b_t is the IF kernel's after-input mode: the Triton kernel (here
    interpreted on the CPU) gives the PyTorch reference's spikes and membranes bit for bit."""
    from snnbench.conversion.convert import SpikingLayer
    from snnbench.conversion.snnc_layer import SNNCSpikingLayer

    torch.manual_seed(1)
    layer = SNNCSpikingLayer(SpikingLayer(torch.tensor([0.5, 1.0, 0.75]), 3), sim_length=4)
    layer.neuron.set_bias(torch.randn(4, 3) * 0.1)
    layer.initial = torch.randn(1, 3, 4, 4) * 0.2
    seq = torch.randn(4, 2, 3, 4, 4)
    results = {}
    for backend in ("torch", "triton"):
        layer.neuron.backend = backend
        results[backend] = layer.run(seq)
    assert torch.equal(results["triton"][0], results["torch"][0])
    assert torch.equal(results["triton"][1], results["torch"][1])
    assert results["torch"][0].abs().sum() > 0
