"""The name a conversion result goes by in the literature: the method with its ANN family.

The FTBC paper reports one calibration method on three families of converted ANNs (QCFS, SNN
Calibration, RTS), as "FTBC (+QCFS)", "SNNC-AP", "FTBC (+RTS)" and so on. A conversion record carries
that label (``make_record``) and a leaderboard row of an older record gets it from its configuration
(``report.table.family_label``), both from here.
"""

from __future__ import annotations

from typing import Any, Optional

_FAMILY_NAMES = {"qcfs": "QCFS", "relu": "ReLU", "rts": "RTS", "snnc": "SNNC"}
_UNCALIBRATED = {"qcfs", "none", "rts"}
_METHOD_NAMES = {"ftbc": "FTBC", "ftbc_rts": "FTBC", "ftbc_snnc": "FTBC", "ftbc_iter": "FTBC iterative"}
# The SNN Calibration family's baselines go by their paper's names (light / advanced pipeline).
_SNNC_NAMES = {"light": "SNNC-LP", "advanced": "SNNC-AP"}


def ann_family(model_params: dict[str, Any], model_name: str = "") -> str:
    """``snnc``, ``rts``, ``relu`` (a ReLU ANN on snnbench's own route; torchvision models) or ``qcfs``."""
    if model_params.get("family") == "snnc":
        return "snnc"
    activation = str(model_params.get("activation", "qcfs"))
    if model_name.startswith("torchvision:") or "weights" in model_params:
        return "relu"
    return activation if activation in _FAMILY_NAMES else "qcfs"


def method_label(
    method: str, method_params: dict[str, Any], model_params: dict[str, Any], model_name: str = ""
) -> Optional[str]:
    """The label of a conversion cell: ``QCFS``, ``FTBC (+QCFS)``, ``light (+RTS)``, ``SNNC-AP`` (weights
    and potentials), ``SNNC-AP (potentials only)``, ``FTBC w/ avg (+SNNC)``..."""
    family = ann_family(model_params, model_name)
    name = _FAMILY_NAMES[family]
    if method in _UNCALIBRATED:
        return name
    if family == "snnc" and method == "advanced" and not method_params.get("weights", False):
        # A record from before the weights calibration existed has no ``weights``: it ran potentials only.
        return "SNNC-AP (potentials only)"
    if family == "snnc" and method in _SNNC_NAMES:
        return _SNNC_NAMES[method]
    if method == "ftbc_snnc" and method_params.get("average"):
        return f"FTBC w/ avg (+{name})"
    return f"{_METHOD_NAMES.get(method, method)} (+{name})"
