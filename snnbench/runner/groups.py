"""Cells that share work, so that a parallel run computes that work once.

The methods of one conversion-track ANN share its training, its accuracy, its thresholds and its
conversion (conversion.pipeline.prepare_once keeps them for the next method in the same process):
they form one group, run one after another by one worker. Cells of the other tracks train their own
network and are groups of one.
"""

from __future__ import annotations

from snnbench.config import config_hash
from snnbench.records.cells import Cell


def shared_work_key(cell: Cell) -> str:
    """Equal for cells that train the same ANN: the cell's configuration without its method."""
    if cell.track != "conversion":
        return cell.key
    from snnbench.models.registry import CONVERSION_PARAMETERS

    cfg = cell.config()
    del cfg["method"], cfg["suite"]
    # Threshold rules of one ReLU ANN share its training too (the thresholds come after it).
    params = cfg["model"]["params"]
    cfg["model"]["params"] = {k: v for k, v in params.items() if k not in CONVERSION_PARAMETERS}
    return config_hash(cfg, 16)


def grouped(cells: list[Cell]) -> list[list[Cell]]:
    """``cells`` in groups of shared work, each group in the cells' order, groups by first cell."""
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(shared_work_key(cell), []).append(cell)
    return list(groups.values())
