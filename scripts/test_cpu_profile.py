"""Where the test suite's CPU goes, test by test: a pytest plugin and its report.

Wall time per test (``pytest --durations``) misleads under pytest-xdist on two cores: a test waits for
the core the other worker holds, and its subprocesses are not its own. This plugin writes, per test,
the CPU seconds of its worker and of the subprocesses the worker waited for during it (``python -m
snnbench`` runs; not the run pool's workers, children of its fork server, nor Ray's processes), and
the wall seconds, one JSON line each; the workers append to one file.

    PYTHONPATH=$PWD/scripts PYTEST_PLUGINS=test_cpu_profile SNNBENCH_TEST_PROFILE=prof.jsonl make test
    .venv/bin/python scripts/test_cpu_profile.py prof.jsonl 30    # the total, the costliest tests and files

(``PYTEST_PLUGINS`` is pytest's own environment variable for plugins to load.)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):  # wraps the test's setup, call and teardown
    out = os.environ.get("SNNBENCH_TEST_PROFILE")
    wall0, cpu0 = time.perf_counter(), _cpu_s()
    yield
    if out:
        line = {"test": item.nodeid, "cpu_s": _cpu_s() - cpu0, "wall_s": time.perf_counter() - wall0}
        with open(out, "a") as f:  # one short append per line: the workers' lines do not interleave
            f.write(json.dumps(line) + "\n")


def report(path: Path, top: int = 30) -> str:
    """The total CPU and wall seconds, then the ``top`` costliest tests and the costliest files."""
    import pandas as pd

    frame = pd.read_json(path, lines=True)
    frame["file"] = frame["test"].str.split("::").str[0]
    lines = [f"{len(frame)} tests: {frame.cpu_s.sum():.1f} CPU-s, {frame.wall_s.sum():.1f} s of test wall time"]
    lines.append(frame.nlargest(top, "cpu_s")[["cpu_s", "wall_s", "test"]].to_string(index=False, float_format="%.1f"))
    by_file = frame.groupby("file")[["cpu_s", "wall_s"]].sum().nlargest(top, "cpu_s")
    lines.append(by_file.to_string(float_format="%.1f"))
    return "\n\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 30))
