"""ResNeXt (Xie et al., "Aggregated Residual Transformations for Deep Neural Networks", 2016).

A ResNet whose bottleneck 3x3 is a grouped convolution: `cardinality` parallel paths of `base_width`
channels each (at the first stage; doubling per stage). The default is ResNeXt-50 (32x4d): stages of
(3, 4, 6, 3) blocks, template (c) of the paper's Figure 3, stride on the 3x3 as in the paper's Table 1.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from .common import ConvBNReLU, max_pool_3x3_s2, scale_channels, scale_depth


class ResNextBottleneck(nn.Module):
    """1x1 reduce -> grouped 3x3 (stride here) -> 1x1 expand, plus a projection shortcut when shapes change."""

    def __init__(self, in_channels: int, group_channels: int, out_channels: int, cardinality: int, stride: int) -> None:
        super().__init__()
        self.reduce = ConvBNReLU(in_channels, group_channels, 1)
        self.grouped = ConvBNReLU(group_channels, group_channels, 3, stride=stride, groups=cardinality)
        self.expand = ConvBNReLU(group_channels, out_channels, 1, relu=False)
        # Zero-init the last BN's scale so every block starts as the identity: deep stacks train from step one.
        nn.init.zeros_(self.expand[1].weight)
        self.shortcut: nn.Module = (
            ConvBNReLU(in_channels, out_channels, 1, stride=stride, relu=False)
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.expand(self.grouped(self.reduce(x))) + self.shortcut(x))


class ResNext(nn.Module):
    """ResNeXt backbone; `forward_features` returns the four stage outputs (strides 4, 8, 16, 32)."""

    def __init__(
        self,
        in_channels: int = 3,
        cardinality: int = 32,
        base_width: int = 4,
        layers: tuple[int, ...] = (3, 4, 6, 3),
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
    ) -> None:
        super().__init__()
        stem_channels = scale_channels(64, width_mult)
        # stem: [B, in, S, S] -> [B, 64, S/4, S/4]
        self.stem = nn.Sequential(ConvBNReLU(in_channels, stem_channels, 7, stride=2), max_pool_3x3_s2())

        # The grouped conv needs whole groups; keeping it a multiple of 8 too keeps kernels vector-friendly.
        group_divisor = math.lcm(8, cardinality)
        stages: list[nn.Sequential] = []
        channels = stem_channels
        feature_channels: list[int] = []
        for index, repeats in enumerate(layers):
            planes = 64 * 2**index
            group_channels = scale_channels(cardinality * base_width * 2**index, width_mult, group_divisor)
            out_channels = scale_channels(planes * 4, width_mult)
            blocks: list[nn.Module] = []
            for block in range(scale_depth(repeats, depth_mult)):
                stride = 2 if index > 0 and block == 0 else 1
                blocks.append(ResNextBottleneck(channels, group_channels, out_channels, cardinality, stride))
                channels = out_channels
            stages.append(nn.Sequential(*blocks))
            feature_channels.append(channels)
        self.stages = nn.ModuleList(stages)
        self.feature_channels: tuple[int, ...] = tuple(feature_channels)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)  # [B, 64w, S/4, S/4]
        features = []
        for stage in self.stages:
            x = stage(x)  # strides 4, 8, 16, 32; channels 256w, 512w, 1024w, 2048w
            features.append(x)
        return features

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)[-1]
