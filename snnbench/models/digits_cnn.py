"""A small CNN for the 8×8 digits, with QCFS activations so that it converts to an IF SNN.

Average pooling (not max) because an IF layer's rate output commutes with averaging.
"""

from __future__ import annotations

from torch import nn

from snnbench.models.qcfs import QCFS


class DigitsCNN(nn.Module):
    def __init__(self, levels: int = 4, num_classes: int = 10, width: int = 32, in_channels: int = 1) -> None:
        super().__init__()
        self.width = width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            QCFS(levels, thresh=4.0),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            QCFS(levels, thresh=4.0),
            nn.AvgPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            QCFS(levels, thresh=4.0),
            nn.AvgPool2d(2),  # 4x4 -> 2x2
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * 4, 128),
            QCFS(levels, thresh=4.0),
            nn.Linear(128, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def digits_cnn(levels: int = 4, num_classes: int = 10, width: int = 32, in_channels: int = 1) -> DigitsCNN:
    return DigitsCNN(levels=levels, num_classes=num_classes, width=width, in_channels=in_channels)
