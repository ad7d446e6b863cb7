"""One record schema, applied by the one reader of results files: a record with wrong nested types,
integers out of int64, too deep a nesting or another schema version is skipped with FILE:LINE and the
reason by every verb that reads records, and `run` recomputes its cell instead of counting it done.
Exporting benchmark files or nothing usable is an error, not an empty CSV."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import snnbench
from snnbench.cli import app
from snnbench.records.cells import expand
from snnbench.records.record_check import record_problem
from snnbench.records.store import ResultStore
from snnbench.report.inputs import InputError
from snnbench.runner.sweep import plan_sweep
from tests.helpers import REPO, digits_record, tiny_digits_suite

runner = CliRunner()


def _good(key: str = "digits/digits_cnn/qcfs/seed=0/x") -> dict:
    return digits_record(
        key,
        config={"model": {"name": "digits_cnn", "params": {"width": 4}}, "timesteps": [1, 4]},
        env={"hardware": {"device": "cpu", "name": "x86_64"}},
    )


BAD = [
    ({**_good("k/1"), "env": {"hardware": "NVIDIA H200"}}, "field 'env.hardware' is str, expected an object"),
    ({**_good("k/2"), "config": {"model": ["digits_cnn"]}}, "field 'config.model' is list, expected an object"),
    ({**_good("k/3"), "seed": 2**64}, "field 'seed'"),
    ({**_good("k/4"), "metrics": {"snn_acc": {str(2**70): 1.0}}}, "outside int64"),
    ({**_good("k/5"), "metrics": {"footprint": 10**400}}, "outside int64"),
    ({**_good(), "key": ["a", "b"]}, "field 'key' is list, expected a string"),
    ({**_good("k/7"), "schema": 2}, "schema version 2"),
    ({**_good("k/8"), "config": {"timesteps": [1, 2**64]}}, "config.timesteps.1"),
    # the metrics the table and figures read by name: a T key that is no number crashed both
    ({**_good("k/10"), "metrics": {"snn_acc": {"abc": 1.0}}}, "has key 'abc'; expected a time step"),
    ({**_good("k/11"), "metrics": {"snn_acc": {"1e999": 1.0}}}, "has key '1e999'; expected a time step"),
    ({**_good("k/12"), "metrics": {"snn_acc": {"1": "high"}}}, "field 'metrics.snn_acc.1' is str"),
    ({**_good("k/13"), "metrics": {"ann_acc": {"x": 1}}}, "field 'metrics.ann_acc' is dict, expected a number"),
    ({**_good("k/14"), "metrics": {"neurobench": "x"}}, "field 'metrics.neurobench' is str"),
]
DEEP_LINE = '{"schema": 1, "key": "deep", "metrics": {"m": ' + "[" * 100_000 + "]" * 100_000 + "}}"
SHALLOW_DEEP = {**_good("k/9"), "metrics": {"m": json.loads("[" * 40 + "]" * 40)}}


def _mixed(tmp_path):
    path = tmp_path / "mixed.jsonl"
    lines = [json.dumps(_good())] + [json.dumps(r) for r, _ in BAD] + [DEEP_LINE, json.dumps(SHALLOW_DEEP)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.timeout(60)
def test_every_reader_skips_a_bad_record_with_file_line_and_reason(tmp_path):
    path = _mixed(tmp_path)
    verbs = [
        ["export", str(path)],
        ["table", str(path), "--no-published", "--format", "md"],
        ["compare", str(path), str(path)],
        ["plot", str(path), "--out", str(tmp_path / "plots"), "--no-published"],
        ["leaderboard", "--runs", str(tmp_path), "--bench", str(tmp_path), "--published-dir", str(tmp_path)],
    ]
    for args in verbs:
        result = runner.invoke(app, args)
        text = " ".join(result.output.split())
        assert result.exit_code == 0, (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
        for line, (_, why) in enumerate(BAD, start=2):
            assert f"{path}:{line}:" in text and why in text, (args, why, text[:2000])
        assert f"{path}:{len(BAD) + 2}:" in text and f"{path}:{len(BAD) + 3}:" in text and "levels deep" in text
    frame = snnbench.load_results(path)
    assert set(frame["key"]) == {_good()["key"]} and len(frame.attrs["problems"]) == len(BAD) + 2


def test_run_recomputes_a_cell_whose_record_fails_the_schema(tmp_path):
    suite = snnbench.load_suite(tiny_digits_suite(tmp_path))
    (cell,) = expand(suite)
    results = tmp_path / "tiny.jsonl"
    good = {**_good(cell.key), "metrics": {"snn_acc": {"1": 50.0}}}
    for bad in (
        {**good, "schema": 0},
        {**good, "seed": "0"},
        {**good, "env": {"hardware": 7}},
        {**good, "metrics": []},
    ):
        results.write_text(json.dumps(bad) + "\n")
        plan = plan_sweep(suite, tmp_path)
        assert [c.key for c in plan.todo] == [cell.key], bad
        assert plan.problems and f"{results}:1: skipped" in plan.problems[0]
        assert cell.key not in ResultStore(results).recorded_keys()  # the claim logic agrees
    results.write_text(json.dumps(good) + "\n")
    assert plan_sweep(suite, tmp_path).todo == []


def test_export_of_benchmark_files_or_nothing_usable_is_an_error(tmp_path):
    bench = REPO / "results" / "bench" / "h200" / "neuron.json"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(BAD[0][0]) + "\n")
    for inputs, needle in ((bench, "benchmark files only"), (empty, "no usable record"), (bad, "no usable record")):
        result = runner.invoke(app, ["export", str(inputs), "--out", str(tmp_path / "x.csv")])
        assert result.exit_code == 2 and needle in " ".join(result.output.split()), result.output
        assert not (tmp_path / "x.csv").exists()
        with pytest.raises(InputError, match=needle):
            snnbench.load_results(inputs)


def test_the_schema_accepts_every_committed_record():
    for path in sorted((REPO / "results" / "runs").glob("*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            assert record_problem(json.loads(line)) is None, f"{path}:{number}"
