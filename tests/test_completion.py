"""Shell completion: the installed ``snnbench`` script answers bash's completion protocol with real verbs
and the choices of an option, and prints a script to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("snnbench")


def _complete(*words: str) -> list[str]:
    """What bash would offer for the last of ``words`` (an empty last word: everything that fits)."""
    env = dict(
        os.environ,
        _SNNBENCH_COMPLETE="complete_bash",
        COMP_WORDS=" ".join(["snnbench", *words]),
        COMP_CWORD=str(len(words)),
    )
    result = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


pytestmark = pytest.mark.skipif(not SCRIPT.exists(), reason="the snnbench console script is not installed")


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


def test_the_completion_script_is_shown_and_installed_for_bash(tmp_path):
    result = subprocess.run([str(SCRIPT), "--show-completion", "bash"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "_SNNBENCH_COMPLETE=complete_bash" in result.stdout and "complete " in result.stdout
    env = dict(os.environ, HOME=str(tmp_path), SHELL="/bin/bash")
    installed = subprocess.run(
        [str(SCRIPT), "--install-completion", "bash"], env=env, capture_output=True, text=True, timeout=60
    )
    assert installed.returncode == 0, installed.stderr
    script = tmp_path / ".bash_completions" / "snnbench.sh"
    assert "_SNNBENCH_COMPLETE=complete_bash" in script.read_text()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()
