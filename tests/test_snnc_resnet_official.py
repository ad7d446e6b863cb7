"""snnbench's SNN Calibration family on a ResNet equals the official code bit for bit (CPU, fp32).

The oracle's ``ResNet_Cifar`` / ``SpikeBasicBlock`` (tests/snnc_official_oracle.py, from the FTBC
repository's ``SNNC/SNN_Calibration/models/CIFAR/models/resnet.py``) gets the weights of snnbench's
ResNet-20 (widths 2/4/8, one input channel): the block's second convolution and the shortcut are added
before the shift ``θ·0.5/T`` (``SpikeResModule``), the shortcut's 1×1 convolution (its BN folded
officially) runs on the spikes without a neuron of its own, and the block output's threshold comes
from the post-add ReLU. Thresholds, light biases, advanced potentials, FTBC biases, per-step logits
and final membranes must be equal, on dyadic weights (membranes on θ) and on random ones; so must
advanced's weights calibration (``weights_cali_res_layer`` for the blocks' output layers).
"""

from __future__ import annotations

import copy

import pytest
import torch
from test_snnc_official import _batches, _same_simulation, assert_official_thresholds, with_test_weights
from torch import nn

import snnc_official_oracle as official
from snnbench.conversion.convert import convert
from snnbench.conversion.graph import relu_graph
from snnbench.conversion.snnc_calibration import ftbc_snnc, relu_targets, snnc_advanced, snnc_light
from snnbench.conversion.snnc_layer import preceding_affine, residual_layers, to_snnc
from snnbench.conversion.snnc_weights import snnc_weights
from snnbench.models.activations import ClipReLU
from snnbench.models.registry import build_model

WIDTH, CLASSES = 2, 5
# snnbench's ResNet layout → the official ResNet_Cifar's, per module.
_BLOCK_KEYS = {
    "residual_function.0": "conv1",
    "residual_function.1": "bn1",
    "residual_function.3": "conv2",
    "residual_function.4": "bn2",
    "shortcut.0": "downsample.0",
    "shortcut.1": "downsample.1",
}


def _official_key(key: str) -> str:
    head, _, rest = key.partition(".")
    if head == "conv1":  # the stem: conv1.0 (conv), conv1.1 (BN)
        index, _, field = rest.partition(".")
        return f"{'conv1' if index == '0' else 'bn1'}.{field}"
    if head.startswith("conv") and head.endswith("_x"):
        stage = int(head[4:-2]) - 1
        block, _, inner = rest.partition(".")
        for ours, theirs in _BLOCK_KEYS.items():
            if inner.startswith(ours + "."):
                return f"layer{stage}.{block}.{theirs}{inner[len(ours) :]}"
    return key  # fc


def _model(seed: int, dyadic: bool) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model("resnet20", levels=4, num_classes=CLASSES, in_channels=1, activation="relu", width=WIDTH)
    return with_test_weights(model.eval(), dyadic)  # dyadic: membranes land on θ


def _official_ann(model: nn.Module) -> official.ResNet_Cifar:
    ann = official.ResNet_Cifar(official.BasicBlock, [3, 3, 3], num_classes=CLASSES, width=WIDTH, in_channels=1)
    ann.load_state_dict({_official_key(k): v for k, v in model.state_dict().items()}, strict=True)
    eps = next(m.eps for m in model.modules() if isinstance(m, nn.BatchNorm2d))  # not in a state dict
    for m in ann.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = eps
    return ann.eval()


def _official_snn(model: nn.Module, steps: int, imagenet: bool = False) -> official.SpikeModel:
    """The official SpikeModel; ``imagenet``: with the ImageNet copy's SpikeResModule (FTBC biases on)."""
    ann = _official_ann(copy.deepcopy(model))
    official.search_fold_and_remove_bn(ann)
    specials = official.imagenet_res_specials if imagenet else official.res_specials
    return official.SpikeModel(ann, steps, specials=specials)


