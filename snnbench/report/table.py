"""Leaderboard tables from result records: one row per (dataset, model, method), mean ± std over seeds.

Conversion rows have a column per time step T and the ANN accuracy; training rows have accuracy,
backward speed-up and the fraction of neurons active in the backward pass.
"""

from __future__ import annotations

from typing import Any, Iterable

import pandas as pd

ROW_KEYS = ["dataset", "model", "method"]


def _flatten(record: dict[str, Any]) -> dict[str, Any]:
    m = record.get("metrics", {})
    row: dict[str, Any] = {k: record.get(k) for k in ROW_KEYS}
    row["seed"] = record.get("seed")
    row["track"] = record.get("track")
    if "ann_acc" in m:
        row["ANN"] = m["ann_acc"]
    for t, acc in (m.get("snn_acc") or {}).items():
        row[f"T={t}"] = acc
    for name in ("test_acc", "active_fraction", "bwd_speedup", "step_speedup", "calibrate_s", "train_s"):
        if name in m and m[name] is not None:
            row[name] = m[name]
    return row


def records_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    rows = [_flatten(r) for r in records]
    return pd.DataFrame(rows)


def _t_order(col: str) -> tuple[int, int]:
    if col.startswith("T="):
        return (1, int(col[2:]))
    return (0 if col == "ANN" else 2, 0)


def leaderboard(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Mean and std over seeds per (dataset, model, method); columns ``<metric>`` and ``<metric>_std``."""
    frame = records_frame(records)
    if frame.empty:
        return frame
    metrics = [c for c in frame.columns if c not in ROW_KEYS + ["seed", "track"]]
    metrics = sorted(metrics, key=_t_order)
    grouped = frame.groupby(ROW_KEYS, sort=False, dropna=False)
    mean = grouped[metrics].mean()
    std = grouped[metrics].std(ddof=0).add_suffix("_std")
    out = pd.concat([mean, std], axis=1)
    out["seeds"] = grouped["seed"].nunique()
    return out.reset_index()


def format_cell(mean: float, std: float, digits: int = 2) -> str:
    if pd.isna(mean):
        return ""
    if pd.isna(std) or std == 0:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def render_rich(board: pd.DataFrame, title: str = "snnbench results"):
    from rich.table import Table

    table = Table(title=title)
    if board.empty:
        table.add_column("no results")
        return table
    metric_cols = [c for c in board.columns if c not in ROW_KEYS + ["seeds"] and not c.endswith("_std")]
    for col in ROW_KEYS + metric_cols + ["seeds"]:
        table.add_column(col, justify="left" if col in ROW_KEYS else "right")
    for _, row in board.iterrows():
        cells = [str(row[k]) for k in ROW_KEYS]
        for col in metric_cols:
            digits = 3 if col == "active_fraction" else 2
            cells.append(format_cell(row[col], row.get(f"{col}_std"), digits))
        cells.append(str(row["seeds"]))
        table.add_row(*cells)
    return table
