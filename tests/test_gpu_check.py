"""scripts/gpu_check.py: the dry run end to end (CPU, tiny sizes, one process) and the tree checks
that decide whether a GPU run's numbers may be committed.

The dry run is also the one end-to-end run of every bench through the CLI (``snnbench bench X --quick
--device cpu``): what each bench's JSON and screen must hold is checked here, on the dry run's output,
rather than by a second quick run of the same bench in tests/test_<bench>_bench.py."""

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
    benches = {bench: json.loads((out / f"{bench}.json").read_text()) for bench in gc.BENCHES}
    assert all(data["benchmark"] == bench for bench, data in benches.items())
    with tarfile.open(out / "gpu_check.tar.gz") as tar:
        names = set(tar.getnames())
        screens = {b: tar.extractfile(f"gpu_check/logs/bench_{b}.log").read().decode() for b in gc.BENCHES}
    for suite in ("gpu_conversion", "gpu_training"):
        assert f"gpu_check/runs/{suite}.jsonl" in names
    assert not any(n.startswith("gpu_check/cache/") for n in names)
    assert not any(n.endswith(".tmp") for n in names)  # every bench JSON written atomically
    _check_quick_neuron(benches["neuron"], screens["neuron"])
    _check_quick_sparse(benches["sparse"], screens["sparse"])
    _check_quick_ftbc(benches["ftbc"])
    _check_quick_convert(benches["convert"])


def _check_quick_neuron(data: dict, screen: str) -> None:
    """bench neuron --quick on the CPU: every implementation, dtype and mode timed with its spread and
    bandwidth, every untimed row saying why, the host-path overhead against its target."""
    import torch

    assert "torch_loop" in screen and "no GPU" in screen
    assert data["device"] == "cpu" and "no GPU" in data["note"] and data["schema"] == 2
    assert data["environment"]["hardware"]["device"] == "cpu"
    assert "git_sha" in data["environment"] and data["environment"]["torch"] == torch.__version__
    timed = [r for r in data["rows"] if r["median_ms"]]
    assert {"copy", "snnbench", "snnbench_uint8", "snnbench_localzo", "torch_loop"} <= {r["impl"] for r in timed}
    assert {r["dtype"] for r in timed} == {"fp32", "bf16"}
    assert {r["mode"] for r in timed} == {"fwd", "fwd_bwd"}
    for r in timed:
        assert r["median_ms"] > 0 and r["bytes"] > 0
        assert r["p20_ms"] <= r["median_ms"] <= r["p80_ms"]
        assert r["gbps"] == pytest.approx(r["bytes"] / (r["median_ms"] * 1e-3) / 1e9)
        assert r["frac_of_ceiling"] == pytest.approx(r["gbps"] / r["ceiling_gbps"])
    assert all(r.get("note") for r in data["rows"] if not r["median_ms"])  # every missing time says why
    host = data["host_path"]
    assert host["device"] == "cpu" and 0 < host["fwd"]["median_us"] < host["fwd_bwd"]["median_us"]
    assert data["summary"]["host_path"]["fwd"]["target_us"] == 25.0


