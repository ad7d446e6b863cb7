"""`snnbench run --executor ray` on a local Ray on the CPU: the same records as the local executor,
only the driver writes, and a failed task is reported and retried once while the others finish.

The equality check runs a two-seed digits suite shaped like suites/digits.yaml but trained for one
epoch on a subset, to fit the CI budget.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import run_cli, tiny_digits_suite

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

TIMES = ("train_s", "calibrate_s", "evaluate_s", "calibration_core_s")


def _by_key(path: Path):
    from snnbench.records.store import read_records

    report = read_records(path, warn=False)
    assert not report.problems
    return {r["key"]: r for r in report.records}


def test_ray_executor_gives_the_same_records_as_local(tmp_path):
    suite = tiny_digits_suite(tmp_path, seeds=[0, 1])
    local = run_cli("run", str(suite), "--results-dir", str(tmp_path / "local"), "--cache-dir", str(tmp_path / "c1"))
    assert local.returncode == 0, local.stderr + local.stdout
    # A separate cache: the Ray workers train their own ANNs instead of loading the local ones.
    remote = run_cli(
        "run",
        str(suite),
        "--results-dir",
        str(tmp_path / "ray"),
        "--cache-dir",
        str(tmp_path / "c2"),
        "--executor",
        "ray",
    )
    assert remote.returncode == 0, remote.stderr + remote.stdout
    a, b = _by_key(tmp_path / "local" / "tiny.jsonl"), _by_key(tmp_path / "ray" / "tiny.jsonl")
    assert sorted(a) == sorted(b) and len(a) == 2
    for key in a:
        ma = {k: v for k, v in a[key]["metrics"].items() if k not in TIMES}
        mb = {k: v for k, v in b[key]["metrics"].items() if k not in TIMES}
        assert ma == mb, key  # deterministic CPU training: identical accuracies, not merely close
        for field in ("suite", "track", "dataset", "model", "method", "seed", "config", "schema"):
            assert a[key][field] == b[key][field]


def test_failed_tasks_are_reported_and_retried_once(tmp_path):
    import torch

    from snnbench.config import load_suite
    from snnbench.records.cells import expand
    from snnbench.context import RunContext
    from snnbench.runner.ray_executor import RayExecutor

    cells = expand(load_suite(tiny_digits_suite(tmp_path, seeds=[0, 1, 2, 3])))
    marks = tmp_path / "marks"
    marks.mkdir()

    def flaky(cell, ctx):
        # seed 0 raises once, seed 1 kills its worker once, seed 2 always raises, seed 3 is fine.
        first = not (marks / str(cell.seed)).exists()
        (marks / str(cell.seed)).touch()
        if cell.seed == 0 and first:
            raise RuntimeError("transient failure")
        if cell.seed == 1 and first:
            os._exit(3)
        if cell.seed == 2:
            raise ValueError("always broken")
        return {"seed": cell.seed, "device": ctx.device.type}

    messages: list[str] = []
    ctx = RunContext(device=torch.device("cpu"), cache_dir=tmp_path / "cache")
    executor = RayExecutor(ctx, runner=flaky, report=messages.append, cpus_per_cell=1, init_kwargs={"num_cpus": 2})
    outcomes = {o.cell.seed: o for o in executor.run(cells)}
    assert not ray.is_initialized()  # a Ray it started is shut down again

    assert outcomes[0].metrics == {"seed": 0, "device": "cpu"} and outcomes[0].attempts == 2
    assert outcomes[1].metrics is not None and outcomes[1].attempts == 2
    assert outcomes[2].metrics is None and outcomes[2].attempts == 2
    assert "always broken" in outcomes[2].error and "ValueError" in outcomes[2].detail
    assert outcomes[3].metrics is not None and outcomes[3].attempts == 1
    reported = "\n".join(messages)
    assert "seed=0" in reported and "transient failure" in reported
    assert "seed=1" in reported  # the dead worker
    assert reported.count("seed=2") == 1  # retried once, then given up
