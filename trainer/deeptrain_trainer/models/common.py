"""Building blocks shared by the model files: scaled channel/depth arithmetic, conv-BN-ReLU, losses, blur."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Kernel = int | tuple[int, int]


def scale_channels(channels: int, width_mult: float, divisor: int = 8) -> int:
    """`channels * width_mult` rounded to the nearest multiple of `divisor` (never below `divisor`)."""
    scaled = channels * width_mult
    rounded = max(divisor, int(scaled / divisor + 0.5) * divisor)
    # Rounding down by more than 10% would silently shrink a layer well below what was asked for.
    if rounded < 0.9 * scaled:
        rounded += divisor
    return rounded


def scale_depth(repeats: int, depth_mult: float) -> int:
    """`repeats * depth_mult` rounded up, at least 1."""
    return max(1, math.ceil(repeats * depth_mult))


def stage_configs(configs: list, depth_mult: float) -> list:
    """Scale a stage whose blocks differ from each other: keep a prefix, or repeat the last block to grow."""
    count = scale_depth(len(configs), depth_mult)
    return [configs[min(i, len(configs) - 1)] for i in range(count)]


class ConvBNReLU(nn.Sequential):
    """Conv (no bias: BN follows) + BatchNorm + ReLU, padded so stride 1 keeps the size and stride 2 halves it (ceil)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Kernel = 1,
        stride: int = 1,
        groups: int = 1,
        relu: bool = True,
    ) -> None:
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, (kh, kw), stride=stride, padding=(kh // 2, kw // 2),
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


def max_pool_3x3_s2() -> nn.MaxPool2d:
    # Padded (unlike the papers' "valid" pools) so that a 32 px input still reaches stride 32 as 1x1.
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)


def avg_pool_3x3() -> nn.AvgPool2d:
    return nn.AvgPool2d(kernel_size=3, stride=1, padding=1, count_include_pad=False)


def conv_chain(in_channels: int, steps: list[tuple[Kernel, int]], width_mult: float, last_stride: int = 1) -> nn.Sequential:
    """Convs applied one after another; `steps` = (kernel, published out channels); stride on the last."""
    layers: list[nn.Module] = []
    channels = in_channels
    for index, (kernel, width) in enumerate(steps):
        width = scale_channels(width, width_mult)
        layers.append(ConvBNReLU(channels, width, kernel, stride=last_stride if index == len(steps) - 1 else 1))
        channels = width
    chain = nn.Sequential(*layers)
    chain.out_channels = channels
    return chain


class Concat(nn.Module):
    """Parallel branches on one input, concatenated on channels (each branch has `out_channels`)."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.out_channels = sum(branch.out_channels for branch in branches)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches], 1)


class PoolPassThrough(nn.Module):
    """A stride-2 max-pool used as a branch: keeps its input's channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pool = max_pool_3x3_s2()
        self.out_channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(x)


def pooled_projection(in_channels: int, width: int, width_mult: float) -> nn.Sequential:
    """The pool branch of an Inception module: 3x3 average pool then a 1x1 projection."""
    chain = conv_chain(in_channels, [(1, width)], width_mult)
    branch = nn.Sequential(avg_pool_3x3(), chain)
    branch.out_channels = chain.out_channels
    return branch


def classification_loss(logits: Tensor, targets: Tensor, logreg: bool) -> tuple[Tensor, dict[str, float]]:
    """Softmax CE on int targets [B], or (logreg) BCE-with-logits on multi-hot float targets [B, C].

    The metrics dict holds the loss and the batch accuracy (top-1 for softmax, per-label at 0.5 for logreg).
    """
    if logreg:
        targets = targets.to(logits.dtype)
        loss = F.binary_cross_entropy_with_logits(logits, targets)
        accuracy = ((logits > 0) == (targets > 0.5)).float().mean()
    else:
        targets = targets.long()
        loss = F.cross_entropy(logits, targets)
        accuracy = (logits.argmax(dim=1) == targets).float().mean()
    return loss, {"loss": float(loss.detach()), "accuracy": float(accuracy)}


def class_probabilities(logits: Tensor, logreg: bool) -> Tensor:
    return torch.sigmoid(logits) if logreg else torch.softmax(logits, dim=1)


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of [B, C, H, W] images (each channel on its own), size preserved."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    blurred = F.pad(images, (radius, radius, 0, 0), mode="replicate")
    blurred = F.conv2d(blurred, horizontal, groups=channels)
    blurred = F.pad(blurred, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(blurred, vertical, groups=channels)


class LinearClassifierHead:
    """What a backbone + dropout + linear `fc` classifier answers to the engine (mixed into nn.Modules that
    set `backbone`, `fc` and `logreg`): its parameter groups, its loss and its probabilities."""

    backbone: nn.Module
    fc: nn.Linear
    logreg: bool

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": list(self.backbone.parameters()), "head": list(self.fc.parameters())}

    def loss(self, outputs: Tensor, targets: Tensor) -> tuple[Tensor, dict[str, float]]:
        return classification_loss(outputs, targets, self.logreg)

    def predict(self, outputs: Tensor, **opts: Any) -> Tensor:
        return class_probabilities(outputs, self.logreg)
