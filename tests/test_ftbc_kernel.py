"""The FTBC statistics kernel against its PyTorch reference and against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from snnbench.kernels.ftbc import ftbc_stats_bytes, ftbc_stats_forward, ftbc_stats_reference

BACKENDS = ["torch", "triton"]


def _inputs(shape, dtype=torch.float32, seed=0, per_channel=False, with_bias=False):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g) * 1.5 + 0.3).to(dtype)
    a = (torch.rand(shape[1:], generator=g) * 2.0).to(dtype)
    thresh = torch.rand(shape[2], generator=g) + 0.5 if per_channel else torch.tensor([1.3])
    bias = torch.randn(shape[0], shape[2], generator=g) * 0.2 if with_bias else None
    return x, a, thresh, bias


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_recurrence(backend):
    # θ = 1, a = 0.5, x = [0.5, 0.2]: v0 = 0.5; t0: u = 1.0 fires (u >= θ), e = +0.5, u' = 0.5, v = 0.5;
    # t1: u = 0.7 silent, e = -0.5, u' = 1.2 >= θ so the forced membrane resets: v = 0.2.
    # t2: u = 0.2 + 0.9 = 1.1 fires, e = +0.5.
    x = torch.tensor([0.5, 0.2, 0.9]).reshape(3, 1, 1)
    a = torch.tensor([[0.5]])
    out = ftbc_stats_forward(x, a, 1.0, backend=backend)
    torch.testing.assert_close(out, torch.tensor([[0.5], [-0.5], [0.5]]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_own_bias_is_subtracted_from_the_membrane(backend):
    # The same input with b_0 = 0.25: u0 = 0.75 stays silent, e0 = -0.5.
    x = torch.tensor([0.5]).reshape(1, 1, 1)
    a = torch.tensor([[0.5]])
    out = ftbc_stats_forward(x, a, 1.0, bias=torch.tensor([[0.25]]), backend=backend)
    torch.testing.assert_close(out, torch.tensor([[-0.5]]))


@pytest.mark.parametrize(
    "shape,per_channel,with_bias",
    [
        ((3, 2, 5, 3, 3), False, False),  # conv layer
        ((1, 4, 7), False, False),  # T = 1, linear layer
        ((4, 3, 6, 1, 9), True, True),  # odd spatial sizes, per-channel θ, own bias
        ((5, 2, 3, 11, 11), True, False),  # more than one block of positions per channel
        ((2, 37, 70), False, True),  # linear layer wider than one channel block
    ],
)
def test_triton_matches_reference(shape, per_channel, with_bias):
    x, a, thresh, bias = _inputs(shape, per_channel=per_channel, with_bias=with_bias)
    got = ftbc_stats_forward(x, a, thresh, bias, backend="triton")
    want = ftbc_stats_reference(x, a, thresh, bias)
    assert got.shape == (shape[0], shape[2]) and got.dtype == torch.float32
    # Same element-wise fp32 ops; only the summation order differs (≤ a few ulp of the sum).
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * a[0].numel())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_accumulate_in_fp32(dtype):
    x, a, thresh, _ = _inputs((3, 2, 4, 5, 5), dtype=dtype, seed=3)
    got = ftbc_stats_forward(x, a, thresh, backend="triton")
    want = ftbc_stats_reference(x.float(), a.float(), thresh)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


def test_non_contiguous_input():
    x, a, thresh, _ = _inputs((3, 4, 2, 6, 6), seed=4)
    x_nc = x.transpose(3, 4)  # a view with other strides
    a_nc = a.transpose(2, 3)
    got = ftbc_stats_forward(x_nc, a_nc, thresh, backend="triton")
    torch.testing.assert_close(got, ftbc_stats_reference(x_nc.contiguous(), a_nc.contiguous(), thresh))


def test_auto_backend_on_cpu_is_the_reference():
    x, a, thresh, _ = _inputs((2, 3, 4, 2, 2), seed=5)
    assert torch.equal(ftbc_stats_forward(x, a, thresh), ftbc_stats_reference(x, a, thresh))


def test_bytes_moved():
    x, a, _, _ = _inputs((4, 2, 3, 5, 5))
    assert ftbc_stats_bytes(x, a) == (x.numel() + a.numel()) * 4


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda x, a, th, b: (x[:, :, 0, 0, 0], a, th, b), "at least 3 dims"),
        (lambda x, a, th, b: (x.int(), a, th, b), "x must be float"),
        (lambda x, a, th, b: (x, a.int(), th, b), "a must be"),
        (lambda x, a, th, b: (x, a[:, :2], th, b), "shape of one step"),
        (lambda x, a, th, b: (x, a.to("meta"), th, b), "a is on"),
        (lambda x, a, th, b: (x, a, torch.ones(2), b), "thresh must have"),
        (lambda x, a, th, b: (x, a, torch.tensor([-1.0]), b), "finite and positive"),
        (lambda x, a, th, b: (x, a, torch.tensor([float("nan")]), b), "finite and positive"),
        (lambda x, a, th, b: (x, a, th, torch.zeros(2, 3)), "bias must have shape"),
        (lambda x, a, th, b: (x, a, th, torch.full((3, 3), float("inf"))), "bias must be finite"),
    ],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_invalid_inputs_are_rejected_before_launch(mutate, match, backend):
    x, a, thresh, _ = _inputs((3, 2, 3, 2, 2))
    args = mutate(x, a, thresh, None)
    with pytest.raises(ValueError, match=match):
        ftbc_stats_forward(*args, backend=backend)


def test_non_finite_inputs_only_checked_on_request():
    x, a, thresh, _ = _inputs((2, 2, 3))
    x[1, 0, 0] = float("nan")
    ftbc_stats_forward(x, a, thresh)  # off by default: checking would read x a second time
    with pytest.raises(ValueError, match="x contains NaN"):
        ftbc_stats_forward(x, a, thresh, check_finite=True)


def test_unknown_backend():
    x, a, thresh, _ = _inputs((2, 2, 3))
    with pytest.raises(ValueError, match="backend"):
        ftbc_stats_forward(x, a, thresh, backend="cuda")


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunks_of_time_continue_from_the_returned_membrane(backend):
    x, a, thresh, bias = _inputs((6, 3, 5, 4, 4), per_channel=True, with_bias=True, seed=8)
    whole, v_whole = ftbc_stats_forward(x, a, thresh, bias, return_state=True, backend=backend)
    first, v_mid = ftbc_stats_forward(x[:4], a, thresh, bias[:4], return_state=True, backend=backend)
    second, v_end = ftbc_stats_forward(x[4:], a, thresh, bias[4:], v_mid, return_state=True, backend=backend)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    torch.testing.assert_close(v_end, v_whole)
    assert torch.isfinite(v_end).all()  # the NaN-poisoned state buffer was written everywhere
    with pytest.raises(ValueError, match="v_init must have the shape"):
        ftbc_stats_forward(x, a, thresh, v_init=v_mid[:, :2], backend=backend)
