"""``snnbench bench sparse``: the sparse LIF backward (SparseProp, LocalZO) against dense BPTT.

Workload (docs/design.md §5, sizes of §7): T = 100, B = 256, 700 input channels, hidden ∈ {200, 400, 1000, 4000}, β = exp(−1 ms / 10 ms),
θ = 1. Two kinds of rows:

- ``layer``: hidden layer 2 alone, Linear 700→H + LIF, in the scope of the published SparseProp
  speed-ups. Its input is the spike train of a first LIF layer (700→700) fed with data-like trains
  (``input``: ``bernoulli``; ``latency``, one spike per input as in latency-coded images;
  ``events``, bursty event-camera / audio-like trains; see :func:`.sparse_rows.input_spikes`). Forward = input
  trace + matmul + scan (+ recording); backward from a given ∂L/∂s to ∂L/∂W and the input gradient —
  dense: everywhere; sparse: at the first layer's active entries, as in the training stack. Swept over
  the active fraction at ``sweep_hidden``. ``--preset nmnist`` runs the published N-MNIST-shaped
  layer (700→200, T = 300, B = 256, event-like input) alone.
- ``step``: the two-layer network with a 20-way leaky readout and the training loss; backward includes
  the second layer's input gradient at the first layer's active entries.

Implementations: ``dense_pytorch`` (autograd through the PyTorch time loop, fast-sigmoid surrogate),
``dense_fused`` (the same LIF — ``subtract`` reset, detached — through snnbench.kernels.neuron's
fused forward and reverse-time backward; what the ``surrogate`` training method runs on CUDA),
``sparseprop`` and ``localzo`` (kernels/sparse_backward.py). LocalZO's δ is calibrated per size so that about
``target_active`` of the entries are active; SparseProp gets the matched band B_th = δ·E|z|. A sweep of
δ at one size gives other active fractions.

Every row is in the shared bench vocabulary (:mod:`snnbench.bench.harness`): ``median_ms``,
``p20_ms``, ``p80_ms`` of the backward (also ``bwd_ms``), ``fwd_ms`` (with ``fwd_p20_ms`` /
``fwd_p80_ms``), ``step_ms``, the speed-up against ``dense_pytorch`` of the same kind and size,
``bytes`` (the DRAM bytes the row's backward must move at least), ``gbps`` and ``frac_of_ceiling``
(of the copy bandwidth measured in the same process). Sparse layer rows carry their backward
``design`` (the input gradient's algorithm, :data:`kernels.sparse_grad.INPUT_GRAD_DESIGNS`; the
weight gradient is the same column-gathered kernel in all), the bytes the design gathers through the
cache (``gathered_bytes``, split into ``dw_`` / ``dx_``; ``gathered_gbps``,
``gathered_frac_of_ceiling``), and the largest relative error of dW and dx against the dense masked
gradients for the same active set.

By job: the sizes are the ``sparse`` section of snnbench/sweeps/kernels.yaml (:mod:`.sweep`, tiers
``cpu``, ``quick``, ``nmnist``), the rows and their workload in :mod:`.sparse_rows`, the on-device
checks in :mod:`.sparse_checks`; this module runs the stages, summarises and writes the JSON.
"""

from __future__ import annotations

import json
import time
from typing import Any, Optional, Sequence

import torch

