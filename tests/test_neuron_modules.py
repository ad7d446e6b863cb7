"""MultiStepIF / MultiStepLIF: the modules over the fused kernels keep their interface and semantics."""

from __future__ import annotations

import copy

import pytest
import torch

from snnbench.kernels import multistep_lif
from snnbench.kernels import neuron as nk
from snnbench.kernels.neuron_options import NeuronOptions
from snnbench.conversion.ftbc_reference import step_by_step_simulate
from snnbench.neurons import MultiStepIF, MultiStepLIF


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_if_module_matches_plain_loop(backend):
    gen = torch.Generator().manual_seed(0)
    layer = MultiStepIF(torch.rand(4, generator=gen) + 0.5, channels=4, backend=backend)
    layer.set_bias(0.1 * torch.randn(6, 4, generator=gen))
    x = torch.randn(6, 3, 4, 5, 5, generator=gen) + 0.3
    out, v = layer.simulate(x)
    ref_out, ref_v = step_by_step_simulate(layer, x)
    assert torch.equal(out, ref_out) and torch.equal(v, ref_v)
    assert torch.equal(layer(x), out)


def test_if_module_chunks_in_time_like_one_call():
    # A simulation split in chunks carries v and applies the right bias rows (t_offset).
    gen = torch.Generator().manual_seed(1)
    layer = MultiStepIF(0.9, backend="triton")
    layer.set_bias(0.2 * torch.randn(5, 3, generator=gen))
    x = torch.randn(5, 2, 3, generator=gen) + 0.4
    whole, v_whole = layer.simulate(x)
    first, v1 = layer.simulate(x[:2])
    second, v2 = layer.simulate(x[2:], v_init=v1, t_offset=2)
    assert torch.equal(torch.cat([first, second]), whole) and torch.equal(v2, v_whole)


def test_if_module_keeps_its_state_dict_interface():
    layer = MultiStepIF(torch.tensor([1.0, 2.0]), channels=2)
    layer.set_bias(torch.ones(3, 2))
    fresh = MultiStepIF(torch.tensor([1.0, 1.0]), channels=2)
    fresh.load_state_dict(layer.state_dict())
    assert set(layer.state_dict()) == {"thresh", "bias"}
    assert torch.equal(fresh.bias, torch.ones(3, 2)) and torch.equal(fresh.thresh, torch.tensor([1.0, 2.0]))
    x = torch.randn(3, 4, 2)
    assert torch.equal(fresh(x), layer(x))


@pytest.mark.parametrize("surrogate", ["sigmoid", "localzo"])
def test_lif_module_matches_function_and_trains(surrogate):
    gen = torch.Generator().manual_seed(2)
    kw = dict(tau=4.0, reset="soft", surrogate=surrogate, delta=0.5, q=2)
    layer = MultiStepLIF(seed=11, backend="triton", **kw)
    x = (torch.randn(5, 3, 8, generator=gen) + 0.8).requires_grad_()
    spikes = layer(x)
    ref, _ = multistep_lif(x.detach(), seed=11, backend="torch", **kw)
    assert torch.equal(spikes.detach(), ref)
    spikes.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_lif_module_rejects_bad_options_at_construction():
    with pytest.raises(ValueError, match="^surrogate"):
        MultiStepLIF(surrogate="step")
    with pytest.raises(ValueError, match="^tau"):
        MultiStepLIF(tau=0.2)
    assert "tau=2.0" in repr(MultiStepLIF())


def test_modules_prepare_their_options_once(monkeypatch):
    """The hot path builds no options: a call checks its input and launches with the module's own."""
    built = []
    real = NeuronOptions.__post_init__
    monkeypatch.setattr(NeuronOptions, "__post_init__", lambda self: (built.append(1), real(self)))
    lif = MultiStepLIF(tau=3.0, backend="triton", surrogate="localzo", delta=0.5)
    layer = MultiStepIF(torch.tensor([0.9, 1.1]), channels=2, backend="triton")
    layer.set_bias(0.1 * torch.ones(3, 2))
    built.clear()
    x = (torch.randn(3, 2, 2) + 0.5).requires_grad_()
    for _ in range(2):
        (lif(x).sum() + layer(x).sum()).backward()
    assert built == []
    lif.set_options(reset="soft")  # a change is checked and prepared again, once, at once
    assert built == [1] and lif.options["reset"] == "soft" and lif.options["tau"] == 3.0
    with pytest.raises(TypeError):
        lif.options["reset"] = "hard"  # read-only: a silent edit would not reach the prepared options
    with pytest.raises(ValueError, match="^q: "):
        lif.set_options(q=0)
    twin = copy.deepcopy(lif)  # modules are copied and pickled whole (checkpoints, EMA, workers)
    assert twin.options == lif.options and torch.equal(twin(x.detach()), lif(x.detach()))


def test_host_only_runs_a_call_without_its_launches(monkeypatch):
    """host_only() times everything of a call but the kernels: outputs come back unwritten."""
    real = nk._new_buffer
    monkeypatch.setattr(nk, "_new_buffer", lambda shape, dtype, device: real(shape, dtype, device).fill_(7))
    lif = MultiStepLIF(backend="triton")
    x = (torch.randn(3, 2, 5) + 0.5).requires_grad_()
    with nk.host_only():
        spikes, v = lif.simulate(x)
        (grad,) = torch.autograd.grad(spikes.sum(), x)
    assert bool((spikes == 7).all() and (v == 7).all() and (grad == 7).all())
    spikes, _ = lif.simulate(x)
    assert bool(((spikes == 0) | (spikes == 1)).all())


def test_building_a_localzo_network_leaves_the_global_generator_alone():
    """A LocalZO layer draws its seed per call, never at construction: with one seed, a surrogate and a
    LocalZO network start from the same weights (an earlier build drew a seed while checking options,
    which shifted every later layer's initialisation)."""
    from snnbench.models.registry import build_spiking_model

    def initial_weights(neuron):
        torch.manual_seed(7)
        model = build_spiking_model("spiking_cnn_small", num_classes=10, in_channels=1, neuron=neuron, channels=[4, 8])
        return [p.detach().clone() for p in model.parameters()]

    surrogate = initial_weights({"surrogate": "atan", "alpha": 2.0})
    localzo = initial_weights({"surrogate": "localzo", "distribution": "normal", "delta": 0.15, "q": 1})
    assert len(surrogate) == len(localzo) > 2
    assert all(torch.equal(a, b) for a, b in zip(surrogate, localzo))
