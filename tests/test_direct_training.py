"""Direct-training track: the gradient-zero metric, the losses, the spiking CNNs and one tiny cell."""

from __future__ import annotations

import math
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from snnbench.config import DatasetSpec, SuiteError, TrainingSpec, load_suite
from snnbench.context import ProgressReporter, StepTracker
from snnbench.data.registry import load_dataset
from snnbench.models.registry import build_spiking_model
from snnbench.models.spiking_cnn import PerStepBN, ThresholdDependentBN, lif_layers
from snnbench.neurons import MultiStepLIF
from snnbench.records.store import ResultStore
from snnbench.runner.sweep import run_suite
from snnbench.safe_io import UnusableFileError
from snnbench.training.conv_train import Framework, encode, mean_loss, neuron_options, tet_loss, train_direct
from snnbench.training.grad_sparsity import GradZeroMeter, zero_fractions

RECT = dict(beta=0.5, decay_input=False, threshold=1.0, reset="hard", surrogate="rectangle", alpha=1.0)


class TwoLIFs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = MultiStepLIF(**RECT), MultiStepLIF(**RECT)

    def forward(self, xa, xb):
        return self.a(xa).sum() + self.b(xb).sum()


def test_zero_fraction_matches_a_hand_count():
    # One step, so the gradient at the input is ∂L/∂s · 1[|x - 1| < 1/2] (rectangle, width 1): exact
    # zeros wherever the input lies half a unit or more from the threshold.
    model = TwoLIFs()
    xa = torch.tensor([[0.2, 0.6, 1.0, 1.4, 1.6, 3.0]], requires_grad=True)  # zero, -, -, -, zero, zero
    xb = torch.tensor([[1.0, 5.0]], requires_grad=True)  # -, zero
    with GradZeroMeter(lif_layers(model)) as meter:
        model(xa, xb).backward()
        assert meter.counts() == {"a": (3, 6), "b": (1, 2)}
        model(xa, xb).backward()  # a second iteration adds to the run's counts
        with torch.no_grad():
            model(xa, xb)  # evaluation passes count nothing
    counts = meter.counts()
    assert counts == {"a": (6, 12), "b": (2, 4)}
    fractions = zero_fractions(counts)
    assert fractions == {"a": 0.5, "b": 0.5, "overall": 0.5}
    assert zero_fractions({"a": (1, 4), "b": (0, 0)}) == {"a": 0.25, "b": None, "overall": 0.25}
    # The hooks are gone after the block: a later backward counts nothing.
    model(xa, xb).backward()
    assert meter.counts() == counts


def test_zero_fraction_sees_the_carried_membrane_gradient():
    # Two steps, input at step 0 far below threshold: its own surrogate is 0, but the membrane carries
    # β·∂L/∂h_1 back to it when step 1 is inside the band, so only the no-spike, no-carry entry is zero.
    lif = MultiStepLIF(**RECT)
    x = torch.tensor([[-2.0, -2.0], [2.0, 9.0]], requires_grad=True)  # [T=2, N=2]; h_1 = 1.0 and 8.0
    with GradZeroMeter({"lif": lif}) as meter:
        lif(x).sum().backward()
    assert torch.equal(x.grad == 0, torch.tensor([[False, True], [False, True]]))
    assert meter.counts() == {"lif": (2, 4)}


def test_tet_loss_matches_its_formula():
    gen = torch.Generator().manual_seed(0)
    out = torch.randn(3, 5, 4, generator=gen)  # [T, B, K]
    y = torch.tensor([0, 3, 1, 2, 3])
    lamb, phi = 0.05, 1.0
    ce_t = [-(out[t].log_softmax(1)[torch.arange(5), y]).mean() for t in range(3)]
    expected = (1 - lamb) * sum(ce_t) / 3 + lamb * ((out - phi) ** 2).mean()
    assert math.isclose(tet_loss(out, y, lamb, phi).item(), expected.item(), rel_tol=1e-6)
    assert math.isclose(tet_loss(out, y, 0.0).item(), (sum(ce_t) / 3).item(), rel_tol=1e-6)
    assert math.isclose(mean_loss(out, y).item(), F.cross_entropy(out.mean(0), y).item(), rel_tol=1e-6)
    assert Framework("tet", 0.05, 1.0)(out, y).item() == tet_loss(out, y).item()
    with pytest.raises(ValueError, match="loss"):
        Framework("sum")


