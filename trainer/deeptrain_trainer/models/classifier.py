"""Image classifier: backbone -> global average pool -> dropout -> linear (softmax, or sigmoid with logreg)."""

from __future__ import annotations

from torch import Tensor, nn

from .common import LinearClassifierHead


class ImageClassifier(LinearClassifierHead, nn.Module):
    """Concepts from an image.

    forward(x [B, C_in, S, S]) -> logits [B, num_classes].
    loss: softmax cross-entropy on int targets [B], or with `logreg` binary cross-entropy on multi-hot
    float targets [B, num_classes] (several concepts per image). predict -> probabilities [B, num_classes].
    """

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float = 0.2, logreg: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.logreg = logreg
        self.num_classes = num_classes
        self.num_features: int = backbone.feature_channels[-1]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.num_features, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Pooled backbone features [B, F] (F = backbone.feature_channels[-1])."""
        return self.pool(self.backbone.forward_features(x)[-1]).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(self.features(x)))  # [B, num_classes]
