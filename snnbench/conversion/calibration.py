"""Calibration methods applied to a converted SNN, by method name.

Every method runs on training images (never the test split), forward-only under ``no_grad`` but for
``advanced``'s weights calibration (Adam on one layer's weight at a time), and writes its biases into
the IF layers' ``bias`` buffers (or weights, or initial membranes), so they are saved with the model.

- ``qcfs`` / ``none`` / ``rts``: no calibration (plain conversion; ``none`` reads better for a ReLU
  ANN, ``rts`` names the RTS family's uncalibrated row);
- ``light``: Li et al. 2021, a time-invariant per-channel bias from one batch (light.py);
- ``ftbc``: the official single pass, α, K batches (ftbc.py fast / ftbc_reference.py official loop);
- ``ftbc_iter``: ``passes`` sweeps with each layer's own bias applied, α per pass;
- the SNN Calibration family (``family: snnc``; snnc_calibration.py, snnc_weights.py): ``light`` as
  its ``bias_corr_model``, ``advanced`` (weights, then initial membranes; ``weights: false``: the
  membranes only) and ``ftbc_snnc`` (FTBC ``ours_wo_avg`` / ``ours_w_avg`` as the FTBC repository's
  SNNC script runs them).
- ``ftbc_rts``: FTBC as the RTS code runs it on an RTS SNN (ftbc_rts.py): ``iterations`` rounds of
  ``sample_batches`` + 1 fresh batches (round i shuffled with seed + i, as the script reseeds), α.

FTBC draws its K batches from the training split with the training augmentation, as the official
loader does (``calibration_augment: false``: the evaluation transform instead), and builds its ANN
targets with the trained L unless ``target_levels`` says otherwise (the official script's targets
use L = 8 whatever L the network was trained with).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from snnbench.config import CONVERSION_METHODS, METHOD_PARAMS
from snnbench.conversion.layers import max_bias_difference, restore_biases, snapshot_biases
from snnbench.models.hooks import forward_hooks

METHODS = tuple(name for name in METHOD_PARAMS if name in CONVERSION_METHODS)


@dataclass
class CalibrationRequest:
    ann: nn.Module
    snn: nn.Module
    data: Dataset  # training split, evaluation transform
    steps: int  # T_max: calibrating for T_max serves every T <= T_max
    params: dict[str, Any]
    device: torch.device
    seed: int
    compare_reference: bool = False
    augmented_data: Optional[Dataset] = None  # training split, training augmentation (None: none exists)
    family: str = "default"  # "snnc": the SNN Calibration family (ann gives its unclipped targets)


def calibration_batches(
    data: Dataset, count: int, batch_size: int, seed: int, device: torch.device
) -> list[torch.Tensor]:
    """The first ``count`` batches of a seeded shuffle of ``data`` (images only), on ``device``.

    Random augmentations draw from the global RNG, seeded here too (and restored afterwards), so the
    same seed gives the same augmented images."""
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    batches = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for x, *_ in loader:
            batches.append(x.to(device, torch.float32))
            if len(batches) == count:
                break
    if not batches:
        raise ValueError("the calibration set is empty")
    return batches


def _timed(fn: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def time_chunk(ann: nn.Module, x: torch.Tensor, steps: int, device: torch.device) -> Optional[int]:
    """Steps per chunk so that one layer's ``[T, B, ...]`` input fits in a quarter of free GPU memory.

    None (all steps at once) on the CPU or when everything fits. The estimate counts three tensors of
    the largest QCFS activation (a convolution's input and output, and the layer's spikes).
    """
    if device.type != "cuda":
        return None
    from snnbench.models.activations import THRESHOLD_ACTIVATIONS

    largest = 0

    def hook(_m, _i, out):
        nonlocal largest
        largest = max(largest, out[0].numel())

    with forward_hooks([m for m in ann.modules() if isinstance(m, THRESHOLD_ACTIVATIONS)], hook), torch.no_grad():
        ann(x[:1])
    free, _ = torch.cuda.mem_get_info(device)
    per_step = 3 * 4 * largest * x.shape[0]
    fits = max(1, int(free // 4 // max(per_step, 1)))
    return None if fits >= steps else fits


def _light(request: CalibrationRequest, params: dict[str, Any]) -> dict[str, Any]:
    from snnbench.conversion.light import light_calibrate

    (x,) = calibration_batches(request.data, 1, params["batch_size"], request.seed, request.device)
    seconds = _timed(lambda: light_calibrate(request.ann, request.snn, x, request.steps), request.device)
    return {"calibration_batches": 1, "calibration_images": int(x.shape[0]), "calibration_core_s": seconds}


def target_ann(ann: nn.Module, levels: Optional[int]) -> nn.Module:
    """The ANN whose activations FTBC targets: ``ann`` itself, or a copy with every QCFS at ``levels``."""
    if levels is None:
        return ann
    from snnbench.models.qcfs import QCFS

    targets = copy.deepcopy(ann)
    for module in targets.modules():
        if isinstance(module, QCFS):
            module.levels = int(levels)
    return targets


def _ftbc(request: CalibrationRequest, params: dict[str, Any], iterative: bool) -> dict[str, Any]:
    # The one place that sees both implementations (neither imports the other).
    from snnbench.conversion.ftbc import ftbc_calibrate_fast
    from snnbench.conversion.ftbc_reference import ftbc_calibrate_reference

    augmented = bool(params["calibration_augment"]) and request.augmented_data is not None
    data = request.augmented_data if augmented else request.data
    batches = calibration_batches(data, params["batches"], params["batch_size"], request.seed, request.device)
    options = {"passes": params["passes"] if iterative else 1, "own_bias": iterative}
    ann = target_ann(request.ann, params["target_levels"])
    chunk = time_chunk(ann, batches[0], request.steps, request.device)
    args = (ann, request.snn, batches, request.steps, params["alpha"])
    implementations = {
        "fast": lambda: ftbc_calibrate_fast(*args, chunk=chunk, **options),
        "reference": lambda: ftbc_calibrate_reference(*args, **options),
    }
    chosen = params["implementation"]
    if chosen not in implementations:
        raise ValueError(f"implementation must be 'fast' or 'reference', got {chosen!r}")
    before = snapshot_biases(request.snn)
    seconds = {chosen: _timed(implementations[chosen], request.device)}
    extra: dict[str, Any] = {
        "calibration_batches": len(batches),
        "calibration_images": sum(int(x.shape[0]) for x in batches),
        "calibration_core_s": seconds[chosen],
        "ftbc_implementation": chosen,
        "calibration_chunk": chunk or request.steps,
        "calibration_augmented": augmented,
    }
    if request.compare_reference:
        # Same batches, same process: time the other implementation from the same starting biases,
        # check that both give the same biases, and keep the chosen implementation's result.
        other = "reference" if chosen == "fast" else "fast"
        result = snapshot_biases(request.snn)
        restore_biases(request.snn, before)
        seconds[other] = _timed(implementations[other], request.device)
        other_result = snapshot_biases(request.snn)
        restore_biases(request.snn, result)
        extra.update(
            fast_calibrate_s=seconds["fast"],
            reference_calibrate_s=seconds["reference"],
            calibration_speedup=seconds["reference"] / max(seconds["fast"], 1e-12),
            reference_bias_max_abs_diff=max_bias_difference(result, other_result),
        )
    return extra


def _ftbc_rts(request: CalibrationRequest, params: dict[str, Any]) -> dict[str, Any]:
    from snnbench.conversion.ftbc_rts import rts_ftbc_calibrate

    augmented = bool(params["calibration_augment"]) and request.augmented_data is not None
    data = request.augmented_data if augmented else request.data
    count, size = params["sample_batches"] + 1, params["batch_size"]
    rounds = [
        calibration_batches(data, count, size, request.seed + i, request.device) for i in range(params["iterations"])
    ]
    run = lambda: rts_ftbc_calibrate(  # noqa: E731
        request.ann, request.snn, rounds, request.steps, params["alpha"], implementation=params["implementation"]
    )
    return {
        "calibration_batches": sum(len(r) for r in rounds),
        "calibration_images": sum(int(x.shape[0]) for r in rounds for x in r),
        "calibration_core_s": _timed(run, request.device),
        "ftbc_implementation": params["implementation"],
        "calibration_augmented": augmented,
    }


def _check_family(method: str, ann: nn.Module) -> None:
    """FTBC's QCFS variant assumes v₀ = θ/2 and no shift; the RTS variant needs an RTS SNN."""
    from snnbench.conversion.rts import is_rts

    rts = is_rts(ann)
    if rts and method in ("ftbc", "ftbc_iter"):
        raise ValueError(f"method {method!r} does not fit an RTS ANN (activation: rts); use ftbc_rts")
    if method in ("ftbc_rts", "rts") and not rts:
        raise ValueError(f"method {method!r} needs an RTS ANN (model parameter activation: rts)")


