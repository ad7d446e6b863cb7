"""Launch paths: every launch runs under its tensors' CUDA device, the autotuned fast launch stands only
on the Triton internals it was written against (else the public launch), and the neuron backward
reads θ through save_for_backward."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
import torch
import triton

from snnbench.kernels import common as kc
from snnbench.kernels import multistep_if
from snnbench.kernels import neuron as nk
from tests.test_kernel_api import _write_block as _fill_block  # an autotuned kernel writing BLOCK

KERNELS_DIR = Path(kc.__file__).parent


def _grid(meta):
    return (triton.cdiv(10, meta["BLOCK"]),)


def test_no_kernel_is_launched_outside_the_guarded_launches():
    """Every `kernel[grid](...)` of kernels/ goes through common.launch or TunedLaunch (which set the
    device); a direct subscript launch elsewhere would run on whatever device is current."""
    direct = re.compile(r"\b_\w*kernel\[")
    found = [
        f"{path.name}:{n}"
        for path in sorted(KERNELS_DIR.glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if direct.search(line)
    ]
    assert found == []


class _CudaLike:
    """Stands in for a tensor on cuda:1 (no card here): what the guard reads of it."""

    is_cuda = True
    device = torch.device("cuda", 1)


@pytest.fixture
def device_log(monkeypatch):
    """torch.cuda.device replaced by a recorder: the log holds ("enter", device) / ("exit",) and the
    kernels' own entries, in order."""
    log: list = []

    @contextlib.contextmanager
    def fake_device(device):
        log.append(("enter", device))
        yield
        log.append(("exit",))

    monkeypatch.setattr(torch.cuda, "device", fake_device)
    return log


def test_launch_runs_the_kernel_under_its_first_tensors_device(device_log):
    kernel = type("K", (), {"__getitem__": lambda self, grid: lambda *a, **k: device_log.append(("run", grid))})()
    kc.launch(kernel, (3,), _CudaLike(), 5, BLOCK=4)
    assert device_log == [("enter", _CudaLike.device), ("run", (3,)), ("exit",)]


def test_tuned_launch_fast_path_runs_under_the_device_too(device_log, monkeypatch):
    """After the first launch the fast path calls kernel.fn.run directly: still inside the guard."""
    fast = kc.TunedLaunch(_fill_block)
    assert fast.fast
    monkeypatch.setattr(_fill_block.fn, "run", lambda *a, grid, warmup, **kw: device_log.append(("fast", warmup)))
    monkeypatch.setattr(fast, "_chosen", {((10,), (torch.int32,)): (_fill_block.configs, {"BLOCK": 4})})
    out = torch.zeros(10, dtype=torch.int32)
    monkeypatch.setattr(kc, "_on_device", lambda t: torch.cuda.device(_CudaLike.device))
    fast(_grid, out, 10)
    assert device_log == [("enter", _CudaLike.device), ("fast", False), ("exit",)]


def test_fast_launch_is_supported_by_the_running_triton():
    """The internals TunedLaunch uses exist here (Triton 3.8) as in Triton 3.6, the GPU machines'."""
    assert kc.fast_launch_supported(_fill_block)
    assert nk._launch_forward.fast and nk._launch_backward.fast


class _OtherRun:
    """A JITFunction whose run has no ``warmup`` keyword (the fast path's call would fail)."""

    def __init__(self, real):
        self.real = real

    def run(self, *args, grid, **kwargs):
        kwargs.pop("warmup", None)
        return self.real.run(*args, grid=grid, warmup=False, **kwargs)


class _OtherAutotuner:
    """An autotuned kernel as another Triton could show it: ``kernel[grid](...)`` works, the internals
    differ as ``change`` says."""

    def __init__(self, real, change: str):
        self.real = real
        self.configs, self.arg_names, self.fn = real.configs, real.arg_names, real.fn
        if change == "run without warmup":
            self.fn = _OtherRun(real.fn)
        if change != "no keys":
            self.keys = real.keys
        else:
            self.key_idx = [real.arg_names.index(k) for k in real.keys]  # Triton 2.x's spelling

    def __getitem__(self, grid):
        return self.real[grid]


@pytest.mark.parametrize("change", ["run without warmup", "no keys", "no Config.all_kwargs"])
def test_other_triton_internals_fall_back_to_the_public_launch(change, monkeypatch):
    """Built against other internals, TunedLaunch never calls them: every launch is kernel[grid]."""
    kernel = _OtherAutotuner(_fill_block, change)
    with monkeypatch.context() as m:
        if change == "no Config.all_kwargs":
            m.delattr(triton.Config, "all_kwargs")
        launch = kc.TunedLaunch(kernel)
    assert not launch.fast
    public = []
    real_run = _fill_block.run
    monkeypatch.setattr(_fill_block, "run", lambda *a, **kw: (public.append(1), real_run(*a, **kw))[1])
    for _ in range(3):
        out = torch.zeros(10, dtype=torch.int32)
        launch(_grid, out, 10)
        assert bool((out == 4).all())
    assert len(public) == 3, "each launch went through the autotuner's public path"


def _if_grads(threshold: torch.Tensor, bias: torch.Tensor, update) -> torch.Tensor:
    x = torch.linspace(-1.0, 2.0, 2 * 1 * 3).reshape(2, 1, 3).requires_grad_()
    out, _ = multistep_if(x, threshold=threshold, bias=bias, reset="soft", output="scaled", backend="triton")
    update()
    (grad,) = torch.autograd.grad(out.sum(), x)
    return grad


def test_threshold_changed_in_place_before_backward_is_refused():
    """The backward reads θ: an in-place update between forward and backward (a module's threshold
    buffer) is caught by autograd's version check instead of giving gradients of another θ."""
    threshold, bias = torch.full((3,), 0.75), torch.zeros(2, 3)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        _if_grads(threshold, bias, lambda: threshold.mul_(2.0))


def test_bias_changed_in_place_before_backward_leaves_the_gradient_unchanged():
    """FTBC updates its biases in place; the backward reads only the saved u (which holds the bias it
    ran with), so the gradient is that of the forward that ran, and nothing is refused."""
    threshold = torch.full((3,), 0.75)
    bias = torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.2, -0.1]])
    expected = _if_grads(threshold, bias.clone(), lambda: None)
    assert torch.equal(_if_grads(threshold, bias, lambda: bias.add_(5.0)), expected)
