"""Segmentation metrics from a pixel confusion matrix: per-class IoU, mean IoU and Dice.

Class 0 is background. Every mean runs over the classes that appear in the ground truth or the
prediction (as scikit-learn's `jaccard_score(average="macro")` over the flattened masks):
`mean_iou` over background and concepts (the usual semantic-segmentation mIoU), `mean_iou_foreground`
and `dice` over the concepts alone, so predicting background everywhere scores 0 there.
The task counts pixels at each validation image's original size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SegmentationEvaluation:
    summary: dict[str, float]
    per_concept: dict[str, dict[str, float]]

    def details(self) -> dict[str, Any]:
        return {"per_concept": self.per_concept}


def pixel_confusion(predicted: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """[num_classes, num_classes] counts; rows are true classes, columns predicted ones."""
    predicted = np.asarray(predicted, dtype=np.int64).ravel()
    truth = np.asarray(truth, dtype=np.int64).ravel()
    return np.bincount(truth * num_classes + predicted, minlength=num_classes**2).reshape(num_classes, num_classes)


def evaluate_segmentation(confusion: np.ndarray, concepts: list[str]) -> SegmentationEvaluation:
    """`confusion` over background + concepts, as built (and summed over batches) by `pixel_confusion`."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positives = np.diag(confusion)
    false_positives = confusion.sum(axis=0) - true_positives
    false_negatives = confusion.sum(axis=1) - true_positives
    present = (true_positives + false_positives + false_negatives) > 0
    iou = np.divide(true_positives, true_positives + false_positives + false_negatives,
                    out=np.zeros_like(true_positives), where=present)
    dice = np.divide(2 * true_positives, 2 * true_positives + false_positives + false_negatives,
                     out=np.zeros_like(true_positives), where=present)
    every = [index for index in range(len(concepts) + 1) if present[index]]
    foreground = every[1:] if every and every[0] == 0 else every
    per_concept = {concept: {"iou": float(iou[index]), "dice": float(dice[index])}
                   for index, concept in enumerate(concepts, start=1) if present[index]}
    summary = {
        "mean_iou": float(iou[every].mean()) if every else 0.0,
        "mean_iou_foreground": float(iou[foreground].mean()) if foreground else 0.0,
        "dice": float(dice[foreground].mean()) if foreground else 0.0,
        "background_iou": float(iou[0]),
        "pixel_accuracy": float(true_positives.sum() / max(1.0, confusion.sum())),
    }
    return SegmentationEvaluation(summary=summary, per_concept=per_concept)
