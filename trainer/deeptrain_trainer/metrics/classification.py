"""Classification metrics (visual and text classifiers), shaped like the platform's evaluation.

Summary: accuracy (top-1 when every item has one concept, else exact set match) and the macro averages
over concepts of precision, recall, F1 and ROC AUC. Precision, recall and F1 average as scikit-learn's
`precision_recall_fscore_support(average="macro", zero_division=0)` does: over every concept that is
labelled or predicted at least once (mutually exclusive concepts), over all concepts (multi-label), a
ratio with a zero denominator counting 0. ROC AUC averages over the concepts where it is defined
(both labelled and unlabelled items present).
Details: per-concept binary metrics and a confusion matrix whose row i averages the predicted
probabilities of the items labelled with concept i (the platform's definition, which also works
when items carry several concepts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .ranking import roc_auc

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class ClassificationEvaluation:
    summary: dict[str, float]
    per_concept: dict[str, dict[str, float | int | None]]
    confusion_matrix: list[list[float]]  # rows: labelled concept, columns: mean predicted probability

    def details(self) -> dict[str, Any]:
        return {"per_concept": self.per_concept, "confusion_matrix": self.confusion_matrix}


def evaluate_classification(probabilities: np.ndarray, targets: np.ndarray, concepts: list[str], *,
                            multi_label: bool, threshold: float = DEFAULT_THRESHOLD) -> ClassificationEvaluation:
    """`probabilities` [N, C] (softmax or sigmoid); `targets` [N] class ids or [N, C] multi-hot.

    A concept counts as predicted when it is the arg-max (mutually exclusive concepts) or, with
    `multi_label`, when its probability reaches `threshold`.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    num_items, num_concepts = probabilities.shape
    truth = _multi_hot(np.asarray(targets), num_concepts)
    if multi_label:
        predicted = probabilities >= threshold
    else:
        predicted = np.zeros_like(truth)
        predicted[np.arange(num_items), probabilities.argmax(axis=1)] = True

    if num_items == 0:
        accuracy = 0.0
    elif (truth.sum(axis=1) == 1).all():
        # One concept per item: top-1 accuracy, whether the outputs are softmax or sigmoid.
        accuracy = float((probabilities.argmax(axis=1) == truth.argmax(axis=1)).mean())
    else:
        # Several (or no) concepts per item: the predicted set must equal the labelled one.
        accuracy = float((predicted == truth).all(axis=1).mean())

    per_concept: dict[str, dict[str, float | int | None]] = {}
    for index, concept in enumerate(concepts):
        per_concept[concept] = _binary_metrics(predicted[:, index], truth[:, index], probabilities[:, index])

    averaged = [m for m in per_concept.values() if multi_label or m["total_labeled"] or m["total_predicted"]]
    aucs = [m["roc_auc"] for m in per_concept.values() if m["roc_auc"] is not None]
    summary = {
        "accuracy": accuracy,
        "macro_avg_precision": _mean([m["precision"] for m in averaged]),
        "macro_avg_recall": _mean([m["recall"] for m in averaged]),
        "macro_avg_f1_score": _mean([m["f1_score"] for m in averaged]),
        "macro_avg_roc_auc": _mean(aucs),
    }
    confusion = []
    for index in range(num_concepts):
        rows = probabilities[truth[:, index]]
        confusion.append(rows.mean(axis=0).round(6).tolist() if len(rows) else [0.0] * num_concepts)
    return ClassificationEvaluation(summary=summary, per_concept=per_concept, confusion_matrix=confusion)


def _binary_metrics(predicted: np.ndarray, truth: np.ndarray, scores: np.ndarray) -> dict[str, float | int | None]:
    true_positives = int((predicted & truth).sum())
    false_positives = int((predicted & ~truth).sum())
    false_negatives = int((~predicted & truth).sum())
    precision = true_positives / (true_positives + false_positives) if true_positives + false_positives else 0.0
    recall = true_positives / (true_positives + false_negatives) if true_positives + false_negatives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "total_labeled": int(truth.sum()),
        "total_predicted": int(predicted.sum()),
        "true_positives": true_positives,
        "false_positives": false_positives,
        "false_negatives": false_negatives,
        "precision": precision,
        "recall": recall,
        "f1_score": f1,
        "roc_auc": roc_auc(scores, truth),
    }


def _multi_hot(targets: np.ndarray, num_concepts: int) -> np.ndarray:
    if targets.ndim == 2:
        return targets.astype(bool)
    hot = np.zeros((targets.shape[0], num_concepts), dtype=bool)
    hot[np.arange(targets.shape[0]), targets.astype(np.int64)] = True
    return hot


def _mean(values: list[Any]) -> float:
    return float(np.mean(values)) if values else 0.0
