"""``snnbench bench ftbc``: fast layer-major FTBC against the official per-layer loop, same process.

VGG-16 in the QCFS layout with CIFAR-100 shapes (random weights whose QCFS thresholds are set from the
data, so that layers quantise and spike like trained ones), synthetic images, K = 3 batches of 200,
T = 32: the setting of docs/design.md §7, where the official loop took 5.23 s on an H200. Both paths start
from zero biases on the same batches; the JSON records both times, the speed-up, the largest bias
difference between them, an evaluation pass and an ANN forward for scale, and the statistics kernel's
bytes, bandwidth and fraction of a copy's bandwidth per layer.

Without a GPU (or with ``quick``) everything shrinks to a narrow VGG-16 and a few images, so that the
command runs in seconds; the JSON says so. This module must not import ``snnbench.config``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from snnbench import interrupts
from snnbench.bench import harness
from snnbench.bench.harness import copy_ceiling, header, measure, render, with_bandwidth, write_json
from snnbench.bench.timing import gbps, json_out_path, release_memory, synchronize
from snnbench.user_text import say

TARGET_SPEEDUP = 10.0
OFFICIAL_LOOP_H200_S = 5.23  # docs/design.md §7: the FTBC repository's loop, same setting, H200

FULL = {"width": 64, "hidden": 4096, "batch_size": 200, "batches": 3, "fast_repeats": 3, "reference_repeats": 1}
SMALL = {"width": 4, "hidden": 32, "batch_size": 6, "batches": 2, "fast_repeats": 2, "reference_repeats": 1}
QUICK = {"width": 2, "hidden": 16, "batch_size": 4, "batches": 1, "fast_repeats": 1, "reference_repeats": 1}
QUICK_STEPS = 4


def _timed(fn: Callable[[], Any], device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def _build(sizes: dict[str, int], device: str, seed: int = 0):
    from snnbench.conversion.convert import convert
    from snnbench.conversion.thresholds import set_thresholds_from_data
    from snnbench.models.vgg import vgg16

    torch.manual_seed(seed)
    ann = vgg16(levels=4, num_classes=100, width=sizes["width"], hidden=sizes["hidden"]).to(device).eval()
    generator = torch.Generator(device="cpu").manual_seed(seed)
    batches = [
        torch.randn(sizes["batch_size"], 3, 32, 32, generator=generator).to(device) for _ in range(sizes["batches"])
    ]
    set_thresholds_from_data(ann, batches[0], quantile=0.99)
    return ann, convert(ann), batches


SPLIT_MODES = {"ftbc_stats_kernel": None, "ftbc_stats_kernel_split": True, "ftbc_stats_kernel_nosplit": False}


def _graph_ms(fn: Callable[[], Any], device: str) -> Optional[float]:
    """GPU time of ``fn`` alone (CUDA-graph replay), or None off a card or when it cannot be captured."""
    if device != "cuda":
        return None
    from snnbench.bench.timing import graph_ms

    try:
        return graph_ms(fn, target_ms=10.0)
    except Exception as err:  # noqa: BLE001 - not capturable: the eager time stands alone
        interrupts.raise_if_interrupt(err)
        print(f"graph timing failed: {type(err).__name__}: {err}")
        synchronize(device)
        return None


def _kernel_rows(
    ann, snn, x: torch.Tensor, steps: int, device: str, timing: dict[str, float], backend: str
) -> list[dict[str, Any]]:
    """The statistics kernel alone on every layer's real inputs (captured in one SNN forward): the tiling
    the size heuristic picks (eager time, what calibration calls see, and GPU time), and with the Triton
    ``backend`` the forced split and no-split tilings beside it (GPU time), so that one run on a card
    measures all three. ``backend``: "triton" on a card (or under the interpreter), else "torch"."""
    from snnbench.conversion.convert import simulate
    from snnbench.conversion.layers import ann_activations, before_each_layer, layer_pairs, unfold
    from snnbench.kernels.ftbc import ftbc_stats_bytes, ftbc_stats_forward, ftbc_stats_plan, ftbc_stats_reference

    pairs = layer_pairs(ann, snn)
    acts = ann_activations(ann, pairs, x)
    triton_path = backend == "triton"
    rows: list[dict[str, Any]] = []

    def measure_layer(pair, folded: torch.Tensor) -> None:
        currents = unfold(folded, steps)
        a = acts.pop(pair.name)
        thresh = pair.spiking.neuron.thresh
        # The kernel against its PyTorch oracle on this layer's real inputs (same on a CPU).
        oracle = ftbc_stats_reference(currents, a, thresh)
        scale = float(oracle.abs().max().clamp_min(1.0))
        seen: dict[Any, str] = {}
        for impl, split in SPLIT_MODES.items():
            if split is not None and not triton_path:
                continue  # the PyTorch reference has no tiling to force
            run = lambda split=split: ftbc_stats_forward(currents, a, thresh, backend=backend, split=split)  # noqa: E731
            diff = float((run() - oracle).abs().max()) / scale
            synchronize(device)
            row: dict[str, Any] = {"impl": impl, "layer": pair.name, "shape": list(currents.shape), "T": steps}
            n_bytes = ftbc_stats_bytes(currents, a)
            if triton_path:
                plan = ftbc_stats_plan(currents, split)
                tiled = ftbc_stats_bytes(currents, a, plan)
                row.update(
                    split=plan.split,
                    block_c=plan.block_c,
                    block_n=plan.block_n,
                    programs=plan.programs,
                    slots=plan.slots,
                    floor_bytes=n_bytes,
                    partial_bytes=tiled - n_bytes,
                )
                n_bytes = tiled
            if split is None:
                row.update(measure(run, device, **timing))
            else:
                row.update(median_ms=None, p20_ms=None, p80_ms=None, note="forced tiling: GPU time only (graph_ms)")
            key = (row.get("block_c"), row.get("block_n"))
            if key in seen:
                row["note"] = f"same tiling as {seen[key]}"
            else:
                seen[key] = impl
                gpu = _graph_ms(run, device)
                if gpu is not None:
                    row["graph_ms"] = gpu
                    if row["median_ms"]:
                        row["host_overhead_ms"] = row["median_ms"] - gpu
            row["max_rel_diff_vs_reference"] = diff
            row["bytes"] = n_bytes
            rows.append(row)

    with torch.no_grad(), before_each_layer(pairs, measure_layer):
        simulate(snn, x, steps)
    return rows


def _mean_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    diffs = [(a[k].float() - b[k].float()).abs().flatten() for k in a if a[k].numel()]
    return float(torch.cat(diffs).mean()) if diffs else 0.0


def _render(result: dict[str, Any], console: Any) -> None:
    k = result["kernel"]
    rows = [
        {"measure": "fast layer-major FTBC", "value": f"{result['fast_s']:.3f} s"},
        {"measure": "official per-layer loop", "value": f"{result['reference_s']:.3f} s"},
        {"measure": "speed-up", "value": f"{result['speedup']:.1f}× (target ≥ {TARGET_SPEEDUP:g}×)"},
        {
            "measure": "max |Δbias| fast vs official",
            "value": f"{result['max_abs_bias_diff']:.2e} (max |bias| {result['max_abs_bias']:.3g})",
        },
        {"measure": "one evaluation pass (T steps, 1 batch)", "value": f"{result['eval_pass_s']:.3f} s"},
        {"measure": "fast calibration / evaluation passes", "value": f"{result['fast_cost_in_eval_passes']:.1f}"},
        {
            "measure": "kernel: bytes, GB/s, fraction of copy",
            "value": f"{k['bytes'] / 1e9:.2f} GB, {k['gbps']:.0f} GB/s, {k['frac_of_ceiling']:.2f}",
        },
    ]
    if k.get("graph_ms"):
        rows.append(
            {
                "measure": "kernel GPU time alone (graph): ms, fraction of copy",
                "value": f"{k['graph_ms']:.2f} ms, {k['graph_frac_of_ceiling']:.2f}",
            }
        )
    title = f"FTBC calibration, VGG-16 CIFAR-100 shapes, T={result['config']['T']} on {result['environment']['hardware'].get('name', result['device'])}"
    render(rows, [("measure", "measure", ""), ("value", "value", "")], console, title, timed_key="value")


@harness.bench_entry
def run_ftbc_bench(run: harness.BenchRun, *, steps: Optional[int] = None) -> dict[str, Any]:
    """Time fast FTBC and the official loop on the same batches; write ``out/ftbc.json`` if ``out``.
    ``steps`` (T) defaults to 32, or 4 with ``quick``; one given is always used."""
    device, console = run.device, run.console
    sizes, steps, timing, note = _settings(device, run.quick, steps)
    harness.refuse_beyond_memory(
        activation_bytes(sizes, steps), device, f"--steps {steps} (batch {sizes['batch_size']}, width {sizes['width']})"
    )
    if note:
        say(console, note)
    alpha = 0.4

    ann, snn, batches = _build(sizes, device)
    fast_times, fast_biases, reference_times, reference_biases = _time_calibrations(
        ann, snn, batches, steps, alpha, sizes, device
    )
    eval_s, ann_times = _eval_and_ann_times(ann, snn, batches[0], fast_biases, steps, device, timing)
    config = _config(ann, snn, sizes, steps, alpha)
    calibration = _calibration_fields(
        steps, fast_times, fast_biases, reference_times, reference_biases, eval_s, ann_times
    )
    result: dict[str, Any] = header("ftbc", device, note=note, config=config, **calibration)
    result["timing"].update(timing)
    write_json(json_out_path(run.out, "ftbc.json"), result)

    _add_kernel_rows(result, ann, snn, batches[0], steps, device, timing)
    _write_and_render(result, run.out, console)
    return result


def _eval_and_ann_times(ann, snn, x: torch.Tensor, fast_biases, steps: int, device: str, timing: dict[str, int]):
    """``(eval_s, ann_times)``: one evaluation pass of the SNN calibrated by fast FTBC (median of three
    after a warm-up) and the ANN forward's spread, both on ``x``, for scale."""
    from snnbench.conversion.convert import simulate
    from snnbench.conversion.layers import restore_biases

    restore_biases(snn, fast_biases)
    eval_pass = lambda: simulate(snn, x, steps)  # noqa: E731
    eval_pass()
    eval_s = statistics.median(_timed(eval_pass, device) for _ in range(3))
    with torch.no_grad():
        ann_times = measure(lambda: ann(x), device, **timing)
    return eval_s, ann_times


