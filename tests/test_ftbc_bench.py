"""`snnbench bench ftbc` in quick mode on the CPU: runs, agrees with the official loop, writes its JSON."""

from __future__ import annotations

import json

import torch

from snnbench.bench.ftbc import run_ftbc_bench


class _Quiet:
    def __init__(self):
        self.lines = []

    def print(self, *args):
        self.lines.append(" ".join(str(a) for a in args))


def test_quick_bench_writes_json(tmp_path):
    console = _Quiet()
    result = run_ftbc_bench(device="cpu", out=tmp_path, quick=True, steps=32, console=console)
    saved = json.loads((tmp_path / "ftbc.json").read_text())
    assert saved["benchmark"] == "ftbc" and saved["device"] == "cpu"
    assert saved["config"]["T"] == 4 and saved["config"]["if_layers"] == 15  # quick caps T; VGG-16 has 15
    assert saved["fast_s"] > 0 and saved["reference_s"] > 0
    assert saved["speedup"] == saved["reference_s"] / saved["fast_s"]
    assert saved["max_abs_bias_diff"] < 1e-5 and saved["max_abs_bias"] > 0
    assert saved["kernel_max_rel_diff_vs_reference"] < 1e-5
    assert saved["environment"]["torch"] == torch.__version__
    impls = [row["impl"] for row in saved["rows"]]
    assert impls[:5] == ["ftbc_fast", "ftbc_reference", "eval_pass", "ann_forward", "copy"]
    assert impls.count("ftbc_stats_kernel") == 15
    kernel_rows = saved["rows"][5:]
    assert all(row["bytes"] > 0 and row["frac_of_ceiling"] > 0 for row in kernel_rows)
    assert all(row["p20_ms"] <= row["median_ms"] <= row["p80_ms"] for row in kernel_rows)
    assert saved["schema"] == 2
    assert "reduced sizes" in saved["note"]
    assert result["path"] == str(tmp_path / "ftbc.json")
