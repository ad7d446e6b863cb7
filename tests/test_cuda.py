"""Every kernel against its PyTorch reference on a CUDA card (``pytest -m cuda``, run by
scripts/gpu_check.sh): every option and dtype at realistic sizes, one case past 2**31 elements, each
autotune configuration, LocalZO gradient statistics and the Philox stream equal on GPU and CPU.

Without a card the module is skipped. ``SNNBENCH_CUDA_DRY_RUN=1`` runs the same tests on the CPU
under the Triton interpreter at tiny sizes instead (the dry run of scripts/gpu_check.sh, in CI), so
that the test code itself is exercised; the case past 2**31 elements needs a card and stays skipped.

On a GPU the compiler contracts multiply-adds into FMAs, so a membrane that lands within an ulp of θ
may spike on one side and not the other; such flips are counted and bounded rather than forbidden.
"""

from __future__ import annotations

import contextlib
import math
import os

import pytest
import torch

from snnbench.kernels import ftbc as fk
from snnbench.kernels import neuron as nk
from snnbench.kernels import sparse_backward as sb
from snnbench.kernels import sparse_grad as sg

ON_CARD = torch.cuda.is_available()
DRY_RUN = not ON_CARD and os.environ.get("SNNBENCH_CUDA_DRY_RUN") == "1"
DEVICE = "cuda" if ON_CARD else "cpu"

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not (ON_CARD or DRY_RUN),
        reason="needs a CUDA device (SNNBENCH_CUDA_DRY_RUN=1 runs these on the CPU at tiny sizes)",
    ),
]

# A flipped spike changes that neuron's later steps; on a card allow this fraction of neurons to
# disagree, in the interpreter none (it runs the reference's exact fp32 operations).
FLIP_FRACTION = 1e-4 if ON_CARD else 0.0


def size(real: int, tiny: int) -> int:
    return real if ON_CARD else tiny


def _gen(seed: int) -> torch.Generator:
    return torch.Generator(device=DEVICE).manual_seed(seed)


@contextlib.contextmanager
def only_config(kernel, config):
    """Make an autotuned kernel run ``config`` alone (an autotuner with one config does not time)."""
    saved_configs, saved_cache = kernel.configs, dict(kernel.cache)
    kernel.configs = [config]
    kernel.cache.clear()
    try:
        yield
    finally:
        kernel.configs = saved_configs
        kernel.cache.clear()
        kernel.cache.update(saved_cache)


AUTOTUNED = [nk._neuron_forward_kernel, nk._neuron_backward_kernel, sg._sparse_weight_grad_kernel]


@pytest.fixture(autouse=True)
def one_config_each(request):
    """Outside the autotune tests every autotuned kernel runs its first config only: on a fresh card
    each option set compiles once instead of once per config (the check must fit in minutes)."""
    if "autotune" in request.node.name:
        yield
        return
    with contextlib.ExitStack() as stack:
        for kernel in AUTOTUNED:
            stack.enter_context(only_config(kernel, kernel.configs[0]))
        yield


def _neuron_disagreement(s_a, s_b) -> float:
    """Fraction of neurons (over the step dims) whose spike train differs anywhere in time."""
    differs = (s_a != s_b).reshape(s_a.shape[0], -1).any(0)
    return differs.float().mean().item()


# --------------------------------------------------------------------------------------------------
# Fused IF/LIF neuron


NEURON_CASES = [
    # (id, neuron, options): each option of the public API appears at least once.
    ("if_soft", "if", {}),
    ("if_scaled_channel_bias", "if", {"output": "scaled", "per_channel": True, "bias": True}),
    ("if_hard_vinit", "if", {"reset": "hard", "v_reset": -0.2, "v_init": 0.1}),
    ("if_subtract", "if", {"reset": "subtract", "per_channel": True}),
    ("lif_hard_sigmoid", "lif", {}),
    (
        "lif_soft_detach_atan",
        "lif",
        {"reset": "soft", "detach_reset": True, "surrogate": "atan", "v_init_tensor": True},
    ),
    ("lif_beta_rect", "lif", {"beta": 0.9, "decay_input": False, "surrogate": "rectangle", "threshold_1": True}),
    (
        "lif_subtract_fast_sigmoid",
        "lif",
        {"beta": 0.9, "decay_input": False, "reset": "subtract", "surrogate": "fast_sigmoid"},
    ),
    ("lif_localzo_normal_q5", "lif", {"surrogate": "localzo", "delta": 0.5, "q": 5, "seed": 7}),
    ("lif_localzo_laplace", "lif", {"surrogate": "localzo", "distribution": "laplace", "delta": 0.1, "seed": 9}),
    (
        "lif_localzo_uniform_q2",
        "lif",
        {"surrogate": "localzo", "distribution": "uniform", "delta": 0.3, "q": 2, "seed": 3},
    ),
]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
TOL = {torch.float32: 1e-5, torch.bfloat16: 2 * 2.0**-7, torch.float16: 2 * 2.0**-10}


