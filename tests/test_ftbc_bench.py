"""`snnbench bench ftbc`: the statistics kernel's rows for every tiling. The quick run end to end (agrees
with the official loop, writes its JSON) is checked on the GPU check's dry run, which runs it
(tests/test_gpu_check.py)."""

from __future__ import annotations

import torch

from tests.helpers import timed_once


def test_kernel_rows_report_every_tiling_with_its_bytes(monkeypatch):
    """With the Triton kernel (here the interpreter) every layer has the heuristic's row and the forced
    split / no-split rows, each with its tiling, its bytes (floor + partial sums) and its error."""
    from snnbench.bench import ftbc
    from snnbench.bench.ftbc import SPLIT_MODES, _kernel_rows
    from snnbench.conversion.convert import convert
    from snnbench.conversion.thresholds import set_thresholds_from_data
    from snnbench.models.digits_cnn import digits_cnn

    monkeypatch.setattr(ftbc, "measure", timed_once)
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
