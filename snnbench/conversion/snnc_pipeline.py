"""A conversion cell of the SNN Calibration family (model parameter ``family: snnc``).

SNN Calibration converts for one simulation length T: its MSE thresholds quantise to T steps and its
input shift is θ·0.5/T, so an SNN converted for T_max is not the one converted for a shorter T (the
QCFS route reads every T ≤ T_max off one simulation). Each T of the suite is therefore its own
conversion: thresholds, IF layers, calibration and evaluation at that T, as the official script run
with ``--T``. The ANN is trained (or loaded) once for all of them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from snnbench.context import RunContext
from snnbench.conversion.calibration import calibrate
from snnbench.conversion.convert import convert
from snnbench.conversion.pipeline import calibration_request, evaluate_snn, simulation_chunk, threshold_relu_ann
from snnbench.conversion.snnc_calibration import relu_targets
from snnbench.conversion.snnc_layer import to_snnc
from snnbench.data.registry import DataBundle

if TYPE_CHECKING:
    from snnbench.records.cells import Cell


def run_snnc_conversion(cell: Cell, ctx: RunContext, bundle: DataBundle, ann: torch.nn.Module) -> dict[str, Any]:
    """Metrics of one cell: the accuracy at each T of the suite, each from a conversion for that T."""
    accuracies: dict[str, float] = {}
    thresholds: dict[str, Any] = {}
    calibrate_s = evaluate_s = 0.0
    extra: dict[str, Any] = {}
    info: dict[str, Any] = {}
    neurobench: dict[str, Any] = {}
    for steps in cell.timesteps:
        prepared, info = threshold_relu_ann(cell, bundle, ann, steps, ctx.device)
        thresholds[str(steps)] = info.pop("thresholds")
        snn = to_snnc(convert(prepared), steps)
        t0 = time.perf_counter()
        request = calibration_request(cell, ctx, bundle, relu_targets(prepared), snn, steps, family="snnc")
        extra = calibrate(cell.method.name, request)
        calibrate_s += extra.get("calibration_core_s", time.perf_counter() - t0)
        t0 = time.perf_counter()
        chunk = simulation_chunk(bundle, steps, cell.training.eval_batch_size)
        curve, counted = evaluate_snn(
            snn, bundle, steps, ctx.device, cell.training.eval_batch_size, ctx.progress, chunk=chunk
        )
        if steps == max(cell.timesteps):  # counted in the longest simulation, as the other routes do
            neurobench = counted
        evaluate_s += time.perf_counter() - t0
        accuracies[str(steps)] = curve[-1]
    return {
        "snn_acc": accuracies,
        "conversion_per_t": True,  # each T its own conversion: no accuracy curve from one simulation
        "calibrate_s": calibrate_s,
        "evaluate_s": evaluate_s,
        "test_samples": len(bundle.test),
        "neurobench": neurobench,
        **info,
        "thresholds": thresholds,
        **{k: v for k, v in extra.items() if k != "calibration_core_s"},
    }
