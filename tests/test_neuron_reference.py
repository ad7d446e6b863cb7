"""The CPU path of the neuron (forward with buffers, hand-written backward) against the autograd loop
it replaced: the same spikes and final membrane bit for bit, gradients within fp32 rounding."""

from __future__ import annotations

import itertools

import pytest
import torch

from snnbench.kernels.neuron import generic_options
from snnbench.kernels.neuron_options import prepare
from snnbench.kernels.neuron_reference import neuron_reference, neuron_reference_autograd

T, SHAPE = 5, (2, 3, 4)
CASES = list(itertools.product(("hard", "soft", "subtract"), (False, True), ("spike", "scaled")))


def _run(fn, x, v0, threshold, bias, **options):
    xr = x.clone().requires_grad_(True)
    vr = None if v0 is None else v0.clone().requires_grad_(True)
    opts, call = prepare(xr, threshold, bias, vr, build=generic_options, beta=0.6, leak=0.2, gain=0.4, **options)
    out, v_final = fn(xr, opts, call)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    loss = (out.float() * g).sum() + (1.3 * v_final).sum()
    grads = torch.autograd.grad(loss, [xr] + ([vr] if vr is not None else []))
    return out.detach(), v_final.detach(), grads


@pytest.mark.parametrize("reset,detach,output", CASES)
@pytest.mark.parametrize("surrogate", ["sigmoid", "atan", "localzo"])
@pytest.mark.parametrize("bias_order", ["before_input", "after_input"])
def test_hand_written_backward_matches_autograd(reset, detach, output, surrogate, bias_order):
    gen = torch.Generator().manual_seed(hash((reset, detach, output, surrogate, bias_order)) % 2**31)
    x = torch.randn((T,) + SHAPE, generator=gen) + 0.5
    v0 = 0.1 * torch.randn(SHAPE[1:], generator=gen)
    threshold = torch.rand(3, generator=gen) + 0.5  # per channel
    bias = 0.1 * torch.randn(T, 3, generator=gen)
    options = dict(
        reset=reset, detach_reset=detach, output=output, surrogate=surrogate, v_reset=0.1, bias_order=bias_order
    )
    if surrogate == "localzo":
        options.update(delta=0.5, q=2, seed=3)
    fast = _run(neuron_reference, x, v0, threshold, bias, **options)
    oracle = _run(neuron_reference_autograd, x, v0, threshold, bias, **options)
    assert fast[0].sum() > 0 and torch.equal(fast[0], oracle[0])
    assert torch.equal(fast[1], oracle[1])
    for got, want in zip(fast[2], oracle[2]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_bf16_input_and_scalar_options():
    x = (torch.randn(T, 4, 8, generator=torch.Generator().manual_seed(4)) + 0.6).to(torch.bfloat16)
    fast = _run(neuron_reference, x, None, 1.0, None, reset="hard")
    oracle = _run(neuron_reference_autograd, x, None, 1.0, None, reset="hard")
    assert fast[0].dtype == torch.bfloat16 and torch.equal(fast[0], oracle[0])
    assert fast[2][0].dtype == torch.bfloat16
    torch.testing.assert_close(fast[2][0], oracle[2][0])


def test_inference_saves_nothing_and_equals_training_forward():
    x = torch.randn(T, 3, 16, generator=torch.Generator().manual_seed(6)) + 0.5
    opts, call = prepare(x, 1.0, None, None, build=generic_options, beta=0.5, leak=0.0, gain=0.5, reset="hard")
    with torch.no_grad():
        out, v = neuron_reference(x, opts, call)
    assert not out.requires_grad
    trained, v2 = neuron_reference(x.clone().requires_grad_(True), opts, call)
    assert torch.equal(out, trained.detach()) and torch.equal(v, v2.detach())


@pytest.mark.parametrize(
    "surrogate,extra",
    [
        ("fast_sigmoid", {}),
        ("atan", {}),
        ("localzo", dict(delta=0.3, q=1, seed=5)),
        ("localzo", dict(delta=0.2, q=3, seed=9, distribution="uniform")),
    ],
)
def test_surrogate_blocks_give_the_per_step_gradient(monkeypatch, surrogate, extra):
    """σ' of several steps at once (small steps) is the per-step σ' bit for bit: the gradient does not
    depend on the block size, including blocks that split T unevenly (LocalZO's z keeps its step t)."""
    from snnbench.kernels import neuron_reference as reference

    gen = torch.Generator().manual_seed(abs(hash((surrogate, tuple(extra.items())))) % 2**31)
    x = torch.randn(11, 3, 2, 5, generator=gen) * 0.8 + 0.5
    options = dict(reset="hard", surrogate=surrogate, **extra)
    grads = []
    for block in (1, 4 * 30, 1 << 16):  # one step per block; 4 steps (11 = 3 + 4 + 4); all steps
        monkeypatch.setattr(reference, "_SURROGATE_BLOCK", block)
        grads.append(_run(neuron_reference, x, None, 1.0, None, **options)[2][0])
    assert grads[0].abs().sum() > 0
    assert torch.equal(grads[0], grads[1]) and torch.equal(grads[0], grads[2])
