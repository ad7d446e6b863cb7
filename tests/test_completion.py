"""Shell completion: the installed ``snnbench`` script answers bash's completion protocol with real verbs
and the choices of an option, and prints a script to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("snnbench")


def _protocol_env(words: tuple[str, ...]) -> dict[str, str]:
    """What bash sets when it asks for completions of the last of ``words``."""
    return {
        "_SNNBENCH_COMPLETE": "complete_bash",
        "COMP_WORDS": " ".join(["snnbench", *words]),
        "COMP_CWORD": str(len(words)),
    }


def _complete(*words: str) -> list[str]:
    """What bash would offer for the last of ``words`` (an empty last word: everything that fits),
    answered by the CLI in this process (the installed script: test_the_installed_script_answers_bash)."""
    from typer.testing import CliRunner

    from snnbench.cli import app

    result = CliRunner().invoke(app, [], prog_name="snnbench", env=_protocol_env(words))
    assert result.exit_code == 0, result.output
    return result.stdout.split()


needs_script = pytest.mark.skipif(not SCRIPT.exists(), reason="the snnbench console script is not installed")


@needs_script
def test_the_installed_script_answers_bash():
    env = dict(os.environ, **_protocol_env(("bench", "sp")))
    result = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["sparse"]


def test_a_partial_verb_completes_to_the_verbs_it_starts():
    assert _complete("ta") == ["table"]
    assert _complete("bench", "sp") == ["sparse"]
    assert {"run", "validate", "table", "export", "bench"} <= set(_complete(""))


def test_an_option_with_choices_completes_to_its_choices():
    from snnbench.records.device import DEVICES
    from snnbench.report import TABLE_FORMATS

    assert _complete("table", "results", "--format", "") == list(TABLE_FORMATS)
    assert _complete("bench", "neuron", "--device", "c") == [d for d in DEVICES if d.startswith("c")]
    assert _complete("run", "suite.yaml", "--executor", "r") == ["ray"]


@needs_script
def test_the_completion_script_is_shown_and_installed_for_bash(tmp_path):
    # With shellingham installed, typer ignores the shell named here and looks for one among this
    # process's ancestors: a background job has none ("Shell  not supported"). Typer's own switch for
    # its tests makes the options take the named shell, so the test does not depend on who started it.
    env = dict(os.environ, HOME=str(tmp_path), SHELL="/bin/bash", _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    result = subprocess.run(
        [str(SCRIPT), "--show-completion", "bash"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "_SNNBENCH_COMPLETE=complete_bash" in result.stdout and "complete " in result.stdout
    installed = subprocess.run(
        [str(SCRIPT), "--install-completion", "bash"], env=env, capture_output=True, text=True, timeout=60
    )
    assert installed.returncode == 0, installed.stderr
    script = tmp_path / ".bash_completions" / "snnbench.sh"
    assert "_SNNBENCH_COMPLETE=complete_bash" in script.read_text()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()
