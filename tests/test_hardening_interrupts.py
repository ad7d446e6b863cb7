"""Ctrl-C: one line, exit 130, records intact. A torn last line is moved aside once; a rerun of a
complete suite is quiet and fast (no environment fingerprint)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from snnbench.cli import app
from tests.helpers import REPO, flocked_files, tiny_digits_suite

runner = CliRunner()


def _run_args(suite, tmp_path) -> list[str]:
    """``snnbench run SUITE`` writing results and cache under ``tmp_path``."""
    return [
        sys.executable,
        "-m",
        "snnbench",
        "run",
        str(suite),
        "--results-dir",
        str(tmp_path / "out"),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]


def test_sigint_prints_one_line_and_exits_130_with_records_intact(tmp_path):
    # Enough cells that the interrupt lands mid-sweep: a tiny cell takes a fraction of a second now
    # that the methods of one ANN share its preparation.
    cells = 40
    suite = tiny_digits_suite(tmp_path, seeds=list(range(cells)))
    results = tmp_path / "out" / "tiny.jsonl"
    proc = subprocess.Popen(
        _run_args(suite, tmp_path),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: pytest-xdist workers ignore SIGINT, and an ignored signal is inherited,
        # so the run would never see the interrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (results.exists() and results.read_text().count("\n") >= 1):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in out + err
    lines = results.read_text().splitlines()
    assert lines and all(json.loads(line)["key"] for line in lines)  # whole records only
    assert len(lines) < cells, "the interrupt should land mid-sweep"
    assert f"interrupted: {len(lines)} of {cells} cells recorded in {results}; rerun to resume" in " ".join(err.split())


def _complete_suite(tmp_path: Path) -> tuple[Path, Path]:
    from snnbench.config import load_suite
    from snnbench.records.cells import expand

    suite = tiny_digits_suite(tmp_path, seeds=[0, 1])
    results = tmp_path / "out" / "tiny.jsonl"
    results.parent.mkdir()
    records = [
        {
            "schema": 1,
            "key": c.key,
            "suite": "tiny",
            "track": "conversion",
            "dataset": "digits",
            "model": "digits_cnn",
            "method": "qcfs",
            "seed": c.seed,
            "metrics": {"ann_acc": 90.0},
        }
        for c in expand(load_suite(suite))
    ]
    results.write_text("".join(json.dumps(r) + "\n" for r in records))
    return suite, results


def test_torn_last_line_is_moved_aside_once_and_reruns_are_quiet_and_fast(tmp_path):
    suite, results = _complete_suite(tmp_path)
    whole = results.read_text()
    results.write_text(whole + '{"key": "digits/digits_cnn/qcfs/seed=9/x", "metr')
    args = ["run", str(suite), "--results-dir", str(results.parent)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    text = " ".join(first.output.split())
    assert f"{results}:3: not valid JSON (truncated last line" in text
    assert f"{results}:3: torn last line moved to {results}.corrupt" in text
    assert results.read_text() == whole
    assert '"metr' in Path(str(results) + ".corrupt").read_text()

    t0 = time.perf_counter()
    second = runner.invoke(app, args)
    elapsed = time.perf_counter() - t0
    assert second.exit_code == 0 and "warning" not in second.output, second.output
    assert "2 already in" in " ".join(second.output.split())
    assert elapsed < 1.0, f"a complete suite took {elapsed:.2f} s to rerun"


class _Printed:
    """The lines a process prints on stdout and stderr, gathered as they come by threads of their own
    (the only readers of its pipes: a ``communicate`` beside them would take lines from them)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.out, self.err = proc, [], []
        self._threads = [threading.Thread(target=lambda: self.out.extend(proc.stdout), daemon=True)]
        self._threads.append(threading.Thread(target=lambda: self.err.extend(proc.stderr), daemon=True))
        for thread in self._threads:
            thread.start()

    def wait(self, timeout: float) -> int:
        self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(timeout)
        return self.proc.returncode


