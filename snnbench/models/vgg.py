"""VGG-16 in the QCFS layout (Bu et al., ICLR 2022), so that official checkpoints load by key.

Five stages ``layer1..layer5``, each ``[Conv2d(bias) → BatchNorm2d → QCFS → Dropout] × n`` followed by
``AvgPool2d(2)`` (average, not max: an IF layer's rate output commutes with averaging); a classifier
``Flatten → Linear → QCFS → Dropout → Linear → QCFS → Dropout → Linear``. The state-dict keys are those of
the official code (``layer1.0.weight``, ``layer1.2.thresh``, ``classifier.1.weight``, ...), with the
activation threshold named ``thresh`` (older official checkpoints call it ``up``; see checkpoint.py).
"""

from __future__ import annotations

import functools
from typing import Optional

from torch import nn

from snnbench.models.init import init_official
from snnbench.models.qcfs import QCFS

VGG16_STAGES: tuple[tuple[int, ...], ...] = ((1, 1), (2, 2), (4, 4, 4), (8, 8, 8), (8, 8, 8))  # × width


class VGG(nn.Module):
    def __init__(
        self,
        stages: tuple[tuple[int, ...], ...],
        levels: int = 4,
        num_classes: int = 10,
        in_channels: int = 3,
        width: int = 64,
        hidden: int = 4096,
        dropout: float = 0.0,
        image_size: Optional[int] = None,
    ) -> None:
        super().__init__()
        # The official code picks the classifier input from the class count: 7×7 for ImageNet (224 px).
        image_size = image_size or (224 if num_classes == 1000 else 32)
        self.width = width
        channels = in_channels
        for i, stage in enumerate(stages):
            layers: list[nn.Module] = []
            for mult in stage:
                out = mult * width
                layers += [
                    nn.Conv2d(channels, out, kernel_size=3, padding=1),
                    nn.BatchNorm2d(out),
                    QCFS(levels),
                    nn.Dropout(dropout),
                ]
                channels = out
            layers.append(nn.AvgPool2d(kernel_size=2, stride=2))
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.num_stages = len(stages)
        spatial = max(1, image_size // 2 ** len(stages))
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * spatial * spatial, hidden),
            QCFS(levels),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            QCFS(levels),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        init_official(self, zero_linear_bias=True)

    def forward(self, x):
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.classifier(x)


# The class with VGG-16's stages filled in: its signature (levels, num_classes, in_channels, width,
# hidden, dropout, image_size) is the one the registry offers a suite. ``width``/``hidden`` shrink it for tests.
vgg16 = functools.partial(VGG, VGG16_STAGES)
vgg16.__doc__ = "VGG-16 (13 conv + 2 hidden linear QCFS layers)."
