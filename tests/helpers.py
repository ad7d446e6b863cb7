"""Small utilities shared by tests: writing suite files and running the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]


def tiny_digits_suite(tmp_path: Path, name: str = "tiny", **overrides: Any) -> Path:
    """A conversion suite on digits small enough to run in a few seconds on a CPU."""
    suite = {
        "name": name,
        "track": "conversion",
        "datasets": [{"name": "digits", "limit_train": 256, "limit_test": 128}],
        "models": [{"name": "digits_cnn", "width": 8}],
        "timesteps": [1, 2, 4],
        "methods": ["qcfs"],
        "seeds": [0],
        "training": {"epochs": 1, "batch_size": 64, "lr": 0.05},
    }
    suite.update(overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def digits_record(key: str = "digits/digits_cnn/qcfs/seed=0/x", seed: int = 0, **fields: Any) -> dict:
    """A conversion record of the current schema, as ``snnbench run`` writes one (less config and env)."""
    record = {
        "schema": 1,
        "key": key,
        "suite": "s",
        "track": "conversion",
        "dataset": "digits",
        "model": "digits_cnn",
        "method": "qcfs",
        "seed": seed,
        "metrics": {"ann_acc": 98.0, "snn_acc": {"1": 50.0, "4": 97.0}},
    }
    return {**record, **fields}


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "snnbench", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=full_env,
        timeout=timeout,
    )


def run_python(code: str, timeout: float = 120) -> None:
    """Run ``code`` in a fresh interpreter (nothing this test process imported is loaded there)."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr


class _GivenG(torch.autograd.Function):
    """Heaviside forward; backward multiplies by a given g (the oracle's spike derivative)."""

    @staticmethod
    def forward(ctx, v, g):
        ctx.save_for_backward(g)
        return (v > 0).float()

    @staticmethod
    def backward(ctx, grad):
        (g,) = ctx.saved_tensors
        return grad * g, None


def spike_with_given_g(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Spikes ``H(v)`` whose backward uses the spike derivative ``g``: dense masked BPTT for oracles."""
    return _GivenG.apply(v, g)


def invoke_cli(*args: str):
    """``snnbench ARGS`` run in this process by typer's CliRunner: ``exit_code``, ``stdout`` and
    ``stderr`` apart, and an exception that escaped the CLI in ``exception`` (exit code 1). Milliseconds
    where :func:`run_cli` pays seconds of imports; keep one ``run_cli`` per verb for the console entry."""
    from typer.testing import CliRunner

    from snnbench.cli import app

    return CliRunner().invoke(app, [str(arg) for arg in args])


def timed_once(fn, device: str, **timing: Any) -> dict[str, float]:
    """A bench's ``measure`` for tests that check rows, not timings: one timed call instead of a
    warm-up and blocks (three calls or more; an interpreted kernel takes a good part of a second).
    The benches' real timings are checked on the GPU check's dry run (tests/test_gpu_check.py)."""
    import time

    start = time.perf_counter()
    fn()
    ms = (time.perf_counter() - start) * 1e3
    return {"median_ms": ms, "p20_ms": ms, "p80_ms": ms}


def flocked_files(pid: int, folder: Path) -> list[Path]:
    """The files in ``folder`` on which process ``pid`` holds an ``flock`` now (Linux: /proc/locks).

    Lets a test see, without touching the locks, whether a run holds a cell's claim at the moment it
    is killed, i.e. whether the kill lands inside that cell's work.
    """
    import pytest

    locks = Path("/proc/locks")
    if not locks.exists():  # gVisor and some containers have none
        pytest.skip("no /proc/locks here: cannot see which claim a run holds")
    inodes = set()
    for line in locks.read_text().splitlines():
        fields = line.split()
        if "FLOCK" in fields and "->" not in fields and len(fields) > 5 and fields[4] == str(pid):
            inodes.add(int(fields[5].rsplit(":", 1)[1]))
    try:
        files = list(folder.iterdir())
    except FileNotFoundError:
        return []
    return [path for path in files if path.stat().st_ino in inodes]
