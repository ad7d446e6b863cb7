"""snnbench's SNN Calibration family equals the FTBC repository's SNNC code bit for bit (CPU, fp32).

The oracle (tests/snnc_official_oracle.py) transcribes the official SpikeModule / SpikeModel, the MSE
threshold search (layer and ``--channel_wise_vth``), the BN fold and the calibrations (light,
advanced with and without SNN_Calibration's weights calibration, FTBC ``ours_wo_avg`` and
``ours_w_avg``). snnbench's thresholds, biases, initial membranes
and SNN logits must equal its own exactly. snnbench runs each FTBC variant in one pass over T (the
official ``ours_w_avg`` re-simulates steps 0..t for every t) and with the official bias order
(``bias_order: official``: ``u = (v + x_t) - b_t``); the fused kernel's order is not compared here.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import snnc_official_oracle as official
from snnbench.conversion.convert import convert, simulate
from snnbench.conversion.graph import relu_graph
from snnbench.conversion.snnc_calibration import ftbc_snnc, relu_targets, snnc_advanced, snnc_light
from snnbench.conversion.snnc_layer import to_snnc
from snnbench.conversion.snnc_weights import snnc_weights
from snnbench.conversion.thresholds import relu_thresholds
from snnbench.models.activations import ClipReLU
from snnbench.threshold_rule import parse_threshold


class TinyVGG(nn.Module):
    """The official CIFAR VGG's layout in small: conv (+BN or dropout) + ReLU blocks, average
    pooling, one linear classifier (SpikeModel keeps linear layers non-spiking)."""

    def __init__(self, use_bn: bool = True, classes: int = 5) -> None:
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if use_bn else (lambda c: nn.Dropout(0.25))
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), norm(4), nn.ReLU(inplace=True),
            nn.Conv2d(4, 4, 3, padding=1), norm(4), nn.ReLU(inplace=True),
            nn.AvgPool2d(2),
            nn.Conv2d(4, 6, 3, padding=1), norm(6), nn.ReLU(inplace=True),
            nn.AvgPool2d(2),
        )  # fmt: skip
        self.classifier = nn.Linear(6 * 2 * 2, classes)

    def forward(self, x):
        out = self.features(x)
        return self.classifier(out.view(out.size(0), -1))


def _model(seed: int, use_bn: bool = True, dyadic: bool = False) -> TinyVGG:
    torch.manual_seed(seed)
    return with_test_weights(TinyVGG(use_bn).eval(), dyadic)


@torch.no_grad()
def with_test_weights(model: nn.Module, dyadic: bool) -> nn.Module:
    """``model`` with random BN statistics, and with dyadic weights if ``dyadic``."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.1, 0.3)
    if dyadic:
        # Weights on a 1/16 grid and an exact BN (var 1, eps 0): currents are exact, so
        # membranes sit on θ and a different order of operations would flip spikes.
        for p in model.parameters():
            p.copy_(torch.round(p * 16) / 16)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = 0.0
                m.running_var.fill_(1.0)
                m.running_mean.copy_(torch.round(m.running_mean * 16) / 16)
    return model


def _batches(count: int, seed: int = 1, size: int = 8) -> list[torch.Tensor]:
    # 8 images: batch × space is a power of two in every layer, so channel means of dyadic values
    # are exact and the biases stay dyadic (α = 0.5, 0.25): membranes then land on θ.
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 17, (size, 1, 8, 8), generator=g).float() / 16 for _ in range(count)]


def _official_snn(model: nn.Module, steps: int) -> official.SpikeModel:
    ann = copy.deepcopy(model)
    official.search_fold_and_remove_bn(ann)
    return official.SpikeModel(ann, steps)


def _spike_modules(snn: official.SpikeModel) -> list[official.SpikeModule]:
    return [m for m in snn.modules() if isinstance(m, official.SpikeModule)]


