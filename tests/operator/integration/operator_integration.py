"""Shared pieces of the operator integration tests (a module of its own: test modules import it)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from harness import KubeApiError

API_VERSION = "deeptrain.dev/v1alpha1"
KIND = "DeepTrainingJob"


def job_manifest(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": {"team": "vision"}},
        "spec": {
            "modelType": "visual-classifier",
            "template": "ResNext",
            "hyperparameters": {"batch_size": 8, "num_epochs": 2},
            "dataset": {"uri": "pvc://datasets/shoes", "format": "imagefolder"},
            "output": {"uri": "pvc://models/shoes"},
            "workers": 2,
            **spec,
        },
    }



async def racing_the_operator(step: Awaitable[Any]) -> None:
    """A JobPlayer step after which the operator may delete the failed gang's Job at once: the Job
    controller's last status write then finds the Job gone, which a real controller shrugs off too."""
    try:
        await step
    except KubeApiError as error:
        if error.status != 404:
            raise
