"""The Python API: the README's notebook example runs as written, and `run` is the CLI's sweep."""

import re

import pytest

import snnbench
from tests.helpers import REPO, run_cli


def _readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Python API section should hold one example"
    return blocks[0]


def test_readme_notebook_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SNNBENCH_CACHE", str(tmp_path / "cache"))
    namespace: dict = {}
    exec(compile(_readme_example(), "README.md", "exec"), namespace)
    frame = namespace["frame"]
    assert set(frame.method) == {"qcfs", "light"}
    acc = frame[frame.metric == "snn_acc"]
    assert sorted(acc["T"].unique()) == [1, 2, 4]
    assert (acc.unit == "%").all() and acc.value.between(0, 100).all()
    printed = capsys.readouterr().out
    assert "snn_acc" in printed and "light" in printed
    # The notebook wrote the same store the CLI reads: a CLI run skips both cells.
    from typer.testing import CliRunner

    from snnbench.cli import app

    again = CliRunner().invoke(
        app, ["run", str(_yaml_of(namespace["suite"], tmp_path)), "--results-dir", str(tmp_path / "build/notebook")]
    )
    assert again.exit_code == 0, again.output
    out = " ".join(again.output.split())
    assert "2 already in" in out and "0 to run" in out


def _yaml_of(suite, tmp_path):
    import yaml

    path = tmp_path / "same.yaml"
    path.write_text(yaml.safe_dump(suite.model_dump(mode="json", exclude={"output"})))
    return path


def _tiny(name: str, method: str) -> dict:
    return {
        "name": name,
        "datasets": [{"name": "digits", "limit_train": 64, "limit_test": 32}],
        "models": [{"name": "digits_cnn", "width": 4}],
        "timesteps": [1],
        "methods": [method],
        "training": {"epochs": 1},
    }


def test_run_takes_several_suites_as_one_sweep(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "runs"
    frame = snnbench.run([_tiny("one", "qcfs"), _tiny("two", "light")], results_dir=out, overrides=["seeds=[1]"])
    assert frame.attrs["paths"] == [str(out / "one.jsonl"), str(out / "two.jsonl")]
    assert frame.attrs["path"] == str(out / "one.jsonl") and frame.attrs["failed"] == []
    assert set(zip(frame.suite, frame.method, frame.seed)) == {("one", "qcfs", 1), ("two", "light", 1)}
    # Each record went to its own suite's file: one record each.
    assert [len(snnbench.load_results(out / f"{n}.jsonl").key.unique()) for n in ("one", "two")] == [1, 1]
    with pytest.raises(ValueError, match="would both write"):
        snnbench.run([_tiny("same", "qcfs"), _tiny("same", "light")], results_dir=out)
    with pytest.raises(ValueError, match="non-empty list of suites"):
        snnbench.run([], results_dir=out)


def test_long_form_has_one_row_per_record_metric_and_t(tmp_path):
    frame = snnbench.load_results(REPO / "results/runs/digits.jsonl")
    expected_cols = {
        "suite",
        "dataset",
        "model",
        "method",
        "seed",
        "device",
        "metric",
        "T",
        "value",
        "unit",
        "git_sha",
        "finished_at",
        "model.width",
        "training.epochs",
    }
    assert expected_cols <= set(frame.columns)
    assert not frame.duplicated(["key", "metric", "T"]).any()
    per_t = frame[frame.metric == "snn_acc"]
    assert per_t.groupby("key").size().eq(5).all()  # T = 1, 2, 4, 8, 16 per record
    assert frame.loc[frame.metric == "ann_acc", "T"].isna().all()
    nested = frame[frame.metric.str.startswith("neurobench.synaptic_operations.")]
    assert not nested.empty


def test_load_suite_applies_the_cli_model_checks(tmp_path):
    bad = {
        "name": "bad",
        "datasets": ["digits"],
        "models": [{"name": "digits_cnn", "widht": 8}],
        "timesteps": [1],
        "methods": ["qcfs"],
    }
    with pytest.raises(snnbench.SuiteError, match=r"models\.0\.widht: not a parameter"):
        snnbench.load_suite(bad)
    with pytest.raises(snnbench.SuiteError, match="suite file not found"):
        snnbench.load_suite(tmp_path / "missing.yaml")


def test_compare_takes_a_tolerance_mapping():
    base = REPO / "results/baseline/digits_gate.jsonl"
    result = snnbench.compare(base, base, tolerances={"snn_acc.*": "0.5pt"})
    assert result.exit_code() == 0 and not result.regressions


def test_version_and_kernels_are_exported():
    assert snnbench.__version__ and snnbench.__version__ != "0+unknown"
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"snnbench {snnbench.__version__}"
    for name in snnbench._KERNELS:
        assert callable(getattr(snnbench, name)), name
    with pytest.raises(AttributeError):
        snnbench.no_such_thing  # noqa: B018