def _done(lines: list[str]) -> list[str]:
    return [line.split()[1] for line in list(lines) if line.startswith("done ")]


@pytest.mark.slow  # two interpreters on a shared 2-core CPU: ~15 s
def test_concurrent_runs_split_the_cells_and_survive_a_sigkill(tmp_path):
    """Each cell is computed once: a claim per cell (an flock the kernel drops when its process
    dies) makes the other run pass over it; the killed run's cell is picked up by the survivor.
    The kill lands inside a cell's work: the run has computed a cell and holds the claim of another."""
    import os

    from snnbench.config import load_suite
    from snnbench.records.cells import expand
    from snnbench.runner.claims import CellClaims

    # Cells of ~0.2 s of work each, so that polling finds a run computing one.
    suite = tiny_digits_suite(
        tmp_path,
        seeds=list(range(8)),
        timesteps=[1, 2],
        datasets=[{"name": "digits", "limit_train": 1024, "limit_test": 256}],
        models=[{"name": "digits_cnn", "width": 4}],
    )
    claim_of = {CellClaims(Path("x"))._path(c.key).name: c.key for c in expand(load_suite(suite))}
    results = tmp_path / "out" / "tiny.jsonl"
    claims = Path(str(results) + ".claims")
    # Unbuffered: a killed run's "done" lines are not lost with its buffer.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen(
            _run_args(suite, tmp_path), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    printed = [_Printed(p) for p in procs]
    killed, held = None, []
    deadline = time.monotonic() + 240
    while killed is None and time.monotonic() < deadline and any(p.poll() is None for p in procs):
        for i, proc in enumerate(procs):
            if _done(printed[i].out) and flocked_files(proc.pid, claims):
                time.sleep(random.uniform(0.0, 0.05))  # somewhere in the first part of the cell
                held = flocked_files(proc.pid, claims)
                if held:
                    proc.kill()  # SIGKILL with its claim held
                    killed = i
                    break
        time.sleep(0.005 if any(p.out for p in printed) else 0.1)
    codes = [p.wait(timeout=300) for p in printed]
    stderr = ["".join(p.err) for p in printed]
    assert killed is not None, f"neither run was caught inside a cell after its first: {stderr}"
    survivor = 1 - killed
    assert codes[survivor] == 0 and codes[killed] == -9, stderr
    records = [json.loads(line) for line in results.read_text().splitlines()]
    keys = [r["key"] for r in records]
    assert sorted(keys) == sorted(claim_of.values())  # each cell recorded once
    assert all({"key", "metrics", "env", "config"} <= set(r) and "snn_acc" in r["metrics"] for r in records)
    done = [_done(p.out) for p in printed]
    killed_cell = claim_of[held[0].name]
    # Killed in the cell's work, the survivor computes the cell; killed in its write (after the append,
    # before the claim's release: a few milliseconds of fsync), the killed run recorded it unprinted;
    # killed just after its "done" line (descheduled between the two looks at its claim), printed.
    unprinted = [] if killed_cell in done[0] + done[1] else [killed_cell]
    assert sorted(done[0] + done[1] + unprinted) == sorted(keys), done  # computed once each
    assert done[killed] and done[survivor]  # the runs split the cells


