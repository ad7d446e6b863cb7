"""Nothing lost, nothing doubled: SIGKILLed sweeps, concurrent writers, corrupt lines, unwritable
results.

These run real ``python -m snnbench run`` processes on a tiny digits suite (one epoch on a subset).
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import REPO, run_cli, tiny_digits_suite
from snnbench.cli import app

runner = CliRunner()


def _suite(tmp_path: Path, seeds=(0, 1, 2, 3), name="robust") -> Path:
    return tiny_digits_suite(
        tmp_path,
        name=name,
        seeds=list(seeds),
        timesteps=[1, 2],
        datasets=[{"name": "digits", "limit_train": 192, "limit_test": 64}],
        models=[{"name": "digits_cnn", "width": 4}],
    )


def _expected_keys(suite: Path) -> set[str]:
    from snnbench.config import load_suite
    from snnbench.records.cells import expand

    return {c.key for c in expand(load_suite(suite))}


def _lines(path: Path) -> list[dict]:
    """Every line of a results file parsed as JSON; fails on any partial or corrupt line."""
    raw = path.read_bytes()
    assert raw.endswith(b"\n"), "the results file ends in a partial line"
    out = []
    for number, line in enumerate(raw.split(b"\n")[:-1], start=1):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as err:
            pytest.fail(f"{path}:{number} is not valid JSON ({err}): {line[:80]!r}")
    return out


def _popen(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "snnbench", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs
    )


def test_sigkill_at_random_moments_then_rerun_records_each_cell_once(tmp_path):
    suite = _suite(tmp_path, seeds=range(5))
    args = ["run", str(suite), "--results-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    results = tmp_path / "out" / "robust.jsonl"
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    kills, recorded_at_kill = 0, []

    def recorded() -> int:
        return len(results.read_bytes().splitlines()) if results.exists() else 0

    for round_ in range(3):
        before = recorded()
        proc = _popen(args)
        # Start-up is slow and varies; kill at a random moment after this run recorded a cell, so
        # the kill lands in a later cell's training, evaluation or write (round 0: maybe earlier).
        deadline = time.monotonic() + 120
        while proc.poll() is None and recorded() == before and time.monotonic() < deadline:
            if round_ == 0 and rng.random() < 0.02:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.8))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
            recorded_at_kill.append(recorded())
        proc.communicate()
        if proc.returncode == 0:
            break
    final = run_cli(*args)
    assert final.returncode == 0, f"(rng seed {seed}) {final.stderr}{final.stdout}"
    keys = [r["key"] for r in _lines(results)]
    assert sorted(keys) == sorted(_expected_keys(suite)), f"rng seed {seed}, kills after {recorded_at_kill} records"
    # A further run finds everything recorded and would run nothing.
    from snnbench.config import load_suite
    from snnbench.runner.sweep import plan_sweep

    assert plan_sweep(load_suite(suite), tmp_path / "out").todo == []


def test_two_concurrent_runs_record_each_cell_once(tmp_path):
    suite = _suite(tmp_path, seeds=(0, 1))
    results_dir = tmp_path / "shared"
    procs = [
        _popen(["run", str(suite), "--results-dir", str(results_dir), "--cache-dir", str(tmp_path / "cache")])
        for i in range(2)
    ]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode() + out.decode()
    records = _lines(results_dir / "robust.jsonl")
    keys = [r["key"] for r in records]
    # Each cell is claimed by one process (tests/test_hardening_interrupts.py checks three and a
    # SIGKILL), and a record is written only if its key is not there yet: every cell once, none torn.
    assert sorted(keys) == sorted(_expected_keys(suite))
    for r in records:
        assert {"key", "metrics", "env", "config"} <= set(r) and "snn_acc" in r["metrics"]


def test_corrupt_and_truncated_lines_are_warnings_in_table_and_compare(tmp_path):
    good = {
        "schema": 1,
        "key": "digits/digits_cnn/qcfs/seed=0/x",
        "dataset": "digits",
        "model": "digits_cnn",
        "method": "qcfs",
        "seed": 0,
        "metrics": {"ann_acc": 99.0, "snn_acc": {"4": 98.0}},
    }
    path = tmp_path / "torn.jsonl"
    # Line 2 is garbage, line 3 a record cut off by a crash (no newline at the end).
    path.write_bytes((json.dumps(good) + "\n" + "\x00\x00garbage\n" + json.dumps(good)[:40]).encode())
    table = runner.invoke(app, ["table", str(path), "--format", "md", "--no-published"])
    assert table.exit_code == 0, table.output
    text = " ".join(table.output.split())
    assert "torn.jsonl:2: not valid JSON" in text and "torn.jsonl:3" in text and "truncated last line" in text
    assert "| qcfs | measured | 1 | 99.00 | 98.00 |" in table.output
    compare = runner.invoke(app, ["compare", str(path), str(path)])
    assert compare.exit_code == 0, compare.output
    assert "torn.jsonl:3" in " ".join(compare.output.split())


def test_results_folder_that_cannot_exist_is_a_clear_error(tmp_path):
    """Tests run as root, where chmod does not stop writes: a results folder under a regular file
    cannot be created by anyone, root included."""
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file, not a folder\n")
    result = runner.invoke(
        app,
        [
            "run",
            str(_suite(tmp_path, seeds=(0,))),
            "--results-dir",
            str(blocker / "results"),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "cannot create the folder of the results file" in " ".join(result.output.split())
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert blocker.read_text() == "a file, not a folder\n"


def _limit_file_size(limit: int):
    def apply() -> None:
        # EFBIG instead of the default SIGXFSZ kill, as a full disk gives ENOSPC instead of a kill.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_full_disk_is_a_clear_error_and_earlier_records_stay(tmp_path):
    """A "full disk" for the writing process, which works as root too: RLIMIT_FSIZE set to the
    current size of the results file, so the next append cannot write a byte (EFBIG, where a
    full disk gives ENOSPC — the store handles both as an OSError). The ANN is cached first so
    the rerun writes nothing but the record."""
    from snnbench.config import load_suite
    from snnbench.runner.sweep import run_suite

    suite = _suite(tmp_path, seeds=(0,))
    args = ["run", str(suite), "--results-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    first = run_suite(load_suite(suite), results_dir=tmp_path / "out", cache_dir=tmp_path / "cache")
    assert len(first.ran) == 1 and not first.failed
    results = tmp_path / "out" / "robust.jsonl"
    before = results.read_bytes()
    proc = _popen([*args, "--force"], preexec_fn=_limit_file_size(len(before)))
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 2, err.decode() + out.decode()
    message = err.decode()
    assert "could not append a record" in message and "earlier records are intact" in message
    assert "robust.jsonl" in message
    assert results.read_bytes() == before  # nothing torn, nothing lost


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; see the two tests above")
def test_read_only_results_folder_is_a_clear_error(tmp_path):
    suite = _suite(tmp_path, seeds=(0,))
    out = tmp_path / "ro"
    out.mkdir()
    (out / "robust.jsonl").write_text("")
    out.chmod(0o555)
    try:
        result = run_cli("run", str(suite), "--results-dir", str(out), "--cache-dir", str(tmp_path / "cache"))
    finally:
        out.chmod(0o755)
    assert result.returncode == 2 and "not writable" in result.stderr
