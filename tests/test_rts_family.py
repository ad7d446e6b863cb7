"""The RTS family's parts around the oracle test: its activation against the official ``thReLU``, the
suite schema's located errors, the family checks of calibrate(), per-model method lists and the
leaderboard's family labels."""

from __future__ import annotations

import pytest
import torch
import yaml

from snnbench.config import Suite
from snnbench.conversion.calibration import CalibrationRequest, calibrate
from snnbench.conversion.convert import convert
from snnbench.conversion.rts import convert_rts, rts_thresholds
from snnbench.models.digits_cnn import digits_cnn
from snnbench.models.registry import build_model
from snnbench.models.rts import ThresholdReLU
from snnbench.records.cells import expand
from snnbench.report.table import family_label


def _official_th_relu(x: torch.Tensor, thresh: float, simulation_length: int) -> torch.Tensor:
    """``th_shift_ReLU`` with ``modify=True`` (new_relu.py), forward and backward as the official code."""

    class ThReLU(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input):
            ctx.save_for_backward(input)
            tmp = abs(input - thresh / 2) <= thresh / 2
            tmp2 = (input - thresh) > 0
            return input * tmp.float() + tmp2.float() * thresh

        @staticmethod
        def backward(ctx, grad_output):
            (input,) = ctx.saved_tensors
            temp = abs(input - thresh / 2) <= thresh / 2
            return grad_output.clone() * temp.float()

    if simulation_length == 0:
        return ThReLU.apply(x)
    return ThReLU.apply(x - thresh / (simulation_length * 2))


@pytest.mark.parametrize("thresh,shift", [(1.0, 0), (2.0, 4), (0.5, 0)])
def test_threshold_relu_equals_the_official_forward_and_gradient(thresh, shift):
    x = (torch.arange(-40, 41, dtype=torch.float32) / 16).requires_grad_()
    ours = ThresholdReLU(thresh, shift)(x)
    x_official = x.detach().clone().requires_grad_()
    official = _official_th_relu(x_official, thresh, shift)
    assert torch.equal(ours, official)
    weights = torch.linspace(-1, 1, x.numel())
    (ours * weights).sum().backward()
    (official * weights).sum().backward()
    assert torch.equal(x.grad, x_official.grad)


def _suite(**model):
    return {
        "name": "t",
        "track": "conversion",
        "datasets": ["digits"],
        "models": [{"name": "digits_cnn", "width": 4, **model}],
        "timesteps": [1, 2],
        "methods": ["rts", {"name": "ftbc_rts", "alpha": 0.01}],
        "seeds": [0],
    }


@pytest.mark.parametrize(
    "model,where",
    [
        ({"rts_thresh": 1.0}, "rts_thresh: only for activation: rts"),
        ({"activation": "rts", "shift_snn": -1}, "shift_snn must be a non-negative integer"),
        ({"activation": "rts", "rts_thresh": 0}, "rts_thresh must be a positive finite number"),
        ({"activation": "rts", "rts_thresh": float("inf")}, "rts_thresh must be a positive finite number"),
        ({"activation": "rts", "methods": []}, "models.0.methods: empty, so the model runs nothing"),
        ({}, "models.0: method 'rts' needs an RTS ANN"),
        ({"activation": "relu", "methods": ["ftbc_rts"]}, "models.0: method 'ftbc_rts' needs an RTS ANN"),
        ({"activation": "rts", "methods": ["rts", "rts"]}, "models.0.methods: rts named more than once"),
        ({"activation": "rts", "shift_relu": 1.5}, "shift_relu must be a non-negative integer"),
        ({"activation": "rts", "methods": ["ftbc"]}, "models.0.methods: 'ftbc' is not one of the suite's methods"),
    ],
)
def test_suite_schema_names_the_bad_rts_field(model, where):
    with pytest.raises(ValueError, match=where):
        Suite.model_validate(_suite(**model), context={"strict": True})


def test_ftbc_rts_parameters_are_validated_with_official_defaults():
    suite = Suite.model_validate(_suite(activation="rts"), context={"strict": True})
    params = suite.methods[1].params
    assert params == {
        "alpha": 0.01,
        "iterations": 50,
        "sample_batches": 2,
        "batch_size": 32,
        "implementation": "fast",
        "calibration_augment": True,
    }
    bad = _suite(activation="rts")
    bad["methods"] = [{"name": "ftbc_rts", "iterations": 0}]
    with pytest.raises(ValueError, match="iterations"):
        Suite.model_validate(bad, context={"strict": True})
    # An infinite alpha (refused inside the cell by the calibration, after the ANN was trained).
    bad["methods"] = [{"name": "ftbc_rts", "alpha": float("inf")}]
    with pytest.raises(ValueError, match="alpha"):
        Suite.model_validate(bad, context={"strict": True})


