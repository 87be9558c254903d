"""Text classifiers over token ids [B, L] (0 = padding): a CNN (Kim 2014) and a Transformer encoder.

Both follow ImageClassifier's conventions: forward -> logits [B, num_classes]; loss = softmax
cross-entropy on int targets [B], or with `logreg` BCE on multi-hot targets [B, C]; predict ->
probabilities; features -> pooled text features [B, F]. The embedding and encoder form `backbone`
(so load_backbone_weights can warm-start them), the final linear layer is the head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import LinearClassifierHead

PADDING_ID = 0


class ConvTextEncoder(nn.Module):
    """Kim, "Convolutional Neural Networks for Sentence Classification" (2014): embeddings, parallel 1-D
    convolutions of several widths, ReLU, max over time; `out_features` = channels x len(kernel_sizes).

    Only windows starting on a real token take part in the max, and every text is followed by enough
    padding for its last windows, so a text gets the same features however much a batch pads it.
    """

    def __init__(self, vocab_size: int, embed_dim: int, kernel_sizes: Sequence[int], channels: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PADDING_ID)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, channels, size) for size in kernel_sizes)
        self.tail = max(kernel_sizes) - 1
        self.out_features = channels * len(kernel_sizes)

    def forward(self, tokens: Tensor) -> Tensor:
        tokens = F.pad(tokens, (0, self.tail), value=PADDING_ID)  # [B, L + tail]
        starts_on_token = (tokens != PADDING_ID).unsqueeze(1)  # [B, 1, L + tail]
        embedded = self.embedding(tokens).transpose(1, 2)  # [B, E, L + tail]
        pooled = []
        for conv in self.convs:
            activations = F.relu(conv(embedded))  # [B, channels, L + tail - k + 1]
            # ReLU outputs are >= 0, so zeroing the windows that start on padding removes them from the max.
            activations = activations * starts_on_token[..., : activations.shape[2]]
            pooled.append(activations.amax(dim=2))  # [B, channels]
        return torch.cat(pooled, dim=1)  # [B, channels * len(kernel_sizes)]


class TransformerTextEncoder(nn.Module):
    """Token + learned position embeddings, a pre-norm Transformer encoder, mean over non-padding tokens.

    Sequences longer than `max_len` are cut to their first `max_len` tokens.
    """

    def __init__(self, vocab_size: int, d_model: int, nhead: int, num_layers: int, max_len: int, dropout: float) -> None:
        super().__init__()
        self.max_len = max_len
        self.token_embedding = nn.Embedding(vocab_size, d_model, padding_idx=PADDING_ID)
        self.position_embedding = nn.Parameter(torch.zeros(max_len, d_model))
        nn.init.normal_(self.position_embedding, std=0.02)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d_model, nhead, dim_feedforward=4 * d_model, dropout=dropout, activation="gelu",
            batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out_features = d_model

    def forward(self, tokens: Tensor) -> Tensor:
        tokens = tokens[:, : self.max_len]
        padding = tokens == PADDING_ID  # [B, L]
        # A row of nothing but padding would leave attention with no key at all (NaN): let it see position 0.
        padding[:, 0] &= ~padding.all(dim=1)
        x = self.token_embedding(tokens) + self.position_embedding[: tokens.shape[1]]  # [B, L, D]
        x = self.norm(self.encoder(self.dropout(x), src_key_padding_mask=padding))
        keep = (~padding).unsqueeze(2).to(x.dtype)
        return (x * keep).sum(dim=1) / keep.sum(dim=1)  # [B, D]


class _TextClassifier(LinearClassifierHead, nn.Module):
    """backbone (token ids -> [B, F]) -> dropout -> linear; the shared classifier conventions."""

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float, logreg: bool) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.logreg = logreg
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(backbone.out_features, num_classes)

    def features(self, tokens: Tensor) -> Tensor:
        return self.backbone(tokens)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.fc(self.dropout(self.backbone(tokens)))  # [B, num_classes]


class TextCNN(_TextClassifier):
    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        embed_dim: int = 128,
        kernel_sizes: Sequence[int] = (3, 4, 5),
        channels: int = 100,
        dropout: float = 0.5,
        logreg: bool = False,
    ) -> None:
        super().__init__(ConvTextEncoder(vocab_size, embed_dim, kernel_sizes, channels), num_classes, dropout, logreg)


class TextTransformer(_TextClassifier):
    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        d_model: int = 128,
        nhead: int = 4,
        num_layers: int = 2,
        max_len: int = 256,
        dropout: float = 0.1,
        logreg: bool = False,
    ) -> None:
        encoder = TransformerTextEncoder(vocab_size, d_model, nhead, num_layers, max_len, dropout)
        super().__init__(encoder, num_classes, dropout, logreg)
