"""FTBC, the fast layer-major path: one ANN forward and one SNN forward per calibration batch.

The official loop (ftbc_reference.py) re-runs the whole ANN and the whole SNN for every layer. But
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
    layer_pairs,
    unfold,
)
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
    """Calibrate the ``[T, C]`` biases of ``snn``'s IF layers in place.

    ``own_bias=False`` is the official single pass (a layer's own bias is not applied in its
    recurrence); ``own_bias=True`` with ``passes`` > 1 is the iterative variant, in which each pass
    corrects the error left with the current biases.
    """
    ann.eval()
    snn.eval()
    pairs = layer_pairs(ann, snn)
    for _ in range(passes):
        for x in batches:
            _sweep(ann, snn, pairs, x, steps, alpha, own_bias, backend, chunk)


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
) -> None:
    acts = ann_activations(ann, pairs, x)
    chunked = chunk is not None and chunk < steps
    membranes: dict[str, torch.Tensor] = {}  # teacher-forced membrane carried between chunks

    def calibrate_layer(pair: LayerPair, folded: torch.Tensor) -> None:
        layer = pair.spiking
        first, count = layer.offset, layer.steps  # this chunk's steps, set by simulate()
        currents = unfold(folded, count)
        activation = acts[pair.name]
        channels = currents.shape[2]
        bias = bias_rows(layer, steps, channels)
        rows = slice(first, first + count)
        result = ftbc_stats_forward(
            currents,
            activation,
            layer.neuron.thresh,
            bias[rows] if own_bias else None,
            membranes.get(pair.name),
            return_state=chunked,
            backend=backend,
        )
        sums = result[0] if chunked else result
        if chunked:
            membranes[pair.name] = result[1]
        positions = activation.numel() // channels  # batch × space
        bias[rows] += alpha * (sums / positions)
        layer.neuron.set_bias(bias)

    with before_each_layer(pairs, calibrate_layer):
        simulate(snn, x, steps, chunk=chunk)
