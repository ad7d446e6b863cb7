"""`snnbench run --executor ray` on a local Ray on the CPU: the same records as the local executor,
only the driver writes, and a failed task is reported and retried once while the others finish.

The equality check runs a two-seed digits suite shaped like suites/digits.yaml but trained for one
epoch on a subset, to fit the CI budget, on a Ray started beforehand (the path of a cluster user:
``--address``); the retry check lets the executor start its own Ray and checks that it stops it.
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


@pytest.fixture
def running_ray():
    """A local Ray started here, as a cluster user has one running: ``snnbench run --address`` joins
    it (and leaves it running). Its address."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_ray_executor_on_a_running_cluster_gives_the_same_records_as_local(tmp_path, running_ray):
    from snnbench.config import load_suite
    from snnbench.runner.sweep import run_suite

    suite = tiny_digits_suite(
        tmp_path,
        seeds=[0, 1],
        timesteps=[1, 2],
        datasets=[{"name": "digits", "limit_train": 128, "limit_test": 64}],
        models=[{"name": "digits_cnn", "width": 4}],
    )
    # The local executor in this process, with one torch thread (tests/conftest.py); the Ray driver
    # asks one CPU per cell for the same single thread, so both cells run at once on the 2 CPUs.
    local = run_suite(load_suite(suite), results_dir=tmp_path / "local", cache_dir=tmp_path / "c1")
    assert len(local.ran) == 2 and not local.failed
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
        "--address",
        running_ray,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert remote.returncode == 0, remote.stderr + remote.stdout
    assert "Connecting to existing Ray cluster" in remote.stderr
    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2  # the cluster it joined still runs
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
