"""kernels/sparse_backward.py: recording, sparse dW / dx against autograd oracles, both backends.

The Triton kernels run under TRITON_INTERPRET=1 (tests/conftest.py), so sizes are tiny and odd.
The oracle for gradients is autograd through a plain PyTorch time loop whose spike derivative is
the recorded g: the sparse path must reproduce dense BPTT masked to the same active set.
"""

from __future__ import annotations

import math

import pytest
import torch

from snnbench.kernels import sparse_backward as sb
from snnbench.kernels import sparse_grad as sg
from tests.helpers import spike_with_given_g

BETA = math.exp(-0.1)
BACKENDS = ["triton", "torch"]


def _rules():
    return [
        sb.SpikeRule("sparseprop", b_th=0.3, width=7.0),
        sb.SpikeRule("localzo", delta=0.3, q=1, distribution="normal"),
        sb.SpikeRule("localzo", delta=0.2, q=3, distribution="uniform"),
        sb.SpikeRule("localzo", delta=0.25, q=2, distribution="laplace"),
    ]


def _rule_id(rule):
    return f"{rule.rule}-{rule.distribution}-q{rule.q}"


def dense_masked_layer(x, w, g, beta):
    """Dense BPTT of the LIF layer (reset detached) with spike derivative ``g[T, B, H]``."""
    T, B, _ = x.shape
    current = (x.reshape(T * B, -1) @ w).view(T, B, -1)
    u = torch.zeros_like(current[0])
    s = torch.zeros_like(current[0])
    out = []
    for t in range(T):
        u = beta * u + current[t] - s.detach()
        s = spike_with_given_g(u - 1.0, g[t])
        out.append(s)
    return torch.stack(out)


def _layer(T, B, N, H, seed, scale=1.2, rate=0.4):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, N, generator=gen) < rate).float()
    w = torch.randn(N, H, generator=gen) * scale
    return x, w, gen


# ---------------------------------------------------------------------------------------------
# Recording


@pytest.mark.parametrize("rule", _rules(), ids=_rule_id)
def test_triton_record_matches_reference(rule):
    x, w, _ = _layer(7, 5, 6, 13, seed=1)
    current = (x.reshape(35, 6) @ w).view(7, 5, 13)
    s_tri, a_tri, g_tri = sb.lif_record_forward(current, BETA, rule, seed=5, backend="triton", dense_g=True)
    s_ref, a_ref, _ = sb.lif_record_forward(current, BETA, rule, seed=5, backend="torch")
    assert torch.equal(s_tri, s_ref)
    # LocalZO too: both backends draw z from one Philox stream, so a seed gives the same entries in
    # the same order; g to an ulp (fp32 log/cos/sqrt of numpy and torch may round differently).
    for name in ("index", "col_ptr", "by_batch", "batch_ptr"):
        assert torch.equal(getattr(a_tri, name), getattr(a_ref, name)), name
    assert 0 < len(a_tri) < current.numel()
    torch.testing.assert_close(a_tri.g, a_ref.g, rtol=1e-6, atol=0)
    # Either way the record is exactly the nonzero set of the dense g in the canonical orders.
    from_dense = sb.active_set_from_dense(g_tri)
    for name in ("index", "col_ptr", "by_batch", "batch_ptr"):
        assert torch.equal(getattr(a_tri, name), getattr(from_dense, name)), name
    assert torch.equal(a_tri.g, from_dense.g)


def test_record_orders_and_pointers():
    x, w, _ = _layer(9, 4, 5, 11, seed=2)
    current = (x.reshape(36, 5) @ w).view(9, 4, 11)
    _, a, _ = sb.lif_record_forward(current, BETA, sb.SpikeRule("sparseprop", b_th=0.5), backend="triton")
    assert len(a) > 10
    t, b, j = a.decode()
    key_col = (j * 4 + b) * 9 + t  # order (j, b, t)
    assert torch.all(key_col[1:] > key_col[:-1])
    assert torch.equal(a.col_ptr.long(), torch.searchsorted(j, torch.arange(12), right=False))
    order = a.by_batch.long()
    key_batch = ((b * 11 + j) * 9 + t)[order]  # order (b, j, t)
    assert torch.all(key_batch[1:] > key_batch[:-1])
    assert torch.equal(torch.sort(order).values, torch.arange(len(a)))
    assert torch.equal(a.batch_ptr.long(), torch.searchsorted(b[order], torch.arange(5), right=False))


