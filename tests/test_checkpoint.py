"""Loading snnbench's own checkpoints and fake official QCFS / FTBC ones (their key names, real torch.save)."""

from __future__ import annotations

import pytest
import torch

from snnbench.models.checkpoint import load_checkpoint, load_state
from snnbench.models.qcfs import QCFS
from snnbench.models.resnet import resnet20
from snnbench.models.vgg import vgg16


def _randomized(model):
    """The model with every parameter and BN statistic set to fresh random values."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5)
    return model


def _assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _official(state, *, relu_name_for=(), prefix=""):
    """Rename our keys to the official layout: λ as ``up`` (``relu.up`` for post-add activations)."""
    out = {}
    for key, value in state.items():
        if key.endswith(".thresh"):
            owner = key[: -len(".thresh")]
            if any(owner.endswith(suffix) for suffix in relu_name_for):
                key = owner[: -len("act")] + "relu.up"
            else:
                key = owner + ".up"
        out[prefix + key] = value
    return out


def test_own_state_dict_round_trip(tmp_path):
    source = _randomized(vgg16(4, 100, width=4, hidden=8))
    path = tmp_path / "own.pt"
    torch.save(source.state_dict(), path)
    target = load_checkpoint(vgg16(4, 100, width=4, hidden=8), path)
    _assert_same_state(source, target)


def test_official_vgg_checkpoint_with_dataparallel_prefix(tmp_path):
    source = _randomized(vgg16(4, 10, width=4, hidden=8))
    official = _official(source.state_dict(), prefix="module.")
    assert "module.layer1.2.up" in official and "module.classifier.5.up" in official
    path = tmp_path / "vgg16_official.pth"
    torch.save(official, path)
    target = load_checkpoint(vgg16(4, 10, width=4, hidden=8), path)
    _assert_same_state(source, target)
    thresholds = [float(m.thresh.detach()) for m in target.modules() if isinstance(m, QCFS)]
    assert thresholds == [float(official[k]) for k in official if k.endswith(".up")]


def test_official_resnet_checkpoint_with_relu_up_and_wrapper(tmp_path):
    source = _randomized(resnet20(4, 10, width=4))
    state = _official(source.state_dict(), relu_name_for=(".act",))
    assert "conv2_x.0.relu.up" in state and "conv2_x.0.residual_function.2.up" in state
    path = tmp_path / "resnet20.pth"
    torch.save({"state_dict": state, "epoch": 300}, path)
    _assert_same_state(source, load_checkpoint(resnet20(4, 10, width=4), path))


def test_thresh_saved_as_scalar_and_missing_bn_counters_are_accepted():
    source = _randomized(resnet20(4, 10, width=4))
    state = {k: (v.reshape(()) if k.endswith("thresh") else v) for k, v in source.state_dict().items()}
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    _assert_same_state(source, load_state(resnet20(4, 10, width=4), state))


def test_keys_that_do_not_fit_are_listed(tmp_path):
    state = vgg16(4, 10, width=4, hidden=8).state_dict()
    state["layer9.0.weight"] = torch.zeros(1)
    del state["classifier.7.bias"]
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as err:
        load_checkpoint(vgg16(4, 10, width=4, hidden=8), path)
    message = str(err.value)
    assert "missing keys [classifier.7.bias]" in message
    assert "unexpected keys [layer9.0.weight]" in message
    assert str(path) in message


def test_shape_mismatch_is_listed():
    state = resnet20(4, 10, width=4).state_dict()
    with pytest.raises(
        ValueError, match=r"shape mismatches \[conv1.0.weight: checkpoint \(4, 3, 3, 3\) vs model \(8, 3, 3, 3\)"
    ):
        load_state(resnet20(4, 10, width=8), state)


def test_not_a_state_dict_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not a state dict"):
        load_state(resnet20(4, 10, width=4), {"epoch": 3})
    with pytest.raises(FileNotFoundError):
        load_checkpoint(resnet20(4, 10, width=4), tmp_path / "nope.pth")
