"""What the host functions can launch, kernel by kernel: the one list the compile check reads.

A :class:`LaunchSpace` names a kernel, the host inputs that change its specialisation (``axes``, each
with the values the host accepts, from the same tables the host validates against) and a function
that drives the real host launch path for one point of that space with meta tensors. Within
:func:`kernels.common.recording_launches` the host builds its arguments and constants exactly as for a
real call and the launch is recorded instead of run, so the specialisations come from the host code,
not from a copy of it.

Each axis lists its values lightest first: the last value of every axis is the heaviest point of a
space. ``singles`` name the axes whose values the compile check takes one by one at the heaviest point
(tile shapes, LocalZO draws) instead of pairing them with every other axis; ``valid`` says which
points the host accepts. Two reductions: sizes are generic (no dimension equal to 1 or a multiple of
16, which Triton would fold or mark aligned; those variants only add facts to the generic code), and
LocalZO's sample count ``q`` (1..64, unrolled) takes 1, 3 (a partial group) and 8 (two groups).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, NamedTuple

import torch

from .ftbc import StatsArgs, StatsPlan, stats_launch, tiling
from .lif_record import record_launch, trace_launch
from .localzo import DISTRIBUTIONS
from .neuron import (
    lif_options,
    neuron_backward,
    neuron_forward,
)
from .neuron_options import BIAS_ORDERS, IO_DTYPES, OUTPUT_ID, RESET_ID, SAVE_DTYPES, NeuronCall
from .sparse_common import BAND_SURROGATES, TRACE_DTYPES, ActiveSet, SpikeRule
from .sparse_grad import input_grad_by_rows, pairs_launch, weight_grad_launch
from .surrogates import SURROGATES

__all__ = ["LaunchSpace", "launch_spaces", "LOCALZO_DRAWS"]


class LaunchSpace(NamedTuple):
    """One kernel's launches: ``drive(**point)`` runs its host path for one value of every axis."""

    name: str
    axes: dict[str, tuple]
    drive: Callable[..., None]
    singles: tuple[str, ...] = ()
    valid: Callable[[dict], bool] = lambda point: True


def _meta(shape, dtype=torch.float32) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


# LocalZO draws (distribution, q, seed): normal (Box-Muller pairs) at 1 sample and a partial group,
# every distribution at two full groups, normal last (the heaviest); a seed of 2**40 is passed as a
# 64-bit integer. q is unrolled one Philox group (4 samples) after another, each group consumed before
# the next, so more groups repeat the same code without more live registers: q = 64 (16 groups, 1.6 MB
# of PTX for the neuron backward) would cost minutes of compile per specialisation and is left out.
LOCALZO_DRAWS = (
    ("normal", 1, 7),
    ("normal", 3, 7),
    *((d, 8, 2**40) for d in reversed(DISTRIBUTIONS)),
)

# A generic layer [T, B, C, S] and one with more than 2**31 neurons a step (64-bit indices).
_NEURON_SHAPES = {"small": (3, 2, 5, 7), "huge": (2, 1, 3, 3 * 2**29 + 5)}


def _neuron_call(x: torch.Tensor, threshold: str, bias: bool, v_init: str, seed: int = 0) -> NeuronCall:
    C = x.shape[2]
    thresh = {"float": None, "one": _meta(1), "channel": _meta(C)}[threshold]
    v0 = _meta(x.shape[1:]) if v_init == "tensor" else None
    return NeuronCall(thresh, _meta((x.shape[0], C)) if bias else None, v0, seed)


def _neuron_opts(output: str, save: str, v_init: str, reset: str, surrogate="sigmoid", draw=None, detach=False):
    return lif_options(
        output=output,
        save_dtype=save if save != "none" else "bf16",
        v_init=0.25 if v_init == "float" else None,
        reset=reset,
        surrogate=surrogate,
        detach_reset=detach,
        **(dict(distribution=draw[0], q=draw[1]) if surrogate == "localzo" else {}),
    )


def _inference_only(point: dict) -> bool:
    """uint8 spikes are inference only: the host refuses them with a saved state (training)."""
    return point.get("output") != "uint8" or point.get("save", "none") == "none"


def _neuron_forward(dtype, output, save, threshold, v_init, reset, bias, bias_order, size) -> None:
    x = _meta(_NEURON_SHAPES[size], dtype)
    opts = replace(_neuron_opts(output, save, v_init, reset), bias_order=bias_order)
    neuron_forward(x, opts, _neuron_call(x, threshold, bias, v_init), save != "none")


def _neuron_backward(dtype, save, output, threshold, reset, detach, surrogate, grad_v_final, grad_v_init, size, draw):
    shape = _NEURON_SHAPES[size]
    opts = _neuron_opts(output, save, "half", reset, surrogate, draw, detach)
    x = _meta(shape, dtype)
    seed = draw[2] if surrogate == "localzo" else 0
    saved = _meta((shape[0], x[0].numel()), SAVE_DTYPES[save])
    gvf = _meta(shape[1:]) if grad_v_final else None
    neuron_backward(
        _meta(shape, dtype),
        gvf,
        saved,
        opts,
        _neuron_call(x, threshold, False, "half", seed),
        x.shape,
        dtype,
        grad_v_init,
    )


def _ftbc(x_dtype, a_dtype, per_channel, bias, v_init, return_state, plan) -> None:
    block_c, block_n, warps = plan
    T, B, C, S = 3, 6, 5, 7
    x = _meta((T, B, C, S), x_dtype)
    args = StatsArgs(
        x,
        _meta((B, C, S), a_dtype),
        _meta(C if per_channel else 1),
        _meta((T, C)) if bias else None,
        _meta((B, C, S), x_dtype) if v_init else None,
    )
    stats_launch(args, return_state, StatsPlan(block_c, block_n, (3, 5), warps, False))


