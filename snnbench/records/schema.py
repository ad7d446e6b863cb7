"""The record a finished cell becomes: one JSON object per line of a results file."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from snnbench.records.cells import Cell
from snnbench.records.labels import method_label

SCHEMA_VERSION = 1


def make_record(
    cell: Cell, metrics: dict[str, Any], wall_s: float, env: dict[str, Any], cpu_s: Optional[float] = None
) -> dict[str, Any]:
    """``cpu_s``: CPU seconds (user + system, every thread) the cell's process spent on it, which a
    machine shared with other work inflates far less than ``wall_s``."""
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
        **({"cpu_s": cpu_s} if cpu_s is not None else {}),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "env": env,
    }
