"""Published speed-ups sit only beside measured numbers of the same scope (layer 2 vs whole step)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from snnbench.report.published import PublishedError, load_published, load_source, published_records
from snnbench.report.table import leaderboard

REPO = Path(__file__).resolve().parents[1]


def _measured(method):
    metrics = {
        "test_acc": 80.0,
        "bwd_speedup": 5.0,
        "step_speedup": 1.2,
        "active_fraction": 0.01,
        "layer2_bwd_speedup_vs_torch_loop": 30.0,
        "layer2_fwdbwd_speedup_vs_torch_loop": 2.0,
        "layer2_fwdbwd_speedup_vs_fused": 1.1,
        "layer2_active_fraction": 0.008,
    }
    return {
        "key": f"nmnist/snn_mlp/{method}/seed=0/x",
        "dataset": "nmnist",
        "model": "snn_mlp",
        "method": method,
        "seed": 0,
        "config": {},
        "metrics": metrics,
    }


def test_published_sparseprop_numbers_only_in_the_layer2_columns():
    published = published_records(load_published())
    board = leaderboard([_measured("sparseprop"), *published])
    pub = board[(board["source"] == "published") & (board["dataset"] == "nmnist") & (board["method"] == "sparseprop")]
    assert not pub.empty
    row = pub.iloc[0]
    assert row["L2_bwd_x_loop"] == 34.7 and row["L2_fb_x_loop"] == 2.11 and row["L2_active"] == 0.0075
    for whole_step in ("bwd_speedup", "step_speedup", "active_fraction"):
        assert math.isnan(row[whole_step])  # never beside snnbench's whole-step numbers
    measured = board[board["source"] == "measured"].iloc[0]
    assert measured["bwd_speedup"] == 5.0 and measured["L2_bwd_x_loop"] == 30.0


def test_every_published_speedup_carries_a_scope(tmp_path):
    for source in load_published():
        for row in source.rows:
            for name in row["metrics"]:
                if "speedup" in name or "active_fraction" in name:
                    assert name in source.scopes
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nsource: y\nrows:\n  - {dataset: d, model: m, method: k, metrics: {bwd_speedup: 3}}\n")
    with pytest.raises(PublishedError, match="scopes"):
        load_source(bad)