def _config(ann, snn, sizes: dict[str, Any], steps: int, alpha: float) -> dict[str, Any]:
    """The setting the JSON records: model, shapes, T, alpha and the sizes of this run."""
    from snnbench.conversion.layers import layer_pairs

    return {
        "model": "vgg16",
        "num_classes": 100,
        "image": [3, 32, 32],
        "T": steps,
        "alpha": alpha,
        "levels": 4,
        "if_layers": len(layer_pairs(ann, snn)),
        **{k: sizes[k] for k in ("width", "hidden", "batch_size", "batches")},
    }


def _calibration_fields(
    steps: int,
    fast_times: list[float],
    fast_biases: dict[str, torch.Tensor],
    reference_times: list[float],
    reference_biases: dict[str, torch.Tensor],
    eval_s: float,
    ann_times: dict[str, float],
) -> dict[str, Any]:
    """The calibration's part of the JSON: both times, the speed-up, the bias differences, the costs in
    evaluation passes and the first rows (written before the kernel rows are measured)."""
    from snnbench.conversion.layers import max_bias_difference

    fast_s = statistics.median(fast_times)
    reference_s = statistics.median(reference_times)
    return {
        "fast_s": fast_s,
        "fast_s_runs": fast_times,
        "reference_s": reference_s,
        "reference_s_runs": reference_times,
        "speedup": reference_s / fast_s,
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": (reference_s / fast_s) >= TARGET_SPEEDUP,
        "official_loop_h200_s": OFFICIAL_LOOP_H200_S,
        "max_abs_bias_diff": max_bias_difference(fast_biases, reference_biases),
        "mean_abs_bias_diff": _mean_difference(fast_biases, reference_biases),
        "max_abs_bias": max(float(b.abs().max()) for b in fast_biases.values() if b.numel()),
        "eval_pass_s": eval_s,
        "ann_forward_ms": ann_times["median_ms"],
        "fast_cost_in_eval_passes": fast_s / eval_s,
        "reference_cost_in_eval_passes": reference_s / eval_s,
        "complete": False,  # until the kernel rows are in: a run cut off there keeps the calibration times
        "bytes_note": "kernel bytes = x[T,B,C,...] and a[B,C,...] read once (floor_bytes) + the second stage's "
        "partial sums [T, slots, C] written and read and [T, C] written (partial_bytes); "
        "copy bytes = read + write",
        "rows": [
            {"impl": "ftbc_fast", "T": steps, "calibrate_s": fast_s, "speedup": reference_s / fast_s},
            {"impl": "ftbc_reference", "T": steps, "calibrate_s": reference_s},
            {"impl": "eval_pass", "T": steps, "s": eval_s},
            {"impl": "ann_forward", **ann_times},
        ],
    }


