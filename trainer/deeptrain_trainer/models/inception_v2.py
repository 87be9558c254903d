"""Inception-v2 (Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", 2015).

The network of the paper's Table 1: a plain-conv stem, then three grids of factorized Inception
modules - Figure 5 at 35x35 (each 5x5 as two 3x3), Figure 6 at 17x17 (n x n as 1xn then nx1, n = 7)
and Figure 7 at 8x8 (expanded filter bank of 1x3/3x1 pairs) - joined by the grid reductions of
Figure 10. Table 1 gives grid sizes but not branch widths; those follow the authors' released model
of the same network (whose Inception-v3 training recipe, RMSProp + label smoothing, is the engine's
business, and whose auxiliary classifier is left out: it only regularizes ImageNet-scale training).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from .common import (
    Concat,
    ConvBNReLU,
    Kernel,
    PoolPassThrough,
    avg_pool_3x3,
    conv_chain,
    max_pool_3x3_s2,
    scale_channels,
    scale_depth,
    stage_configs,
)


class FactorizedModule35(nn.Module):
    """Figure 5: 1x1 | 1x1-3x3 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, in_channels: int, pool_proj: int, width_mult: float) -> None:
        super().__init__()
        c = partial(scale_channels, width_mult=width_mult)
        self.branch1x1 = ConvBNReLU(in_channels, c(64), 1)
        self.branch3x3 = nn.Sequential(ConvBNReLU(in_channels, c(48), 1), ConvBNReLU(c(48), c(64), 3))
        self.branch_double3x3 = nn.Sequential(
            ConvBNReLU(in_channels, c(64), 1), ConvBNReLU(c(64), c(96), 3), ConvBNReLU(c(96), c(96), 3)
        )
        self.branch_pool = nn.Sequential(avg_pool_3x3(), ConvBNReLU(in_channels, c(pool_proj), 1))
        self.out_channels = c(64) + c(64) + c(96) + c(pool_proj)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1x1(x), self.branch3x3(x), self.branch_double3x3(x), self.branch_pool(x)], 1)


class FactorizedModule17(nn.Module):
    """Figure 6 with n = 7: 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avgpool-1x1, 192 wide each."""

    def __init__(self, in_channels: int, mid_channels: int, width_mult: float) -> None:
        super().__init__()
        out = scale_channels(192, width_mult)
        mid = scale_channels(mid_channels, width_mult)
        self.branch1x1 = ConvBNReLU(in_channels, out, 1)
        self.branch7x7 = nn.Sequential(
            ConvBNReLU(in_channels, mid, 1), ConvBNReLU(mid, mid, (1, 7)), ConvBNReLU(mid, out, (7, 1))
        )
        self.branch_double7x7 = nn.Sequential(
            ConvBNReLU(in_channels, mid, 1),
            ConvBNReLU(mid, mid, (7, 1)),
            ConvBNReLU(mid, mid, (1, 7)),
            ConvBNReLU(mid, mid, (7, 1)),
            ConvBNReLU(mid, out, (1, 7)),
        )
        self.branch_pool = nn.Sequential(avg_pool_3x3(), ConvBNReLU(in_channels, out, 1))
        self.out_channels = 4 * out

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1x1(x), self.branch7x7(x), self.branch_double7x7(x), self.branch_pool(x)], 1)


