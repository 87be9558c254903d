"""What every model type shares: building the model and datasets, a training step, sharded evaluation.

A task is the glue between the generic training loop (engine.py) and one model type: it knows
the batch layout, how a forward pass turns into a loss, what to collect from the validation set,
which metrics and plots come out of it, and how predictions look to a user.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from deeptrain_api.trainer_contract import TrainerConfig

from ..distributed import DistributedContext
from ..optim import OptimizerKind


@dataclass
class Evaluation:
    """One evaluation of the validation set."""

    summary: dict[str, float]  # the metrics status and model.json show
    details: dict[str, Any] = field(default_factory=dict)  # per-concept metrics, confusion matrix, ...
    inference: dict[str, Any] = field(default_factory=dict)  # settings the predictor needs (thresholds)
    plot: Callable[[Path], None] | None = None  # writes this evaluation's plots into a folder


@dataclass(frozen=True)
class ModelSpec:
    """What rebuilds a model, at training time from the config and at inference from model.json."""

    model_type: str
    template: str
    concepts: list[str]
    image_size: int | None
    template_scale: dict[str, float]
    hyperparameters: dict[str, Any]
    vocab_size: int | None = None

    @classmethod
    def from_config(cls, config: TrainerConfig, concepts: list[str], vocab_size: int | None = None) -> ModelSpec:
        image_size = config.hyperparameters.get("image_size")
        return cls(model_type=config.modelType, template=config.template, concepts=list(concepts),
                   image_size=int(image_size) if image_size is not None else None,
                   template_scale=config.templateScale.model_dump(), hyperparameters=dict(config.hyperparameters),
                   vocab_size=vocab_size)


def to_device(value: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move a batch (tensors, lists and dicts of them) to `device`; images go channels-last on request."""
    if isinstance(value, Tensor):
        moved = value.to(device, non_blocking=True)
        if channels_last and moved.ndim == 4 and moved.is_floating_point():
            moved = moved.contiguous(memory_format=torch.channels_last)
        return moved
    if isinstance(value, list | tuple):
        return type(value)(to_device(item, device, channels_last) for item in value)
    if isinstance(value, dict):
        return {key: to_device(item, device, channels_last) for key, item in value.items()}
    return value


def to_numpy(tensor: Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


class Task:
    """Defaults fit the image classifiers; each model type overrides what differs."""

    model_type: ClassVar[str]
    input_kind: ClassVar[str] = "image"
    optimizer: ClassVar[OptimizerKind] = "sgd"

    def build_model(self, spec: ModelSpec) -> nn.Module:
        from deeptrain_api.trainer_contract import TemplateScale

        from ..models.registry import build_model

        return build_model(spec.model_type, spec.template, num_classes=len(spec.concepts),
                           image_size=spec.image_size or 0, scale=TemplateScale(**spec.template_scale),
                           hyperparameters=spec.hyperparameters, vocab_size=spec.vocab_size)

    def trains_by_gradient(self, model: nn.Module) -> bool:
        """False for models fitted in one pass over the training data (PatchCore's memory bank)."""
        return True

    def input_spec(self, spec: ModelSpec, tokenizer: Any) -> dict[str, Any]:
        """model.json's `input`: what a predictor must do to an input before the forward pass."""
        if self.input_kind == "text":
            return {"kind": "text", "tokenizer": tokenizer.to_dict()}
        from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD

        return {"kind": "image", "image_size": spec.image_size, "mean": [round(float(v), 6) for v in IMAGENET_MEAN],
                "std": [round(float(v), 6) for v in IMAGENET_STD]}

    def training_loss(self, model: nn.Module, loss_owner: nn.Module, batch: Any) -> tuple[Tensor, dict[str, float]]:
        """Forward through `model` (DDP-wrapped when distributed) and the loss of the bare model."""
        inputs, targets = batch
        return loss_owner.loss(model(inputs), targets)

    def collect(self, model: nn.Module, batch: Any, spec: ModelSpec) -> dict[str, Any]:
        """What evaluation needs from one validation batch, as NumPy (gathered from every rank)."""
        raise NotImplementedError

    def evaluate(self, collected: Sequence[dict[str, Any]], spec: ModelSpec) -> Evaluation:
        """Metrics over every rank's collected batches (runs on rank 0 only)."""
        raise NotImplementedError

    def fit_without_gradients(self, model: nn.Module, batches: Any, ctx: DistributedContext) -> None:
        raise NotImplementedError

    def predictions(self, model: nn.Module, inputs: Tensor, spec: ModelSpec, inference: dict[str, Any]) -> list[dict[str, Any]]:
        """User-facing predictions for a batch of preprocessed inputs (keys starting with "_" are for
        `save_visualisation` only and are dropped before the predictions are shown)."""
        raise NotImplementedError

    def save_visualisation(self, image: Image.Image, prediction: dict[str, Any], model: nn.Module, inputs: Tensor,
                           spec: ModelSpec, path: Path) -> Path | None:
        """Write what `deeptrain predict --save` shows for one input; None when the type has nothing to draw."""
        return None


def stack(collected: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    return np.concatenate([batch[key] for batch in collected if len(batch[key])], axis=0) if collected else np.zeros(0)


def display_images(images: Tensor, limit: int) -> list[np.ndarray]:
    """Up to `limit` normalised image tensors [B, 3, S, S] back to uint8 HWC arrays for plots."""
    from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD

    pixels = to_numpy(images[:limit]).transpose(0, 2, 3, 1) * IMAGENET_STD + IMAGENET_MEAN
    return list((pixels.clip(0, 1) * 255).astype(np.uint8))
