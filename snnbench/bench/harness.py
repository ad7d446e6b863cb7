"""What every ``snnbench bench`` shares: the header, device choice, timing with spread, one row
vocabulary, atomic JSON writes and one renderer. A bench keeps only its sizes and its measure
function; :func:`bench_entry` gives every bench the same run parameters (device, out, quick, console).

Timing: on CUDA ``triton.testing.do_bench`` (CUDA events, L2 flushed between runs) with the 20/50/80 %
quantiles; on the CPU ``torch.utils.benchmark.Timer.blocked_autorange`` (which picks the number of
calls per block) and the same quantiles over its blocks. Every timed row carries

    median_ms, p20_ms, p80_ms           the spread of the measurement
    bytes, gbps, frac_of_ceiling        bytes the work must move, their rate, that rate over the
                                        ceiling measured in the same process (a copy's bandwidth)
    flops, tflops, frac_of_peak         where the work is arithmetic (convolutions)

The three committed H200 files (results/bench/h200/) were written before this vocabulary; their field
names were renamed in place once (each says so in ``renamed_in_place``), so every reader knows one set
of names.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from rich.console import Console
from rich.table import Table
from rich.text import Text

from snnbench.bench.timing import gbps, json_out_path, resolve_device, synchronize
from snnbench.errors import BenchInputError
from snnbench.records.env import environment
from snnbench.user_text import say

SCHEMA = 2  # rows in the vocabulary above (1 was the older per-bench names, no longer read)
QUANTILES = (0.5, 0.2, 0.8)

__all__ = [
    "SCHEMA",
    "TIMING_COLUMNS",
    "BenchRun",
    "bench_entry",
    "timing_columns",
    "header",
    "measure",
    "with_bandwidth",
    "with_flops",
    "write_json",
    "render",
    "resolve_device",
    "synchronize",
    "json_out_path",
    "console_or_print",
    "copy_ceiling",
    "refuse_beyond_memory",
]


@dataclass(frozen=True)
class BenchRun:
    """What every bench is run with: the resolved device, the JSON folder (None: write nothing),
    whether it is a quick smoke run, and the console it prints to."""

    device: str
    out: Optional[Path]
    quick: bool
    console: Any


def bench_entry(body: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """``run_<x>_bench(device="auto", out=None, quick=False, console=None, **options)`` from
    ``body(run: BenchRun, **options)``: the common run parameters are taken, the device resolved and
    the console chosen here once for every bench (the CLI and the GPU check call these by keyword)."""

    @functools.wraps(body)
    def entry(
        device: str = "auto", out: Optional[Path] = None, quick: bool = False, console: Any = None, **options: Any
    ) -> dict[str, Any]:
        check_out(out)
        return body(BenchRun(resolve_device(device), out, quick, console_or_print(console)), **options)

    # help() and inspect show the call as it is made: the common parameters, then the bench's own.
    common = [p for name, p in inspect.signature(entry, follow_wrapped=False).parameters.items() if name != "options"]
    own = list(inspect.signature(body).parameters.values())[1:]
    entry.__signature__ = inspect.signature(body).replace(parameters=[*common, *own])
    return entry


def available_bytes(device: str) -> int:
    """Memory free for a bench's tensors now: the card's free memory, or the host's available RAM."""
    if device == "cuda":
        return int(torch.cuda.mem_get_info()[0])
    import psutil

    return int(psutil.virtual_memory().available)


def refuse_beyond_memory(need_bytes: float, device: str, what: str) -> None:
    """Refuse sizes whose estimated working set exceeds the free memory, before anything is allocated
    (the process would be killed, or the allocator's text would be all the user saw)."""
    free = available_bytes(device)
    if need_bytes > free:
        raise BenchInputError(
            f"{what}: needs about {need_bytes / 2**30:,.3g} GiB of memory, the {device} has "
            f"{free / 2**30:,.3g} GiB free; choose smaller sizes"
        )


def timing_columns(fmt: str = ".4g", median: str = "ms") -> list[tuple[str, str, str]]:
    """The measurement's spread as table columns (see :func:`render`): its median, 20 % and 80 %."""
    return [(median, "median_ms", fmt), ("p20", "p20_ms", fmt), ("p80", "p80_ms", fmt)]


TIMING_COLUMNS = timing_columns()


