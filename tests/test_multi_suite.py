"""`snnbench run A B ...`: several suites in one sweep, one worker pool, each record in its own suite's
results file; every suite is planned and checked before the first cell runs."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.config import load_suite
from snnbench.errors import UsageError
from snnbench.records.store import read_records
from snnbench.runner.sweep import run_suite, run_suites
from tests.helpers import tiny_digits_suite

runner = CliRunner()
TIMING = ("env", "finished_at", "cached")  # the fingerprint, the time and whether a cache answered


def _without_timing(value):
    """A record without its timing fields (``*_s``, ``*_ms``, speed-ups, memory) and fingerprint."""
    if isinstance(value, dict):
        return {
            k: _without_timing(v)
            for k, v in value.items()
            if k not in TIMING and not k.endswith(("_s", "_ms", "speedup", "_bytes")) and "_s_per_" not in k
        }
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def _conversion(tmp_path, name="conv", **overrides):
    fields = dict(
        datasets=[{"name": "digits", "limit_train": 128, "limit_test": 64}],
        models=[{"name": "digits_cnn", "width": 4}],
        methods=["qcfs", "light"],
        timesteps=[1, 2],
        training={"epochs": 1, "batch_size": 64, "lr": 0.05},
    )
    return tiny_digits_suite(tmp_path, name=name, **{**fields, **overrides})


def _direct(tmp_path):
    return tiny_digits_suite(
        tmp_path,
        name="direct",
        track="direct",
        datasets=[{"name": "digits", "limit_train": 64, "limit_test": 32}],
        models=[{"name": "spiking_cnn_small", "channels": [2, 4]}],
        timesteps=[2],
        methods=[{"name": "localzo", "delta": 0.15, "q": 1}],
        device="cpu",
        training={"epochs": 1, "batch_size": 64, "lr": 0.01, "optimizer": "adam", "weight_decay": 0.0},
    )


def _records(path):
    return {r["key"]: _without_timing(r) for r in read_records(path).records}


def test_two_tracks_in_one_pool_record_what_separate_runs_record(tmp_path):
    """`--jobs 2` on two suites: the records of serial runs (up to timing fields and order), each
    once, in its own suite's file; the methods of one ANN go to one worker, which trains it once."""
    suites = [load_suite(_direct(tmp_path)), load_suite(_conversion(tmp_path, seeds=[0, 1]))]
    torch.set_num_threads(1)  # the workers' share below: one thread each, as here
    alone = [run_suite(s, results_dir=tmp_path / "alone", cache_dir=tmp_path / "c1", jobs=1) for s in suites]
    together = run_suites(suites, results_dir=tmp_path / "together", cache_dir=tmp_path / "c2", jobs=2)
    assert [s.path.name for s in together] == ["direct.jsonl", "conv.jsonl"]  # one summary per suite, in order
    assert [len(s.ran) for s in together] == [1, 4] and not any(s.failed for s in alone + together)
    assert all(o.threads is None for s in alone for o in s.ran)  # computed in this process
    for one, both in zip(alone, together):
        assert all(o.threads == 1 for o in both.ran)  # computed by the pool's workers
        assert _records(both.path) == _records(one.path)  # each record in its own suite's file, as alone
        assert sorted(r["key"] for r in both.records) == sorted(_records(one.path))
        assert all(r["env"]["hardware"]["torch_threads"] == 1 for r in read_records(both.path).records)
    # Each ANN was trained by the first of its methods and reused by the other.
    sources = {(r["method"], r["seed"]): r["metrics"]["ann_source"] for r in read_records(together[1].path).records}
    assert sources == {("qcfs", 0): "trained", ("light", 0): "cache", ("qcfs", 1): "trained", ("light", 1): "cache"}