def ftbc_plans() -> tuple[tuple[int, int, int], ...]:
    """The (BLOCK_C, BLOCK_N, num_warps) that :func:`kernels.ftbc.tiling` gives over a grid of layer
    sizes (channels, spatial extent and batch at the thresholds of its rules, up to thousands) on 108-
    and 132-SM cards, with and without splitting. A denser grid (channels 1..69 and up to 4096, spatial
    1..129, 14 batches) finds the same 23."""
    plans = set()
    for s in (1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33, 64, 50176):
        for c in (1, 2, 3, 5, 8, 16, 17, 32, 33, 64, 65, 512, 4096):
            for b in (1, 2, 3, 4, 8, 16, 32, 64, 128, 192, 256, 384, 512, 1024):
                for warps in (32 * 108, 32 * 132):
                    for split in (None, True, False):
                        p = tiling(c, s, b, warps, split)
                        plans.add((p.block_c, p.block_n, p.num_warps))
    return tuple(sorted(plans, key=lambda p: p[0] * p[1]))


def _active(T: int, B: int, H: int, n: int) -> ActiveSet:
    i32 = torch.int32
    return ActiveSet(_meta(n, i32), _meta(n), _meta(H + 1, i32), _meta(n, i32), _meta(B + 1, i32), (T, B, H))


_SPARSE = dict(T=3, B=5, N_in=7, H=11, entries=13)


def _record(pass_, rule, draw) -> None:
    T, B, H = 3, 5, 11
    current = _meta((T, B, H))
    spikes, count = _meta((T, B, H)), _meta((B, H), torch.int32)
    i32 = _meta(13, torch.int32)
    write = pass_ == "write"
    buffers = (spikes, count, i32, i32, i32, _meta(13), i32, spikes)
    spike_rule = (
        SpikeRule("sparseprop", surrogate=rule[1])
        if rule[0] == "sparseprop"
        else SpikeRule("localzo", distribution=draw[0], q=draw[1])
    )
    seed = draw[2] if rule[0] == "localzo" else 0
    record_launch(current, buffers, 0.9, spike_rule, seed, write, pass_ == "count+dense")


def _weight_grad(trace_dtype) -> None:
    T, B, N_in, H, n = (_SPARSE[k] for k in ("T", "B", "N_in", "H", "entries"))
    weight_grad_launch(_meta((T, B, N_in), trace_dtype), _active(T, B, H, n), _meta(n))


def _input_grad(design: str) -> None:
    T, B, N_in, H, n = (_SPARSE[k] for k in ("T", "B", "N_in", "H", "entries"))
    active, prev, weight = _active(T, B, H, n), _active(T, B, N_in, n + 4), _meta((N_in, H))
    if design == "pairs":
        pairs_launch(weight, active, _meta(n), prev, 0.9, 1)
    else:
        input_grad_by_rows(weight, active, _meta(n), prev, 0.9, 1, fused=design == "scan")


def launch_spaces() -> list[LaunchSpace]:
    """Every kernel's launch space; a space may drive several kernels (the input-gradient designs)."""
    sizes = tuple(_NEURON_SHAPES)
    return [
        LaunchSpace(
            "neuron forward",
            dict(
                dtype=IO_DTYPES,
                output=("uint8", *(o for o in OUTPUT_ID if o != "uint8")),
                save=("none", *SAVE_DTYPES),
                threshold=("float", "one", "channel"),
                v_init=("half", "float", "tensor"),
                reset=tuple(RESET_ID),
                bias=(False, True),
                bias_order=BIAS_ORDERS,
                size=sizes,
            ),
            _neuron_forward,
            valid=_inference_only,
        ),
        LaunchSpace(
            "neuron backward",
            dict(
                dtype=IO_DTYPES,
                save=tuple(SAVE_DTYPES),
                output=("spike", "scaled"),
                threshold=("float", "one", "channel"),
                reset=tuple(RESET_ID),
                detach=(False, True),
                surrogate=SURROGATES,  # localzo last: the heaviest
                grad_v_final=(False, True),
                grad_v_init=(False, True),
                size=sizes,
                draw=LOCALZO_DRAWS,
            ),
            _neuron_backward,
            singles=("draw",),
        ),
        LaunchSpace(
            "ftbc stats",
            dict(
                x_dtype=IO_DTYPES,
                a_dtype=IO_DTYPES,
                per_channel=(False, True),
                bias=(False, True),
                v_init=(False, True),
                return_state=(False, True),
                plan=ftbc_plans(),
            ),
            _ftbc,
            singles=("plan",),
        ),
        LaunchSpace("input trace", dict(dtype=TRACE_DTYPES), lambda dtype: trace_launch(_meta((3, 5, 7)), 0.9, dtype)),
        LaunchSpace(
            "lif record",
            dict(
                pass_=("count", "count+dense", "write"),
                rule=(*(("sparseprop", s) for s in BAND_SURROGATES), ("localzo",)),
                draw=LOCALZO_DRAWS,
            ),
            _record,
            singles=("draw",),
        ),
        LaunchSpace("weight grad", dict(trace_dtype=TRACE_DTYPES), _weight_grad),
        LaunchSpace("input grad", dict(design=("pairs", "rows", "scan")), _input_grad),
    ]
