"""Executors run cells and yield their outcomes; only the caller (the driver) writes results."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional

from snnbench.errors import UnusableInputError
from snnbench.records.cells import Cell
from snnbench.context import RunContext
from snnbench import interrupts
from snnbench.runner.tracks import run_cell


@dataclass
class Outcome:
    cell: Cell
    metrics: Optional[dict[str, Any]]
    wall_s: float
    error: Optional[str] = None  # one-line reason when the cell failed
    detail: Optional[str] = None  # traceback, for the log
    attempts: int = 1
    threads: Optional[int] = None  # the torch threads of the process that ran it, when not the driver's
    cpu_s: Optional[float] = None  # CPU seconds (user + system, all threads) of the process that ran it


class LocalExecutor:
    """Runs cells one after another in this process (the default; progress bars are live)."""

    name = "local"

    def __init__(self, ctx: RunContext, runner: Callable[[Cell, RunContext], dict] = run_cell) -> None:
        self.ctx = ctx
        self.runner = runner

    def run(self, cells: Iterable[Cell]) -> Iterator[Outcome]:
        for cell in cells:
            interrupts.check()
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                metrics = self.runner(cell, self.ctx)
            except Exception as err:  # one broken cell must not stop the others
                interrupts.raise_if_interrupt(err)  # Ctrl-C that a library wrapped: not this cell's failure
                if isinstance(err, UnusableInputError):
                    raise  # unusable input ends the run (exit 2, its message) instead of failing cell after cell
                yield Outcome(
                    cell, None, time.perf_counter() - t0, f"{type(err).__name__}: {err}", traceback.format_exc()
                )
                continue
            interrupts.check()  # a cell that swallowed the interrupt may have cut its work short: not recorded
            yield Outcome(cell, metrics, time.perf_counter() - t0, cpu_s=time.process_time() - c0)
