"""The kernels' public API refuses unusable arguments before any launch, with the argument's name:
tensor parameters are checked for finiteness like scalars, scalars beyond fp32 are refused, devices
other than cpu/cuda get a clear error. On CUDA the tensor check runs once per parameter version
(the cache is exercised here through its CPU-independent parts)."""

from __future__ import annotations

import math

import pytest
import torch
import triton
import triton.language as tl

from snnbench.kernels import common as kc
from snnbench.kernels import ftbc as fk
from snnbench.kernels import neuron as nk

BACKENDS = ["triton", "torch"]
NAN = float("nan")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "name,kw",
    [
        ("v_init", {"v_init": torch.full((3, 4), NAN)}),
        ("v_init", {"v_init": torch.tensor(float("inf"))}),
        ("threshold", {"threshold": torch.tensor([1e39], dtype=torch.float64)}),
        ("threshold", {"threshold": 1e39}),
        ("v_reset", {"v_reset": -1e39, "reset": "hard"}),
        ("alpha", {"alpha": 3.5e38}),
        ("bias", {"bias": torch.full((2, 4), float("inf"))}),
    ],
)
def test_non_finite_and_out_of_range_parameters_are_refused(name, kw, backend):
    x = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match=f"^{name}: "):
        nk.multistep_if(x, backend=backend, **kw)


def test_lif_scalar_beyond_fp32_is_refused():
    with pytest.raises(ValueError, match="^v_reset: .*float32 range"):
        nk.multistep_lif(torch.randn(2, 5), v_reset=1e40)


def test_finite_tensor_parameters_pass_and_gradients_still_reach_v_init():
    x = torch.randn(3, 2, 4)
    v0 = torch.zeros(2, 4, requires_grad=True)
    s, _ = nk.multistep_if(x, v_init=v0, backend="triton")
    assert torch.autograd.grad(s.sum(), v0)[0].shape == v0.shape


@pytest.mark.parametrize(
    "make",
    [
        lambda: nk.multistep_if(torch.randn(2, 3, 4, device="meta")),
        lambda: nk.multistep_lif(torch.randn(2, 3, device="meta"), backend="torch"),
        lambda: fk.ftbc_stats_forward(torch.randn(2, 3, 4, device="meta"), torch.randn(3, 4, device="meta"), 1.0),
    ],
    ids=["if", "lif", "ftbc"],
)
def test_meta_tensors_get_a_clear_error(make):
    with pytest.raises(ValueError, match="meta.*not supported|not supported.*meta"):
        make()


def test_ftbc_v_init_must_be_finite():
    x, a = torch.rand(2, 3, 4), torch.rand(3, 4)
    with pytest.raises(ValueError, match="v_init: every value must be finite"):
        fk.ftbc_stats_forward(x, a, 1.0, v_init=torch.full((3, 4), NAN))
    with pytest.raises(ValueError, match="bias: every value must be finite"):
        fk.ftbc_stats_forward(x, a, 1.0, bias=torch.full((2, 4), NAN))


def test_known_finite_cache_follows_identity_and_version():
    t = torch.ones(4)
    assert not kc.known_finite(t)
    kc.remember_finite(t)
    assert kc.known_finite(t)
    assert not kc.known_finite(t.clone()), "another tensor with equal values is not the one checked"
    t.add_(1)  # an in-place update bumps the version: the next call checks again
    assert not kc.known_finite(t)
    key = kc.finite_key(t)[1]
    del t
    assert key not in kc._KNOWN_FINITE, "the entry goes with its tensor"


def test_known_finite_cache_knows_views_by_their_base():
    """A module hands the kernel a fresh slice of the same bias every call: still checked once."""
    bias = torch.zeros(8, 4)
    kc.remember_finite(bias[2:5])
    assert kc.known_finite(bias[2:5]), "the same rows of the same base"
    assert not kc.known_finite(bias[3:6]), "other rows were not checked"
    bias[0, 0] = 1.0  # any write to the base bumps the shared version
    assert not kc.known_finite(bias[2:5])


def test_cpu_parameters_are_checked_every_call():
    """The version cache is for CUDA only: a CPU tensor made non-finite in place is caught."""
    x = torch.randn(2, 3, 4)
    thr = torch.ones(4)
    nk.multistep_if(x, threshold=thr, backend="torch")
    thr[0] = NAN
    with pytest.raises(ValueError, match="^threshold: "):
        nk.multistep_if(x, threshold=thr, backend="torch")


@triton.autotune(configs=[triton.Config({"BLOCK": 4})], key=["n"])
@triton.jit
def _write_block(out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, offs * 0 + BLOCK, mask=offs < n)


def test_tuned_launch_reuses_the_autotuner_choice_until_its_configs_change(monkeypatch):
    """After a key's first launch the kernel runs with the chosen config without the autotuner; a new
    configs list (as a test forcing one config sets) is asked again."""
    tuned = []
    real_run = _write_block.run
    monkeypatch.setattr(_write_block, "run", lambda *a, **kw: (tuned.append(1), real_run(*a, **kw))[1])
    launch = kc.TunedLaunch(_write_block)
    grid = lambda meta: (triton.cdiv(10, meta["BLOCK"]),)  # noqa: E731
    for _ in range(3):
        out = torch.zeros(10, dtype=torch.int32)
        launch(grid, out, 10)
        assert bool((out == 4).all())
    assert len(tuned) == 1
    launch(grid, torch.zeros(12, dtype=torch.int32), 12)  # another key: the autotuner decides
    assert len(tuned) == 2
    monkeypatch.setattr(_write_block, "configs", [triton.Config({"BLOCK": 8})])
    out = torch.zeros(10, dtype=torch.int32)
    launch(grid, out, 10)
    assert bool((out == 8).all()) and len(tuned) == 3


def test_functional_options_are_built_once_per_distinct_keywords():
    """multistep_lif called with the same keywords every step reuses its options; keywords that only
    compare equal (1 vs 1.0 vs True, -0.0 vs 0.0) do not share them, and bad ones are still refused."""
    from snnbench.kernels import neuron_options as no

    x = torch.randn(2, 3)
    no._built_by_key.cache_clear()
    for _ in range(3):
        nk.multistep_lif(x, tau=2.0, surrogate="atan", backend="torch")
    assert no._built_by_key.cache_info().misses == 1
    signs = [math.copysign(1.0, no._built(no.NeuronOptions, {"v_reset": v}).v_reset) for v in (0.0, -0.0)]
    assert signs == [1.0, -1.0]
    nk.multistep_lif(x, q=1, backend="torch")
    with pytest.raises(ValueError, match="^q: "):
        nk.multistep_lif(x, q=True, backend="torch")  # equal to 1 as a key, but not an integer count
    with pytest.raises(ValueError, match="^surrogate: "):
        nk.multistep_lif(x, surrogate=["atan"], backend="torch")  # unhashable: built (and refused) directly
