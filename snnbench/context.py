"""What a track needs to run one cell besides the cell itself: device, folders, progress, options.

It sits below the tracks (conversion, training) and the runner that builds it, and imports neither,
so a pipeline never loads the runner.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import torch


class StepTracker:
    """One progress bar: call ``advance()`` per step. The base class shows nothing (Ray workers)."""

    def advance(self, n: int = 1) -> None:  # noqa: D401 - trivial
        pass

    def update(self, description: str) -> None:
        pass


class ProgressReporter:
    """Hands out progress bars for epochs and batches; silent unless a subclass draws them."""

    @contextmanager
    def track(self, description: str, total: Optional[int]) -> Iterator[StepTracker]:
        yield StepTracker()


class RichProgressReporter(ProgressReporter):
    def __init__(self, progress) -> None:  # progress: rich.progress.Progress
        self._progress = progress

    @contextmanager
    def track(self, description: str, total: Optional[int]) -> Iterator[StepTracker]:
        task = self._progress.add_task(description, total=total)
        progress = self._progress

        class _Tracker(StepTracker):
            def advance(self, n: int = 1) -> None:
                progress.advance(task, n)

            def update(self, description: str) -> None:
                progress.update(task, description=description)

        try:
            yield _Tracker()
        finally:
            progress.remove_task(task)


@dataclass
class RunContext:
    device: torch.device
    cache_dir: Path
    data_root: Optional[Path] = None
    progress: ProgressReporter = field(default_factory=ProgressReporter)
    compare_reference: bool = False  # time the official FTBC loop on the same batches too
