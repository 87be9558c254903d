"""Sample DeepTrainingJobs for the operator's unit tests (builders, status, events)."""

from __future__ import annotations

import copy
from typing import Any

from deeptrain_api import DeepTrainingJob
from deeptrain_api.trainer_config import build_trainer_config

BASE_SPEC: dict[str, Any] = {
    "modelType": "visual-classifier",
    "template": "ResNext",
    "hyperparameters": {"batch_size": 64, "num_epochs": 2},
    "dataset": {"uri": "pvc://datasets/shoes", "format": "imagefolder"},
    "output": {"uri": "pvc://models/shoes"},
    "workers": 2,
}


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def make_job(spec: dict[str, Any] | None = None, *, name: str = "shoes", status: dict[str, Any] | None = None,
             generation: int = 1) -> DeepTrainingJob:
    body: dict[str, Any] = {
        "apiVersion": "deeptrain.dev/v1alpha1",
        "kind": "DeepTrainingJob",
        "metadata": {"name": name, "namespace": "team-a", "uid": "uid-shoes", "generation": generation,
                     "labels": {"team": "vision", "app.kubernetes.io/name": "not-ours"}},
        "spec": _merge(BASE_SPEC, spec or {}),
    }
    if status is not None:
        body["status"] = status
    return DeepTrainingJob.model_validate(body)


def config_of(job: DeepTrainingJob, base_model_uri: str | None = None):  # type: ignore[no-untyped-def]
    return build_trainer_config(job, base_model_uri=base_model_uri)
