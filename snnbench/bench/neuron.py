"""``snnbench bench neuron``: multi-step LIF forward / forward+backward against its peers.

For every point of the sweep (T time steps × N neurons per step × dtype) it times, in one process:
``copy`` (a device-to-device copy of x: the bandwidth ceiling), ``snnbench`` (the fused Triton
kernels; inference saves nothing, training keeps u in ``save_dtype``), ``snnbench_uint8`` (inference
with uint8 spikes), ``snnbench_localzo`` (LocalZO backward), ``torch_loop`` (a plain PyTorch time
loop), ``torch_compile`` (that loop compiled) and ``spikingjelly`` (its multi-step LIF, when
installed). Every row carries the bytes the snnbench kernels must move for that work, the effective
GB/s and the fraction of the copy bandwidth, so rows compare at equal work. On CUDA, rows timed as a
CUDA-graph replay too carry the host time per call (eager − graph, ``host_us_per_call``), judged
against ``TARGET_HOST_US`` in the summary; ``host_path`` times a layer's call without its launches on
any device. Without a GPU the
PyTorch paths run at small sizes (``snnbench`` then means its PyTorch reference) and the JSON says so.

This module must not import ``snnbench.config`` (pydantic is absent on the GPU machines).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from snnbench.bench import harness
from snnbench.bench.harness import copy_ceiling, header, measure, render, with_bandwidth, write_json
from snnbench.bench.timing import gbps, json_out_path, release_memory, synchronize
from snnbench.errors import BenchInputError

# The sweep lives in snnbench/sweeps/kernels.yaml only (package data, so a wheel has it too); these are
# the keys it must define.
SWEEP_KEYS = (
    "model",
    "input",
    "timesteps",
    "sizes",
    "dtypes",
    "modes",
    "impls",
    "graph_impls",
    "save_dtype",
    "localzo",
    "compile",
    "timing",
    "cpu",
    "quick",
)
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
TARGET_POINT = {"T": 32, "N": 8388608, "dtype": "fp32"}
TARGET_FWD_BWD_MS = 1.0  # docs/design.md §7, H200
TARGET_FWD_FRACTION_OF_COPY = 0.9  # "inference forward within 10% of the copy time for its bytes"
# Host time per call of the fused ops (eager minus CUDA-graph replay), by mode: a network's dozen
# layers must not be host-bound at CIFAR batch sizes.
TARGET_HOST_US = {"fwd": 25.0, "fwd_bwd": 60.0}


def default_sweep_file() -> Path:
    """The sweep shipped inside the package, found the same way in a checkout and in a wheel."""
    from importlib.resources import files

    return Path(str(files("snnbench.sweeps") / "kernels.yaml"))


def load_sweep(path: Optional[Path] = None) -> dict[str, Any]:
    """The ``neuron`` section of the shipped snnbench/sweeps/kernels.yaml (or ``path``), every key present."""
    import yaml

    path = Path(path) if path is not None else default_sweep_file()
    if not path.exists():
        raise BenchInputError(
            f"{path}: the neuron sweep file is missing (it ships as snnbench/sweeps/kernels.yaml; pass --sweep PATH)"
        )
    data = yaml.safe_load(path.read_text()) or {}
    section = data.get("neuron") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise BenchInputError(f"{path}: 'neuron' must be a mapping of sweep settings")
    unknown = set(section) - set(SWEEP_KEYS)
    if unknown:
        raise BenchInputError(f"{path}: neuron: unknown keys {sorted(unknown)}; expected {sorted(SWEEP_KEYS)}")
    missing = [k for k in SWEEP_KEYS if k not in section]
    if missing:
        raise BenchInputError(f"{path}: neuron: missing keys {missing}")
    return section


# --------------------------------------------------------------------------------------------------
# The baselines
# --------------------------------------------------------------------------------------------------


class _SigmoidSpike(torch.autograd.Function):
    """H(u) forward, α·σ(αu)·(1-σ(αu)) backward: the surrogate a plain PyTorch user writes."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.alpha = alpha
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (u,) = ctx.saved_tensors
        sig = torch.sigmoid(ctx.alpha * u)
        return grad * ctx.alpha * sig * (1 - sig), None


