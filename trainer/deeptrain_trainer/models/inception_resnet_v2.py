"""Inception-ResNet-v2 (Szegedy et al., "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning", 2016).

Inception modules whose concatenated branches are projected back by a linear 1x1 and added to the
input (Figures 16, 17, 19), with residuals scaled down (0.17 / 0.10 / 0.20) as Section 3.3 advises
so the deep stack trains stably. The paper's figures disagree with each other on some widths
(1154 vs 1152, 2048 vs 2144 channels); the widths and repeats here (stem ending in a 320-channel
Inception-A-style module; 10 / 20 / 10 residual blocks; 1088 and 2080 channels; a final 1x1 to 1536)
are those of the authors' released model, the network behind the published 55.8M-parameter figure.
"""

from __future__ import annotations

from torch import Tensor, nn

from .common import (
    Concat,
    ConvBNReLU,
    PoolPassThrough,
    conv_chain,
    max_pool_3x3_s2,
    pooled_projection,
    scale_channels,
    scale_depth,
)


class ResidualInception(nn.Module):
    """x + scale * linear_1x1(concat(branches(x))), then ReLU (left out on the very last block)."""

    def __init__(self, in_channels: int, branches: Concat, residual_scale: float, relu: bool = True) -> None:
        super().__init__()
        self.branches = branches
        # Bias but no BN on the projection: it is a linear map added straight onto the trunk.
        self.project = nn.Conv2d(branches.out_channels, in_channels, 1)
        self.residual_scale = residual_scale
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()
        self.out_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(x + self.residual_scale * self.project(self.branches(x)))


def block35(channels: int, w: float) -> ResidualInception:
    """Inception-ResNet-A (35x35 grid, Figure 16)."""
    return ResidualInception(channels, Concat(
        conv_chain(channels, [(1, 32)], w),
        conv_chain(channels, [(1, 32), (3, 32)], w),
        conv_chain(channels, [(1, 32), (3, 48), (3, 64)], w),
    ), residual_scale=0.17)


def block17(channels: int, w: float) -> ResidualInception:
    """Inception-ResNet-B (17x17 grid, Figure 17)."""
    return ResidualInception(channels, Concat(
        conv_chain(channels, [(1, 192)], w),
        conv_chain(channels, [(1, 128), ((1, 7), 160), ((7, 1), 192)], w),
    ), residual_scale=0.10)


def block8(channels: int, w: float, relu: bool) -> ResidualInception:
    """Inception-ResNet-C (8x8 grid, Figure 19)."""
    return ResidualInception(channels, Concat(
        conv_chain(channels, [(1, 192)], w),
        conv_chain(channels, [(1, 192), ((1, 3), 224), ((3, 1), 256)], w),
    ), residual_scale=0.20, relu=relu)


class InceptionResnetV2(nn.Module):
    """Inception-ResNet-v2 backbone; `forward_features` returns maps at strides 4, 8, 16, 32 (192, 320, 1088, 1536 ch)."""

    def __init__(self, in_channels: int = 3, width_mult: float = 1.0, depth_mult: float = 1.0) -> None:
        super().__init__()
        w = width_mult
        # [B, in, S, S] -> [B, 192, S/4, S/4]
        self.stem = nn.Sequential(
            conv_chain(in_channels, [(3, 32)], w, last_stride=2),
            conv_chain(scale_channels(32, w), [(3, 32), (3, 64)], w),
            max_pool_3x3_s2(),
            conv_chain(scale_channels(64, w), [(1, 80), (3, 192)], w),
        )
        channels4 = scale_channels(192, w)

        stem_module = Concat(  # Inception-A-style widening to 320 channels at stride 8
            conv_chain(channels4, [(1, 96)], w),
            conv_chain(channels4, [(1, 48), (5, 64)], w),
            conv_chain(channels4, [(1, 64), (3, 96), (3, 96)], w),
            pooled_projection(channels4, 64, w),
        )
        channels8 = stem_module.out_channels
        stage8 = [max_pool_3x3_s2(), stem_module] + [block35(channels8, w) for _ in range(scale_depth(10, depth_mult))]

        reduction_a = Concat(  # Figure 7 with k, l, m, n = 256, 256, 384, 384
            conv_chain(channels8, [(3, 384)], w, last_stride=2),
            conv_chain(channels8, [(1, 256), (3, 256), (3, 384)], w, last_stride=2),
            PoolPassThrough(channels8),
        )
        channels16 = reduction_a.out_channels
        stage16 = [reduction_a] + [block17(channels16, w) for _ in range(scale_depth(20, depth_mult))]

        reduction_b = Concat(  # Figure 18
            conv_chain(channels16, [(1, 256), (3, 384)], w, last_stride=2),
            conv_chain(channels16, [(1, 256), (3, 288)], w, last_stride=2),
            conv_chain(channels16, [(1, 256), (3, 288), (3, 320)], w, last_stride=2),
            PoolPassThrough(channels16),
        )
        channels = reduction_b.out_channels
        repeats32 = scale_depth(10, depth_mult)
        stage32: list[nn.Module] = [reduction_b]
        stage32 += [block8(channels, w, relu=index < repeats32 - 1) for index in range(repeats32)]
        channels32 = scale_channels(1536, w)
        stage32.append(ConvBNReLU(channels, channels32, 1))

        self.stages = nn.ModuleList([nn.Sequential(*stage8), nn.Sequential(*stage16), nn.Sequential(*stage32)])
        self.feature_channels: tuple[int, ...] = (channels4, channels8, channels16, channels32)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)  # [B, 192w, S/4, S/4]
        features = [x]
        for stage in self.stages:
            x = stage(x)  # [B, 320w, S/8, S/8] -> [B, 1088w, S/16, S/16] -> [B, 1536w, S/32, S/32]
            features.append(x)
        return features

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)[-1]
