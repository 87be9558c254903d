"""One task per model type: the glue between the training loop and that type's model, data and metrics."""

from __future__ import annotations

from deeptrain_api import catalog

from .base import Task


def task_for(model_type: str) -> Task:
    # Imported here so that a type's dependencies load only when that type trains.
    if model_type == catalog.VISUAL_CLASSIFIER:
        from .classifier import ClassifierTask

        return ClassifierTask()
    if model_type == catalog.TEXT_CLASSIFIER:
        from .text import TextClassifierTask

        return TextClassifierTask()
    if model_type == catalog.VISUAL_EMBEDDER:
        from .embedder import EmbedderTask

        return EmbedderTask()
    if model_type == catalog.VISUAL_DETECTOR:
        from .detector import DetectorTask

        return DetectorTask()
    if model_type == catalog.VISUAL_SEGMENTER:
        from .segmenter import SegmenterTask

        return SegmenterTask()
    if model_type == catalog.VISUAL_ANOMALY_HEATMAP:
        from .anomaly import AnomalyTask

        return AnomalyTask()
    raise ValueError(f"no task for model type {model_type!r}")
