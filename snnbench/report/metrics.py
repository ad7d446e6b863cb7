"""What a metric name means to a reader: which direction is better, how it is shown, what it is.

One table shared by the leaderboard (which value is best), the regression gate (which change is a
regression) and the plots (axis labels), so the three always agree.
"""

from __future__ import annotations

import math
from fnmatch import fnmatchcase
from typing import Any, Iterator, Literal, Optional

Direction = Literal["higher", "lower"]

# Ordered: the first pattern that matches decides. Names are flattened metric paths (see flatten()).
_DIRECTIONS: list[tuple[str, Optional[Direction]]] = [
    # Descriptive quantities: a change is information, never a regression by itself.
    ("active_fraction", None),
    ("*active_fraction", None),
    ("bytes", None),
    ("hidden", None),
    ("test_samples", None),
    ("neurobench.*", None),
    ("*_err", None),
    ("*err_*", None),
    ("*diff*", None),
    ("*calibration_speedup", "higher"),
    ("*speedup*", "higher"),
    ("*_acc", "higher"),
    ("*acc.*", "higher"),
    ("acc", "higher"),
    ("ANN", "higher"),
    ("T=*", "higher"),
    ("*gbps", "higher"),
    ("frac_of_copy", "higher"),
    ("*frac_of_copy", "higher"),
    ("*frac_copy*", "higher"),
    ("*ceiling_fraction", "higher"),
    ("*frac_of_ceiling", "higher"),
    ("*frac_of_peak", "higher"),
    ("*tflops", "higher"),
    ("*images_per_s", "higher"),
    ("*steps_per_s", "higher"),
    ("*mem_saved*", "higher"),
    ("*_mem_bytes", "lower"),
    ("*peak_mem*", "lower"),
    ("ms", "lower"),
    ("*_ms", "lower"),
    ("*.ms", "lower"),
    ("*_s", "lower"),
    ("*.s", "lower"),
    ("seconds", "lower"),
    ("s", "lower"),
]

LABELS: dict[str, str] = {
    "ann_acc": "ANN accuracy (%)",
    "test_acc": "test accuracy (%)",
    "bwd_speedup": "backward speed-up (×)",
    "step_speedup": "training-step speed-up (×)",
    "active_fraction": "fraction of neurons active in backward",
    "calibrate_s": "calibration time (s)",
    "calibration_speedup": "calibration speed-up vs official loop (×)",
    "train_s": "training time (s)",
    "fwd_ms": "forward (ms)",
    "bwd_ms": "backward (ms)",
    "step_ms": "training step (ms)",
    "peak_mem_bytes": "peak memory (bytes)",
    "frac_of_copy": "fraction of copy bandwidth",
    "gbps": "bandwidth (GB/s)",
    "ms": "time (ms)",
}


def direction(metric: str) -> Optional[Direction]:
    """``"higher"`` or ``"lower"`` when that direction is better, ``None`` for descriptive metrics."""
    for pattern, value in _DIRECTIONS:
        if fnmatchcase(metric, pattern):
            return value
    return None


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def flatten(metrics: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """Numeric leaves of a metrics dict as ``("a.b.c", value)``; lists and strings are skipped.

    ``{"snn_acc": {"4": 99.1}}`` becomes ``("snn_acc.4", 99.1)``.
    """
    for key in sorted(metrics, key=str):
        value = metrics[key]
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from flatten(value, name + ".")
        elif is_number(value):
            yield name, float(value)


def finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)
