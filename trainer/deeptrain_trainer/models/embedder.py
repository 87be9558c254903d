"""Image embedder trained by metric learning: CosFace (Wang et al., "CosFace: Large Margin Cosine Loss
for Deep Face Recognition", 2018).

Embeddings and concept weights are both L2-normalised, so the logits are cosines; the true concept's
cosine has an additive margin m subtracted before scaling by s: logit = s * (cos - m * [true]).
Chosen over ArcFace's angular margin because it needs no arccos and no easy-margin fix-ups, and it
trains stably from scratch on small data sets, which is what most jobs here have.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ImageEmbedder(nn.Module):
    """forward(x [B, C_in, S, S]) -> unit-norm embeddings [B, embedding_dim]; predict -> the same embeddings.

    loss(embeddings, targets): CosFace softmax loss over the concepts with int targets [B]; with `logreg`
    (several concepts per image) binary cross-entropy on the same margin cosines with multi-hot targets [B, C].
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        embedding_dim: int = 128,
        margin: float = 0.2,
        scale: float = 16.0,
        logreg: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.margin = margin
        self.scale = scale
        self.logreg = logreg
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embedding = nn.Linear(backbone.feature_channels[-1], embedding_dim)
        # One unit-norm prototype per concept; only used by the loss, not part of the embedding.
        self.concept_weights = nn.Parameter(torch.randn(num_classes, embedding_dim) / embedding_dim**0.5)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.pool(self.backbone.forward_features(x)[-1]).flatten(1)  # [B, F]
        return F.normalize(self.embedding(pooled), dim=1)  # [B, D]

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "backbone": list(self.backbone.parameters()),
            "head": [*self.embedding.parameters(), self.concept_weights],
        }

    def cosines(self, embeddings: Tensor) -> Tensor:
        """Cosine similarity of each embedding with each concept prototype: [B, num_classes]."""
        return embeddings @ F.normalize(self.concept_weights, dim=1).t()

    def loss(self, outputs: Tensor, targets: Tensor) -> tuple[Tensor, dict[str, float]]:
        cosines = self.cosines(outputs)
        if self.logreg:
            positives = targets.to(cosines.dtype)
            logits = self.scale * (cosines - self.margin * positives)
            loss = F.binary_cross_entropy_with_logits(logits, positives)
            accuracy = ((cosines > 0) == (positives > 0.5)).float().mean()
        else:
            targets = targets.long()
            positives = F.one_hot(targets, self.num_classes).to(cosines.dtype)
            logits = self.scale * (cosines - self.margin * positives)
            loss = F.cross_entropy(logits, targets)
            accuracy = (cosines.argmax(dim=1) == targets).float().mean()
        return loss, {"loss": float(loss.detach()), "accuracy": float(accuracy)}

    def predict(self, outputs: Tensor, **opts: Any) -> Tensor:
        return outputs
