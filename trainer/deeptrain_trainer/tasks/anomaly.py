"""visual-anomaly-heatmap: an anomaly score and heatmap per image, learnt from normal images only.

PatchCore is fitted in one pass (its memory bank); Reconstruction trains by gradient like the
others. The score threshold that calls an image anomalous is chosen on the validation set (best
F1) and stored in model.json for the predictor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from PIL import Image
from torch import Tensor, nn

from deeptrain_api import catalog

from ..distributed import DistributedContext
from ..metrics.anomaly import evaluate_anomaly
from ..plots import MAX_SAMPLES, plot_heatmaps
from .base import Evaluation, ModelSpec, Task, display_images, stack, to_numpy


class AnomalyTask(Task):
    model_type = catalog.VISUAL_ANOMALY_HEATMAP

    def trains_by_gradient(self, model: nn.Module) -> bool:
        return bool(getattr(model, "needs_gradient_training", True))

    def training_loss(self, model: nn.Module, loss_owner: nn.Module, batch: Any) -> tuple[Tensor, dict[str, float]]:
        images = batch[0]  # normal images only: the labels and masks carry nothing to learn from
        return loss_owner.loss(model(images), None)

    def fit_without_gradients(self, model: nn.Module, batches: Iterable[Any], ctx: DistributedContext) -> None:
        model.fit_memory_bank(batch[0] for batch in batches)

    def collect(self, model: nn.Module, batch: Any, spec: ModelSpec) -> dict[str, Any]:
        images, labels, masks = batch
        found = model.predict(model(images))
        maps = found["anomaly_maps"][:, 0]
        return {
            "scores": to_numpy(found["scores"]),
            "labels": labels.cpu().numpy(),
            "maps": to_numpy(maps).astype(np.float16),  # half precision: maps are the bulk of what is gathered
            "masks": masks.cpu().numpy().astype(bool),
            "images": display_images(images, MAX_SAMPLES),
        }

    def evaluate(self, collected: Sequence[dict[str, Any]], spec: ModelSpec) -> Evaluation:
        scores, labels = stack(collected, "scores"), stack(collected, "labels")
        result = evaluate_anomaly(scores, labels, stack(collected, "maps").astype(np.float32), stack(collected, "masks"))
        # Plot normal and anomalous examples side by side: the first few of each.
        kept = [(image, heatmap, score, label) for batch in collected
                for image, heatmap, score, label in zip(batch["images"], batch["maps"], batch["scores"], batch["labels"],
                                                        strict=False)]
        normal = [item for item in kept if not item[3]][: MAX_SAMPLES // 2]
        anomalous = [item for item in kept if item[3]][: MAX_SAMPLES - len(normal)]
        samples = normal + anomalous

        def plot(folder: Path) -> None:
            if samples:
                images, maps, sample_scores, sample_labels = zip(*samples, strict=True)
                plot_heatmaps(images, [m.astype(np.float32) for m in maps], sample_scores, sample_labels,
                              folder / "sample_heatmaps.png")

        return Evaluation(summary=result.summary, inference={"anomaly_threshold": result.threshold}, plot=plot)

    def predictions(self, model: nn.Module, inputs: Tensor, spec: ModelSpec, inference: dict[str, Any]) -> list[dict[str, Any]]:
        found = model.predict(model(inputs))
        threshold = float(inference.get("anomaly_threshold", float("inf")))
        return [{"score": round(float(score), 6), "anomalous": bool(score >= threshold), "_map": heatmap}
                for score, heatmap in zip(to_numpy(found["scores"]), to_numpy(found["anomaly_maps"][:, 0]), strict=True)]

    def save_visualisation(self, image: Image.Image, prediction: dict[str, Any], model: nn.Module, inputs: Tensor,
                           spec: ModelSpec, path: Path) -> Path | None:
        heatmap = prediction["_map"]
        span = float(heatmap.max() - heatmap.min()) or 1.0
        coloured = matplotlib.colormaps["jet"]((heatmap - heatmap.min()) / span)[..., :3]
        overlay = Image.fromarray((coloured * 255).astype(np.uint8)).resize(image.size, Image.Resampling.BILINEAR)
        target = path.with_suffix(".heatmap.png")
        Image.blend(image.convert("RGB"), overlay, alpha=0.5).save(target)
        return target