def _add_kernel_rows(result: dict[str, Any], ann, snn, x: torch.Tensor, steps: int, device: str, timing) -> None:
    """Measure the statistics kernel on every IF layer and complete ``result`` with its rows, its total
    and the copy ceiling."""
    kernel_rows, copy = _kernel_rows_with_ceiling(ann, snn, x, steps, device, timing)
    result.update(
        {
            "kernel_max_rel_diff_vs_reference": max(r["max_rel_diff_vs_reference"] for r in kernel_rows),
            "kernel_tiling_note": "ftbc_stats_kernel: the tiling of the size heuristic (calibration's); _split / "
            "_nosplit: forced, GPU time only; bytes include the partial sums of the tiling",
            "kernel": _kernel_total(kernel_rows, copy, result["config"]["batches"], result["fast_s"]),
            "copy": copy,
            "complete": True,
        }
    )
    result["rows"] += [
        {"impl": "copy", **{k: copy[k] for k in ("median_ms", "p20_ms", "p80_ms", "bytes", "gbps")}},
        *kernel_rows,
    ]


# Feature-map elements of one 32×32 image through VGG-16 at width 64 (the 13 convolutions' outputs).
VGG16_CIFAR_ACTIVATIONS = 64 * 1024 * 2 + 128 * 256 * 2 + 256 * 64 * 3 + 512 * 16 * 3 + 512 * 4 * 3


