"""The rows of ``snnbench bench neuron``: one sweep point (T, N, dtype) measured for every (impl, mode)
of the sweep — the copy ceiling, snnbench's layer and the peers of :mod:`snnbench.bench.peers` — with
the bytes each row's work must move, its GB/s, fraction of the copy ceiling and speed-up."""

from __future__ import annotations

import time
import traceback
from typing import Any, Callable, Optional

import torch

from snnbench import interrupts
from snnbench.bench.harness import copy_ceiling, measure, with_bandwidth
from snnbench.bench.peers import LIF_PEERS, compiled_lif_loop
from snnbench.bench.timing import gbps, release_memory, synchronize
from snnbench.kernels.neuron_options import SAVE_DTYPES as DTYPES

# Every row a sweep's ``impls`` may ask for: the copy ceiling, snnbench's layer, the peers.
IMPLS = ("copy", "snnbench", "snnbench_uint8", "snnbench_localzo", "torch_compile", *LIF_PEERS)


def _snnbench_step(model: dict[str, Any], backend: str, **extra: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """The layer a network runs: options prepared once by the module, each call checks only x."""
    from snnbench.neurons import MultiStepLIF

    opts = {k: model[k] for k in ("tau", "decay_input", "threshold", "reset", "v_reset", "surrogate", "alpha")}
    return MultiStepLIF(backend=backend, **{**opts, **extra})


def timed_call(step: Callable[[torch.Tensor], torch.Tensor], mode: str, x: torch.Tensor, grad: torch.Tensor):
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
        interrupts.raise_if_interrupt(err)
        print(f"graph timing failed: {type(err).__name__}: {err}")
        torch.cuda.synchronize()
        return None


class CompileBudget:
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


def point_row(
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


def measure_point(
    T: int,
    N: int,
    dtype_name: str,
    sweep: dict[str, Any],
    device: str,
    timing: dict[str, float],
    compile_budget: CompileBudget,
    compiled: dict[str, Callable],
) -> list[dict[str, Any]]:
    dtype = DTYPES[dtype_name]
    model = sweep["model"]
    save_dtype = DTYPES[sweep["save_dtype"]]
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
            point_row(
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
        fn = timed_call(step, mode, x, grad)
        try:
            times, first, gpu = _time_step(fn, impl, sweep, device, timing, compile_budget)
            add(impl, mode, times, note, first, gpu)
        except Exception as err:  # noqa: BLE001 - one failing peer must not lose the sweep
            interrupts.raise_if_interrupt(err)
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
    compile_budget: CompileBudget,
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
    compile_budget: CompileBudget,
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
    if impl in LIF_PEERS:
        return LIF_PEERS[impl](model)
    if impl == "torch_compile":
        c = sweep["compile"]
        if device != "cuda":
            return None, "skipped: torch.compile is timed on CUDA only"
        if T not in c["timesteps"] or N not in c["sizes"] or dtype_name not in c["dtypes"]:
            return None, "skipped: not a compile point (sweeps/kernels.yaml neuron.compile)"
        if compile_budget.left <= 0:
            return None, "skipped: compile time budget spent"
        return compiled_lif_loop(model, compiled), ""
    raise ValueError(f"impls: unknown implementation {impl!r}")