def assert_official_thresholds(
    model: nn.Module, snn: official.SpikeModel, batches: list[torch.Tensor], steps: int, granularity: str
) -> dict:
    """snnbench's MSE thresholds of ``model`` (by IF layer) after checking them against the official
    search run on ``snn`` (the official SpikeModel of the same model)."""
    ours = relu_thresholds(
        relu_graph(model, fold="snnc"), batches, parse_threshold("mse"), steps, granularity=granularity
    )
    official.get_maximum_activation([(x, None) for x in batches], snn, iters=5, sim_length=steps,
                                    channel_wise=granularity == "channel")  # fmt: skip
    # A channel that never fired gets θ = 0 there (it then emits 0·s forever) and θ = 1 here (the IF
    # kernels need θ > 0; it stays silent on data like the calibration's).
    theirs = [torch.where(m.threshold > 0, m.threshold, 1.0).reshape(-1) for m in _spike_modules(snn)]
    assert len(ours) == len(theirs)
    for value, expected in zip(ours.values(), theirs):
        assert torch.equal(torch.tensor(value, dtype=torch.float32).reshape(-1), expected)
    return ours


@pytest.mark.parametrize("granularity,steps", [("layer", 7), ("channel", 4), ("channel", 7)])
def test_mse_thresholds_match_the_official_search(granularity: str, steps: int) -> None:
    model = _model(0)
    ours = assert_official_thresholds(model, _official_snn(model, steps), _batches(3, size=8), steps, granularity)
    assert len(ours) == 3
    if granularity == "channel":
        assert any(len(set(v)) > 1 for v in ours.values())  # the rule really is per channel


