"""Which function runs a cell of each track. Imports are lazy so a conversion sweep never loads the
training track's code and vice versa."""

from __future__ import annotations

from typing import Any

from snnbench.records.cells import Cell
from snnbench.context import RunContext


def run_cell(cell: Cell, ctx: RunContext) -> dict[str, Any]:
    """Run one cell and return its metrics (plain JSON types)."""
    if cell.track == "conversion":
        from snnbench.conversion.pipeline import run_conversion_cell

        return run_conversion_cell(cell, ctx)
    if cell.track == "training":
        from snnbench.training.pipeline import run_training_cell

        return run_training_cell(cell, ctx)
    if cell.track == "direct":
        from snnbench.training.conv_train import run_direct_cell

        return run_direct_cell(cell, ctx)
    raise ValueError(f"unknown track {cell.track!r}")
