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
    result = run_ftbc_bench(device="cpu", out=tmp_path, quick=True, console=console)
    saved = json.loads((tmp_path / "ftbc.json").read_text())
    assert saved["benchmark"] == "ftbc" and saved["device"] == "cpu"
    assert saved["config"]["T"] == 4 and saved["config"]["if_layers"] == 15  # quick's T with none given; VGG-16 has 15
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
    assert len(kernel_rows) == 15, "the PyTorch reference has no tiling to force: no split rows off a card"
    assert all(row["p20_ms"] <= row["median_ms"] <= row["p80_ms"] for row in kernel_rows)
    assert saved["schema"] == 2 and saved["complete"]
    assert "reduced sizes" in saved["note"]
    assert result["path"] == str(tmp_path / "ftbc.json")


def test_kernel_rows_report_every_tiling_with_its_bytes():
    """With the Triton kernel (here the interpreter) every layer has the heuristic's row and the forced
    split / no-split rows, each with its tiling, its bytes (floor + partial sums) and its error."""
    from snnbench.bench.ftbc import SPLIT_MODES, _kernel_rows
    from snnbench.conversion.convert import convert
    from snnbench.conversion.thresholds import set_thresholds_from_data
    from snnbench.models.digits_cnn import digits_cnn

    torch.manual_seed(0)
    ann = digits_cnn(levels=4, width=2).eval()
    x = torch.rand(3, 1, 8, 8)
    set_thresholds_from_data(ann, x, quantile=0.9)
    rows = _kernel_rows(ann, convert(ann), x, 2, "cpu", {"warmup_ms": 0, "rep_ms": 1}, "triton")
    layers = sorted({r["layer"] for r in rows})
    assert layers and len(rows) == 3 * len(layers)
    assert [r["impl"] for r in rows[:3]] == list(SPLIT_MODES)
    for r in rows:
        assert r["bytes"] == r["floor_bytes"] + r["partial_bytes"] and r["floor_bytes"] > 0
        assert r["programs"] >= 1 and r["max_rel_diff_vs_reference"] < 1e-5
        assert (r["median_ms"] is not None) == (r["impl"] == "ftbc_stats_kernel")
    assert all(
        r["split"] for r in rows if r["impl"] == "ftbc_stats_kernel_split" and "same tiling" not in r.get("note", "")
    )
    assert not any(r["split"] for r in rows if r["impl"] == "ftbc_stats_kernel_nosplit")
