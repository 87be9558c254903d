"""The one source of truth for model types, templates and hyperparameters.

Torch-free on purpose: the CRD schema generator, the operator's validation and the trainer's
config parsing all import this module, and the operator image ships without torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

VISUAL_CLASSIFIER = "visual-classifier"
VISUAL_DETECTOR = "visual-detector"
VISUAL_EMBEDDER = "visual-embedder"
VISUAL_SEGMENTER = "visual-segmenter"
VISUAL_ANOMALY_HEATMAP = "visual-anomaly-heatmap"
TEXT_CLASSIFIER = "text-classifier"

DATASET_FORMATS = ("imagefolder", "jsonl", "coco", "csv")
# Frames per second taken from each video of a dataset (spec.dataset.videoFrameRate), as the platform does.
DEFAULT_VIDEO_FRAME_RATE = 1.0
MAX_VIDEO_FRAME_RATE = 60.0

# After `init_epochs` at the base rate, the rate is multiplied by this factor every `step_epochs`.
# The platform does not publish its factor; halving keeps the documented defaults
# (init 25, step 7, 65 epochs -> 6 decays, 1/64 of the base rate at the end) useful.
LR_DECAY_FACTOR = 0.5

# The three mutually exclusive ways of giving the learning rate.
LEARNING_RATE_KEYS = ("lrate", "per_item_lrate", "per_128_lrate")
DEFAULT_PER_ITEM_LRATE = 7.8125e-05
# Large enough to leave healthy steps alone, small enough to stop one bad batch from wrecking the weights.
DEFAULT_GRADIENT_CLIP_NORM = 10.0
NON_FINITE_STEPS_LIMIT = 20

HyperparameterType = Literal["boolean", "integer", "number"]


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    type: HyperparameterType
    description: str
    model_types: frozenset[str]
    default: bool | int | float | None = None  # schema default, the same for every model type
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    multiple_of: int | None = None

    @property
    def schema_default(self) -> bool | int | float | None:
        """The default the CRD schema may carry: only one that is valid for every model type."""
        return self.default if self.model_types == ALL_MODEL_TYPES else None

    def range_text(self) -> str:
        if self.type == "boolean":
            return "true or false"
        low = "" if self.minimum is None else (f"> {self.minimum:g}" if self.exclusive_minimum else f">= {self.minimum:g}")
        high = "" if self.maximum is None else f"<= {self.maximum:g}"
        text = " and ".join(part for part in (low, high) if part) or "any value"
        if self.multiple_of:
            text += f", a multiple of {self.multiple_of}"
        return text

    def check(self, value: Any) -> str | None:
        """None when `value` is allowed, else why not (the caller names the field)."""
        if self.type == "boolean":
            return None if isinstance(value, bool) else "must be true or false"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a {self.type}"
        if self.type == "integer" and not float(value).is_integer():
            return "must be an integer"
        if not math.isfinite(value):
            return "must be finite"
        too_low = self.minimum is not None and (
            value <= self.minimum if self.exclusive_minimum else value < self.minimum
        )
        too_high = self.maximum is not None and value > self.maximum
        if too_low or too_high:
            return f"must be {self.range_text()} (got {value:g})"
        if self.multiple_of and int(value) % self.multiple_of:
            return f"must be {self.range_text()} (got {value:g})"
        return None


@dataclass(frozen=True)
class ModelType:
    name: str
    input: Literal["image", "text"]
    description: str
    templates: tuple[str, ...]
    primary_metric: str
    # Effective defaults that depend on the model type (the rest come from the schema defaults).
    defaults: Mapping[str, bool | int | float] = field(default_factory=dict)


_IMAGE_TYPES = frozenset({VISUAL_CLASSIFIER, VISUAL_DETECTOR, VISUAL_EMBEDDER, VISUAL_SEGMENTER, VISUAL_ANOMALY_HEATMAP})
ALL_MODEL_TYPES = _IMAGE_TYPES | {TEXT_CLASSIFIER}
_CLASSIFYING_TYPES = frozenset({VISUAL_CLASSIFIER, VISUAL_EMBEDDER, TEXT_CLASSIFIER})
_DETECTOR = frozenset({VISUAL_DETECTOR})

HYPERPARAMETERS: dict[str, Hyperparameter] = {
    hp.name: hp
    for hp in (
        Hyperparameter(
            "average_horizontal_flips", "boolean",
            "Augment by flipping each training image (and its boxes or masks) horizontally with probability 0.5.",
            _IMAGE_TYPES, default=True),
        Hyperparameter(
            "base_gradient_multiplier", "number",
            "Multiplier on the learning rate of the backbone (the pre-initialised base); heads use the full rate.",
            ALL_MODEL_TYPES, default=1.0, minimum=0.0, maximum=10.0),
        Hyperparameter(
            "batch_size", "integer",
            "Items per optimizer step, summed over all processes (the global batch).",
            ALL_MODEL_TYPES, minimum=1, maximum=4096),
        Hyperparameter(
            "detection_score_threshold", "number",
            "Only boxes scoring above this threshold are returned at inference.",
            _DETECTOR, default=0.3, minimum=0.0, maximum=1.0),
        Hyperparameter(
            "gradient_clip_norm", "number",
            "Clip the global gradient norm to this value before each update (0: no clipping). A step whose "
            f"gradient is not finite is skipped; {NON_FINITE_STEPS_LIMIT} in a row fail the job (NonFiniteLoss).",
            ALL_MODEL_TYPES, default=DEFAULT_GRADIENT_CLIP_NORM, minimum=0.0, maximum=1e6),
        Hyperparameter(
            "image_size", "integer",
            "Side in pixels of the square images the model trains and predicts on.",
            _IMAGE_TYPES, minimum=32, maximum=1024, multiple_of=16),
        Hyperparameter(
            "init_epochs", "integer",
            "Epochs at the initial learning rate before the first step decay.",
            ALL_MODEL_TYPES, default=25, minimum=1, maximum=1000),
        Hyperparameter(
            "logreg", "boolean",
            "true: independent sigmoid outputs (logistic regression, several concepts per item); "
            "false: softmax over mutually exclusive concepts.",
            _CLASSIFYING_TYPES, default=False),
        Hyperparameter(
            "lrate", "number",
            "Learning rate per optimizer step. Give at most one of lrate, per_item_lrate, per_128_lrate.",
            ALL_MODEL_TYPES, minimum=0.0, exclusive_minimum=True, maximum=10.0),
        Hyperparameter(
            "num_epochs", "integer",
            "Total number of epochs.",
            ALL_MODEL_TYPES, minimum=1, maximum=1000),
        Hyperparameter(
            "num_items_per_epoch", "integer",
            "Training items per epoch; 0 means the size of the training set.",
            ALL_MODEL_TYPES, default=0, minimum=0, maximum=100_000_000),
        Hyperparameter(
            "per_128_lrate", "number",
            "Learning rate per 128 items: lrate = per_128_lrate * batch_size / 128.",
            ALL_MODEL_TYPES, minimum=0.0, exclusive_minimum=True, maximum=10.0),
        Hyperparameter(
            "per_item_lrate", "number",
            f"Learning rate per item: lrate = batch_size * per_item_lrate (default {DEFAULT_PER_ITEM_LRATE:g} "
            "when no learning rate is given).",
            ALL_MODEL_TYPES, minimum=0.0, exclusive_minimum=True, maximum=1.0),
        Hyperparameter(
            "step_epochs", "integer",
            f"Epochs between step decays of the learning rate (factor {LR_DECAY_FACTOR:g}).",
            ALL_MODEL_TYPES, default=7, minimum=1, maximum=1000),
        Hyperparameter(
            "sync_batch_norm_below", "integer",
            "With more than one GPU process, BatchNorm computes its statistics over the global batch "
            "(SyncBatchNorm) when each process has fewer than this many items per step; 0: never.",
            _IMAGE_TYPES, default=16, minimum=0, maximum=4096),
        Hyperparameter(
            "test_freq", "integer",
            "Evaluate on the validation set every this many epochs (and always after the last).",
            ALL_MODEL_TYPES, default=1, minimum=1, maximum=1000),
        Hyperparameter(
            "use_perclass_regression", "boolean",
            "true: one box regressor per class at each anchor; false: one shared regressor per anchor.",
            _DETECTOR, default=False),
    )
}

MODEL_TYPES: dict[str, ModelType] = {
    mt.name: mt
    for mt in (
        ModelType(
            VISUAL_CLASSIFIER, "image", "Image -> concepts (softmax, or sigmoid when logreg).",
            ("InceptionV2", "InceptionBatchNorm", "InceptionResnetV2", "ResNext"), "accuracy",
            {"batch_size": 64, "image_size": 256, "num_epochs": 65}),
        ModelType(
            VISUAL_DETECTOR, "image", "Image -> boxes with concepts (one-stage, anchor-based, focal loss).",
            ("InceptionV2", "InceptionV4"), "mean_avg_precision_iou_50",
            {"batch_size": 16, "image_size": 320, "num_epochs": 65}),
        ModelType(
            VISUAL_EMBEDDER, "image", "Image -> L2-normalised embedding (metric learning on concepts).",
            ("InceptionBatchNorm", "ResNext"), "recall_at_1",
            {"batch_size": 64, "image_size": 256, "num_epochs": 65}),
        ModelType(
            VISUAL_SEGMENTER, "image", "Image -> per-pixel concept masks.",
            ("ResNext", "InceptionBatchNorm"), "mean_iou",
            {"batch_size": 16, "image_size": 256, "num_epochs": 65}),
        ModelType(
            VISUAL_ANOMALY_HEATMAP, "image",
            "Image -> anomaly score and heatmap, trained on normal images only.",
            ("PatchCore", "Reconstruction"), "image_auroc",
            {"batch_size": 32, "image_size": 256, "num_epochs": 20}),
        ModelType(
            TEXT_CLASSIFIER, "text", "Text -> concepts (softmax, or sigmoid when logreg).",
            ("TextCNN", "Transformer"), "accuracy",
            {"batch_size": 64, "num_epochs": 30}),
    )
}


def model_type(name: str) -> ModelType:
    try:
        return MODEL_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown modelType {name!r}; use one of: {', '.join(MODEL_TYPES)}") from None


def applicable_hyperparameters(model_type_name: str) -> list[Hyperparameter]:
    return [hp for hp in HYPERPARAMETERS.values() if model_type_name in hp.model_types]


def check_hyperparameters(model_type_name: str, template: str, given: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every problem with (model type, template, hyperparameters), as (field path, message) pairs."""
    problems: list[tuple[str, str]] = []
    mt = MODEL_TYPES.get(model_type_name)
    if mt is None:
        return [("spec.modelType", f"unknown model type {model_type_name!r}; use one of: {', '.join(MODEL_TYPES)}")]
    if template not in mt.templates:
        problems.append(("spec.template", f"template {template!r} is not offered for {model_type_name}; "
                                          f"use one of: {', '.join(mt.templates)}"))
    for name, value in given.items():
        path = f"spec.hyperparameters.{name}"
        hp = HYPERPARAMETERS.get(name)
        if hp is None:
            problems.append((path, f"unknown hyperparameter; known: {', '.join(sorted(HYPERPARAMETERS))}"))
        elif model_type_name not in hp.model_types:
            problems.append((path, f"does not apply to {model_type_name}; remove it"))
        elif (why := hp.check(value)) is not None:
            problems.append((path, why))
    rates = [key for key in LEARNING_RATE_KEYS if key in given]
    if len(rates) > 1:
        problems.append(("spec.hyperparameters", f"give at most one of lrate, per_item_lrate, per_128_lrate (got {', '.join(rates)})"))
    return problems


