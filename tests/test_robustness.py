"""Nothing lost, nothing doubled: a SIGKILLed sweep, corrupt lines, unwritable results. (Concurrent
runs and a kill among them: tests/test_hardening_interrupts.py.)

The runs that are killed or must fail as a user sees it are real ``python -m snnbench run``
processes on a tiny digits suite (one epoch on a subset); reruns that only resume run in-process.
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
from typing import Optional

import pytest
from typer.testing import CliRunner

from helpers import REPO, flocked_files, run_cli, tiny_digits_suite
from snnbench.cli import app
from snnbench.runner.claims import CellClaims

runner = CliRunner()


def _suite(tmp_path: Path, seeds=(0, 1, 2, 3), name="robust", limit_train=192, limit_test=64) -> Path:
    return tiny_digits_suite(
        tmp_path,
        name=name,
        seeds=list(seeds),
        timesteps=[1, 2],
        datasets=[{"name": "digits", "limit_train": limit_train, "limit_test": limit_test}],
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


def _kill_inside_a_cell(proc: subprocess.Popen, results: Path, rng: random.Random) -> Optional[str]:
    """SIGKILL ``proc`` at a random moment inside the work of a cell after its first: once it has
    recorded a cell and holds the claim on another (the claim is taken just before a cell computes
    and released once its record is written). The name of the claim file it held at the kill, or
    None when the run ended first."""
    claims = Path(str(results) + ".claims")
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if not (results.exists() and results.read_bytes().count(b"\n") >= 1):
            time.sleep(0.05)  # start-up and the first cell take seconds
            continue
        if flocked_files(proc.pid, claims):
            # A later cell computes for a fifth of a second; land anywhere in its first part.
            time.sleep(rng.uniform(0.0, 0.05))
            held = flocked_files(proc.pid, claims)
            if held:
                proc.send_signal(signal.SIGKILL)
                return held[0].name
        time.sleep(0.002)
    return None


def test_sigkill_inside_a_cell_then_rerun_records_each_cell_once(tmp_path):
    """A run killed while it computes a cell (its earlier records written, its claim held) leaves
    whole records only; the next run (here in this process: the store, the claims and the resume
    are under test, not the interpreter) computes what is missing and records each cell once.
    Concurrent runs and a kill: tests/test_hardening_interrupts.py, as is a torn last line (a kill
    during an append)."""
    from snnbench.config import load_suite
    from snnbench.runner.sweep import plan_sweep, run_suite

    # Cells of ~0.2 s of work each (~0.05 s on the smaller sets), so that polling finds one computing.
    suite = _suite(tmp_path, seeds=range(5), limit_train=1024, limit_test=256)
    results = tmp_path / "out" / "robust.jsonl"
    seed = int.from_bytes(os.urandom(4), "little")
    proc = _popen(["run", str(suite), "--results-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    held = _kill_inside_a_cell(proc, results, random.Random(seed))
    out, err = proc.communicate(timeout=60)
    assert held is not None, f"(rng seed {seed}) the run ended before a kill inside a cell: {err.decode()}"
    assert proc.returncode == -signal.SIGKILL
    before = _lines(results)  # whole records only, however far the killed run got
    assert 1 <= len(before) < len(_expected_keys(suite)) and len({r["key"] for r in before}) == len(before), (
        f"rng seed {seed}"
    )
    # Killed inside a cell: in its work (then unrecorded) or, rarely, in its write (after the append,
    # before the claim's release), then recorded whole.
    assert held in {CellClaims(results)._path(key).name for key in _expected_keys(suite)}
    unrecorded = _expected_keys(suite) - {r["key"] for r in before}

    rerun = run_suite(load_suite(suite), results_dir=tmp_path / "out", cache_dir=tmp_path / "cache")
    assert not rerun.failed and len(rerun.ran) == len(unrecorded)  # the killed cell's claim was free
    after = _lines(results)
    assert sorted(r["key"] for r in after) == sorted(_expected_keys(suite)), f"rng seed {seed}"
    assert after[: len(before)] == before  # earlier records untouched
    assert plan_sweep(load_suite(suite), tmp_path / "out").todo == []  # a further run has nothing to do


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
