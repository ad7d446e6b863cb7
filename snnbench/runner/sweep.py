"""Run a suite: expand to cells, skip the ones already recorded, run the rest, append each record.

Each finished cell is written at once (one fsynced line), so a crash loses at most the cell in
progress; a rerun skips what is recorded and redoes the rest. ``force`` reruns every cell.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from snnbench.config import Suite
from snnbench.data.paths import default_cache_dir
from snnbench.context import ProgressReporter, RunContext
from snnbench.errors import UsageError
from snnbench.records.cells import Cell, expand
from snnbench.records.device import resolve_device
from snnbench.records.env import environment
from snnbench.records.schema import make_record
from snnbench import interrupts
from snnbench.runner import EXECUTORS
from snnbench.runner.executors import LocalExecutor, Outcome
from snnbench.runner.parallel import default_jobs
from snnbench.runner.preflight import MAX_MODEL_PARAMETERS, preflight
from snnbench.records.store import ResultStore, done_keys, latest_by_key, read_records
from snnbench.runner.claims import CellClaims
from snnbench.runner.groups import grouped


@dataclass
class SweepPlan:
    suite: Suite
    path: Path
    todo: list[Cell]
    skipped: list[Cell]
    problems: list[str]  # unreadable lines found in the existing results file
    force: bool = False

    @property
    def keys(self) -> set[str]:
        """Every planned cell's key, recorded already or to run."""
        return {c.key for c in self.todo} | {c.key for c in self.skipped}


@dataclass
class SweepSummary:
    path: Path
    ran: list[Outcome] = field(default_factory=list)
    failed: list[Outcome] = field(default_factory=list)
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)  # the suite's records after the run

    @property
    def exit_code(self) -> int:
        """0 when every cell is recorded, 1 when some cell failed (what ``snnbench run`` exits with)."""
        return 1 if self.failed else 0


def check_models(suite: Suite, path: Path) -> None:
    """Model names and parameters are checked against the code when a suite is loaded, so a typo
    stops the sweep with a located error instead of failing each cell after others have trained."""
    from snnbench.config import SuiteError

    problems = []
    for i, model in enumerate(suite.models):
        earlier = len(problems)
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
                    raise ValueError(
                        f"unknown training-track model {model.name!r}; expected one of {list(SUPPORTED_MODELS)}"
                    )
                accepted = set(MODEL_PARAMETERS)
        except ValueError as err:
            problems.append(f"  models.{i}.name: {err}")
            continue
        unknown = [key for key in model.params if key not in accepted]
        for key in unknown:
            problems.append(
                f"  models.{i}.{key}: not a parameter of model {model.name!r}; expected one of {sorted(accepted)}"
            )
        from snnbench.models.registry import BOOLEAN_PARAMETERS

        for key, value in model.params.items():
            if isinstance(value, bool) and key not in unknown and key not in BOOLEAN_PARAMETERS:
                problems.append(
                    f"  models.{i}.{key}: expected a number or a name, got {value!r} (true/false are not numbers)"
                )
        # Built only when this model's own parameters are sound (an earlier model's problem is no reason to skip it).
        if len(problems) == earlier and suite.track == "conversion":
            problems += _threshold_problems(i, model) + _model_size_problems(i, model, suite)
        if model.checkpoint and not Path(model.checkpoint).expanduser().is_file():
            where = "is a folder" if Path(model.checkpoint).expanduser().is_dir() else "not found"
            problems.append(
                f"  models.{i}.checkpoint: {model.checkpoint} {where} (relative paths start "
                f"from the current folder, {Path.cwd()}); expected a saved state dict (.pt)"
            )
    if problems:
        raise SuiteError(
            f"{path}: invalid suite ({len(problems)} problem{'s' if len(problems) > 1 else ''})\n" + "\n".join(problems)
        )


