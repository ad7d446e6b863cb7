"""`snnbench run` in a terminal: the shared sweep with rich progress bars and a line per cell."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from snnbench.config import Suite
from snnbench.context import RichProgressReporter
from snnbench.records.store import ResultStore
from snnbench.runner.executors import Outcome
from snnbench.runner.sweep import SweepPlan, SweepSummary, run_suite


def run_with_progress(
    suite: Suite,
    *,
    console: Console,
    **options: Any,
) -> SweepSummary:
    """Run the suite with live progress; the caller renders the closing table. ``options`` are those of
    :func:`run_suite` (results_dir, force, data_root, cache_dir, executor, address, compare_reference)."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    cells_task = None

    def announce(plan: SweepPlan) -> None:
        nonlocal cells_task
        for problem in plan.problems:
            console.print(
                Text.assemble(("warning:", "yellow"), f" {problem}; that cell will be run again"), highlight=False
            )
        console.print(
            Text.assemble(
                "suite ",
                (suite.name, "bold"),
                f": {len(plan.todo) + len(plan.skipped)} cells, "
                f"{len(plan.skipped)} already in {plan.path}, {len(plan.todo)} to run",
            ),
            highlight=False,
        )
        cells_task = progress.add_task("cells", total=len(plan.todo))

    def report(outcome: Outcome) -> None:
        progress.advance(cells_task)
        if outcome.error:
            progress.console.print(
                Text.assemble(("cell failed", "red"), f" {outcome.cell.key}: {outcome.error}"), highlight=False
            )
        else:
            progress.console.print(
                Text.assemble(("done", "green"), f" {outcome.cell.key} ({outcome.wall_s:.1f} s)"), highlight=False
            )

    planned: list[SweepPlan] = []
    try:
        with progress:
            summary = run_suite(
                suite,
                progress=RichProgressReporter(progress),
                on_outcome=report,
                on_plan=lambda plan: (planned.append(plan), announce(plan)),
                **options,
            )
    except KeyboardInterrupt:
        if not planned:
            raise
        plan = planned[0]
        keys = plan.keys
        recorded = len(keys & ResultStore(plan.path).recorded_keys())
        raise KeyboardInterrupt(
            f"interrupted: {recorded} of {len(keys)} cells recorded in {plan.path}; rerun to resume"
        ) from None
    for failed in summary.failed:
        console.print(Text.assemble(("failed:", "red"), f" {failed.cell.key}: {failed.error}"), highlight=False)
        if failed.detail:
            console.print(failed.detail, highlight=False, markup=False)
    return summary