def _dyadic_thresholds(layers: int, channels: list[int], granularity: str, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = channels if granularity == "channel" else [1] * layers
    return [2.0 ** torch.randint(-1, 2, (n,), generator=g).float() for n in shapes]


def _both(granularity: str, steps: int, seed: int = 0, dyadic: bool = True):
    """snnbench's converted SNN and the official SpikeModel of the same ANN, with the same θ."""
    model = _model(seed, dyadic=dyadic)
    graph = relu_graph(model, fold="snnc")
    thetas = _dyadic_thresholds(3, [4, 4, 6], granularity, seed)
    clips = [m for m in graph.modules() if isinstance(m, ClipReLU)]
    for clip, theta in zip(clips, thetas):
        clip.thresh = theta.clone()
    ours = to_snnc(convert(graph), steps)
    theirs = _official_snn(model, steps)
    for module, theta in zip(_spike_modules(theirs), thetas):
        module.threshold = theta.reshape(1, -1, 1, 1) if theta.numel() > 1 else theta.reshape(())
    return relu_targets(graph), ours, theirs


CASES = [  # granularity, T, method, alpha, K
    ("layer", 4, "none", 0.5, 1),
    ("channel", 4, "light", 0.5, 1),
    ("layer", 3, "light", 0.5, 1),
    ("channel", 4, "advanced", 0.5, 1),
    ("channel", 4, "ours_wo_avg", 0.5, 2),
    ("layer", 4, "ours_wo_avg", 0.25, 3),
    ("layer", 6, "ours_wo_avg", 0.3, 2),
    ("channel", 4, "ours_w_avg", 0.5, 1),
    ("layer", 4, "ours_w_avg", 0.25, 2),
    ("layer", 5, "ours_w_avg", 0.7, 2),
]


@pytest.mark.parametrize("granularity,steps,method,alpha,k", CASES)
def test_calibrations_match_the_official_code(granularity, steps, method, alpha, k) -> None:
    # Dyadic weights put membranes on θ; a non-dyadic α (0.3, 0.7) with random weights makes every
    # addition round, so the order of the bias and input additions shows in the membranes.
    targets, ours, theirs = _both(granularity, steps, dyadic=alpha in (0.25, 0.5))
    batches = _batches(k + 1)
    loader = [(x, None) for x in batches]
    if method == "light":
        snnc_light(targets, ours, batches[0], steps)
        official.bias_corr_model(theirs, loader, correct_mempot=False, num_cali_sample_batches=1)
    elif method == "advanced":
        snnc_advanced(targets, ours, batches[0], steps)
        official.bias_corr_model(theirs, loader, correct_mempot=True, num_cali_sample_batches=1)
    elif method == "ours_wo_avg":
        ftbc_snnc(targets, ours, batches[:k], steps, alpha, average=False)
        theirs.set_time_dependent_bias()
        official.bias_corr_model_update_step_by_step(theirs, loader, num_cali_sample_batches=k, curr_t_alpha=alpha)
    elif method == "ours_w_avg":
        # The official loop stops after batch index K: it calibrates on K + 1 batches.
        ftbc_snnc(targets, ours, batches[: k + 1], steps, alpha, average=True)
        theirs.set_time_dependent_bias()
        official.x_bias_corr_model_update_step_by_step(theirs, loader, num_cali_sample_batches=k, curr_t_alpha=alpha)
    layers = [m for m in ours.modules() if hasattr(m, "sim_length")]
    for layer, module in zip(layers, _spike_modules(theirs)):
        if method.startswith("ours"):
            assert torch.equal(layer.neuron.bias, torch.stack(module.time_dependent_biases))
            assert layer.neuron.bias.abs().sum() > 0
        if method == "advanced":
            assert torch.equal(layer.initial, module.mem_pot_init)
    if method == "light":
        convs = [m for m in ours.modules() if isinstance(m, nn.Conv2d)]
        assert all(torch.equal(c.bias, m.bias) for c, m in zip(convs, _spike_modules(theirs)))
    _same_simulation(ours, theirs, _batches(1, seed=7, size=10)[0], steps)


WEIGHT_CASES = [  # granularity, T, dyadic weights, Adam learning rate, steps per layer
    ("channel", 4, True, 1e-2, 12),
    ("layer", 3, False, 3e-2, 9),
]


@pytest.mark.parametrize("granularity,steps,dyadic,lr,iterations", WEIGHT_CASES)
def test_advanced_with_weights_matches_the_official_pipeline(granularity, steps, dyadic, lr, iterations) -> None:
    """SNN_Calibration's ImageNet ``advanced``: weights_cali_model, then bias_corr_model(correct_mempot).
    The official loop draws its batches with the global RNG's randperm; snnbench with its generator,
    seeded alike. Every calibrated weight, initial membrane, step logit and final membrane is equal."""
    targets, ours, theirs = _both(granularity, steps, dyadic=dyadic)
    samples, batch = torch.cat(_batches(3, seed=2)), 8  # 24 images, 3 cached batches
    convs = [m for m in ours.modules() if isinstance(m, nn.Conv2d)]
    before = [c.weight.detach().clone() for c in convs]
    trainable = [c.weight.requires_grad for c in convs]
    snnc_weights(targets, ours, samples, steps, lr=lr, iterations=iterations, batch_size=batch,
                 generator=torch.Generator().manual_seed(5))  # fmt: skip
    torch.manual_seed(5)
    official.weights_cali_model(theirs, [(samples, None)], learning_rate=lr, optimize_iter=iterations,
                                batch_size=batch, num_cali_samples=samples.shape[0])  # fmt: skip
    for conv, module, old, flag in zip(convs, _spike_modules(theirs), before, trainable):
        assert torch.equal(conv.weight, module.weight)
        assert not torch.equal(conv.weight, old)  # the weights really moved
        assert conv.weight.requires_grad == flag and conv.weight.grad is None  # left as found
    x = _batches(1, seed=3)[0]
    snnc_advanced(targets, ours, x, steps)
    official.bias_corr_model(theirs, [(x, None)], correct_mempot=True, num_cali_sample_batches=1)
    layers = [m for m in ours.modules() if hasattr(m, "sim_length")]
    for layer, module in zip(layers, _spike_modules(theirs)):
        assert torch.equal(layer.initial, module.mem_pot_init)
    _same_simulation(ours, theirs, _batches(1, seed=7, size=10)[0], steps)


def test_the_weights_calibration_takes_whole_batches_only() -> None:
    targets, ours, _ = _both("layer", 3)
    with pytest.raises(ValueError, match="multiple of 8 images, got 12"):
        snnc_weights(targets, ours, torch.rand(12, 1, 8, 8), 3, lr=1e-3, iterations=1, batch_size=8,
                     generator=torch.Generator())  # fmt: skip


def _same_simulation(ours: nn.Module, theirs: official.SpikeModel, x: torch.Tensor, steps: int) -> None:
    """Equal logits at every step and equal final membranes in every layer: a membrane also tells
    two orders of the same additions apart when no spike flips."""
    membranes: list[torch.Tensor] = []
    layers = [m for m in ours.modules() if hasattr(m, "sim_length")]
    handles = [m.register_forward_hook(lambda m, _i, _o: membranes.append(m.carry)) for m in layers]
    logits = simulate(ours, x, steps)
    for h in handles:
        h.remove()
    expected = official.snn_logits(theirs, x)
    assert torch.equal(logits, expected)
    assert logits.abs().sum() > 0
    for mine, module in zip(membranes, _spike_modules(theirs)):
        assert torch.equal(mine, module.mem_pot)


def _tie_model() -> nn.Module:
    """One 1x1 convolution of weight 1 (constant images in, every neuron alike) and a classifier."""
    model = nn.Sequential()
    model.features = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU())
    model.flat = nn.Flatten()
    model.classifier = nn.Linear(2 * 8 * 8, 3)
    with torch.no_grad():
        model.features[0].weight.fill_(1.0)
        model.features[0].bias.zero_()
        model.classifier.weight.copy_(torch.arange(2 * 8 * 8 * 3).reshape(3, -1).float() % 5 - 2)
        model.classifier.bias.zero_()
    return model.eval()


