"""BN-Inception (Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training...", 2015).

GoogLeNet with batch normalization after every convolution, each 5x5 replaced by two stacked 3x3s,
three Inception modules at 28x28 instead of two, and stride-2 modules (3c, 4e) that reduce the grid
with a max-pool pass-through instead of separate pooling layers. Module widths follow the paper's
Figure 5; where its "output" column disagrees with the sum of the branches (4c, 4d, 4e) the branch
widths win, which gives 608 channels at 4c/4d and 1056 into 5a.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .common import ConvBNReLU, avg_pool_3x3, max_pool_3x3_s2, scale_channels, stage_configs


@dataclass(frozen=True)
class ModuleWidths:
    """One row of the paper's table: branch widths of an Inception module (0 = branch absent)."""

    conv1x1: int
    reduce3x3: int
    conv3x3: int
    reduce_double3x3: int
    double3x3: int
    pool_proj: int  # 0 = pass the pooled input through unchanged (the stride-2 modules)
    pool: str = "avg"  # "max" for 5b and the stride-2 modules

    def scaled(self, width_mult: float) -> ModuleWidths:
        def scale(channels: int) -> int:
            return scale_channels(channels, width_mult) if channels else 0

        return ModuleWidths(scale(self.conv1x1), scale(self.reduce3x3), scale(self.conv3x3),
                            scale(self.reduce_double3x3), scale(self.double3x3), scale(self.pool_proj), self.pool)


class BNInceptionModule(nn.Module):
    """Four parallel branches (1x1 | 1x1-3x3 | 1x1-3x3-3x3 | pool-1x1) concatenated on channels.

    With stride 2 the 1x1 branch is dropped and the pool branch passes its input through, so the grid
    halves while the channel count grows (the paper's modules 3c and 4e).
    """

    def __init__(self, in_channels: int, widths: ModuleWidths, stride: int = 1) -> None:
        super().__init__()
        self.branch1x1 = ConvBNReLU(in_channels, widths.conv1x1, 1) if widths.conv1x1 else None
        self.branch3x3 = nn.Sequential(
            ConvBNReLU(in_channels, widths.reduce3x3, 1),
            ConvBNReLU(widths.reduce3x3, widths.conv3x3, 3, stride=stride),
        )
        self.branch_double3x3 = nn.Sequential(
            ConvBNReLU(in_channels, widths.reduce_double3x3, 1),
            ConvBNReLU(widths.reduce_double3x3, widths.double3x3, 3),
            ConvBNReLU(widths.double3x3, widths.double3x3, 3, stride=stride),
        )
        pool = nn.MaxPool2d(3, stride=stride, padding=1) if widths.pool == "max" else avg_pool_3x3()
        projection = ConvBNReLU(in_channels, widths.pool_proj, 1) if widths.pool_proj else nn.Identity()
        self.branch_pool = nn.Sequential(pool, projection)
        self.out_channels = (widths.conv1x1 + widths.conv3x3 + widths.double3x3
                             + (widths.pool_proj or in_channels))

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch3x3(x), self.branch_double3x3(x), self.branch_pool(x)]
        if self.branch1x1 is not None:
            branches.insert(0, self.branch1x1(x))
        return torch.cat(branches, dim=1)


# Branch widths of the paper's Figure 5, by stage; _REDUCTION* are the stride-2 modules 3c and 4e.
_STAGE3 = [ModuleWidths(64, 64, 64, 64, 96, 32), ModuleWidths(64, 64, 96, 64, 96, 64)]
_REDUCTION3 = ModuleWidths(0, 128, 160, 64, 96, 0, "max")
_STAGE4 = [
    ModuleWidths(224, 64, 96, 96, 128, 128),
    ModuleWidths(192, 96, 128, 96, 128, 128),
    ModuleWidths(160, 128, 160, 128, 160, 128),
    ModuleWidths(96, 128, 192, 160, 192, 128),
]
_REDUCTION4 = ModuleWidths(0, 128, 192, 192, 256, 0, "max")
_STAGE5 = [ModuleWidths(352, 192, 320, 160, 224, 128), ModuleWidths(352, 192, 320, 192, 224, 128, "max")]


class InceptionBatchNorm(nn.Module):
    """BN-Inception backbone; `forward_features` returns maps at strides 4, 8, 16, 32 (192, 320, 608, 1024 ch)."""

    def __init__(self, in_channels: int = 3, width_mult: float = 1.0, depth_mult: float = 1.0) -> None:
        super().__init__()
        conv1 = scale_channels(64, width_mult)
        conv2 = scale_channels(192, width_mult)
        # [B, in, S, S] -> [B, 192, S/4, S/4]
        self.stem = nn.Sequential(
            ConvBNReLU(in_channels, conv1, 7, stride=2),
            max_pool_3x3_s2(),
            ConvBNReLU(conv1, conv1, 1),
            ConvBNReLU(conv1, conv2, 3),
        )
        channels = conv2
        stages: list[nn.Sequential] = []
        feature_channels = [channels]
        # (stride-2 module opening the stage, regular modules): strides 8 (3a-3b), 16 (3c-4d), 32 (4e-5b).
        plan = [(None, _STAGE3), (_REDUCTION3, _STAGE4), (_REDUCTION4, _STAGE5)]
        for reduction, regular in plan:
            if reduction is None:  # the grid reaches stride 8 through a plain pool before 3a
                modules: list[nn.Module] = [max_pool_3x3_s2()]
            else:
                modules = [BNInceptionModule(channels, reduction.scaled(width_mult), stride=2)]
                channels = modules[-1].out_channels
            for widths in stage_configs(regular, depth_mult):
                modules.append(BNInceptionModule(channels, widths.scaled(width_mult)))
                channels = modules[-1].out_channels
            stages.append(nn.Sequential(*modules))
            feature_channels.append(channels)
        self.stages = nn.ModuleList(stages)
        self.feature_channels: tuple[int, ...] = tuple(feature_channels)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)  # [B, 192w, S/4, S/4]
        features = [x]
        for stage in self.stages:
            x = stage(x)  # [B, 320w, S/8, S/8] -> [B, 608w, S/16, S/16] -> [B, 1024w, S/32, S/32]
            features.append(x)
        return features

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)[-1]