def plain_lif_loop(
    x: torch.Tensor,
    *,
    tau: float = 2.0,
    decay_input: bool = True,
    threshold: float = 1.0,
    reset: str = "hard",
    v_reset: float = 0.0,
    alpha: float = 4.0,
    **_: Any,
) -> torch.Tensor:
    """A multi-step LIF as a PyTorch user writes it: a Python loop over T in x's dtype."""
    v = torch.full_like(x[0], v_reset)
    spikes = []
    for t in range(x.shape[0]):
        if decay_input:
            h = v + (x[t] - (v - v_reset)) / tau
        else:
            h = v - (v - v_reset) / tau + x[t]
        s = _SigmoidSpike.apply(h - threshold, alpha)
        v = h * (1 - s) + v_reset * s if reset == "hard" else h - threshold * s
        spikes.append(s)
    return torch.stack(spikes)


def _spikingjelly_step(model: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """SpikingJelly's multi-step LIF with the same neuron; raises ImportError when absent."""
    from spikingjelly.activation_based import functional as sjf
    from spikingjelly.activation_based import surrogate as sjs

    surrogate = sjs.Sigmoid(alpha=model["alpha"])
    v_reset = model["v_reset"] if model["reset"] == "hard" else None
    if hasattr(sjf, "lif_multi_step"):  # SpikingJelly 2.x: picks its CUDA/Triton kernel itself

        def step(x: torch.Tensor) -> torch.Tensor:
            v0 = torch.zeros(x.shape[1:], dtype=torch.float32, device=x.device)
            return sjf.lif_multi_step(
                x, v0, model["tau"], model["decay_input"], model["threshold"], v_reset, surrogate, False
            )[0]

        return step
    from spikingjelly.activation_based import neuron as sjn  # 0.0.0.0.x: LIFNode(backend=...)

    node = None
    for backend in ("triton", "cupy", "torch"):
        try:
            node = sjn.LIFNode(
                tau=model["tau"],
                decay_input=model["decay_input"],
                v_threshold=model["threshold"],
                v_reset=v_reset,
                surrogate_function=surrogate,
                step_mode="m",
                backend=backend,
            )
            break
        except Exception:  # noqa: BLE001 - that backend is not built here; try the next
            continue
    if node is None:
        raise ImportError("no usable SpikingJelly LIFNode backend")

    def step_node(x: torch.Tensor) -> torch.Tensor:
        sjf.reset_net(node)
        return node(x)

    return step_node


def _spikingjelly_version() -> Optional[str]:
    try:
        import spikingjelly  # noqa: F401
    except Exception:  # noqa: BLE001 - absent or broken: the row is skipped
        return None
    try:
        from importlib.metadata import version

        return version("spikingjelly")
    except Exception:  # noqa: BLE001 - importable from a path without metadata
        return "unknown"


# --------------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------------


def _snnbench_step(model: dict[str, Any], backend: str, **extra: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """The layer a network runs: options prepared once by the module, each call checks only x."""
    from snnbench.neurons import MultiStepLIF

    opts = {k: model[k] for k in ("tau", "decay_input", "threshold", "reset", "v_reset", "surrogate", "alpha")}
    return MultiStepLIF(backend=backend, **{**opts, **extra})


def _timed_call(step: Callable[[torch.Tensor], torch.Tensor], mode: str, x: torch.Tensor, grad: torch.Tensor):
    if mode == "fwd":

        def fwd() -> None:
            with torch.no_grad():
                step(x)

        return fwd
    x_req = x.detach().requires_grad_(True)

    def fwd_bwd() -> None:
        # autograd.grad hands back a fresh gradient: no accumulation into x.grad inflates the time.
        torch.autograd.grad(step(x_req), x_req, grad)

    return fwd_bwd


def _try_graph_ms(fn: Callable[[], Any]) -> Optional[float]:
    from snnbench.bench.timing import graph_ms

    try:
        return graph_ms(fn)
    except Exception as err:  # noqa: BLE001 - not capturable: the eager time stands alone
        print(f"graph timing failed: {type(err).__name__}: {err}")
        torch.cuda.synchronize()
        return None


class _CompileBudget:
    def __init__(self, seconds: float) -> None:
        self.left = float(seconds)

    def spend(self, seconds: float) -> None:
        self.left -= seconds


def _row_bytes(impl: str, T: int, N: int, dtype: torch.dtype, mode: str, save_dtype: torch.dtype) -> int:
    from snnbench.kernels.neuron import traffic_bytes

    if impl == "copy":
        return 2 * T * N * torch.empty((), dtype=dtype).element_size()
    output = "uint8" if impl == "snnbench_uint8" else "spike"
    backward = mode == "fwd_bwd"
    return traffic_bytes(T, N, dtype, output=output, save_dtype=save_dtype if backward else None, backward=backward)


def _point_inputs(T: int, N: int, dtype: torch.dtype, sweep: dict[str, Any], device: str):
    """The point's input ``x ~ N(mean, std)`` and output gradient, ``[T, N]``, seeded by the point."""
    gen = torch.Generator(device=device).manual_seed(1234 + T + N)
    x = torch.randn(T, N, device=device, dtype=torch.float32, generator=gen)
    x = (x * sweep["input"]["std"] + sweep["input"]["mean"]).to(dtype)
    grad = torch.randn(T, N, device=device, dtype=torch.float32, generator=gen).to(dtype)
    return x, grad


def _point_ceiling(x: torch.Tensor, sweep: dict[str, Any], device: str, timing: dict[str, float]) -> dict[str, Any]:
    """The copy of ``x``: eager, and as a CUDA-graph replay where the sweep asks for it."""
    ceiling = copy_ceiling(x.numel(), x.dtype, device, **timing)
    if device == "cuda" and "copy" in sweep["graph_impls"]:
        dst = torch.empty_like(x)  # preallocated: a clone inside the graph would time the allocator too
        ceiling["graph_ms"] = _try_graph_ms(lambda: dst.copy_(x))
        ceiling["graph_gbps"] = gbps(ceiling["bytes"], ceiling["graph_ms"]) if ceiling["graph_ms"] else None
        del dst
    return ceiling


def _point_row(
    impl: str,
    mode: str,
    T: int,
    N: int,
    dtype_name: str,
    times: Optional[dict[str, float]],
    nbytes: int,
    note: str,
    first_call_s: Optional[float],
    gpu_ms: Optional[float],
) -> dict[str, Any]:
    """One row of the sweep; a skipped or failed implementation has no times and says why in ``note``."""
    row = {
        "impl": impl,
        "T": T,
        "N": N,
        "dtype": dtype_name,
        "mode": mode,
        **(times or {"median_ms": None, "p20_ms": None, "p80_ms": None}),
        "bytes": nbytes,
    }
    if gpu_ms is not None:
        row["graph_ms"] = gpu_ms
        if times:
            # What the host adds per call: eager time minus the GPU time of a graph replay.
            row["host_overhead_ms"] = times["median_ms"] - gpu_ms
            row["host_us_per_call"] = row["host_overhead_ms"] * 1e3
    if first_call_s is not None:
        row["first_call_s"] = round(first_call_s, 3)
    if note:
        row["note"] = note
    return row


def _measure_point(
    T: int,
    N: int,
    dtype_name: str,
    sweep: dict[str, Any],
    device: str,
    timing: dict[str, float],
    compile_budget: _CompileBudget,
    compiled: dict[str, Callable],
) -> list[dict[str, Any]]:
    dtype = _DTYPES[dtype_name]
    model = sweep["model"]
    save_dtype = _DTYPES[sweep["save_dtype"]]
    backend = "triton" if device == "cuda" else "torch"
    x, grad = _point_inputs(T, N, dtype, sweep, device)
    ceiling = _point_ceiling(x, sweep, device, timing)
    rows: list[dict[str, Any]] = []

    def add(
        impl: str,
        mode: str,
        times: Optional[dict[str, float]],
        note: str = "",
        first_call_s: Optional[float] = None,
        gpu_ms: Optional[float] = None,
    ) -> None:
        rows.append(
            _point_row(
                impl,
                mode,
                T,
                N,
                dtype_name,
                times,
                _row_bytes(impl, T, N, dtype, mode, save_dtype),
                note,
                first_call_s,
                gpu_ms,
            )
        )

    # The ceiling row always exists: every other row's fractions are taken against it.
    add(
        "copy",
        "fwd",
        {k: ceiling[k] for k in ("median_ms", "p20_ms", "p80_ms")},
        "device-to-device copy of x (read + write)",
        gpu_ms=ceiling.get("graph_ms"),
    )
    for impl, mode in _timed_pairs(sweep):
        try:
            step, note = _build_step(
                impl, mode, model, sweep, backend, device, T, N, dtype_name, compile_budget, compiled
            )
        except ImportError as err:
            add(impl, mode, None, f"skipped: {err}")
            continue
        if step is None:
            add(impl, mode, None, note)
            continue
        fn = _timed_call(step, mode, x, grad)
        try:
            times, first, gpu = _time_step(fn, impl, sweep, device, timing, compile_budget)
            add(impl, mode, times, note, first, gpu)
        except Exception as err:  # noqa: BLE001 - one failing peer must not lose the sweep
            add(impl, mode, None, _error_note(err))
            traceback.print_exc()
        finally:
            del fn
            release_memory(device)
    del x, grad
    release_memory(device)
    derive_fractions(rows)
    return rows


def _timed_pairs(sweep: dict[str, Any]):
    """The (impl, mode) pairs of the sweep that get a timed row (the copy row is the point's ceiling)."""
    for impl in sweep["impls"]:
        if impl == "copy":
            continue
        for mode in sweep["modes"]:
            if impl == "snnbench_uint8" and mode != "fwd":
                continue  # uint8 spikes are inference-only
            if impl == "snnbench_localzo" and mode != "fwd_bwd":
                continue  # its forward is the snnbench forward
            yield impl, mode


def _time_step(
    fn: Callable[[], None],
    impl: str,
    sweep: dict[str, Any],
    device: str,
    timing: dict[str, float],
    compile_budget: _CompileBudget,
) -> tuple[dict[str, float], float, Optional[float]]:
    """``(times, first_call_s, gpu_ms)`` of one built step: the first call (compilation, autotuning) kept
    out of the timed region, then the spread and, for the graph impls on a card, the GPU time alone."""
    start = time.perf_counter()
    fn()
    synchronize(device)
    first = time.perf_counter() - start
    if impl == "torch_compile":
        compile_budget.spend(first)
    times = measure(fn, device, **timing)
    gpu = _try_graph_ms(fn) if device == "cuda" and impl in sweep["graph_impls"] else None
    return times, first, gpu


def _error_note(err: Exception) -> str:
    """A failed peer's row note: the error's type and first line."""
    return f"error: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"


def derive_fractions(rows: list[dict[str, Any]]) -> None:
    """Fill GB/s, fractions of the copy ceiling and speed-ups from the raw times of one point.

    The ceiling is the better of the two copy timings (eager do_bench, CUDA graph): eager copies of
    small tensors are launch-bound, and graph replays of large copies came out slower than eager on
    an H200 — the faster one is the bandwidth the memory system demonstrably delivers.
    """
    copy_row = next(r for r in rows if r["impl"] == "copy")
    timings = [copy_row.get("median_ms"), copy_row.get("graph_ms")]
    ceiling = max(gbps(copy_row["bytes"], ms) for ms in timings if ms)
    base = {r["mode"]: r["median_ms"] for r in rows if r["impl"] == "torch_loop" and r["median_ms"]}
    for r in rows:
        ms = r.get("median_ms")
        r["ceiling_gbps"] = ceiling
        r["copy_time_for_bytes_ms"] = r["bytes"] / (ceiling * 1e9) * 1e3
        with_bandwidth(r, r["bytes"], ceiling)
        if r.get("graph_ms"):
            with_bandwidth(r, r["bytes"], ceiling, ms_key="graph_ms", prefix="graph_")
        if r["impl"] != "copy" and ms and r["mode"] in base:
            r["speedup_vs_torch_loop"] = base[r["mode"]] / ms


def _build_step(
    impl: str,
    mode: str,
    model: dict[str, Any],
    sweep: dict[str, Any],
    backend: str,
    device: str,
    T: int,
    N: int,
    dtype_name: str,
    compile_budget: _CompileBudget,
    compiled: dict[str, Callable],
) -> tuple[Optional[Callable], str]:
    """The callable for one row, or (None, why it is skipped)."""
    ref_note = "" if backend == "triton" else "PyTorch reference (no GPU)"
    if impl == "snnbench":
        return _snnbench_step(model, backend, save_dtype=sweep["save_dtype"]), ref_note
    if impl == "snnbench_uint8":
        return _snnbench_step(model, backend, output="uint8"), ref_note
    if impl == "snnbench_localzo":
        lz = sweep["localzo"]
        note = f"LocalZO {lz['distribution']} delta={lz['delta']} q={lz['q']}" + (f"; {ref_note}" if ref_note else "")
        return (
            _snnbench_step(
                model,
                backend,
                surrogate="localzo",
                distribution=lz["distribution"],
                delta=lz["delta"],
                q=lz["q"],
                seed=0,
                save_dtype=sweep["save_dtype"],
            ),
            note,
        )
    if impl == "torch_loop":
        return (lambda x: plain_lif_loop(x, **model)), ""
    if impl == "torch_compile":
        c = sweep["compile"]
        if device != "cuda":
            return None, "skipped: torch.compile is timed on CUDA only"
        if T not in c["timesteps"] or N not in c["sizes"] or dtype_name not in c["dtypes"]:
            return None, "skipped: not a compile point (sweeps/kernels.yaml neuron.compile)"
        if compile_budget.left <= 0:
            return None, "skipped: compile time budget spent"
        if "loop" not in compiled:
            import torch._dynamo

            torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
            compiled["loop"] = torch.compile(lambda x: plain_lif_loop(x, **model))
        return compiled["loop"], ""
    if impl == "spikingjelly":
        if _spikingjelly_version() is None:
            raise ImportError("spikingjelly is not installed (pip install 'snnbench[peers]')")
        return _spikingjelly_step(model), f"spikingjelly {_spikingjelly_version()}"
    raise ValueError(f"impls: unknown implementation {impl!r}")


@contextlib.contextmanager
def _environ(**values: str):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def host_path_us(device: str, T: int = 4, N: int = 64, rep_ms: float = 300.0) -> dict[str, Any]:
    """Host microseconds per call of a ``MultiStepLIF`` layer, forward and forward+backward, with
    everything of a call but the kernel launches (:func:`snnbench.kernels.neuron.host_only`): the
    checks, allocation and autograd of a call, measurable on a CPU too (timed on the host clock)."""
    from snnbench.kernels.neuron import host_only
    from snnbench.neurons import MultiStepLIF

    x = torch.randn(T, N, device=device)
    layer = MultiStepLIF(backend="triton")
    calls = {mode: _timed_call(layer, mode, x, torch.ones_like(x)) for mode in TARGET_HOST_US}
    # No kernel runs, but the backend rule still wants the interpreter's permission for CPU tensors.
    with _environ(TRITON_INTERPRET="1") if device == "cpu" else contextlib.nullcontext(), host_only():
        rows = {mode: measure(fn, "cpu", warmup_ms=rep_ms / 10, rep_ms=rep_ms) for mode, fn in calls.items()}
    return {
        "T": T,
        "N": N,
        "device": device,
        "method": "kernels.neuron.host_only(), no launches",
        **{mode: {k.replace("_ms", "_us"): v * 1e3 for k, v in t.items()} for mode, t in rows.items()},
    }


# --------------------------------------------------------------------------------------------------
# Correctness on the benchmark's own device
# --------------------------------------------------------------------------------------------------

_CHECKS: list[tuple[str, str, dict[str, Any], str, bool]] = [
    # (name, neuron, options, dtype, with gradients)
    ("if_scaled_bias_per_channel", "if", {"output": "scaled", "bias": True, "per_channel": True}, "fp32", False),
    ("lif_hard_sigmoid", "lif", {"save_dtype": "fp32"}, "fp32", True),
    ("lif_hard_sigmoid_save_bf16", "lif", {"save_dtype": "bf16"}, "fp32", True),
    (
        "lif_soft_detach_atan_bf16_io",
        "lif",
        {"reset": "soft", "detach_reset": True, "surrogate": "atan", "v_init": True},
        "bf16",
        True,
    ),
    (
        "lif_localzo_normal_q5",
        "lif",
        {"surrogate": "localzo", "delta": 0.5, "q": 5, "seed": 7, "save_dtype": "fp32"},
        "fp32",
        True,
    ),
    (
        "lif_localzo_laplace_q1",
        "lif",
        {"surrogate": "localzo", "distribution": "laplace", "delta": 0.05, "seed": 9, "save_dtype": "fp32"},
        "fp32",
        True,
    ),
    ("if_uint8_fp16", "if", {"output": "uint8"}, "fp16", False),
]


def check_against_reference(device: str, T: int = 8, shape: tuple[int, ...] = (16, 64, 8, 8)) -> list[dict[str, Any]]:
    """Triton vs the PyTorch reference on ``device`` for a few option sets (recorded in the JSON).

    On a GPU the kernels contract multiply-adds into FMAs, so LIF spikes may differ from the reference
    where h lands within an ulp of θ; the rows report how often.
    """
    from snnbench.kernels.neuron import multistep_if, multistep_lif, multistep_neuron

    results = []
    gen = torch.Generator(device=device).manual_seed(0)
    for name, neuron, options, dtype_name, with_grad in _CHECKS:
        dtype = _DTYPES[dtype_name]
        try:
            x = (torch.randn((T,) + shape, device=device, generator=gen) + 0.4).to(dtype)
            kw = dict(options)
            C = shape[1]
            if kw.pop("per_channel", False):
                kw["threshold"] = torch.rand(C, device=device, generator=gen) + 0.5
            if kw.pop("bias", False):
                kw["bias"] = 0.1 * torch.randn(T, C, device=device, generator=gen)
            v0 = None
            if kw.pop("v_init", False):
                v0 = 0.1 * torch.randn(shape[1:], device=device, generator=gen)
            fn = multistep_if if neuron == "if" else multistep_lif
            outs, grads = {}, {}
            for backend in ("triton", "torch"):
                xb = x.detach().clone().requires_grad_(with_grad)
                vb = v0.detach().clone().requires_grad_(with_grad) if v0 is not None else None
                spikes, v_final = fn(xb, v_init=vb, backend=backend, **kw)
                outs[backend] = (spikes.detach(), v_final.detach())
                if with_grad:
                    g = torch.randn(
                        spikes.shape, device=device, generator=torch.Generator(device=device).manual_seed(1)
                    ).to(spikes.dtype)
                    wrt = [xb] + ([vb] if vb is not None else [])
                    grads[backend] = torch.autograd.grad((spikes * g).sum() + v_final.sum(), wrt)
            (s_tr, v_tr), (s_ref, v_ref) = outs["triton"], outs["torch"]
            row: dict[str, Any] = {
                "check": name,
                "dtype": dtype_name,
                "spike_mismatch_frac": (s_tr != s_ref).float().mean().item(),
                "v_final_max_abs_diff": (v_tr - v_ref).abs().max().item(),
            }
            if with_grad:
                g_tr, g_ref = grads["triton"][0].float(), grads["torch"][0].float()
                scale = g_ref.abs().max().item() or 1.0
                row["grad_x_max_abs_diff_rel"] = (g_tr - g_ref).abs().max().item() / scale
                row["grad_x_close_frac"] = (
                    torch.isclose(g_tr, g_ref, rtol=1e-2, atol=1e-3 * scale).float().mean().item()
                )
                if len(grads["triton"]) > 1:
                    row["grad_v_init_max_abs_diff"] = (grads["triton"][1] - grads["torch"][1]).abs().max().item()
            results.append(row)
        except Exception as err:  # noqa: BLE001 - report, keep checking
            results.append({"check": name, "error": f"{type(err).__name__}: {err}"[:300]})
            traceback.print_exc()
    # The int64 indexing path must give the same result as the int32 one.
    try:
        x = torch.randn((T,) + shape, device=device, generator=gen).requires_grad_(True)
        a = multistep_neuron(x, beta=0.5, leak=0.0, gain=0.5, reset="hard", save_dtype="fp32", backend="triton")
        b = multistep_neuron(
            x, beta=0.5, leak=0.0, gain=0.5, reset="hard", save_dtype="fp32", backend="triton", _force_index_64=True
        )
        ga = torch.autograd.grad(a[0].sum(), x)[0]
        gb = torch.autograd.grad(b[0].sum(), x)[0]
        results.append(
            {"check": "index64_equals_index32", "equal": bool(torch.equal(a[0], b[0]) and torch.equal(ga, gb))}
        )
    except Exception as err:  # noqa: BLE001
        results.append({"check": "index64_equals_index32", "error": f"{type(err).__name__}: {err}"[:300]})
    release_memory(device)
    return results


# --------------------------------------------------------------------------------------------------
# Summary, JSON, table
# --------------------------------------------------------------------------------------------------


def _find(rows: list[dict], **match: Any) -> Optional[dict]:
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def summarize(rows: list[dict], host_path: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The targets of docs/design.md §7, read off the rows (absent when the point was not measured)
    and, given, the host path's time per call (:func:`host_path_us`) against the host targets."""
    out: dict[str, Any] = {}
    ours = _find(rows, impl="snnbench", mode="fwd_bwd", **TARGET_POINT)
    if ours and ours.get("median_ms"):
        out["fwd_bwd_target"] = {
            "point": dict(TARGET_POINT),
            "snnbench_ms": ours["median_ms"],
            "target_ms": TARGET_FWD_BWD_MS,
            "met": ours["median_ms"] <= TARGET_FWD_BWD_MS,
            "ms_at_copy_bandwidth": ours["copy_time_for_bytes_ms"],
            "snnbench_graph_ms": ours.get("graph_ms"),
            "bytes": ours["bytes"],
        }
        sj = _find(rows, impl="spikingjelly", mode="fwd_bwd", **TARGET_POINT)
        if sj and sj.get("median_ms"):
            out["fwd_bwd_target"]["spikingjelly_ms"] = sj["median_ms"]
            out["fwd_bwd_target"]["speedup_vs_spikingjelly"] = sj["median_ms"] / ours["median_ms"]
    fwd = [
        r
        for r in rows
        if r["impl"] in ("snnbench", "snnbench_uint8") and r["mode"] == "fwd" and r.get("frac_of_ceiling")
    ]
    if fwd:
        worst = min(fwd, key=lambda r: r["frac_of_ceiling"])
        keys = ("impl", "T", "N", "dtype", "median_ms", "frac_of_ceiling", "graph_ms", "graph_frac_of_ceiling")
        out["inference_fwd"] = {
            "target_fraction_of_copy": TARGET_FWD_FRACTION_OF_COPY,
            "worst": {k: worst.get(k) for k in keys},
            "points_meeting_target": sum(r["frac_of_ceiling"] >= TARGET_FWD_FRACTION_OF_COPY for r in fwd),
            "points": len(fwd),
        }
        graphed = [r for r in fwd if r.get("graph_frac_of_ceiling")]
        if graphed:
            out["inference_fwd"]["points_meeting_target_graph"] = sum(
                r["graph_frac_of_ceiling"] >= TARGET_FWD_FRACTION_OF_COPY for r in graphed
            )
            out["inference_fwd"]["points_graph"] = len(graphed)
    host = [r for r in rows if r["impl"].startswith("snnbench") and r.get("host_us_per_call") is not None]
    if host:
        keys = ("impl", "T", "N", "dtype", "mode", "host_us_per_call")
        checked = [
            {
                **{k: r[k] for k in keys},
                "target_us": TARGET_HOST_US[r["mode"]],
                "met": r["host_us_per_call"] <= TARGET_HOST_US[r["mode"]],
            }
            for r in host
        ]
        out["host_overhead"] = {
            "target_us": dict(TARGET_HOST_US),
            "points_meeting_target": sum(c["met"] for c in checked),
            "points": len(checked),
            "rows": checked,
        }
    if host_path:
        out["host_path"] = {
            mode: {
                "median_us": host_path[mode]["median_us"],
                "target_us": target,
                "met": host_path[mode]["median_us"] <= target,
            }
            for mode, target in TARGET_HOST_US.items()
        }
    return out


def _autotune_choices() -> dict[str, dict[str, str]]:
    from snnbench.kernels import neuron as nk

    choices = {}
    for name in ("_neuron_forward_kernel", "_neuron_backward_kernel"):
        cache = getattr(getattr(nk, name), "cache", {}) or {}
        choices[name] = {str(k): str(v) for k, v in cache.items()}
    return choices


COLUMNS = [
    ("impl", "impl", ""),
    ("dtype", "dtype", ""),
    ("T", "T", ""),
    ("N", "N", ","),
    ("mode", "mode", ""),
    *harness.TIMING_COLUMNS,
    ("GB/s", "gbps", ".0f"),
    ("%copy", "frac_of_ceiling", "%"),
    ("×loop", "speedup_vs_torch_loop", ".2f"),
    ("graph ms", "graph_ms", ".4g"),
    ("%copy(g)", "graph_frac_of_ceiling", "%"),
    ("host µs", "host_us_per_call", ".3g"),
]


def _chosen_sweep(
    sweep: dict[str, Any], device: str, quick: bool, overrides: dict[str, Optional[list]]
) -> tuple[dict[str, Any], dict[str, float]]:
    """(sweep, timing) for this run: the quick or CPU sizes where they apply, then the caller's lists."""
    timing = dict(sweep["timing"])
    tier = "quick" if quick else "cpu" if device == "cpu" else None
    if tier:
        sweep["timesteps"], sweep["sizes"] = sweep[tier]["timesteps"], sweep[tier]["sizes"]
        timing = dict(sweep[tier]["timing"])
    for key, values in overrides.items():
        if values:
            sweep[key] = list(values)
    for name in sweep["dtypes"]:
        if name not in _DTYPES:
            raise BenchInputError(f"dtypes: unknown dtype {name!r}; expected one of {sorted(_DTYPES)}")
    for key in ("timesteps", "sizes"):
        if not sweep[key] or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sweep[key]):
            raise BenchInputError(f"{key}: expected a list of positive integers, got {sweep[key]!r}")
    # fp32 input, output and both gradients plus the saved state: about 20 B per neuron-step (docs/kernels.md).
    largest = max(sweep["timesteps"]) * max(sweep["sizes"])
    harness.refuse_beyond_memory(
        20 * largest, device, f"timesteps {max(sweep['timesteps'])} × sizes {max(sweep['sizes'])}"
    )
    return sweep, timing


@harness.bench_entry
def run_neuron_bench(
    run: harness.BenchRun,
    *,
    timesteps: Optional[list[int]] = None,
    sizes: Optional[list[int]] = None,
    sweep_path: Optional[Path] = None,
    dtypes: Optional[list[str]] = None,
    impls: Optional[list[str]] = None,
) -> dict[str, Any]:
    """Run the sweep; write ``out/neuron.json`` (after every point, so a cut-off run keeps its rows)."""
    device, console = run.device, run.console
    sweep, timing = _chosen_sweep(
        load_sweep(sweep_path),
        device,
        run.quick,
        {"timesteps": timesteps, "sizes": sizes, "dtypes": dtypes, "impls": impls},
    )
    note = ""
    if device == "cpu":
        note = (
            "no GPU: the PyTorch paths run on the CPU at small sizes; 'snnbench' rows time its PyTorch "
            "reference, not the Triton kernels (run with --device cuda on a GPU for those)"
        )
        console.print(f"[yellow]{note}[/yellow]")

    result: dict[str, Any] = header(
        "neuron",
        device,
        spikingjelly=_spikingjelly_version(),
        note=note,
        model=sweep["model"],
        sweep={
            k: sweep[k] for k in ("timesteps", "sizes", "dtypes", "modes", "impls", "save_dtype", "localzo", "input")
        },
        bytes_note="bytes = DRAM traffic the snnbench kernels need for the row's work (same for every impl); "
        "copy rows count read + write of x; frac_of_ceiling = gbps over the better copy bandwidth",
        rows=[],
    )
    result["timing"].update(timing)
    path = json_out_path(run.out, "neuron.json")
    if device == "cuda":
        result["correctness"] = check_against_reference(device)
        console.print(json.dumps(result["correctness"], indent=1))
        write_json(path, result)
    result["host_path"] = host_path_us(device)
    console.print(f"host path per call (no launches): {json.dumps(result['host_path'])}")
    budget = _CompileBudget(sweep["compile"]["budget_s"])
    compiled: dict[str, Callable] = {}
    started = time.perf_counter()
    # Headline points first (largest N, longest T): a run cut off by a time limit keeps them.
    for dtype_name in sweep["dtypes"]:
        for N in sorted(sweep["sizes"], reverse=True):
            for T in sorted(sweep["timesteps"], reverse=True):
                rows = _measure_point(T, N, dtype_name, sweep, device, timing, budget, compiled)
                result["rows"].extend(rows)
                result["summary"] = summarize(result["rows"], result["host_path"])
                result["elapsed_s"] = round(time.perf_counter() - started, 1)
                if device == "cuda":
                    result["autotune"] = _autotune_choices()
                write_json(path, result)
    title = f"neuron kernels on {result['environment']['hardware'].get('name', device)} ({device})"
    render(result["rows"], COLUMNS, console, title)
    if result.get("summary"):
        console.print(json.dumps(result["summary"], indent=2, default=str))
    if path is not None:
        console.print(f"wrote {path}")
    return result
