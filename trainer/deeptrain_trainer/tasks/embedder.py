"""visual-embedder: unit-norm embeddings, evaluated by leave-one-out nearest-neighbour recall."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from deeptrain_api import catalog

from ..metrics.retrieval import recall_at_k
from ..plots import plot_embeddings
from .base import Evaluation, ModelSpec, Task, stack, to_numpy


class EmbedderTask(Task):
    model_type = catalog.VISUAL_EMBEDDER

    def collect(self, model: nn.Module, batch: Any, spec: ModelSpec) -> dict[str, Any]:
        inputs, targets = batch
        return {"embeddings": to_numpy(model(inputs)), "targets": targets.cpu().numpy()}

    def evaluate(self, collected: Sequence[dict[str, Any]], spec: ModelSpec) -> Evaluation:
        embeddings, targets = stack(collected, "embeddings"), stack(collected, "targets")
        summary = recall_at_k(embeddings, targets)
        single_labels = targets if targets.ndim == 1 else np.argmax(targets, axis=1)

        def plot(folder: Path) -> None:
            plot_embeddings(embeddings, single_labels, spec.concepts, folder / "embeddings_pca.png")

        return Evaluation(summary=summary, plot=plot)

    def predictions(self, model: nn.Module, inputs: Tensor, spec: ModelSpec, inference: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"embedding": [round(float(value), 6) for value in row]} for row in to_numpy(model(inputs))]
