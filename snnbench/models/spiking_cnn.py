"""Spiking CNNs for direct training (surrogate or LocalZO backward): ResNet-19, VGGSNN, a small CNN.

Every module takes and returns time-major tensors ``x[T, B, ...]``. Convolutions, pooling and linear
layers run once on the ``T·B`` folded batch (:class:`TimeFolded`); only the LIF layers walk time, in
one fused kernel launch each (``snnbench.neurons.MultiStepLIF``). The network returns logits
``[T, B, classes]``; the trainer reads the mean over time (or every step, for the TET loss).

The LIF settings are those of the TET / LocalZO training code: ``h_t = 0.5·v_{t-1} + x_t`` (decay 0.5,
no input scaling), threshold 1, hard reset to 0 with the reset path differentiated. What the backward
uses for ``∂s/∂h`` (a surrogate and its width, or LocalZO's ``distribution``/``delta``/``q``) comes
from the training method as ``neuron`` options.

Normalization (``norm``):

- ``tdbn``: threshold-dependent BN (Zheng et al., AAAI 2021): statistics per channel over time, batch
  and space together (BatchNorm2d on the folded batch), affine scale initialised to ``α·θ``
  (``tdbn_alpha``, 1 by default, which makes it the folded BatchNorm2d the official code uses);
- ``bn``: plain per-step BatchNorm: statistics of each time step on their own, one shared affine;
- ``none``.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from snnbench.neurons import MultiStepLIF

# The official models' neuron: mem = 0.5·mem + x, spike above 1, mem = (1 - spike)·mem.
LIF_DEFAULTS: dict[str, Any] = dict(
    beta=0.5, decay_input=False, threshold=1.0, reset="hard", v_reset=0.0, detach_reset=False
)
NORMS = ("tdbn", "bn", "none")


class TimeFolded(nn.Module):
    """Apply a per-sample module to ``x[T, B, ...]`` as one batch of ``T·B`` samples."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.module(x.flatten(0, 1))
        return y.unflatten(0, x.shape[:2])