def header(benchmark: str, device: str, **extra: Any) -> dict[str, Any]:
    """The fields every bench JSON starts with."""
    method = (
        "triton.testing.do_bench quantiles" if device == "cuda" else "torch.utils.benchmark blocked_autorange quantiles"
    )
    return {
        "benchmark": benchmark,
        "schema": SCHEMA,
        "device": device,
        "environment": environment(device),
        "timing": {"method": method, "quantiles": list(QUANTILES)},
        **extra,
    }


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def measure(fn: Callable[[], Any], device: str, *, warmup_ms: float = 25.0, rep_ms: float = 100.0) -> dict[str, float]:
    """``{median_ms, p20_ms, p80_ms}`` of ``fn()``; ``fn`` is assumed warmed up (compiled) once."""
    if device == "cuda":
        import triton.testing

        med, p20, p80 = triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, quantiles=list(QUANTILES))
        return {"median_ms": float(med), "p20_ms": float(p20), "p80_ms": float(p80)}
    from torch.utils import benchmark

    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    # Warm up for warmup_ms outside the blocks (at least one call), as do_bench does on CUDA.
    deadline = time.perf_counter() + warmup_ms / 1e3
    timer.timeit(1)
    while time.perf_counter() < deadline:
        fn()
    runs = timer.blocked_autorange(min_run_time=max(rep_ms, 1.0) / 1e3)
    times = sorted(t * 1e3 for t in runs.times)
    return {
        "median_ms": float(statistics.median(times)),
        "p20_ms": _quantile(times, 0.2),
        "p80_ms": _quantile(times, 0.8),
    }


def with_bandwidth(
    row: dict[str, Any], n_bytes: float, ceiling_gbps: Optional[float], *, ms_key: str = "median_ms", prefix: str = ""
) -> dict[str, Any]:
    """Add ``bytes``, ``{prefix}gbps`` and ``{prefix}frac_of_ceiling`` (from ``row[ms_key]``) to ``row``."""
    ms = row.get(ms_key)
    row["bytes"] = int(n_bytes)
    rate = gbps(n_bytes, ms) if ms else None
    row[f"{prefix}gbps"] = rate
    row[f"{prefix}frac_of_ceiling"] = rate / ceiling_gbps if rate and ceiling_gbps else None
    return row


def copy_ceiling(numel: int, dtype: torch.dtype, device: str, **timing: float) -> dict[str, Any]:
    """Time ``dst.copy_(src)`` of ``numel`` elements: the bandwidth a streaming kernel can hope for.
    Bytes count the read and the write, as every byte count of the benches does."""
    src = torch.empty(numel, dtype=dtype, device=device).normal_()
    dst = torch.empty_like(src)
    times = measure(lambda: dst.copy_(src), device, **timing)
    n_bytes = 2 * numel * src.element_size()
    del src, dst
    return {**times, "bytes": n_bytes, "gbps": gbps(n_bytes, times["median_ms"])}


def with_flops(row: dict[str, Any], flops: float, peak_tflops: Optional[float]) -> dict[str, Any]:
    """Add ``flops``, ``tflops`` and ``frac_of_peak`` (of ``peak_tflops``, where known) to ``row``."""
    ms = row.get("median_ms")
    row["flops"] = float(flops)
    row["tflops"] = flops / (ms * 1e-3) / 1e12 if ms else None
    row["frac_of_peak"] = row["tflops"] / peak_tflops if row["tflops"] and peak_tflops else None
    return row


def check_out(out: Optional[Path]) -> None:
    """Before any timing: ``out`` is a .json file to write or a folder (each may be absent), never a
    folder where the file belongs, a FIFO or a device (snnbench.user_paths)."""
    from snnbench.user_paths import output_file, output_folder

    if out is not None:
        (output_file if Path(out).suffix == ".json" else output_folder)(out, "--out")


def write_json(path: Optional[Path], result: dict[str, Any]) -> None:
    """Write ``result`` to ``path`` atomically (a cut-off run leaves the previous complete file)."""
    if path is None:
        return
    from snnbench.user_paths import output_file

    path = output_file(path, "bench JSON")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    os.replace(tmp, path)


def _cell(value: Any, fmt: str) -> str:
    if value is None or value == "":
        return ""
    if fmt == "%":
        return f"{100 * value:.0f}%"
    if fmt == ",":
        return f"{value:,}"
    return format(value, fmt) if fmt else str(value)


def console_or_print(console: Any) -> Any:
    """``console`` if given, else a rich Console that prints user text verbatim (snnbench.user_text)."""
    return Console(markup=False, highlight=False) if console is None else console


def render(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, str, str]],
    console: Any,
    title: str,
    timed_key: str = "median_ms",
) -> None:
    """One table of ``rows``: ``columns`` are (header, row key, format: '' | '%' | ',' | a format
    spec). Rows without ``timed_key`` are listed once by reason below the table."""
    timed = [r for r in rows if r.get(timed_key)]
    skipped = sorted({str(r.get("note", "")) for r in rows if not r.get(timed_key)})
    table = Table(title=Text(title))  # notes and names verbatim, never markup
    for head, key, fmt in columns:
        table.add_column(head, justify="left" if fmt == "" else "right", no_wrap=True)
    for r in timed:
        table.add_row(*(Text(_cell(r.get(k), f)) for _, k, f in columns))
    console.print(table)
    if skipped:
        say(console, f"{len(rows) - len(timed)} rows not timed: " + "; ".join(skipped))
