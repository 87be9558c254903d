"""Inception-v4 (Szegedy et al., "Inception-v4, Inception-ResNet and the Impact of Residual Connections
on Learning", 2016): the pure (non-residual) network of Figure 9.

Stem of Figure 3, 4 x Inception-A (Figure 4), Reduction-A (Figure 7; k, l, m, n = 192, 224, 256, 384),
7 x Inception-B (Figure 5), Reduction-B (Figure 8), 3 x Inception-C (Figure 6). The paper's "V"
(valid) convolutions are padded here so small inputs keep a usable grid; parameter counts are unchanged.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from .common import (
    Concat,
    ConvBNReLU,
    PoolPassThrough,
    conv_chain,
    pooled_projection,
    scale_channels,
    scale_depth,
)


class InceptionC(nn.Module):
    """Figure 6: avgpool-1x1 | 1x1 | 1x1-(1x3, 3x1) | 1x1-1x3-3x1-(1x3, 3x1), 1536 channels at 8x8."""

    def __init__(self, in_channels: int, width_mult: float) -> None:
        super().__init__()
        c = partial(scale_channels, width_mult=width_mult)
        self.branch_pool = pooled_projection(in_channels, 256, width_mult)
        self.branch1x1 = ConvBNReLU(in_channels, c(256), 1)
        self.branch3x3_reduce = ConvBNReLU(in_channels, c(384), 1)
        self.branch3x3_1x3 = ConvBNReLU(c(384), c(256), (1, 3))
        self.branch3x3_3x1 = ConvBNReLU(c(384), c(256), (3, 1))
        self.branch_double = conv_chain(in_channels, [(1, 384), ((1, 3), 448), ((3, 1), 512)], width_mult)
        self.branch_double_1x3 = ConvBNReLU(c(512), c(256), (1, 3))
        self.branch_double_3x1 = ConvBNReLU(c(512), c(256), (3, 1))
        self.out_channels = c(256) * 6

    def forward(self, x: Tensor) -> Tensor:
        reduced = self.branch3x3_reduce(x)
        double = self.branch_double(x)
        return torch.cat([
            self.branch_pool(x), self.branch1x1(x),
            self.branch3x3_1x3(reduced), self.branch3x3_3x1(reduced),
            self.branch_double_1x3(double), self.branch_double_3x1(double),
        ], 1)


def stem(in_channels: int, width_mult: float) -> tuple[nn.Sequential, nn.Module]:
    """Figure 3, split where the grid reaches stride 4: ([B,in,S,S] -> [B,192,S/4,S/4], -> [B,384,S/8,S/8])."""
    to_stride4 = nn.Sequential(
        conv_chain(in_channels, [(3, 32)], width_mult, last_stride=2),
        conv_chain(scale_channels(32, width_mult), [(3, 32), (3, 64)], width_mult),
    )
    c64 = scale_channels(64, width_mult)
    first_split = Concat(PoolPassThrough(c64), conv_chain(c64, [(3, 96)], width_mult, last_stride=2))
    second_split = Concat(
        conv_chain(first_split.out_channels, [(1, 64), (3, 96)], width_mult),
        conv_chain(first_split.out_channels, [(1, 64), ((7, 1), 64), ((1, 7), 64), (3, 96)], width_mult),
    )
    to_stride4.append(first_split)
    to_stride4.append(second_split)
    to_stride4.out_channels = second_split.out_channels
    to_stride8 = Concat(
        conv_chain(second_split.out_channels, [(3, 192)], width_mult, last_stride=2),
        PoolPassThrough(second_split.out_channels),
    )
    return to_stride4, to_stride8


class InceptionV4(nn.Module):
    """Inception-v4 backbone; `forward_features` returns maps at strides 4, 8, 16, 32 (192, 384, 1024, 1536 ch)."""

    def __init__(self, in_channels: int = 3, width_mult: float = 1.0, depth_mult: float = 1.0) -> None:
        super().__init__()
        w = width_mult
        self.stem, stem_reduction = stem(in_channels, w)

        stage8: list[nn.Module] = [stem_reduction]
        channels = stem_reduction.out_channels
        for _ in range(scale_depth(4, depth_mult)):  # Inception-A, Figure 4
            stage8.append(Concat(
                pooled_projection(channels, 96, w),
                conv_chain(channels, [(1, 96)], w),
                conv_chain(channels, [(1, 64), (3, 96)], w),
                conv_chain(channels, [(1, 64), (3, 96), (3, 96)], w),
            ))
        channels8 = stage8[-1].out_channels

        reduction_a = Concat(  # Figure 7 with k, l, m, n = 192, 224, 256, 384
            PoolPassThrough(channels8),
            conv_chain(channels8, [(3, 384)], w, last_stride=2),
            conv_chain(channels8, [(1, 192), (3, 224), (3, 256)], w, last_stride=2),
        )
        stage16: list[nn.Module] = [reduction_a]
        channels = reduction_a.out_channels
        for _ in range(scale_depth(7, depth_mult)):  # Inception-B, Figure 5
            stage16.append(Concat(
                pooled_projection(channels, 128, w),
                conv_chain(channels, [(1, 384)], w),
                conv_chain(channels, [(1, 192), ((1, 7), 224), ((7, 1), 256)], w),
                conv_chain(channels, [(1, 192), ((1, 7), 192), ((7, 1), 224), ((1, 7), 224), ((7, 1), 256)], w),
            ))
        channels16 = stage16[-1].out_channels

        reduction_b = Concat(  # Figure 8
            PoolPassThrough(channels16),
            conv_chain(channels16, [(1, 192), (3, 192)], w, last_stride=2),
            conv_chain(channels16, [(1, 256), ((1, 7), 256), ((7, 1), 320), (3, 320)], w, last_stride=2),
        )
        stage32: list[nn.Module] = [reduction_b]
        channels = reduction_b.out_channels
        for _ in range(scale_depth(3, depth_mult)):
            stage32.append(InceptionC(channels, w))
            channels = stage32[-1].out_channels

        self.stages = nn.ModuleList([nn.Sequential(*stage8), nn.Sequential(*stage16), nn.Sequential(*stage32)])
        self.feature_channels: tuple[int, ...] = (self.stem.out_channels, channels8, channels16, channels)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)  # [B, 192w, S/4, S/4]
        features = [x]
        for stage in self.stages:
            x = stage(x)  # [B, 384w, S/8, S/8] -> [B, 1024w, S/16, S/16] -> [B, 1536w, S/32, S/32]
            features.append(x)
        return features

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)[-1]
