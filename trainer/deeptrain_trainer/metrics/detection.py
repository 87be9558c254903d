"""Detection metrics: COCO-style average precision with 101-point interpolation.

For each class and IoU threshold, detections from all images are ranked by score; each one
matches the unmatched ground-truth box of its class with the highest IoU at or above the
threshold (true positive) or none (false positive). AP is the mean, over recall levels
0, 0.01, ..., 1, of the best precision reached at that recall or beyond. Classes without
ground truth are left out of the mean, as COCO does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

IOU_RANGE = np.linspace(0.5, 0.95, 10)
RECALL_LEVELS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class DetectionEvaluation:
    summary: dict[str, float]
    per_concept: dict[str, dict[str, float | int]]
    # Interpolated precision at each of RECALL_LEVELS, IoU 0.5, per concept (for the PR plot).
    pr_curves: dict[str, list[float]]

    def details(self) -> dict[str, Any]:
        return {"per_concept": self.per_concept}


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes a [N, 4] and b [M, 4] -> [N, M]."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    intersection = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1), 0.0)


def average_precision(predictions: Sequence[dict[str, np.ndarray]], ground_truths: Sequence[dict[str, np.ndarray]],
                      label: int, iou_threshold: float) -> tuple[float, np.ndarray] | None:
    """(AP, interpolated precision at RECALL_LEVELS) for one class, or None without ground truth."""
    gt_boxes = [np.asarray(gt["boxes"]).reshape(-1, 4)[np.asarray(gt["labels"]) == label] for gt in ground_truths]
    num_gt = sum(len(boxes) for boxes in gt_boxes)
    if num_gt == 0:
        return None
    detections = []  # (score, image index, box)
    for image, prediction in enumerate(predictions):
        mask = np.asarray(prediction["labels"]) == label
        for score, box in zip(np.asarray(prediction["scores"])[mask], np.asarray(prediction["boxes"]).reshape(-1, 4)[mask],
                              strict=True):
            detections.append((float(score), image, box))
    detections.sort(key=lambda item: -item[0])
    matched = [np.zeros(len(boxes), dtype=bool) for boxes in gt_boxes]
    hits = np.zeros(len(detections), dtype=bool)
    for index, (_, image, box) in enumerate(detections):
        candidates = gt_boxes[image]
        if not len(candidates):
            continue
        ious = box_iou(box[None], candidates)[0]
        ious[matched[image]] = -1.0
        best = int(ious.argmax())
        if ious[best] >= iou_threshold:
            matched[image][best] = True
            hits[index] = True
    true_positives = np.cumsum(hits)
    recall = true_positives / num_gt
    precision = true_positives / np.arange(1, len(detections) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    positions = np.searchsorted(recall, RECALL_LEVELS, side="left")
    interpolated = np.array([envelope[p] if p < len(envelope) else 0.0 for p in positions])
    return float(interpolated.mean()), interpolated


def evaluate_detection(predictions: Sequence[dict[str, np.ndarray]], ground_truths: Sequence[dict[str, np.ndarray]],
                       concepts: list[str]) -> DetectionEvaluation:
    """`predictions[i]` = {"boxes" [K, 4] xyxy, "scores" [K], "labels" [K]}; `ground_truths[i]` = {"boxes", "labels"}."""
    per_concept: dict[str, dict[str, float | int]] = {}
    pr_curves: dict[str, list[float]] = {}
    ap50s, ap_ranges = [], []
    for label, concept in enumerate(concepts):
        at_50 = average_precision(predictions, ground_truths, label, 0.5)
        if at_50 is None:
            continue
        ap_range = float(np.mean([average_precision(predictions, ground_truths, label, t)[0] for t in IOU_RANGE]))
        num_gt = int(sum((np.asarray(gt["labels"]) == label).sum() for gt in ground_truths))
        per_concept[concept] = {"avg_precision_iou_50": at_50[0], "avg_precision_iou_range": ap_range,
                                "total_labeled": num_gt}
        pr_curves[concept] = at_50[1].round(6).tolist()
        ap50s.append(at_50[0])
        ap_ranges.append(ap_range)
    summary = {
        "mean_avg_precision_iou_50": float(np.mean(ap50s)) if ap50s else 0.0,
        "mean_avg_precision_iou_range": float(np.mean(ap_ranges)) if ap_ranges else 0.0,
    }
    return DetectionEvaluation(summary=summary, per_concept=per_concept, pr_curves=pr_curves)
