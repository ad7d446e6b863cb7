"""`snnbench export`: the long form in CSV, Parquet and JSON lines, the same rows in each."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.report.frame import load_results
from tests.helpers import REPO

RUNS = REPO / "results/runs"


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_export_writes_the_long_form(tmp_path, fmt):
    out = tmp_path / f"results.{fmt}"
    result = CliRunner().invoke(app, ["export", str(RUNS), "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    read = {"csv": pd.read_csv, "parquet": pd.read_parquet, "jsonl": lambda p: pd.read_json(p, lines=True)}[fmt]
    written = read(out)
    expected = load_results(RUNS)
    assert list(written.columns) == list(expected.columns)
    assert len(written) == len(expected)
    assert written["value"].sum() == pytest.approx(expected["value"].sum())
    acc = written[(written.metric == "snn_acc") & (written["T"] == 4)]
    want = expected[(expected.metric == "snn_acc") & (expected["T"] == 4)]
    # Every conversion method of the committed runs, the demo's three among them.
    assert {"qcfs", "light", "ftbc"} <= set(acc.method) == set(want.method)


def test_export_csv_to_stdout_and_bad_format_exits_2():
    runner = CliRunner()
    ok = runner.invoke(app, ["export", str(RUNS / "digits.jsonl")])
    assert ok.exit_code == 0 and ok.stdout.startswith("suite,track,dataset,model,method,seed,device,key,")
    bad = runner.invoke(app, ["export", str(RUNS), "--format", "xlsx"])
    assert bad.exit_code == 2 and "'xlsx' is not one of 'csv', 'parquet', 'jsonl'" in bad.output
    binary = runner.invoke(app, ["export", str(RUNS), "--format", "parquet"])
    assert binary.exit_code == 2 and "give --out FILE" in binary.output
