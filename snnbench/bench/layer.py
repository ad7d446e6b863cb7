"""``snnbench bench layer``: one spiking layer (a GEMM or convolution, then a LIF) against every SNN
library, on the field's own protocol.

Shapes (:data:`PLANS`): the Open Neuromorphic protocol — ``Linear(n, n)`` + LIF, T = 500, batch 16,
n = 512 … 16,384 — and a CIFAR conv block, ``Conv2d(128, 128, 3, padding=1)`` on 32×32 + LIF, T = 4
and 32, batch 64; on the CPU the same at small sizes, plus the neuron alone at issue 23's points
(T = 32, N = 65,536; T = 100, N = 16,384; one and two threads). For every point and implementation
(:mod:`snnbench.bench.layer_peers`), forward and forward+backward (gradients of the layer's
parameters), timed by the shared harness (median / p20 / p80; CUDA events on a GPU), rows by ``part``:

    layer     the GEMM/conv and the neuron together (what the published figures time)
    neuron    the neuron alone on the layer's precomputed currents (bytes, GB/s, fraction of a copy)
    gemm      the GEMM/conv alone, once per point (FLOPs, TFLOP/s, fraction of the card's peak)

``neuron_share`` is a layer row's neuron time over its layer time; ``speedup_vs_fastest_peer`` is
the fastest other library's time over snnbench's at the same point; ``peak_mb`` the CUDA memory a
forward+backward allocates beyond its inputs (absent on the CPU). Every peer is checked first
(:func:`layer_peers.check_peer`): one whose spikes or gradients differ is listed with the
difference and never timed. This module must not import ``snnbench.config``.
"""

from __future__ import annotations

import json
import time
import traceback
from typing import Any, Callable, Iterator, Optional

import torch

from snnbench import interrupts
from snnbench.bench import harness
from snnbench.bench.harness import copy_ceiling, header, measure, render, with_bandwidth, with_flops, write_json
from snnbench.bench.layer_peers import PEERS, Peer, check_peer, peer_named, unavailable, version
from snnbench.bench.timing import json_out_path, release_memory, synchronize
from snnbench.user_text import say

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_ON = {"shape": "linear", "T": 500, "B": 16, "protocol": "open-neuromorphic"}
_CONV = {"shape": "conv", "C": 128, "HW": 32, "B": 64, "protocol": "cifar-conv-block"}
# Each plan: the points, the dtypes and the timing of one kind of run.
PLANS: dict[str, dict[str, Any]] = {
    "cuda": {
        # The target's points first: a run cut off by its budget keeps them.
        "points": [{**_ON, "n": n} for n in (4096, 16384)]
        + [{**_CONV, "T": T} for T in (32, 4)]
        + [{**_ON, "n": n} for n in (8192, 2048, 1024, 512)],
        "dtypes": ["fp32", "bf16"],
        "timing": {"warmup_ms": 25, "rep_ms": 100},
    },
    "cpu": {
        # Issue 23's neuron points first, on one and two threads; the layers on one.
        "points": [{"shape": "neuron", "T": 32, "N": 65536, "threads": [1, 2]}]
        + [{"shape": "neuron", "T": 100, "N": 16384, "threads": [1, 2]}]
        + [{**_ON, "T": 100, "n": n, "threads": [1]} for n in (256, 512)]
        + [{**_CONV, "C": 32, "HW": 16, "B": 8, "T": 4, "threads": [1]}],
        "dtypes": ["fp32"],
        "timing": {"warmup_ms": 0, "rep_ms": 200},
    },
    "quick": {
        "points": [{**_ON, "T": 8, "B": 2, "n": 64}, {**_CONV, "C": 4, "HW": 6, "B": 2, "T": 2}]
        + [{"shape": "neuron", "T": 8, "N": 256}],
        "dtypes": ["fp32"],
        "timing": {"warmup_ms": 0, "rep_ms": 5},
    },
}
MODES = ("fwd", "fwd_bwd")
# Dense peak FLOP/s by card name and dtype (SXM data sheets; tensor cores for bf16, TF32 off for fp32).
PEAK_FLOPS = {"H200": {"bf16": 989e12, "fp32": 67e12}, "H100": {"bf16": 989e12, "fp32": 67e12}}
INPUT_STD = 3.0  # x ~ N(0, 3²): PyTorch's default init then gives currents of std ≈ 1.7 and a firing LIF


