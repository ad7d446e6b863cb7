"""The compiled CPU Philox path: the same words as the PyTorch reference, and a pre-filter that never
changes the LocalZO g the reference computes (one random stream on every backend)."""

from __future__ import annotations

import pytest
import torch

from snnbench.kernels import philox_cpu
from snnbench.kernels.neuron import philox4x32
from snnbench.kernels.sparse_backward import MAX_ABS_Z, SpikeRule, reference_spike_g


@pytest.mark.parametrize("seed", [0, 12345, 2**40 + 7, 2**63 - 1])
def test_words_equal_the_pytorch_philox(seed):
    index = torch.arange(5000, dtype=torch.int64) * 977 + 3
    t = torch.randint(0, 300, (5000,), generator=torch.Generator().manual_seed(seed % 1000))
    ours = philox_cpu.philox4x32_words(seed, (index, 0, t, 2))
    ref = philox4x32(seed, index, 0, t, 2)
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))


def _g_without_filter(u, rule, seed, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(philox_cpu, "reachable", lambda *args: None)
        return reference_spike_g(u, rule, seed)


@pytest.mark.parametrize("distribution", ["normal", "uniform", "laplace"])
@pytest.mark.parametrize("q", [1, 3, 6])
def test_filter_keeps_every_active_entry(distribution, q, monkeypatch):
    gen = torch.Generator().manual_seed(q)
    u = torch.rand(40, 6, 50, generator=gen) * 1.2 - 0.6  # u − θ, most of it inside the reach band
    rule = SpikeRule("localzo", delta=0.2, q=q, distribution=distribution)
    for seed in (1, 99):
        g = reference_spike_g(u, rule, seed)
        assert torch.equal(g, _g_without_filter(u, rule, seed, monkeypatch))
        kept = philox_cpu.reachable(u, seed, 0.2, q, distribution, 0.2 * MAX_ABS_Z[distribution])
        assert bool(kept[g != 0].all())
        # the filter drops part of the band (most of it for one normal draw): the point of it
        in_band = int((u.abs() < 0.2 * MAX_ABS_Z[distribution]).sum())
        assert int(kept.sum()) < (0.6 if (q, distribution) == (1, "normal") else 1.0) * in_band


def test_the_cached_numba_loops_have_no_closure():
    """numba keys its on-disk cache by the pickled closure as well: loops that called a jitted helper
    from their closure missed the cache in every new process (~2 s of compiling each) and added an
    entry to it each time."""
    from snnbench.kernels import scan_cpu

    loops = [*philox_cpu._compiled().values(), *scan_cpu._compiled().values()]
    assert len(loops) == 4
    assert all(loop.py_func.__closure__ is None for loop in loops)


def test_numba_caches_the_loops_under_the_package_name_only():
    """An entry written under another name of the same file (``kernels.philox_loops``, run from the
    checkout) made every ``snnbench.kernels`` process fail to load it: no module named 'kernels'."""
    from snnbench.kernels import philox_loops
    from snnbench.kernels.common import numba_cache_allowed

    assert numba_cache_allowed("snnbench.kernels.scan_cpu") and philox_loops._CACHE
    assert not numba_cache_allowed("kernels.philox_loops") and not numba_cache_allowed("philox_loops")
