"""``snnbench bench convert``: end-to-end evaluation throughput of converted SNNs against the peers.

The wall time of a conversion study is spent evaluating SNNs at many T on the test set. For each
model and T this times one evaluation of a batch (the image fed at every step, logits summed over
time), in one process:

``snnbench``      the converted network, time folded into the batch: each conv/BN/linear runs once
                  over all T·B images, each IF layer runs the fused Triton scan (the PyTorch reference
                  without a GPU);
``official_loop`` what the QCFS / FTBC code runs: the whole network called once per step, every IF
                  layer a stateful module that adds its input to a membrane, fires θ and subtracts θ
                  (written here from that description: soft reset, v₀ = θ/2);
``spikingjelly``  SpikingJelly's multi-step ``IFNode`` (soft reset, its fastest backend of cupy /
                  triton / torch) in the same folded network, when spikingjelly is importable.

Options of the snnbench path, each with its accuracy delta against the plain fp32 run (agreement of
the predicted classes and the largest logit difference): ``bf16`` (convolutions and linears under
bf16 autocast, fp32 accumulation: spikes 0/θ lose only θ's rounding, the weights are rounded),
``channels_last`` and ``cuda_graph`` (the whole evaluation replayed from one CUDA graph; exact).

Every row has median/p20/p80 ms, images/s, image-steps/s, the dense FLOPs of the work (2·MACs of
every conv and linear per image-step) and, on a card whose peak is known, the fraction of its dense
bf16 tensor-core rate. Weights are random with thresholds set from the data (so layers spike like
trained ones); images are random: the numbers are about speed, not accuracy.
"""

from __future__ import annotations

import copy
import inspect
import time
import traceback
from typing import Any, Callable, Optional

import torch
from torch import nn

from snnbench import interrupts
from snnbench.bench import harness
from snnbench.bench.harness import (
    header,
    json_out_path,
    measure,
    render,
    synchronize,
    with_flops,
    write_json,
)
from snnbench.bench.timing import release_memory
from snnbench.errors import BenchInputError
from snnbench.models.hooks import forward_hooks
from snnbench.user_text import say

# (model, factory parameters, image shape, classes, batch, T values, time chunk of the snnbench path)
FULL = [
    ("vgg16", {}, (3, 32, 32), 100, 200, [8, 32, 64], None),
    ("resnet20", {"width": 16}, (3, 32, 32), 100, 200, [8, 32, 64], None),
    ("resnet34", {"stem": "imagenet"}, (3, 224, 224), 1000, 50, [32], 8),
]
SMALL = [
    ("vgg16", {"width": 4, "hidden": 32}, (3, 32, 32), 100, 8, [4, 8], None),
    ("resnet20", {"width": 4}, (3, 32, 32), 100, 8, [4, 8], None),
    ("resnet34", {"stem": "imagenet", "width": 4}, (3, 64, 64), 1000, 4, [8], 4),
]
QUICK = [
    ("vgg16", {"width": 2, "hidden": 16}, (3, 32, 32), 100, 2, [2], None),
    ("resnet20", {"width": 2}, (3, 32, 32), 100, 2, [2], None),
]
OPTIONS = ("bf16", "channels_last", "cuda_graph")
# Dense bf16 tensor-core peak (FLOP/s) of cards by name, from their data sheets (SXM parts).
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12}
TARGETS = {"speedup_vs_official": 3.0, "speedup_vs_spikingjelly": 1.5}  # VGG-16, T = 32


def peak_flops(card: str) -> Optional[float]:
    return next((v for k, v in PEAK_BF16.items() if k in card), None)


# --------------------------------------------------------------------------------------------------
# Models


def build(name: str, params: dict[str, Any], shape: tuple[int, ...], classes: int, batch: int, device: str):
    """(ANN, converted SNN, images) with thresholds set from the data."""
    from snnbench.conversion.convert import convert
    from snnbench.conversion.thresholds import set_thresholds_from_data
    from snnbench.models.registry import build_model

    torch.manual_seed(0)
    ann = build_model(name, levels=4, num_classes=classes, **params).to(device).eval()
    x = torch.randn((batch,) + tuple(shape), generator=torch.Generator().manual_seed(1)).to(device)
    set_thresholds_from_data(ann, x, quantile=0.99)
    return ann, convert(ann), x