def _peak(card: str, dtype_name: str) -> Optional[float]:
    return next((v.get(dtype_name) for k, v in PEAK_FLOPS.items() if k in card), None)


# --------------------------------------------------------------------------------------------------
# A point: the layer, its input and its FLOPs
# --------------------------------------------------------------------------------------------------


def _layer_and_input(point: dict[str, Any], dtype: torch.dtype, device: str):
    """(module or None, x, neurons per step): the GEMM/conv of the point and its seeded input."""
    gen = torch.Generator(device="cpu").manual_seed(22)
    torch.manual_seed(22)
    T = point["T"]
    if point["shape"] == "linear":
        module = torch.nn.Linear(point["n"], point["n"])
        x = torch.randn(T, point["B"], point["n"], generator=gen) * INPUT_STD
        return module.to(device, dtype), x.to(device, dtype), point["B"] * point["n"]
    if point["shape"] == "conv":
        C, HW = point["C"], point["HW"]
        module = torch.nn.Conv2d(C, C, 3, padding=1)
        x = torch.randn(T, point["B"], C, HW, HW, generator=gen) * INPUT_STD
        return module.to(device, dtype), x.to(device, dtype), point["B"] * C * HW * HW
    x = 1.5 * torch.randn(T, point["N"], generator=gen) + 0.3
    return None, x.to(device, dtype), point["N"]


def _gemm_flops(point: dict[str, Any], mode: str) -> float:
    """Multiply-adds ×2 of the forward; the backward adds the weight gradient (the input is data)."""
    if point["shape"] == "linear":
        fwd = 2.0 * point["T"] * point["B"] * point["n"] ** 2
    else:
        fwd = 2.0 * point["T"] * point["B"] * point["C"] ** 2 * 9 * point["HW"] ** 2
    return fwd * (2 if mode == "fwd_bwd" else 1)