# Found by search so that a membrane lands exactly on θ = 1 where the two official update rules
# decide on it, and the decision changes a later bias: ours_wo_avg re-spikes only when the redone
# membrane is *above* θ (``>``; ``>=`` gives other biases for c = 1/16, T = 8, α = 1, two batches);
# ours_w_avg fires at u ≥ θ with the old and the new bias (c = 15/16, T = 4, α = 1).
TIES = [(False, 1 / 16, 8), (True, 15 / 16, 4)]


@pytest.mark.parametrize("average,level,steps", TIES)
def test_ftbc_on_membranes_that_land_on_theta(average: bool, level: float, steps: int) -> None:
    theta = torch.ones(1)
    graph = relu_graph(_tie_model(), fold="snnc")
    for clip in (m for m in graph.modules() if isinstance(m, ClipReLU)):
        clip.thresh = theta.clone()
    ours = to_snnc(convert(graph), steps)
    theirs = official.SpikeModel(_tie_model(), steps)
    for module in _spike_modules(theirs):
        module.threshold = theta.reshape(())
    x = torch.full((4, 1, 8, 8), level)
    ftbc_snnc(relu_targets(graph), ours, [x, x], steps, 1.0, average=average)
    theirs.set_time_dependent_bias()
    calibrate = (
        official.x_bias_corr_model_update_step_by_step if average else official.bias_corr_model_update_step_by_step
    )
    calibrate(theirs, [(x, None), (x, None)], num_cali_sample_batches=1 if average else 2, curr_t_alpha=1.0)
    layer = next(m for m in ours.modules() if hasattr(m, "sim_length"))
    assert torch.equal(layer.neuron.bias, torch.stack(_spike_modules(theirs)[0].time_dependent_biases))
    _same_simulation(ours, theirs, x, steps)
