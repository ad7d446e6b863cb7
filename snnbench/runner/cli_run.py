"""`snnbench run` in a terminal: the sweep with rich progress bars and a results table at the end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rich.console import Console
from rich.text import Text
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from snnbench.config import Suite
from snnbench.errors import UsageError
from snnbench.context import RichProgressReporter
from snnbench.runner.executors import LocalExecutor, Outcome
from snnbench.runner.store import latest_by_key, read_records
from snnbench.runner.preflight import preflight
from snnbench.runner.sweep import default_context, execute, plan_sweep, resolve_cache_dir


@dataclass
class SweepOutcome:
    exit_code: int  # 0 every cell recorded, 1 some cell failed
    path: Path
    records: list[dict[str, Any]]  # this suite's records, newest per cell, for the closing table


def make_executor(name: str, suite: Suite, ctx, address: Optional[str]):
    if name == "local":
        return LocalExecutor(ctx)
    if name == "ray":
        from snnbench.runner.ray_executor import RayExecutor

        return RayExecutor(ctx, address=address, suite=suite)
    raise UsageError(f"--executor {name!r}: expected 'local' or 'ray'")


def run_with_progress(
    suite: Suite,
    *,
    console: Console,
    results_dir: Optional[Path] = None,
    force: bool = False,
    data_root: Optional[Path] = None,
    cache_dir: Optional[Path] = None,
    executor: str = "local",
    address: Optional[str] = None,
    compare_reference: bool = False,
) -> SweepOutcome:
    """Run the suite with live progress; the caller renders the closing table."""
    if address is not None and executor != "ray":
        raise UsageError(f"--address {address} needs --executor ray (the local executor runs no cluster)")
    plan = plan_sweep(suite, results_dir, force)
    for problem in plan.problems:
        console.print(Text.assemble(("warning:", "yellow"), f" {problem}; that cell will be run again"), highlight=False)
    console.print(
        Text.assemble("suite ", (suite.name, "bold"), f": {len(plan.todo) + len(plan.skipped)} cells, "
                      f"{len(plan.skipped)} already in {plan.path}, {len(plan.todo)} to run"),
        highlight=False,
    )
    preflight(suite, plan.todo, plan.path, data_root=data_root, cache_dir=resolve_cache_dir(cache_dir),
              executor=executor, address=address)

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    summary = None
    with progress:
        ctx = default_context(
            suite,
            data_root=data_root,
            cache_dir=cache_dir,
            progress=RichProgressReporter(progress),
            compare_reference=compare_reference,
        )
        cells_task = progress.add_task("cells", total=len(plan.todo))

        def report(outcome: Outcome) -> None:
            progress.advance(cells_task)
            if outcome.error:
                progress.console.print(Text.assemble(("cell failed", "red"), f" {outcome.cell.key}: {outcome.error}"),
                                       highlight=False)
            else:
                progress.console.print(Text.assemble(("done", "green"), f" {outcome.cell.key} ({outcome.wall_s:.1f} s)"),
                                       highlight=False)

        try:
            summary = execute(plan, make_executor(executor, suite, ctx, address), on_outcome=report)
        except KeyboardInterrupt:
            keys = {c.key for c in plan.todo} | {c.key for c in plan.skipped}
            recorded = len(keys & {r["key"] for r in read_records(plan.path, warn=False).records})
            raise KeyboardInterrupt(
                f"interrupted: {recorded} of {len(keys)} cells recorded in {plan.path}; rerun to resume"
            ) from None

    for failed in summary.failed:
        console.print(Text.assemble(("failed:", "red"), f" {failed.cell.key}: {failed.error}"), highlight=False)
        if failed.detail:
            console.print(failed.detail, highlight=False, markup=False)
    records = latest_by_key(read_records(plan.path, warn=False).records)
    keys = {c.key for c in plan.todo} | {c.key for c in plan.skipped}
    return SweepOutcome(1 if summary.failed else 0, plan.path, [r for r in records if r["key"] in keys])
