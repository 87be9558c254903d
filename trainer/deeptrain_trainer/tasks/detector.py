"""visual-detector: boxes with concepts, evaluated by COCO mAP.

mAP ranks every detection the model makes (up to 100 per image), as COCO does, so it does not move
with detection_score_threshold and compares with published results; precision and recall of the
boxes above the threshold (what prediction returns) are reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import Tensor, nn

from deeptrain_api import catalog

from ..metrics.detection import MAX_DETECTIONS, RECALL_LEVELS, evaluate_detection
from ..plots import draw_boxes, plot_pr_curves
from .base import Evaluation, ModelSpec, Task, to_numpy

DEFAULT_SCORE_THRESHOLD = 0.3


def score_threshold(hyperparameters: dict[str, Any]) -> float:
    return float(hyperparameters.get("detection_score_threshold", DEFAULT_SCORE_THRESHOLD))


class DetectorTask(Task):
    model_type = catalog.VISUAL_DETECTOR

    def collect(self, model: nn.Module, batch: Any, spec: ModelSpec) -> dict[str, Any]:
        images, targets = batch
        detections = model.predict(model(images), score_threshold=0.0, max_detections=MAX_DETECTIONS)
        return {
            "predictions": [{key: to_numpy(value) for key, value in found.items()} for found in detections],
            "truths": [{key: value.cpu().numpy() for key, value in target.items()} for target in targets],
        }

    def evaluate(self, collected: Sequence[dict[str, Any]], spec: ModelSpec) -> Evaluation:
        predictions = [found for batch in collected for found in batch["predictions"]]
        truths = [truth for batch in collected for truth in batch["truths"]]
        result = evaluate_detection(predictions, truths, spec.concepts, score_threshold(spec.hyperparameters))

        def plot(folder: Path) -> None:
            plot_pr_curves(result.pr_curves, RECALL_LEVELS, folder / "precision_recall.png")

        return Evaluation(summary=result.summary, details=result.details(),
                          inference={"detection_score_threshold": score_threshold(spec.hyperparameters)}, plot=plot)

    def predictions(self, model: nn.Module, inputs: Tensor, spec: ModelSpec, inference: dict[str, Any]) -> list[dict[str, Any]]:
        threshold = float(inference.get("detection_score_threshold", score_threshold(spec.hyperparameters)))
        size = float(inputs.shape[-1])
        results = []
        for found in model.predict(model(inputs), score_threshold=threshold):
            regions = []
            for (x1, y1, x2, y2), score, label in zip(to_numpy(found["boxes"]), to_numpy(found["scores"]),
                                                     found["labels"].tolist(), strict=True):
                box = {"top_row": y1 / size, "left_col": x1 / size, "bottom_row": y2 / size, "right_col": x2 / size}
                regions.append({"box": {side: round(float(value), 5) for side, value in box.items()},
                                "concept": spec.concepts[label], "score": round(float(score), 5)})
            results.append({"regions": regions})
        return results

    def save_visualisation(self, image: Image.Image, prediction: dict[str, Any], model: nn.Module, inputs: Tensor,
                           spec: ModelSpec, path: Path) -> Path | None:
        width, height = image.size
        boxes = [(r["box"]["left_col"] * width, r["box"]["top_row"] * height,
                  r["box"]["right_col"] * width, r["box"]["bottom_row"] * height) for r in prediction["regions"]]
        captions = [f"{r['concept']} {r['score']:.2f}" for r in prediction["regions"]]
        target = path.with_suffix(".boxes.png")
        draw_boxes(np.asarray(image), boxes, captions, target)
        return target