def _apply(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The module on every step at once: [T, B, ...] folded to [T·B, ...] and back."""
    return module(x.flatten(0, 1)).unflatten(0, x.shape[:2])


def _call(fn: Callable[[], torch.Tensor], mode: str, wrt: list[torch.Tensor]) -> Callable[[], None]:
    """``fn`` timed as inference (no_grad) or forward+backward (a fresh gradient of ``wrt``)."""
    if mode == "fwd":

        def fwd() -> None:
            with torch.no_grad():
                fn()

        return fwd

    def fwd_bwd() -> None:
        out = fn()
        torch.autograd.grad(out, wrt, torch.ones_like(out))

    return fwd_bwd


def _peak_mb(call: Callable[[], None], device: str) -> Optional[float]:
    """CUDA memory one call allocates beyond what was already held (None off CUDA)."""
    if device != "cuda":
        return None
    synchronize(device)
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    call()
    synchronize(device)
    return (torch.cuda.max_memory_allocated() - base) / 2**20


# --------------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------------


SLOW_CALL_S = 0.5  # a call this slow is timed SLOW_REPEATS times by hand, not by do_bench's ≥ 7 calls
SLOW_REPEATS = 3


def _timed(call: Callable[[], None], device: str, timing: dict[str, float]) -> dict[str, Any]:
    """The harness's spread of ``call`` after one untimed call (compilation, autotuning), and that
    first call's seconds; a slow call (the Python-loop peers at T = 500) is timed a few times alone."""
    start = time.perf_counter()
    call()
    synchronize(device)
    first = time.perf_counter() - start
    if first <= SLOW_CALL_S:
        return {**measure(call, device, **timing), "first_call_s": round(first, 3)}
    times = []
    for _ in range(SLOW_REPEATS):
        start = time.perf_counter()
        call()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {
        "median_ms": times[1],
        "p20_ms": times[0],
        "p80_ms": times[-1],
        "first_call_s": round(first, 3),
        "timing_note": f"slow call: {SLOW_REPEATS} synchronized host-timed calls (min, median, max)",
    }


def _error_note(err: Exception) -> str:
    return f"error: {type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"


def _impl_rows(peer: Peer, base: dict[str, Any], module, x, currents, device, timing) -> list[dict[str, Any]]:
    """Neuron-alone and layer rows of one implementation at one point (both modes)."""
    rows = []
    try:
        step = peer.build(device, x.dtype)
    except Exception as err:  # noqa: BLE001 - a peer that cannot be built is reported
        interrupts.raise_if_interrupt(err)
        return [{**base, "impl": peer.name, "part": "layer", "mode": m, "note": _error_note(err)} for m in MODES]
    cur = currents.detach().requires_grad_(True)
    params = list(module.parameters()) if module is not None else []
    for mode in MODES:
        parts = [("neuron", _call(lambda: step(cur), mode, [cur]))]
        if module is not None:
            parts.append(("layer", _call(lambda: step(_apply(module, x)), mode, params)))
        for part, call in parts:
            row = {**base, "impl": peer.name, "part": part, "mode": mode}
            try:
                row.update(_timed(call, device, timing))
                if part == "layer" or module is None:
                    row["peak_mb"] = _peak_mb(call, device)
            except Exception as err:  # noqa: BLE001 - one failing peer must not lose the point
                interrupts.raise_if_interrupt(err)
                row["note"] = _error_note(err)
                traceback.print_exc()
            rows.append(row)
    del step, cur
    release_memory(device)
    return rows


def _derive(rows: list[dict[str, Any]], point: dict[str, Any], ceiling_gbps: float, peak: Optional[float]) -> None:
    """Bytes and bandwidth of neuron rows, FLOPs of gemm and layer rows, the neuron's share of each
    layer row and snnbench's speed-up over the fastest peer of the same part and mode."""
    from snnbench.kernels.neuron import traffic_bytes

    timed = [r for r in rows if r.get("median_ms")]
    for r in timed:
        dtype = _DTYPES[r["dtype"]]
        if r["part"] == "neuron":
            backward = r["mode"] == "fwd_bwd"
            n_bytes = traffic_bytes(
                r["T"], r["neurons_per_step"], dtype, save_dtype=torch.float32 if backward else None, backward=backward
            )
            with_bandwidth(r, n_bytes, ceiling_gbps)
        else:
            with_flops(r, _gemm_flops(point, r["mode"]), peak)
    for r in timed:
        same = [o for o in timed if o["mode"] == r["mode"] and o.get("threads") == r.get("threads")]
        if r["part"] == "layer":
            neuron = next((o for o in same if o["impl"] == r["impl"] and o["part"] == "neuron"), None)
            r["neuron_share"] = neuron["median_ms"] / r["median_ms"] if neuron else None
        peers = [o for o in same if o["part"] == r["part"] and not o["impl"].startswith("snnbench")]
        if r["impl"].startswith("snnbench") and peers:
            fastest = min(peers, key=lambda o: o["median_ms"])
            r["fastest_peer"] = fastest["impl"]
            r["speedup_vs_fastest_peer"] = fastest["median_ms"] / r["median_ms"]
            if r.get("peak_mb") is not None:
                r["lowest_peer_peak_mb"] = min(
                    (o["peak_mb"] for o in peers if o.get("peak_mb") is not None), default=None
                )


def _measure_point(
    point: dict[str, Any], dtype_name: str, threads: Optional[int], device: str, timing, checks, card: str
) -> Iterator[list[dict[str, Any]]]:
    """The point's rows so far, yielded after the GEMM and after each implementation (the caller
    writes them, so a run killed by a time limit keeps every implementation it finished)."""
    dtype = _DTYPES[dtype_name]
    module, x, neurons = _layer_and_input(point, dtype, device)
    base = {**point, "dtype": dtype_name, "threads": threads, "neurons_per_step": neurons}
    rows: list[dict[str, Any]] = []
    currents = x
    if module is not None:
        with torch.no_grad():
            currents = _apply(module, x)
        params = list(module.parameters())
        for mode in MODES:
            call = _call(lambda: _apply(module, x), mode, params)
            rows.append({**base, "impl": "torch", "part": "gemm", "mode": mode, **_timed(call, device, timing)})
    ceiling = copy_ceiling(currents.numel(), dtype, device, **timing)
    peak = _peak(card, dtype_name)
    for peer in (p for p in PEERS if p.name in checks):
        why = unavailable(peer, device)
        if not why and not checks[peer.name].get("equal"):
            why = f"not timed: {checks[peer.name].get('note', 'not equal to the snnbench neuron')}"
        if why:
            rows.append({**base, "impl": peer.name, "part": "layer", "mode": "fwd_bwd", "note": why})
            continue
        rows.extend(_impl_rows(peer, base, module, x, currents, device, timing))
        _derive(rows, point, ceiling["gbps"], peak)
        yield rows
    _derive(rows, point, ceiling["gbps"], peak)
    yield rows
    del module, x, currents
    release_memory(device)


# --------------------------------------------------------------------------------------------------
# Summary, table, run
# --------------------------------------------------------------------------------------------------

TARGET_SPEEDUP = 1.5  # issue 22: fwd+bwd at n >= 4,096 on an H100/H200, over the fastest peer


def _point_name(r: dict[str, Any]) -> str:
    size = {"linear": f"n={r.get('n')}", "conv": f"C={r.get('C')}", "neuron": f"N={r.get('N')}"}[r["shape"]]
    threads = f", {r['threads']} thread{'s' if r['threads'] != 1 else ''}" if r.get("threads") else ""
    return f"{r['shape']} T={r['T']} {size} {r['dtype']}{threads}"


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """snnbench's fwd+bwd against every timed peer at each point (ratio = peer ms / snnbench ms),
    the neuron's share of the layer, and the GPU target where the protocol's large n were measured."""
    ratios = {}
    for r in rows:
        if r["impl"] != "snnbench" or r["mode"] != "fwd_bwd" or not r.get("median_ms"):
            continue
        if r["part"] != ("neuron" if r["shape"] == "neuron" else "layer"):
            continue
        same = [
            o
            for o in rows
            if o.get("median_ms")
            and o["part"] == r["part"]
            and o["mode"] == "fwd_bwd"
            and _point_name(o) == _point_name(r)
        ]
        ratios[_point_name(r)] = {
            "snnbench_ms": r["median_ms"],
            "neuron_share": r.get("neuron_share"),
            **{f"{o['impl']}_over_snnbench": o["median_ms"] / r["median_ms"] for o in same if o["impl"] != "snnbench"},
        }
    out: dict[str, Any] = {"fwd_bwd_ratios": ratios}
    large = [r for r in rows if r["impl"] == "snnbench" and r["part"] == "layer" and r["mode"] == "fwd_bwd"]
    large = [r for r in large if r["shape"] == "linear" and r["n"] >= 4096 and r.get("speedup_vs_fastest_peer")]
    if large:
        out["target"] = {
            "speedup_vs_fastest_peer": TARGET_SPEEDUP,
            "points": len(large),
            "met": sum(r["speedup_vs_fastest_peer"] >= TARGET_SPEEDUP for r in large),
            "memory_met": sum(
                r.get("lowest_peer_peak_mb") is None or r["peak_mb"] <= r["lowest_peer_peak_mb"] for r in large
            ),
        }
    return out


COLUMNS = [
    ("impl", "impl", ""),
    ("shape", "shape", ""),
    ("T", "T", ""),
    ("n/C/N", "size", ","),
    ("dtype", "dtype", ""),
    ("thr", "threads", ""),
    ("part", "part", ""),
    ("mode", "mode", ""),
    *harness.TIMING_COLUMNS,
    ("peak MB", "peak_mb", ".0f"),
    ("neuron%", "neuron_share", "%"),
    ("%ceil", "frac_of_ceiling", "%"),
    ("%peak", "frac_of_peak", "%"),
    ("×fastest peer", "speedup_vs_fastest_peer", ".2f"),
]


def _checks(peers: list[Peer], device: str, console: Any) -> dict[str, dict[str, Any]]:
    """Every available peer checked against the snnbench neuron it claims to equal."""
    checks = {}
    for peer in peers:
        why = unavailable(peer, device)
        checks[peer.name] = {"impl": peer.name, "skipped": why} if why else check_peer(peer, device)
        shown = checks[peer.name].get("note") or why or "equal"
        say(console, f"check {peer.name}: {shown}")
    return checks


INTERLEAVED_ROUNDS = 7


def _interleaved(point: dict[str, Any], threads: Optional[int], device: str, checks) -> dict[str, Any]:
    """The neuron alone, fwd+bwd, every timed implementation once per round for
    :data:`INTERLEAVED_ROUNDS` rounds: on a shared machine whose load drifts over minutes, the
    harness's one-implementation-after-another timing favours whoever ran in a quiet minute; here
    every round sees the same load for all. Median and spread (p20, p80) per implementation."""
    _, x, _ = _layer_and_input(point, torch.float32, device)
    cur = x.detach().requires_grad_(True)
    calls = {}
    for peer in (p for p in PEERS if checks.get(p.name, {}).get("equal") and not unavailable(p, device)):
        step = peer.build(device, x.dtype)
        calls[peer.name] = _call(lambda step=step: step(cur), "fwd_bwd", [cur])
        calls[peer.name]()  # warm: first-call work stays out of the rounds
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(INTERLEAVED_ROUNDS):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            synchronize(device)
            times[name].append((time.perf_counter() - start) * 1e3)
    spread = {name: sorted(t) for name, t in times.items()}
    median = {name: t[len(t) // 2] for name, t in spread.items()}
    ours = median.get("snnbench")
    return {
        **{k: v for k, v in point.items() if k != "threads"},
        "threads": threads,
        "rounds": INTERLEAVED_ROUNDS,
        "median_ms": median,
        "p20_ms": {name: t[int(0.2 * (len(t) - 1))] for name, t in spread.items()},
        "p80_ms": {name: t[int(round(0.8 * (len(t) - 1)))] for name, t in spread.items()},
        "over_snnbench": {name: ms / ours for name, ms in median.items() if ours and name != "snnbench"},
    }


def _run_point(result: dict[str, Any], path, started: float, where: tuple, device: str, timing, card: str) -> None:
    """Measure one (point, dtype, threads), writing the JSON after each implementation."""
    point, dtype_name, threads = where
    point = {k: v for k, v in point.items() if k != "threads"}
    first = len(result["rows"])
    for rows in _measure_point(point, dtype_name, threads, device, timing, result["checks"], card):
        for r in rows:
            r["size"] = r.get("n") or r.get("C") or r.get("N")
        result["rows"][first:] = rows
        result["summary"] = summarize(result["rows"])
        result["elapsed_s"] = round(time.perf_counter() - started, 1)
        write_json(path, result)


@harness.bench_entry
def run_layer_bench(
    run: harness.BenchRun,
    *,
    figure: bool = True,
    budget_s: Optional[float] = None,
    impls: Optional[list[str]] = None,
) -> dict[str, Any]:
    """Check every peer (or those named in ``impls``), then time each point; write ``out/layer.json``
    after every implementation (and ``layer.png``, time vs n per library, when ``figure``). With
    ``budget_s`` no point starts after that many seconds (the JSON says which were left)."""
    device, console = run.device, run.console
    peers = [peer_named(name) for name in impls] if impls else list(PEERS)
    plan = PLANS["quick" if run.quick else device]
    threads_before = torch.get_num_threads()
    result = header(
        "layer",
        device,
        peers={p.name: version(p.package) for p in peers if not p.ours},
        plan={k: plan[k] for k in ("points", "dtypes")},
        input=f"x ~ N(0, {INPUT_STD}^2), PyTorch's default layer init; fwd_bwd = gradients of the layer's parameters "
        "(neuron rows: of its input currents)",
        rows=[],
    )
    result["timing"].update(plan["timing"])
    path = json_out_path(run.out, "layer.json")
    result["checks"] = _checks(peers, device, console)
    card = result["environment"].get("hardware", {}).get("name", device) or device
    started = time.perf_counter()
    try:
        for dtype_name in plan["dtypes"]:
            for point in plan["points"]:
                for threads in point.get("threads", [None]):
                    if budget_s is not None and time.perf_counter() - started > budget_s:
                        result.setdefault("left_by_budget", []).append({**point, "dtype": dtype_name})
                        break
                    if threads:
                        torch.set_num_threads(threads)
                    _run_point(result, path, started, (point, dtype_name, threads), device, plan["timing"], card)
                    if point["shape"] == "neuron" and device == "cpu":
                        result.setdefault("interleaved", []).append(
                            _interleaved(point, threads, device, result["checks"])
                        )
                        say(console, f"interleaved: {json.dumps(result['interleaved'][-1]['over_snnbench'])}")
                        write_json(path, result)
        write_json(path, result)
    finally:
        torch.set_num_threads(threads_before)
    render(result["rows"], COLUMNS, console, f"spiking layer vs SNN libraries on {card} ({device})")
    say(console, json.dumps(result.get("summary", {}), indent=1, default=str))
    if path is not None:
        if figure:
            from snnbench.bench.layer_figure import plot_layer

            say(console, f"wrote {plot_layer(result, path.with_suffix('.png'))}")
        say(console, f"wrote {path}")
    return result
