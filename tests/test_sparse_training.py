"""The spiking MLP's training methods, their configuration errors and one tiny cell end to end."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import torch

from snnbench.kernels import sparse_backward as sb
from tests.helpers import spike_with_given_g
from snnbench.training import snn_mlp
from snnbench.training.snn_mlp import SNNConfig, SpikingMLP, TrainingMethod, config_for, training_method

REPO = Path(__file__).resolve().parents[1]


def _net(hidden=(9, 11), inputs=7, outputs=4, seed=0, gain=(5.0, 3.0, 1.0)):
    cfg = SNNConfig(inputs=inputs, outputs=outputs, hidden=hidden, pool="max")
    model = SpikingMLP(cfg, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for p, k in zip(model.weights, gain):
            p.mul_(k)
    return model


def _batch(T=8, B=5, N=7, C=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, N, generator=gen) < 0.4).float()
    return x, torch.randint(0, C, (B,), generator=gen)


def _grads(model, method, x, y, backend, seed=3):
    model.zero_grad(set_to_none=True)
    out = model(x, method, seed=seed, backend=backend)
    model.loss(out, y).backward()
    return [p.grad.clone() for p in model.weights], out


def _autograd_oracle(model, x, y, gs):
    """The whole network through autograd with each layer's spike derivative fixed to ``gs[l]``."""
    cfg, (T, B, _) = model.cfg, x.shape
    weights = [p.detach().clone().requires_grad_(True) for p in model.weights]
    h, counts = x, []
    for w, g in zip(weights[:-1], gs):
        current = (h.reshape(T * B, -1) @ w).view(T, B, -1)
        u = torch.zeros_like(current[0])
        s = torch.zeros_like(u)
        out = []
        for t in range(T):
            u = cfg.beta * u + current[t] - s.detach()
            s = spike_with_given_g(u - 1.0, g[t])
            out.append(s)
        h = torch.stack(out)
        counts.append(h.sum(0))
    v = snn_mlp.leaky_readout((h.reshape(T * B, -1) @ weights[-1]).view(T, B, -1), cfg.beta_out)
    loss = torch.nn.functional.cross_entropy(v.amax(0), y) + model.regularizer(counts)
    loss.backward()
    return [w.grad for w in weights]


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize(
    "rule",
    [sb.SpikeRule("localzo", delta=0.4, q=1), sb.SpikeRule("sparseprop", b_th=0.4, width=6.0)],
    ids=["localzo", "sparseprop"],
)
def test_sparse_stack_equals_its_dense_twin(backend, rule):
    model = _net()
    x, y = _batch()
    sparse, out = _grads(
        model, TrainingMethod("localzo" if rule.rule == "localzo" else "sparseprop", rule=rule), x, y, backend
    )
    twin, twin_out = _grads(model, TrainingMethod("localzo_dense", rule=rule), x, y, backend)
    assert all(0 < f < 1 for f in out.active_fraction)
    assert out.active_fraction == pytest.approx(twin_out.active_fraction)
    torch.testing.assert_close(out.logits, twin_out.logits)
    for a, b in zip(sparse, twin):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_dense_twin_equals_autograd_with_the_same_g():
    model = _net(seed=1)
    x, y = _batch(seed=1)
    rule = sb.SpikeRule("localzo", delta=0.4, q=1)
    twin, _ = _grads(model, TrainingMethod("localzo_dense", rule=rule), x, y, "torch", seed=7)
    # Recover each layer's g exactly as the forward drew it (same seeds, same inputs).
    T, B, _ = x.shape
    gs, h = [], x
    for layer, w in enumerate(list(model.weights)[:-1]):
        current = (h.reshape(T * B, -1) @ w.detach()).view(T, B, -1)
        h, _, g = sb.lif_record_forward(current, model.cfg.beta, rule, sb.layer_seed(7, layer), "torch", dense_g=True)
        gs.append(g)
    for a, b in zip(twin, _autograd_oracle(model, x, y, gs)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_surrogate_method_matches_fully_active_sparseprop(backend):
    # With every entry active and g = fast sigmoid, the sparse backward is dense BPTT, whether the
    # dense side runs the fused neuron kernels (triton) or autograd through the time loop (torch).
    model = _net(seed=2)
    x, y = _batch(seed=2)
    dense, _ = _grads(model, TrainingMethod("surrogate", surrogate="fast_sigmoid", width=5.0), x, y, backend)
    full, out = _grads(
        model, TrainingMethod("sparseprop", rule=sb.SpikeRule("sparseprop", b_th=1e9, width=5.0)), x, y, "torch"
    )
    assert out.active_fraction == [1.0, 1.0]
    for a, b in zip(full, dense):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_inference_forward_matches_training_forward():
    model = _net(seed=3)
    x, _ = _batch(seed=3)
    train_out = model(x, training_method("localzo"), seed=1)
    eval_out = model(x, None)
    torch.testing.assert_close(eval_out.logits, train_out.logits.detach())
    for a, b in zip(eval_out.counts, train_out.counts):
        assert torch.equal(a, b.detach())


@pytest.mark.parametrize("kind", ["sigmoid", "atan", "fast_sigmoid"])
def test_fused_surrogate_method_equals_the_pytorch_loop(kind):
    # The same spikes (bit for bit: both backends do the same fp32 operations in the same order)
    # and the same weight gradients up to accumulation order.
    model = _net(seed=4)
    x, y = _batch(seed=4)
    method = TrainingMethod("surrogate", surrogate=kind, width=4.0)
    fused, fused_out = _grads(model, method, x, y, "triton")
    loop, loop_out = _grads(model, method, x, y, "torch")
    for a, b in zip(fused_out.counts, loop_out.counts):
        assert torch.equal(a, b) and a.sum() > 0
    for a, b in zip(fused, loop):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert a.abs().max() > 0


@pytest.mark.parametrize("kind", ["sigmoid", "atan", "rectangle", "triangle", "fast_sigmoid", "gaussian"])
def test_surrogates_peak_at_threshold(kind):
    # One step from rest: u = I, so ∂s/∂I is the surrogate σ'(I − θ) itself.
    current = (torch.linspace(-2, 2, 401) + snn_mlp.THETA).view(1, 1, -1).requires_grad_(True)
    snn_mlp.dense_lif_bptt(current, 0.9, kind, 3.0).sum().backward()
    d = current.grad.flatten()
    assert d.min() >= 0 and d[200] == d.max() and d[0] < d[200] and d[-1] < d[200]


# ---------------------------------------------------------------------------------------------
# Timing sections and peak memory


def test_backward_sections_cover_the_same_work_for_every_method(monkeypatch):
    from snnbench.training import sparse_train

    log: list[tuple[str, str]] = []

    class LoggingTimer(sparse_train.SectionTimer):
        def __call__(self, name):
            log.append(("with", name))
            return super().__call__(name)

        def begin(self, name):
            log.append(("begin", name))
            super().begin(name)

    monkeypatch.setattr(sparse_train, "SectionTimer", LoggingTimer)
    model = _net()
    x, y = _batch()
    rule = sb.SpikeRule("localzo", delta=0.4, q=1)
    marks = {}
    for method in (
        TrainingMethod("surrogate", width=5.0),
        TrainingMethod("localzo", rule=rule),
        TrainingMethod("localzo_dense", rule=rule),
    ):
        log.clear()
        timing = sparse_train.time_steps(model, method, [(x, y)], torch.device("cpu"), backend="torch")
        # Backward sections open by marks only (no nested context managers), in the same order.
        assert not [n for kind, n in log if kind == "with" and n.endswith(".bwd")], method.name
        marks[method.name] = [n for kind, n in log if kind == "begin"]
        sections = sum(entry.get("bwd_ms", 0.0) for entry in timing.layers.values())
        assert 0 < sections <= timing.bwd_ms * 1.001 + 0.05
    per_step = ["readout.bwd", "hidden2.bwd", "hidden1.bwd"]
    assert marks["surrogate"] == per_step * 2  # warm-up batch + one timed batch
    assert marks["localzo"] == marks["surrogate"] == marks["localzo_dense"]


@pytest.mark.parametrize("path", ["kernel_peak", "sampler"])
def test_peak_memory_is_per_block_on_cpu(path, monkeypatch):
    from snnbench.training import sparse_train
    from snnbench.training.sparse_train import PeakMemory

    if path == "sampler":  # the fallback where /proc/self/clear_refs is unavailable
        monkeypatch.setattr(sparse_train, "_reset_kernel_peak_rss", lambda: False)
    size = 64 * 2**20
    import mmap

    with PeakMemory(torch.device("cpu")) as first:
        # Fresh pages straight from the kernel, written so they are resident: an allocator could
        # hand back memory an earlier test freed, which no RSS measure can see as new.
        block = mmap.mmap(-1, size)
        for offset in range(0, size, 4096):
            block[offset] = 1
        time.sleep(0.05)
        block.close()
    with PeakMemory(torch.device("cpu")) as second:
        time.sleep(0.02)
    assert first.kind == second.kind == "cpu_rss_increase"
    assert first.peak_bytes >= 0.75 * size
    # A process-wide peak would report the first block's 64 MiB again here.
    assert second.peak_bytes < 0.25 * size


# ---------------------------------------------------------------------------------------------
# Configuration


def test_training_method_validation():
    assert training_method("sparseprop").rule.b_th == pytest.approx(0.05 * math.sqrt(2 / math.pi))
    assert training_method("sparseprop", {"b_th": 0.2}).rule.b_th == 0.2
    assert training_method("localzo", {"delta": 0.3, "q": 2, "distribution": "laplace"}).rule.q == 2
    assert training_method("surrogate", {"surrogate": "atan"}).surrogate == "atan"
    for name, params in [
        ("localzo", {"delta": -1.0}),
        ("localzo", {"q": 0}),
        ("localzo", {"distribution": "cauchy"}),
        ("sparseprop", {"b_th": 0}),
        ("sparseprop", {"bth": 0.2}),
        ("surrogate", {"surrogate": "relu"}),
        ("ftbc", {}),
        ("nonsense", {}),
    ]:
        with pytest.raises(ValueError):
            training_method(name, params)


def test_model_config_presets_and_errors():
    shd = config_for("shd", 700, 20, {"hidden": 64})
    assert shd.hidden == (64, 64) and shd.pool == "sum" and shd.beta == pytest.approx(math.exp(-0.2))
    assert shd.beta_out == pytest.approx(math.exp(-0.1))
    assert config_for("fmnist", 784, 10, {"hidden": [30, 20]}).hidden == (30, 20)
    with pytest.raises(ValueError, match="unknown snn_mlp parameter"):
        config_for("fmnist", 784, 10, {"hiden": 5})
    with pytest.raises(ValueError):
        config_for("fmnist", 784, 10, {"pool": "mean"})
    with pytest.raises(ValueError):
        config_for("fmnist", 784, 10, {"hidden": 0})


def test_suites_validate():
    from snnbench.config import load_suite
    from snnbench.records.cells import expand

    for name, T in [("digits_spiking", 100), ("fmnist", 100), ("nmnist", 300), ("shd", 500)]:
        suite = load_suite(REPO / "suites" / f"{name}.yaml")
        assert suite.track == "training" and suite.timesteps == [T]
        for cell in expand(suite):
            training_method(cell.method.name, cell.method.params)
            assert cell.model.name == "snn_mlp"


# ---------------------------------------------------------------------------------------------
# One cell end to end


def _cell(method, **training):
    from snnbench.config import DatasetSpec, MethodSpec, ModelSpec, TrainingSpec
    from snnbench.records.cells import Cell

    return Cell(
        suite="tiny",
        track="training",
        dataset=DatasetSpec(name="digits_spiking", limit_train=96, limit_test=40),
        model=ModelSpec.model_validate({"name": "snn_mlp", "hidden": 12}),
        method=MethodSpec.model_validate(method),
        seed=0,
        timesteps=(40,),
        training=TrainingSpec(
            **{"epochs": 1, "batch_size": 32, "lr": 0.005, "optimizer": "adam", "weight_decay": 0.0, **training}
        ),
        device="cpu",
    )


@pytest.mark.parametrize("method", [{"name": "localzo", "delta": 0.3}, "surrogate"], ids=["localzo", "surrogate"])
def test_run_training_cell_tiny(tmp_path, method):
    from snnbench.context import RunContext
    from snnbench.training.pipeline import run_training_cell

    seen = []

    class Progress:
        from contextlib import contextmanager

        @contextmanager
        def track(self, description, total):
            seen.append((description, total))
            from snnbench.context import StepTracker

            yield StepTracker()

    ctx = RunContext(device=torch.device("cpu"), cache_dir=tmp_path, progress=Progress())
    m = run_training_cell(_cell(method), ctx)
    json.dumps(m)  # plain JSON types only
    assert 0.0 <= m["test_acc"] <= 100.0
    for key in ("train_s", "evaluate_s", "fwd_ms", "bwd_ms", "step_ms", "bwd_speedup", "step_speedup"):
        assert m[key] > 0, key
    assert m["peak_mem_kind"] == "cpu_rss_increase" and m["peak_mem_bytes"] >= 0
    assert m["hidden"] == 12 and m["timesteps"] == 40
    assert set(m["layers"]) >= {"hidden1", "hidden2"}
    assert all("bwd_ms" in m["layers"][k] and "active_fraction" in m["layers"][k] for k in ("hidden1", "hidden2"))
    if m.get("rule"):
        assert 0.0 <= m["active_fraction"] < 1.0
    else:
        assert m["active_fraction"] == 1.0 and m["bwd_speedup"] == 1.0
    assert any("epoch" in d for d, _ in seen)


def test_run_training_cell_rejects_other_models(tmp_path):
    from snnbench.config import ModelSpec
    from snnbench.context import RunContext
    from snnbench.training.pipeline import run_training_cell

    cell = _cell("localzo")
    object.__setattr__(cell, "model", ModelSpec(name="vgg16"))
    with pytest.raises(ValueError, match="snn_mlp"):
        run_training_cell(cell, RunContext(device=torch.device("cpu"), cache_dir=tmp_path))
