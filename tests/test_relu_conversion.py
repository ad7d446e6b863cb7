"""ReLU ANNs (snnbench's models with ``activation: relu`` and torchvision classifiers) convert by
tracing: BN folded, data-based thresholds, IF layers, the spiking max-pool gate.

Tolerance of the "SNN tracks the ANN" checks: with random weights and max-percentile thresholds,
the relative L2 error ``|mean_{t<=T} logits_t - ANN logits| / |ANN logits|`` must be below 0.3 at
T = 64 and below half its value at T = 8 (conversion error falls roughly as 1/T). The ANN is the
thresholded one (ReLU clipped at each layer's threshold), which is what an IF network can match.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from snnbench.conversion.convert import SpikingMaxPool, convert, simulate, spiking_layers
from snnbench.conversion.graph import UnsupportedOpError, relu_graph
from snnbench.conversion.thresholds import relu_thresholds
from snnbench.threshold_rule import ThresholdRule, parse_threshold
from snnbench.models.registry import build_model
from snnbench.models.torchvision_models import build_torchvision
from snnbench.safe_io import UnusableFileError


def _trained_like(model: nn.Module) -> nn.Module:
    """Random BN statistics, so BN is not the identity and folding it is tested."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _converted(model: nn.Module, x: torch.Tensor, rule=ThresholdRule("percentile", 99.9)):
    """``(graph, snn, errors)``: the traced ANN with its thresholds, its SNN after a run of 64 steps on
    ``x``, and the relative errors at T = 8 and 64."""
    with torch.no_grad():
        graph = relu_graph(_trained_like(model))
        relu_thresholds(graph, [x], rule, 64)
        target = graph(x)
        snn = convert(graph)
        logits = simulate(snn, x, 64)
    return graph, snn, {t: float((logits[:t].mean(0) - target).norm() / target.norm()) for t in (8, 64)}


def _relative_errors(model: nn.Module, x: torch.Tensor) -> dict[int, float]:
    return _converted(model, x)[2]


def _check_tracks(errors: dict[int, float]) -> None:
    assert errors[64] < 0.3 and errors[64] < errors[8] / 2, errors


# One architecture per family of layers (the ResNet basic and bottleneck blocks, VGG with BN);
# resnet34 and vgg11_bn only repeat the layers of resnet18 and vgg16_bn at another depth.
TORCHVISION_FAST = ["resnet18"]
TORCHVISION_SLOW = ["resnet50", "vgg16_bn"]


@pytest.mark.parametrize("arch", TORCHVISION_FAST + [pytest.param(a, marks=pytest.mark.slow) for a in TORCHVISION_SLOW])
def test_torchvision_model_converts_and_tracks_the_ann(arch):
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, num_classes=10)
    # One image of the smallest size VGG's five max-pools take; T = 64 is what the tolerance needs.
    graph, snn, errors = _converted(model, torch.randn(1, 3, 32, 32))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in graph.modules()), "BN must be folded"
    assert any(isinstance(m, SpikingMaxPool) for m in snn.modules())
    _check_tracks(errors)


def test_reused_relu_module_becomes_one_if_layer_per_call():
    graph = relu_graph(torchvision.models.resnet18(num_classes=10))
    names = [n for n, _ in spiking_layers(convert(graph))]
    assert "layer1.0.relu" in names and "layer1.0.relu_1" in names
    assert len(names) == len(set(names)) == 17  # stem + 2 per basic block


@pytest.mark.parametrize(
    "name,kwargs,shape",
    [
        ("digits_cnn", {"width": 4}, (1, 8, 8)),
        ("resnet20", {"width": 4}, (3, 8, 8)),
        ("vgg16", {"width": 2, "hidden": 16}, (3, 32, 32)),
    ],
)
def test_registry_model_with_relu_activation_tracks_the_ann(name, kwargs, shape):
    torch.manual_seed(1)
    model = build_model(name, levels=4, num_classes=5, in_channels=shape[0], activation="relu", **kwargs)
    assert not any(m.__class__.__name__ == "QCFS" for m in model.modules())
    _check_tracks(_relative_errors(model, torch.randn((4,) + shape)))


def test_threshold_rules():
    torch.manual_seed(2)
    model = _trained_like(
        build_model("digits_cnn", levels=4, num_classes=10, in_channels=1, activation="relu", width=4)
    )
    x = torch.rand(16, 1, 8, 8)
    found = {}
    for text in ("max", "percentile(99)", "mse"):
        graph = relu_graph(model)
        found[text] = relu_thresholds(graph, [x, x.flip(0)], parse_threshold(text), steps=4)
    for layer in found["max"]:
        assert 0 < found["percentile(99)"][layer] <= found["max"][layer]
        assert 0 < found["mse"][layer] <= found["max"][layer] + 1e-6
    assert found["mse"] != found["max"], "the MSE search must move below the maximum at T = 4"
    with pytest.raises(ValueError, match="percentile"):
        parse_threshold("percentile(120)")
    with pytest.raises(ValueError, match="'max', 'mse'"):
        parse_threshold("median")