from snnbench.bench import harness
from snnbench.bench.harness import copy_ceiling, header, render, write_json
from snnbench.bench.timing import json_out_path, release_memory
from snnbench.bench.sparse_checks import check_against_reference
from snnbench.bench.sparse_rows import (
    BETA,
    INPUT_KINDS,
    SURROGATE_WIDTH,
    calibrate_delta,
    layer_inputs,
    layer_rows,
    random_weights,
    step_rows,
)
from snnbench.bench.sweep import load_section, tier_of
from snnbench.errors import BenchInputError
from snnbench.kernels.sparse_backward import INPUT_GRAD_DESIGNS
from snnbench.user_text import say


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline numbers: one-layer backward speed-ups near the target active fraction."""
    out: dict[str, Any] = {}
    for r in rows:
        if r["kind"] == "layer" and r["impl"] in ("sparseprop", "localzo", "localzo_fp16") and "bwd_speedup" in r:
            key = (
                f"layer2_H{r['hidden']}_{r.get('input', 'bernoulli')}_{r['impl']}_{r.get('design', 'pairs')}"
                f"_at_{r.get('target_active')}"
            )
            out[key] = {
                "bwd_speedup": round(r["bwd_speedup"], 2),
                "active_fraction": round(r["active_fraction"], 5),
                "gathered_frac_of_ceiling": r.get("gathered_frac_of_ceiling"),
            }
        if r["kind"] == "step" and "bwd_speedup" in r and r["impl"] != "dense_pytorch":
            out[f"step_H{r['hidden']}_{r['impl']}"] = {
                "bwd_speedup": round(r["bwd_speedup"], 2),
                "step_speedup": round(r["step_speedup"], 2),
                "active_fraction": round(r["active_fraction"], 5),
            }
    return out


COLUMNS = [
    ("kind", "kind", ""),
    ("input", "input", ""),
    ("H", "hidden", ""),
    ("impl", "impl", ""),
    ("design", "design", ""),
    ("trace", "trace_dtype", ""),
    ("active", "active_fraction", ".3%"),
    ("fwd ms", "fwd_ms", ".3f"),
    *harness.timing_columns(".3f", median="bwd ms"),
    ("bwd ×", "bwd_speedup", ".1f"),
    ("step ×", "step_speedup", ".2f"),
    ("GB/s", "gbps", ".0f"),
    ("of copy", "frac_of_ceiling", ".1%"),
    ("gathered GB/s", "gathered_gbps", ".0f"),
    ("rel err dW", "max_rel_err", ".1e"),
    ("rel err dx", "max_rel_err_dx", ".1e"),
]


def _stages(H: int, cfg: dict[str, Any], device: str, timing: dict[str, Any], console: Any) -> list:
    """``(name, rows_fn)`` for hidden size ``H``: the layer rows per input kind (δ set for the target
    activity, plus the δ sweep at ``sweep_hidden``) and the training-step rows."""
    T, B, N = cfg["timesteps"], cfg["batch"], cfg["inputs"]
    stages = []
    every_kind = cfg.get("kinds_hidden") is None or H in cfg["kinds_hidden"]
    for kind in cfg["inputs_kinds"] if every_kind else cfg["inputs_kinds"][:1]:
        current = layer_inputs(kind, H, cfg, device)[3]
        delta, fraction = calibrate_delta(current, cfg["target_active"])
        del current
        say(console, f"H={H}, {kind} input: δ={delta:.4g} gives {100 * fraction:.3f}% active in layer 2")
        deltas = [(cfg["target_active"], delta)]
        if H == cfg["sweep_hidden"]:
            deltas += [(t, delta * t / cfg["target_active"]) for t in cfg["sweep_targets"]]
        stages.append((f"layer/{kind}", lambda k=kind, d=deltas: layer_rows(H, cfg, device, timing, d, True, k)))
    if cfg["step"]:
        gen = torch.Generator().manual_seed(H)
        x = (torch.rand(T, B, N, generator=gen) < cfg["input_rate"]).float().to(device)
        current = (x.reshape(T * B, N) @ random_weights(N, H, cfg["input_rate"], gen, device)).view(T, B, H)
        delta, fraction = calibrate_delta(current, cfg["target_active"])
        del x, current
        stages.append(("step", lambda d=delta: step_rows(H, cfg, device, timing, d, cfg["target_active"])))
    return stages


# The keys the ``sparse`` section of snnbench/sweeps/kernels.yaml defines, and its tiers.
SWEEP_KEYS = (
    "timesteps",
    "batch",
    "inputs",
    "outputs",
    "hidden",
    "target_active",
    "sweep_hidden",
    "sweep_targets",
    "input_rate",
    "inputs_kinds",
    "kinds_hidden",
    "step",
    "timing",
)
TIERS = ("cpu", "quick", "nmnist")


def _settings(
    device: str,
    quick: bool,
    preset: Optional[str],
    hidden: Optional[Sequence[int]],
    designs: Optional[Sequence[str]],
    inputs: Optional[Sequence[str]],
    step: Optional[bool] = None,
) -> dict[str, Any]:
    """The sweep for this call, every option checked (a bad one is a BenchInputError: exit 2)."""
    if preset not in (None, "nmnist"):
        raise BenchInputError(f"--preset {preset}: expected nmnist or nothing")
    tier = "nmnist" if preset == "nmnist" else "quick" if quick else "cpu" if device == "cpu" else None
    cfg = tier_of(load_section("sparse", SWEEP_KEYS, TIERS), tier, TIERS)
    if hidden:
        bad = [h for h in hidden if int(h) != h or h < 1]
        if bad:
            raise BenchInputError(f"--hidden: sizes must be positive integers, got {bad}")
        cfg["hidden"] = [int(h) for h in hidden]
    cfg["designs"] = list(designs or INPUT_GRAD_DESIGNS)
    for name, chosen, allowed in (("design", cfg["designs"], INPUT_GRAD_DESIGNS), ("input", inputs or [], INPUT_KINDS)):
        unknown = [c for c in chosen if c not in allowed]
        if unknown:
            raise BenchInputError(f"--{name} must be among {', '.join(allowed)}, got {', '.join(map(str, unknown))}")
    if inputs:
        cfg["inputs_kinds"] = list(inputs)
    if step is not None:
        cfg["step"] = bool(step)
    return cfg


def working_set_bytes(cfg: dict[str, Any], hidden: int) -> int:
    """fp32 bytes a layer (and step) row of ``hidden`` neurons holds at once, at least: the input and
    its gradient [T, B, N], six [T, B, H] traces (current, membrane, spikes and their gradients), the
    weights and their gradient [N, H] and the second layer [H, H]."""
    tb, n = cfg["timesteps"] * cfg["batch"], cfg["inputs"]
    return 4 * (2 * tb * n + 6 * tb * hidden + 2 * n * hidden + hidden * hidden)


@harness.bench_entry
def run_sparse_bench(
    run: harness.BenchRun,
    *,
    hidden: Optional[Sequence[int]] = None,
    preset: Optional[str] = None,
    designs: Optional[Sequence[str]] = None,
    inputs: Optional[Sequence[str]] = None,
    step: Optional[bool] = None,
) -> dict[str, Any]:
    """Run the sweep; write ``out/sparse.json`` (``sparse_<preset>.json``) atomically after every
    stage (a cut-off run keeps its rows). ``designs``: the input-gradient designs to compare (all by
    default); ``inputs``: the data-like input kinds (all by default); ``step=False`` skips the
    two-layer training-step rows."""
    device, console = run.device, run.console
    cfg = _settings(device, run.quick, preset, hidden, designs, inputs, step)
    largest = max(cfg["hidden"] + [cfg["sweep_hidden"]])
    harness.refuse_beyond_memory(
        working_set_bytes(cfg, largest), device, f"--hidden {largest} (T = {cfg['timesteps']}, B = {cfg['batch']})"
    )
    timing = dict(cfg["timing"])
    note = ""
    if device == "cpu":
        note = "no GPU: small sizes; the sparse rows time the PyTorch reference, not the Triton kernels"
        say(console, note)
    ceiling = copy_ceiling(1 << (26 if device == "cuda" else 22), torch.float32, device, **timing)
    cfg["ceiling_gbps"] = ceiling["gbps"]
    result = header(
        "sparse",
        device,
        note=note,
        config={k: v for k, v in cfg.items() if k not in ("timing", "ceiling_gbps")}
        | {"beta": BETA, "theta": 1.0, "surrogate_width": SURROGATE_WIDTH},
        ceiling=ceiling,
        bytes_note=BYTES_NOTE,
        rows=[],
    )
    result["timing"].update(timing)
    path = json_out_path(run.out, f"sparse_{preset}.json" if preset else "sparse.json")
    started = time.perf_counter()
    if device == "cuda":
        result["correctness"] = check_against_reference(device)
        say(console, json.dumps(result["correctness"], indent=1))

    for H in cfg["hidden"]:
        for stage, fn in _stages(H, cfg, device, timing, console):
            try:
                result["rows"].extend(fn())
            except torch.cuda.OutOfMemoryError as err:  # the dense baseline at the largest size
                result.setdefault("skipped", []).append({"hidden": H, "stage": stage, "error": str(err)[:200]})
            release_memory(device)
            result["summary"] = summarize(result["rows"])
            result["elapsed_s"] = round(time.perf_counter() - started, 1)
            write_json(path, result)
    title = f"sparse backward on {result['environment']['hardware'].get('name', device)} ({device})"
    render(result["rows"], COLUMNS, console, title)
    say(console, json.dumps(result["summary"], indent=2, default=str))
    if path is not None:
        say(console, f"wrote {path}")
    return result


BYTES_NOTE = (
    "bytes: DRAM bytes the row's backward must move at least (each tensor once; sparse rows: the design's "
    "model, kernels.sparse_grad.backward_bytes; dense rows: x, ∂L/∂s, ∂L/∂I, dx, dW); gbps = bytes / median "
    "backward time; frac_of_ceiling = gbps / the copy's gbps measured in the same process. gathered_bytes: "
    "what the kernels load through the cache, one trace row slice (dW) and one W row slice or W[i, j] per "
    "pair (dx) per entry, mostly L2 hits; gathered_gbps = gathered_bytes / median backward time."
)