class _SplitConv(nn.Module):
    """A 1x3 and a 3x1 side by side on the same input (the expanded filter bank of Figure 7)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1x3 = ConvBNReLU(in_channels, out_channels, (1, 3))
        self.conv3x1 = ConvBNReLU(in_channels, out_channels, (3, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.conv1x3(x), self.conv3x1(x)], 1)


class ExpandedModule8(nn.Module):
    """Figure 7: 1x1 | 1x1-(1x3,3x1) | 1x1-3x3-(1x3,3x1) | avgpool-1x1; the widest, for the coarsest grid."""

    def __init__(self, in_channels: int, width_mult: float) -> None:
        super().__init__()
        c = partial(scale_channels, width_mult=width_mult)
        self.branch1x1 = ConvBNReLU(in_channels, c(320), 1)
        self.branch3x3 = nn.Sequential(ConvBNReLU(in_channels, c(384), 1), _SplitConv(c(384), c(384)))
        self.branch_double3x3 = nn.Sequential(
            ConvBNReLU(in_channels, c(448), 1), ConvBNReLU(c(448), c(384), 3), _SplitConv(c(384), c(384))
        )
        self.branch_pool = nn.Sequential(avg_pool_3x3(), ConvBNReLU(in_channels, c(192), 1))
        self.out_channels = c(320) + 4 * c(384) + c(192)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1x1(x), self.branch3x3(x), self.branch_double3x3(x), self.branch_pool(x)], 1)


def grid_reduction(in_channels: int, branches: list[list[tuple[Kernel, int]]], width_mult: float) -> Concat:
    """Figure 10: stride-2 conv branches (stride on each branch's last conv) beside a stride-2 max-pool."""
    convs = [conv_chain(in_channels, steps, width_mult, last_stride=2) for steps in branches]
    return Concat(*convs, PoolPassThrough(in_channels))


class InceptionV2(nn.Module):
    """Inception-v2 backbone; `forward_features` returns maps at strides 4, 8, 16, 32 (192, 288, 768, 2048 ch)."""

    def __init__(self, in_channels: int = 3, width_mult: float = 1.0, depth_mult: float = 1.0) -> None:
        super().__init__()
        c = partial(scale_channels, width_mult=width_mult)
        # [B, in, S, S] -> [B, 192, S/4, S/4]
        self.stem = nn.Sequential(
            ConvBNReLU(in_channels, c(32), 3, stride=2),
            ConvBNReLU(c(32), c(32), 3),
            ConvBNReLU(c(32), c(64), 3),
            max_pool_3x3_s2(),
            ConvBNReLU(c(64), c(80), 1),
            ConvBNReLU(c(80), c(192), 3),
        )
        channels = c(192)

        # 35x35 grid (stride 8): three Figure-5 modules; pool projection 32 on the first, 64 after.
        grid35: list[nn.Module] = [max_pool_3x3_s2()]
        for index in range(scale_depth(3, depth_mult)):
            grid35.append(FactorizedModule35(channels, 32 if index == 0 else 64, width_mult))
            channels = grid35[-1].out_channels
        stage8 = nn.Sequential(*grid35)
        channels8 = channels

        # 17x17 grid (stride 16): reduction, then four Figure-6 modules widening their inner 7x7 path.
        grid17: list[nn.Module] = [grid_reduction(channels, [[(3, 384)], [(1, 64), (3, 96), (3, 96)]], width_mult)]
        channels = grid17[-1].out_channels
        for mid in stage_configs([128, 160, 160, 192], depth_mult):
            grid17.append(FactorizedModule17(channels, mid, width_mult))
            channels = grid17[-1].out_channels
        stage16 = nn.Sequential(*grid17)
        channels16 = channels

        # 8x8 grid (stride 32): reduction, then two Figure-7 modules.
        grid8: list[nn.Module] = [
            grid_reduction(channels, [[(1, 192), (3, 320)], [(1, 192), ((1, 7), 192), ((7, 1), 192), (3, 192)]], width_mult)
        ]
        channels = grid8[-1].out_channels
        for _ in range(scale_depth(2, depth_mult)):
            grid8.append(ExpandedModule8(channels, width_mult))
            channels = grid8[-1].out_channels
        stage32 = nn.Sequential(*grid8)

        self.stages = nn.ModuleList([stage8, stage16, stage32])
        self.feature_channels: tuple[int, ...] = (c(192), channels8, channels16, channels)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)  # [B, 192w, S/4, S/4]
        features = [x]
        for stage in self.stages:
            x = stage(x)  # [B, 288w, S/8, S/8] -> [B, 768w, S/16, S/16] -> [B, 2048w, S/32, S/32]
            features.append(x)
        return features

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)[-1]
