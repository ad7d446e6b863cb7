"""snnbench's RTS conversion and its FTBC equal the RTS code of the FTBC repository bit for bit (CPU, fp32).

The oracle (tests/ftbc_rts_official_oracle.py) transcribes the official ``SPIKE_layer`` and
``emp_bias_corr_moving_avg_timestep`` without snnbench's conversion code. snnbench's fast path (the
layer-major sweep) and its reference loop must give exactly its biases, and the converted SNN exactly
its outputs, plain and calibrated, on the PyTorch reference path and on the fused Triton kernel (the
interpreter here): both take the bias off *after* the input (``bias_order="after_input"``), the
official order, which the test also shows is not the QCFS code's order.
"""

from __future__ import annotations

import pytest
import torch

from ftbc_rts_official_oracle import OfficialSpikeLayer, official_outputs, official_rts_ftbc, official_snn
from snnbench.conversion.convert import simulate, spiking_layers
from snnbench.conversion.ftbc_rts import rts_ftbc_calibrate
from snnbench.conversion.layers import snapshot_biases
from snnbench.conversion.rts import convert_rts, rts_thresholds
from snnbench.models.digits_cnn import digits_cnn
from snnbench.models.resnet import resnet20
from snnbench.models.rts import rts_everywhere
from snnbench.models.vgg import vgg16

MODELS = {
    "digits_cnn": (lambda: digits_cnn(levels=4, width=8), (1, 8, 8)),
    "vgg16": (lambda: vgg16(levels=4, num_classes=5, width=2, hidden=8), (3, 32, 32)),
    "resnet20": (lambda: resnet20(levels=4, num_classes=5, width=2), (3, 8, 8)),
}
CASES = [  # model, rounds × batches, T, shift_snn, alpha, implementation (the oracle: T·L forwards a batch)
    ("digits_cnn", (2, 1), 8, 8, 0.25, "fast"),
    ("digits_cnn", (1, 1), 4, 4, 0.25, "reference"),
    ("digits_cnn", (1, 3), 6, 3, 0.005, "fast"),  # shift θ/6 and α 0.005 round: the order shows
    ("digits_cnn", (1, 1), 4, 0, 0.5, "fast"),  # no shift
    ("vgg16", (1, 1), 3, 3, 0.125, "fast"),
    ("resnet20", (1, 1), 2, 2, 0.3, "fast"),
]


@torch.no_grad()
def _dyadic(ann: torch.nn.Module) -> None:
    """Weights on a 1/16 grid and BN an exact affine map: the currents are exact, so membranes sit
    exactly on θ (a power of two) and only the shift and the bias round."""
    for p in ann.parameters():
        p.copy_(torch.round(p * 16) / 16)
    for module in ann.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.eps = 0.0
            module.running_var.fill_(1.0)
            module.running_mean.copy_(torch.round(module.running_mean * 16) / 16)


def _setup(name: str, count: int, seed: int = 0, batch: int = 8):
    torch.manual_seed(seed)
    factory, shape = MODELS[name]
    ann = rts_everywhere(factory(), thresh=1.0, shift_relu=0).eval()
    _dyadic(ann)
    data = [torch.randint(0, 17, (batch,) + shape).float() / 16 for _ in range(count)]
    measured = rts_thresholds(ann, data)
    # Powers of two at or below each measured maximum: membranes land on θ.
    thresholds = {k: float(2.0 ** torch.floor(torch.log2(torch.tensor(v)))) for k, v in measured.items()}
    return ann, data, thresholds


def _snn(ann, thresholds, shift_snn, backend="auto"):
    snn = convert_rts(ann, thresholds, shift_snn)
    for _, layer in spiking_layers(snn):
        layer.neuron.backend = backend
    return snn


@pytest.mark.parametrize("name,shape,steps,shift_snn,alpha,implementation", CASES)
def test_rts_ftbc_equals_the_official_code_bit_for_bit(name, shape, steps, shift_snn, alpha, implementation):
    rounds_n, per_round = shape
    ann, data, thresholds = _setup(name, rounds_n * per_round, batch=8 if name == "digits_cnn" else 2)
    rounds = [data[i * per_round : (i + 1) * per_round] for i in range(rounds_n)]
    official, expected = official_rts_ftbc(ann, thresholds, rounds, steps, shift_snn, alpha)
    snn = _snn(ann, thresholds, shift_snn)
    rts_ftbc_calibrate(ann, snn, rounds, steps, alpha, implementation=implementation)
    got = {k: v for k, v in snapshot_biases(snn).items() if k in expected}
    assert set(got) == set(expected)
    assert any(b.abs().sum() > 0 for b in expected.values()), "a trivial calibration proves nothing"
    for layer, bias in expected.items():
        assert torch.equal(got[layer], bias), f"{layer}: max |diff| {(got[layer] - bias).abs().max():.3g}"
    outputs = official_outputs(official, data[0], steps)
    assert outputs.abs().sum() > 0, "a silent classifier proves nothing"
    assert torch.equal(simulate(snn, data[0], steps), outputs)


@pytest.mark.parametrize("name", ["digits_cnn", "vgg16"])
def test_plain_rts_conversion_equals_the_official_spike_layers(name):
    ann, data, thresholds = _setup(name, 1)
    official = official_snn(ann, thresholds, 6, 6, data[0])
    expected = official_outputs(official, data[0], 6)
    assert expected.abs().sum() > 0
    assert torch.equal(simulate(_snn(ann, thresholds, 6), data[0], 6), expected)


def _final_membranes(snn, x, steps) -> dict[str, torch.Tensor]:
    finals: dict[str, torch.Tensor] = {}
    hooks = [
        layer.register_forward_hook(lambda m, _i, _o, name=name: finals.__setitem__(name, m.carry.clone()))
        for name, layer in spiking_layers(snn)
    ]
    simulate(snn, x, steps)
    for h in hooks:
        h.remove()
    return finals


def test_calibrated_rts_snn_on_the_fused_kernel_equals_the_official_outputs():
    """The Triton IF kernel (the CUDA fast path; the interpreter here) in the official order: the
    same outputs and every layer's final membrane bit for bit (calibrated on the CPU path)."""
    ann, data, thresholds = _setup("digits_cnn", 1, batch=4)
    official, _ = official_rts_ftbc(ann, thresholds, [data], 4, 3, 0.005)
    expected = official_outputs(official, data[0], 4)
    official_mems = {n: m.mem for n, m in official.named_modules() if isinstance(m, OfficialSpikeLayer)}
    snn = _snn(ann, thresholds, 3)
    rts_ftbc_calibrate(ann, snn, [data], 4, 0.005)
    for _, layer in spiking_layers(snn):
        layer.neuron.backend = "triton"
    finals = _final_membranes(snn, data[0], 4)
    assert torch.equal(simulate(snn, data[0], 4), expected)
    assert set(finals) == set(official_mems)
    for name, mem in official_mems.items():
        assert torch.equal(finals[name], mem), name
    # The QCFS code's order, (v - b) + x, rounds these membranes differently: the order matters.
    for _, layer in spiking_layers(snn):
        layer.neuron.options = type(layer.neuron.options)(output="scaled", v_init=0.0, bias_order="before_input")
    other = _final_membranes(snn, data[0], 4)
    assert any(not torch.equal(other[name], mem) for name, mem in official_mems.items())