def test_bad_input_in_the_last_suite_stops_the_sweep_before_any_cell(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a state dict")
    good = _conversion(tmp_path, name="good")
    bad = _conversion(tmp_path, name="bad", models=[{"name": "digits_cnn", "width": 4, "checkpoint": str(junk)}])
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(good), str(bad), "--results-dir", str(out), "--cache-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert str(junk) in result.output and "Traceback" not in result.output
    assert not (out / "good.jsonl").exists() or not read_records(out / "good.jsonl").records


def test_two_suites_writing_one_results_file_are_refused(tmp_path):
    first = _conversion(tmp_path, name="same")
    (tmp_path / "copy").mkdir()
    second = _conversion(tmp_path / "copy", name="same")
    result = runner.invoke(app, ["run", str(first), str(second), "--results-dir", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert str(first) in flat and str(second) in flat and "same.jsonl" in flat
    with pytest.raises(UsageError, match="suite 'same' and suite 'same' would both write"):
        run_suites([load_suite(first), load_suite(second)], results_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_parallel_false_suite_runs_alone_after_the_pool(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNBENCH_JOBS", "2")  # the default: two workers where a suite allows them
    torch.set_num_threads(1)
    pooled = load_suite(_conversion(tmp_path, name="pooled", methods=["qcfs"], seeds=[0, 1]))
    timed = load_suite(_conversion(tmp_path, name="timed", methods=["qcfs"], seeds=[0, 1], parallel=False))
    order = []
    summaries = run_suites(
        [timed, pooled], results_dir=tmp_path / "out", cache_dir=tmp_path / "c", on_outcome=order.append
    )
    assert [len(s.ran) for s in summaries] == [2, 2]
    assert all(o.threads is None for o in summaries[0].ran)  # in the driver, one cell at a time
    assert all(o.threads == 1 for o in summaries[1].ran)  # in the pool
    assert [o.cell.suite for o in order] == ["pooled", "pooled", "timed", "timed"]  # alone, after the pool


def test_cli_runs_two_suites_and_prints_both_tables(tmp_path):
    first = _conversion(tmp_path, name="first", methods=["qcfs"])
    second = _conversion(tmp_path, name="second", methods=["qcfs"], timesteps=[1])
    out = tmp_path / "out"
    args = ["run", str(first), str(second), "--results-dir", str(out), "--cache-dir", str(tmp_path / "c")]
    result = runner.invoke(app, [*args, "--set", "training.epochs=1"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ("first", "second"):
        assert len(read_records(out / f"{name}.jsonl").records) == 1
        assert f"{name} ({out / name}.jsonl)" in result.output  # its closing table's title
        assert f"done {name}: digits/" in result.output  # the interleaved lines name their suite
    # --set applies to every suite; a field it cannot set is named with the suite file it failed in.
    refused = runner.invoke(app, [*args, "--set", "training.epochz=1"])
    assert refused.exit_code == 2 and str(first) in " ".join(refused.output.split())


def test_ctrl_c_names_what_each_suite_has_recorded(tmp_path, monkeypatch):
    import snnbench.runner.cli_run as cli_run

    def interrupted_after_one_cell(suites, *, on_outcome, **options):
        def then_ctrl_c(outcome):
            on_outcome(outcome)
            raise KeyboardInterrupt

        return run_suites(suites, on_outcome=then_ctrl_c, **options)

    monkeypatch.setattr(cli_run, "run_suites", interrupted_after_one_cell)
    first = _conversion(tmp_path, name="first", methods=["qcfs"])
    second = _conversion(tmp_path, name="second", methods=["qcfs"], timesteps=[1])
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["run", str(first), str(second), "--results-dir", str(out), "--cache-dir", str(tmp_path)]
    )
    assert result.exit_code == 130, result.output
    expected = (
        f"interrupted: 1 of 1 cells recorded in {out / 'first.jsonl'}, "
        f"0 of 1 cells recorded in {out / 'second.jsonl'}; rerun to resume"
    )
    assert expected in " ".join(result.output.split())


def test_a_pool_shared_by_several_suites_names_the_suite_on_its_lines(tmp_path):
    from snnbench.context import RunContext
    from snnbench.records.cells import expand
    from snnbench.runner.parallel import ParallelExecutor

    (cell,) = expand(load_suite(_conversion(tmp_path, name="first", methods=["qcfs"])))
    ctx = RunContext(device=torch.device("cpu"), cache_dir=tmp_path / "c")
    assert ParallelExecutor(ctx, 2, 1, ["conversion"])._label(0, cell) == f"[1] {cell.key}"
    shared = ParallelExecutor(ctx, 2, 1, ["conversion", "direct"], name_suites=True)
    assert shared._label(1, cell) == f"[2] first: {cell.key}"
