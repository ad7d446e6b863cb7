"""The one sweep style of the kernel benches: each bench's sizes are a section of the shipped
snnbench/sweeps/kernels.yaml (package data, so a wheel has it too), every key checked when it is read,
with named tiers (``quick``, ``cpu``, presets) that replace some of the section's values for a run.
A bench keeps its measure code; its sizes live in the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from snnbench.errors import BenchInputError


def default_sweep_file() -> Path:
    """The sweep shipped inside the package, found the same way in a checkout and in a wheel."""
    from importlib.resources import files

    return Path(str(files("snnbench.sweeps") / "kernels.yaml"))


def load_section(name: str, keys: Sequence[str], tiers: Sequence[str], path: Optional[Path] = None) -> dict[str, Any]:
    """Section ``name`` of the sweep file (the shipped one unless ``path``): every key of ``keys`` and
    every tier of ``tiers`` present, nothing else; a tier may set only keys of ``keys``."""
    from snnbench.strict_yaml import read_yaml

    path = Path(path) if path is not None else default_sweep_file()
    # The one strict reader: a FIFO, folder, !!python tag, duplicate key or syntax error is one located line.
    data = read_yaml(path, "bench sweep file") or {}
    section = data.get(name) if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise BenchInputError(f"{path}: '{name}' must be a mapping of sweep settings")
    expected = [*keys, *tiers]
    unknown = set(section) - set(expected)
    if unknown:
        raise BenchInputError(f"{path}: {name}: unknown keys {sorted(unknown)}; expected {sorted(expected)}")
    missing = [k for k in expected if k not in section]
    if missing:
        raise BenchInputError(f"{path}: {name}: missing keys {missing}")
    for tier in tiers:
        if not isinstance(section[tier], dict) or set(section[tier]) - set(keys):
            raise BenchInputError(f"{path}: {name}.{tier}: expected a mapping of some of {sorted(keys)}")
    return section


def tier_of(section: dict[str, Any], tier: Optional[str], tiers: Sequence[str]) -> dict[str, Any]:
    """The section's values with ``tier``'s (None: none) in their place, without the tier entries."""
    chosen = {k: v for k, v in section.items() if k not in tiers}
    return chosen | (section[tier] if tier else {})
