"""Semantic segmenter: the backbone's four maps fused by an FPN-style decoder, in the manner of the
semantic branch of Panoptic FPN (Kirillov et al., "Panoptic Feature Pyramid Networks", 2019).

Each pyramid level is refined by a 3x3 conv, upsampled to stride 4 and summed; a 1x1 classifies every
stride-4 position into background + concepts, and the logits are bilinearly upsampled to the input.
Loss: per-pixel cross-entropy plus 0.5 x soft Dice over the concept channels. Dice weighs each concept
by its own overlap rather than by pixel count, so small objects are not drowned out by the background.
With several processes the Dice overlaps are summed over all of them (the global batch), as one
process training the whole batch would compute them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..distributed import summed_over_processes, undo_gradient_averaging
from .common import ConvBNReLU

IGNORE_INDEX = 255
DICE_WEIGHT = 0.5


class ImageSegmenter(nn.Module):
    """Per-pixel concept masks.

    forward(x [B, C_in, S, S]) -> logits [B, num_classes + 1, S, S]; index 0 = background, i = concept i - 1.
    loss(logits, targets LongTensor [B, S, S] with values in [0, num_classes], 255 = ignore).
    predict(logits) -> {"masks": LongTensor [B, S, S] (argmax), "probabilities": [B, num_classes + 1, S, S]}.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, decoder_channels: int = 128) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.lateral = nn.ModuleList(nn.Conv2d(channels, decoder_channels, 1) for channels in backbone.feature_channels)
        self.refine = nn.ModuleList(ConvBNReLU(decoder_channels, decoder_channels, 3) for _ in backbone.feature_channels)
        self.fuse = ConvBNReLU(decoder_channels, decoder_channels, 3)
        self.classifier = nn.Conv2d(decoder_channels, num_classes + 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        features = self.backbone.forward_features(x)  # strides 4, 8, 16, 32
        merged = [lateral(feature) for lateral, feature in zip(self.lateral, features, strict=True)]
        for level in range(len(merged) - 2, -1, -1):  # top-down: coarse context into finer maps
            merged[level] = merged[level] + F.interpolate(merged[level + 1], size=merged[level].shape[-2:], mode="nearest")
        stride4_size = merged[0].shape[-2:]
        fused = sum(
            F.interpolate(refine(level), size=stride4_size, mode="bilinear", align_corners=False)
            for refine, level in zip(self.refine, merged, strict=True)
        )  # [B, D, S/4, S/4]
        logits = self.classifier(self.fuse(fused))  # [B, num_classes + 1, S/4, S/4]
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)  # [B, K+1, S, S]

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        backbone_ids = {id(p) for p in self.backbone.parameters()}
        return {
            "backbone": list(self.backbone.parameters()),
            "head": [p for p in self.parameters() if id(p) not in backbone_ids],
        }

    def loss(self, outputs: Tensor, targets: Tensor) -> tuple[Tensor, dict[str, float]]:
        targets = targets.long()
        cross_entropy = F.cross_entropy(outputs, targets, ignore_index=IGNORE_INDEX)
        valid = (targets != IGNORE_INDEX).unsqueeze(1)  # [B, 1, S, S]
        probabilities = torch.softmax(outputs, dim=1)[:, 1:] * valid  # concepts only
        one_hot = F.one_hot(targets.clamp(max=self.num_classes), self.num_classes + 1).permute(0, 3, 1, 2)[:, 1:]
        one_hot = one_hot.to(probabilities.dtype) * valid
        # Dice over the global batch: the overlaps of every process's images are summed before the ratio.
        intersection = summed_over_processes((probabilities * one_hot).sum(dim=(0, 2, 3)))  # [K]
        total = summed_over_processes(probabilities.sum(dim=(0, 2, 3)) + one_hot.sum(dim=(0, 2, 3)))  # [K]
        dice_loss = undo_gradient_averaging(1 - ((2 * intersection + 1) / (total + 1)).mean())
        loss = cross_entropy + DICE_WEIGHT * dice_loss
        pixel_accuracy = ((outputs.argmax(dim=1) == targets) & valid.squeeze(1)).sum() / valid.sum().clamp(min=1)
        return loss, {
            "loss": float(loss.detach()),
            "cross_entropy": float(cross_entropy.detach()),
            "dice_loss": float(dice_loss.detach()),
            "pixel_accuracy": float(pixel_accuracy),
        }

    def predict(self, outputs: Tensor, **opts: Any) -> dict[str, Tensor]:
        probabilities = torch.softmax(outputs, dim=1)
        return {"masks": probabilities.argmax(dim=1), "probabilities": probabilities}
