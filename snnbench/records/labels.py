"""The name a conversion result goes by in the literature: the method with its ANN family.

The FTBC paper reports one calibration method on three families of converted ANNs (QCFS, SNN
Calibration, RTS), as "FTBC (+QCFS)", "SNNC-AP" and so on; a record carries that label so that its
leaderboard row reads like the published row it is measured against.
"""

from __future__ import annotations

from typing import Any, Optional

# (family, method) → label; family "relu" is snnbench's own ReLU route (the paper's "*" rows).
LABELS: dict[tuple[str, str], str] = {
    ("qcfs", "qcfs"): "QCFS",
    ("qcfs", "none"): "QCFS",
    ("qcfs", "light"): "Light (+QCFS)",
    ("qcfs", "ftbc"): "FTBC (+QCFS)",
    ("qcfs", "ftbc_iter"): "FTBC iterative (+QCFS)",
    ("relu", "none"): "ReLU*",
    ("relu", "qcfs"): "ReLU*",
    ("relu", "light"): "Light*",
    ("relu", "ftbc"): "FTBC*",
    ("relu", "ftbc_iter"): "FTBC iterative*",
    ("snnc", "none"): "SNNC",
    ("snnc", "light"): "SNNC-LP",
    ("snnc", "advanced"): "SNNC-AP",
    ("snnc", "ftbc_snnc"): "FTBC (+SNNC)",
}


def ann_family(model_params: dict[str, Any]) -> str:
    if model_params.get("family") not in (None, "default"):
        return str(model_params["family"])
    relu = model_params.get("activation") == "relu" or "weights" in model_params
    return "relu" if relu else "qcfs"


def method_label(method: str, method_params: dict[str, Any], model_params: dict[str, Any]) -> Optional[str]:
    """The label of a conversion cell, or None for a method without one."""
    label = LABELS.get((ann_family(model_params), method))
    if label and method == "ftbc_snnc" and method_params.get("average"):
        label = "FTBC w/ avg (+SNNC)"
    return label
