"""The published SparseProp / LocalZO protocol options against an independent transcription of the
official training code (npvoid/SparseSpikingBackprop, LocalZO's SparseGrad framework), written here
from its description: batch-major tensors, one Python loop per layer, the readout's record starting at 0.

    every layer:  mem[0] = 0;  mem[t+1] = β·mem[t] + (x[t] @ W) − rst[t];  spk[t+1] = H(mem[t+1] − θ)
    readout:      out[0] = 0;  out[t+1] = β_o·out[t] + (1 − β_o)·(spk[t] @ W_o)
    logits:       max over the record of out (SHD code: its sum); loss = NLL + spike-rate regularisers
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from snnbench.config import DatasetSpec
from snnbench.data.events import bin_events
from snnbench.training.snn_mlp import SNNConfig, SpikingMLP, training_method

T, B, N_IN, H, C = 14, 5, 12, 16, 4
BETA = math.exp(-1e-3 / 10e-3)
BETA_OUT = math.exp(-1e-3 / 10e-3)
NORMAL_BAND = 0.7978  # the official b_th = 1 − δ·0.7978 (q = 1, normal z)


class _OfficialSpike(torch.autograd.Function):
    """H(v) forward; backward: the official surrogate g(v), optionally zero outside |v| < band."""

    @staticmethod
    def forward(ctx, v, g_fn, band):
        ctx.save_for_backward(v)
        ctx.g_fn, ctx.band = g_fn, band
        return (v > 0).float()

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        g = ctx.g_fn(v)
        if ctx.band is not None:  # the official active set: b_th < mem < 2θ − b_th with b_th = θ − band
            g = torch.where((v + 1.0 > 1.0 - ctx.band) & (v + 1.0 < 1.0 + ctx.band), g, torch.zeros_like(g))
        return grad * g, None, None


def fast_sigmoid_100(v):  # SparseProp's SurrGradSpike, scale 100
    return 1.0 / (100.0 * v.abs() + 1.0) ** 2


def normal_pdf(delta):  # LocalZO's ``normal`` surrogate and its S3GD kernel's g
    return lambda v: torch.exp(-(v**2) / (2 * delta**2)) / (delta * math.sqrt(2 * math.pi))


def official_loss(x_tbn, weights, y, g_fn, band=None, pooling="max"):
    """The official forward and loss on ``x[T, B, N]`` (transposed to its batch-major layout)."""
    inp = x_tbn.transpose(0, 1)
    layers = []
    for w in weights[:-1]:
        cur = torch.einsum("btn,nh->bth", inp, w)
        mem = torch.zeros(B, w.shape[1])
        rst = torch.zeros_like(mem)
        spikes = [torch.zeros_like(mem)]
        for t in range(T - 1):
            mem = BETA * mem + cur[:, t] - rst
            spikes.append(_OfficialSpike.apply(mem - 1.0, g_fn, band))
            rst = (mem - 1.0 > 0).float().detach()
        inp = torch.stack(spikes, 1)
        layers.append(inp)
    cur = torch.einsum("bth,hc->btc", inp, weights[-1])
    out = torch.zeros(B, C)
    record = [out]
    for t in range(T - 1):
        out = BETA_OUT * out + (1 - BETA_OUT) * cur[:, t]
        record.append(out)
    record = torch.stack(record, 1)
    m = record.sum(1) if pooling == "sum" else record.max(1)[0]
    loss = torch.nn.functional.nll_loss(torch.log_softmax(m, 1), y)
    for spk in layers:  # lambda_upper 0.06, f_upper 1, lambda_lower 100, f_lower 1e-3, p_up 1
        n = spk.shape[2]
        counts = spk.sum(1)
        upper = 0.06 * torch.clamp(counts.sum(1) / n - 1.0, min=0.0)
        lower = 100.0 * (torch.clamp(1e-3 - counts, min=0.0) ** 2).sum(1) / n
        loss = loss + (upper + lower).sum() / B
    return loss


def _batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, N_IN, generator=gen) < 0.35).float()
    y = torch.randint(0, C, (B,), generator=gen)
    sizes = (N_IN, H, H, C)
    weights = [torch.randn(a, b, generator=gen) * s for (a, b), s in zip(zip(sizes[:-1], sizes[1:]), (0.9, 0.7, 0.5))]
    return x, y, weights


def _ours(weights, **cfg):
    model = SpikingMLP(SNNConfig(inputs=N_IN, outputs=C, hidden=(H, H), **cfg))
    with torch.no_grad():
        for p, w in zip(model.weights, weights):
            p.copy_(w)
    return model


def _loss_and_grads(model, x, y, method, backend="torch"):
    model.zero_grad(set_to_none=True)
    loss = model.loss(model(x, method, seed=3, backend=backend), y)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.weights]


def _official_loss_and_grads(x, y, weights, g_fn, band=None, pooling="max"):
    leaves = [w.clone().requires_grad_(True) for w in weights]
    loss = official_loss(x, leaves, y, g_fn, band, pooling)
    loss.backward()
    return loss.detach(), [w.grad for w in leaves]


def _assert_same(ours, official):
    (loss, grads), (ref_loss, ref_grads) = ours, official
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)
    assert any(float(r.abs().sum()) > 0 for r in ref_grads[:2])  # the hidden layers get a gradient


@pytest.mark.parametrize("pool", ["max", "max_with_zero"])
def test_delay_and_max_readout_match_the_official_recurrence(pool):
    x, y, weights = _batch()
    method = training_method("surrogate", {"surrogate": "fast_sigmoid", "width": 100.0})
    ours = _loss_and_grads(_ours(weights, delay=1, pool=pool), x, y, method)
    _assert_same(ours, _official_loss_and_grads(x, y, weights, fast_sigmoid_100))


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_localzo_with_delay_sparse_equals_its_dense_twin(backend):
    # the delayed input gradient (shift 1 in the sparse input-gradient kernel) against autograd
    x, y, weights = _batch(1)
    weights = [w * 1.5 for w in weights]
    model = _ours(weights, delay=1)
    sparse = _loss_and_grads(model, x, y, training_method("localzo", {"delta": 0.3}), backend)
    dense = _loss_and_grads(model, x, y, training_method("localzo_dense", {"delta": 0.3}), backend)
    _assert_same(sparse, dense)


def test_max_with_zero_clamps_negative_logits_and_blocks_their_gradient():
    x, y, weights = _batch(2)
    weights[-1] = -weights[-1].abs()  # every readout current ≤ 0
    method = training_method("surrogate", {"surrogate": "fast_sigmoid", "width": 100.0})
    model = _ours(weights, delay=0, pool="max_with_zero")
    out = model(x, method, backend="torch")
    assert float(out.logits.detach().min()) >= 0.0
    plain = _ours(weights, delay=0, pool="max")(x, method, backend="torch")
    assert float(plain.logits.detach().max()) <= 0.0 and float(plain.logits.detach().min()) < 0.0
    model.loss(out, y).backward()
    # the readout gets no gradient from the cross-entropy, only the hidden regularisers are left
    assert float(model.weights[-1].grad.abs().sum()) == 0.0


def test_sum_readout_with_delay_matches_the_official_shd_pooling():
    x, y, weights = _batch(3)
    method = training_method("surrogate", {"surrogate": "fast_sigmoid", "width": 100.0})
    ours = _loss_and_grads(_ours(weights, delay=1, pool="sum"), x, y, method)
    _assert_same(ours, _official_loss_and_grads(x, y, weights, fast_sigmoid_100, pooling="sum"))


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_sparseprop_with_delay_matches_the_official_band_masked_surrogate(backend):
    x, y, weights = _batch(4)
    band = 0.2  # the official b_th = 0.8
    method = training_method("sparseprop", {"b_th": band, "width": 100.0})
    model = _ours(weights, delay=1)
    ours = _loss_and_grads(model, x, y, method, backend)
    _assert_same(ours, _official_loss_and_grads(x, y, weights, fast_sigmoid_100, band=band))


def test_surrogate_normal_is_localzos_dense_baseline():
    x, y, weights = _batch(5)
    method = training_method("surrogate_normal", {})
    assert method.rule is None and method.surrogate == "gaussian" and method.width == pytest.approx(20.0)
    weights = [w * 1.5 for w in weights]  # a band of std 0.05 needs many u near θ
    ours = _loss_and_grads(_ours(weights, delay=1), x, y, method)
    _assert_same(ours, _official_loss_and_grads(x, y, weights, normal_pdf(0.05)))


def test_sparseprop_normal_is_localzos_s3gd_baseline():
    x, y, weights = _batch(6)
    method = training_method("sparseprop_normal", {})
    assert method.sparse and method.rule.surrogate == "gaussian"
    assert method.rule.b_th == pytest.approx(0.05 * NORMAL_BAND, rel=1e-3)
    weights = [w * 1.5 for w in weights]
    ours = _loss_and_grads(_ours(weights, delay=1), x, y, method)
    _assert_same(ours, _official_loss_and_grads(x, y, weights, normal_pdf(0.05), band=0.05 * NORMAL_BAND))


def test_init_scale_is_the_official_normal_init():
    cfg = SNNConfig(inputs=784, outputs=10, hidden=(200, 200), init="normal", weight_multiplier=20.0)
    model = SpikingMLP(cfg, generator=torch.Generator().manual_seed(0))
    for w, fan_in in zip(model.weights, (784, 200, 200)):
        expected = 20.0 * (1.0 - math.exp(-0.1)) / math.sqrt(fan_in)  # weight_scale / √fan_in
        assert float(w.std()) == pytest.approx(expected, rel=0.05)
        assert abs(float(w.mean())) < 0.1 * expected


def _official_bins(units, times_s, steps, dt_s, clip):
    """The official h5 generator: rounded bins, dropped past the last step, duplicates summed."""
    ts = np.round(times_s / dt_s).astype(np.int64)
    keep = ts < steps
    dense = torch.sparse_coo_tensor(
        torch.tensor(np.stack([ts[keep], units[keep]])), torch.ones(int(keep.sum())), (steps, 50)
    ).to_dense()
    if clip:
        dense[dense > 1.0] = 1.0
    return dense


@pytest.mark.parametrize("clip", [True, False])
def test_round_binning_and_unclipped_counts_match_the_official_generator(clip):
    rng = np.random.default_rng(0)
    units = rng.integers(0, 50, 400)
    times_s = rng.integers(0, 40, 400) * 1e-3 + rng.choice([0.0, 3e-4, 7e-4], 400)  # no exact halves: units differ
    ours = bin_events(units, times_s * 1e6, 30, 1000.0, 50, binning="round", clip=clip)
    torch.testing.assert_close(ours, _official_bins(units, times_s, 30, 1e-3, clip))
    floor = bin_events(units, times_s * 1e6, 30, 1000.0, 50)
    assert not torch.equal(floor, ours)  # half the events above land one bin later when rounded
    assert float(ours.max()) > 1.0 or clip


def test_event_options_are_checked_in_the_suite_schema():
    spec = DatasetSpec.model_validate({"name": "shd", "binning": "round", "clip_test": False})
    assert spec.model_dump()["binning"] == "round"
    assert "binning" not in DatasetSpec.model_validate("shd").model_dump()  # old cell keys unchanged
    with pytest.raises(ValueError, match="event datasets"):
        DatasetSpec.model_validate({"name": "fmnist", "binning": "round"})
    with pytest.raises(ValueError):
        DatasetSpec.model_validate({"name": "shd", "binning": "ceil"})
