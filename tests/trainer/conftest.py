"""Fixtures for the trainer tests: trainer configs, a tiny image dataset, the example datasets."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from deeptrain_api import catalog
from deeptrain_api.trainer_contract import DatasetConfig, JobRef, TemplateScale, TrainerConfig

# The trainer tests share two cores with everything else on the machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

SMALL_SCALE = TemplateScale(width=0.25, depth=0.34)


def make_config(output: Path, dataset: Path, *, model_type: str = catalog.VISUAL_CLASSIFIER, template: str = "ResNext",
                dataset_format: str = "imagefolder", scale: TemplateScale = SMALL_SCALE,
                validation_fraction: float | None = 0.25, seed: int = 0, base_model: str | None = None,
                **hyperparameters: Any) -> TrainerConfig:
    return TrainerConfig(
        job=JobRef(name="test-job", namespace="tests"),
        modelType=model_type,
        template=template,
        templateScale=scale,
        hyperparameters=catalog.resolve_hyperparameters(model_type, hyperparameters),
        dataset=DatasetConfig(uri=str(dataset), format=dataset_format, validation_fraction=validation_fraction),
        outputUri=output.as_uri(),
        baseModelUri=base_model,
        seed=seed,
    )


@pytest.fixture(scope="session")
def trainer_config() -> Callable[..., TrainerConfig]:
    """`make_config` as a fixture, so test modules need not import this file."""
    return make_config


@pytest.fixture(scope="session")
def colour_squares(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """imagefolder: 24 reddish and 24 bluish 32 px images with noise; trivially separable."""
    root = tmp_path_factory.mktemp("colour-squares")
    rng = np.random.default_rng(0)
    for concept, channel in (("red", 0), ("blue", 2)):
        folder = root / concept
        folder.mkdir()
        for index in range(24):
            pixels = rng.integers(0, 90, size=(32, 32, 3), dtype=np.uint8)
            pixels[..., channel] = rng.integers(170, 255, size=(32, 32), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{index:02d}.png")
    return root


@pytest.fixture(scope="session")
def example_dataset(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The project's example datasets, each made once per test session."""
    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made:
            from deeptrain_trainer.datasets import make_dataset

            output = tmp_path_factory.mktemp(name.replace("/", "-")) / "data"
            make_dataset(name, output)
            made[name] = output
        return made[name]

    return make
