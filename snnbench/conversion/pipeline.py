"""One conversion-track cell: train (or load) the ANN, convert, calibrate, evaluate at every T.

A QCFS ANN converts as it is; a ReLU ANN (``activation: relu``, or a torchvision model) first gets
data-based thresholds (``threshold_relu_ann``); an RTS ANN (``activation: rts``) converts the RTS
code's way (``rts_snn``)."""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import torch
from torch.utils.data import DataLoader

from snnbench.config import config_hash
from snnbench.context import ProgressReporter, RunContext
from snnbench.conversion.calibration import CalibrationRequest, calibrate
from snnbench.conversion.convert import accuracy_curve, convert, simulate
from snnbench.conversion.graph import has_qcfs, relu_graph
from snnbench.conversion.neurobench import NeuroBenchCounter
from snnbench.data.registry import DataBundle, data_identity, load_dataset
from snnbench.threshold_rule import parse_threshold
from snnbench.models.registry import CONVERSION_PARAMETERS, build_model
from snnbench.models.torchvision_models import build_torchvision, eval_transform, is_torchvision
from snnbench.training.ann import evaluate_ann, train_ann

if TYPE_CHECKING:  # the runner builds cells; a pipeline only reads them
    from snnbench.records.cells import Cell


def ann_cache_path(cell: Cell, cache_dir: Path, data_root: Optional[Path] = None) -> Path:
    """Where the trained ANN of this cell lives: shared by every method of the same configuration
    (and by every threshold rule of a ReLU ANN: thresholds are set after training), apart for each
    data folder it was trained from."""
    dataset = {k: v for k, v in cell.dataset.model_dump().items() if k not in ("root", "download")}
    folder = data_identity(cell.dataset, data_root)
    if folder is not None:  # left out for in-memory data, so their cached ANNs keep their names
        dataset["data_folder"] = folder
    model = cell.model.model_dump(exclude={"checkpoint"})
    model["params"] = {k: v for k, v in model["params"].items() if k not in CONVERSION_PARAMETERS}
    key = {
        "dataset": dataset,
        "model": model,
        "training": cell.training.model_dump(),
        "seed": cell.seed,
    }
    return cache_dir / "ann" / f"{cell.dataset.name}-{cell.model.name}-{config_hash(key, 16)}.pt"


def load_cell_data(cell: Cell, data_root: Optional[Path]) -> DataBundle:
    """The bundle a conversion cell trains, calibrates and evaluates on."""
    return load_dataset(cell.dataset, data_root, augment=cell.training.augment)


def build_ann(cell: Cell, bundle: DataBundle, device: torch.device, fetch: bool = True) -> torch.nn.Module:
    """The cell's ANN, seeded; ``fetch=False`` leaves torchvision enum weights unread (the preflight)."""
    torch.manual_seed(cell.seed)
    params = {k: v for k, v in cell.model.params.items() if k not in CONVERSION_PARAMETERS}
    if is_torchvision(cell.model.name):
        return build_torchvision(
            cell.model.name,
            num_classes=bundle.num_classes,
            weights=params.get("weights"),
            download=cell.dataset.download,
            fetch=fetch,
        ).to(device)
    # A model entry may set its own QCFS levels (ImageNet: VGG-16 L=16 beside ResNet-34 L=8).
    levels = params.pop("levels", cell.training.levels)
    return build_model(
        cell.model.name,
        levels=levels,
        num_classes=bundle.num_classes,
        in_channels=bundle.input_shape[0],
        **params,
    ).to(device)


def build_cell_model(cell: Cell, bundle: DataBundle, device: torch.device) -> torch.nn.Module:
    """What the preflight builds on the meta device: the cell's ANN, weights files read, enums resolved."""
    return build_ann(cell, bundle, device, fetch=False)


def check_cell_inputs(cell: Cell, bundle: DataBundle, cache_dir: Path, data_root: Optional[Path]) -> None:
    """The checkpoint, cached ANN or resume state the cell will load, loaded now with the cell's own
    loaders into a CPU copy of its ANN (torchvision weights files were read when it was built)."""
    from snnbench.models.checkpoint import load_checkpoint
    from snnbench.training.ann import ANN_RESUME_WHAT, check_resume_state, load_cached_ann, read_ann_resume_fields

    if cell.model.params.get("weights"):
        return
    cpu = torch.device("cpu")
    if cell.model.checkpoint:
        load_checkpoint(build_ann(cell, bundle, cpu), cell.model.checkpoint)
        return
    cached = ann_cache_path(cell, cache_dir, data_root)
    if cached.exists():
        load_cached_ann(build_ann(cell, bundle, cpu), cached)
    elif cached.with_suffix(".state.pt").exists():
        state = cached.with_suffix(".state.pt")
        check_resume_state(state, ANN_RESUME_WHAT, build_ann(cell, bundle, cpu), cell.training, read_ann_resume_fields)


