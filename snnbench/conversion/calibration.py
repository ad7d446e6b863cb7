"""Calibration methods applied to a converted SNN, by method name.

Every method runs forward-only under ``no_grad`` on training images (never the test split) and
writes its biases into the IF layers' ``bias`` buffers, so they are saved with the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset


@dataclass
class CalibrationRequest:
    ann: nn.Module
    snn: nn.Module
    data: Dataset  # training split, no augmentation
    steps: int  # T_max: calibrating for T_max serves every T <= T_max
    params: dict[str, Any]
    device: torch.device
    seed: int
    compare_reference: bool = False


def calibrate(method: str, request: CalibrationRequest) -> dict[str, Any]:
    """Calibrate ``request.snn`` in place; return extra metrics (JSON types) for the record."""
    if method == "qcfs":
        return {}
    raise ValueError(f"no calibration method named {method!r}")
