"""Detection metrics: COCO average precision over all detections, and precision/recall at the score threshold.

AP follows the COCO evaluation (the numbers published results report), per class and IoU threshold:
- each image keeps its `MAX_DETECTIONS` best-scoring detections of the class;
- in score order, a detection matches the unmatched ground-truth box of its class with the highest
  IoU at or above the threshold, preferring regular boxes to crowd boxes (`iscrowd`); a crowd box
  measures overlap as intersection over the detection's area and may absorb any number of detections;
- a detection matched to a crowd box is ignored (neither true nor false positive), and crowd boxes
  are not counted as ground truth, so a detector is neither rewarded nor punished inside crowds;
- AP is the mean, over recall levels 0, 0.01, ..., 1, of the best precision reached at that recall
  or beyond. Classes without (non-crowd) ground truth are left out of the mean.
mAP@0.5 uses IoU 0.5; mAP@[.5:.95] averages IoU 0.5, 0.55, ..., 0.95.

Precision and recall at the job's detection_score_threshold (IoU 0.5, pooled over classes) describe
the boxes `deeptrain predict` returns; they are reported separately and never enter mAP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

IOU_RANGE = np.linspace(0.5, 0.95, 10)
RECALL_LEVELS = np.linspace(0.0, 1.0, 101)
MAX_DETECTIONS = 100  # per image and class, as COCO's maxDets=100


@dataclass(frozen=True)
class DetectionEvaluation:
    summary: dict[str, float]
    per_concept: dict[str, dict[str, float | int]]
    # Interpolated precision at each of RECALL_LEVELS, IoU 0.5, per concept (for the PR plot).
    pr_curves: dict[str, list[float]]

    def details(self) -> dict[str, Any]:
        return {"per_concept": self.per_concept}


def box_iou(a: np.ndarray, b: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """Pairwise IoU of xyxy boxes a [N, 4] and b [M, 4] -> [N, M]; for the b marked in `crowd` [M],
    intersection over the area of a instead."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    intersection = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - intersection
    if crowd is not None:
        union = np.where(np.asarray(crowd, dtype=bool)[None, :], area_a[:, None], union)
    return np.where(union > 0, intersection / np.where(union > 0, union, 1), 0.0)


def _crowd(truth: dict[str, np.ndarray]) -> np.ndarray:
    labels = np.asarray(truth["labels"])
    return np.asarray(truth.get("iscrowd", np.zeros(len(labels), dtype=bool)), dtype=bool).reshape(-1)


@dataclass(frozen=True)
class _ImageMatches:
    scores: np.ndarray  # [D] this image's kept detections of the class, best first
    matched: np.ndarray  # [T, D] matched a regular box at IoU threshold t
    ignored: np.ndarray  # [T, D] matched a crowd box at IoU threshold t
    num_truths: int  # regular boxes of the class


def _match_image(prediction: dict[str, np.ndarray], truth: dict[str, np.ndarray], label: int,
                 thresholds: np.ndarray) -> _ImageMatches:
    keep = np.asarray(prediction["labels"]) == label
    scores = np.asarray(prediction["scores"], dtype=np.float64)[keep]
    boxes = np.asarray(prediction["boxes"], dtype=np.float64).reshape(-1, 4)[keep]
    order = np.argsort(-scores, kind="mergesort")[:MAX_DETECTIONS]
    scores, boxes = scores[order], boxes[order]
    of_label = np.asarray(truth["labels"]) == label
    truth_boxes = np.asarray(truth["boxes"], dtype=np.float64).reshape(-1, 4)[of_label]
    crowd = _crowd(truth)[of_label]
    # Regular boxes first: a detection settles for a crowd box only when no regular box fits.
    truth_order = np.argsort(crowd, kind="mergesort")
    truth_boxes, crowd = truth_boxes[truth_order], crowd[truth_order]
    ious = box_iou(boxes, truth_boxes, crowd)  # [D, G]
    matched = np.zeros((len(thresholds), len(scores)), dtype=bool)
    ignored = np.zeros_like(matched)
    # Only detections overlapping some box enough for the lowest threshold can match at all.
    candidates = np.flatnonzero(ious.max(axis=1) >= thresholds.min()) if len(truth_boxes) else []
    for t, threshold in enumerate(thresholds):
        taken = np.zeros(len(truth_boxes), dtype=bool)
        for d in candidates:
            best, best_iou = -1, min(threshold, 1 - 1e-10)
            for g in range(len(truth_boxes)):
                if taken[g] and not crowd[g]:
                    continue
                if best > -1 and not crowd[best] and crowd[g]:
                    break  # a regular box matched; crowd boxes come after all regular ones
                if ious[d, g] < best_iou:
                    continue
                best, best_iou = g, ious[d, g]
            if best == -1:
                continue
            taken[best] = True
            if crowd[best]:
                ignored[t, d] = True
            else:
                matched[t, d] = True
    return _ImageMatches(scores=scores, matched=matched, ignored=ignored, num_truths=int((~crowd).sum()))