def _neuron_kwargs(options: dict, x: torch.Tensor, gen: torch.Generator):
    kw = dict(options)
    C = x.shape[2]
    v_init = kw.pop("v_init", None)
    if kw.pop("per_channel", False):
        kw["threshold"] = torch.rand(C, device=DEVICE, generator=gen) + 0.5
    if kw.pop("threshold_1", False):
        kw["threshold"] = torch.tensor([0.8], device=DEVICE)
    if kw.pop("bias", False):
        kw["bias"] = 0.2 * torch.randn(x.shape[0], C, device=DEVICE, generator=gen)
    if kw.pop("v_init_tensor", False):
        v_init = 0.3 * torch.randn(x.shape[1:], device=DEVICE, generator=gen)
    return kw, v_init


def _neuron_both(fn, x, v_init, kw, with_grad: bool):
    out = {}
    for backend in ("triton", "torch"):
        xb = x.detach().clone().requires_grad_(with_grad)
        vb = v_init.detach().clone().requires_grad_(with_grad) if isinstance(v_init, torch.Tensor) else v_init
        spikes, v_final = fn(xb, v_init=vb, backend=backend, **kw)
        grads = None
        if with_grad:
            g = torch.randn(spikes.shape, device=DEVICE, generator=_gen(1)).to(spikes.dtype)
            wrt = [xb] + ([vb] if isinstance(vb, torch.Tensor) else [])
            grads = torch.autograd.grad((spikes.float() * g.float()).sum() + v_final.sum(), wrt)
        out[backend] = (spikes.detach(), v_final.detach(), grads)
    return out["triton"], out["torch"]


# Every option in fp32; every dtype on the cases that touch each I/O path (scaled output, tensor v_init,
# LocalZO, subtract reset): the rest of the dtype grid adds compile time, not coverage.
HALF_CASES = ("if_scaled_channel_bias", "if_subtract", "lif_soft_detach_atan", "lif_localzo_normal_q5")
NEURON_GRID = [(c, dt) for c in NEURON_CASES for dt in DTYPES if dt == torch.float32 or c[0] in HALF_CASES]


@pytest.mark.parametrize(
    "case,neuron,options,dtype",
    [(*c, dt) for c, dt in NEURON_GRID],
    ids=[f"{c[0]}-{str(dt).replace('torch.', '')}" for c, dt in NEURON_GRID],
)
def test_neuron_matches_reference(case, neuron, options, dtype):
    shape = (size(8, 3), size(32, 2), size(64, 3), size(16, 2), size(16, 3))  # [T, B, C, H, W]
    gen = _gen(len(case))
    x = (torch.randn(shape, device=DEVICE, generator=gen) * 1.2 + 0.4).to(dtype)
    kw, v_init = _neuron_kwargs(options, x, gen)
    kw.setdefault("save_dtype", "fp32")
    fn = nk.multistep_if if neuron == "if" else nk.multistep_lif
    (s_tr, v_tr, g_tr), (s_ref, v_ref, g_ref) = _neuron_both(fn, x, v_init, kw, with_grad=True)
    flips = _neuron_disagreement(s_tr, s_ref)
    assert flips <= FLIP_FRACTION, f"{flips:.2e} of neurons spike differently"
    assert 0 < (s_ref != 0).float().mean() < 1
    agree = ~(s_tr != s_ref).reshape(shape[0], -1).any(0).reshape(shape[1:])
    torch.testing.assert_close(v_tr[agree], v_ref[agree], rtol=1e-5, atol=1e-5)
    for got, want in zip(g_tr, g_ref):
        scale = want.float().abs().max().item() + 1e-6
        close = (got.float() - want.float()).abs() <= TOL[dtype] * scale + 1e-6
        assert close.float().mean().item() >= 1 - 10 * FLIP_FRACTION - 1e-9


