"""Suite files: valid ones parse; every kind of bad one names the file, the field and what was expected."""

from pathlib import Path

import pytest
import yaml

from snnbench.config import SuiteError, load_suite
from tests.helpers import REPO, invoke_cli, run_cli, tiny_digits_suite


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def valid_dict() -> dict:
    return yaml.safe_load((REPO / "suites" / "digits.yaml").read_text())


def test_shipped_digits_suite_is_valid():
    suite = load_suite(REPO / "suites" / "digits.yaml")
    assert suite.name == "digits"
    assert suite.timesteps == [1, 2, 4, 8, 16]
    assert "qcfs" in [m.name for m in suite.methods]


def test_every_shipped_suite_is_valid():
    for path in sorted((REPO / "suites").rglob("*.yaml")):
        load_suite(path)


def test_every_dataset_a_suite_may_name_has_a_loader():
    from snnbench.config import DATASET_NAMES
    from snnbench.data.registry import LOADERS

    assert sorted(DATASET_NAMES) == sorted(LOADERS)


def test_surrogate_and_distribution_names_are_the_kernels():
    from pydantic import ValidationError

    from snnbench.config import METHOD_PARAMS
    from snnbench.kernels.localzo import DISTRIBUTIONS
    from snnbench.kernels.surrogates import SURROGATES

    surrogate, localzo = METHOD_PARAMS["surrogate"], METHOD_PARAMS["localzo"]
    for name in SURROGATES:  # every shape the kernels have; LocalZO is a method of its own
        if name == "localzo":
            with pytest.raises(ValidationError, match="expected one of sigmoid, "):
                surrogate.model_validate({"surrogate": name})
        else:
            assert surrogate.model_validate({"surrogate": name}).surrogate == name
    for name in DISTRIBUTIONS:
        assert localzo.model_validate({"distribution": name}).distribution == name
    with pytest.raises(ValidationError, match="expected one of normal, uniform, laplace"):
        localzo.model_validate({"distribution": "cauchy"})
    assert surrogate().surrogate in SURROGATES and localzo().distribution in DISTRIBUTIONS


def test_a_suite_that_names_no_surrogate_does_not_load_the_kernels():
    from tests.helpers import run_python

    run_python(
        "import sys; from pathlib import Path; from snnbench.config import parse_suite\n"
        "parse_suite({'name': 'x', 'track': 'training', 'datasets': ['digits_spiking'], 'models': ['snn_mlp'],"
        " 'timesteps': [1], 'methods': ['surrogate', 'localzo']}, Path('x.yaml'))\n"
        "assert 'triton' not in sys.modules and 'torch' not in sys.modules\n"
    )


def test_the_shipped_kernel_sweep_is_not_a_run_suite():
    from snnbench.bench.sweep import default_sweep_file

    with pytest.raises(SuiteError, match="a kernel benchmark sweep"):
        load_suite(default_sweep_file())


def test_short_and_long_method_forms_are_equivalent(tmp_path):
    data = valid_dict()
    data["methods"] = ["qcfs", {"name": "ftbc", "alpha": 0.3}, {"name": "light", "params": {"batch_size": 64}}]
    suite = load_suite(write(tmp_path, yaml.safe_dump(data)))
    assert suite.methods[1].params["alpha"] == 0.3
    assert suite.methods[1].params["batches"] == 3  # default filled in
    assert suite.methods[2].params == {"batch_size": 64}


def test_timesteps_are_sorted_and_deduplicated(tmp_path):
    data = valid_dict()
    data["timesteps"] = [8, 1, 8, 2]
    assert load_suite(write(tmp_path, yaml.safe_dump(data))).timesteps == [1, 2, 8]


