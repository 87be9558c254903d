"""The model zoo: backbones (one file per architecture), task models on top of them, and the registry.

Entry points (the data pipeline and the training engine use only these):

    build_model(model_type, template, *, num_classes, image_size, scale, hyperparameters, vocab_size=None)
        -> nn.Module. Validates (model_type, template) against deeptrain_api.catalog (ValueError
        naming spec.template); reads logreg, use_perclass_regression, detection_score_threshold and
        image_size (when the argument is None) from `hyperparameters`; `scale` is the job's
        templateScale (width/depth multipliers; 1.0 = as published). Text types need vocab_size.
    load_backbone_weights(model, state_dict) -> (loaded: list[str], skipped: list[str])
        Warm start from another model's weights: copies each "backbone.*" tensor matching in name and shape.
    BACKBONES: dict[str, Callable[..., nn.Module]]   template name -> backbone class, each built as
        Backbone(in_channels=3, width_mult=1.0, depth_mult=1.0) (1.0/1.0 = the published network) with
        forward_features(x) -> [4 maps at strides 4, 8, 16, 32] (ceil for sizes not divisible) and
        feature_channels: tuple of those maps' channels. Square inputs from 32 to 1024 px.

Every task model has:
    model.backbone                                   the backbone submodule ("backbone.*" in state_dict)
    model.parameter_groups() -> {"backbone": [...], "head": [...]}   backbone rate x base_gradient_multiplier
    model.loss(outputs, targets) -> (loss Tensor, {"loss": float, ...more batch metrics})
    model.predict(outputs, **opts) -> plain results (below)

Inputs, targets, outputs and predictions per model type (images: float [B, 3, S, S], S = image_size;
the models do not normalise pixels, the data pipeline does):
    visual-classifier  ImageClassifier   forward -> logits [B, C]; targets int [B], or with logreg
                       multi-hot float [B, C]; predict -> probabilities [B, C] (softmax / sigmoid);
                       features(x) -> pooled features [B, F].
    visual-embedder    ImageEmbedder     forward -> unit-norm embeddings [B, D]; targets as the
                       classifier's (CosFace margin loss over the concepts); predict -> embeddings [B, D].
    visual-detector    ImageDetector     forward -> {"cls_logits" [B, N, C], "box_deltas" [B, N, 4]
                       (or [B, N, C, 4] per-class), "anchors" [N, 4], "image_size" (H, W)};
                       targets: list (per image) of {"boxes": float [M, 4] xyxy pixels of the S x S
                       input, "labels": long [M] in [0, C)}; predict(outputs, score_threshold=None,
                       max_detections=100, nms_iou=0.5) -> list (per image) of {"boxes" [K, 4] xyxy
                       pixels, "scores" [K], "labels" [K]}, best first; threshold None = the job's
                       detection_score_threshold.
    visual-segmenter   ImageSegmenter    forward -> logits [B, C + 1, S, S] (channel 0 = background);
                       targets long [B, S, S] in [0, C] (0 = background, i = concept i - 1, 255 =
                       ignore); predict -> {"masks": long [B, S, S], "probabilities": [B, C + 1, S, S]}.
    visual-anomaly-    PatchCore,        forward -> {"anomaly_map" [B, 1, S, S], "score" [B], ...};
    heatmap            Reconstruction    predict -> {"scores" [B], "anomaly_maps" [B, 1, S, S]} (higher =
                                         more anomalous); anomaly_map(x), score(x); loss ignores targets.
                       `needs_gradient_training` (class attribute): False for PatchCore, whose training
                       is one call of fit_memory_bank(batches of normal images) after building (no
                       optimizer, no DDP wrap); True for Reconstruction, trained like any other model.
    text-classifier    TextCNN,          tokens long [B, L] (0 = padding) -> logits [B, C]; targets,
                       TextTransformer   predict and features as the image classifier's.
"""

from .anomaly import PatchCore, Reconstruction
from .classifier import ImageClassifier
from .detector import ImageDetector, batched_nms, nms, sigmoid_focal_loss
from .embedder import ImageEmbedder
from .inception_bn import InceptionBatchNorm
from .inception_resnet_v2 import InceptionResnetV2
from .inception_v2 import InceptionV2
from .inception_v4 import InceptionV4
from .registry import BACKBONES, build_model, load_backbone_weights
from .resnext import ResNext
from .segmenter import ImageSegmenter
from .text import TextCNN, TextTransformer

__all__ = [
    "BACKBONES",
    "ImageClassifier",
    "ImageDetector",
    "ImageEmbedder",
    "ImageSegmenter",
    "InceptionBatchNorm",
    "InceptionResnetV2",
    "InceptionV2",
    "InceptionV4",
    "PatchCore",
    "Reconstruction",
    "ResNext",
    "TextCNN",
    "TextTransformer",
    "batched_nms",
    "build_model",
    "load_backbone_weights",
    "nms",
    "sigmoid_focal_loss",
]