class ThresholdDependentBN(nn.BatchNorm2d):
    """tdBN: one set of statistics over (T, B, H, W) per channel, scale initialised to α·θ."""

    def __init__(self, channels: int, alpha: float = 1.0, threshold: float = 1.0) -> None:
        super().__init__(channels)
        nn.init.constant_(self.weight, alpha * threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class PerStepBN(nn.BatchNorm2d):
    """Plain BN applied to each time step separately (its own batch statistics), one shared affine."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([super(PerStepBN, self).forward(x_t) for x_t in x.unbind(0)])


def norm_layer(kind: str, channels: int, *, tdbn_alpha: float = 1.0, threshold: float = 1.0) -> nn.Module:
    if kind == "tdbn":
        return ThresholdDependentBN(channels, tdbn_alpha, threshold)
    if kind == "bn":
        return PerStepBN(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm: expected one of {list(NORMS)}, got {kind!r}")


class SpikingNet(nn.Module):
    """Base class: builds LIF layers with one set of neuron options and knows where they are."""

    def __init__(self, neuron: Optional[dict[str, Any]], norm: str, tdbn_alpha: float) -> None:
        super().__init__()
        self.neuron_options = {**LIF_DEFAULTS, **(neuron or {})}
        self.norm_kind, self.tdbn_alpha = norm, tdbn_alpha
        norm_layer(norm, 1)  # reject a bad name at construction

    def lif(self) -> MultiStepLIF:
        return MultiStepLIF(**self.neuron_options)

    def norm(self, channels: int) -> nn.Module:
        return norm_layer(
            self.norm_kind, channels, tdbn_alpha=self.tdbn_alpha, threshold=self.neuron_options["threshold"]
        )

    def conv_norm(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
        conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=self.norm_kind == "none")
        return nn.Sequential(TimeFolded(conv), self.norm(c_out))


class ConvLIF(nn.Sequential):
    """conv → norm → LIF, the building block of the plain networks."""


class SmallSpikingCNN(SpikingNet):
    """The offline default: two conv stages and a linear readout, for 8×8 (or any small) images.

    conv(c1) → LIF → avgpool 2 → conv(c2) → LIF → avgpool 2 → flatten → linear(classes).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        image_size: int = 8,
        channels: tuple[int, int] = (16, 32),
        *,
        neuron: Optional[dict[str, Any]] = None,
        norm: str = "tdbn",
        tdbn_alpha: float = 1.0,
    ) -> None:
        super().__init__(neuron, norm, tdbn_alpha)
        c1, c2 = channels
        side = image_size // 4
        if side < 1:
            raise ValueError(f"image_size: must be >= 4 (two 2×2 poolings), got {image_size}")
        self.features = nn.Sequential(
            ConvLIF(*self.conv_norm(in_channels, c1), self.lif()),
            TimeFolded(nn.AvgPool2d(2)),
            ConvLIF(*self.conv_norm(c1, c2), self.lif()),
            TimeFolded(nn.AvgPool2d(2)),
        )
        self.classifier = TimeFolded(nn.Linear(c2 * side * side, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(2))


class VGGSNN(SpikingNet):
    """VGGSNN of the TET paper for 48×48 event frames: 64, 128, P, 256, 256, P, 512, 512, P, 512, 512, P,
    then one linear layer on the flattened ``512·(size/16)²`` features (average pooling, no LIF after it)."""

    PLAN = (64, 128, "P", 256, 256, "P", 512, 512, "P", 512, 512, "P")

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 2,
        image_size: int = 48,
        *,
        neuron: Optional[dict[str, Any]] = None,
        norm: str = "tdbn",
        tdbn_alpha: float = 1.0,
    ) -> None:
        super().__init__(neuron, norm, tdbn_alpha)
        if image_size % 16:
            raise ValueError(f"image_size: must be a multiple of 16 (four 2×2 poolings), got {image_size}")
        layers: list[nn.Module] = []
        c = in_channels
        for item in self.PLAN:
            if item == "P":
                layers.append(TimeFolded(nn.AvgPool2d(2)))
            else:
                layers.append(ConvLIF(*self.conv_norm(c, int(item)), self.lif()))
                c = int(item)
        self.features = nn.Sequential(*layers)
        side = image_size // 16
        self.classifier = TimeFolded(nn.Linear(c * side * side, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(2))


class SpikingBasicBlock(nn.Module):
    """conv-norm-LIF-conv-norm plus the (projected) input, then LIF: the TET / tdBN residual block."""

    def __init__(self, net: SpikingNet, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.branch = nn.Sequential(*net.conv_norm(c_in, c_out, 3, stride), net.lif(), *net.conv_norm(c_out, c_out))
        self.shortcut = net.conv_norm(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else nn.Identity()
        self.spike = net.lif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spike(self.branch(x) + self.shortcut(x))


class ResNet19(SpikingNet):
    """ResNet-19 of the tdBN / TET / LocalZO papers for 32×32 images.

    stem conv 3×3 (``stem`` channels, 64 in the LocalZO code) → LIF → 3 blocks of 128 → 3 blocks of 256
    (stride 2) → 2 blocks of 512 (stride 2) → global average pool → linear 256 → LIF → linear(classes).
    ``width`` scales every channel count (1.0 is the published network).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        stem: int = 64,
        width: float = 1.0,
        blocks: tuple[int, int, int] = (3, 3, 2),
        *,
        neuron: Optional[dict[str, Any]] = None,
        norm: str = "tdbn",
        tdbn_alpha: float = 1.0,
    ) -> None:
        super().__init__(neuron, norm, tdbn_alpha)
        if width <= 0:
            raise ValueError(f"width: must be > 0, got {width}")
        scaled = lambda c: max(1, int(round(c * width)))  # noqa: E731
        c = scaled(stem)
        self.stem = nn.Sequential(*self.conv_norm(in_channels, c), self.lif())
        stages: list[nn.Module] = []
        for planes, count, stride in zip((128, 256, 512), blocks, (1, 2, 2)):
            for i in range(count):
                stages.append(SpikingBasicBlock(self, c, scaled(planes), stride if i == 0 else 1))
                c = scaled(planes)
        self.stages = nn.Sequential(*stages)
        self.pool = TimeFolded(nn.AdaptiveAvgPool2d(1))
        hidden = scaled(256)
        self.head = nn.Sequential(
            TimeFolded(nn.Linear(c, hidden)), self.lif(), TimeFolded(nn.Linear(hidden, num_classes))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.stages(self.stem(x))).flatten(2))


def lif_layers(model: nn.Module) -> dict[str, MultiStepLIF]:
    """The model's LIF layers by qualified name, in forward order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, MultiStepLIF)}


def spiking_cnn_small(
    num_classes: int,
    in_channels: int = 1,
    *,
    neuron=None,
    image_size: int = 8,
    channels: tuple[int, int] = (16, 32),
    norm: str = "tdbn",
    tdbn_alpha: float = 1.0,
) -> nn.Module:
    if not (
        isinstance(channels, (list, tuple))
        and len(channels) == 2
        and all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels)
    ):
        raise ValueError(f"channels: expected two positive integers [c1, c2], got {channels!r}")
    return SmallSpikingCNN(
        num_classes, in_channels, image_size, tuple(channels), neuron=neuron, norm=norm, tdbn_alpha=tdbn_alpha
    )


def vggsnn(
    num_classes: int,
    in_channels: int = 2,
    *,
    neuron=None,
    image_size: int = 48,
    norm: str = "tdbn",
    tdbn_alpha: float = 1.0,
) -> nn.Module:
    return VGGSNN(num_classes, in_channels, image_size, neuron=neuron, norm=norm, tdbn_alpha=tdbn_alpha)


def resnet19(
    num_classes: int,
    in_channels: int = 3,
    *,
    neuron=None,
    stem: int = 64,
    width: float = 1.0,
    blocks: tuple[int, int, int] = (3, 3, 2),
    norm: str = "tdbn",
    tdbn_alpha: float = 1.0,
) -> nn.Module:
    return ResNet19(
        num_classes, in_channels, stem, width, tuple(blocks), neuron=neuron, norm=norm, tdbn_alpha=tdbn_alpha
    )
