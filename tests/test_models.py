"""VGG-16 and ResNet models: official layouts, shapes, registry, and conversion of residual blocks."""

from __future__ import annotations

import pytest
import torch

from snnbench.conversion.convert import convert, simulate, spiking_layers
from snnbench.models.qcfs import QCFS
from snnbench.models.registry import build_model
from snnbench.models.resnet import resnet18, resnet20, resnet34
from snnbench.models.vgg import vgg16


def _qcfs_count(model):
    return sum(isinstance(m, QCFS) for m in model.modules())


def test_vgg16_official_layout_and_keys():
    model = vgg16(levels=4, num_classes=100)
    keys = set(model.state_dict())
    # Names of the QCFS code (putshua/ANN_SNN_QCFS Models/VGG.py) with λ called thresh.
    for key in [
        "layer1.0.weight",
        "layer1.0.bias",
        "layer1.1.running_var",
        "layer1.2.thresh",
        "layer1.6.thresh",
        "layer3.10.thresh",
        "layer5.10.thresh",
        "classifier.1.weight",
        "classifier.2.thresh",
        "classifier.4.weight",
        "classifier.5.thresh",
        "classifier.7.weight",
    ]:
        assert key in keys, key
    assert _qcfs_count(model) == 15  # 13 conv + 2 hidden linear layers
    assert model.classifier[1].in_features == 512 and model.classifier[7].out_features == 100
    assert model.width == 64


def test_vgg16_small_forward_shapes_cifar_and_imagenet():
    cifar = vgg16(levels=4, num_classes=10, width=4, hidden=16)
    assert cifar(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    imagenet = vgg16(levels=8, num_classes=1000, width=2, hidden=8)  # 1000 classes → 224 px, 7×7 features
    assert imagenet.classifier[1].in_features == 16 * 7 * 7
    assert imagenet(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
    assert all(m.levels == 8 for m in imagenet.modules() if isinstance(m, QCFS))


@pytest.mark.parametrize(
    "factory,qcfs,width",
    [(resnet20, 1 + 9 * 2, 16), (resnet18, 1 + 8 * 2, 64), (resnet34, 1 + 16 * 2, 64)],
)
def test_resnet_depths_and_official_keys(factory, qcfs, width):
    model = factory(levels=4, num_classes=10)
    assert _qcfs_count(model) == qcfs
    assert model.width == width
    keys = set(model.state_dict())
    for key in [
        "conv1.0.weight",
        "conv1.2.thresh",
        "conv2_x.0.residual_function.0.weight",
        "conv2_x.0.residual_function.2.thresh",
        "conv2_x.0.act.thresh",
        "conv3_x.0.shortcut.0.weight",
        "fc.weight",
    ]:
        assert key in keys, key


def test_resnet20_width_and_stems():
    wide = resnet20(levels=4, num_classes=100, width=64)
    assert wide.width == 64 and wide.fc.in_features == 256
    assert wide(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    small = resnet18(levels=4, num_classes=5, width=4, stem="imagenet")
    assert small.conv1[0].kernel_size == (7, 7) and small.conv1[0].stride == (2, 2)
    assert small(torch.randn(1, 3, 64, 64)).shape == (1, 5)
    with pytest.raises(ValueError, match="stem"):
        resnet34(stem="mnist")


def test_registry_builds_by_name_with_params():
    model = build_model("resnet20", levels=4, num_classes=10, in_channels=1, width=8)
    assert model.width == 8 and model.conv1[0].in_channels == 1
    vgg = build_model("vgg16", levels=2, num_classes=10, width=4, hidden=8, dropout=0.1)
    assert vgg.classifier[3].p == 0.1
    with pytest.raises(ValueError, match="takes no parameter"):
        build_model("vgg16", levels=4, num_classes=10, depth=19)


@pytest.mark.parametrize(
    "factory", [lambda: resnet20(levels=4, num_classes=7, width=4), lambda: vgg16(4, 7, width=4, hidden=8)]
)
def test_converted_model_matches_the_ann_when_each_layer_is_exact(factory):
    """With T = 1 and every θ tiny, each IF neuron fires iff its input is ≥ θ: the SNN is the ANN with
    activations clamp(z, 0, θ) rounded to θ — compare against the ANN with L = 1 at the same θ."""
    torch.manual_seed(0)
    ann = factory().eval()
    for m in ann.modules():
        if isinstance(m, QCFS):
            m.levels = 1
            m.thresh.data.fill_(0.5)
    snn = convert(ann)
    assert len(list(spiking_layers(snn))) == _qcfs_count(ann)
    x = torch.randn(3, 3, 32, 32)
    # One step from v0 = θ/2: spike iff z ≥ θ/2 — exactly QCFS with L = 1 (floor(z/θ + 0.5) clipped).
    logits = simulate(snn, x, steps=1)
    torch.testing.assert_close(logits[0], ann(x), rtol=1e-4, atol=1e-4)
