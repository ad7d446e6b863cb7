"""The metric catalog: every metric a record or benchmark row may hold, defined once.

Each :class:`Metric` says which direction is better, its unit and human label, the regression
gate's default tolerance, its leaderboard column, what part of the computation it measures
(``scope``) and its NeuroBench 2.x name where NeuroBench has one. The leaderboard (columns, best
marks), the regression gate (directions, tolerances), the benchmark summaries (which fields are
measurements, headline columns), the plots (labels) and the tidy export (units) all read this one
list, so adding a metric is adding one entry here.

Lookup is by flattened name (``snn_acc.4``, ``layers.hidden2.bwd_ms``) or leaderboard column
(``T=4``); the first entry that matches decides. Exact names come first, then patterns (shell
globs) that give families of names a meaning, ordered from specific to general.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any, Callable, Iterator, Literal, Optional

Direction = Literal["higher", "lower"]
# measure: better in one direction; descriptive: measured, but a change is information, never a
# regression; setting: describes the setup (a benchmark row's identity, never a measurement).
Role = Literal["measure", "descriptive", "setting"]


@dataclass(frozen=True)
class Tolerance:
    value: float
    absolute: bool = False  # True: in the metric's own units (points of accuracy, ms ...)

    def __str__(self) -> str:
        return f"{self.value:g}pt" if self.absolute else f"{self.value:g}%"


ACCURACY_TOLERANCE = Tolerance(1.0)
DEFAULT_TOLERANCE = Tolerance(10.0)


@dataclass(frozen=True)
class Metric:
    name: str  # a flattened metric name, or a glob over names when it holds * or ?
    direction: Optional[Direction] = None
    unit: str = ""
    label: str = ""
    role: Role = "measure"
    tolerance: Tolerance = DEFAULT_TOLERANCE  # the gate's default; --tolerance overrides it
    column: Optional[str] = None  # leaderboard column (a glob for per-T columns: "T=*")
    scale: float = 1.0  # leaderboard column = value × scale (bytes → MiB)
    scope: str = ""  # what it covers: "whole network, backward", "hidden layer 2, forward+backward"
    neurobench: Optional[str] = None  # the NeuroBench 2.x metric this is
    per_t: bool = False  # recorded as {T: value}; flattened as name.T
    headline: Optional[int] = None  # column position in the leaderboard page's benchmark tables

    def __post_init__(self) -> None:
        if (self.direction is None) != (self.role != "measure"):
            raise ValueError(f"metric {self.name!r}: a measure needs a direction, other roles none")

    def matches(self, name: str) -> bool:
        if name == self.name or (self.column is not None and fnmatchcase(name, self.column)):
            return True
        if self.per_t and name.startswith(self.name + "."):
            return name[len(self.name) + 1 :].isdigit()
        return any(ch in self.name for ch in "*?[") and fnmatchcase(name, self.name)


def _acc(name: str, label: str, **kw: Any) -> Metric:
    return Metric(name, "higher", "%", label, tolerance=ACCURACY_TOLERANCE, **kw)


def _info(name: str, unit: str = "", label: str = "", **kw: Any) -> Metric:
    return Metric(name, None, unit, label, role="descriptive", **kw)


def _setting(name: str, label: str = "") -> Metric:
    return Metric(name, None, "", label, role="setting")


CATALOG: tuple[Metric, ...] = (
    # --- accuracy ----------------------------------------------------------------------------------
    _acc(
        "ann_acc",
        "ANN accuracy (%)",
        column="ANN",
        scope="the trained ANN, test set",
        neurobench="ClassificationAccuracy",
    ),
    _acc(
        "snn_acc",
        "SNN accuracy at T (%)",
        column="T=*",
        per_t=True,
        scope="converted SNN after T steps, test set",
        neurobench="ClassificationAccuracy",
    ),
    _acc(
        "test_acc",
        "test accuracy (%)",
        column="test_acc",
        scope="trained SNN, test set",
        neurobench="ClassificationAccuracy",
    ),
    # --- speed-ups and memory (leaderboard column order) -----------------------------------------
    Metric(
        "bwd_speedup",
        "higher",
        "x",
        "backward speed-up vs dense BPTT (×)",
        column="bwd_speedup",
        scope="whole network: loss.backward() vs the dense surrogate (fused Triton on CUDA), 3 batches after training",
        headline=13,
    ),
    Metric(
        "step_speedup",
        "higher",
        "x",
        "training-step speed-up (×)",
        column="step_speedup",
        scope="whole network: the training step (forward, backward, optimiser step) vs the dense surrogate, "
        "3 batches after training",
        headline=14,
    ),
    _info(
        "active_fraction",
        "1",
        "fraction of neurons active in backward",
        column="active_fraction",
        scope="hidden layers, backward: mean over the hidden layers and every training step",
        headline=16,
    ),
    # Hidden layer 2 alone vs the dense PyTorch loop (and the fused Triton BPTT): the scope of the
    # published SparseProp / LocalZO speed-ups, which sit only in these columns. Every hidden layer l
    # has the same layer{l}_* metrics: timed on the same batch and weights every layer_timing.stride-th
    # training step; the backward includes the input gradient for the layer below; torch_loop is the
    # dense surrogate as a PyTorch time loop under autograd (the published SparseProp baseline).
    Metric(
        "layer2_bwd_speedup_vs_torch_loop",
        "higher",
        "x",
        "layer-2 backward speed-up vs PyTorch loop (×)",
        column="L2_bwd_x_loop",
        scope="hidden layer 2, backward with input gradient, vs PyTorch loop",
    ),
    Metric(
        "layer2_fwdbwd_speedup_vs_torch_loop",
        "higher",
        "x",
        "layer-2 fwd+bwd speed-up vs PyTorch loop (×)",
        column="L2_fb_x_loop",
        scope="hidden layer 2, forward+backward, vs PyTorch loop",
    ),
    Metric(
        "layer2_fwdbwd_speedup_vs_fused",
        "higher",
        "x",
        "layer-2 fwd+bwd speed-up vs fused BPTT (×)",
        column="L2_fb_x_fused",
        scope="hidden layer 2, forward+backward, vs fused Triton BPTT",
    ),
    _info(
        "layer2_active_fraction",
        "1",
        "layer-2 fraction of neurons active in backward",
        column="L2_active",
        scope="hidden layer 2, backward: mean over every training step",
    ),
    Metric(
        "layer2_bwd_mem_saved_pct",
        "higher",
        "%",
        "layer-2 backward memory saved (%)",
        column="L2_bwd_mem_saved_pct",
        scope="hidden layer 2, backward",
    ),
    Metric("bwd_mem_saved_pct", "higher", "%", "backward memory saved (%)", scope="whole network, backward"),
    Metric(
        "calibration_speedup",
        "higher",
        "x",
        "calibration speed-up vs official loop (×)",
        column="calibration_speedup",
        scope="FTBC calibration",
    ),
    # --- times ---------------------------------------------------------------------------------------
    Metric("calibrate_s", "lower", "s", "calibration time (s)", column="calibrate_s", headline=6),
    Metric("train_s", "lower", "s", "training time (s)", column="train_s"),
    Metric("fwd_ms", "lower", "ms", "forward (ms)", column="fwd_ms", scope="whole network, forward", headline=3),
    Metric("bwd_ms", "lower", "ms", "backward (ms)", column="bwd_ms", scope="whole network, backward", headline=4),
    Metric(
        "step_ms",
        "lower",
        "ms",
        "training step (ms)",
        column="step_ms",
        scope="whole network, forward+backward+optimizer",
        headline=5,
    ),
    Metric("peak_mem_bytes", "lower", "B", "peak memory (MiB)", column="peak_mem_MiB", scale=1.0 / 2**20),
    # --- NeuroBench workload and static metrics (descriptive: they describe the model) --------------
    _info(
        "neurobench.activation_sparsity",
        "1",
        "activation sparsity",
        column="act_sparsity",
        neurobench="ActivationSparsity",
    ),
    _info(
        "neurobench.synaptic_operations.Effective_ACs",
        "",
        "effective ACs per sample",
        column="eff_ACs",
        neurobench="SynapticOperations",
    ),
    _info(
        "neurobench.synaptic_operations.Effective_MACs",
        "",
        "effective MACs per sample",
        column="eff_MACs",
        neurobench="SynapticOperations",
    ),
    _info(
        "input_grad_zeros_pct",
        "%",
        "input-gradient zeros (%)",
        column="input_grad_zeros_pct",
        scope="exact zeros of the input gradient: the first hidden layer's (spiking MLP), every LIF "
        "input's, averaged over the run (direct track, the LocalZO paper's measure)",
    ),
    _info(
        "neurobench.synaptic_operations.Dense",
        "",
        "dense synaptic operations per sample",
        neurobench="SynapticOperations",
    ),
    _info("neurobench.footprint", "B", "memory footprint (bytes)", neurobench="Footprint"),
    _info("neurobench.connection_sparsity", "1", "connection sparsity", neurobench="ConnectionSparsity"),
    _info("neurobench.parameter_count", "", "parameters", neurobench="ParameterCount"),
    # --- benchmark timings (headline = the page's column order) -------------------------------------
    Metric("ms", "lower", "ms", "time (ms)", headline=0),  # a published time, as its source quotes it
    Metric("median_ms", "lower", "ms", "median time (ms)", headline=1),
    Metric("p20_ms", "lower", "ms", "20th-percentile time (ms)"),
    Metric("p80_ms", "lower", "ms", "80th-percentile time (ms)"),
    Metric("graph_ms", "lower", "ms", "CUDA-graph time (ms)", headline=2),
    Metric("s", "lower", "s", "time (s)", headline=7),
    Metric("gbps", "higher", "GB/s", "bandwidth (GB/s)", headline=8),
    Metric("frac_of_ceiling", "higher", "1", "fraction of the measured ceiling", headline=9),
    Metric("images_per_s", "higher", "1/s", "throughput (images/s)", headline=18),
    Metric("frac_of_peak", "higher", "1", "fraction of the dense tensor-core peak", headline=19),
    Metric("speedup", "higher", "x", "speed-up (×)", headline=12),
    Metric("speedup_vs_torch_loop", "higher", "x", "speed-up vs PyTorch loop (×)", headline=15),
    _info("final_loss", "", "final training loss"),
    _info(
        "input_grad_zeros_pct_layers.*",
        "%",
        "LIF-input gradient zeros per layer (%)",
        scope="one LIF layer's input, backward, averaged over the run",
    ),
    _setting("lif_layers", "LIF layers"),
    _setting("layer_timing.*", "layer-timing sampling"),
    _setting("threshold_batches", "threshold batches"),
    _setting("weights_calibration_images", "images of SNN Calibration's weight calibration (advanced)"),
    _info("thresholds.*", "", "IF threshold of a layer (ReLU ANN; SNN Calibration family: by T, then layer)"),
    _setting("conversion_per_t", "each T converted on its own (SNN Calibration family)"),
    _setting("neuron.*", "neuron setting"),
    _setting("params", "trainable parameters"),
    _setting("tet_lambda", "TET loss λ"),
    _setting("steps", "optimizer steps"),
    _setting("timesteps", "time steps T"),
    # --- families of names ---------------------------------------------------------------------------
    # Descriptive quantities: a change is information, never a regression by itself.
    _info("*active_fraction", "1", "fraction of neurons active"),
    _info("bytes", "B", "bytes moved"),
    _setting("hidden", "hidden neurons per layer"),
    _setting("test_samples", "test samples"),
    *(_info(p) for p in ("neurobench.*", "*_err", "*err_*", "*diff*")),
    Metric("*speedup*", "higher", "x", "speed-up (×)"),
    *(_acc(p, "accuracy (%)") for p in ("*_acc", "*acc.*", "acc")),
    Metric("*gbps", "higher", "GB/s", "bandwidth (GB/s)"),
    *(Metric(p, "higher", "1", "fraction of the ceiling") for p in ("*frac_of_ceiling", "*frac_of_peak")),
    Metric("*tflops", "higher", "TFLOP/s", "compute rate (TFLOP/s)"),
    *(Metric(p, "higher", "1/s", "throughput") for p in ("*images_per_s", "*steps_per_s")),
    Metric("*mem_saved*", "higher", "%", "memory saved (%)"),
    *(Metric(p, "lower", "B", "memory (bytes)") for p in ("*_mem_bytes", "*peak_mem*")),
    *(Metric(p, "lower", "ms", "time (ms)") for p in ("*_ms", "*.ms")),
    *(Metric(p, "lower", "s", "time (s)") for p in ("*_s", "*.s", "seconds")),
    # Counted quantities of a benchmark row: measured, never gated.
    *(_info(p, "B") for p in ("*_bytes", "bytes_*")),
    *(_info(p) for p in ("flops", "*_flops", "*count*", "*entries*", "rounds", "repeats", "warmup*", "samples")),
    _setting("calibration_*", "calibration setting"),  # batches, chunk, images: after *_s and *speedup*
)


@lru_cache(maxsize=4096)
def lookup(name: str) -> Optional[Metric]:
    """The catalog entry for a flattened metric name or leaderboard column, or None if unknown."""
    return next((m for m in CATALOG if m.matches(name)), None)


def direction(metric: str) -> Optional[Direction]:
    """``"higher"`` or ``"lower"`` when that direction is better, ``None`` for descriptive metrics."""
    entry = lookup(metric)
    return entry.direction if entry else None


def unit(metric: str) -> str:
    """The unit a metric is recorded in (``""`` for counts and unknown quantities)."""
    entry = lookup(metric)
    return entry.unit if entry else ""


def label(metric: str) -> str:
    """A human axis or column label; the name itself when the catalog has none."""
    entry = lookup(metric)
    return entry.label if entry and entry.label else metric.replace("_", " ")


def default_tolerance(metric: str) -> Tolerance:
    entry = lookup(metric)
    return entry.tolerance if entry else DEFAULT_TOLERANCE


def is_known_quantity(name: str) -> bool:
    """A measured quantity (better in one direction, or descriptive like bytes and counts)."""
    entry = lookup(name)
    return entry is not None and entry.role != "setting"


def leaderboard_columns() -> list[tuple[str, str, float]]:
    """``(column, metric, scale)`` of the named leaderboard columns after ANN and T=..., in order."""
    return [(m.column, m.name, m.scale) for m in CATALOG if m.column and m.name not in ("ann_acc", "snn_acc")]


def headline_fields() -> list[str]:
    """The benchmark fields the leaderboard page shows, in its column order."""
    ranked = sorted((m.headline, m.name) for m in CATALOG if m.headline is not None)
    return [name for _, name in ranked]


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def leaves(
    value: dict[str, Any],
    prefix: str = "",
    keep: Callable[[Any], bool] = lambda v: not isinstance(v, list),
    *,
    sort: bool = True,
) -> Iterator[tuple[str, Any]]:
    """``("a.b.c", leaf)`` for every leaf of nested dicts that ``keep`` accepts (by default all but lists),
    keys in sorted order unless ``sort=False`` (then in the dict's own order). The one flattener of report/."""
    for key in sorted(value, key=str) if sort else value:
        v = value[key]
        if isinstance(v, dict):
            yield from leaves(v, f"{prefix}{key}.", keep, sort=sort)
        elif keep(v):
            yield f"{prefix}{key}", v


def flatten(metrics: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """Numeric leaves of a metrics dict as ``("a.b.c", value)``; lists and strings are skipped.

    ``{"snn_acc": {"4": 99.1}}`` becomes ``("snn_acc.4", 99.1)``.
    """
    return ((name, float(v)) for name, v in leaves(metrics, prefix, is_number))


def short_number(value: float) -> str:
    """A number in four significant digits (``nan`` as such), as tables and the compare report print it."""
    return "nan" if math.isnan(value) else f"{value:.4g}"


def finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)