RES_MODULES = (official.SpikeResModule, official.ImageNetSpikeResModule)


def _spike_modules(snn: official.SpikeModel) -> list[official.SpikeModule]:
    return [m for m in snn.modules() if isinstance(m, official.SpikeModule)]


def test_the_official_resnet_holds_the_same_network() -> None:
    model = _model(0, dyadic=False)
    x = _batches(1, size=4)[0]
    assert torch.equal(_official_ann(model)(x), model(x))
    snn = to_snnc(convert(relu_graph(model, fold="snnc")), 4)
    residual = residual_layers(snn)
    # 19 IF layers: the stem, and two per block, the second a SpikeResModule (one per block).
    theirs = _spike_modules(_official_snn(model, 4))
    assert [isinstance(m, RES_MODULES) for m in theirs] == [False] + [False, True] * 9
    assert len(residual) == 9 and all(name.endswith(".act") for name in residual)
    # light moves the block's second convolution, never the shortcut's.
    convs = preceding_affine(snn)
    assert all(name.endswith("residual_function.3") for layer, name in _conv_names(snn, convs) if layer in residual)


def _conv_names(snn: nn.Module, convs: dict[str, nn.Module]) -> list[tuple[str, str]]:
    names = {id(m): n for n, m in snn.named_modules()}
    return [(layer, names[id(conv)]) for layer, conv in convs.items()]


@pytest.mark.parametrize("granularity,steps", [("layer", 5), ("channel", 4)])
def test_block_output_thresholds_match_the_official_search(granularity: str, steps: int) -> None:
    # The 9 blocks' output thresholds come from the post-add ReLU (SpikeResModule's ANN output).
    model = _model(0, dyadic=False)
    ours = assert_official_thresholds(model, _official_snn(model, steps), _batches(2, size=8), steps, granularity)
    assert len(ours) == 19


def _both(granularity: str, steps: int, dyadic: bool, imagenet: bool, seed: int = 0):
    """snnbench's SNN of the ResNet and the official SpikeModel of it, with the same dyadic θ."""
    model = _model(seed, dyadic)
    graph = relu_graph(model, fold="snnc")
    clips = [m for m in graph.modules() if isinstance(m, ClipReLU)]
    theirs = _official_snn(model, steps, imagenet)
    g = torch.Generator().manual_seed(seed)
    for clip, module in zip(clips, _spike_modules(theirs), strict=True):
        channels = module.weight.shape[0] if granularity == "channel" else 1
        theta = 2.0 ** torch.randint(-1, 2, (channels,), generator=g).float()
        clip.thresh = theta.clone()
        module.threshold = theta.reshape(1, -1, 1, 1) if channels > 1 else theta.reshape(())
    return relu_targets(graph), to_snnc(convert(graph), steps), theirs


# FTBC on both official SpikeResModules: the CIFAR copy's (residual_biases: false) ignores the biases,
# the ImageNet copy's (residual_biases: true) subtracts them. light and advanced: the copies agree.
CASES = [  # granularity, T, method, alpha, K, dyadic, residual_biases
    ("channel", 4, "light", 0.5, 1, True, False),
    ("layer", 3, "light", 0.5, 1, False, False),
    ("channel", 4, "advanced", 0.5, 1, True, False),
    ("layer", 3, "advanced", 0.5, 1, False, False),
    ("channel", 4, "ours_wo_avg", 0.5, 2, True, False),
    ("layer", 4, "ours_wo_avg", 0.25, 2, True, True),
    ("layer", 3, "ours_wo_avg", 0.3, 1, False, True),
    ("channel", 4, "ours_w_avg", 0.25, 1, True, True),
    ("layer", 3, "ours_w_avg", 0.7, 1, False, False),
]


