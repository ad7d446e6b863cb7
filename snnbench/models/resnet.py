"""ResNet-20/18/34 with QCFS activations, in the QCFS layout so that official checkpoints load by key.

A basic block is ``residual_function = [conv3×3 → BN → QCFS → conv3×3 → BN]`` plus a ``shortcut``
(identity, or conv1×1 → BN when the shape changes), then ``act = QCFS`` after the add. The add is
stateless, so the block works unchanged on the time-folded ``[T·B, ...]`` tensors of a converted SNN.

Stems: ``"cifar"`` is the official ``conv1 = [conv3×3 → BN → QCFS]`` (also what the official code uses
for ImageNet); ``"imagenet"`` is ``[conv7×7/2 → BN → QCFS → AvgPool3×3/2]`` (average pooling instead of
max pooling, which does not commute with spike rates).
ResNet-20's width is configurable: 16/32/64 (the QCFS code) and 64/128/256 both occur in the literature;
the model records it as ``model.width``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from snnbench.models.init import init_official
from snnbench.models.qcfs import QCFS

STEMS = ("cifar", "imagenet")


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int, levels: int) -> None:
        super().__init__()
        self.residual_function = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            QCFS(levels),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.act = QCFS(levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.residual_function(x) + self.shortcut(x))


def _stem(kind: str, in_channels: int, out_channels: int, levels: int) -> nn.Sequential:
    if kind == "cifar":
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            QCFS(levels),
        )
    if kind == "imagenet":
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(out_channels),
            QCFS(levels),
            nn.AvgPool2d(kernel_size=3, stride=2, padding=1),
        )
    raise ValueError(f"stem must be one of {STEMS}, got {kind!r}")


class ResNet(nn.Module):
    """Stages ``conv2_x, conv3_x, ...`` of basic blocks; stage i has ``width·2**i`` channels."""

    def __init__(
        self,
        blocks: Sequence[int],
        levels: int = 4,
        num_classes: int = 10,
        in_channels: int = 3,
        width: int = 64,
        stem: str = "cifar",
    ) -> None:
        super().__init__()
        self.width = width
        self.stem = stem
        self.num_stages = len(blocks)
        self.conv1 = _stem(stem, in_channels, width, levels)
        channels = width
        for i, count in enumerate(blocks):
            out = width * 2**i
            strides = [1 if i == 0 else 2] + [1] * (count - 1)
            stage = []
            for stride in strides:
                stage.append(BasicBlock(channels, out, stride, levels))
                channels = out
            setattr(self, f"conv{i + 2}_x", nn.Sequential(*stage))
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)
        init_official(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for i in range(self.num_stages):
            x = getattr(self, f"conv{i + 2}_x")(x)
        return self.fc(torch.flatten(self.avg_pool(x), 1))


def resnet20(
    levels: int = 4, num_classes: int = 10, in_channels: int = 3, width: int = 16, stem: str = "cifar"
) -> ResNet:
    """ResNet-20 for CIFAR: three stages of 3 blocks, widths ``width``, 2×, 4× (16 or 64 in papers)."""
    return ResNet((3, 3, 3), levels, num_classes, in_channels, width, stem)


def resnet18(
    levels: int = 4, num_classes: int = 10, in_channels: int = 3, width: int = 64, stem: str = "cifar"
) -> ResNet:
    return ResNet((2, 2, 2, 2), levels, num_classes, in_channels, width, stem)


def resnet34(
    levels: int = 4, num_classes: int = 10, in_channels: int = 3, width: int = 64, stem: str = "cifar"
) -> ResNet:
    return ResNet((3, 4, 6, 3), levels, num_classes, in_channels, width, stem)
