"""calibrate(): dispatch, light calibration, metrics, saved biases, and FTBC's effect on digits."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from snnbench.conversion.calibration import CalibrationRequest, calibrate, calibration_batches
from snnbench.conversion.convert import accuracy_curve, convert, simulate, spiking_layers
from snnbench.conversion.layers import layer_pairs, snapshot_biases, unfold
from snnbench.conversion.light import light_calibrate
from snnbench.conversion.thresholds import set_thresholds_from_data
from snnbench.models.checkpoint import load_checkpoint
from snnbench.models.digits_cnn import digits_cnn
from snnbench.models.resnet import resnet20

CPU = torch.device("cpu")


def _random_setup(seed=0, n=24):
    torch.manual_seed(seed)
    ann = resnet20(levels=4, num_classes=5, width=2).eval()
    x = torch.randn(n, 3, 8, 8)
    set_thresholds_from_data(ann, x, quantile=0.9)
    return ann, TensorDataset(x, torch.randint(5, (n,)))


def _request(ann, data, params, steps=3, compare=False):
    snn = convert(ann)
    return CalibrationRequest(ann, snn, data, steps, params, device=CPU, seed=0, compare_reference=compare)


def test_unknown_method_and_qcfs():
    ann, data = _random_setup()
    with pytest.raises(ValueError, match="no calibration method"):
        calibrate("bogus", _request(ann, data, {}))
    request = _request(ann, data, {})
    assert calibrate("qcfs", request) == {}
    assert all(b.numel() == 0 for b in snapshot_biases(request.snn).values())


def test_calibration_batches_are_seeded_and_limited():
    _, data = _random_setup(n=10)
    a = calibration_batches(data, 3, 4, seed=1, device=CPU)
    b = calibration_batches(data, 3, 4, seed=1, device=CPU)
    assert [x.shape[0] for x in a] == [4, 4, 2]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], calibration_batches(data, 1, 4, seed=2, device=CPU)[0])
    assert len(calibration_batches(data, 1, 4, seed=1, device=CPU)) == 1


@pytest.mark.parametrize("implementation", ["fast", "reference"])
def test_ftbc_compare_reference_metrics(implementation):
    ann, data = _random_setup()
    request = _request(ann, data, {"batches": 2, "batch_size": 8, "implementation": implementation}, compare=True)
    extra = calibrate("ftbc", request)
    assert extra["calibration_batches"] == 2 and extra["calibration_images"] == 16
    assert extra["ftbc_implementation"] == implementation
    assert extra["fast_calibrate_s"] > 0 and extra["reference_calibrate_s"] > 0
    assert extra["calibration_speedup"] == pytest.approx(extra["reference_calibrate_s"] / extra["fast_calibrate_s"])
    assert extra["reference_bias_max_abs_diff"] < 1e-5
    # The model keeps calibrated biases (not the zeros the comparison started from).
    biases = snapshot_biases(request.snn)
    assert all(b.shape[0] == 3 for b in biases.values()) and any(b.abs().sum() > 0 for b in biases.values())


def test_ftbc_iter_runs_passes():
    ann, data = _random_setup()
    one = snapshot_biases(_calibrated("ftbc_iter", ann, data, {"passes": 1, "batches": 1, "batch_size": 8}))
    three = snapshot_biases(_calibrated("ftbc_iter", ann, data, {"passes": 3, "batches": 1, "batch_size": 8}))
    assert any(not torch.allclose(one[k], three[k]) for k in one)


def _calibrated(method, ann, data, params, steps=3):
    request = _request(ann, data, params, steps=steps)
    calibrate(method, request)
    return request.snn


def _naive_light(ann, snn, x, steps):
    """Light calibration the slow way: a full SNN forward per layer, biases of earlier layers in place."""
    for pair in layer_pairs(ann, snn):
        captured = {}
        h_ann = pair.qcfs.register_forward_hook(lambda m, i, o: captured.__setitem__("ann", o))
        h_snn = pair.spiking.register_forward_hook(lambda m, i, o: captured.__setitem__("snn", o))
        ann(x)
        simulate(snn, x, steps)
        h_ann.remove()
        h_snn.remove()
        dims = [0] + list(range(2, captured["ann"].dim()))
        delta = unfold(captured["snn"], steps).mean(0).mean(dims) - captured["ann"].mean(dims)
        pair.spiking.neuron.set_bias(delta.expand(steps, -1).clone())


def test_light_is_time_invariant_and_matches_the_layer_by_layer_loop():
    ann, data = _random_setup(seed=4)
    x = data.tensors[0][:12]
    fast = convert(ann)
    light_calibrate(ann, fast, x, steps=4)
    slow = convert(ann)
    with torch.no_grad():
        _naive_light(ann, slow, x, steps=4)
    got, want = snapshot_biases(fast), snapshot_biases(slow)
    assert any(b.abs().sum() > 0 for b in got.values())
    for name in want:
        assert torch.equal(got[name], got[name][:1].expand_as(got[name])), "light bias must not depend on t"
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_light_via_calibrate_uses_one_batch():
    ann, data = _random_setup()
    request = _request(ann, data, {"batch_size": 10})
    extra = calibrate("light", request)
    assert extra["calibration_batches"] == 1 and extra["calibration_images"] == 10


def test_saved_calibrated_snn_reloads_with_the_same_outputs(tmp_path):
    ann, data = _random_setup(seed=2)
    snn = _calibrated("ftbc", ann, data, {"batches": 2, "batch_size": 8}, steps=4)
    path = tmp_path / "snn.pt"
    torch.save(snn.state_dict(), path)
    x, y = data.tensors
    before = simulate(snn, x, 4)
    fresh = convert(ann)
    assert simulate(fresh, x, 4).sub(before).abs().max() > 0, "the biases must change the outputs"
    fresh.load_state_dict(torch.load(path, weights_only=True))
    after = simulate(fresh, x, 4)
    assert torch.equal(after, before)
    assert torch.equal(accuracy_curve(after, y), accuracy_curve(before, y))
    # load_checkpoint accepts it too (empty IF biases adopt the saved [T, C] shape).
    again = load_checkpoint(convert(ann), path)
    assert torch.equal(simulate(again, x, 4), before)


def test_ftbc_beats_plain_conversion_at_small_t_on_digits():
    """On the digits (a QCFS CNN trained for a few epochs), FTBC fixes most of the T = 1 error."""
    from snnbench.config import TrainingSpec
    from snnbench.data.digits import load_digits_split
    from snnbench.training.ann import train_ann

    train, test = load_digits_split()
    train_set = TensorDataset(train.x, train.y)
    torch.manual_seed(0)
    ann = digits_cnn(levels=4, width=8)
    spec = TrainingSpec(epochs=8, batch_size=64, lr=0.05)
    ann = train_ann(ann, train_set, spec, device=CPU, seed=0).model

    def accuracy_at(snn, steps=2):
        logits = simulate(snn, test.x, steps)
        return (100.0 * accuracy_curve(logits, test.y).double() / len(test)).tolist()

    plain = accuracy_at(convert(ann))
    calibrated_snn = _calibrated("ftbc", ann, train_set, {}, steps=2)
    calibrated = accuracy_at(calibrated_snn)
    assert calibrated[0] > plain[0] + 10, (plain, calibrated)
    assert calibrated[1] >= plain[1] - 1.0, (plain, calibrated)
    assert len(list(spiking_layers(calibrated_snn))) == 4