def _model_size_problems(i: int, model, suite: Suite) -> list[str]:
    """Build the model on the meta device (no memory) to check its parameters' types and its size."""
    import torch

    from snnbench.models.registry import CONVERSION_PARAMETERS, build_model
    from snnbench.models.torchvision_models import is_torchvision

    if is_torchvision(model.name):  # fixed architectures: their size is torchvision's, not the suite's
        return []
    params = {k: v for k, v in model.params.items() if k not in CONVERSION_PARAMETERS}
    levels = params.pop("levels", suite.training.levels)
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")
            net = build_model(model.name, levels=levels, num_classes=1000, in_channels=3, **params)
    except Exception as err:  # noqa: BLE001 - negative sizes fail in torch itself (RuntimeError)
        interrupts.raise_if_interrupt(err)
        return [f"  models.{i}: model {model.name!r} cannot be built with {model.params}: {_first_line(err)}"]
    # A size of 0 builds (torch only warns) and trains a network whose output is its last bias.
    empty = [name for name, p in net.named_parameters() if p.numel() == 0]
    if empty:
        return [
            f"  models.{i}: model {model.name!r} with {model.params} has layers of size 0 ({', '.join(empty[:3])}); "
            "expected positive sizes"
        ]
    count = sum(p.numel() for p in net.parameters())
    if count > MAX_MODEL_PARAMETERS:
        return [
            f"  models.{i}: model {model.name!r} with {model.params} has {count:.3g} parameters; at most "
            f"{MAX_MODEL_PARAMETERS:.0e} are allowed (its weights alone would not fit in memory)"
        ]
    return []


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def _threshold_problems(i: int, model) -> list[str]:
    """Data-based threshold rules apply to ReLU networks only: a QCFS network converts its trained
    thresholds, an RTS network its layers' largest activations (measured on ``threshold_batches``)."""
    from snnbench.models.torchvision_models import is_torchvision

    activation = model.params.get("activation")
    if is_torchvision(model.name) or activation == "relu":
        return []
    given = [key for key in ("threshold", "threshold_batches") if key in model.params]
    if activation == "rts":
        given = [key for key in given if key != "threshold_batches"]
    kind = "its layers' largest activations (RTS)" if activation == "rts" else "its trained QCFS thresholds"
    return [
        f"  models.{i}.{key}: applies to ReLU networks (activation: relu, or a torchvision model); "
        f"model {model.name!r} converts {kind} and would ignore it"
        for key in given
    ]


def plan_sweep(suite: Suite, results_dir: Optional[Path] = None, force: bool = False) -> SweepPlan:
    path = suite.results_path(results_dir)
    from snnbench.runner.preflight import check_results_paths

    check_results_paths(path)
    store = ResultStore(path)
    report = store.read(warn=False)
    if report.problems:
        # A torn last line is reported this once and moved to FILE.corrupt, so later runs are quiet.
        moved = store.set_aside_torn_tail()
        if moved:
            report.problems.append(moved)
    done = set() if force else done_keys(report.records)
    todo, skipped = [], []
    for cell in expand(suite):
        (skipped if cell.key in done else todo).append(cell)
    # Cells that share work (the methods of one ANN) run one after another, so it is done once.
    todo = [cell for group in grouped(todo) for cell in group]
    return SweepPlan(suite, path, todo, skipped, report.problems, force)


def resolve_cache_dir(cache_dir: Optional[Path] = None) -> Path:
    return Path(cache_dir or os.environ.get("SNNBENCH_CACHE") or default_cache_dir())


def default_context(
    suite: Suite, *, data_root=None, cache_dir=None, progress=None, compare_reference=False
) -> RunContext:
    return RunContext(
        device=resolve_device(suite.device),
        cache_dir=resolve_cache_dir(cache_dir),
        data_root=Path(data_root) if data_root else None,
        progress=progress or ProgressReporter(),
        compare_reference=compare_reference,
    )


