"""Fixtures for the video tests: untrained model directories of every visual type (no training needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deeptrain_api import catalog
from workflow.conftest import TEMPLATES, write_untrained_model

VISUAL_TEMPLATES = {**TEMPLATES, catalog.VISUAL_SEGMENTER: "ResNext", catalog.VISUAL_ANOMALY_HEATMAP: "Reconstruction"}


@pytest.fixture(scope="session")
def visual_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One freshly initialised model directory per visual model type, 32 px inputs (detector: threshold 0)."""
    root = tmp_path_factory.mktemp("video-models")
    models = {}
    for model_type in VISUAL_TEMPLATES:
        concepts = ["good", "scratch"] if model_type == catalog.VISUAL_ANOMALY_HEATMAP else ["circle", "square"]
        inference = {"detection_score_threshold": 0.0} if model_type == catalog.VISUAL_DETECTOR else None
        models[model_type] = write_untrained_model(root / model_type, model_type, concepts, image_size=32,
                                                   inference=inference, template=VISUAL_TEMPLATES[model_type])
    return models
