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
from snnbench.runner.sweep import SweepPlan, SweepSummary, run_suites


def run_with_progress(
    suites: list[Suite],
    *,
    console: Console,
    **options: Any,
) -> list[SweepSummary]:
    """Run the suites in one sweep with live progress: a "cells" bar per suite, a line per finished
    cell; the caller renders the closing tables. ``options`` are those of :func:`run_suites`
    (results_dir, force, data_root, cache_dir, executor, address, compare_reference, jobs)."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    bar_of: dict[int, Any] = {}  # a planned cell (by identity) → its suite's "cells" bar
    planned: list[SweepPlan] = []

    def announce(plan: SweepPlan) -> None:
        planned.append(plan)
        for problem in plan.problems:
            console.print(
                Text.assemble(("warning:", "yellow"), f" {problem}; that cell will be run again"), highlight=False
            )
        console.print(
            Text.assemble(
                "suite ",
                (plan.suite.name, "bold"),
                f": {len(plan.todo) + len(plan.skipped)} cells, "
                f"{len(plan.skipped)} already in {plan.path}, {len(plan.todo)} to run",
            ),
            highlight=False,
        )
        bar = progress.add_task("cells" if len(suites) == 1 else f"cells {plan.suite.name}", total=len(plan.todo))
        bar_of.update({id(cell): bar for cell in plan.todo})

    def named(cell) -> str:  # several suites' lines interleave: each names its suite
        return cell.key if len(suites) == 1 else f"{cell.suite}: {cell.key}"

    def report(outcome: Outcome) -> None:
        progress.advance(bar_of[id(outcome.cell)])
        if outcome.error:
            progress.console.print(
                Text.assemble(("cell failed", "red"), f" {named(outcome.cell)}: {outcome.error}"), highlight=False
            )
        else:
            progress.console.print(
                Text.assemble(("done", "green"), f" {named(outcome.cell)} ({outcome.wall_s:.1f} s)"), highlight=False
            )

    try:
        with progress:
            summaries = run_suites(
                suites, progress=RichProgressReporter(progress), on_outcome=report, on_plan=announce, **options
            )
    except KeyboardInterrupt:
        if not planned:
            raise
        raise KeyboardInterrupt(_interrupted(planned)) from None
    for summary in summaries:
        for failed in summary.failed:
            console.print(Text.assemble(("failed:", "red"), f" {named(failed.cell)}: {failed.error}"), highlight=False)
            if failed.detail:
                console.print(failed.detail, highlight=False, markup=False)
    return summaries


def _interrupted(plans: list[SweepPlan]) -> str:
    """What an interruption leaves behind: per suite, how many of its cells are recorded where."""
    counts = []
    for plan in plans:
        keys = plan.keys
        recorded = len(keys & ResultStore(plan.path).recorded_keys())
        counts.append(f"{recorded} of {len(keys)} cells recorded in {plan.path}")
    return f"interrupted: {', '.join(counts)}; rerun to resume"
