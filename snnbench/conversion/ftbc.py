"""FTBC, the fast layer-major path: one ANN forward and one SNN forward per calibration batch.

The official loop (ftbc_reference.py, which this module does not import: calibration.py chooses
between the two) re-runs the whole ANN and the whole SNN for every layer. But
layer l's ANN activation and its SNN input currents depend only on layers < l, so one sweep does:
keep every QCFS activation of one ANN forward, then run the SNN forward once; just before IF layer l
runs, its input ``X[T, B, ...]`` (computed with the already-calibrated biases of layers < l) and its
ANN activation go through one fused kernel (kernels/ftbc.py) that runs the teacher-forced recurrence
and returns the ``[T, C]`` error sums; the bias is updated and the layer then runs with it, feeding
the next layer. The biases are those of the official loop (tests check this to fp32 tolerance).

Long simulations can run in chunks of time steps (``chunk``): the bias of step t depends only on steps
≤ t of earlier layers, so calibrating chunk by chunk (carrying each layer's teacher-forced membrane)
gives the same biases while holding only ``chunk`` steps of one layer's input at a time.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from snnbench.conversion.convert import simulate
from snnbench.conversion.layers import (
    LayerPair,
    ann_activations,
    before_each_layer,
    bias_rows,
    calibration_pairs,
    unfold,
)
from snnbench.kernels.common import remember_finite
from snnbench.kernels.ftbc import ftbc_stats_forward


@torch.no_grad()
def ftbc_calibrate_fast(
    ann: nn.Module,
    snn: nn.Module,
    batches: list[torch.Tensor],
    steps: int,
    alpha: float = 0.4,
    *,
    passes: int = 1,
    own_bias: bool = False,
    backend: str = "auto",
    chunk: Optional[int] = None,
) -> None:
    """Calibrate the ``[T, C]`` biases of ``snn``'s IF layers in place, layer-major.

    ``own_bias=False`` is the official single pass (a layer's own bias is not applied in its
    recurrence); ``own_bias=True`` with ``passes`` > 1 is the iterative variant, in which each pass
    corrects the error left with the current biases. ``backend`` picks the statistics kernel, ``chunk``
    the time steps held at once. ``ftbc_reference.ftbc_calibrate_reference`` has the same contract.
    """
    pairs = calibration_pairs(ann, snn, alpha)
    buffers: dict[str, torch.Tensor] = {}  # each layer's bias, made writable once per calibration
    for _ in range(passes):
        for x in batches:
            _sweep(ann, snn, pairs, x, steps, alpha, own_bias, backend, chunk, buffers)


def _sweep(
    ann: nn.Module,
    snn: nn.Module,
    pairs: list[LayerPair],
    x: torch.Tensor,
    steps: int,
    alpha: float,
    own_bias: bool,
    backend: str,
    chunk: Optional[int],
    buffers: dict[str, torch.Tensor],
) -> None:
    acts = ann_activations(ann, pairs, x)
    _require_finite(acts, pairs, first_batch=not buffers)
    chunked = chunk is not None and chunk < steps
    membranes: dict[str, torch.Tensor] = {}  # teacher-forced membrane carried between chunks

    def calibrate_layer(pair: LayerPair, folded: torch.Tensor) -> None:
        layer = pair.spiking
        first, count = layer.offset, layer.steps  # this chunk's steps, set by simulate()
        currents = unfold(folded, count)
        activation = acts[pair.name]
        channels = currents.shape[2]
        bias = buffers.get(pair.name)
        if bias is None:
            # One writable [T, C] buffer per layer for the whole calibration, shared with the neuron
            # and updated in place: no copy and no new tensor for the neuron to check per batch.
            layer.neuron.set_bias(bias_rows(layer, steps, channels))
            bias = buffers[pair.name] = layer.neuron.bias
        rows = bias[first : first + count]
        result = ftbc_stats_forward(
            currents,
            activation,
            layer.neuron.thresh,
            rows if own_bias else None,
            membranes.get(pair.name),
            return_state=chunked,
            backend=backend,
        )
        sums = result[0] if chunked else result
        if chunked:
            membranes[pair.name] = result[1]
        positions = activation.numel() // channels  # batch × space
        rows += alpha * (sums / positions)
        # Finite by construction (the activations were checked, the errors are bounded by θ + |a|):
        # tell the neuron's per-call check so that it does not sync to find out.
        remember_finite(rows)

    with before_each_layer(pairs, calibrate_layer):
        simulate(snn, x, steps, chunk=chunk)


def _require_finite(acts: dict[str, torch.Tensor], pairs: list[LayerPair], first_batch: bool) -> None:
    """One host sync per batch: every ANN activation finite (and, before the first batch, every bias
    the layers already hold), so that every bias this batch computes is finite too."""
    tensors = [(f"the ANN activation of layer {name}", t) for name, t in acts.items()]
    if first_batch:
        tensors += [(f"the existing bias of layer {p.name}", p.spiking.neuron.bias) for p in pairs]
    flags = torch.stack([torch.isfinite(t).all() for _, t in tensors]).tolist()
    bad = [what for (what, _), ok in zip(tensors, flags) if not ok]
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ValueError(
            f"FTBC: NaN or infinity in {bad[0]}{more}; check the calibration images and the model's weights"
        )
