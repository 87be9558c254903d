"""visual-classifier: concepts per image, softmax or (logreg) sigmoid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from deeptrain_api import catalog

from ..metrics.classification import evaluate_classification
from ..plots import plot_confusion_matrix
from .base import Evaluation, ModelSpec, Task, stack, to_numpy

TOP_CONCEPTS = 5


class ClassifierTask(Task):
    model_type = catalog.VISUAL_CLASSIFIER

    def collect(self, model: nn.Module, batch: Any, spec: ModelSpec) -> dict[str, Any]:
        inputs, targets = batch
        return {"probabilities": to_numpy(model.predict(model(inputs))), "targets": targets.cpu().numpy()}

    def evaluate(self, collected: Sequence[dict[str, Any]], spec: ModelSpec) -> Evaluation:
        result = evaluate_classification(stack(collected, "probabilities"), stack(collected, "targets"), spec.concepts,
                                         multi_label=bool(spec.hyperparameters.get("logreg", False)))

        def plot(folder: Path) -> None:
            plot_confusion_matrix(result.confusion_matrix, spec.concepts, folder / "confusion_matrix.png")

        return Evaluation(summary=result.summary, details=result.details(), plot=plot)

    def predictions(self, model: nn.Module, inputs: Tensor, spec: ModelSpec, inference: dict[str, Any]) -> list[dict[str, Any]]:
        return [top_concepts(row, spec.concepts) for row in to_numpy(model.predict(model(inputs)))]


def top_concepts(probabilities: np.ndarray, concepts: list[str], count: int = TOP_CONCEPTS) -> dict[str, Any]:
    order = np.argsort(-probabilities, kind="stable")[:count]
    return {"concepts": [{"id": concepts[index], "value": round(float(probabilities[index]), 6)} for index in order]}
