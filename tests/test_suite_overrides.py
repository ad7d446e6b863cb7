"""`--set key.path=value` and `base:` suites: applied before the schema, so errors stay located."""

import pytest
import yaml
from typer.testing import CliRunner

import snnbench
from snnbench.cli import app
from snnbench.config import SuiteError, load_suite
from snnbench.records.cells import expand
from tests.helpers import tiny_digits_suite

runner = CliRunner()


def _validate(*args):
    result = runner.invoke(app, ["validate", *args])
    return result.exit_code, " ".join(result.output.split())


def test_set_overrides_fields_lists_and_list_entries(tmp_path):
    suite = tiny_digits_suite(tmp_path)
    code, out = _validate(
        str(suite),
        "--set",
        "training.epochs=3",
        "--set",
        "seeds=[0, 1]",
        "--set",
        "methods.0.name=light",
        "--set",
        "models.0.width=16",
    )
    assert code == 0, out
    assert "2 cells" in out and "digits/digits_cnn/light/seed=1/" in out
    parsed = load_suite(suite, ["training.epochs=3", "models.0.width=16"])
    assert parsed.training.epochs == 3 and parsed.models[0].params == {"width": 16}
    assert parsed.training.lr == load_suite(suite).training.lr  # the rest of the block is kept


def test_bad_overrides_get_the_schemas_located_errors(tmp_path):
    suite = tiny_digits_suite(tmp_path)
    code, out = _validate(str(suite), "--set", "training.epochs=-1")
    assert code == 2 and f"{suite}: invalid suite (1 problem)" in out
    assert "training.epochs: Input should be greater than or equal to 0 (got -1)" in out
    code, out = _validate(str(suite), "--set", "traning.epochs=1")
    assert code == 2 and "traning: unknown key" in out
    code, out = _validate(str(suite), "--set", "training.epochs")
    assert code == 2 and "expected KEY.PATH=VALUE" in out and "Traceback" not in out
    code, out = _validate(str(suite), "--set", "models.3.width=8")
    assert code == 2 and "the list has 1 entries, so there is no index 3" in out
    code, out = _validate(str(suite), "--set", "name.x=1")
    assert code == 2 and "'x' is set inside a str, not a mapping" in out


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_suite_overrides_its_base_and_keeps_the_same_cells(tmp_path):
    flat = yaml.safe_load(tiny_digits_suite(tmp_path).read_text())
    (tmp_path / "family").mkdir()
    _write(tmp_path / "family" / "common.yaml", {"training": flat["training"] | {"epochs": 7}, "timesteps": [1, 2, 4]})
    child = {k: v for k, v in flat.items() if k not in ("training", "timesteps")}
    path = _write(tmp_path / "family" / "child.yaml", child | {"base": "common.yaml", "training": {"epochs": 1}})
    from_base = load_suite(path)
    assert from_base.training == load_suite(tiny_digits_suite(tmp_path)).training  # lr from base, epochs own
    assert [c.key for c in expand(from_base)] == [c.key for c in expand(load_suite(tiny_digits_suite(tmp_path)))]

    _write(tmp_path / "family" / "common.yaml", {"base": "child.yaml"})
    with pytest.raises(SuiteError, match="a cycle of base files"):
        load_suite(path)
    _write(path, child | {"base": "missing.yaml"})
    with pytest.raises(SuiteError, match=r"child.yaml: base: missing.yaml: .*missing.yaml: suite file not found"):
        load_suite(path)


def test_api_takes_overrides_for_mappings_too(tmp_path):
    data = yaml.safe_load(tiny_digits_suite(tmp_path).read_text())
    suite = snnbench.load_suite(data, ["seeds=[3]", "timesteps=[2, 1]"])
    assert suite.seeds == [3] and suite.timesteps == [1, 2]
    with pytest.raises(SuiteError, match=r"<suite mapping>: invalid suite .*\n  seeds: Input should be a valid list"):
        snnbench.load_suite(data, ["seeds=zero"])


def test_run_checks_its_overrides_before_running(tmp_path):
    suite = tiny_digits_suite(tmp_path)
    result = runner.invoke(app, ["run", str(suite), "--results-dir", str(tmp_path / "out"), "--set", "seeds=[0,0]"])
    assert result.exit_code == 2 and "seeds: seeds repeat ([0, 0])" in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()