def _average_precision(images: Sequence[_ImageMatches], t: int) -> tuple[float, np.ndarray] | None:
    """(AP, interpolated precision at RECALL_LEVELS) at threshold index t, or None without ground truth."""
    num_truths = sum(image.num_truths for image in images)
    if num_truths == 0:
        return None
    scores = np.concatenate([image.scores for image in images])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([image.matched[t] for image in images])[order]
    ignored = np.concatenate([image.ignored[t] for image in images])[order]
    true_positives = np.cumsum(matched & ~ignored).astype(np.float64)
    false_positives = np.cumsum(~matched & ~ignored).astype(np.float64)
    recall = true_positives / num_truths
    precision = true_positives / (true_positives + false_positives + np.spacing(1))
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    positions = np.searchsorted(recall, RECALL_LEVELS, side="left")
    interpolated = np.array([envelope[p] if p < len(envelope) else 0.0 for p in positions])
    return float(interpolated.mean()), interpolated


def _at_threshold(predictions: Sequence[dict[str, np.ndarray]], ground_truths: Sequence[dict[str, np.ndarray]],
                  num_classes: int, score_threshold: float) -> dict[str, float]:
    """Precision and recall at IoU 0.5 of the detections scoring above `score_threshold`, over all classes."""
    true_positives = false_positives = num_truths = 0
    for label in range(num_classes):
        for prediction, truth in zip(predictions, ground_truths, strict=True):
            above = np.asarray(prediction["scores"]) > score_threshold
            kept = {key: np.asarray(value)[above] for key, value in prediction.items()}
            image = _match_image(kept, truth, label, np.array([0.5]))
            true_positives += int(image.matched[0].sum())
            false_positives += int((~image.matched[0] & ~image.ignored[0]).sum())
            num_truths += image.num_truths
    predicted = true_positives + false_positives
    return {"precision_at_score_threshold": true_positives / predicted if predicted else 0.0,
            "recall_at_score_threshold": true_positives / num_truths if num_truths else 0.0}


def evaluate_detection(predictions: Sequence[dict[str, np.ndarray]], ground_truths: Sequence[dict[str, np.ndarray]],
                       concepts: list[str], score_threshold: float) -> DetectionEvaluation:
    """`predictions[i]` = {"boxes" [K, 4] xyxy, "scores" [K], "labels" [K]}, every detection the model makes
    (no score threshold); `ground_truths[i]` = {"boxes", "labels", optional "iscrowd" [M] bool}."""
    per_concept: dict[str, dict[str, float | int]] = {}
    pr_curves: dict[str, list[float]] = {}
    ap50s, ap_ranges = [], []
    for label, concept in enumerate(concepts):
        images = [_match_image(prediction, truth, label, IOU_RANGE)
                  for prediction, truth in zip(predictions, ground_truths, strict=True)]
        at_50 = _average_precision(images, 0)
        if at_50 is None:
            continue
        ap_range = float(np.mean([_average_precision(images, t)[0] for t in range(len(IOU_RANGE))]))
        per_concept[concept] = {"avg_precision_iou_50": at_50[0], "avg_precision_iou_range": ap_range,
                                "total_labeled": sum(image.num_truths for image in images)}
        pr_curves[concept] = at_50[1].round(6).tolist()
        ap50s.append(at_50[0])
        ap_ranges.append(ap_range)
    summary = {
        "mean_avg_precision_iou_50": float(np.mean(ap50s)) if ap50s else 0.0,
        "mean_avg_precision_iou_range": float(np.mean(ap_ranges)) if ap_ranges else 0.0,
        **_at_threshold(predictions, ground_truths, len(concepts), score_threshold),
    }
    return DetectionEvaluation(summary=summary, per_concept=per_concept, pr_curves=pr_curves)