def calibrate(method: str, request: CalibrationRequest) -> dict[str, Any]:
    """Calibrate ``request.snn`` in place; return extra metrics (JSON types) for the record."""
    if method not in METHODS:
        raise ValueError(f"no calibration method named {method!r}; expected one of {list(METHODS)}")
    _check_family(method, request.ann)
    if method in ("qcfs", "none", "rts"):
        return {}
    params = {**METHOD_PARAMS[method]().model_dump(), **(request.params or {})}  # the suite schema's defaults
    if request.family == "snnc":
        return _snnc(method, request, params)
    if method in ("advanced", "ftbc_snnc"):
        raise ValueError(f"method {method!r} calibrates the SNN Calibration family (family: snnc) only")
    if method == "light":
        return _light(request, params)
    if method == "ftbc_rts":
        return _ftbc_rts(request, params)
    return _ftbc(request, params, iterative=method == "ftbc_iter")


def _snnc_weights(request: CalibrationRequest, params: dict[str, Any], data: Dataset) -> dict[str, Any]:
    """``advanced``'s weights calibration (snnc_weights.py) on ``weights_samples`` training images: the
    first of a shuffle seeded seed + 1 (the official code reads them in its own pass over the shuffled
    loader, before the potentials' batch); its ``randperm`` draws from a generator seeded ``seed``."""
    from snnbench.conversion.snnc_weights import snnc_weights

    count = params["weights_samples"]
    (samples,) = calibration_batches(data, 1, count, request.seed + 1, request.device)
    if samples.shape[0] < count:
        raise ValueError(
            f"advanced: weights_samples is {count} but the calibration set has {samples.shape[0]} images; "
            "give a smaller weights_samples (a multiple of weights_batch_size) or weights: false"
        )
    generator = torch.Generator().manual_seed(request.seed)
    run = lambda: snnc_weights(  # noqa: E731
        request.ann,
        request.snn,
        samples,
        request.steps,
        lr=params["weights_lr"],
        iterations=params["weights_iterations"],
        batch_size=params["weights_batch_size"],
        generator=generator,
    )
    return {"calibration_core_s": _timed(run, request.device), "weights_calibration_images": count}