@pytest.fixture
def terminal_sigint():
    """SIGINT handled as from a terminal (pytest-xdist's workers ignore it); restored after the test."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _pydantic_wraps_it(*args, **kwargs) -> dict:
    """Ctrl-C arriving inside pydantic's serializer, as in CI: pydantic raises a
    PydanticSerializationError that keeps no chain to the KeyboardInterrupt."""
    import os

    from pydantic import BaseModel, field_serializer

    class Config(BaseModel):
        seed: int

        @field_serializer("seed")
        def _dump(self, seed: int) -> int:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)  # the handler runs here, inside the serializer
            return seed

    Config(seed=0).model_dump()
    return {"ann_acc": 1.0}


def _wrapped_as_bad_input(*args, **kwargs):
    from snnbench.errors import UsageError

    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as err:  # as a preflight reports whatever a loader raised as the file's fault
        raise UsageError("data/x.bin: cannot be read") from err


def _chained(*args, **kwargs) -> dict:
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as err:
        raise RuntimeError("a library's own error") from err


def _swallowed(*args, **kwargs) -> dict:
    import os

    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1.0)
    except KeyboardInterrupt:
        pass  # and carries on with half its work, returning as if it had finished
    return {"ann_acc": 1.0}


@pytest.mark.parametrize("cell_runner", [_pydantic_wraps_it, _chained, _wrapped_as_bad_input, _swallowed])
def test_an_interrupt_a_library_wrapped_or_swallowed_stops_the_sweep(tmp_path, terminal_sigint, cell_runner):
    """The interrupt ends the run (exit 130 in the CLI) instead of failing, or recording, that cell
    and going on with the next."""
    import torch

    from snnbench.config import load_suite
    from snnbench.context import RunContext
    from snnbench.runner.executors import LocalExecutor
    from snnbench.runner.sweep import execute, plan_sweep

    plan = plan_sweep(load_suite(tiny_digits_suite(tmp_path, seeds=[0, 1, 2])), tmp_path / "out")
    started: list[str] = []

    def runner(cell, ctx):
        started.append(cell.key)
        return cell_runner(cell, ctx)

    executor = LocalExecutor(RunContext(device=torch.device("cpu"), cache_dir=tmp_path), runner=runner)
    with pytest.raises(KeyboardInterrupt):
        execute([plan], executor, fingerprint=dict)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the sweep's own handler is gone
    assert len(started) == 1, "the sweep went on after the interrupt"
    results = tmp_path / "out" / "tiny.jsonl"
    assert not results.exists() or not results.read_text(), "a cell that saw the interrupt was recorded"


@pytest.mark.parametrize("load", [_wrapped_as_bad_input, _pydantic_wraps_it])
def test_an_interrupt_a_library_wrapped_outside_a_sweep_exits_130(tmp_path, monkeypatch, terminal_sigint, load):
    """Not exit 2 (bad input) or 1 (a bug) with a traceback: the one line and 130."""
    from tests.helpers import invoke_cli

    # validate's own loader (a name no other module imports, so the patch cannot outlive the test)
    monkeypatch.setattr("snnbench.cli._load_suite_or_exit", load)
    result = invoke_cli("validate", tiny_digits_suite(tmp_path))
    assert result.exit_code == 130, result.output
    assert result.stderr.strip() == "interrupted" and "Traceback" not in result.output


def _interrupted(**kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("bench", [_interrupted, _swallowed])
def test_ctrl_c_in_a_bench_is_one_line_and_exit_130(tmp_path, monkeypatch, terminal_sigint, bench):
    """``bench`` is a group under the root: the interrupt is reported once, by the root; a bench that
    swallowed it does not exit 0 as if it had finished."""
    from tests.helpers import invoke_cli

    monkeypatch.setattr("snnbench.bench.neuron.run_neuron_bench", bench)
    result = invoke_cli("bench", "neuron", "--device", "cpu", "--out", tmp_path / "out")
    assert result.exit_code == 130, result.output
    assert result.stderr == "interrupted\n"


def test_watching_keeps_a_handler_set_inside_it_and_notes_nothing_after_it(terminal_sigint):
    import os

    from snnbench import interrupts

    def mine(signum, frame):
        pass

    with interrupts.watching():
        saved = signal.getsignal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, saved)  # put back by code that saved it during the block
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1.0)
    assert not interrupts.requested(), "a later error would pass for an interrupt"
    with interrupts.watching():
        signal.signal(signal.SIGINT, mine)  # a library's own handler, set inside
    assert signal.getsignal(signal.SIGINT) is mine