def prepare_ann(cell: Cell, bundle: DataBundle, ctx: RunContext) -> tuple[torch.nn.Module, dict[str, Any]]:
    ann = build_ann(cell, bundle, ctx.device)
    if cell.model.params.get("weights"):
        return ann.eval(), {"train_s": 0.0, "ann_source": f"weights:{cell.model.params['weights']}"}
    if cell.model.checkpoint:
        from snnbench.models.checkpoint import load_checkpoint

        levels_given = "levels" in cell.model.params or "levels" in cell.training.model_fields_set
        load_checkpoint(ann, cell.model.checkpoint, levels_given=levels_given)
        return ann.eval(), {"train_s": 0.0, "ann_source": f"checkpoint:{cell.model.checkpoint}"}
    result = train_ann(
        ann,
        bundle.train,
        cell.training,
        device=ctx.device,
        seed=cell.seed,
        checkpoint_path=ann_cache_path(cell, ctx.cache_dir, ctx.data_root),
        progress=ctx.progress,
    )
    return result.model, {"train_s": result.train_s, "ann_source": "cache" if result.cached else "trained"}


NEUROBENCH_SAMPLES = 128  # the NeuroBench metrics count the first test images of the evaluation


@torch.no_grad()
def evaluate_snn(
    snn: torch.nn.Module,
    bundle: DataBundle,
    steps: int,
    device: torch.device,
    batch_size: int,
    progress: ProgressReporter,
    chunk: Optional[int] = None,
    neurobench_samples: int = NEUROBENCH_SAMPLES,
) -> tuple[list[float], dict[str, Any]]:
    """Accuracy (percent) at every T = 1..steps from one simulation per test batch, and the NeuroBench
    metrics of the first ``neurobench_samples`` test images, counted during that same simulation."""
    loader = DataLoader(bundle.test, batch_size=batch_size, shuffle=False)
    correct = torch.zeros(steps, dtype=torch.long)
    total = 0
    with progress.track("evaluate SNN", len(loader)) as bar, NeuroBenchCounter(snn) as counter:
        for x, y in loader:
            counter.select(len(x), neurobench_samples - counter.samples)
            logits = simulate(snn, x.to(device), steps, chunk=chunk)
            correct += accuracy_curve(logits, y.to(device)).cpu()
            total += y.numel()
            bar.advance()
    curve = (100.0 * correct.double() / max(total, 1)).tolist()
    return curve, counter.result(steps).as_dict()