def test_a_model_runs_only_the_methods_it_names_and_keys_do_not_change():
    text = yaml.safe_dump(_suite(activation="rts"))
    plain = Suite.model_validate(yaml.safe_load(text), context={"strict": True})
    limited = Suite.model_validate(_suite(activation="rts", methods=["ftbc_rts"]), context={"strict": True})
    assert [c.method.name for c in expand(limited)] == ["ftbc_rts"]
    assert {c.key for c in expand(limited)} < {c.key for c in expand(plain)}


def _request(ann, snn, method_params=None):
    from torch.utils.data import TensorDataset

    data = TensorDataset(torch.rand(16, 1, 8, 8), torch.zeros(16, dtype=torch.long))
    return CalibrationRequest(
        ann=ann, snn=snn, data=data, steps=2, params=method_params or {}, device=torch.device("cpu"), seed=0
    )


def test_calibrate_refuses_a_method_of_another_family():
    rts_ann = build_model("digits_cnn", levels=4, num_classes=10, in_channels=1, width=4, activation="rts").eval()
    thresholds = rts_thresholds(rts_ann, [torch.rand(8, 1, 8, 8)])
    with pytest.raises(ValueError, match="use ftbc_rts"):
        calibrate("ftbc", _request(rts_ann, convert_rts(rts_ann, thresholds, 2)))
    qcfs_ann = digits_cnn(levels=4, width=4).eval()
    with pytest.raises(ValueError, match="needs an RTS ANN"):
        calibrate("ftbc_rts", _request(qcfs_ann, convert(qcfs_ann)))
    snn = convert_rts(rts_ann, thresholds, 2)
    extra = calibrate("ftbc_rts", _request(rts_ann, snn, {"iterations": 2, "batch_size": 4}))
    assert extra["calibration_batches"] == 2 * 3  # sample_batches 2: the official loop uses 3 a round
    assert any(layer.neuron.has_bias() for layer in snn.modules() if hasattr(layer, "neuron"))


def test_leaderboard_rows_carry_the_family():
    def record(method, activation=None):
        params = {"activation": activation} if activation else {}
        return {"track": "conversion", "method": method, "config": {"model": {"name": "vgg16", "params": params}}}

    assert family_label(record("rts", "rts")) == "RTS"
    assert family_label(record("ftbc_rts", "rts")) == "FTBC (+RTS)"
    assert family_label(record("ftbc")) == "FTBC (+QCFS)"
    assert family_label(record("light", "relu")) == "light (+ReLU)"
    assert family_label({"track": "training", "method": "localzo"}) == ""


def test_an_rts_model_takes_threshold_batches_but_no_threshold_rule():
    from snnbench.config import ModelSpec
    from snnbench.runner.sweep import _threshold_problems

    fine = ModelSpec.model_validate({"name": "digits_cnn", "activation": "rts", "threshold_batches": 3})
    assert _threshold_problems(0, fine) == []
    rule = ModelSpec.model_validate({"name": "digits_cnn", "activation": "rts", "threshold": "mse"})
    (problem,) = _threshold_problems(0, rule)
    assert "models.0.threshold: applies to ReLU networks" in problem and "largest activations (RTS)" in problem


def test_spiking_output_false_passes_the_model_check(tmp_path):
    """spiking_output is the one true/false model option: the load-time model check must take it
    (it refused both values as 'not numbers'), and still refuse a boolean for a numeric option."""
    from snnbench.config import SuiteError, load_suite
    from snnbench.runner.sweep import check_models

    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(_suite(activation="rts", spiking_output=False)))
    check_models(load_suite(path), path)
    path.write_text(yaml.safe_dump(_suite(activation="rts", width=True)))
    with pytest.raises(SuiteError, match="width: expected a number"):
        check_models(load_suite(path), path)


def test_the_qcfs_ftbc_on_an_rts_model_is_refused_at_load_time():
    suite = _suite(activation="rts")
    suite["methods"] = ["rts", "ftbc"]
    with pytest.raises(ValueError, match="models.0: method 'ftbc' does not fit an RTS ANN"):
        Suite.model_validate(suite, context={"strict": True})
    suite["models"][0]["methods"] = ["rts"]  # a model limited to its family's methods is fine
    Suite.model_validate(suite, context={"strict": True})
