"""Anomaly metrics: image-level AUROC of the scores, pixel-level AUROC of the heatmaps, and the
score threshold the predictor uses to call an image anomalous (the one with the best F1 on the
validation set)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ranking import roc_auc

# Pixel AUROC is computed on at most this many pixels, sampled evenly, to bound memory.
MAX_PIXELS = 2_000_000


@dataclass(frozen=True)
class AnomalyEvaluation:
    summary: dict[str, float]
    threshold: float


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The score threshold (score >= threshold = anomalous) maximising F1; midpoint between neighbours."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    if not labels.any() or labels.all():
        return float(scores.max(initial=0.0)) if not labels.any() else float(scores.min(initial=0.0))
    candidates = np.unique(scores)
    best_f1, best_threshold = -1.0, float(candidates[0])
    for threshold in candidates:
        predicted = scores >= threshold
        true_positives = (predicted & labels).sum()
        f1 = 2 * true_positives / (predicted.sum() + labels.sum())
        if f1 > best_f1:
            best_f1, best_threshold = f1, float(threshold)
    below = candidates[candidates < best_threshold]
    return (best_threshold + float(below.max())) / 2 if below.size else best_threshold


def evaluate_anomaly(scores: np.ndarray, labels: np.ndarray, maps: np.ndarray | None = None,
                     masks: np.ndarray | None = None) -> AnomalyEvaluation:
    """`scores` [N] (higher = more anomalous), `labels` [N] 0/1; optional `maps`, `masks` [N, H, W]."""
    summary: dict[str, float] = {}
    image = roc_auc(scores, labels)
    if image is not None:  # undefined when the validation set lacks normal or anomalous images
        summary["image_auroc"] = image
    if maps is not None and masks is not None:
        flat_maps, flat_masks = np.asarray(maps).ravel(), np.asarray(masks).ravel() > 0
        stride = max(1, flat_maps.size // MAX_PIXELS)
        pixel = roc_auc(flat_maps[::stride], flat_masks[::stride])
        if pixel is not None:
            summary["pixel_auroc"] = pixel
    return AnomalyEvaluation(summary=summary, threshold=best_f1_threshold(scores, labels))