@pytest.mark.parametrize("output", ["spike", "uint8"])
def test_neuron_inference_outputs(output):
    x = torch.randn(size(16, 3), size(1 << 20, 300), device=DEVICE, generator=_gen(3)).to(torch.bfloat16)
    (s_tr, v_tr, _), (s_ref, v_ref, _) = _neuron_both(nk.multistep_lif, x, None, {"output": output}, with_grad=False)
    assert s_tr.dtype == (torch.uint8 if output == "uint8" else torch.bfloat16)
    assert _neuron_disagreement(s_tr, s_ref) <= FLIP_FRACTION


@pytest.mark.parametrize("which", ["forward", "backward"])
def test_neuron_every_autotune_config(which):
    kernel = nk._neuron_forward_kernel if which == "forward" else nk._neuron_backward_kernel
    x = torch.randn(size(4, 2), size(3 * 2**16 + 5, 517), device=DEVICE, generator=_gen(4)) + 0.5
    (_, _, want), _ = _neuron_both(nk.multistep_lif, x, None, {"save_dtype": "fp32"}, with_grad=True)
    for config in list(kernel.configs):
        with only_config(kernel, config):
            (s, v, got), (s_ref, _, _) = _neuron_both(nk.multistep_lif, x, None, {"save_dtype": "fp32"}, with_grad=True)
        assert torch.equal(got[0], want[0]), f"{config} changes grad_x"
        assert _neuron_disagreement(s, s_ref) <= FLIP_FRACTION, str(config)


