"""Which module runs a cell of each track. Imports are lazy so a conversion sweep never loads the
training track's code and vice versa.

Each track module offers the same four functions, used by the cell and by the preflight alike:
``load_cell_data(cell, data_root)``, ``build_cell_model(cell, bundle, device)``,
``check_cell_inputs(cell, bundle, cache_dir, data_root)`` (what the cell will read from the cache,
read with the cell's own loaders) and its ``run_*_cell(cell, ctx)``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from snnbench.records.cells import Cell
from snnbench.context import RunContext

# track -> (module, its cell function)
TRACKS: dict[str, tuple[str, str]] = {
    "conversion": ("snnbench.conversion.pipeline", "run_conversion_cell"),
    "training": ("snnbench.training.pipeline", "run_training_cell"),
    "direct": ("snnbench.training.conv_train", "run_direct_cell"),
}


def track_module(track: str) -> ModuleType:
    if track not in TRACKS:
        raise ValueError(f"unknown track {track!r}; expected one of {sorted(TRACKS)}")
    return importlib.import_module(TRACKS[track][0])


def run_cell(cell: Cell, ctx: RunContext) -> dict[str, Any]:
    """Run one cell and return its metrics (plain JSON types)."""
    return getattr(track_module(cell.track), TRACKS[cell.track][1])(cell, ctx)