@pytest.mark.parametrize(
    "mutate, field, expected",
    [
        (lambda d: d.update(timestepz=[1]), "timestepz", "unknown key"),
        (lambda d: d["training"].update(epoch=3), "training.epoch", "unknown key"),
        (lambda d: d.update(timesteps=[1, -4]), "timesteps", "positive integer"),
        (lambda d: d.update(timesteps=[0]), "timesteps", "positive integer"),
        (lambda d: d["training"].update(epochs="many"), "training.epochs", "valid integer"),
        (lambda d: d.update(seeds="zero"), "seeds", "valid list"),
        (lambda d: d.update(methods=[{"name": "ftbc", "alpha": -1}]), "methods.0", "greater than 0"),
        (lambda d: d.update(methods=[{"name": "ftbc", "alfa": 0.4}]), "methods.0", "alfa"),
        (lambda d: d.update(methods=["sparseprop"]), "methods.0", "not a conversion-track method"),
        (lambda d: d.update(datasets=["cifar1000"]), "datasets.0", "cifar100"),
        (lambda d: d.pop("models"), "models", "Field required"),
        (lambda d: d.update(seeds=[0, 0]), "seeds", "seeds repeat"),
        (lambda d: d.update(methods=["qcfs", "light", "qcfs"]), "methods.2 repeats methods.0", "list each entry once"),
    ],
)
def test_bad_fields_are_located(tmp_path, mutate, field, expected):
    data = valid_dict()
    mutate(data)
    path = write(tmp_path, yaml.safe_dump(data))
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert str(path) in message
    assert field in message
    assert expected in message


def test_yaml_syntax_error_gives_line(tmp_path):
    path = write(tmp_path, "name: x\nmodels: [digits_cnn\ntimesteps: [1]\n")
    with pytest.raises(SuiteError, match=r"YAML syntax error at line \d+, column \d+"):
        load_suite(path)


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(SuiteError, match="expected a mapping"):
        load_suite(write(tmp_path, "- just\n- a list\n"))


def test_missing_file(tmp_path):
    with pytest.raises(SuiteError, match="suite file not found"):
        load_suite(tmp_path / "nope.yaml")


def _bad_suite_text(needle: str) -> str:
    """A suite file with one error of the kind ``needle`` names."""
    if needle == "YAML syntax error":
        return "name: x\nmodels: [digits_cnn\n"
    data = valid_dict()
    if needle == "unknown key":
        data["modles"] = data["models"]
    elif needle == "valid integer":
        data["training"]["batch_size"] = "big"
    else:
        data["timesteps"] = [-1, 2]
    return yaml.safe_dump(data)


@pytest.mark.parametrize("verb", ["validate", "run"])
@pytest.mark.parametrize("needle", ["YAML syntax error", "unknown key", "valid integer", "positive integer"])
def test_cli_exits_2_without_traceback(tmp_path, needle, verb):
    # In this process (the console entry itself: test_a_bad_suite_is_refused_by_the_console_entry_before_torch).
    path = write(tmp_path, _bad_suite_text(needle))
    result = invoke_cli(verb, path)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("verb, needle", [("validate", "YAML syntax error"), ("run", "unknown key")])
def test_a_bad_suite_is_refused_by_the_console_entry_before_torch(tmp_path, verb, needle):
    # `python -m snnbench`: exit code 2, one unwrapped line on stderr, no traceback, and torch and
    # pandas (seconds of imports) never loaded for a suite that fails on its YAML or its schema.
    # A long path once pushed "YAML syntax error" onto a second line: errors must stay greppable.
    deep = tmp_path / ("a-rather-long-folder-name-" * 4)
    deep.mkdir()
    path = write(deep, _bad_suite_text(needle))
    result = run_cli(verb, str(path), env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 2, result.stderr
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    assert "snnbench.config" in imported  # the import log is there to read
    assert not imported & {"torch", "pandas"}, "a bad suite's error path imported torch or pandas"
    said = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert str(path) in said[0], said  # the file, unbroken, on the error's first line
    assert any(needle in line for line in said), said  # and what is wrong, unbroken
    assert "Traceback" not in result.stderr + result.stdout


def test_validate_lists_cells(tmp_path):
    path = tiny_digits_suite(tmp_path, seeds=[0, 1], methods=["qcfs"])
    result = invoke_cli("validate", path)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("digits/digits_cnn/qcfs/seed=") == 2


@pytest.mark.parametrize("verb", ["validate", "run"])
@pytest.mark.parametrize(
    "models, needle",
    [
        ([{"name": "digits_cnn", "widht": 8}], "models.0.widht: not a parameter of model 'digits_cnn'"),
        (["vgg61"], "models.0.name: unknown model 'vgg61'"),
    ],
)
def test_model_typos_stop_the_run_with_exit_2(tmp_path, models, needle, verb):
    path = tiny_digits_suite(tmp_path, models=models)
    result = invoke_cli(verb, path, *(["--results-dir", tmp_path / "out"] if verb == "run" else []))
    assert result.exit_code == 2, result.output
    assert needle in " ".join(result.stderr.split())
    assert str(path) in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


_BOMB = "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
    for p, c in zip([None, *"abcdefgh"], "abcdefghi")
)


