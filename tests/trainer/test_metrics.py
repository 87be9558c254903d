"""Metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from deeptrain_trainer.metrics.anomaly import best_f1_threshold, evaluate_anomaly
from deeptrain_trainer.metrics.classification import evaluate_classification
from deeptrain_trainer.metrics.definitions import definitions_of
from deeptrain_trainer.metrics.detection import box_iou, evaluate_detection
from deeptrain_trainer.metrics.ranking import roc_auc
from deeptrain_trainer.metrics.retrieval import recall_at_k
from deeptrain_trainer.metrics.segmentation import evaluate_segmentation, pixel_confusion


def test_roc_auc_counts_ordered_pairs_and_half_ties():
    # positives 0.9, 0.4; negatives 0.4, 0.1 -> pairs (0.9>0.4, 0.9>0.1, 0.4=0.4, 0.4>0.1) = 3.5 / 4
    assert roc_auc(np.array([0.9, 0.4, 0.4, 0.1]), np.array([1, 1, 0, 0])) == pytest.approx(0.875)
    assert roc_auc(np.array([0.1, 0.2]), np.array([1, 1])) is None


def test_classification_summary_and_per_concept():
    concepts = ["cat", "dog", "fox"]
    probabilities = np.array([
        [0.7, 0.2, 0.1],  # cat -> cat
        [0.6, 0.3, 0.1],  # dog -> cat (wrong)
        [0.1, 0.8, 0.1],  # dog -> dog
        [0.2, 0.2, 0.6],  # fox -> fox
    ])
    targets = np.array([0, 1, 1, 2])
    result = evaluate_classification(probabilities, targets, concepts, multi_label=False)
    assert result.summary["accuracy"] == pytest.approx(0.75)
    # cat: P=1/2 R=1 F1=2/3; dog: P=1 R=1/2 F1=2/3; fox: P=R=F1=1
    assert result.per_concept["cat"]["precision"] == pytest.approx(0.5)
    assert result.per_concept["dog"]["recall"] == pytest.approx(0.5)
    assert result.summary["macro_avg_precision"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert result.summary["macro_avg_recall"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert result.summary["macro_avg_f1_score"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    # cat one-vs-rest: positive 0.7 vs negatives 0.6, 0.1, 0.2 -> 1.0
    # dog: positives 0.3, 0.8 vs negatives 0.2, 0.2 -> 1.0; fox: 0.6 vs 0.1, 0.1, 0.1 -> 1.0
    assert result.summary["macro_avg_roc_auc"] == pytest.approx(1.0)
    # row "dog" averages the probabilities of the two dog items
    assert result.confusion_matrix[1] == pytest.approx([0.35, 0.55, 0.1])


def test_multi_label_accuracy_is_exact_set_match():
    probabilities = np.array([[0.9, 0.8], [0.9, 0.1]])
    targets = np.array([[1, 1], [1, 1]])
    result = evaluate_classification(probabilities, targets, ["a", "b"], multi_label=True)
    assert result.summary["accuracy"] == pytest.approx(0.5)
    assert result.per_concept["b"]["recall"] == pytest.approx(0.5)


def test_box_iou():
    assert box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 1, 3, 3]]))[0, 0] == pytest.approx(1 / 7)


def test_detection_ap_with_one_false_positive_ranked_first():
    ground_truths = [{"boxes": np.array([[0, 0, 10, 10]]), "labels": np.array([0])},
                     {"boxes": np.array([[0, 0, 10, 10]]), "labels": np.array([0])}]
    predictions = [
        {"boxes": np.array([[50, 50, 60, 60], [0, 0, 10, 10]]), "scores": np.array([0.9, 0.8]), "labels": np.array([0, 0])},
        {"boxes": np.array([[0, 0, 10, 10]]), "scores": np.array([0.7]), "labels": np.array([0])},
    ]
    result = evaluate_detection(predictions, ground_truths, ["box"], score_threshold=0.75)
    # ranked: FP (P=0), TP (R=.5, P=.5), TP (R=1, P=2/3); envelope 2/3 for every recall level
    assert result.summary["mean_avg_precision_iou_50"] == pytest.approx(2 / 3)
    assert result.summary["mean_avg_precision_iou_range"] == pytest.approx(2 / 3)
    # above 0.75: the FP and one TP -> precision 1/2, recall 1/2; mAP is the same at any threshold
    assert result.summary["precision_at_score_threshold"] == pytest.approx(0.5)
    assert result.summary["recall_at_score_threshold"] == pytest.approx(0.5)
    assert evaluate_detection(predictions, ground_truths, ["box"], score_threshold=0.95).summary[
        "mean_avg_precision_iou_50"] == pytest.approx(2 / 3)


def test_detection_iou_range_penalises_loose_boxes_and_skips_classes_without_truth():
    ground_truths = [{"boxes": np.array([[0, 0, 10, 10]]), "labels": np.array([0])}]
    # IoU 0.8: a hit at thresholds 0.5..0.8 (7 of the 10), a miss at 0.85..0.95
    predictions = [{"boxes": np.array([[0, 0, 10, 8]]), "scores": np.array([0.9]), "labels": np.array([0])}]
    result = evaluate_detection(predictions, ground_truths, ["box", "never-labelled"], score_threshold=0.5)
    assert result.summary["mean_avg_precision_iou_50"] == pytest.approx(1.0)
    assert result.summary["mean_avg_precision_iou_range"] == pytest.approx(0.7)
    assert list(result.per_concept) == ["box"]


def test_detection_missed_object_halves_recall():
    ground_truths = [{"boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), "labels": np.array([0, 0])}]
    predictions = [{"boxes": np.array([[0, 0, 10, 10]]), "scores": np.array([0.9]), "labels": np.array([0])}]
    result = evaluate_detection(predictions, ground_truths, ["box"], score_threshold=0.5)
    # precision 1 up to recall 0.5 (recall levels 0.00..0.50 = 51 of 101), 0 after
    assert result.summary["mean_avg_precision_iou_50"] == pytest.approx(51 / 101)


def test_segmentation_iou_and_dice():
    truth = np.array([[0, 1], [1, 2]])
    predicted = np.array([[0, 1], [0, 2]])
    confusion = pixel_confusion(predicted, truth, num_classes=3)
    result = evaluate_segmentation(confusion, ["leaf", "stem"])
    # background: TP 1, FP 1 -> IoU 1/2; leaf: TP 1, FN 1 -> IoU 1/2, Dice 2/3; stem: IoU 1, Dice 1
    assert result.per_concept["leaf"]["iou"] == pytest.approx(0.5)
    assert result.summary["mean_iou"] == pytest.approx(2 / 3)
    assert result.summary["mean_iou_foreground"] == pytest.approx(0.75)
    assert result.summary["dice"] == pytest.approx((2 / 3 + 1) / 2)


def test_segmentation_all_background_prediction_scores_zero():
    truth = np.array([[0, 1], [1, 1]])
    confusion = pixel_confusion(np.zeros_like(truth), truth, num_classes=2)
    summary = evaluate_segmentation(confusion, ["spot"]).summary
    assert summary["mean_iou_foreground"] == 0.0
    assert summary["mean_iou"] == pytest.approx(0.25 / 2)  # background IoU 1/4, spot 0


def test_recall_at_k_leave_one_out():
    embeddings = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.8, 0.6]])
    labels = np.array([0, 0, 1, 1, 1])
    result = recall_at_k(embeddings, labels, ks=(1, 5))
    # items 0-3 find their pair first; item 4 is closest to item 1 (cos 0.86, label 0): one miss
    assert result["recall_at_1"] == pytest.approx(4 / 5)
    # with every other item as a neighbour each query finds a match
    assert result["recall_at_5"] == pytest.approx(1.0)


def test_anomaly_auroc_and_threshold():
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    labels = np.array([0, 0, 0, 1, 1])
    maps = np.zeros((5, 2, 2))
    masks = np.zeros((5, 2, 2))
    maps[3, 0, 0] = masks[3, 0, 0] = 1
    result = evaluate_anomaly(scores, labels, maps, masks)
    assert result.summary["image_auroc"] == pytest.approx(1.0)
    assert result.summary["pixel_auroc"] == pytest.approx(1.0)
    assert result.threshold == pytest.approx(0.55)
    assert best_f1_threshold(np.array([0.2, 0.6, 0.4]), np.array([0, 1, 1])) == pytest.approx(0.3)


def test_every_reported_metric_has_a_definition_for_the_model_card():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8]])
    summaries = [
        evaluate_classification(probabilities, np.array([0, 1]), ["a", "b"], multi_label=False).summary,
        evaluate_detection([{"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0)}],
                           [{"boxes": np.array([[0, 0, 1, 1]]), "labels": np.array([0])}], ["a"], score_threshold=0.5).summary,
        evaluate_segmentation(pixel_confusion(np.zeros((2, 2)), np.ones((2, 2)), 2), ["a"]).summary,
        recall_at_k(np.eye(3), np.array([0, 0, 1])),
        evaluate_anomaly(np.array([0.1, 0.9]), np.array([0, 1]), np.zeros((2, 2, 2)), np.ones((2, 2, 2))).summary,
    ]
    for summary in summaries:
        assert set(definitions_of(summary)) == set(summary)
