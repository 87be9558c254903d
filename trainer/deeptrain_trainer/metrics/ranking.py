"""Threshold-free ranking metrics shared by the classification and anomaly families."""

from __future__ import annotations

import numpy as np


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve: the probability that a random positive outscores a random negative.

    Ties count one half (Mann-Whitney U with average ranks). None when one class is absent,
    because the curve is then undefined.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = _average_ranks(scores)
    u = ranks[labels].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates, thresholds), one point per distinct score, from (0, 0)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    true_positives = np.cumsum(sorted_labels)[last_of_each_score]
    false_positives = (last_of_each_score + 1) - true_positives
    tpr = np.r_[0.0, true_positives / max(1, labels.sum())]
    fpr = np.r_[0.0, false_positives / max(1, (~labels).sum())]
    thresholds = np.r_[np.inf, sorted_scores[last_of_each_score]]
    return fpr, tpr, thresholds


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(values.size, dtype=np.float64)
    boundaries = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1, values.size]
    for start, end in zip(boundaries[:-1], boundaries[1:], strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2
    return ranks
