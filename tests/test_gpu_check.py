"""scripts/gpu_check.py: the dry run end to end (CPU, tiny sizes, one process) and the tree checks
that decide whether a GPU run's numbers may be committed."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gc = _module()


def test_dry_run_runs_every_part_and_writes_a_returnable_summary(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "SNNBENCH_GIT_SHA": "0" * 40, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), "--dry-run", "--allow-dirty"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = json.loads((out / "summary.json").read_text())
    failed = {p["part"]: p["tail"] for p in summary["parts"] if not p["ok"]}
    assert not failed, (failed, proc.stdout[-2000:], proc.stderr[-2000:])
    assert [p["part"] for p in summary["parts"]] == [name for name, _, _ in gc.plan(tmp_path, True)]
    assert summary["dry_run"] is True and summary["versions"]["torch"]
    assert [r["passed"] for r in summary["rows"]] == ["yes"] * len(summary["parts"])
    assert summary["card"]["device"] == "cpu"
    assert summary["parts"][0]["counts"]["tests"] > 0 and summary["parts"][0]["counts"]["failures"] == 0
    # A dirty tree may be measured only when asked, and then the summary cannot pass.
    assert proc.returncode == (0 if summary["tree"]["clean"] else 1)
    assert summary["ok"] is (summary["tree"]["clean"] is True)
    # What a lent machine returns: at most 8 plain files at the top level, plain names.
    entries = list(out.iterdir())
    assert all(p.is_file() and re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in entries)
    assert len(entries) <= 8 and {p.name for p in entries} == set(summary["files"])
    for bench in gc.BENCHES:
        assert json.loads((out / f"{bench}.json").read_text())["benchmark"] == bench
    with tarfile.open(out / "gpu_check.tar.gz") as tar:
        names = set(tar.getnames())
    for suite in ("gpu_conversion", "gpu_training"):
        assert f"gpu_check/runs/{suite}.jsonl" in names
    assert not any(n.startswith("gpu_check/cache/") for n in names)


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "kernels").mkdir(parents=True)
    (repo / "kernels" / "op.py").write_text("x = 1\n")
    (repo / "pyproject.toml").write_text("[project]\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "one"], check=True)
    return repo


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_tree_state_refuses_a_dirty_tree_and_vouches_for_a_clean_one(tmp_path, capsys):
    repo = _repo(tmp_path)
    state = gc.tree_state(False, root=repo)
    assert state["clean"] is True and state["files_digest"] == gc.commit_digest(root=repo)
    (repo / "kernels" / "op.py").write_text("x = 2\n")
    with pytest.raises(SystemExit) as err:
        gc.tree_state(False, root=repo)
    assert err.value.code == 2 and "uncommitted" in capsys.readouterr().err
    flagged = gc.tree_state(True, root=repo)
    assert flagged["clean"] is False and flagged["dirty_paths"] == ["kernels/op.py"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_copy_without_git_checks_its_files_against_the_given_digest(tmp_path, monkeypatch, capsys):
    repo = _repo(tmp_path)
    digest = gc.commit_digest(root=repo)
    shutil.rmtree(repo / ".git")
    monkeypatch.delenv("SNNBENCH_GIT_SHA", raising=False)
    with pytest.raises(SystemExit):
        gc.tree_state(False, root=repo)
    assert "SNNBENCH_GIT_SHA" in capsys.readouterr().err
    monkeypatch.setenv("SNNBENCH_GIT_SHA", "a" * 40)
    monkeypatch.setenv("SNNBENCH_TREE_DIGEST", digest)
    assert gc.tree_state(False, root=repo)["clean"] is True
    (repo / "kernels" / "extra.py").write_text("")  # an uncommitted file travelled with the copy
    with pytest.raises(SystemExit):
        gc.tree_state(False, root=repo)


def test_part_limits_fit_the_default_budget():
    """Each part gets its own share; shares over the default budget would starve the last bench."""
    gpu_check = _module()
    parts = set(gpu_check.PART_LIMITS)
    assert parts == {"tests"} | {f"track_{s}" for s in gpu_check.SUITES} | {f"bench_{b}" for b in gpu_check.BENCHES}
    assert sum(gpu_check.PART_LIMITS.values()) <= gpu_check._parser().get_default("budget_s")