def dense_flops(ann: nn.Module, x: torch.Tensor) -> float:
    """2·MACs of every conv and linear for one image (one step of the SNN)."""
    total = [0.0]

    def count(module: nn.Module, inputs, output) -> None:
        per_image = output[0].numel()
        if isinstance(module, nn.Conv2d):
            k = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total[0] += 2.0 * per_image * k
        else:
            total[0] += 2.0 * per_image * module.in_features

    with forward_hooks([m for m in ann.modules() if isinstance(m, (nn.Conv2d, nn.Linear))], count), torch.no_grad():
        ann(x[:1])
    return total[0]


class StepIF(nn.Module):
    """The official loop's IF neuron: state across calls, one time step per call."""

    def __init__(self, thresh: torch.Tensor) -> None:
        super().__init__()
        self.thresh = thresh.detach().clone()
        self.v: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.v is None:
            self.v = torch.full_like(x, 0.0) + self.thresh / 2
        self.v = self.v + x
        spike = (self.v >= self.thresh).to(x.dtype) * self.thresh
        self.v = self.v - spike
        return spike


def _replace_qcfs(ann: nn.Module, make: Callable[[torch.Tensor], nn.Module]) -> nn.Module:
    from snnbench.models.qcfs import QCFS

    net = copy.deepcopy(ann).eval()
    targets = [(name, m) for name, m in net.named_modules() if isinstance(m, QCFS)]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, child, make(module.thresh.detach()))
    return net


def official_loop(ann: nn.Module) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """Per-step logits [T, B, classes], the whole network per step (QCFS / FTBC evaluation)."""
    net = _replace_qcfs(ann, StepIF)
    neurons = [m for m in net.modules() if isinstance(m, StepIF)]

    @torch.no_grad()
    def run(x: torch.Tensor, steps: int) -> torch.Tensor:
        for n in neurons:
            n.v = None
        return torch.stack([net(x) for _ in range(steps)])

    return run


class _SpikingJellyIF(nn.Module):
    """SpikingJelly's multi-step IFNode in the folded network: [T·B, ...] → [T, B, ...] → θ·spikes."""

    def __init__(self, thresh: torch.Tensor, node: nn.Module) -> None:
        super().__init__()
        self.thresh = thresh.detach().clone()
        self.node = node
        self.steps = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = (x / self.thresh).reshape((self.steps, -1) + tuple(x.shape[1:]))
        return (self.node(seq) * self.thresh).reshape(x.shape)


def spikingjelly_loop(ann: nn.Module) -> tuple[Callable[[torch.Tensor, int], torch.Tensor], str]:
    """The same folded network with SpikingJelly's IF; raises ImportError when it is absent."""
    from spikingjelly.activation_based import functional as sjf
    from spikingjelly.activation_based import neuron as sjn

    backend_used = {}

    def make(thresh: torch.Tensor) -> nn.Module:
        if "backend" not in inspect.signature(sjn.IFNode.__init__).parameters:
            # SpikingJelly 2.x picks its fastest multi-step kernel for the device itself.
            backend_used["name"] = "auto (SpikingJelly 2.x)"
            return _SpikingJellyIF(thresh, sjn.IFNode(v_threshold=1.0, v_reset=None, step_mode="m"))
        for backend in ("cupy", "triton", "torch"):
            try:
                node = sjn.IFNode(v_threshold=1.0, v_reset=None, step_mode="m", backend=backend)
                backend_used["name"] = backend
                return _SpikingJellyIF(thresh, node)
            except Exception as err:  # noqa: BLE001 - that backend is not built here; try the next
                interrupts.raise_if_interrupt(err)
                continue
        raise ImportError("no usable SpikingJelly IFNode backend")

    net = _replace_qcfs(ann, make)
    layers = [m for m in net.modules() if isinstance(m, _SpikingJellyIF)]

    @torch.no_grad()
    def run(x: torch.Tensor, steps: int) -> torch.Tensor:
        sjf.reset_net(net)
        for m in layers:
            m.steps = steps
        folded = x.unsqueeze(0).expand((steps,) + tuple(x.shape)).reshape((steps * x.shape[0],) + tuple(x.shape[1:]))
        return net(folded).reshape(steps, x.shape[0], -1)

    return run, backend_used.get("name", "?")


# --------------------------------------------------------------------------------------------------
# The snnbench path and its options


