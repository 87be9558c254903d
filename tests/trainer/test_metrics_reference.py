"""The trainer's metrics equal the reference implementations users compare with, on the same predictions:
pycocotools' COCOeval for detection, scikit-learn for classification and segmentation."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from sklearn.metrics import jaccard_score, precision_recall_fscore_support

from deeptrain_trainer.metrics.classification import evaluate_classification
from deeptrain_trainer.metrics.detection import evaluate_detection
from deeptrain_trainer.metrics.segmentation import evaluate_segmentation, pixel_confusion

pycocotools = pytest.importorskip("pycocotools")  # a dev dependency; the trainer never imports it
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

NUM_CLASSES = 3


def synthetic_detections(seed: int, num_images: int = 40) -> tuple[list[dict], list[dict]]:
    """Ground truth with crowd regions, and detections: jittered copies of the truth (some loose, some with
    the wrong class), boxes inside crowds, pure false positives, and one image with 130 detections."""
    rng = np.random.default_rng(seed)
    truths, predictions = [], []
    for image in range(num_images):
        count = int(rng.integers(0, 6))
        corners = rng.uniform(0, 150, size=(count, 2))
        sizes = rng.uniform(8, 80, size=(count, 2))
        boxes = np.concatenate([corners, corners + sizes], axis=1)
        labels = rng.integers(0, NUM_CLASSES, size=count)
        crowd = rng.random(count) < 0.15
        found_boxes, found_labels = [], []
        for box, label in zip(boxes, labels, strict=True):
            for _ in range(int(rng.integers(0, 3))):  # duplicates, each jittered by up to 30% of the size
                jitter = rng.normal(0, 0.12, size=4) * np.tile(box[2:] - box[:2], 2)
                found_boxes.append(box + jitter)
                found_labels.append(label if rng.random() > 0.1 else (label + 1) % NUM_CLASSES)
        for _ in range(int(rng.integers(0, 4))):  # false positives anywhere
            corner = rng.uniform(0, 150, size=2)
            found_boxes.append(np.concatenate([corner, corner + rng.uniform(8, 80, size=2)]))
            found_labels.append(int(rng.integers(0, NUM_CLASSES)))
        if image == 0:  # more than maxDets=100 of one class: only the best 100 may count
            for _ in range(130):
                corner = rng.uniform(0, 150, size=2)
                found_boxes.append(np.concatenate([corner, corner + rng.uniform(8, 80, size=2)]))
                found_labels.append(0)
        truths.append({"boxes": boxes.reshape(-1, 4), "labels": labels, "iscrowd": crowd})
        predictions.append({"boxes": np.array(found_boxes).reshape(-1, 4), "labels": np.array(found_labels, dtype=np.int64),
                            "scores": rng.random(len(found_boxes))})
    return predictions, truths


def coco_eval(predictions: list[dict], truths: list[dict]) -> tuple[float, float]:
    """(mAP@[.5:.95], mAP@.5) from pycocotools on the same boxes."""
    def xywh(box: np.ndarray) -> list[float]:
        return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]

    images = [{"id": index + 1, "width": 300, "height": 300, "file_name": f"{index}.png"} for index in range(len(truths))]
    annotations, results = [], []
    for index, truth in enumerate(truths):
        for box, label, crowd in zip(truth["boxes"], truth["labels"], truth["iscrowd"], strict=True):
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": int(label) + 1,
                                "bbox": xywh(box), "area": float((box[2] - box[0]) * (box[3] - box[1])),
                                "iscrowd": int(crowd)})
    for index, prediction in enumerate(predictions):
        for box, label, score in zip(prediction["boxes"], prediction["labels"], prediction["scores"], strict=True):
            results.append({"image_id": index + 1, "category_id": int(label) + 1, "bbox": xywh(box), "score": float(score)})
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO()
        ground_truth.dataset = {"images": images, "annotations": annotations,
                                "categories": [{"id": c + 1, "name": str(c)} for c in range(NUM_CLASSES)]}
        ground_truth.createIndex()
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[0]), float(evaluation.stats[1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detection_map_equals_cocoeval_over_all_detections_with_crowds(seed):
    predictions, truths = synthetic_detections(seed)
    assert any(truth["iscrowd"].any() for truth in truths)
    reference_range, reference_50 = coco_eval(predictions, truths)
    summary = evaluate_detection(predictions, truths, [str(c) for c in range(NUM_CLASSES)], score_threshold=0.5).summary
    assert summary["mean_avg_precision_iou_50"] == pytest.approx(reference_50, abs=1e-9)
    assert summary["mean_avg_precision_iou_range"] == pytest.approx(reference_range, abs=1e-9)
    # The score threshold changes only the thresholded figures, never mAP.
    other = evaluate_detection(predictions, truths, [str(c) for c in range(NUM_CLASSES)], score_threshold=0.9).summary
    assert other["mean_avg_precision_iou_50"] == summary["mean_avg_precision_iou_50"]
    assert other["recall_at_score_threshold"] < summary["recall_at_score_threshold"]


def test_crowd_boxes_are_not_truth_and_detections_on_them_are_ignored():
    truth = {"boxes": np.array([[0, 0, 10, 10], [50, 50, 150, 150]]), "labels": np.array([0, 0]),
             "iscrowd": np.array([False, True])}
    # Two detections inside the crowd region score highest: neither false nor true positives.
    prediction = {"boxes": np.array([[60, 60, 80, 80], [100, 100, 120, 120], [0, 0, 10, 10]]),
                  "labels": np.array([0, 0, 0]), "scores": np.array([0.9, 0.8, 0.7])}
    result = evaluate_detection([prediction], [truth], ["thing"], score_threshold=0.5)
    assert result.summary["mean_avg_precision_iou_50"] == pytest.approx(1.0)
    assert result.per_concept["thing"]["total_labeled"] == 1
    assert result.summary["precision_at_score_threshold"] == pytest.approx(1.0)
    assert coco_eval([prediction], [truth])[1] == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_macro_precision_recall_f1_equal_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    concepts = [f"c{i}" for i in range(6)]
    # Concept 5 is never labelled but sometimes predicted; concept 4 is neither labelled nor predicted.
    targets = rng.integers(0, 4, size=60)
    probabilities = rng.random((60, 6))
    probabilities[:, 4] = 0.0
    probabilities[rng.random(60) < 0.1, 5] = 5.0
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    summary = evaluate_classification(probabilities, targets, concepts, multi_label=False).summary
    precision, recall, f1, _ = precision_recall_fscore_support(targets, probabilities.argmax(axis=1), average="macro",
                                                               zero_division=0)
    assert (summary["macro_avg_precision"], summary["macro_avg_recall"], summary["macro_avg_f1_score"]) == \
        pytest.approx((precision, recall, f1), abs=1e-12)


def test_multi_label_macro_metrics_equal_scikit_learn():
    rng = np.random.default_rng(3)
    multi_hot = (rng.random((50, 5)) < 0.3).astype(int)
    multi_hot[:, 4] = 0  # a concept without any labelled item still counts, as in scikit-learn
    probabilities = rng.random((50, 5))
    summary = evaluate_classification(probabilities, multi_hot, [f"c{i}" for i in range(5)], multi_label=True).summary
    precision, recall, f1, _ = precision_recall_fscore_support(multi_hot, (probabilities >= 0.5).astype(int),
                                                               average="macro", zero_division=0)
    assert (summary["macro_avg_precision"], summary["macro_avg_recall"], summary["macro_avg_f1_score"]) == \
        pytest.approx((precision, recall, f1), abs=1e-12)


def test_mean_iou_with_and_without_background_equals_scikit_learn():
    rng = np.random.default_rng(4)
    truth = rng.choice(5, size=(6, 40, 50), p=[0.6, 0.2, 0.1, 0.1, 0.0])  # concept 4 absent from the truth
    predicted = np.where(rng.random(truth.shape) < 0.7, truth, rng.choice(4, size=truth.shape))  # ... and predictions
    summary = evaluate_segmentation(pixel_confusion(predicted, truth, 5), ["a", "b", "c", "d"]).summary
    assert summary["mean_iou"] == pytest.approx(jaccard_score(truth.ravel(), predicted.ravel(), average="macro"), abs=1e-12)
    foreground = jaccard_score(truth.ravel(), predicted.ravel(), labels=[1, 2, 3], average="macro")
    assert summary["mean_iou_foreground"] == pytest.approx(foreground, abs=1e-12)
