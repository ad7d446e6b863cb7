"""No traceback for unusable input on any verb (exit 2, one line naming the input); internal errors
keep theirs (exit 1); text from the user is printed verbatim, never read as rich markup."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from snnbench.cli import app

runner = CliRunner()


def _suite(folder: Path, name: str = "odd") -> Path:
    path = folder / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)  # "[/x]" names a sub-folder "[" and file "x].yaml"
    path.write_text(
        yaml.safe_dump(
            {"name": "odd", "datasets": ["digits"], "models": ["digits_cnn"], "methods": ["qcfs"], "timesteps": [1]}
        )
    )
    return path


@pytest.mark.parametrize("name", ["[bold]odd", "[/x]", "a[red]b[/red]"])
def test_paths_with_markup_are_shown_verbatim(tmp_path, name):
    path = _suite(tmp_path / "t[/]", name)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert str(path) in result.output
    missing = tmp_path / "[/nope]" / f"{name}.yaml"
    result = runner.invoke(app, ["validate", str(missing)])
    assert result.exit_code == 2 and str(missing) in result.output and "Traceback" not in result.output


def test_unusable_options_are_one_line_errors(tmp_path):
    suite = _suite(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("")
    cases = [
        (["run", str(suite), "--address", "10.0.0.1:6379"], "needs --executor ray"),
        (["run", str(suite), "--executor", "slurm"], "'slurm' is not one of 'local', 'ray'"),
        (["plot", str(tmp_path), "--out", str(afile)], "is a file; expected a folder"),
        (["bench", "neuron", "--out", str(afile), "--quick"], "is a file; expected a folder"),
    ]
    for args, needle in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert needle in result.output and "Traceback" not in result.output, (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_internal_errors_keep_their_traceback(tmp_path, monkeypatch):
    """A CUDA or Triton failure is not bad input: it surfaces as an exception (exit 1), not exit 2."""
    import snnbench.runner.cli_run as cli_run

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(cli_run, "run_with_progress", broken)
    result = runner.invoke(app, ["run", str(_suite(tmp_path))])
    assert result.exit_code == 1
    assert isinstance(result.exception, RuntimeError)