def snnbench_loop(
    snn: nn.Module, chunk: Optional[int], option: Optional[str], device: str, x: torch.Tensor, steps: int
) -> Callable[[], torch.Tensor]:
    """A callable that evaluates ``x`` over ``steps`` with one option applied (built once)."""
    from snnbench.conversion.convert import simulate

    if option == "channels_last":
        snn = copy.deepcopy(snn).to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if option == "bf16":

        def run() -> torch.Tensor:
            with torch.autocast(device_type=device, dtype=torch.bfloat16):
                return simulate(snn, x, steps, chunk)

        return run
    if option == "cuda_graph":
        if device != "cuda":
            raise RuntimeError("CUDA graphs need a CUDA device")
        static_x = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):  # compile, autotune and check the parameters outside the capture
                simulate(snn, static_x, steps, chunk)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = simulate(snn, static_x, steps, chunk)

        def replay() -> torch.Tensor:
            graph.replay()
            return static_out

        return replay
    return lambda: simulate(snn, x, steps, chunk)


def _agreement(logits: torch.Tensor, base: torch.Tensor) -> dict[str, float]:
    pred, want = logits.float().sum(0).argmax(-1), base.float().sum(0).argmax(-1)
    return {
        "pred_agreement": float((pred == want).float().mean()),
        "max_abs_logit_diff": float((logits.float() - base.float()).abs().max()),
    }


# --------------------------------------------------------------------------------------------------
# The bench


def _case_rows(
    case, device: str, timing: dict[str, float], peak: Optional[float], console: Any
) -> list[dict[str, Any]]:
    name, params, shape, classes, batch, steps_list, chunk = case
    ann, snn, x = build(name, params, shape, classes, batch, device)
    flops_per_step = dense_flops(ann, x)
    peers: dict[str, Any] = {"official_loop": official_loop(ann)}
    sj_note = ""
    try:
        sj_run, backend = spikingjelly_loop(ann)
        peers["spikingjelly"] = sj_run
        sj_note = f"SpikingJelly IFNode backend={backend}"
    except ImportError as err:
        sj_note = f"skipped: spikingjelly is not importable ({err})"
    rows = []
    for steps in steps_list:
        base_logits = snnbench_loop(snn, chunk, None, device, x, steps)()
        impls: list[tuple[str, Optional[str], Optional[Callable[[], torch.Tensor]], str]] = []
        impls.append(("snnbench", None, snnbench_loop(snn, chunk, None, device, x, steps), ""))
        impls.append(("official_loop", None, (lambda s=steps: peers["official_loop"](x, s)), "whole network per step"))
        sj = peers.get("spikingjelly")
        impls.append(("spikingjelly", None, (lambda s=steps: sj(x, s)) if sj else None, sj_note))
        for option in OPTIONS:
            try:
                impls.append(("snnbench", option, snnbench_loop(snn, chunk, option, device, x, steps), ""))
            except Exception as err:  # noqa: BLE001 - an option that cannot run here is reported, not fatal
                interrupts.raise_if_interrupt(err)
                impls.append(("snnbench", option, None, f"skipped: {type(err).__name__}: {err}"[:200]))
        for impl, option, fn, note in impls:
            row: dict[str, Any] = {
                "model": name,
                "image": list(shape),
                "batch": batch,
                "T": steps,
                "impl": impl,
                "option": option or "none",
            }
            if fn is None:
                rows.append({**row, "median_ms": None, "note": note})
                continue
            try:
                start = time.perf_counter()
                logits = fn()
                synchronize(device)
                row["first_call_s"] = round(time.perf_counter() - start, 3)
                row.update(measure(fn, device, **timing))
                ms = row["median_ms"]
                row["images_per_s"] = batch / (ms * 1e-3)
                row["image_steps_per_s"] = batch * steps / (ms * 1e-3)
                with_flops(row, flops_per_step * batch * steps, peak)
                row.update(_agreement(logits, base_logits))
                if note:
                    row["note"] = note
            except Exception as err:  # noqa: BLE001 - one failing path must not lose the others
                interrupts.raise_if_interrupt(err)
                row.update({"median_ms": None, "note": f"error: {type(err).__name__}: {str(err)[:200]}"})
                traceback.print_exc()
            rows.append(row)
            release_memory(device)
        _speedups(rows, name, steps)
        say(
            console,
            f"{name} T={steps}: "
            + ", ".join(
                f"{r['impl']}{'+' + r['option'] if r['option'] != 'none' else ''} {r['median_ms']:.3g} ms"
                for r in rows
                if r["T"] == steps and r["model"] == name and r.get("median_ms")
            ),
        )
    del ann, snn, x, peers
    release_memory(device)
    return rows