def simulation_chunk(bundle: DataBundle, steps: int, batch_size: int, budget_elements: int = 2**30) -> int:
    """Time steps simulated at once: time-folded activations grow with T·B, so ImageNet at T=128
    runs in chunks (each IF layer carries its membrane across them)."""
    per_step = batch_size
    for d in bundle.input_shape:
        per_step *= d
    # Activations of a CNN are a few times its input; 64 is a conservative factor for VGG/ResNet.
    return max(1, min(steps, budget_elements // max(1, per_step * 64)))


def calibration_request(
    cell: Cell,
    ctx: RunContext,
    bundle: DataBundle,
    ann: torch.nn.Module,
    snn: torch.nn.Module,
    steps: int,
    family: str = "default",
) -> CalibrationRequest:
    """What the cell's method calibrates: ``snn`` against ``ann`` on the training split, for ``steps``."""
    return CalibrationRequest(
        ann=ann,
        snn=snn,
        data=bundle.calibration,
        steps=steps,
        params=cell.method.params,
        device=ctx.device,
        seed=cell.seed,
        compare_reference=ctx.compare_reference,
        augmented_data=bundle.calibration_augmented,
        family=family,
    )


@dataclass
class PreparedANN:
    """What every method of one ANN starts from: computed once per ANN, not once per cell."""

    key: str
    bundle: DataBundle
    ann: torch.nn.Module  # as trained or loaded; never changed by a method
    ann_acc: float
    train_info: dict[str, Any]
    # steps → (the ANN calibration compares with, its uncalibrated SNN, what the conversion measured);
    # each method calibrates a copy of the SNN.
    converted: dict[int, tuple[torch.nn.Module, torch.nn.Module, dict[str, Any]]]


# The last ANN prepared in this process. The runner runs the methods of one ANN one after another
# in one process (runner.groups), so each of them after the first finds it here.
_PREPARED: dict[str, PreparedANN] = {}


def _prepared_key(cell: Cell, ctx: RunContext) -> str:
    """Everything the prepared ANN depends on: the cell without its method, and where things live."""
    cfg = cell.config()
    del cfg["method"], cfg["suite"]
    cfg["where"] = {"device": str(ctx.device), "cache": str(ctx.cache_dir), "data": str(ctx.data_root)}
    return config_hash(cfg, 32)


def prepare_once(cell: Cell, ctx: RunContext) -> PreparedANN:
    """The dataset, trained ANN and its accuracy of ``cell``'s ANN (its conversions are added as they
    are made); the methods after the first reuse them (reported as ``ann_source: cache``, as a
    cached ANN is)."""
    key = _prepared_key(cell, ctx)
    found = _PREPARED.get(key)
    if found is not None:
        return dataclasses.replace(found, train_info={"train_s": 0.0, "ann_source": "cache"})
    _PREPARED.clear()  # one ANN at a time: a large model's weights are not kept beside the next
    bundle = load_cell_data(cell, ctx.data_root)
    if is_torchvision(cell.model.name) and cell.dataset.name == "imagenet":
        own = eval_transform(cell.model.name, cell.model.params.get("weights"))
        if own is not None:  # evaluate as the weights were evaluated (their resize and crop)
            from snnbench.data.vision import with_eval_transform

            bundle = with_eval_transform(bundle, own)
    ann, train_info = prepare_ann(cell, bundle, ctx)
    ann_acc = evaluate_ann(ann, bundle.test, ctx.device, cell.training.eval_batch_size)
    prepared = PreparedANN(key, bundle, ann, ann_acc, train_info, converted={})
    _PREPARED[key] = prepared
    return prepared


def run_conversion_cell(cell: Cell, ctx: RunContext) -> dict[str, Any]:
    prepared = prepare_once(cell, ctx)
    bundle, ann, train_info = prepared.bundle, prepared.ann, prepared.train_info
    if cell.model.params.get("family") == "snnc":
        from snnbench.conversion.snnc_pipeline import run_snnc_conversion

        # A copy: the SNNC route folds BN into the network it is given, and the next method starts
        # from the prepared ANN as trained.
        result = run_snnc_conversion(cell, ctx, bundle, copy.deepcopy(ann))
        return {
            "ann_acc": prepared.ann_acc,
            "train_s": train_info["train_s"],
            "ann_source": train_info["ann_source"],
            **result,
        }
    steps = max(cell.timesteps)
    runs = [steps]
    if _shift_per_t(cell, ann):  # the RTS scripts run each T on its own, with --shift_snn $T
        runs = sorted(set(cell.timesteps))
    results = {t: convert_and_evaluate(cell, prepared, t, ctx) for t in runs}
    last = results[steps]
    curve = last["curve"]
    snn_acc = {str(t): (results[t] if t in results else last)["curve"][t - 1] for t in cell.timesteps}
    if len(runs) > 1:
        last["info"]["shift_snn"] = "per T"
    return {
        "ann_acc": prepared.ann_acc,
        "snn_acc": snn_acc,
        "snn_acc_curve": curve,
        "train_s": train_info["train_s"],
        "ann_source": train_info["ann_source"],
        "calibrate_s": sum(r["calibrate_s"] for r in results.values()),
        "evaluate_s": sum(r["evaluate_s"] for r in results.values()),
        "test_samples": len(bundle.test),
        "neurobench": last["neurobench"],
        **last["info"],
    }


def _shift_per_t(cell: Cell, ann: torch.nn.Module) -> bool:
    from snnbench.conversion.rts import is_rts

    return is_rts(ann) and cell.model.params.get("shift_snn") is None


def convert_and_evaluate(cell: Cell, prepared: PreparedANN, steps: int, ctx: RunContext) -> dict[str, Any]:
    """Convert the prepared ANN (once per ANN and ``steps``), calibrate a copy for ``steps`` and
    evaluate at every T <= ``steps``: the accuracy curve, the seconds of both, NeuroBench metrics
    (counted in the same simulation) and what conversion and calibration report."""
    bundle = prepared.bundle
    if steps not in prepared.converted:
        prepared.converted[steps] = convertible_snn(cell, bundle, prepared.ann, steps, ctx.device)
    ann, uncalibrated, threshold_info = prepared.converted[steps]
    snn = copy.deepcopy(uncalibrated)
    t0 = time.perf_counter()
    extra = calibrate(cell.method.name, calibration_request(cell, ctx, bundle, ann, snn, steps))
    # With --compare-reference the wall time also holds the reference loop; report the method alone.
    calibrate_s = extra.get("calibration_core_s", time.perf_counter() - t0)

    t0 = time.perf_counter()
    chunk = simulation_chunk(bundle, steps, cell.training.eval_batch_size)
    curve, neurobench = evaluate_snn(
        snn, bundle, steps, ctx.device, cell.training.eval_batch_size, ctx.progress, chunk=chunk
    )
    return {
        "curve": curve,
        "calibrate_s": calibrate_s,
        "evaluate_s": time.perf_counter() - t0,
        "neurobench": neurobench,
        "info": {**threshold_info, **extra},
    }


def convertible_snn(
    cell: Cell, bundle: DataBundle, ann: torch.nn.Module, steps: int, device: torch.device
) -> tuple[torch.nn.Module, torch.nn.Module, dict[str, Any]]:
    """(the ANN calibration compares with, its SNN, what the conversion measured): a QCFS ANN as it
    is, a ReLU ANN with data-based thresholds, an RTS ANN the RTS code's way (conversion/rts.py)."""
    from snnbench.conversion.rts import is_rts

    if is_rts(ann):
        return (ann, *rts_snn(cell, bundle, ann, steps, device))
    threshold_info: dict[str, Any] = {}
    if not has_qcfs(ann):
        ann, threshold_info = threshold_relu_ann(cell, bundle, ann, steps, device)
    return ann, convert(ann), threshold_info


def rts_snn(
    cell: Cell, bundle: DataBundle, ann: torch.nn.Module, steps: int, device: torch.device
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The RTS SNN: IF thresholds at each layer's largest activation on ``threshold_batches``
    (default 5) training batches of 128, the shift of ``shift_snn`` (default T_max), a spiking
    classifier unless ``spiking_output: false``."""
    from snnbench.conversion.calibration import calibration_batches
    from snnbench.conversion.rts import convert_rts, rts_thresholds, shift_for

    params = cell.model.params
    count = int(params.get("threshold_batches", 5))
    batches = calibration_batches(bundle.calibration, count, 128, cell.seed, device)
    thresholds = rts_thresholds(ann, batches)
    shift = shift_for(params.get("shift_snn"), steps)
    spiking_output = bool(params.get("spiking_output", True))
    snn = convert_rts(ann, thresholds, shift, spiking_output)
    return snn, {
        "activation": "rts",
        "threshold_rule": "max",
        "threshold_batches": len(batches),
        "thresholds": thresholds,
        "shift_snn": shift,
        "spiking_output": spiking_output,
    }


def threshold_relu_ann(
    cell: Cell, bundle: DataBundle, ann: torch.nn.Module, steps: int, device: torch.device
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A ReLU ANN made convertible: traced, BN folded, each ReLU clipped at a data-based threshold
    (``threshold``, default ``max``; per layer, or per channel with ``threshold_granularity: channel``)
    from ``threshold_batches`` (default 5) training batches of 128. The SNN Calibration family folds
    BN with its own formula."""
    from snnbench.conversion.calibration import calibration_batches
    from snnbench.conversion.thresholds import relu_thresholds

    params = cell.model.params
    rule_text = params.get("threshold", "max")
    rule = parse_threshold(rule_text)
    prepared = relu_graph(ann, fold="snnc" if params.get("family") == "snnc" else "torch").to(device)
    count = int(params.get("threshold_batches", 5))
    batches = calibration_batches(bundle.calibration, count, 128, cell.seed, device)
    granularity = params.get("threshold_granularity", "layer")
    thresholds = relu_thresholds(prepared, batches, rule, steps, granularity=granularity)
    clipped_acc = evaluate_ann(prepared, bundle.test, device, cell.training.eval_batch_size)
    return prepared, {
        "activation": "relu",
        "threshold_rule": str(rule_text),
        "threshold_batches": len(batches),
        "thresholds": thresholds,
        "ann_clipped_acc": clipped_acc,
    }
