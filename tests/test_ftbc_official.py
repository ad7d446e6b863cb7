"""snnbench's FTBC equals the FTBC repository's algorithm bit for bit (CPU, fp32).

The oracle (tests/ftbc_official_oracle.py) transcribes the official ``bias_corr_model`` and its
spiking ``IF`` without using snnbench's conversion code; snnbench's fast path and its reference loop
must give exactly its biases, and the calibrated SNN exactly its logits.
"""

from __future__ import annotations

import pytest
import torch

from ftbc_official_oracle import official_ftbc, official_logits
from snnbench.conversion.convert import convert, simulate
from snnbench.conversion.ftbc import ftbc_calibrate_fast
from snnbench.conversion.ftbc_reference import ftbc_calibrate_reference
from snnbench.conversion.layers import snapshot_biases
from snnbench.conversion.thresholds import set_thresholds_from_data
from snnbench.models.digits_cnn import digits_cnn
from snnbench.models.resnet import resnet20
from snnbench.models.vgg import vgg16

MODELS = {
    "digits_cnn": (lambda: digits_cnn(levels=4, width=8), (1, 8, 8)),
    "vgg16": (lambda: vgg16(levels=4, num_classes=5, width=2, hidden=8), (3, 32, 32)),
    "resnet20": (lambda: resnet20(levels=4, num_classes=5, width=2), (3, 8, 8)),
}
CASES = [  # model, K batches, T, alpha, implementation (the reference loop is O(layers) forwards)
    ("digits_cnn", 3, 16, 0.4, "fast"),
    ("digits_cnn", 3, 16, 0.4, "reference"),
    ("digits_cnn", 2, 8, 0.7, "fast"),
    ("vgg16", 2, 4, 0.4, "fast"),
    ("resnet20", 2, 5, 0.25, "fast"),
]


@torch.no_grad()
def _dyadic(ann: torch.nn.Module) -> None:
    """Weights on a 1/16 grid, thresholds powers of two, BN an exact affine map: the currents are
    exact, so membranes often sit exactly on θ and only the bias rounds. Random weights would almost
    never put a membrane within an ulp of θ, and would not tell the two update orders apart."""
    for name, p in ann.named_parameters():
        p.copy_(2.0 ** torch.round(torch.log2(p)) if name.endswith("thresh") else torch.round(p * 16) / 16)
    for module in ann.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.eps = 0.0
            module.running_var.fill_(1.0)
            module.running_mean.copy_(torch.round(module.running_mean * 16) / 16)


def _setup(name: str, batches: int, seed: int = 0):
    torch.manual_seed(seed)
    factory, shape = MODELS[name]
    ann = factory().eval()
    data = [torch.randint(0, 17, (8,) + shape).float() / 16 for _ in range(batches)]
    set_thresholds_from_data(ann, torch.cat(data), quantile=0.9)
    _dyadic(ann)
    return ann, data


@pytest.mark.parametrize("name,batches,steps,alpha,implementation", CASES)
def test_biases_equal_the_official_algorithm_bit_for_bit(name, batches, steps, alpha, implementation):
    ann, data = _setup(name, batches)
    expected = official_ftbc(ann, data, steps, alpha)
    snn = convert(ann)
    if implementation == "fast":
        ftbc_calibrate_fast(ann, snn, data, steps, alpha, backend="torch")
    else:
        ftbc_calibrate_reference(ann, snn, data, steps, alpha)
    got = snapshot_biases(snn)
    assert set(got) == set(expected)
    assert any(b.abs().sum() > 0 for b in expected.values()), "a trivial calibration proves nothing"
    for layer, bias in expected.items():
        assert torch.equal(got[layer], bias), f"{layer}: max |diff| {(got[layer] - bias).abs().max():.3g}"
    # The calibrated SNN computes exactly the official SNN's logits.
    assert torch.equal(simulate(snn, data[0], steps), official_logits(ann, expected, data[0], steps))


def test_official_targets_with_L8_reproduce_the_script_quirk():
    from snnbench.conversion.calibration import CalibrationRequest, calibrate
    from torch.utils.data import TensorDataset

    ann, data = _setup("digits_cnn", 1)
    x = data[0]
    dataset = TensorDataset(x, torch.zeros(len(x), dtype=torch.long))
    expected = official_ftbc(ann, [x], 4, 0.4, target_levels=8)
    assert not torch.equal(expected["features.2"], official_ftbc(ann, [x], 4, 0.4)["features.2"])
    snn = convert(ann)
    params = {"batches": 1, "batch_size": len(x), "target_levels": 8}
    # calibrate() draws one batch of the whole set in its seeded shuffle: give the oracle that batch.
    calibrate(
        "ftbc",
        CalibrationRequest(ann=ann, snn=snn, data=dataset, steps=4, params=params, device=torch.device("cpu"), seed=0),
    )
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    expected = official_ftbc(ann, [x[order]], 4, 0.4, target_levels=8)
    for layer, bias in snapshot_biases(snn).items():
        assert torch.equal(bias, expected[layer]), layer
    assert all(m.levels == 4 for m in ann.modules() if hasattr(m, "levels")), "the ANN keeps its trained L"