def _speedups(rows: list[dict[str, Any]], model: str, steps: int) -> None:
    point = [r for r in rows if r["model"] == model and r["T"] == steps and r.get("median_ms")]
    ref = {r["impl"]: r["median_ms"] for r in point if r["option"] == "none"}
    for r in point:
        if r["impl"] == "snnbench":
            for peer in ("official_loop", "spikingjelly"):
                if peer in ref:
                    r[f"speedup_vs_{peer}"] = ref[peer] / r["median_ms"]


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets at VGG-16, T = 32 (absent when not measured)."""
    point = {(r["impl"], r["option"]): r for r in rows if r["model"] == "vgg16" and r["T"] == 32 and r.get("median_ms")}
    ours = point.get(("snnbench", "none"))
    if ours is None:
        return {}
    best = min(
        (r for r in point.values() if r["impl"] == "snnbench" and r.get("pred_agreement", 0) >= 0.99),
        key=lambda r: r["median_ms"],
    )
    out: dict[str, Any] = {
        "point": {"model": "vgg16", "T": 32, "batch": ours["batch"]},
        "snnbench_ms": ours["median_ms"],
        "best_option": best["option"],
        "best_ms": best["median_ms"],
        "frac_of_peak": ours.get("frac_of_peak"),
        "targets": TARGETS,
    }
    for peer, target in (
        ("official_loop", TARGETS["speedup_vs_official"]),
        ("spikingjelly", TARGETS["speedup_vs_spikingjelly"]),
    ):
        if (peer, "none") in point:
            speedup = point[(peer, "none")]["median_ms"] / ours["median_ms"]
            out[f"speedup_vs_{peer}"] = speedup
            out[f"meets_{peer}_target"] = speedup >= target
    return out


COLUMNS = [
    ("model", "model", ""),
    ("T", "T", ""),
    ("impl", "impl", ""),
    ("option", "option", ""),
    *harness.TIMING_COLUMNS,
    ("img/s", "images_per_s", ",.0f"),
    ("TFLOP/s", "tflops", ".3g"),
    ("%peak", "frac_of_peak", "%"),
    ("×official", "speedup_vs_official_loop", ".2f"),
    ("×SJ", "speedup_vs_spikingjelly", ".2f"),
    ("agree", "pred_agreement", ".3f"),
]


@harness.bench_entry
def run_convert_bench(run: harness.BenchRun, *, models: Optional[list[str]] = None) -> dict[str, Any]:
    """Run every case; write ``out/convert.json`` after each model (a cut-off run keeps its rows)."""
    device, quick, console = run.device, run.quick, run.console
    cases = QUICK if quick else (SMALL if device == "cpu" else FULL)
    if models:
        unknown = sorted(set(models) - {c[0] for c in cases})
        if unknown:
            raise BenchInputError(f"--model: unknown {unknown}; expected some of {[c[0] for c in cases]}")
        cases = [c for c in cases if c[0] in models]
    timing = (
        {"warmup_ms": 1, "rep_ms": 5}
        if quick
        else ({"warmup_ms": 5, "rep_ms": 50} if device == "cpu" else {"warmup_ms": 25, "rep_ms": 150})
    )
    note = (
        "" if cases is FULL else "reduced sizes (quick or no GPU): narrow models, a few images; not the issue's setting"
    )
    result = header(
        "convert",
        device,
        note=note,
        rows=[],
        cases=[
            {
                "model": c[0],
                "params": c[1],
                "image": list(c[2]),
                "classes": c[3],
                "batch": c[4],
                "T": c[5],
                "chunk": c[6],
            }
            for c in cases
        ],
    )
    result["timing"].update(timing)
    card = result["environment"]["hardware"].get("name", "")
    peak = peak_flops(card) if device == "cuda" else None
    result["peak_bf16_flops"] = peak
    path = json_out_path(run.out, "convert.json")
    started = time.perf_counter()
    for case in cases:
        result["rows"].extend(_case_rows(case, device, timing, peak, console))
        result["summary"] = summarize(result["rows"])
        result["elapsed_s"] = round(time.perf_counter() - started, 1)
        write_json(path, result)
    render(result["rows"], COLUMNS, console, f"converted-SNN evaluation on {card or device} ({device})")
    if path is not None:
        say(console, f"wrote {path}")
    return result