def _snnc(method: str, request: CalibrationRequest, params: dict[str, Any]) -> dict[str, Any]:
    """The SNN Calibration family's light, advanced and FTBC (snnc_calibration.py)."""
    from snnbench.conversion.snnc_calibration import ftbc_snnc, snnc_advanced, snnc_light

    if method not in ("light", "advanced", "ftbc_snnc"):
        raise ValueError(f"method {method!r} does not apply to the SNN Calibration family")
    augmented = bool(params.get("calibration_augment")) and request.augmented_data is not None
    data = request.augmented_data if augmented else request.data
    ann, snn, steps, device = request.ann, request.snn, request.steps, request.device
    if method != "ftbc_snnc":
        extra = _snnc_weights(request, params, data) if method == "advanced" and params["weights"] else {}
        (x,) = calibration_batches(data, 1, params["batch_size"], request.seed, device)
        calibrate_one = snnc_light if method == "light" else snnc_advanced
        seconds = _timed(lambda: calibrate_one(ann, snn, x, steps), device) + extra.pop("calibration_core_s", 0.0)
        return {
            "calibration_batches": 1,
            "calibration_images": int(x.shape[0]),
            "calibration_core_s": seconds,
            **extra,
        }
    for module in snn.modules():
        if hasattr(module, "bias_order"):
            module.bias_order = params["bias_order"]
    seconds, images = 0.0, 0
    for i in range(params["iterations"]):
        # Each iteration reads new batches, as the official script reseeds (seed + i) before each.
        batches = calibration_batches(data, params["batches"], params["batch_size"], request.seed + i, device)
        images += sum(int(x.shape[0]) for x in batches)
        seconds += _timed(
            lambda: ftbc_snnc(
                ann, snn, batches, steps, params["alpha"], params["average"], params.get("residual_biases", True)
            ),
            device,
        )
    return {
        "calibration_batches": params["batches"] * params["iterations"],
        "calibration_images": images,
        "calibration_core_s": seconds,
        "calibration_augmented": augmented,
    }
