"""Preflight: unusable input is found before the first cell runs (exit 2, the input named, no
traceback, earlier records intact, nothing computed)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import torch
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.models.digits_cnn import digits_cnn
from tests.helpers import tiny_digits_suite
from tests.test_hardening_files import _plant_torch

runner = CliRunner()


def _refused(args: list[str], *needles: str) -> str:
    t0 = time.perf_counter()
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for needle in needles:
        assert needle in result.output, result.output
    assert time.perf_counter() - t0 < 20
    return result.output


def test_checkpoint_problems_are_found_before_any_cell(tmp_path):
    state = digits_cnn(width=8).state_dict()
    state.pop("features.0.weight")
    state["extra.w"] = torch.zeros(2)
    state["classifier.3.weight"] = torch.zeros(3, 3)
    misfit = tmp_path / "[bold]misfit.pt"
    torch.save(state, misfit)
    suite = tiny_digits_suite(tmp_path, models=[{"name": "digits_cnn", "width": 8, "checkpoint": str(misfit)}])
    out = tmp_path / "out"
    for verb in (
        ["validate", str(suite), "--deep", "--results-dir", str(out)],
        ["run", str(suite), "--results-dir", str(out)],
    ):
        _refused(
            verb,
            str(misfit),
            "missing keys [features.0.weight]",
            "unexpected keys [extra.w]",
            "classifier.3.weight: checkpoint (3, 3) vs model (10, 128)",
        )
    assert not (out / "tiny.jsonl").exists()

    missing = tiny_digits_suite(tmp_path, models=[{"name": "digits_cnn", "checkpoint": str(tmp_path / "gone.pt")}])
    _refused(["validate", str(missing)], "models.0.checkpoint", "gone.pt not found")


def test_folders_files_and_cluster_are_checked_first(tmp_path):
    suite = tiny_digits_suite(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("")
    (tmp_path / "res" / "tiny.jsonl").mkdir(parents=True)
    _refused(["run", str(suite), "--results-dir", str(tmp_path / "res")], "tiny.jsonl: results file is a folder")
    _refused(["run", str(suite), "--results-dir", str(afile)], f"folder of the results file: {afile} is a file")
    _refused(
        ["run", str(suite), "--results-dir", str(tmp_path / "ok"), "--cache-dir", str(afile)],
        f"{afile}: cache folder (--cache-dir / SNNBENCH_CACHE) is a file",
    )
    pytest.importorskip("ray")
    _refused(
        ["run", str(suite), "--results-dir", str(tmp_path / "ok"), "--executor", "ray", "--address", "127.0.0.1:1"],
        "--address 127.0.0.1:1: no Ray head reachable at 127.0.0.1:1",
    )


def test_planted_cache_file_stops_the_run_before_training(tmp_path):
    from snnbench.config import load_suite
    from snnbench.conversion.pipeline import ann_cache_path
    from snnbench.records.cells import expand

    marker = tmp_path / "PWNED"
    suite = tiny_digits_suite(tmp_path)
    cached = ann_cache_path(expand(load_suite(suite))[0], tmp_path / "cache")
    _plant_torch(cached.with_suffix(".state.pt"), marker)
    _refused(
        ["run", str(suite), "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "cache")],
        str(cached.with_suffix(".state.pt")),
        "refused without running",
    )
    torch.save(digits_cnn(width=3).state_dict(), cached)  # a cached ANN of another shape
    _refused(
        ["run", str(suite), "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "cache")],
        str(cached),
        "does not fit the model",
    )
    assert not marker.exists() and not (tmp_path / "r" / "tiny.jsonl").exists()


def test_immutable_results_file_is_found_before_the_first_cell(tmp_path):
    suite = tiny_digits_suite(tmp_path, seeds=[0, 1])
    out = tmp_path / "out"
    out.mkdir()
    results = out / "tiny.jsonl"
    earlier = {"schema": 1, "key": "digits/other/qcfs/seed=0/x", "metrics": {}}
    results.write_text(json.dumps(earlier) + "\n")
    if subprocess.run(["chattr", "+i", str(results)], capture_output=True).returncode != 0:
        results.chmod(0o444)  # without CAP_LINUX_IMMUTABLE a read-only file (not for root) must do
        import os

        if os.geteuid() == 0:
            pytest.skip("cannot make a file immutable or read-only for root here")
    try:
        _refused(
            ["run", str(suite), "--results-dir", str(out)], str(results), "cannot be appended to", "no cell was run"
        )
    finally:
        subprocess.run(["chattr", "-i", str(results)], capture_output=True)
    assert [json.loads(line) for line in results.read_text().splitlines()] == [earlier]
