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

import contextlib
import functools
from typing import Any, Optional

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
from snnbench.kernels.common import finite_scalar, remember_finite
from snnbench.kernels.ftbc import ftbc_stats_forward


IMPLEMENTATIONS = ("fast", "reference")


@torch.no_grad()
def ftbc_calibrate(
    ann: nn.Module,
    snn: nn.Module,
    batches: list[torch.Tensor],
    steps: int,
    alpha: float = 0.4,
    *,
    passes: int = 1,
    own_bias: bool = False,
    implementation: str = "fast",
    backend: str = "auto",
    chunk: Optional[int] = None,
) -> None:
    """Calibrate the ``[T, C]`` biases of ``snn``'s IF layers in place.

    ``own_bias=False`` is the official single pass (a layer's own bias is not applied in its
    recurrence); ``own_bias=True`` with ``passes`` > 1 is the iterative variant, in which each pass
    corrects the error left with the current biases. ``implementation``: ``"fast"`` (this module's
    layer-major sweep; ``backend`` picks the statistics kernel, ``chunk`` the time steps held at once)
    or ``"reference"`` (the official per-layer loop of ftbc_reference.py, in plain PyTorch).
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be 'fast' or 'reference', got {implementation!r}")
    finite_scalar("alpha", alpha)  # checked, used as given
    ann.eval()
    snn.eval()
    pairs = layer_pairs(ann, snn)
    if implementation == "reference":
        from snnbench.conversion.ftbc_reference import official_if_neurons, reference_batch

        context: Any = official_if_neurons(snn)
        step = lambda x: reference_batch(ann, snn, pairs, x, steps, alpha, own_bias)  # noqa: E731
    else:
        context = contextlib.nullcontext()
        buffers: dict[str, torch.Tensor] = {}  # each layer's bias, made writable once per calibration
        step = lambda x: _sweep(ann, snn, pairs, x, steps, alpha, own_bias, backend, chunk, buffers)  # noqa: E731
    with context:
        for _ in range(passes):
            for x in batches:
                step(x)


# The layer-major path by name (the reference is ftbc_reference.ftbc_calibrate_reference).
ftbc_calibrate_fast = functools.partial(ftbc_calibrate, implementation="fast")


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
