"""Benchmark rows: which fields name a row (impl, T, N, dtype, mode ...) and which are measurements.

A field is a measurement when the metric catalog knows it as a measured quantity (``ms``, ``gbps``,
``speedup``, ``bytes``, ``active_fraction`` ...) or it holds a float. Strings,
booleans, ``None``, other integers (T, N, hidden, batch) and set points (``target_*``) identify the
row; free text (``note``) and nested values do neither.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from snnbench.report.metrics import is_known_quantity, is_number

SET_POINTS = ("target_*",)  # a requested value the row was measured at: part of its identity
FREE_TEXT = ("note", "*_note", "comment")


def is_measurement(name: str, value: Any) -> bool:
    if isinstance(value, (dict, list)) or any(fnmatchcase(name, p) for p in SET_POINTS + FREE_TEXT):
        return False
    if is_known_quantity(name):
        return is_number(value) or value is None
    return isinstance(value, float)


def row_key(row: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The identifying fields of a row, sorted by name (hashable)."""
    return tuple(
        (k, row[k])
        for k in sorted(row)
        if not is_measurement(k, row[k])
        and not isinstance(row[k], (dict, list))
        and not any(fnmatchcase(k, p) for p in FREE_TEXT)
    )


def key_text(key: tuple[tuple[str, Any], ...]) -> str:
    return ", ".join(f"{k}={v}" for k, v in key)


def measurements(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if is_measurement(k, v) and is_number(v)}
