"""Anomaly heatmaps learnt from normal images only: two templates.

Both take images [B, C_in, S, S] and give
  forward(x) -> {"anomaly_map": [B, 1, S, S], "score": [B], ...}, anomaly_map(x), score(x),
  predict(outputs) -> {"scores": [B], "anomaly_maps": [B, 1, S, S]}; higher = more anomalous.
The class attribute `needs_gradient_training` tells the engine whether to run optimizer steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import ConvBNReLU, gaussian_blur

# Rows of patch features compared with the memory bank at once; bounds the distance matrix's memory.
_DISTANCE_CHUNK = 4096


def heatmap_sigma(image_size: int) -> float:
    """Blur width for an anomaly heatmap: 4 px at 256 px (the PatchCore paper's value), scaled with the image."""
    return max(0.5, image_size / 64)


def greedy_coreset(features: Tensor, count: int, projection_dim: int = 128, seed: int = 0) -> Tensor:
    """Indices of `count` rows of `features` [N, D] chosen by greedy k-center selection.

    Each step takes the row farthest from everything chosen so far, so the subset covers the feature
    space with the smallest worst-case gap. Distances are measured after a random Gaussian projection
    to `projection_dim` dims (Johnson-Lindenstrauss: distances are roughly kept, the cost drops ~D/128).
    """
    generator = torch.Generator().manual_seed(seed)
    if features.shape[1] > projection_dim:
        projection = torch.randn(features.shape[1], projection_dim, generator=generator) / math.sqrt(projection_dim)
        features = features @ projection.to(features.device, features.dtype)
    count = min(count, len(features))
    chosen = torch.zeros(count, dtype=torch.long, device=features.device)
    chosen[0] = int(torch.randint(len(features), (1,), generator=generator))
    distance_to_chosen = torch.linalg.vector_norm(features - features[chosen[0]], dim=1)
    for step in range(1, count):
        chosen[step] = distance_to_chosen.argmax()
        distance_to_chosen = torch.minimum(
            distance_to_chosen, torch.linalg.vector_norm(features - features[chosen[step]], dim=1)
        )
    return chosen


class PatchCore(nn.Module):
    """PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", 2022).

    Mid-level backbone maps (`layers`, indices into forward_features: 1, 2 = strides 8, 16) are averaged
    over a `neighbourhood` x `neighbourhood` window so each patch sees its surroundings, the deeper map
    is upsampled to the shallower one, and their concatenation is one feature per patch. A memory bank
    keeps a greedy coreset (`coreset_ratio` of the patches) of the normal training images' patches.
    A patch's anomaly score is its distance to the nearest memory patch; the image score is the worst
    patch's; the heatmap is the patch scores upsampled to the input and Gaussian-smoothed.

    What "training" means here: no gradient steps (`needs_gradient_training` is False; the backbone is
    frozen and `loss` is a constant zero). The engine calls `fit_memory_bank` once with every batch of
    the (normal) training images; that pass is the whole training. The backbone comes from the
    job's baseModel (load_backbone_weights) when there is one, otherwise it is a fixed random network,
    whose local features still separate textures but are weaker than trained ones. The memory bank
    is a buffer, saved with the weights, and resized to the saved bank on load.
    """

    needs_gradient_training = False

    def __init__(
        self,
        backbone: nn.Module,
        layers: tuple[int, ...] = (1, 2),
        coreset_ratio: float = 0.1,
        neighbourhood: int = 3,
        max_candidate_patches: int = 200_000,
        projection_dim: int = 128,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.backbone = backbone.requires_grad_(False)
        self.layers = layers
        self.coreset_ratio = coreset_ratio
        self.neighbourhood = neighbourhood
        self.max_candidate_patches = max_candidate_patches
        self.projection_dim = projection_dim
        self.seed = seed
        feature_dim = sum(backbone.feature_channels[layer] for layer in layers)
        self.register_buffer("memory_bank", torch.zeros(0, feature_dim))

    def train(self, mode: bool = True) -> PatchCore:
        super().train(mode)
        # The backbone is a fixed feature extractor: its BatchNorm statistics must not drift.
        self.backbone.eval()
        return self

    def patch_features(self, x: Tensor) -> Tensor:
        """Locally aggregated patch features [B, D, h, w] at the stride of the first of `layers`."""
        features = self.backbone.forward_features(x)
        pad = self.neighbourhood // 2
        maps = [
            F.avg_pool2d(features[layer], self.neighbourhood, stride=1, padding=pad, count_include_pad=False)
            for layer in self.layers
        ]
        size = maps[0].shape[-2:]
        maps = [maps[0]] + [F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps[1:]]
        return torch.cat(maps, dim=1)

    @torch.no_grad()
    def fit_memory_bank(self, feature_batches: Iterable[Tensor]) -> int:
        """Build the memory bank from batches of normal images [B, C_in, S, S]; returns its size.

        At most `max_candidate_patches` patches, a uniform random sample of all of them, enter the
        coreset selection, so memory stays bounded on large data sets.
        """
        was_training = self.training
        self.eval()
        device = self.memory_bank.device
        generator = torch.Generator().manual_seed(self.seed)
        candidates = torch.zeros(0, self.memory_bank.shape[1], device=device)
        priorities = torch.zeros(0, device=device)
        for images in feature_batches:
            patches = self.patch_features(images.to(device))
            patches = patches.permute(0, 2, 3, 1).reshape(-1, patches.shape[1])  # [B*h*w, D]
            # Keeping the rows with the highest random priority is a uniform sample of everything seen.
            candidates = torch.cat([candidates, patches])
            priorities = torch.cat([priorities, torch.rand(len(patches), generator=generator).to(device)])
            if len(candidates) > self.max_candidate_patches:
                kept = priorities.topk(self.max_candidate_patches).indices
                candidates, priorities = candidates[kept], priorities[kept]
        if len(candidates) == 0:
            raise ValueError("fit_memory_bank needs at least one batch of images")
        count = max(1, math.ceil(len(candidates) * self.coreset_ratio))
        self.memory_bank = candidates[greedy_coreset(candidates, count, self.projection_dim, self.seed)]
        self.train(was_training)
        return len(self.memory_bank)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        saved = state_dict.get(prefix + "memory_bank")
        if saved is not None:
            # The bank's size is only known after fitting: take the saved one's shape before copying.
            self.memory_bank = torch.empty_like(saved, device=self.memory_bank.device, dtype=self.memory_bank.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _patch_scores(self, x: Tensor) -> Tensor:
        """Distance of every patch to its nearest memory patch: [B, 1, h, w]."""
        if len(self.memory_bank) == 0:
            raise RuntimeError("PatchCore has an empty memory bank: call fit_memory_bank on normal images first")
        patches = self.patch_features(x)
        batch, dim, height, width = patches.shape
        flat = patches.permute(0, 2, 3, 1).reshape(-1, dim)
        nearest = torch.cat([
            torch.cdist(chunk, self.memory_bank).min(dim=1).values for chunk in flat.split(_DISTANCE_CHUNK)
        ])
        return nearest.reshape(batch, 1, height, width)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        patch_scores = self._patch_scores(x)  # [B, 1, h, w]
        upsampled = F.interpolate(patch_scores, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {
            "anomaly_map": gaussian_blur(upsampled, heatmap_sigma(x.shape[-1])),  # [B, 1, S, S]
            "score": patch_scores.flatten(1).max(dim=1).values,  # [B]
        }

    def anomaly_map(self, x: Tensor) -> Tensor:
        return self.forward(x)["anomaly_map"]

    def score(self, x: Tensor) -> Tensor:
        return self._patch_scores(x).flatten(1).max(dim=1).values

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": list(self.backbone.parameters()), "head": []}

    def loss(self, outputs: dict[str, Tensor], targets: Any = None) -> tuple[Tensor, dict[str, float]]:
        return torch.zeros((), device=self.memory_bank.device), {"loss": 0.0}

    def predict(self, outputs: dict[str, Tensor], **opts: Any) -> dict[str, Tensor]:
        return {"scores": outputs["score"], "anomaly_maps": outputs["anomaly_map"]}


class Reconstruction(nn.Module):
    """Convolutional autoencoder trained to reproduce normal images (L2 loss).

    The encoder halves the grid `levels` times (to stride 16 by default) and a 1x1 squeezes the code to
    `latent_channels`; there are no skip connections, so the decoder cannot copy what the bottleneck
    did not learn to represent - normal appearance. Where an image departs from it the reconstruction
    fails: the anomaly map is the per-pixel squared error (mean over channels), Gaussian-smoothed, and
    the image score is that map's maximum. `loss(outputs, targets)` ignores `targets` (normal images
    reconstruct themselves: outputs carry the input).
    """

    needs_gradient_training = True

    def __init__(self, in_channels: int = 3, base_channels: int = 32, latent_channels: int | None = None, levels: int = 4) -> None:
        super().__init__()
        latent = latent_channels or base_channels
        widths = [base_channels * 2**level for level in range(levels)]
        encoder: list[nn.Module] = []
        channels = in_channels
        for width in widths:  # each level: [B, c, H, W] -> [B, width, H/2, W/2]
            encoder.append(nn.Sequential(ConvBNReLU(channels, width, 3, stride=2), ConvBNReLU(width, width, 3)))
            channels = width
        self.encoder = nn.ModuleList(encoder)
        self.bottleneck = ConvBNReLU(channels, latent, 1)  # [B, latent, S/2^levels, S/2^levels]
        decoder: list[nn.Module] = []
        channels = latent
        for width in reversed(widths):  # each level: [B, c, h, w] -> [B, width, 2h, 2w]
            # A learnt 4x4 upsampling kernel lets one code position paint fine texture (stripes, weaves);
            # nearest-neighbour upsampling followed by convs can only paint flat blocks.
            decoder.append(nn.Sequential(
                nn.ConvTranspose2d(channels, width, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                ConvBNReLU(width, width, 3),
            ))
            channels = width
        self.decoder = nn.ModuleList(decoder)
        self.output = nn.Conv2d(channels, in_channels, 3, padding=1)

    def reconstruct(self, x: Tensor) -> Tensor:
        sizes = []
        code = x
        for level in self.encoder:
            sizes.append(code.shape[-2:])
            code = level(code)
        code = self.bottleneck(code)
        for level, size in zip(self.decoder, reversed(sizes), strict=True):
            code = level(code)
            if code.shape[-2:] != size:  # the encoder rounded an odd size up: come back to it exactly
                code = F.interpolate(code, size=size, mode="bilinear", align_corners=False)
        return self.output(code)  # [B, C_in, S, S]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        reconstruction = self.reconstruct(x)
        error = (reconstruction.detach() - x).pow(2).mean(dim=1, keepdim=True)  # [B, 1, S, S]
        anomaly_map = gaussian_blur(error, heatmap_sigma(x.shape[-1]))
        return {
            "reconstruction": reconstruction,
            "input": x,
            "anomaly_map": anomaly_map,
            "score": anomaly_map.flatten(1).max(dim=1).values,
        }

    def anomaly_map(self, x: Tensor) -> Tensor:
        return self.forward(x)["anomaly_map"]

    def score(self, x: Tensor) -> Tensor:
        return self.forward(x)["score"]

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        encoder = [*self.encoder.parameters(), *self.bottleneck.parameters()]
        return {"backbone": encoder, "head": [*self.decoder.parameters(), *self.output.parameters()]}

    def loss(self, outputs: dict[str, Tensor], targets: Any = None) -> tuple[Tensor, dict[str, float]]:
        loss = F.mse_loss(outputs["reconstruction"], outputs["input"])
        return loss, {"loss": float(loss.detach())}

    def predict(self, outputs: dict[str, Tensor], **opts: Any) -> dict[str, Tensor]:
        return {"scores": outputs["score"], "anomaly_maps": outputs["anomaly_map"]}