@pytest.mark.parametrize(
    "content, needles",
    [
        (_BOMB, ["alias bomb", "line "]),
        ("name: x\nname: y\n", ["line 2", "duplicate key 'name'", "first given at line 1"]),
        ({"timesteps": [True, 2]}, ["timesteps.0", "true/false are not numbers"]),
        ({"timesteps": [1_000_000_000]}, ["at most 4096"]),
        ({"seeds": [2**64 + 1]}, ["seeds", "2**63 - 1"]),
        ({"seeds": [-1]}, ["seeds", "2**63 - 1"]),
        (
            {"seeds": list(range(40_000)), "models": ["digits_cnn"], "methods": ["qcfs", "light", "ftbc"]},
            ["120000 cells", "at most 100000"],
        ),
        ({"methods": [{"name": "ftbc", "batches": True}]}, ["methods.0", "true/false are not numbers"]),
        (b"name: \xe9t\xe9\n", ["not UTF-8", "offset 6"]),
        (b"\x00\x01\x02binary", ["NUL bytes"]),
        ("description: " + "x" * (1 << 20) + "\n", ["at most 1048576 bytes"]),
        ("name: !!python/object/apply:os.getcwd []\n", ["YAML error", "python/object"]),
        ({"models": [{"name": "digits_cnn", "width": 10**6}]}, ["models.0", "parameters; at most"]),
        ({"models": [{"name": "digits_cnn", "width": True}]}, ["models.0.width", "true/false"]),
        (
            {"models": [{"name": "digits_cnn", "width": True}, {"name": "digits_cnn", "width": 10**6}]},
            ["models.0.width", "models.1", "parameters; at most"],
        ),
    ],
    ids=[
        "alias-bomb",
        "duplicate-key",
        "bool-timestep",
        "huge-timestep",
        "huge-seed",
        "negative-seed",
        "too-many-cells",
        "bool-param",
        "latin1",
        "binary",
        "too-big",
        "python-tag",
        "huge-model",
        "bool-model-param",
        "huge-model-after-a-bad-one",
    ],
)
def test_strict_bounded_yaml_refusals_are_located_and_fast(tmp_path, content, needles):
    import time

    from typer.testing import CliRunner

    from snnbench.cli import app

    path = tmp_path / "suite.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        path.write_text(yaml.safe_dump({**valid_dict(), **content}))
    else:
        path.write_text(content)
    # CPU seconds of this process, not wall time: a loaded 2-core machine stretches the wall clock,
    # while an expanded alias bomb or a huge cell product costs CPU whatever the load.
    t0 = time.process_time()
    result = CliRunner().invoke(app, ["validate", str(path)])
    elapsed = time.process_time() - t0
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and str(path) in result.output
    for needle in needles:
        assert needle in result.output
    assert elapsed < 1.5, f"refusal took {elapsed:.1f} CPU s"


def test_a_folder_is_not_a_suite_and_aliases_within_the_cap_are_fine(tmp_path):
    with pytest.raises(SuiteError, match="suite file is a folder, not a regular file"):
        load_suite(tmp_path)
    # A generated suite (yaml.dump of shared objects) uses aliases; small ones load.
    data = valid_dict()
    shared = [1, 2]
    data["timesteps"], data["seeds"] = shared, shared
    path = write(tmp_path, yaml.safe_dump(data))
    assert "&id" in path.read_text()
    suite = load_suite(path)
    assert suite.timesteps == [1, 2] and suite.seeds == [1, 2]
