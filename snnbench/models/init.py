"""The official QCFS code's weight initialisation, shared by VGG and ResNet so both start alike."""

from __future__ import annotations

from torch import nn


def init_official(model: nn.Module, *, zero_linear_bias: bool = False) -> None:
    """Kaiming-normal (fan-out) convolutions, unit/zero BatchNorm; VGG also zeroes its linear biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif zero_linear_bias and isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