def test_encodings_are_time_major():
    images = torch.arange(6.0).view(2, 3)
    assert torch.equal(encode(images, 4, events=False)[3], images)
    frames = torch.randn(2, 5, 2, 4, 4)  # [B, T, C, H, W]
    assert torch.equal(encode(frames, 5, events=True)[4, 1], frames[1, 4])
    with pytest.raises(ValueError, match="steps"):
        encode(frames, 3, events=True)


def test_normalizations():
    x = torch.randn(3, 4, 2, 5, 5) * 3 + 1
    td = ThresholdDependentBN(2, alpha=0.5, threshold=2.0).train()
    y = td(x)  # statistics over T, B, H, W together; scale α·θ = 1
    assert torch.allclose(y.mean((0, 1, 3, 4)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(y.var((0, 1, 3, 4), unbiased=False), torch.ones(2), atol=1e-3)
    shifted = x.clone()
    shifted[1] += 10.0
    per_step = PerStepBN(2).train()(shifted)  # each step normalised alone: the shift of step 1 is gone
    assert torch.allclose(per_step[1].mean((0, 2, 3)), torch.zeros(2), atol=1e-5)


@pytest.mark.parametrize(
    "name,shape,params",
    [
        ("spiking_cnn_small", (2, 3, 1, 8, 8), {"norm": "bn"}),
        ("resnet19", (2, 2, 3, 32, 32), {"width": 0.125}),
        ("vggsnn", (2, 1, 2, 16, 16), {"image_size": 16}),
    ],
)
def test_models_map_time_major_input_to_logits_per_step(name, shape, params):
    neuron = neuron_options("localzo", {"distribution": "normal", "delta": 0.5, "q": 5})
    model = build_spiking_model(name, num_classes=7, in_channels=shape[2], neuron=neuron, **params)
    out = model(torch.randn(shape))
    assert out.shape == (shape[0], shape[1], 7)
    lifs = lif_layers(model)
    assert lifs and all(m.options["beta"] == 0.5 and m.options["reset"] == "hard" for m in lifs.values())
    assert all(m.options["surrogate"] == "localzo" and m.options["q"] == 5 for m in lifs.values())
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_resnet19_has_the_published_depth():
    model = build_spiking_model("resnet19", num_classes=10, in_channels=3, neuron={})
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) + len(linears) == 19  # 1 stem + 8 blocks × 2 + 2 linear
    assert linears[0].in_features == 512 and linears[1].out_features == 10
    with pytest.raises(ValueError, match="takes no parameter"):
        build_spiking_model("resnet19", num_classes=10, in_channels=3, neuron={}, depth=3)


class _CrashAfterFirstEpoch(ProgressReporter):
    """Stops the run right after epoch 1 has been saved, as a crash would."""

    @contextmanager
    def track(self, description, total):
        class Tracker(StepTracker):
            calls = 0

            def advance(self, n: int = 1) -> None:
                Tracker.calls += 1
                if description == "epochs" and Tracker.calls == 2:  # call 1 is advance(start_epoch)
                    raise RuntimeError("crash")

        yield Tracker()


def test_training_resumes_from_its_epoch_state(tmp_path):
    bundle = load_dataset(DatasetSpec(name="digits", limit_train=64, limit_test=32))
    training = TrainingSpec(epochs=2, batch_size=32, lr=0.01, optimizer="adam", weight_decay=0.0)
    neuron = neuron_options("surrogate", {"surrogate": "atan", "width": 2.0})

    def run(**kw):
        torch.manual_seed(0)
        model = build_spiking_model("spiking_cnn_small", num_classes=10, in_channels=1, neuron=neuron, channels=(4, 4))
        return train_direct(
            model,
            bundle.train,
            bundle.test,
            training,
            Framework(),
            steps=2,
            events=False,
            device=torch.device("cpu"),
            seed=0,
            **kw,
        )

    state = tmp_path / "cell.state.pt"
    with pytest.raises(RuntimeError, match="crash"):
        run(state_path=state, progress=_CrashAfterFirstEpoch())
    saved = torch.load(state, weights_only=True)
    assert saved["epoch"] == 1
    resumed, straight = run(state_path=state), run()
    assert resumed["history"][0] == saved["history"][0]  # epoch 1 was not rerun: its timings are the saved ones
    strip = lambda h: {k: v for k, v in h.items() if not k.endswith("_s")}  # noqa: E731
    assert len(resumed["history"]) == 2
    assert [strip(h) for h in resumed["history"]] == [strip(h) for h in straight["history"]]
    assert resumed["counts"] == straight["counts"]
    # A resume state of another layout is refused by name, as the ANN track refuses one.
    torch.save({"epoch": 1, "model": {}}, state)
    with pytest.raises(UnusableFileError, match="cell.state.pt: not a training-resume state of this model"):
        run(state_path=state)


def _direct_suite(tmp_path, **overrides):
    suite = {
        "name": "tiny_direct",
        "track": "direct",
        "datasets": [{"name": "digits", "limit_train": 128, "limit_test": 64}],
        "models": [{"name": "spiking_cnn_small", "channels": [4, 8], "loss": "tet"}],
        "timesteps": [2],
        "methods": [
            {"name": "surrogate", "surrogate": "atan", "width": 2.0},
            {"name": "localzo", "delta": 0.15, "q": 1},
        ],
        "device": "cpu",
        "training": {"epochs": 1, "batch_size": 64, "lr": 0.01, "optimizer": "adam", "weight_decay": 0.0},
    }
    suite.update(overrides)
    path = tmp_path / "tiny_direct.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_a_tiny_direct_cell_end_to_end(tmp_path):
    suite = load_suite(_direct_suite(tmp_path))
    summary = run_suite(suite, results_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")
    assert not summary.failed and len(summary.ran) == 2
    records = {r["method"]: r["metrics"] for r in ResultStore(summary.path).read().records}
    for m in records.values():
        assert len(m["acc_per_epoch"]) == 1 and 0 <= m["test_acc"] <= 100
        assert m["fwd_ms"] > 0 and m["bwd_ms"] > 0 and m["timesteps"] == 2 and m["loss"] == "tet"
        assert set(m["input_grad_zeros_pct_layers"]) == {"features.0.2", "features.2.2"}
    assert records["localzo"]["input_grad_zeros_pct"] > 50 > records["surrogate"]["input_grad_zeros_pct"]
    again = run_suite(suite, results_dir=tmp_path / "runs2", cache_dir=tmp_path / "cache")
    cached = ResultStore(again.path).read().records
    assert all(r["metrics"]["cached"] for r in cached)
    assert {r["method"]: r["metrics"]["test_acc"] for r in cached} == {k: v["test_acc"] for k, v in records.items()}


def test_direct_suite_rejects_other_tracks_methods_and_unknown_model_keys(tmp_path):
    with pytest.raises(SuiteError, match="not a direct-track method"):
        load_suite(_direct_suite(tmp_path, methods=["sparseprop"]))
    from snnbench.runner.sweep import check_models

    path = _direct_suite(tmp_path, models=[{"name": "resnet19", "depth": 18}])
    with pytest.raises(SuiteError, match="models.0.depth"):
        check_models(load_suite(path), path)


@pytest.mark.parametrize(
    "neuron",
    [
        {"surrogate": "atan", "alpha": 2.0},
        {"surrogate": "localzo", "distribution": "normal", "delta": 0.5, "q": 5, "seed": 7},
    ],
)
def test_fused_kernels_inside_a_cnn_match_the_reference(neuron):
    # The CUDA path of the CNNs is the Triton neuron kernel on [T, B, C, H, W] activations; run it
    # under the interpreter against the PyTorch reference with the same weights and the same z.
    x = torch.randn(2, 2, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2
    results = []
    for backend in ("triton", "torch"):
        torch.manual_seed(0)
        model = build_spiking_model(
            "spiking_cnn_small",
            num_classes=3,
            in_channels=1,
            channels=(4, 4),
            neuron={**neuron, "backend": backend, "save_dtype": "fp32"},
        )
        out = model(x)
        out.square().sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (out_a, grads_a), (out_b, grads_b) = results
    assert all(g.abs().sum() > 0 for g in grads_a)  # every layer received gradient: nothing trivially equal
    assert torch.allclose(out_a, out_b, atol=1e-5)
    for ga, gb in zip(grads_a, grads_b):
        assert torch.allclose(ga, gb, rtol=1e-4, atol=1e-5)
