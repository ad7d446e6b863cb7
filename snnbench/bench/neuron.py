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
any device. Without a GPU the PyTorch paths run at small sizes (``snnbench`` then means its PyTorch
reference) and the JSON says so.

By job: the sweep is the ``neuron`` section of snnbench/sweeps/kernels.yaml (:mod:`.sweep`), the peers
are in :mod:`.peers`, a point's rows in :mod:`.neuron_rows`, the on-device checks in
:mod:`.neuron_checks`; this module runs the sweep, summarises it against the targets and writes the JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from snnbench.bench import harness
from snnbench.bench.harness import header, measure, render, write_json
from snnbench.bench.neuron_checks import check_against_reference
from snnbench.bench.neuron_rows import DTYPES, IMPLS, CompileBudget, measure_point, timed_call
from snnbench.bench.peers import spikingjelly_version
from snnbench.bench.sweep import load_section, tier_of
from snnbench.bench.timing import json_out_path
from snnbench.errors import BenchInputError
from snnbench.user_text import say

# The keys the ``neuron`` section of snnbench/sweeps/kernels.yaml defines, and its tiers.
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
)
TIERS = ("cpu", "quick")
TARGET_POINT = {"T": 32, "N": 8388608, "dtype": "fp32"}
TARGET_FWD_BWD_MS = 1.0  # docs/design.md §7, H200
TARGET_FWD_FRACTION_OF_COPY = 0.9  # "inference forward within 10% of the copy time for its bytes"
# Host time per call of the fused ops (eager minus CUDA-graph replay), by mode: a network's dozen
# layers must not be host-bound at CIFAR batch sizes.
TARGET_HOST_US = {"fwd": 25.0, "fwd_bwd": 60.0}


def load_sweep(path: Optional[Path] = None) -> dict[str, Any]:
    """The ``neuron`` section of the shipped snnbench/sweeps/kernels.yaml (or ``path``), every key present.
    A user's file is also checked by the sweep schema (:mod:`snnbench.bench.sweep_file`); the shipped
    one is package data that a test checks with it, so the default run needs no pydantic."""
    section = load_section("neuron", SWEEP_KEYS, TIERS, path)
    if path is not None:
        from snnbench.bench.sweep_file import check_neuron_sweep

        check_neuron_sweep(section, Path(path))
    return section


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
    calls = {mode: timed_call(layer, mode, x, torch.ones_like(x)) for mode in TARGET_HOST_US}
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
    sweep = tier_of(sweep, "quick" if quick else "cpu" if device == "cpu" else None, TIERS)
    timing = dict(sweep["timing"])
    for key, values in overrides.items():
        if values:
            sweep[key] = list(values)
    for name in sweep["dtypes"]:
        if name not in DTYPES:
            raise BenchInputError(f"dtypes: unknown dtype {name!r}; expected one of {sorted(DTYPES)}")
    unknown = [impl for impl in sweep["impls"] if impl not in IMPLS]
    if unknown:  # refused before any timing, not at the first point that reaches them
        raise BenchInputError(f"impls: unknown implementation(s) {unknown}; expected some of {list(IMPLS)}")
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
        say(console, note, style="yellow")

    result: dict[str, Any] = header(
        "neuron",
        device,
        spikingjelly=spikingjelly_version(),
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
        say(console, json.dumps(result["correctness"], indent=1))
        write_json(path, result)
    result["host_path"] = host_path_us(device)
    say(console, f"host path per call (no launches): {json.dumps(result['host_path'])}")
    budget = CompileBudget(sweep["compile"]["budget_s"])
    compiled: dict[str, Callable] = {}
    started = time.perf_counter()
    # Headline points first (largest N, longest T): a run cut off by a time limit keeps them.
    for dtype_name in sweep["dtypes"]:
        for N in sorted(sweep["sizes"], reverse=True):
            for T in sorted(sweep["timesteps"], reverse=True):
                rows = measure_point(T, N, dtype_name, sweep, device, timing, budget, compiled)
                result["rows"].extend(rows)
                result["summary"] = summarize(result["rows"], result["host_path"])
                result["elapsed_s"] = round(time.perf_counter() - started, 1)
                if device == "cuda":
                    result["autotune"] = _autotune_choices()
                write_json(path, result)
    title = f"neuron kernels on {result['environment']['hardware'].get('name', device)} ({device})"
    render(result["rows"], COLUMNS, console, title)
    if result.get("summary"):
        say(console, json.dumps(result["summary"], indent=2, default=str))
    if path is not None:
        say(console, f"wrote {path}")
    return result