def _check_quick_sparse(data: dict, screen: str) -> None:
    """bench sparse --quick on the CPU with the card's options: dense and sparse rows of the layer and
    of the training step, each with the shared row vocabulary; sparse gradients exact. The fused dense
    baseline (Triton) and the other input kinds: tests/test_sparse_bench.py."""
    assert data["schema"] == 2 and data["environment"]["torch"] and data["summary"]
    assert data["ceiling"]["gbps"] > 0 and data["config"]["designs"] == ["pairs", "rows", "scan"]
    rows = data["rows"]
    impls = {(r["kind"], r["impl"]) for r in rows}
    assert {(kind, impl) for kind in ("layer", "step") for impl in ("dense_pytorch", "sparseprop", "localzo")} <= impls
    assert {r["input"] for r in rows if r["kind"] == "layer"} == {"bernoulli"}  # as asked, like on a card
    for r in rows:  # the shared row vocabulary, with the spread of every time
        assert 0 < r["p20_ms"] <= r["median_ms"] <= r["p80_ms"] and r["bwd_ms"] == r["median_ms"]
        assert r["fwd_p20_ms"] <= r["fwd_ms"] <= r["fwd_p80_ms"]
        if r["impl"] in ("sparseprop", "localzo", "localzo_fp16"):
            assert 0 < r["active_fraction"] < 0.2 and r["bwd_speedup"] > 0
        if r["kind"] == "layer" and r["impl"] in ("sparseprop", "localzo"):
            assert r["max_rel_err"] < 1e-5  # dW equals the dense masked gradient
            assert r["prev_entries"] > 0 and r["max_rel_err_dx"] < 1e-5  # so does the input gradient
            assert r["frac_of_ceiling"] > 0 and r["gathered_gbps"] > 0 and r["bytes"] > 0
        if r["kind"] == "layer" and "target_active" in r:  # on a CPU the sparse rows time the reference
            assert r["backend"] == "torch" and r["design"] == "reference"
    assert "sparse backward" in screen


def _check_quick_ftbc(data: dict) -> None:
    """bench ftbc --quick on the CPU: fast FTBC agrees with the official loop, the statistics kernel
    has one row per IF layer (no forced tilings off a card), and the reduced sizes are said."""
    import torch

    assert data["device"] == "cpu" and data["schema"] == 2 and data["complete"]
    assert data["config"]["T"] == 4 and data["config"]["if_layers"] == 15  # quick's T with none given; VGG-16 has 15
    assert data["fast_s"] > 0 and data["reference_s"] > 0
    assert data["speedup"] == data["reference_s"] / data["fast_s"]
    assert data["max_abs_bias_diff"] < 1e-5 and data["max_abs_bias"] > 0
    assert data["kernel_max_rel_diff_vs_reference"] < 1e-5
    assert data["environment"]["torch"] == torch.__version__
    impls = [row["impl"] for row in data["rows"]]
    assert impls[:5] == ["ftbc_fast", "ftbc_reference", "eval_pass", "ann_forward", "copy"]
    kernel_rows = data["rows"][5:]
    assert impls.count("ftbc_stats_kernel") == len(kernel_rows) == 15, "no split rows off a card"
    assert all(row["bytes"] > 0 and row["frac_of_ceiling"] > 0 for row in kernel_rows)
    assert all(row["p20_ms"] <= row["median_ms"] <= row["p80_ms"] for row in kernel_rows)
    assert "reduced sizes" in data["note"]


def _check_quick_convert(data: dict) -> None:
    """bench convert --quick on the CPU: per model, snnbench, the official step-by-step loop and
    SpikingJelly (or why not) and every option, with speed and agreement fields."""
    assert data["schema"] == 2
    models = {r["model"] for r in data["rows"]}
    assert "vgg16" in models
    for model in models:
        by = {(r["impl"], r["option"]): r for r in data["rows"] if r["model"] == model}
        assert set(by) == {("snnbench", "none"), ("official_loop", "none"), ("spikingjelly", "none")} | {
            ("snnbench", option) for option in ("bf16", "channels_last", "cuda_graph")
        }
        ours, official = by[("snnbench", "none")], by[("official_loop", "none")]
        assert official["pred_agreement"] == 1.0 and official["max_abs_logit_diff"] < 1e-3
        assert ours["speedup_vs_official_loop"] == official["median_ms"] / ours["median_ms"]
        assert ours["image_steps_per_s"] == ours["images_per_s"] * ours["T"]
        assert ours["flops"] > 0 and ours["tflops"] > 0 and ours["frac_of_peak"] is None  # no card peak on a CPU
        assert by[("snnbench", "channels_last")]["max_abs_logit_diff"] < 1e-3
        assert by[("snnbench", "cuda_graph")]["note"].startswith("skipped")
        spikingjelly = by[("spikingjelly", "none")]
        assert spikingjelly["median_ms"] or spikingjelly["note"].startswith("skipped")


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