def make_executor(
    name: str,
    suites: list[Suite],
    ctx: RunContext,
    address: Optional[str] = None,
    jobs: int = 1,
    groups: int = 1,
):
    """The executor for the cells of ``suites``; the local one runs ``jobs`` worker processes when
    those cells form more than one group of shared work (runner.groups), else in this process."""
    if name == "local":
        jobs = min(jobs, groups)
        if jobs > 1:
            import torch

            from snnbench.runner.parallel import ParallelExecutor

            # Each worker gets its share of the threads a serial run would use (at least one).
            threads = max(1, torch.get_num_threads() // jobs)
            return ParallelExecutor(ctx, jobs, threads, [suite.track for suite in suites], name_suites=len(suites) > 1)
        return LocalExecutor(ctx)
    if jobs > 1:
        raise UsageError(f"--jobs {jobs} runs local worker processes; with --executor {name} the cluster schedules")
    if name == "ray":
        from snnbench.runner.ray_executor import RayExecutor

        (suite,) = suites  # a Ray sweep runs one suite at a time (see _partitions)
        return RayExecutor(ctx, address=address, suite=suite)
    raise UsageError(f"--executor {name!r}: expected one of {', '.join(EXECUTORS)}")


@dataclass
class _Target:
    """Where the records of one plan go: its results file, that file's cell claims, its summary."""

    plan: SweepPlan
    store: ResultStore
    claims: CellClaims
    summary: SweepSummary


def execute(
    plans: list[SweepPlan],
    executor,
    *,
    on_outcome: Optional[Callable[[Outcome], None]] = None,
    poll_s: float = 1.0,
    fingerprint: Callable[[], dict[str, Any]] = environment,
) -> list[SweepSummary]:
    """Run the planned cells of every plan with one ``executor`` and append a record for each success,
    as it arrives, to its own suite's results file. A summary per plan, in the plans' order."""
    targets = []
    for plan in plans:
        summary = SweepSummary(plan.path, skipped=len(plan.skipped), problems=list(plan.problems))
        targets.append(_Target(plan, ResultStore(plan.path), CellClaims(plan.path), summary))
        targets[-1].store.prepare()
    running = [target for target in targets if target.plan.todo]
    if running:  # a complete suite takes no fingerprint (seconds of subprocess calls) for nothing
        env = fingerprint()
        # Executors hand back the very cell objects they were given: the cell names its target.
        target_of = {id(cell): target for target in running for cell in target.plan.todo}
        try:
            with interrupts.watching():
                for outcome in executor.run(_claimed(running, poll_s)):
                    _record(target_of[id(outcome.cell)], outcome, env)
                    if on_outcome is not None:
                        on_outcome(outcome)
        finally:
            for target in running:
                target.claims.release_all()
    for target in targets:
        target.summary.records = suite_records(target.plan)
    return [target.summary for target in targets]


def _record(target: _Target, outcome: Outcome, env: dict[str, Any]) -> None:
    if outcome.metrics is not None:
        # Without --force a cell that a concurrent run recorded meanwhile is not recorded twice.
        record = make_record(outcome.cell, outcome.metrics, outcome.wall_s, _env_of(env, outcome), outcome.cpu_s)
        target.store.append(record, unless_recorded=not target.plan.force)
        target.summary.ran.append(outcome)
    else:
        target.summary.failed.append(outcome)
    target.claims.release(outcome.cell.key)


def _env_of(env: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    """The run's fingerprint, with the thread count of the worker that computed the cell."""
    if outcome.threads is None or env.get("hardware", {}).get("device") != "cpu":
        return env
    return {**env, "hardware": {**env["hardware"], "torch_threads": outcome.threads}}


def _claimed(targets: list[_Target], poll_s: float) -> Iterator[Cell]:
    """The cells of the targets' plans this process gets to compute, in plan order, each claimed just
    before it runs (with --force, every cell, unclaimed).

    A cell another live process is computing is passed over and asked for again later: recorded
    by then, it is skipped; its process died, it is claimed here and computed.
    """
    pending = [(target, cell) for target in targets for cell in target.plan.todo]
    while pending:
        busy = []
        for target, cell in pending:
            if target.plan.force:
                yield cell
                continue
            with target.store.lock():
                if cell.key in target.store.recorded_keys():
                    target.summary.skipped += 1  # another process recorded it meanwhile
                    continue
                if not target.claims.try_claim(cell.key):
                    busy.append((target, cell))
                    continue
            yield cell
        if busy and len(busy) == len(pending):
            time.sleep(poll_s)
        pending = busy


def suite_records(plan: SweepPlan) -> list[dict[str, Any]]:
    """The suite's records as the results file holds them now: the newest per planned cell."""
    keys = plan.keys
    return [r for r in latest_by_key(read_records(plan.path, warn=False).records) if r["key"] in keys]


def check_distinct_results(
    suites: list[Suite], results_dir: Optional[Path] = None, labels: Optional[list[str]] = None
) -> None:
    """Two suites of one sweep never write one results file (each file's records are one suite's)."""
    labels = labels or [f"suite {suite.name!r}" for suite in suites]
    seen: dict[Path, int] = {}
    for i, suite in enumerate(suites):
        path = suite.results_path(results_dir)
        first = seen.setdefault(path.expanduser().resolve(), i)
        if first != i:
            raise UsageError(
                f"{labels[first]} and {labels[i]} would both write {path}; expected one results file per "
                "suite (give each suite its own name or output:, or run them one at a time)"
            )


def _partitions(plans: list[SweepPlan], executor: str) -> list[list[SweepPlan]]:
    """The plans that share one executor. Local: the suites that allow parallel cells and run on the
    same device share one worker pool, in the order given; a ``parallel: false`` suite runs alone after
    them (its wall times are its result). Ray: one suite at a time."""
    if executor != "local":
        return [[plan] for plan in plans]
    shared: dict[str, list[SweepPlan]] = {}
    alone = []
    for plan in plans:
        if plan.suite.parallel:
            shared.setdefault(str(resolve_device(plan.suite.device)), []).append(plan)
        else:
            alone.append([plan])
    return list(shared.values()) + alone


def run_suites(
    suites: list[Suite],
    *,
    results_dir: Optional[Path] = None,
    force: bool = False,
    data_root: Optional[Path] = None,
    cache_dir: Optional[Path] = None,
    executor: str = "local",
    address: Optional[str] = None,
    progress: Optional[ProgressReporter] = None,
    compare_reference: bool = False,
    jobs: Optional[int] = None,
    on_plan: Optional[Callable[[SweepPlan], None]] = None,
    on_outcome: Optional[Callable[[Outcome], None]] = None,
) -> list[SweepSummary]:
    """Several suites in one sweep: every suite is planned and checked before any cell runs, then the
    cells of the suites that can share a worker pool (runner.parallel) run in one, handed out in the
    order the suites are given (give the longest suite first, so that no core idles at the end). Each
    record goes to its own suite's results file; a summary per suite, in the order given.

    ``run_suite`` is this sweep for one suite; the options are its own.
    """
    if address is not None and executor != "ray":
        raise UsageError(f"--address {address} needs --executor ray (the local executor runs no cluster)")
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs {jobs}: expected a positive number of worker processes")
    check_distinct_results(suites, results_dir)
    plans = [plan_sweep(suite, results_dir, force) for suite in suites]
    for plan in plans:
        if on_plan is not None:
            on_plan(plan)
    _start_pool_early(plans, executor, jobs)
    for plan in plans:  # bad input in the last suite stops the sweep before the first suite's cells
        preflight(
            plan.suite,
            plan.todo,
            plan.path,
            data_root=data_root,
            cache_dir=resolve_cache_dir(cache_dir),
            executor=executor,
            address=address,
        )
    summaries: dict[int, SweepSummary] = {}
    fingerprint = functools.cache(environment)  # taken once for the whole sweep, when a cell runs
    for part in _partitions(plans, executor):
        ctx = default_context(
            part[0].suite,
            data_root=data_root,
            cache_dir=cache_dir,
            progress=progress,
            compare_reference=compare_reference,
        )
        chosen = _executor_for(part, executor, ctx, address, jobs)
        done = execute(part, chosen, on_outcome=on_outcome, fingerprint=fingerprint)
        summaries.update({id(plan): summary for plan, summary in zip(part, done)})
    return [summaries[id(plan)] for plan in plans]


def _start_pool_early(plans: list[SweepPlan], executor: str, jobs: Optional[int]) -> None:
    """Where a local worker pool will run, its fork server starts before the preflight, so that the
    imports of the one and the checks of the other share the cores (wasted only if a check fails)."""
    if executor != "local":
        return
    try:
        parts = _partitions(plans, executor)
    except Exception as err:  # noqa: BLE001 - the preflight reports an unusable device with its own message
        interrupts.raise_if_interrupt(err)
        return
    for part in parts:
        device = resolve_device(part[0].suite.device)
        if min(_requested_jobs(part, executor, device.type, jobs), _groups(part)) > 1:
            from snnbench.runner.parallel import start_forkserver

            start_forkserver({plan.suite.track for plan in part})
            return  # one fork server per process: the first pool's


def _requested_jobs(part: list[SweepPlan], executor: str, device_type: str, jobs: Optional[int]) -> int:
    """``jobs`` None: one worker per core on the CPU, one per GPU, where the suites allow it (a partition
    is all ``parallel: true`` or one suite)."""
    if jobs is None:
        return default_jobs(device_type) if executor == "local" and part[0].suite.parallel else 1
    return jobs


def _groups(part: list[SweepPlan]) -> int:
    """Groups of shared work among the partition's cells: never more workers than these."""
    return sum(len(grouped(plan.todo)) for plan in part)


def _executor_for(part: list[SweepPlan], executor: str, ctx: RunContext, address: Optional[str], jobs: Optional[int]):
    requested = _requested_jobs(part, executor, ctx.device.type, jobs)
    return make_executor(executor, [plan.suite for plan in part], ctx, address, requested, _groups(part))


def run_suite(suite: Suite, **options: Any) -> SweepSummary:
    """Plan, check the data, run what is not recorded and append a record per finished cell.

    The one sweep both ``snnbench run`` and :func:`snnbench.run` call (:func:`run_suites` with one
    suite); they differ only in the ``progress``, ``on_plan`` and ``on_outcome`` hooks (rich bars and
    lines, or nothing). ``jobs``: worker processes of the local executor (runner.parallel); None: one
    per core on the CPU and one per GPU when the suite allows it (``parallel: true``, the default), else 1.
    """
    return run_suites([suite], **options)[0]
