"""Fast layer-major FTBC gives the biases of the official per-layer loop (the oracle)."""

from __future__ import annotations

import pytest
import torch

from snnbench.conversion.convert import convert, simulate
from snnbench.conversion.ftbc import ftbc_calibrate_fast
from snnbench.conversion.ftbc_reference import ftbc_calibrate_reference, official_if_neurons
from snnbench.conversion.layers import snapshot_biases
from snnbench.conversion.thresholds import set_thresholds_from_data
from snnbench.models.digits_cnn import digits_cnn
from snnbench.models.resnet import resnet18, resnet20
from snnbench.models.vgg import vgg16


MODELS = {
    "digits_cnn": (lambda: digits_cnn(levels=4, width=4), (1, 8, 8)),
    "vgg16": (lambda: vgg16(levels=4, num_classes=5, width=2, hidden=8), (3, 32, 32)),
    "resnet20": (lambda: resnet20(levels=4, num_classes=5, width=2), (3, 8, 8)),
    "resnet18_imagenet_stem": (lambda: resnet18(levels=2, num_classes=5, width=2, stem="imagenet"), (3, 16, 16)),
}


def _setup(name: str, seed: int, batches: int = 2, batch_size: int = 3):
    torch.manual_seed(seed)
    factory, shape = MODELS[name]
    ann = factory().eval()
    data = [torch.randn((batch_size,) + shape) for _ in range(batches)]
    set_thresholds_from_data(ann, torch.cat(data), quantile=0.9)
    return ann, data


def _calibrated(ann, data, steps, fn, **kwargs):
    snn = convert(ann)
    fn(ann, snn, data, steps, 0.4, **kwargs)
    return snn, snapshot_biases(snn)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("steps", [1, 4])
def test_fast_equals_reference(name, steps):
    ann, data = _setup(name, seed=steps)
    _, fast = _calibrated(ann, data, steps, ftbc_calibrate_fast, backend="torch")
    _, ref = _calibrated(ann, data, steps, ftbc_calibrate_reference)
    assert any(b.abs().sum() > 0 for b in ref.values()), "a trivial calibration proves nothing"
    for layer, bias in ref.items():
        assert bias.shape[0] == steps
        # Same element-wise ops; the per-channel means differ only in summation order.
        torch.testing.assert_close(fast[layer], bias, rtol=1e-5, atol=1e-5, msg=layer)


@pytest.mark.parametrize("name", ["digits_cnn", "resnet20"])
def test_fast_with_triton_kernel_equals_reference(name):
    ann, data = _setup(name, seed=7, batches=1)
    _, fast = _calibrated(ann, data, 3, ftbc_calibrate_fast, backend="triton")
    _, ref = _calibrated(ann, data, 3, ftbc_calibrate_reference)
    for layer, bias in ref.items():
        torch.testing.assert_close(fast[layer], bias, rtol=1e-5, atol=1e-5, msg=layer)


@pytest.mark.parametrize("name", ["digits_cnn", "resnet20"])
def test_iterative_variant_fast_equals_reference(name):
    ann, data = _setup(name, seed=11)
    options = {"passes": 2, "own_bias": True}
    _, fast = _calibrated(ann, data, 3, ftbc_calibrate_fast, backend="torch", **options)
    _, ref = _calibrated(ann, data, 3, ftbc_calibrate_reference, **options)
    _, single = _calibrated(ann, data, 3, ftbc_calibrate_reference)
    for layer, bias in ref.items():
        torch.testing.assert_close(fast[layer], bias, rtol=1e-5, atol=1e-5, msg=layer)
    assert any(not torch.allclose(single[k], ref[k]) for k in ref), "iterative must differ from one pass"


def test_first_layer_bias_matches_a_hand_written_recurrence():
    """The first IF layer's input is the image through one conv: check FTBC's formula directly."""
    ann, data = _setup("digits_cnn", seed=3, batches=1, batch_size=5)
    steps, alpha = 3, 0.4
    _, fast = _calibrated(ann, data, steps, ftbc_calibrate_fast, backend="torch")
    x = data[0]
    z = ann.features[1](ann.features[0](x))  # conv → BN: the first IF layer's input current
    a = ann.features[2](z)
    theta = float(ann.features[2].thresh.detach())
    v = torch.full_like(z, theta / 2)
    want = torch.zeros(steps, z.shape[1])
    for t in range(steps):
        u = v + z
        s = torch.where(u >= theta, torch.full_like(u, theta), torch.zeros_like(u))
        e = s - a
        u2 = u - e
        v = u2 - torch.where(u2 >= theta, torch.full_like(u2, theta), torch.zeros_like(u2))
        want[t] = alpha * e.mean((0, 2, 3))
    torch.testing.assert_close(fast["features.2"], want, rtol=1e-5, atol=1e-6)


def test_calibration_for_t_max_serves_every_shorter_t():
    """Causal in t: the first rows of a T_max calibration are the biases of a shorter calibration."""
    ann, data = _setup("resnet20", seed=5)
    _, long = _calibrated(ann, data, 5, ftbc_calibrate_fast, backend="torch")
    _, short = _calibrated(ann, data, 2, ftbc_calibrate_fast, backend="torch")
    for layer in short:
        torch.testing.assert_close(long[layer][:2], short[layer], rtol=1e-5, atol=1e-6)


def test_official_if_neurons_simulate_like_the_library_neurons():
    ann, data = _setup("resnet20", seed=9, batches=1)
    snn, _ = _calibrated(ann, data, 4, ftbc_calibrate_fast, backend="torch")
    x = torch.randn(2, 3, 8, 8)
    library = simulate(snn, x, 4)
    with official_if_neurons(snn):
        official = simulate(snn, x, 4)
    torch.testing.assert_close(official, library)
    assert "simulate" not in vars(next(m for m in snn.modules() if hasattr(m, "bias_for")))  # restored


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_calibrating_in_chunks_of_time_gives_the_same_biases(backend):
    ann, data = _setup("resnet20", seed=13, batches=1)
    options = {"backend": backend, "own_bias": True, "passes": 2}
    # T = 3 in chunks of 2: a state carried across a chunk boundary and a short last chunk.
    _, whole = _calibrated(ann, data, 3, ftbc_calibrate_fast, **options)
    _, chunked = _calibrated(ann, data, 3, ftbc_calibrate_fast, chunk=2, **options)
    for layer in whole:
        torch.testing.assert_close(chunked[layer], whole[layer], rtol=1e-5, atol=1e-6, msg=layer)


def test_non_finite_calibration_images_are_a_clear_error():
    ann, data = _setup("digits_cnn", seed=1, batches=1)
    data[0][0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinity in the ANN activation of layer features.2"):
        _calibrated(ann, data, 2, ftbc_calibrate_fast, backend="torch")


def test_calibrated_biases_need_no_second_finiteness_check():
    """The sweep checks the activations once per batch and then tells the neurons' per-call check
    (kernels.common) that the biases it computed are finite: on a card that check would sync."""
    from snnbench.kernels.common import known_finite

    ann, data = _setup("resnet20", seed=2, batches=2)
    snn, _ = _calibrated(ann, data, 3, ftbc_calibrate_fast, backend="torch")
    neurons = [m for m in snn.modules() if hasattr(m, "bias_for")]
    assert neurons and all(known_finite(n.bias_for(3)) for n in neurons)
    neurons[0].bias.add_(1.0)  # changed behind the cache's back: checked again
    assert not known_finite(neurons[0].bias_for(3))