def resolve_hyperparameters(model_type_name: str, given: Mapping[str, Any]) -> dict[str, bool | int | float]:
    """The effective hyperparameters the trainer uses: given values, then per-type, then schema defaults.

    The result always holds `lrate`, the per-step learning rate, computed from whichever of
    lrate / per_item_lrate / per_128_lrate was given (per_item_lrate's default when none was).
    """
    mt = model_type(model_type_name)
    resolved: dict[str, bool | int | float] = {}
    for hp in applicable_hyperparameters(model_type_name):
        if hp.name in given:
            value = given[hp.name]
        elif hp.name in mt.defaults:
            value = mt.defaults[hp.name]
        elif hp.default is not None:
            value = hp.default
        else:
            continue
        resolved[hp.name] = int(value) if hp.type == "integer" else value
    resolved["lrate"] = base_learning_rate(resolved)
    return resolved


def base_learning_rate(hp: Mapping[str, Any]) -> float:
    batch_size = int(hp["batch_size"])
    if "lrate" in hp:
        return float(hp["lrate"])
    if "per_128_lrate" in hp:
        return float(hp["per_128_lrate"]) * batch_size / 128
    return float(hp.get("per_item_lrate", DEFAULT_PER_ITEM_LRATE)) * batch_size


def learning_rate_at_epoch(hp: Mapping[str, Any], epoch: int) -> float:
    """Rate for 0-based `epoch`: constant for init_epochs, then x LR_DECAY_FACTOR every step_epochs."""
    init_epochs, step_epochs = int(hp["init_epochs"]), int(hp["step_epochs"])
    decays = 0 if epoch < init_epochs else 1 + (epoch - init_epochs) // step_epochs
    return base_learning_rate(hp) * LR_DECAY_FACTOR**decays