def activation_bytes(sizes: dict[str, Any], steps: int) -> int:
    """fp32 bytes of one time-folded pass over a calibration batch: every layer's spikes for T steps
    (a floor: the calibration holds more beside them)."""
    return 4 * steps * sizes["batch_size"] * VGG16_CIFAR_ACTIVATIONS * sizes["width"] // 64


def _settings(device: str, quick: bool, steps: Optional[int]) -> tuple[dict[str, Any], int, dict[str, int], str]:
    """(sizes, T, timing, note) for this device: reduced sizes for a quick run or without a GPU; a
    quick run's T = 4 only where no T was given."""
    small = quick or device == "cpu"
    sizes = dict(QUICK if quick else SMALL if small else FULL)
    if steps is None:
        steps = QUICK_STEPS if quick else 32
    timing = {"warmup_ms": 2, "rep_ms": 10} if small else {"warmup_ms": 25, "rep_ms": 100}
    note = ""
    if small:
        note = "reduced sizes (quick or no GPU): a narrow VGG-16 and a few images; not the setting of docs/design.md §7"
        if device == "cpu":
            note += "; on the CPU the statistics kernel is its PyTorch reference"
    return sizes, steps, timing, note


def _time_calibrations(ann, snn, batches, steps: int, alpha: float, sizes: dict[str, Any], device: str):
    """Seconds per run of the fast FTBC and of the official loop, each from zero biases, and the biases
    each leaves: ``(fast_times, fast_biases, reference_times, reference_biases)``."""
    from snnbench.conversion.ftbc import ftbc_calibrate_fast
    from snnbench.conversion.ftbc_reference import ftbc_calibrate_reference
    from snnbench.conversion.layers import restore_biases, snapshot_biases

    zero = snapshot_biases(snn)
    fast = lambda: ftbc_calibrate_fast(ann, snn, batches, steps, alpha)  # noqa: E731
    reference = lambda: ftbc_calibrate_reference(ann, snn, batches, steps, alpha)  # noqa: E731

    fast()  # warm-up: Triton compilation, cuDNN algorithm choice
    fast_times = []
    for _ in range(sizes["fast_repeats"]):
        restore_biases(snn, zero)
        fast_times.append(_timed(fast, device))
    fast_biases = snapshot_biases(snn)
    reference_times = []
    for _ in range(sizes["reference_repeats"]):
        restore_biases(snn, zero)
        reference_times.append(_timed(reference, device))
    reference_biases = snapshot_biases(snn)
    release_memory(device)
    return fast_times, fast_biases, reference_times, reference_biases