@pytest.mark.skipif(not ON_CARD, reason="2**31 elements need a card's memory")
def test_neuron_past_2_31_elements():
    """T·N > 2**31 (pointer stepping) with N near 2**30: compared with the reference slice by slice."""
    T, N = 3, 2**30 + 4099
    x = torch.empty(T, N, device="cuda", dtype=torch.bfloat16)
    for t in range(T):
        x[t].normal_(0.4, 1.0, generator=_gen(t))
    x.requires_grad_(True)
    spikes, v_final = nk.multistep_lif(x, save_dtype="bf16")
    grad = torch.autograd.grad(spikes, x, torch.ones_like(spikes))[0]
    for start in (0, N // 2, N - 2**20):
        sl = slice(start, start + 2**20)
        xs = x.detach()[:, sl].contiguous().requires_grad_(True)
        s_ref, v_ref = nk.multistep_lif(xs, save_dtype="bf16", backend="torch")
        g_ref = torch.autograd.grad(s_ref, xs, torch.ones_like(s_ref))[0]
        assert _neuron_disagreement(spikes[:, sl], s_ref) <= FLIP_FRACTION
        close = (grad[:, sl].float() - g_ref.float()).abs() <= 2 * 2.0**-7 * g_ref.float().abs().max() + 1e-6
        assert close.float().mean().item() >= 0.999
    del x, spikes, grad
    torch.cuda.empty_cache()


@pytest.mark.skipif(not ON_CARD, reason="host syncs exist on a card only")
def test_neuron_hot_path_has_no_host_sync_once_parameters_are_checked():
    """Per-channel θ and bias are checked once per version; the chained v_init needs no check."""
    x = torch.randn(4, 8, 16, 5, device="cuda") + 0.5
    thr = torch.rand(16, device="cuda") + 0.5
    bias = 0.1 * torch.randn(4, 16, device="cuda")
    _, v = nk.multistep_if(x, threshold=thr, bias=bias)  # first call: checks (one sync), compiles
    torch.cuda.synchronize()
    from snnbench.neurons import MultiStepIF

    layer = MultiStepIF(thr, channels=16).cuda()
    layer.set_bias(0.1 * torch.randn(8, 16, device="cuda"))
    _, v_layer = layer.simulate(x, t_offset=0)  # a fresh slice of its bias per chunk, checked once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            _, v = nk.multistep_if(x, threshold=thr, bias=bias, v_init=v)
        for _ in range(2):
            layer.simulate(x, v_init=v_layer, t_offset=0)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    thr[0] = float("nan")  # an in-place change is a new version: checked again
    with pytest.raises(ValueError, match="^threshold: "):
        nk.multistep_if(x, threshold=thr, bias=bias)


def test_philox_stream_equal_on_gpu_and_cpu():
    """The LocalZO draws of the Triton kernel on this device equal the CPU reference bit for bit."""
    x = torch.randn(3, size(4096, 64), device=DEVICE, generator=_gen(5)) * 0.3 + 1.0
    kw = {"surrogate": "localzo", "delta": 0.4, "q": 3, "seed": 2**40 + 11, "save_dtype": "fp32", "v_init": 0.0}
    xb = x.clone().requires_grad_(True)
    s, _ = nk.multistep_if(xb, backend="triton", **kw)
    g_dev = torch.autograd.grad(s.sum(), xb)[0]
    xc = x.cpu().requires_grad_(True)
    s_cpu, _ = nk.multistep_if(xc, backend="torch", **kw)
    g_cpu = torch.autograd.grad(s_cpu.sum(), xc)[0]
    agree = ~(s.cpu() != s_cpu).any(0)
    torch.testing.assert_close(g_dev.cpu()[:, agree], g_cpu[:, agree], rtol=1e-5, atol=1e-6)
    index = torch.arange(x.shape[1], device=DEVICE)
    z_dev = nk.localzo_abs_z(kw["seed"], 1, index, 3, "normal")
    z_cpu = nk.localzo_abs_z(kw["seed"], 1, index.cpu(), 3, "normal")
    assert torch.equal(z_dev.cpu(), z_cpu)


@pytest.mark.parametrize("distribution", ["normal", "uniform", "laplace"])
def test_localzo_gradient_statistics(distribution):
    """Mean LocalZO g over many draws is the closed-form surrogate; its spread shrinks as 1/√q."""
    delta = 0.5
    u = torch.linspace(-1.2, 1.2, 13, device=DEVICE)
    replicas = size(200_000, 600)
    x = (u + 1.0).repeat(replicas, 1).unsqueeze(0)
    stats = {}
    for q in (1, 4):
        xb = x.clone().requires_grad_(True)
        s, _ = nk.multistep_if(xb, v_init=0.0, surrogate="localzo", distribution=distribution, delta=delta, q=q, seed=q)
        g = torch.autograd.grad(s.sum(), xb)[0][0]
        stats[q] = (g.mean(0), g.std(0))
    a = u.abs()
    if distribution == "normal":
        expected = torch.exp(-0.5 * (u / delta) ** 2) / (delta * math.sqrt(2 * math.pi))
    elif distribution == "uniform":
        expected = torch.where(
            a < math.sqrt(3) * delta, (3 - u**2 / delta**2) / (4 * math.sqrt(3) * delta), torch.zeros_like(u)
        )
    else:
        expected = (a / delta + 1 / math.sqrt(2)) * torch.exp(-math.sqrt(2) * a / delta) / (2 * delta)
    for q, (mean, std) in stats.items():
        stderr = std / math.sqrt(replicas)
        assert torch.all((mean - expected).abs() <= 5 * stderr + 1e-3), (q, mean, expected)
    ratio = (stats[4][1] / stats[1][1].clamp_min(1e-9))[stats[1][1] > 1e-3]
    assert ratio.median().item() < 0.75, "averaging q = 4 draws should shrink the spread towards 1/2"


# --------------------------------------------------------------------------------------------------
# FTBC statistics kernel


FTBC_SHAPES = [
    # [T, B, C, H, W] of conv layers (large and small spatial) and a [T, B, C] linear layer
    (size(32, 3), size(200, 2), size(64, 3), size(32, 4), size(32, 4)),
    (size(32, 3), size(200, 2), size(512, 5), size(2, 2), size(2, 1)),
    (size(32, 4), size(200, 3), size(4096, 33)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("per_channel,with_bias,with_state", [(False, False, False), (True, True, True)])
@pytest.mark.parametrize("shape", FTBC_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_ftbc_stats_match_reference(shape, dtype, per_channel, with_bias, with_state):
    gen = _gen(sum(shape))
    x = (torch.rand(shape, device=DEVICE, generator=gen) * 1.5).to(dtype)
    a = (torch.rand(shape[1:], device=DEVICE, generator=gen)).to(dtype)
    C = shape[2]
    thresh = torch.rand(C, device=DEVICE, generator=gen) + 0.5 if per_channel else 1.0
    bias = 0.05 * torch.randn(shape[0], C, device=DEVICE, generator=gen) if with_bias else None
    v_init = torch.rand(shape[1:], device=DEVICE, generator=gen) if with_state else None
    got = fk.ftbc_stats_forward(x, a, thresh, bias, v_init, return_state=with_state, backend="triton")
    want = fk.ftbc_stats_reference(x, a, thresh, bias, v_init, return_state=with_state)
    got, want = (got, want) if with_state else ((got,), (want,))
    scale = want[0].abs().max().item() + 1.0
    # Partial sums add in another order than torch's reduction; per-element flips near θ move a sum by θ.
    per_channel_n = math.prod(shape[1:]) / C
    err = (got[0] - want[0]).abs().max().item()
    assert err <= 1e-4 * scale + (2.0 * per_channel_n * FLIP_FRACTION + 1e-3 if ON_CARD else 0), err
    if with_state:
        close = (got[1] - want[1]).abs() <= 1e-4
        assert close.float().mean().item() >= 1 - 10 * FLIP_FRACTION - 1e-9


@pytest.mark.parametrize("split", [None, True, False], ids=["auto", "split", "nosplit"])
@pytest.mark.parametrize("shape", FTBC_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_ftbc_stats_tilings_agree_and_repeat_bit_for_bit(shape, split):
    """Every tiling (the size heuristic's, the finest split, none) against the reference; and the
    second stage sums the slots in a fixed order, so a repeated call gives the same bits."""
    gen = _gen(sum(shape) + 1)
    x = torch.rand(shape, device=DEVICE, generator=gen) * 1.5
    a = torch.rand(shape[1:], device=DEVICE, generator=gen)
    thresh = torch.rand(shape[2], device=DEVICE, generator=gen) + 0.5
    got = fk.ftbc_stats_forward(x, a, thresh, backend="triton", split=split)
    want = fk.ftbc_stats_reference(x, a, thresh)
    per_channel_n = math.prod(shape[1:]) / shape[2]
    err = (got - want).abs().max().item()
    assert err <= 1e-4 * (want.abs().max().item() + 1.0) + (
        2.0 * per_channel_n * FLIP_FRACTION + 1e-3 if ON_CARD else 0
    )
    assert torch.equal(fk.ftbc_stats_forward(x, a, thresh, backend="triton", split=split), got)
    if split is not None:
        assert fk.ftbc_stats_plan(x, split).split is split


@pytest.mark.skipif(not ON_CARD, reason="host syncs exist on a card only")
def test_ftbc_calibration_syncs_once_per_batch_not_per_layer():
    """Steady state of fast FTBC: the finiteness of each batch's activations is one sync; the
    thresholds are known finite after the first call and the biases the sweep computes are declared
    finite, so neither the statistics kernel nor the IF layers sync per layer."""
    import warnings

    from snnbench.conversion.convert import convert
    from snnbench.conversion.ftbc import ftbc_calibrate_fast
    from snnbench.conversion.thresholds import set_thresholds_from_data
    from snnbench.models.vgg import vgg16

    torch.manual_seed(0)
    ann = vgg16(levels=4, num_classes=10, width=8, hidden=64).to(DEVICE).eval()
    batches = [torch.randn(16, 3, 32, 32, device=DEVICE) for _ in range(2)]
    set_thresholds_from_data(ann, batches[0], quantile=0.99)
    snn = convert(ann)
    ftbc_calibrate_fast(ann, snn, batches, 4)  # warm-up: compilation, first checks of the thresholds
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            ftbc_calibrate_fast(ann, snn, batches, 4)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= len(batches), [str(w.message)[:120] for w in syncs]


# --------------------------------------------------------------------------------------------------
# Sparse backward


BETA = math.exp(-0.1)
SPARSE_RULES = [
    sb.SpikeRule("sparseprop", b_th=0.2, width=10.0),
    sb.SpikeRule("localzo", delta=0.2, q=1, distribution="normal"),
    sb.SpikeRule("localzo", delta=0.2, q=3, distribution="laplace"),
]


def _sparse_layer(seed: int):
    T, B, N, H = size(100, 5), size(256, 3), size(700, 9), size(1000, 7)
    gen = _gen(seed)
    x = (torch.rand(T, B, N, device=DEVICE, generator=gen) < 0.05).float()
    w = torch.randn(N, H, device=DEVICE, generator=gen) * (0.6 / math.sqrt(max(N * 0.05, 1)))
    current = (x.reshape(T * B, N) @ w).view(T, B, H) + 0.15
    return x, w, current


@pytest.mark.parametrize("rule", SPARSE_RULES, ids=lambda r: f"{r.rule}-{r.distribution}-q{r.q}")
def test_sparse_record_and_grads_match_reference(rule):
    x, w, current = _sparse_layer(11)
    spikes, active, _ = sb.lif_record_forward(current, BETA, rule, seed=5, backend="triton")
    s_ref, a_ref, _ = sb.reference_lif_record_forward(current, BETA, rule, seed=5)
    flips = (spikes != s_ref).float().mean().item()
    assert flips <= FLIP_FRACTION
    if flips == 0:
        assert torch.equal(active.index, a_ref.index)
        torch.testing.assert_close(active.g, a_ref.g, rtol=1e-5, atol=1e-6)
    assert len(active) > 0
    delta = torch.randn(len(active), device=DEVICE, generator=_gen(2))
    trace = sb.input_trace(x, BETA, backend="triton")
    torch.testing.assert_close(trace, sb.reference_input_trace(x, BETA), rtol=1e-5, atol=1e-5)
    dw = sb.sparse_weight_grad(trace, active, delta, backend="triton")
    torch.testing.assert_close(dw, sb.reference_sparse_weight_grad(trace, active, delta), rtol=1e-4, atol=1e-4)
    # The previous layer's active set: this layer's own entries stand in (same T, B; H_prev = H).
    w2 = torch.randn(current.shape[2], current.shape[2], device=DEVICE, generator=_gen(3)) * 0.1
    for shift in (0, 1):
        want = sb.reference_sparse_input_grad(w2, active, delta, active, BETA, shift)
        for design in sg.INPUT_GRAD_DESIGNS:  # every input-gradient design bench sparse compares
            dx = sb.sparse_input_grad(w2, active, delta, active, BETA, backend="triton", shift=shift, design=design)
            torch.testing.assert_close(dx, want, rtol=1e-4, atol=1e-4, msg=lambda m: f"{design}, shift={shift}: {m}")


@pytest.mark.parametrize("trace_dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_sparse_weight_grad_every_autotune_config(trace_dtype):
    x, _, current = _sparse_layer(12)
    _, active, _ = sb.lif_record_forward(current, BETA, SPARSE_RULES[1], seed=1, backend="triton")
    delta = torch.randn(len(active), device=DEVICE, generator=_gen(4))
    trace = sb.input_trace(x, BETA, backend="triton", dtype=trace_dtype)
    want = sb.reference_sparse_weight_grad(trace, active, delta)
    kernel = sg._sparse_weight_grad_kernel
    for config in list(kernel.configs):
        with only_config(kernel, config):
            got = sb.sparse_weight_grad(trace, active, delta, backend="triton")
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4, msg=lambda m: f"{config}: {m}")


def test_neuron_custom_op_under_torch_compile_and_cuda_graphs():
    """The custom op compiles with inductor in one graph and replays from a CUDA graph on a card."""
    from snnbench.kernels import neuron_op as no

    lif = {"beta": 0.5, "leak": 0.0, "gain": 0.5, "reset": "hard", "save_dtype": "bf16"}
    x = torch.randn(size(8, 2), size(4096, 33), device=DEVICE, generator=_gen(8)) + 0.5
    want = nk.multistep_neuron(x, backend="triton", **lif)[0]
    options = {"backend": "inductor", "mode": "reduce-overhead"} if ON_CARD else {"backend": "eager"}
    fn = torch.compile(lambda t: no.multistep_neuron_op(t, **lif)[0] + 0.0, fullgraph=True, **options)
    for _ in range(3):  # warm-up, record, replay
        got = fn(x)
    assert torch.equal(got, want)
    xg = x.clone().requires_grad_(True)
    g = torch.autograd.grad(
        torch.compile(lambda t: no.multistep_neuron_op(t, **lif)[0].sum(), fullgraph=True, backend=options["backend"])(
            xg
        ),
        xg,
    )[0]
    xr = x.clone().requires_grad_(True)
    g_ref = torch.autograd.grad(nk.multistep_neuron(xr, backend="triton", **lif)[0].sum(), xr)[0]
    assert torch.equal(g, g_ref)


def test_lif_training_step_makes_no_host_sync():
    """A LIF layer's forward and backward sync nothing (LocalZO draws its seed on the host's
    generator; the options were checked at construction), so layers queue work without waiting."""
    from snnbench.neurons import MultiStepLIF

    lif = MultiStepLIF(backend="triton", surrogate="localzo", delta=0.5)
    x = torch.randn(8, 2, 4, size(64, 3), device=DEVICE, generator=_gen(11)) + 0.5

    def step():
        xr = x.clone().requires_grad_(True)
        lif(xr).sum().backward()
        return xr.grad

    step()  # compiles / autotunes
    with contextlib.ExitStack() as stack:
        if ON_CARD:
            torch.cuda.set_sync_debug_mode("error")
            stack.callback(torch.cuda.set_sync_debug_mode, "default")
        grad = step()
    assert grad.shape == x.shape and bool(torch.isfinite(grad).all())
