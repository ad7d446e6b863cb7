"""The FTBC statistics kernel against its PyTorch reference and against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from snnbench.kernels.ftbc import ftbc_stats_bytes, ftbc_stats_forward, ftbc_stats_plan, ftbc_stats_reference, tiling

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
        ((4, 3, 16, 2, 2), True, False),  # a small late layer scaled down: many channels, 2×2, split by size
        ((3, 5, 13, 3, 1), False, True),  # odd channel count and positions, neither a power of two
    ],
)
@pytest.mark.parametrize("split", [None, True, False], ids=["auto", "split", "nosplit"])
def test_triton_matches_reference(shape, per_channel, with_bias, split):
    x, a, thresh, bias = _inputs(shape, per_channel=per_channel, with_bias=with_bias)
    got = ftbc_stats_forward(x, a, thresh, bias, backend="triton", split=split)
    want = ftbc_stats_reference(x, a, thresh, bias)
    assert got.shape == (shape[0], shape[2]) and got.dtype == torch.float32
    # Same element-wise fp32 ops; only the summation order differs (≤ a few ulp of the sum).
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * a[0].numel())


def test_split_changes_only_the_tiling():
    x, a, thresh, _ = _inputs((4, 3, 16, 2, 2), per_channel=True, seed=2)
    plans = {split: ftbc_stats_plan(x, split) for split in (None, True, False)}
    assert plans[None].split and not plans[False].split, "the small late layer splits by size"
    assert plans[True].programs > plans[False].programs and plans[True].slots > plans[False].slots
    big = torch.zeros(2, 4, 2, 16, 16)  # 2 channels × 4 images × 256 positions: enough programs unsplit
    assert not ftbc_stats_plan(big).split and ftbc_stats_plan(big, True).split
    results = [ftbc_stats_forward(x, a, thresh, backend="triton", split=s) for s in (None, True, False)]
    for r in results[1:]:
        torch.testing.assert_close(r, results[0], rtol=1e-6, atol=1e-5)


# VGG-16 on CIFAR at batch 200: (channels, spatial) of its IF layers, and an H200's 132 SMs.
VGG16_LAYERS = [(64, 1024), (128, 256), (256, 64), (512, 16), (512, 4), (4096, 1)]
H200_WARPS = 32 * 132


@pytest.mark.parametrize("channels,spatial", VGG16_LAYERS)
def test_card_tiling_keeps_every_sm_busy(channels, spatial):
    auto = tiling(channels, spatial, 200, H200_WARPS, None)
    unsplit = tiling(channels, spatial, 200, H200_WARPS, False)
    finest = tiling(channels, spatial, 200, H200_WARPS, True)
    for plan in (auto, unsplit, finest):
        assert plan.block_c & (plan.block_c - 1) == 0 and plan.block_n & (plan.block_n - 1) == 0
        assert plan.grid[0] * plan.block_c >= channels and plan.grid[1] * plan.block_n >= 200 * spatial
        assert plan.block_c * plan.block_n >= 256, "no tile below the floor"
        assert plan.block_c == 1 or plan.block_c * spatial >= 16, "a batch row keeps a 64-byte run"
    assert unsplit.block_c * unsplit.block_n == 2048 and not unsplit.split
    assert auto.programs * auto.num_warps >= H200_WARPS or auto.block_c * auto.block_n == 256
    assert finest.programs >= auto.programs >= unsplit.programs
    # The unsplit tiles of the small late layers (the 3-12 % rows of the committed H200 run) leave most
    # SMs idle; the auto plan splits exactly those, with at most a few % of extra partial-sum traffic.
    assert auto.split == (unsplit.programs * unsplit.num_warps < H200_WARPS)
    assert auto.split == (spatial <= 16)
    assert 1 / auto.block_n <= 1 / 16


def test_bytes_moved():
    x, a, _, _ = _inputs((4, 2, 3, 5, 5))
    assert ftbc_stats_bytes(x, a) == (x.numel() + a.numel()) * 4
    small, small_a, _, _ = _inputs((4, 2, 3, 2, 2))
    one_slot = ftbc_stats_plan(small)
    assert one_slot.slots == 1 and ftbc_stats_bytes(small, small_a, one_slot) == ftbc_stats_bytes(small, small_a)
    split = ftbc_stats_plan(x, True)
    partial = (2 * split.slots + 1) * 4 * 3 * 4  # [T, slots, C] written and read, [T, C] written
    assert split.slots > 1 and ftbc_stats_bytes(x, a, split) == ftbc_stats_bytes(x, a) + partial
    state = ftbc_stats_bytes(x, a, bias=True, v_init=True, return_state=True) - ftbc_stats_bytes(x, a)
    assert state == 4 * 3 * 4 + 2 * 2 * 3 * 25 * 4


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
        (lambda x, a, th, b: (x, a, th, torch.full((3, 3), float("inf"))), "bias: every value must be finite"),
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