def _calibrate(method: str, targets, ours, theirs, batches, steps: int, alpha: float, k: int, res: bool) -> None:
    loader = [(x, None) for x in batches]
    if method in ("light", "advanced"):
        (snnc_light if method == "light" else snnc_advanced)(targets, ours, batches[0], steps)
        official.bias_corr_model(theirs, loader, correct_mempot=method == "advanced", num_cali_sample_batches=1)
    elif method == "ours_wo_avg":
        ftbc_snnc(targets, ours, batches[:k], steps, alpha, average=False, residual_biases=res)
        theirs.set_time_dependent_bias()
        official.bias_corr_model_update_step_by_step(theirs, loader, num_cali_sample_batches=k, curr_t_alpha=alpha)
    elif method == "ours_w_avg":  # the official loop stops after batch index K: K + 1 batches
        ftbc_snnc(targets, ours, batches[: k + 1], steps, alpha, average=True, residual_biases=res)
        theirs.set_time_dependent_bias()
        official.x_bias_corr_model_update_step_by_step(theirs, loader, num_cali_sample_batches=k, curr_t_alpha=alpha)


@pytest.mark.parametrize("granularity,steps,method,alpha,k,dyadic,res", CASES)
def test_resnet_calibrations_match_the_official_code(granularity, steps, method, alpha, k, dyadic, res) -> None:
    targets, ours, theirs = _both(granularity, steps, dyadic, imagenet=res)
    _calibrate(method, targets, ours, theirs, _batches(k + 1), steps, alpha, k, res)
    residual = residual_layers(ours)
    convs = preceding_affine(ours)
    names = [name for name, m in ours.named_modules() if hasattr(m, "sim_length")]
    for name, module in zip(names, _spike_modules(theirs), strict=True):
        layer = ours.get_submodule(name)
        assert (name in residual) == isinstance(module, RES_MODULES)
        if method.startswith("ours") and name in residual and not res:
            # Updated officially, but the CIFAR SpikeResModule's forward never subtracts them: none here.
            assert not layer.neuron.has_bias()
        elif method.startswith("ours"):
            assert torch.equal(layer.neuron.bias, torch.stack(module.time_dependent_biases))
        if method == "advanced":
            assert torch.equal(layer.initial, module.mem_pot_init)
        if method == "light":
            assert torch.equal(convs[name].bias, module.bias)
    _same_simulation(ours, theirs, _batches(1, seed=7, size=8)[0], steps)


@pytest.mark.parametrize("granularity,steps,dyadic", [("channel", 4, True), ("layer", 3, False)])
def test_resnet_weights_calibration_matches_the_official_code(granularity, steps, dyadic) -> None:
    """advanced with SNN_Calibration's weights calibration on ResNet-20: a block's output layer is fitted
    with the shortcut's mean input added (weights_cali_res_layer), the others as plain layers; every
    weight, potential, step logit and final membrane equals the official code's."""
    targets, ours, theirs = _both(granularity, steps, dyadic, imagenet=False)
    samples, batch, lr, iterations = torch.cat(_batches(2, seed=2)), 8, 2e-2, 4
    snnc_weights(targets, ours, samples, steps, lr=lr, iterations=iterations, batch_size=batch,
                 generator=torch.Generator().manual_seed(3))  # fmt: skip
    torch.manual_seed(3)
    official.weights_cali_model(theirs, [(samples, None)], learning_rate=lr, optimize_iter=iterations,
                                batch_size=batch, num_cali_samples=samples.shape[0])  # fmt: skip
    convs, residual = preceding_affine(ours), residual_layers(ours)
    names = [name for name, m in ours.named_modules() if hasattr(m, "sim_length")]
    for name, module in zip(names, _spike_modules(theirs), strict=True):
        assert torch.equal(convs[name].weight, module.weight)
        assert not torch.equal(module.weight, module.org_weight)  # every layer's weights moved
    assert len(residual) == 9
    x = _batches(1, seed=3)[0]
    snnc_advanced(targets, ours, x, steps)
    official.bias_corr_model(theirs, [(x, None)], correct_mempot=True, num_cali_sample_batches=1)
    _same_simulation(ours, theirs, _batches(1, seed=7, size=8)[0], steps)
