"""What each reported metric means, in words: model.json carries these beside the numbers, so a reader
knows which definition a figure uses before comparing it with another."""

from __future__ import annotations

from collections.abc import Iterable

from .detection import MAX_DETECTIONS

METRIC_DEFINITIONS: dict[str, str] = {
    "accuracy": "top-1 accuracy when every item has one concept; exact set match when items have several",
    "macro_avg_precision": "mean precision over concepts labelled or predicted at least once (all concepts with "
                           "logreg), 0 where nothing is predicted; scikit-learn average='macro', zero_division=0",
    "macro_avg_recall": "mean recall over the same concepts as macro_avg_precision; scikit-learn average='macro', "
                        "zero_division=0",
    "macro_avg_f1_score": "mean F1 over the same concepts as macro_avg_precision; scikit-learn average='macro', "
                          "zero_division=0",
    "macro_avg_roc_auc": "mean one-vs-rest ROC AUC over concepts with both labelled and unlabelled items",
    "mean_avg_precision_iou_50": f"COCO AP at IoU 0.5 over all detections ({MAX_DETECTIONS} per image and class, "
                                 "no score threshold), crowd boxes ignored, 101-point interpolation, mean over "
                                 "concepts with ground truth (COCOeval's AP50)",
    "mean_avg_precision_iou_range": "COCO AP averaged over IoU 0.50:0.05:0.95, otherwise as "
                                    "mean_avg_precision_iou_50 (COCOeval's AP)",
    "precision_at_score_threshold": "share of the boxes scoring above detection_score_threshold that match an "
                                    "unmatched ground-truth box of their concept at IoU 0.5, pooled over concepts",
    "recall_at_score_threshold": "share of ground-truth boxes (crowds excluded) matched at IoU 0.5 by a box "
                                 "scoring above detection_score_threshold, pooled over concepts",
    "mean_iou": "mean IoU over background and concepts present in the truth or the prediction, pixels counted at "
                "each image's original size (scikit-learn jaccard_score average='macro' on the flattened masks)",
    "mean_iou_foreground": "mean_iou over the concepts only (background left out)",
    "dice": "mean Dice over the concepts present in the truth or the prediction, at the original image size",
    "background_iou": "IoU of the background class at the original image size",
    "pixel_accuracy": "share of pixels whose class is right, at the original image size",
    "recall_at_1": "share of validation items whose nearest other item (cosine) shares a concept (leave-one-out)",
    "recall_at_5": "share of validation items with a concept-sharing item among their 5 nearest (leave-one-out)",
    "image_auroc": "ROC AUC of the image anomaly score, anomalous vs normal validation images",
    "pixel_auroc": "ROC AUC of the heatmap over the pixels of all validation images, against the defect masks",
}


def definitions_of(metrics: Iterable[str]) -> dict[str, str]:
    """The definition of each of `metrics` (every reported metric has one)."""
    return {name: METRIC_DEFINITIONS[name] for name in metrics}
