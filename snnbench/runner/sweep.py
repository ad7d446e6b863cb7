"""Run a suite: expand to cells, skip the ones already recorded, run the rest, append each record.

Each finished cell is written at once (one fsynced line), so a crash loses at most the cell in
progress; a rerun skips what is recorded and redoes the rest. ``force`` reruns every cell.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from snnbench.config import Suite
from snnbench.data.paths import default_cache_dir
from snnbench.runner.cells import Cell, expand
from snnbench.context import ProgressReporter, RunContext, resolve_device
from snnbench.runner.env import environment
from snnbench.runner.executors import LocalExecutor, Outcome
from snnbench.runner.store import SCHEMA_VERSION, ResultStore, done_keys


@dataclass
class SweepPlan:
    suite: Suite
    path: Path
    todo: list[Cell]
    skipped: list[Cell]
    problems: list[str]  # unreadable lines found in the existing results file
    force: bool = False


@dataclass
class SweepSummary:
    path: Path
    ran: list[Outcome] = field(default_factory=list)
    failed: list[Outcome] = field(default_factory=list)
    skipped: int = 0
    problems: list[str] = field(default_factory=list)


def check_models(suite: Suite, path: Path) -> None:
    """Model names and parameters are checked against the code when a suite is loaded, so a typo
    stops the sweep with a located error instead of failing each cell after others have trained."""
    from snnbench.config import SuiteError

    problems = []
    for i, model in enumerate(suite.models):
        try:
            if suite.track == "conversion":
                from snnbench.models.registry import model_parameters

                accepted = model_parameters(model.name)
            elif suite.track == "direct":
                from snnbench.training.conv_train import model_parameters as direct_parameters

                accepted = direct_parameters(model.name)
            else:
                from snnbench.training.pipeline import SUPPORTED_MODELS
                from snnbench.training.snn_mlp import MODEL_PARAMETERS

                if model.name not in SUPPORTED_MODELS:
                    raise ValueError(f"unknown training-track model {model.name!r}; expected one of {list(SUPPORTED_MODELS)}")
                accepted = set(MODEL_PARAMETERS)
        except ValueError as err:
            problems.append(f"  models.{i}.name: {err}")
            continue
        for key in model.params:
            if key not in accepted:
                problems.append(
                    f"  models.{i}.{key}: not a parameter of model {model.name!r}; expected one of {sorted(accepted)}"
                )
    if problems:
        raise SuiteError(f"{path}: invalid suite ({len(problems)} problem{'s' if len(problems) > 1 else ''})\n" + "\n".join(problems))


def plan_sweep(suite: Suite, results_dir: Optional[Path] = None, force: bool = False) -> SweepPlan:
    path = suite.results_path(results_dir)
    store = ResultStore(path)
    report = store.read(warn=False)
    done = set() if force else done_keys(report.records)
    todo, skipped = [], []
    for cell in expand(suite):
        (skipped if cell.key in done else todo).append(cell)
    return SweepPlan(suite, path, todo, skipped, report.problems, force)


def make_record(cell: Cell, metrics: dict[str, Any], wall_s: float, env: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "key": cell.key,
        "suite": cell.suite,
        "track": cell.track,
        "dataset": cell.dataset.name,
        "model": cell.model.name,
        "method": cell.method.name,
        "seed": cell.seed,
        "config": cell.config(),
        "metrics": metrics,
        "wall_s": wall_s,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "env": env,
    }


def preflight_datasets(suite: Suite, data_root: Optional[Path]) -> None:
    """Load every dataset once before any training, so missing data stops the sweep at once."""
    from snnbench.data.registry import load_dataset

    # The same augmentation the cells will ask for, so their load is this one, from the cache.
    augment = suite.training.augment if suite.track == "conversion" else False
    if suite.track == "direct":  # event frames depend on the cell's T: check the files the cells read
        from snnbench.training.conv_train import load_direct_dataset

        for spec in suite.datasets:
            load_direct_dataset(spec, data_root, suite.training.augment, max(suite.timesteps))
        return
    for spec in suite.datasets:
        load_dataset(spec, data_root, augment=augment)


def default_context(suite: Suite, *, data_root=None, cache_dir=None, progress=None, compare_reference=False) -> RunContext:
    cache = Path(cache_dir or os.environ.get("SNNBENCH_CACHE") or default_cache_dir())
    return RunContext(
        device=resolve_device(suite.device),
        cache_dir=cache,
        data_root=Path(data_root) if data_root else None,
        progress=progress or ProgressReporter(),
        compare_reference=compare_reference,
    )


def execute(
    plan: SweepPlan,
    executor,
    *,
    on_outcome: Optional[Callable[[Outcome], None]] = None,
) -> SweepSummary:
    """Run the planned cells with ``executor`` and append a record for each success, as it arrives."""
    store = ResultStore(plan.path)
    store.prepare()
    summary = SweepSummary(plan.path, skipped=len(plan.skipped), problems=list(plan.problems))
    env = environment()
    for outcome in executor.run(plan.todo):
        if outcome.metrics is not None:
            # Without --force a cell that a concurrent run recorded meanwhile is not recorded twice.
            store.append(make_record(outcome.cell, outcome.metrics, outcome.wall_s, env), unless_recorded=not plan.force)
            summary.ran.append(outcome)
        else:
            summary.failed.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return summary


def run_suite(
    suite: Suite,
    *,
    results_dir: Optional[Path] = None,
    force: bool = False,
    data_root: Optional[Path] = None,
    cache_dir: Optional[Path] = None,
    progress: Optional[ProgressReporter] = None,
    compare_reference: bool = False,
) -> SweepSummary:
    """Programmatic entry point: run a suite locally without any terminal output."""
    plan = plan_sweep(suite, results_dir, force)
    if plan.todo:
        preflight_datasets(suite, data_root)
    ctx = default_context(suite, data_root=data_root, cache_dir=cache_dir, progress=progress,
                          compare_reference=compare_reference)
    return execute(plan, LocalExecutor(ctx))