def _kernel_rows_with_ceiling(ann, snn, x, steps: int, device: str, timing: dict[str, int]):
    """The statistics kernel's rows per IF layer with their bandwidth (eager and GPU time) against the
    copy ceiling measured at the largest layer's bytes, and that ceiling: ``(rows, copy)``."""
    kernel_rows = _kernel_rows(ann, snn, x, steps, device, timing, "triton" if device == "cuda" else "torch")
    release_memory(device)
    largest = max(kernel_rows, key=lambda r: r.get("floor_bytes", r["bytes"]))
    floor = largest.get("floor_bytes", largest["bytes"])
    copy = copy_ceiling(floor // 8, torch.float32, device, **timing)  # read+write = the floor bytes
    for row in kernel_rows:
        with_bandwidth(row, row["bytes"], copy["gbps"])
        if row.get("graph_ms"):
            with_bandwidth(row, row["bytes"], copy["gbps"], ms_key="graph_ms", prefix="graph_")
    return kernel_rows, copy


def _kernel_total(kernel_rows: list[dict[str, Any]], copy: dict[str, Any], batches: int, fast_s: float) -> dict:
    """The statistics kernel (the tiling calibration uses) over all IF layers: time, bytes, bandwidth
    and its share of fast FTBC; with the GPU time alone where measured."""
    auto = [r for r in kernel_rows if r["impl"] == "ftbc_stats_kernel"]
    kernel_bytes = sum(r["bytes"] for r in auto)
    kernel_ms = sum(r["median_ms"] for r in auto)
    total = {
        "median_ms": kernel_ms,
        "bytes": kernel_bytes,
        "gbps": gbps(kernel_bytes, kernel_ms),
        "frac_of_ceiling": gbps(kernel_bytes, kernel_ms) / copy["gbps"],
        "share_of_fast_s": kernel_ms * 1e-3 * batches / fast_s,
    }
    if all(r.get("graph_ms") for r in auto):
        graph = sum(r["graph_ms"] for r in auto)
        total.update(
            graph_ms=graph,
            graph_gbps=gbps(kernel_bytes, graph),
            graph_frac_of_ceiling=gbps(kernel_bytes, graph) / copy["gbps"],
        )
    return total


def _write_and_render(result: dict[str, Any], out: Optional[Path], console: Any) -> None:
    path = json_out_path(out, "ftbc.json")
    if path is not None:
        write_json(path, result)
        result["path"] = str(path)
    _render(result, console)
    if out is not None:
        say(console, f"wrote {result['path']}")