def test_unsupported_ops_are_refused_by_name():
    with pytest.raises(UnsupportedOpError, match="Hardswish"):
        relu_graph(torchvision.models.mobilenet_v3_small(num_classes=10))

    class Gelu(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return torch.nn.functional.gelu(self.fc(x))

    with pytest.raises(UnsupportedOpError, match="gelu"):
        relu_graph(Gelu())

    class FunctionalMaxPool(nn.Module):
        def forward(self, x):
            return torch.relu(torch.nn.functional.max_pool2d(x, 2))

    with pytest.raises(UnsupportedOpError, match=r"max_pool2d.*nn\.MaxPool2d"):
        relu_graph(FunctionalMaxPool())


def test_spiking_max_pool_gate_passes_the_most_active_neuron():
    rates = torch.tensor([0.2, 0.9, 0.5, 0.0])  # one 2x2 window
    steps = 200
    spikes = (torch.arange(1, steps + 1).view(-1, 1) * rates).floor().diff(dim=0, prepend=torch.zeros(1, 4))
    gate = SpikingMaxPool(nn.MaxPool2d(2))
    gate.steps = steps
    out = gate(spikes.view(steps, 1, 2, 2))
    assert out.shape == (steps, 1, 1, 1)
    assert abs(float(out.mean()) - 0.9) < 0.01
    assert set(out.unique().tolist()) <= {0.0, 1.0}  # it passes spikes, never sums them


def test_torchvision_weights_from_a_file_and_missing_weights(tmp_path):
    torch.manual_seed(3)
    original = torchvision.models.resnet18(num_classes=7).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(original.state_dict(), path)
    loaded = build_torchvision("torchvision:resnet18", weights=str(path)).eval()
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(loaded(x), original(x))
    # A training script's wrapper ({"model": ...}) keeps its class count (it was read as 1000 before).
    torch.save({"model": original.state_dict(), "epoch": 3}, tmp_path / "wrapped.pth")
    wrapped = build_torchvision("torchvision:resnet18", weights=str(tmp_path / "wrapped.pth")).eval()
    assert torch.equal(wrapped(x), original(x))
    (tmp_path / "planted.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UnusableFileError, match="planted.pth"):
        build_torchvision("torchvision:resnet18", weights=str(tmp_path / "planted.pth"))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "absent.pth")):
        build_torchvision("torchvision:resnet18", weights=str(tmp_path / "absent.pth"))
    with pytest.raises(FileNotFoundError, match="download: true"):
        build_torchvision("torchvision:resnet34", weights="IMAGENET1K_V1", download=False)
    with pytest.raises(ValueError, match="no weights 'IMAGENET9K'"):
        build_torchvision("torchvision:resnet34", weights="IMAGENET9K")
    with pytest.raises(ValueError, match="unknown torchvision classification model"):
        build_torchvision("torchvision:resnet9000")


@pytest.mark.slow
# The preflight loads the weights file into a meta-device model; torch's warning for each tensor whose
# copy that skips (122 for ResNet-18) once flooded stderr.
@pytest.mark.filterwarnings("error:.*copying from a non-meta parameter:UserWarning")
def test_suite_runs_a_relu_registry_model_and_a_torchvision_model(tmp_path):
    """End to end through the CLI: a ReLU digits CNN with FTBC, and a torchvision ResNet-18 from a
    local weights file on synthetic CIFAR-shaped images, with threshold rules in the records. Both
    suites in one `snnbench run`, in this process (a fresh interpreter spends ~4 s importing torch,
    torchvision and scikit-learn before the suites' ~2 s of work)."""
    import json

    from helpers import invoke_cli, tiny_digits_suite

    torch.save(torchvision.models.resnet18(num_classes=100).state_dict(), tmp_path / "r18.pth")
    relu = tiny_digits_suite(
        tmp_path,
        "relu",
        methods=["none", "ftbc"],
        timesteps=[1, 2],
        models=[{"name": "digits_cnn", "width": 8, "activation": "relu", "threshold": "percentile(99.9)"}],
    )
    tv = tiny_digits_suite(
        tmp_path,
        "tv",
        methods=["none"],
        timesteps=[2],
        datasets=[{"name": "synthetic", "limit_train": 8, "limit_test": 4}],
        models=[{"name": "torchvision:resnet18", "weights": str(tmp_path / "r18.pth"), "threshold_batches": 1}],
    )
    done = invoke_cli("run", relu, tv, "--results-dir", tmp_path, "--cache-dir", tmp_path / "c")
    assert done.exit_code == 0, done.output
    records = [json.loads(line) for name in ("relu", "tv") for line in open(tmp_path / f"{name}.jsonl")]
    assert [r["metrics"]["threshold_rule"] for r in records] == ["percentile(99.9)"] * 2 + ["max"]
    assert [r["method"] for r in records] == ["none", "ftbc", "none"]
    assert records[2]["metrics"]["ann_source"].startswith("weights:")
    bad = tiny_digits_suite(
        tmp_path, "bad", models=[{"name": "digits_cnn", "activation": "relu", "threshold": "median"}]
    )
    refused = invoke_cli("run", bad, "--results-dir", tmp_path)
    assert refused.exit_code == 2 and "threshold must be" in refused.stderr, refused.output
