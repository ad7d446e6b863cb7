"""Run the cells of one or more suites in several local processes (``snnbench run --jobs N``).

Each worker is a process of its own with its share of the CPU threads (``threads``: the driver's
torch threads divided among the workers) or, on CUDA, one GPU of its own. Workers are forked from a
``forkserver`` that imported torch and the code of every track to run once, so a worker starts in a
fraction of a second and never inherits an OpenMP pool the driver already used. The suites of one
``snnbench run A B C`` share the pool: their cells are handed out in the order the suites are given.

The driver hands out cells as workers free up, a group of shared work (runner.groups) to one worker:
the methods of one ANN queue behind the cell that trains it, so the ANN is trained once and the
methods after it reuse what the worker prepared. Workers only compute; the driver writes every record
(sweep.execute), under the same file lock and cell claims as a serial run, so the records are those
of a serial run with the same threads per cell except for their timing fields and their order.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
import traceback
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, Optional

from snnbench.context import ProgressReporter, RunContext, StepTracker
from snnbench.records.cells import Cell
from snnbench import interrupts
from snnbench.runner.executors import Outcome
from snnbench.runner.groups import shared_work_key

# The modules a worker needs, imported once in the fork server rather than once per worker.
_PRELOAD = {
    "conversion": "snnbench.conversion.pipeline",
    "training": "snnbench.training.pipeline",
    "direct": "snnbench.training.conv_train",
}
_PROGRESS_EVERY_S = 0.25  # a worker reports its progress at most this often


def default_jobs(device_type: str) -> int:
    """``SNNBENCH_JOBS`` when set, else one worker per core on the CPU and one per GPU on CUDA."""
    given = os.environ.get("SNNBENCH_JOBS", "").strip()
    if given:
        if not given.isdigit() or int(given) < 1:
            from snnbench.errors import UsageError

            raise UsageError(f"SNNBENCH_JOBS={given!r}: expected a positive number of worker processes")
        return int(given)
    if device_type == "cuda":
        import torch

        return max(1, torch.cuda.device_count())
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _forkserver_context(tracks: Iterable[str]):
    """The forkserver context, set to preload torch and the code of ``tracks``."""
    context = mp.get_context("forkserver")
    modules = dict.fromkeys(_PRELOAD.get(track, "snnbench.runner.tracks") for track in tracks)
    context.set_forkserver_preload(["torch", *modules])
    return context


def start_forkserver(tracks: Iterable[str]) -> None:
    """Start the fork server now: it imports torch and the tracks' code (3–4 s on a CPU), which then
    overlaps the driver's preflight on another core; the pool started later forks from it."""
    from multiprocessing import forkserver

    _forkserver_context(tracks)
    forkserver.ensure_running()


