"""The record a finished cell becomes: one JSON object per line of a results file."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from snnbench.records.cells import Cell
from snnbench.records.labels import method_label

SCHEMA_VERSION = 1


def make_record(cell: Cell, metrics: dict[str, Any], wall_s: float, env: dict[str, Any]) -> dict[str, Any]:
    label = (
        method_label(cell.method.name, cell.method.params, cell.model.params) if cell.track == "conversion" else None
    )
    return {
        "schema": SCHEMA_VERSION,
        "key": cell.key,
        "suite": cell.suite,
        "track": cell.track,
        "dataset": cell.dataset.name,
        "model": cell.model.name,
        "method": cell.method.name,
        **({"label": label} if label else {}),
        "seed": cell.seed,
        "config": cell.config(),
        "metrics": metrics,
        "wall_s": wall_s,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "env": env,
    }
