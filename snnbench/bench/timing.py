"""Timing helpers shared by the benchmarks: device choice, CUDA-graph timing, bandwidth, memory.

Eager times with their spread and the copy ceiling are :mod:`snnbench.bench.harness`'s
(``measure``, ``copy_ceiling``); :func:`graph_ms` here is the GPU time alone (CUDA-graph replay),
for work short enough that eager timing measures the host.
"""

from __future__ import annotations

import statistics
from typing import Any, Callable

import torch

from snnbench.records.device import resolve_device as _resolve_torch_device
from snnbench.records.device import synchronize


def resolve_device(device: str = "auto") -> str:
    """The package's device rule (records.device) as a name: ``auto`` → ``cuda`` when a GPU is visible,
    else ``cpu``. A bad name or a missing GPU is unusable input (a :class:`~snnbench.errors.UsageError`)."""
    return _resolve_torch_device(device).type


def graph_ms(fn: Callable[[], Any], *, target_ms: float = 40.0, max_reps: int = 50, flush_mb: int = 256) -> float:
    """GPU time of ``fn()`` without host overhead: CUDA-graph replay of (L2 flush, fn) × reps minus
    (L2 flush) × reps. Small problems are launch-bound in eager mode; this is what their kernels cost.

    ``fn`` must be capturable (no host syncs) and already warmed up (compiled, autotuned).
    """
    flush = torch.empty(flush_mb * 2**20 // 4, dtype=torch.int32, device="cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(3):
            fn()
        end.record()
        torch.cuda.synchronize()
        estimate = max(start.elapsed_time(end) / 3, 1e-3)
        reps = int(min(max_reps, max(3, target_ms / estimate)))
        with_fn, flush_only = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        with torch.cuda.graph(with_fn):
            for _ in range(reps):
                flush.zero_()
                fn()
        with torch.cuda.graph(flush_only):
            for _ in range(reps):
                flush.zero_()
        torch.cuda.synchronize()

        def replay(graph: torch.cuda.CUDAGraph) -> float:
            times = []
            for _ in range(5):
                start.record()
                graph.replay()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            return statistics.median(times)

        ms = (replay(with_fn) - replay(flush_only)) / reps
    del with_fn, flush_only, flush
    torch.cuda.synchronize()
    return float(ms)


def gbps(n_bytes: float, ms: float) -> float:
    """Bandwidth in GB/s (10⁹ bytes per second) for ``n_bytes`` moved in ``ms`` milliseconds."""
    return n_bytes / (ms * 1e-3) / 1e9 if ms > 0 else float("nan")


def release_memory(device: str) -> None:
    synchronize(device)
    if device == "cuda":
        torch.cuda.empty_cache()


def json_out_path(out, default_name: str):
    """``out`` as given when it names a .json file, else ``out/<default_name>``; None stays None."""
    from pathlib import Path

    if out is None:
        return None
    out = Path(out)
    return out if out.suffix == ".json" else out / default_name