class _ForwardedProgress(ProgressReporter):
    """A worker's progress bars, sent to the driver as one line of text per running cell."""

    def __init__(self, worker: int, results: Any) -> None:
        self.worker, self.results = worker, results
        self.bars: list[list[Any]] = []  # [description, done, total] of the open bars, outermost first
        self.sent = 0.0

    def send(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.sent >= _PROGRESS_EVERY_S:
            text = " · ".join(f"{d} {n}/{t}" if t else d for d, n, t in self.bars)
            self.results.put(("progress", self.worker, text))
            self.sent = now

    def track(self, description: str, total: Optional[int]):
        reporter = self
        bar = [description, 0, total]

        class _Tracker(StepTracker):
            def advance(self, n: int = 1) -> None:
                bar[1] += n
                reporter.send()

            def update(self, text: str) -> None:
                bar[0] = text
                reporter.send()

        @contextmanager
        def opened():
            self.bars.append(bar)
            self.send(force=True)
            try:
                yield _Tracker()
            finally:
                self.bars.remove(bar)

        return opened()


def _worker(index: int, tasks: Any, results: Any, ctx: RunContext, threads: int, gpu: Optional[int]) -> None:
    """A worker's loop: run each cell it is sent until it is sent None."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)  # before torch sees CUDA: this worker's card only
    import torch

    from snnbench.runner.tracks import run_cell

    torch.set_num_threads(threads)
    _exit_with_the_driver()
    ctx = replace(ctx, progress=_ForwardedProgress(index, results))
    try:
        with interrupts.watching():
            _serve(index, tasks, results, ctx, run_cell)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the driver reports it
        return


def _exit_with_the_driver() -> None:
    """A worker whose driver was killed (SIGKILL leaves no time to stop it) exits within a second: its
    fork server exits with the driver, and the worker is then re-parented."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="snnbench-orphan-watch").start()


def _serve(index: int, tasks: Any, results: Any, ctx: RunContext, run_cell: Any) -> None:
    while True:
        cell = tasks.get()
        if cell is None:
            return
        results.put(("start", index, cell.key))
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            metrics = run_cell(cell, ctx)
        except Exception as err:  # one broken cell must not stop the others
            if interrupts.is_interrupt(err):  # Ctrl-C that a library wrapped: the driver reports it
                return
            reason = f"{type(err).__name__}: {err}"
            failed = ("done", index, cell.key, None, time.perf_counter() - t0, None, reason, traceback.format_exc())
            results.put(failed)
            continue
        if interrupts.requested():  # the cell swallowed the interrupt and may have cut its work short
            return
        wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        results.put(("done", index, cell.key, metrics, wall_s, cpu_s, None, None))


@dataclass
class _Slot:
    """The driver's view of one worker: its process, its queue and the cells sent to it."""

    process: Any
    tasks: Any
    queued: list[Cell] = field(default_factory=list)  # sent, not finished; the first is running
    line: Optional[StepTracker] = None  # its progress line while a cell runs
    closer: ExitStack = field(default_factory=ExitStack)  # closes that line

    @property
    def free(self) -> bool:
        return not self.queued and self.process.is_alive()


class ParallelExecutor:
    """``run(cells)`` yields an :class:`Outcome` per cell as workers finish them (not in cell order)."""

    name = "local"

    def __init__(
        self, ctx: RunContext, jobs: int, threads: int, tracks: Iterable[str], name_suites: bool = False
    ) -> None:
        """``tracks``: the tracks of the cells it will run (those of several suites may share one pool);
        ``name_suites``: the pool runs several suites' cells, so its progress lines name the suite."""
        self.ctx, self.jobs, self.threads = ctx, jobs, max(1, threads)
        self.tracks = [tracks] if isinstance(tracks, str) else list(tracks)
        self.name_suites = name_suites

    def _label(self, index: int, cell: Cell) -> str:
        return f"[{index + 1}] {cell.suite}: {cell.key}" if self.name_suites else f"[{index + 1}] {cell.key}"

    def _start(self) -> tuple[list[_Slot], Any]:
        context = _forkserver_context(self.tracks)
        results = context.Queue()
        worker_ctx = replace(self.ctx, progress=ProgressReporter())  # replaced in the worker
        cuda = self.ctx.device.type == "cuda"
        slots = []
        for index in range(self.jobs):
            tasks = context.Queue()
            args = (index, tasks, results, worker_ctx, self.threads, index if cuda else None)
            process = context.Process(target=_worker, args=args, daemon=True, name=f"snnbench-worker-{index}")
            process.start()
            slots.append(_Slot(process, tasks))
        return slots, results

    def run(self, cells: Iterable[Cell]) -> Iterator[Outcome]:
        pending = iter(cells)
        slots, results = self._start()
        owner: dict[str, int] = {}  # shared-work key → the worker computing that group
        exhausted = False
        try:
            while True:
                while not exhausted and any(s.free for s in slots):
                    cell = next(pending, None)
                    if cell is None:
                        exhausted = True
                        break
                    self._send(slots, owner, cell)
                if not any(s.queued for s in slots):
                    if exhausted:
                        return
                    # Every worker died: the cells left fail, named, rather than wait forever.
                    for cell in pending:
                        yield Outcome(cell, None, 0.0, "no worker left (each one died); rerun to resume", None)
                    return
                yield from self._collect(slots, results)
        finally:
            self._stop(slots)

    def _send(self, slots: list[_Slot], owner: dict[str, int], cell: Cell) -> None:
        key = shared_work_key(cell)
        index = owner.get(key)
        if index is None or not slots[index].queued:  # its group is not running: any free worker
            index = next(i for i, s in enumerate(slots) if s.free)
            owner[key] = index
        slots[index].queued.append(cell)
        slots[index].tasks.put(cell)

    def _collect(self, slots: list[_Slot], results: Any) -> Iterator[Outcome]:
        """Wait for the next message; yield the outcome it finishes, or those of a dead worker."""
        try:
            message = results.get(timeout=1.0)
        except queue.Empty:
            yield from self._reap(slots)
            return
        kind, index = message[0], message[1]
        slot = slots[index]
        if kind == "start":  # the worker's first queued cell is the one it started
            slot.line = slot.closer.enter_context(self.ctx.progress.track(self._label(index, slot.queued[0]), None))
        elif kind == "progress" and slot.line is not None and slot.queued:
            slot.line.update(f"{self._label(index, slot.queued[0])}: {message[2]}")
        elif kind == "done":
            _, _, key, metrics, wall_s, cpu_s, error, detail = message
            cell = slot.queued.pop(0)
            assert cell.key == key, f"worker {index + 1} finished {key}, expected {cell.key}"
            slot.closer.close()
            slot.line = None
            yield Outcome(cell, metrics, wall_s, error, detail, threads=self.threads, cpu_s=cpu_s)

    @staticmethod
    def _reap(slots: list[_Slot]) -> Iterator[Outcome]:
        """A worker that died (killed, out of memory, a crash in native code) fails its queued cells."""
        for index, slot in enumerate(slots):
            if slot.queued and not slot.process.is_alive():
                slot.closer.close()
                slot.line = None
                reason = f"worker {index + 1} died (exit code {slot.process.exitcode})"
                for cell in slot.queued:
                    yield Outcome(cell, None, 0.0, reason, None)
                slot.queued.clear()

    @staticmethod
    def _stop(slots: list[_Slot]) -> None:
        for slot in slots:
            slot.closer.close()
            if slot.process.is_alive():
                slot.tasks.put(None)
        deadline = time.monotonic() + 5.0
        for slot in slots:
            slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():  # interrupted mid-cell: its result would not be recorded anyway
                slot.process.terminate()
                slot.process.join()
