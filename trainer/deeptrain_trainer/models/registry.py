"""From (modelType, template, templateScale, hyperparameters) to a model, and warm starts between models."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from deeptrain_api import catalog
from deeptrain_api.trainer_contract import TemplateScale

from .anomaly import PatchCore, Reconstruction
from .classifier import ImageClassifier
from .common import scale_channels, scale_depth
from .detector import ImageDetector
from .embedder import ImageEmbedder
from .inception_bn import InceptionBatchNorm
from .inception_resnet_v2 import InceptionResnetV2
from .inception_v2 import InceptionV2
from .inception_v4 import InceptionV4
from .resnext import ResNext
from .segmenter import ImageSegmenter
from .text import TextCNN, TextTransformer

# Image backbones by template name; each takes (in_channels=3, width_mult=1.0, depth_mult=1.0).
BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "InceptionV2": InceptionV2,
    "InceptionBatchNorm": InceptionBatchNorm,
    "InceptionV4": InceptionV4,
    "InceptionResnetV2": InceptionResnetV2,
    "ResNext": ResNext,
}


def _check_template(model_type: str, template: str) -> catalog.ModelType:
    spec = catalog.model_type(model_type)
    if template not in spec.templates:
        raise ValueError(
            f"spec.template: template {template!r} is not offered for {model_type}; "
            f"use one of: {', '.join(spec.templates)}"
        )
    return spec


def build_model(
    model_type: str,
    template: str,
    *,
    num_classes: int,
    image_size: int | None,
    scale: TemplateScale,
    hyperparameters: Mapping[str, Any],
    vocab_size: int | None = None,
) -> nn.Module:
    """The model for a job, randomly initialised.

    Raises ValueError when the template is not offered for the model type (naming spec.template), or a
    text model gets no vocab_size. `image_size` None means hyperparameters["image_size"], then the model
    type's default. templateScale multiplies every width and depth of the template, heads included.
    """
    spec = _check_template(model_type, template)
    width, depth = scale.width, scale.depth
    logreg = bool(hyperparameters.get("logreg", False))

    if spec.input == "text":
        if vocab_size is None:
            raise ValueError(f"{model_type} needs vocab_size (the tokenizer's vocabulary size)")
        if template == "TextCNN":
            # Kim's 100 filters per width is not a multiple of 8: scale it without rounding.
            return TextCNN(vocab_size, num_classes, embed_dim=scale_channels(128, width),
                           channels=max(8, round(100 * width)), logreg=logreg)
        heads = 4
        # d_model must split evenly over the heads: a multiple of 8 * heads.
        return TextTransformer(vocab_size, num_classes, d_model=scale_channels(128, width, 8 * heads), nhead=heads,
                               num_layers=scale_depth(2, depth), logreg=logreg)

    if image_size is None:
        image_size = int(hyperparameters.get("image_size", spec.defaults["image_size"]))

    if model_type == catalog.VISUAL_ANOMALY_HEATMAP:
        if template == "PatchCore":
            return PatchCore(ResNext(width_mult=width, depth_mult=depth))
        return Reconstruction(base_channels=scale_channels(32, width), levels=4)

    backbone = BACKBONES[template](width_mult=width, depth_mult=depth)
    if model_type == catalog.VISUAL_CLASSIFIER:
        return ImageClassifier(backbone, num_classes, logreg=logreg)
    if model_type == catalog.VISUAL_EMBEDDER:
        return ImageEmbedder(backbone, num_classes, embedding_dim=scale_channels(128, width), logreg=logreg)
    if model_type == catalog.VISUAL_SEGMENTER:
        return ImageSegmenter(backbone, num_classes, decoder_channels=scale_channels(128, width))
    if model_type == catalog.VISUAL_DETECTOR:
        return ImageDetector(
            backbone, num_classes, image_size,
            use_perclass_regression=bool(hyperparameters.get("use_perclass_regression", False)),
            fpn_channels=scale_channels(256, width),
            head_convs=scale_depth(4, depth),
            score_threshold=float(hyperparameters.get("detection_score_threshold", 0.3)),
        )
    raise ValueError(f"no model is wired for modelType {model_type!r}")  # a catalog type without a builder


def load_backbone_weights(model: nn.Module, state_dict: Mapping[str, Tensor]) -> tuple[list[str], list[str]]:
    """Warm-start `model`'s backbone from another model's weights (the job's baseModel).

    Copies every "backbone.*" tensor of `state_dict` (parameters and BatchNorm statistics) whose name
    and shape match one of `model`'s; everything else (heads, other templates or scales) is left as is.
    Returns (loaded names, skipped "backbone.*" names of `state_dict`).
    """
    own = model.state_dict()
    loaded, skipped = [], []
    with torch.no_grad():
        for name, tensor in state_dict.items():
            if not name.startswith("backbone."):
                continue
            if name in own and own[name].shape == tensor.shape:
                own[name].copy_(tensor)
                loaded.append(name)
            else:
                skipped.append(name)
    return loaded, skipped