def test_sparseprop_active_set_is_the_band():
    x, w, _ = _layer(8, 3, 7, 9, seed=3)
    current = (x.reshape(24, 7) @ w).view(8, 3, 9)
    rule = sb.SpikeRule("sparseprop", b_th=0.25, width=5.0)
    _, a, g = sb.lif_record_forward(current, BETA, rule, backend="triton", dense_g=True)
    u, _ = sb.reference_lif_scan(current, BETA)
    d = (u - 1.0).abs()
    assert torch.equal(g != 0, d < 0.25)
    torch.testing.assert_close(g[d < 0.25], 1.0 / (5.0 * d[d < 0.25] + 1.0) ** 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_localzo_active_set_is_nonzero_g(backend):
    # q = 1: g = |z|/(2δ) and the entry is active iff |u − θ| < δ|z|, i.e. |u − θ| < 2δ²g.
    x, w, _ = _layer(8, 4, 6, 10, seed=4)
    current = (x.reshape(32, 6) @ w).view(8, 4, 10)
    delta = 0.3
    rule = sb.SpikeRule("localzo", delta=delta, q=1)
    _, a, g = sb.lif_record_forward(current, BETA, rule, seed=9, backend=backend, dense_g=True)
    u, _ = sb.reference_lif_scan(current, BETA)
    d = (u - 1.0).abs()
    active = g != 0
    assert 0 < int(active.sum()) < g.numel()
    assert torch.all(d[active] < 2 * delta**2 * g[active] * (1 + 1e-5))
    assert len(a) == int(active.sum())


@pytest.mark.parametrize("backend", BACKENDS)
def test_localzo_seed_changes_draws_and_repeats_exactly(backend):
    current = torch.full((1, 16, 64), 1.02)
    rule = sb.SpikeRule("localzo", delta=0.05)
    _, a1, _ = sb.lif_record_forward(current, BETA, rule, seed=1, backend=backend)
    _, a2, _ = sb.lif_record_forward(current, BETA, rule, seed=1, backend=backend)
    _, a3, _ = sb.lif_record_forward(current, BETA, rule, seed=2, backend=backend)
    assert torch.equal(a1.index, a2.index) and torch.equal(a1.g, a2.g)
    assert not torch.equal(a1.index, a3.index)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", _rules()[1:], ids=_rule_id)
def test_sparse_localzo_draws_the_fused_neuron_kernels_z(backend, rule):
    # A sparse LocalZO layer and the fused neuron kernels' LocalZO backward over the same LIF
    # (subtract reset, detached) use the same Philox counters: one seed, one gradient.
    from snnbench.kernels import multistep_lif

    T, B, N, H = 6, 3, 5, 8
    x, w, gen = _layer(T, B, N, H, seed=17)
    grad_s = torch.randn(T, B, H, generator=gen)
    current = (x.reshape(T * B, N) @ w).view(T, B, H)
    _, active, _ = sb.lif_record_forward(current, BETA, rule, seed=21, backend=backend)
    delta = active.g * grad_s.reshape(-1)[active.index.long()]
    dw = sb.sparse_weight_grad(sb.input_trace(x, BETA, backend), active, delta, backend)
    wr = w.clone().requires_grad_(True)
    spikes, _ = multistep_lif(
        (x.reshape(T * B, N) @ wr).view(T, B, H),
        beta=BETA,
        decay_input=False,
        reset="subtract",
        detach_reset=True,
        v_init=0.0,
        surrogate="localzo",
        delta=rule.delta,
        q=rule.q,
        distribution=rule.distribution,
        seed=21,
        save_dtype="fp32",
        backend=backend,
    )
    (spikes * grad_s).sum().backward()
    assert len(active) > 0
    torch.testing.assert_close(dw, wr.grad, rtol=1e-5, atol=1e-5)


def _expected_mean_g(c: torch.Tensor, delta: float, dist: str) -> torch.Tensor:
    """E[g](u') — the surrogate LocalZO estimates (docs/design.md §3)."""
    a = c.abs()
    if dist == "normal":
        return torch.exp(-0.5 * (c / delta) ** 2) / (delta * math.sqrt(2 * math.pi))
    if dist == "uniform":
        return torch.where(
            a < math.sqrt(3) * delta, (3 - (c / delta) ** 2) / (4 * math.sqrt(3) * delta), torch.zeros_like(c)
        )
    return (a / delta + 1 / math.sqrt(2)) * torch.exp(-math.sqrt(2) * a / delta) / (2 * delta)


@pytest.mark.parametrize("dist", ["normal", "uniform", "laplace"])
def test_mean_localzo_g_matches_its_surrogate(dist):
    """A property of the draws both backends share (test_triton_record_matches_reference: the same z,
    g to an ulp), so it is checked once, where 20,000 samples cost milliseconds: the PyTorch path."""
    backend, samples, delta = "torch", 20000, 0.5
    c = torch.tensor([-1.0, -0.6, -0.3, -0.1, 0.0, 0.15, 0.4, 0.8])
    current = (1.0 + c).expand(1, samples, 8).contiguous()  # T = 1: u' = c for every sample
    rule = sb.SpikeRule("localzo", delta=delta, q=2, distribution=dist)
    _, _, g = sb.lif_record_forward(current, BETA, rule, seed=123, backend=backend, dense_g=True)
    expected = _expected_mean_g(c, delta, dist)
    mean, sem = g[0].mean(0), g[0].std(0) / math.sqrt(samples)
    assert torch.all((mean - expected).abs() <= 5 * sem + 1e-3), (mean, expected)
    # Pooled over u', the estimate is tight enough to catch a few-percent scale error.
    pooled_sem = float(sem.pow(2).sum().sqrt())
    assert abs(float(mean.sum() - expected.sum())) <= 4 * pooled_sem, (float(mean.sum()), float(expected.sum()))


# ---------------------------------------------------------------------------------------------
# Backward against the dense masked oracle


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", _rules(), ids=_rule_id)
def test_sparse_grads_equal_dense_masked_grads(backend, rule):
    T, B, N, H = 6, 3, 7, 9
    x, w, gen = _layer(T, B, N, H, seed=11)
    grad_s = torch.randn(T, B, H, generator=gen)
    current = (x.reshape(T * B, N) @ w).view(T, B, H)
    _, active, g = sb.lif_record_forward(current, BETA, rule, seed=3, backend=backend, dense_g=True)
    # The previous layer's active set: any set of entries over x's shape will do for the math.
    _, prev, _ = sb.lif_record_forward(
        torch.randn(T, B, N, generator=gen) + 1.0, BETA, sb.SpikeRule("sparseprop", b_th=0.6), backend="torch"
    )
    assert len(active) > 5 and len(prev) > 5

    delta = active.g * grad_s.reshape(-1)[active.index.long()]
    trace = sb.input_trace(x, BETA, backend)
    dw = sb.sparse_weight_grad(trace, active, delta, backend)
    dx = sb.sparse_input_grad(w, active, delta, prev, BETA, backend)

    xr = x.clone().requires_grad_(True)
    wr = w.clone().requires_grad_(True)
    (dense_masked_layer(xr, wr, g, BETA) * grad_s).sum().backward()
    torch.testing.assert_close(dw, wr.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx, xr.grad.reshape(-1)[prev.index.long()], rtol=1e-5, atol=1e-5)


def test_empty_active_sets_give_zero_gradients():
    T, B, N, H = 5, 2, 4, 6
    x, w, gen = _layer(T, B, N, H, seed=12)
    current = (x.reshape(T * B, N) @ w).view(T, B, H)
    for backend in BACKENDS:
        _, none, _ = sb.lif_record_forward(current, BETA, sb.SpikeRule("sparseprop", b_th=1e-12), backend=backend)
        _, prev, _ = sb.lif_record_forward(
            torch.randn(T, B, N, generator=gen) + 1, BETA, sb.SpikeRule("sparseprop", b_th=0.6), backend=backend
        )
        assert len(none) == 0 and none.col_ptr.shape == (H + 1,) and int(none.col_ptr.max()) == 0
        delta = torch.zeros(0)
        dw = sb.sparse_weight_grad(sb.input_trace(x, BETA, backend), none, delta, backend)
        assert dw.shape == (N, H) and torch.count_nonzero(dw) == 0
        dx = sb.sparse_input_grad(w, none, delta, prev, BETA, backend)
        assert dx.shape == (len(prev),) and torch.count_nonzero(dx) == 0
        _, empty_prev, _ = sb.lif_record_forward(
            torch.zeros(T, B, N), BETA, sb.SpikeRule("sparseprop", b_th=1e-12), backend=backend
        )
        _, some, _ = sb.lif_record_forward(current, BETA, sb.SpikeRule("sparseprop", b_th=0.5), backend=backend)
        out = sb.sparse_input_grad(w, some, torch.ones(len(some)), empty_prev, BETA, backend)
        assert out.shape == (0,)


# ---------------------------------------------------------------------------------------------
# The input-gradient designs: each equals the reference on fresh random active sets


def _random_set(shape, p, gen, crowd=None):
    """An active set of density ``p`` with random g; ``crowd=(t, b)`` makes that row fully active."""
    g = torch.where(torch.rand(shape, generator=gen) < p, torch.rand(shape, generator=gen) + 0.1, torch.zeros(()))
    if crowd is not None:
        g[crowd] = torch.rand(shape[2], generator=gen) + 0.1
    return sb.active_set_from_dense(g)


# (T, B, N_prev, H, this layer's density, the previous layer's, a fully active (t, b) row or None):
# odd sizes, T = 1, empty sets on either side, a (t, b) row and a batch element with more entries
# than one block of every kernel (BLOCK_K = 16, BLOCK_Q = 64), an input block past 256 and 64,
# T a multiple of the reverse scan's 4-step unroll and not.
DESIGN_CASES = [
    (7, 3, 13, 9, 0.3, 0.4, None),
    (1, 2, 5, 4, 0.5, 0.5, None),
    (6, 2, 300, 90, 0.05, 0.02, (2, 1)),
    (8, 2, 6, 3, 0.0, 0.3, None),
    (8, 3, 70, 5, 0.3, 0.3, None),
    (5, 2, 6, 3, 0.3, 0.0, None),
]


@pytest.mark.parametrize("case", DESIGN_CASES, ids=lambda c: "x".join(map(str, c[:4])))
def test_input_grad_designs_equal_the_reference(case):
    import random

    T, B, N, H, p, p_prev, crowd = case
    seed = random.SystemRandom().randrange(2**31)  # fresh inputs every run; the seed is in the message
    gen = torch.Generator().manual_seed(seed)
    active = _random_set((T, B, H), p, gen, crowd)
    prev = _random_set((T, B, N), p_prev, gen)
    w = torch.randn(N, H, generator=gen)
    delta = torch.randn(len(active), generator=gen)
    for shift in (0, 1):
        want = sb.reference_sparse_input_grad(w, active, delta, prev, BETA, shift)
        for design in sg.INPUT_GRAD_DESIGNS:
            got = sb.sparse_input_grad(w, active, delta, prev, BETA, "triton", shift, design=design)
            torch.testing.assert_close(
                got, want, rtol=1e-5, atol=1e-5, msg=lambda m: f"{design}, shift={shift}, seed={seed}: {m}"
            )


def test_pair_counts_and_the_byte_model():
    gen = torch.Generator().manual_seed(5)
    T, B, N, H = 6, 3, 11, 7
    active, prev = _random_set((T, B, H), 0.3, gen), _random_set((T, B, N), 0.3, gen)
    at, ab, _ = (v.tolist() for v in active.decode())
    pt, pb, _ = (v.tolist() for v in prev.decode())
    for shift in (0, 1):
        brute = sum(1 for t2, b2 in zip(pt, pb) for t1, b1 in zip(at, ab) if b1 == b2 and t1 >= t2 + shift)
        assert sg.valid_pairs(active, prev, shift) == brute > 0
    # Every block of 32 previous entries here spans all of this layer's entries (3 batch elements).
    assert sg.pair_slots(active, prev) == math.ceil(len(prev) / 32) * 32 * math.ceil(len(active) / 64) * 64
    # The H = 1000 layer of `bench sparse` at 1 % active (the numbers docs/design.md quotes).
    layer = dict(T=100, B=256, N_in=700, H=1000, entries=254_718, prev_entries=179_200)
    pairs = 179_200 * 254_718 // 256 // 2
    col = sg.backward_bytes("pairs", trace_itemsize=2, pairs=pairs, **layer)
    rows = sg.backward_bytes("rows", trace_itemsize=2, **layer)
    scan = sg.backward_bytes("scan", trace_itemsize=2, **layer)
    assert col["dw_gathered_bytes"] == rows["dw_gathered_bytes"] == 254_718 * 700 * 2  # 357 MB
    assert rows["dx_gathered_bytes"] == scan["dx_gathered_bytes"] == 254_718 * 700 * 4  # 713 MB
    assert col["dx_gathered_bytes"] == 4 * pairs  # 357 MB
    assert rows["dx_moved_bytes"] - scan["dx_moved_bytes"] == 2 * 4 * 25_600 * 700  # V written and read
    with pytest.raises(ValueError, match="design"):
        sg.backward_bytes("columns", trace_itemsize=2, **layer)
    with pytest.raises(ValueError, match="design"):
        sb.sparse_input_grad(torch.zeros(N, H), active, torch.zeros(len(active)), prev, BETA, design="tiles")


@pytest.mark.parametrize("theta", [1.0, 0.7])
@pytest.mark.parametrize("backend", BACKENDS)
def test_fully_active_layer_equals_dense_fast_sigmoid_bptt(backend, theta):
    from snnbench.training.snn_mlp import dense_lif_bptt

    T, B, N, H = 5, 3, 6, 7
    x, w, gen = _layer(T, B, N, H, seed=13)
    grad_s = torch.randn(T, B, H, generator=gen)
    current = (x.reshape(T * B, N) @ w).view(T, B, H)
    rule = sb.SpikeRule("sparseprop", theta=theta, b_th=1e9, width=4.0)
    _, active, _ = sb.lif_record_forward(current, BETA, rule, backend=backend)
    assert len(active) == T * B * H
    # Every input entry is "active" in the previous layer, so dx is the whole dense input gradient.
    _, prev, _ = sb.lif_record_forward(
        torch.zeros(T, B, N), BETA, sb.SpikeRule("sparseprop", b_th=1e9), backend=backend
    )
    assert len(prev) == T * B * N
    delta = active.g * grad_s.reshape(-1)[active.index.long()]
    dw = sb.sparse_weight_grad(sb.input_trace(x, BETA, backend), active, delta, backend)
    dx = sb.sparse_input_grad(w, active, delta, prev, BETA, backend)
    xr = x.clone().requires_grad_(True)
    wr = w.clone().requires_grad_(True)
    s = dense_lif_bptt((xr.reshape(T * B, N) @ wr).view(T, B, H), BETA, "fast_sigmoid", 4.0, theta=theta)
    (s * grad_s).sum().backward()
    torch.testing.assert_close(dw, wr.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx, xr.grad.reshape(-1)[prev.index.long()], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_threshold_sets_spike_and_soft_reset(backend):
    # u_t = β·u_{t-1} + I_t − θ·s_{t-1}: the reset subtracts θ, not 1, for every θ the rule accepts.
    theta, b_th = 0.6, 0.2
    gen = torch.Generator().manual_seed(15)
    current = torch.rand(9, 4, 11, generator=gen) * 0.4
    u = torch.zeros(4, 11)
    s = torch.zeros(4, 11)
    us, ss = [], []
    for t in range(9):
        u = BETA * u + current[t] - theta * s
        s = (u > theta).float()
        us.append(u)
        ss.append(s)
    u, spikes = torch.stack(us), torch.stack(ss)
    assert 0 < int(spikes.sum()) < spikes.numel() // 2  # resets happen, so the rule is exercised
    rule = sb.SpikeRule("sparseprop", theta=theta, b_th=b_th, width=5.0)
    s_rec, active, g = sb.lif_record_forward(current, BETA, rule, backend=backend, dense_g=True)
    assert torch.equal(s_rec, spikes)
    assert torch.equal(sb.lif_forward(current, BETA, theta, backend), spikes)
    assert torch.equal(g != 0, (u - theta).abs() < b_th)
    assert len(active) == int(((u - theta).abs() < b_th).sum())


def test_weight_grad_is_deterministic_and_writes_every_element():
    # N_in spans two input blocks, the second partial, and some neurons hold more entries than one
    # step of the entry loop takes (the interpreter's config: 128 inputs, 16 entries).
    T, B, N, H = 9, 6, 150, 5
    x, w, gen = _layer(T, B, N, H, seed=14, scale=0.3)
    current = (x.reshape(T * B, N) @ w).view(T, B, H)
    _, active, _ = sb.lif_record_forward(current, BETA, sb.SpikeRule("sparseprop", b_th=1.2), backend="triton")
    assert int(active.col_ptr.diff().max()) > 16
    delta = torch.randn(len(active), generator=gen)
    trace = sb.input_trace(x, BETA, "triton")
    first = sb.sparse_weight_grad(trace, active, delta, "triton")
    second = sb.sparse_weight_grad(trace, active, delta, "triton")
    assert torch.equal(first, second)
    assert torch.isfinite(first).all()
    # Summation order differs from the reference: the fp32 error of a K-term sum is at most
    # K·eps·Σ|terms| per element (K = the most entries any neuron holds).
    ref = sb.reference_sparse_weight_grad(trace, active, delta)
    magnitude = sb.reference_sparse_weight_grad(trace.abs(), active, delta.abs())
    K = int(active.col_ptr.diff().max())
    assert torch.all((first - ref).abs() <= K * torch.finfo(torch.float32).eps * magnitude)


def test_input_trace_handles_non_contiguous_input():
    x = torch.rand(5, 6, 4).transpose(1, 2)  # [5, 4, 6], not contiguous
    expected = sb.reference_input_trace(x.contiguous(), BETA)
    torch.testing.assert_close(sb.input_trace(x, BETA, "triton"), expected)


# ---------------------------------------------------------------------------------------------
# Validation


def test_invalid_inputs_are_rejected_before_launch():
    current = torch.randn(4, 2, 3)
    rule = sb.SpikeRule()
    with pytest.raises(ValueError, match="current"):
        sb.lif_record_forward(current.double(), BETA, rule, backend="triton")
    with pytest.raises(ValueError, match="current"):
        sb.lif_record_forward(current[0], BETA, rule, backend="triton")
    bad = current.clone()
    bad[1, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        sb.lif_record_forward(bad, BETA, rule, backend="triton")
    with pytest.raises(ValueError, match="beta"):
        sb.lif_record_forward(current, 1.5, rule, backend="triton")
    with pytest.raises(ValueError, match="backend"):
        sb.lif_record_forward(current, BETA, rule, backend="cuda")
    with pytest.raises(ValueError, match="seed"):
        sb.lif_record_forward(current, BETA, rule, seed=-1)
    with pytest.raises(ValueError, match="seed"):  # Philox takes a 64-bit key on both backends
        sb.lif_record_forward(current, BETA, rule, seed=2**63, backend="torch")
    _, active, _ = sb.lif_record_forward(current, BETA, sb.SpikeRule("sparseprop", b_th=0.8))
    with pytest.raises(ValueError, match="delta"):
        sb.sparse_weight_grad(torch.rand(4, 2, 5), active, torch.zeros(len(active) + 1))
    with pytest.raises(ValueError, match="trace"):
        sb.sparse_weight_grad(torch.rand(4, 3, 5), active, torch.zeros(len(active)))
    with pytest.raises(ValueError, match="weight"):
        sb.sparse_input_grad(torch.rand(5, 4), active, torch.zeros(len(active)), active, BETA)
    with pytest.raises(ValueError, match="trace must be float32 or float16"):
        sb.sparse_weight_grad(torch.rand(4, 2, 5).bfloat16(), active, torch.zeros(len(active)), "triton")
    with pytest.raises(ValueError, match="dtype"):
        sb.input_trace(torch.rand(4, 2, 5), BETA, "triton", dtype=torch.bfloat16)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stack_checks_every_tensor_once_before_any_layer_runs(backend, monkeypatch):
    # The stack validates x and all weights up front (one host sync); its layers then skip the
    # per-call checks. A non-finite weight is named, and nothing was launched before the error.
    x, w, _ = _layer(4, 3, 5, 6, seed=23)
    weights = [w, torch.randn(6, 7), torch.randn(7, 2)]
    weights[1][2, 3] = float("inf")
    launched = []
    monkeypatch.setattr(sb, "lif_record_unchecked", lambda *a, **k: launched.append(1))
    cfg = sb.StackConfig(BETA, sb.SpikeRule("localzo", delta=0.3), seed=1, backend=backend)
    with pytest.raises(ValueError, match=r"weights\[1\] holds non-finite values"):
        sb.sparse_lif_stack(x, weights, cfg)
    with pytest.raises(ValueError, match="beta"):
        sb.sparse_lif_stack(x, [w, torch.randn(6, 2)], sb.StackConfig(1.5, sb.SpikeRule()))
    assert not launched


@pytest.mark.parametrize("backend", BACKENDS)
def test_fp16_trace_rounds_once_and_overflow_raises(backend):
    x, w, gen = _layer(8, 5, 40, 6, seed=19)
    tr32 = sb.input_trace(x, BETA, backend)
    tr16 = sb.input_trace(x, BETA, backend, dtype=torch.float16)
    # The recurrence runs in fp32; only the stored value is rounded (to nearest), on both backends.
    assert tr16.dtype == torch.float16 and torch.equal(tr16, tr32.half())
    with pytest.raises(ValueError, match="torch.float16 could overflow"):
        sb.input_trace(x * 1e4, BETA, backend, dtype=torch.float16)  # 1e4/(1−β) ≈ 1.05e5 > 65504
    current = (x.reshape(40, 40) @ w).view(8, 5, 6)
    _, active, _ = sb.lif_record_forward(current, BETA, sb.SpikeRule("sparseprop", b_th=0.5), backend=backend)
    delta = torch.randn(len(active), generator=gen)
    dw16 = sb.sparse_weight_grad(tr16, active, delta, backend)
    dw32 = sb.sparse_weight_grad(tr32, active, delta, backend)
    assert dw16.dtype == torch.float32 and len(active) > 0
    # Each trace value carries a relative error of at most 2⁻¹¹, so each dW element moves by at most
    # 2⁻¹¹·Σ|δ·tr| (plus fp32 accumulation rounding).
    magnitude = sb.reference_sparse_weight_grad(tr32.abs(), active, delta.abs())
    assert torch.all((dw16 - dw32).abs() <= (2.0**-11 + 1e-5) * magnitude)
    assert not torch.equal(dw16, dw32)


@pytest.mark.parametrize(
    "kwargs",
    [{"rule": "dense"}, {"delta": 0.0}, {"b_th": -1.0}, {"q": 0}, {"distribution": "cauchy"}, {"width": float("inf")}],
)
def test_bad_spike_rules_raise(kwargs):
    with pytest.raises(ValueError):
        sb.SpikeRule(**kwargs)


def test_matched_b_th():
    assert sb.matched_b_th(0.05, "normal") == pytest.approx(0.05 * 0.7979, rel=1e-3)
    assert sb.matched_b_th(0.1, "uniform") == pytest.approx(0.0866, rel=1e-3)
    assert sb.matched_b_th(0.1, "laplace") == pytest.approx(0.0707, rel=1e-3)
