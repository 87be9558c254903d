"""visual-segmenter: a concept per pixel (0 = background), evaluated by IoU and Dice."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from deeptrain_api import catalog

from ..metrics.segmentation import evaluate_segmentation, pixel_confusion
from ..plots import MAX_SAMPLES, plot_masks
from .base import Evaluation, ModelSpec, Task, display_images

# Colours of the saved masks: background black, then one distinct colour per concept.
_PALETTE = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                     [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]], dtype=np.uint8)


class SegmenterTask(Task):
    model_type = catalog.VISUAL_SEGMENTER

    def collect(self, model: nn.Module, batch: Any, spec: ModelSpec) -> dict[str, Any]:
        images, masks, at_original_size = batch  # validation batches: see data.torch_datasets
        logits = model(images)  # [B, K+1, S, S]
        predicted = model.predict(logits)["masks"]
        num_classes = model.num_classes + 1
        # Logits resized to each image's own size before the arg-max: pixels are counted where users see them.
        confusion = sum(pixel_confusion(
            F.interpolate(logits[i : i + 1], size=tuple(truth.shape), mode="bilinear", align_corners=False)
            .argmax(dim=1)[0].cpu().numpy(), truth.cpu().numpy(), num_classes)
            for i, truth in enumerate(at_original_size))
        return {
            # Summing confusion matrices keeps evaluation memory independent of the validation set's size.
            "confusion": confusion,
            "images": display_images(images, MAX_SAMPLES),
            "truths": list(masks[:MAX_SAMPLES].cpu().numpy()),
            "predicted": list(predicted[:MAX_SAMPLES].cpu().numpy()),
        }

    def evaluate(self, collected: Sequence[dict[str, Any]], spec: ModelSpec) -> Evaluation:
        confusion = sum(batch["confusion"] for batch in collected)
        result = evaluate_segmentation(confusion, spec.concepts)
        samples = {key: [item for batch in collected for item in batch[key]][:MAX_SAMPLES]
                   for key in ("images", "truths", "predicted")}

        def plot(folder: Path) -> None:
            plot_masks(samples["images"], samples["truths"], samples["predicted"], len(spec.concepts) + 1,
                       folder / "sample_masks.png")

        return Evaluation(summary=result.summary, details=result.details(), plot=plot)

    def predictions(self, model: nn.Module, inputs: Tensor, spec: ModelSpec, inference: dict[str, Any]) -> list[dict[str, Any]]:
        results = []
        for mask in model.predict(model(inputs))["masks"].cpu().numpy():
            counts = np.bincount(mask.ravel(), minlength=len(spec.concepts) + 1)
            regions = [{"concept": concept, "pixels": int(counts[index]), "fraction": round(float(counts[index] / mask.size), 5)}
                       for index, concept in enumerate(spec.concepts, start=1) if counts[index]]
            results.append({"regions": regions, "_mask": mask})
        return results

    def save_visualisation(self, image: Image.Image, prediction: dict[str, Any], model: nn.Module, inputs: Tensor,
                           spec: ModelSpec, path: Path) -> Path | None:
        mask = prediction["_mask"]
        colours = _PALETTE[np.minimum(mask, len(_PALETTE) - 1)]
        target = path.with_suffix(".mask.png")
        Image.fromarray(colours).resize(image.size, Image.Resampling.NEAREST).save(target)
        return target
