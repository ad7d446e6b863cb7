"""Run cells as Ray tasks, on an existing cluster (``address``) or a local Ray started here.

Each cell is one task with its resource request: one GPU and one CPU when the suite runs on CUDA
(``device: cuda``, or ``auto`` on a cluster that has GPUs); on the CPU, as many CPUs as torch uses
threads in the driver (``SNNBENCH_RAY_CPUS_PER_CELL`` overrides), so that a cell computes exactly
what the local executor computes (CPU sums depend on the thread count). Tasks return their metrics
to the driver, and only the driver writes results (see sweep.execute), so the file lock and the
one-line fsynced appends keep working unchanged. A failed task — an exception in the cell, or a worker that
died — is reported and retried once; the other cells keep running meanwhile.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import replace
from typing import Any, Callable, Iterable, Iterator, Optional

from snnbench.errors import UnusableInputError, UsageError
from snnbench.records.cells import Cell
from snnbench.context import ProgressReporter, RunContext
from snnbench import interrupts
from snnbench.runner.executors import Outcome
from snnbench.runner.tracks import run_cell


def _run_cell_task(
    cell: Cell, ctx: RunContext, runner: Callable[[Cell, RunContext], dict], gpus: float, threads: int
) -> dict:
    """The body of one Ray task. Exceptions are returned, not raised, so the driver sees the cause."""
    import torch

    # Ray pins a worker to one thread; CPU training sums in a thread-dependent order, so the cell
    # uses as many threads as it asked CPUs for (by default, as many as a local run would use).
    torch.set_num_threads(max(1, threads))
    device = torch.device("cuda" if gpus > 0 and torch.cuda.is_available() else "cpu")
    worker_ctx = replace(ctx, device=device)
    t0 = time.perf_counter()
    try:
        metrics = runner(cell, worker_ctx)
    except UnusableInputError as err:  # the driver ends the run with this message, as a local run does
        return {"metrics": None, "wall_s": time.perf_counter() - t0, "unusable": str(err)}
    except Exception as err:  # reported to the driver, which decides about the retry
        interrupts.raise_if_interrupt(err)  # ray.cancel's KeyboardInterrupt, wrapped by a library: cancelled
        return {
            "metrics": None,
            "wall_s": time.perf_counter() - t0,
            "error": f"{type(err).__name__}: {err}",
            "detail": traceback.format_exc(),
        }
    return {"metrics": metrics, "wall_s": time.perf_counter() - t0, "error": None, "detail": None}


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class RayExecutor:
    """``run(cells)`` yields an :class:`Outcome` per cell as tasks finish (not in cell order)."""

    name = "ray"

    def __init__(
        self,
        ctx: RunContext,
        address: Optional[str] = None,
        suite: Any = None,
        *,
        runner: Callable[[Cell, RunContext], dict] = run_cell,
        retries: int = 1,
        cpus_per_cell: Optional[int] = None,
        report: Callable[[str], None] = _stderr,
        init_kwargs: Optional[dict[str, Any]] = None,
    ) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UsageError("--executor ray needs Ray: pip install 'snnbench[ray]' (or pip install ray)") from None
        self.ctx = ctx
        self.address = address
        self.suite = suite
        self.runner = runner
        self.retries = retries
        self.cpus_per_cell = cpus_per_cell
        self.report = report
        self.init_kwargs = dict(init_kwargs or {})
        self._started_ray = False

    # -- Ray lifecycle ------------------------------------------------------------------------------

    def _ensure_ray(self) -> None:
        import ray

        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.address:
            kwargs["address"] = self.address
        else:
            kwargs["num_cpus"] = os.cpu_count() or 1
        kwargs.update(self.init_kwargs)
        ray.init(**kwargs)
        self._started_ray = True

    def _shutdown(self) -> None:
        import ray

        if self._started_ray and ray.is_initialized():
            ray.shutdown()
        self._started_ray = False

    def cpus_for(self, gpus: float) -> int:
        """CPUs (= torch threads) per cell: explicit, else 1 beside a GPU, else the driver's threads."""
        import ray
        import torch

        if self.cpus_per_cell is not None:
            return max(1, int(self.cpus_per_cell))
        env = os.environ.get("SNNBENCH_RAY_CPUS_PER_CELL")
        if env:
            return max(1, int(env))
        if gpus > 0:
            return 1
        total = int(ray.cluster_resources().get("CPU", 1)) or 1
        return max(1, min(torch.get_num_threads(), total))

    def gpus_per_cell(self) -> float:
        """1 on CUDA suites (``cuda``, or ``auto`` where the cluster has GPUs), else 0."""
        import ray

        device = getattr(self.suite, "device", None) or self.ctx.device.type
        if device == "cuda":
            return 1.0
        if device == "auto":
            return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        return 0.0

    # -- running ------------------------------------------------------------------------------------

    def run(self, cells: Iterable[Cell]) -> Iterator[Outcome]:
        cells = list(cells)
        if not cells:
            return
        import ray

        self._ensure_ray()
        gpus = self.gpus_per_cell()
        cpus = self.cpus_for(gpus)
        task = ray.remote(_run_cell_task).options(
            num_cpus=cpus,
            num_gpus=gpus,
            max_retries=0,  # retries are decided here, so a failure is reported before it is retried
        )
        # The context travels once through the object store instead of once per task.
        # Workers draw nothing (the driver shows per-cell progress), so they get a silent reporter.
        ctx_ref = ray.put(replace(self.ctx, progress=ProgressReporter()))
        pending: dict[Any, tuple[Cell, int, float]] = {}

        def submit(cell: Cell, attempt: int) -> None:
            pending[task.remote(cell, ctx_ref, self.runner, gpus, cpus)] = (cell, attempt, time.perf_counter())

        try:
            for cell in cells:
                submit(cell, 1)
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                cell, attempt, started = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as err:  # the worker died or Ray lost the task
                    interrupts.raise_if_interrupt(err)
                    result = {
                        "metrics": None,
                        "wall_s": time.perf_counter() - started,
                        "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
                        "detail": str(err),
                    }
                if result.get("unusable"):
                    raise UsageError(result["unusable"])
                if result["metrics"] is None and attempt <= self.retries:
                    self.report(f"cell {cell.key} failed (attempt {attempt}): {result['error']}; retrying")
                    submit(cell, attempt + 1)
                    continue
                yield Outcome(
                    cell, result["metrics"], result["wall_s"], result["error"], result["detail"], attempts=attempt
                )
        finally:
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # cleanup: one failed cancel must not keep the others or the shutdown from running
                    pass
            self._shutdown()
