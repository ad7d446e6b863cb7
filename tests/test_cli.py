"""The command line: every verb has help with an example; env reports versions and the device."""

import pytest
from typer.testing import CliRunner

from snnbench.cli import app

runner = CliRunner()


def verbs():
    import typer.main

    group = typer.main.get_command(app)
    names = [[name] for name in group.commands if name != "bench"]
    names += [["bench", name] for name in group.commands["bench"].commands]
    return names


@pytest.mark.parametrize("verb", verbs(), ids=lambda v: " ".join(v))
def test_every_verb_has_help_with_an_example(verb):
    result = runner.invoke(app, [*verb, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example: snnbench " + " ".join(verb) in " ".join(result.output.split())


def test_env_reports_versions_and_device():
    result = runner.invoke(app, ["env"])
    assert result.exit_code == 0, result.output
    for word in ("python", "torch", "triton", "torchvision", "device", "triton interpreter"):
        assert word in result.output
    assert "cpu (no CUDA device)" in result.output or "cuda:" in result.output


def test_python_dash_m_entry_point():
    from tests.helpers import run_cli

    result = run_cli("--help")
    assert result.returncode == 0 and "run" in result.stdout


def test_table_of_missing_file_exits_2(tmp_path):
    result = runner.invoke(app, ["table", str(tmp_path / "nothing.jsonl")])
    assert result.exit_code == 2


def test_missing_dataset_stops_before_any_work_with_where_and_how(tmp_path):
    from tests.helpers import invoke_cli, tiny_digits_suite

    suite = tiny_digits_suite(tmp_path, name="cifar", datasets=[{"name": "cifar100"}], models=["resnet20"])
    empty = tmp_path / "no-data-here"
    result = invoke_cli("run", suite, "--data-root", empty, "--results-dir", tmp_path / "out")
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert str(empty) in message and "To get it" in message
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "cifar.jsonl").exists()


def test_bench_without_a_gpu_when_cuda_is_asked_exits_2():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = runner.invoke(app, ["bench", "neuron", "--device", "cuda", "--quick"])
    assert result.exit_code == 2


def test_the_environment_fingerprint_imports_no_package_for_its_version():
    # Importing triton and torchvision only to read their versions cost seconds of every run.
    from tests.helpers import run_python

    run_python(
        "import sys\n"
        "from snnbench.records.env import environment\n"
        "env = environment()\n"
        "assert env['triton'] and env['torchvision'] and env['torch'], env\n"
        "assert 'triton' not in sys.modules and 'torchvision' not in sys.modules\n"
        # On the CPU, the instruction set torch dispatches to and the CPU's model are part of a number.
        "import re, torch\n"
        "hw = env['hardware']\n"
        "if hw['device'] == 'cpu':\n"
        "    assert hw['cpu_capability'] == torch.backends.cpu.get_cpu_capability(), hw\n"
        "    info = open('/proc/cpuinfo').read()\n"
        "    model = re.search(r'^model name\\s*:\\s*(.*)$', info, re.M)\n"
        "    assert hw['name'] == (model.group(1).strip() if model else hw['name']), hw\n"
    )


def test_validate_deep_names_the_results_file_of_results_dir(tmp_path):
    """validate --deep --results-dir D checked D but printed the default results path."""
    from pathlib import Path

    suite = Path(__file__).resolve().parents[1] / "suites" / "digits.yaml"
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["validate", str(suite), "--deep", "--results-dir", str(out), "--cache-dir", str(tmp_path / "c")]
    )
    assert result.exit_code == 0, result.output
    assert f"results → {out}" in " ".join(result.output.split()), result.output
