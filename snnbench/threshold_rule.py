"""The threshold rules of ReLU ANNs, ``max | percentile(p) | mse``: parsed without importing torch,
so the suite schema can check them when a suite is loaded."""

from __future__ import annotations

import re
from typing import NamedTuple


class ThresholdRule(NamedTuple):
    kind: str  # "max", "percentile" or "mse"
    percentile: float = 100.0


_PERCENTILE = re.compile(r"^percentile\(\s*([0-9]*\.?[0-9]+)\s*\)$")


def parse_threshold(text: str) -> ThresholdRule:
    """``"max"``, ``"mse"`` or ``"percentile(p)"`` with 0 < p <= 100; ValueError otherwise."""
    value = str(text).strip()
    if value in ("max", "mse"):
        return ThresholdRule(value)
    match = _PERCENTILE.match(value)
    if match and 0 < float(match.group(1)) <= 100:
        return ThresholdRule("percentile", float(match.group(1)))
    raise ValueError(
        f"threshold must be 'max', 'mse' or 'percentile(p)' with 0 < p <= 100 (e.g. 'percentile(99.9)'), got {text!r}"
    )
