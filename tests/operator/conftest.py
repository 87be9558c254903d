"""Fixtures of the operator's unit tests."""

from __future__ import annotations

import pytest
from operator_samples import make_job

from deeptrain_api import DeepTrainingJob
from deeptrain_operator.settings import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def job() -> DeepTrainingJob:
    return make_job()
