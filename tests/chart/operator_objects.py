"""DeepTrainingJobs admitted by the operator's own API code and the children its builders make,
for holding those children to what the chart promises (restricted pods, RBAC it can grant)."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import pytest

CPU_JOB: dict[str, Any] = {
    "apiVersion": "deeptrain.dev/v1alpha1",
    "kind": "DeepTrainingJob",
    "metadata": {"name": "digits", "namespace": "team-a"},
    "spec": {
        "modelType": "visual-classifier",
        "template": "ResNext",
        "hyperparameters": {"batch_size": 32, "num_epochs": 2, "per_item_lrate": 1.0e-4},
        "dataset": {"uri": "s3://bucket/digits", "format": "imagefolder", "secretRef": {"name": "s3-credentials"}},
        "output": {"uri": "s3://bucket/models/digits"},
        "workers": 1,
    },
}

GPU_JOB: dict[str, Any] = {
    "apiVersion": "deeptrain.dev/v1alpha1",
    "kind": "DeepTrainingJob",
    "metadata": {"name": "shoes", "namespace": "team-a"},
    "spec": {
        "modelType": "visual-classifier",
        "template": "ResNext",
        "hyperparameters": {"batch_size": 64, "num_epochs": 30, "per_item_lrate": 7.8125e-05},
        "dataset": {"uri": "pvc://datasets/shoes", "format": "imagefolder", "validation": {"fraction": 0.1}},
        "output": {"uri": "pvc://models/shoes"},
        "workers": 2,
        "nprocPerNode": "auto",
        "resources": {"limits": {"nvidia.com/gpu": 8, "memory": "64Gi", "cpu": "16"}},
        "scheduling": {"nodeSelector": {"gpu": "a100"}, "gang": "volcano",
                       "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]},
    },
}

JOBS = {"cpu-s3-secret": CPU_JOB, "gpu-pvc-gang": GPU_JOB}


def builders():
    return pytest.importorskip("deeptrain_operator.builders", reason="the operator's builders are not written yet")


def admit(document: dict[str, Any]):
    manifests = pytest.importorskip("deeptrain_operator.api.manifests", reason="the operator's API models are not written yet")
    return manifests.admit(copy.deepcopy(document))


def settings():
    module = pytest.importorskip("deeptrain_operator.settings", reason="operator settings are not written yet")
    return module.Settings()


def trainer_job(document: dict[str, Any]) -> dict[str, Any]:
    """The batch/v1 Job the operator creates for the first attempt of `document`."""
    module = builders()
    build = getattr(module, "build_trainer_job", None) or getattr(module, "build_job", None)
    if build is None:
        pytest.skip("deeptrain_operator.builders has no build_trainer_job/build_job yet")
    job = admit(document)

    def trainer_config():
        from deeptrain_operator.trainer_config import build_trainer_config

        return build_trainer_config(job)

    # What the operator knows when it creates the first attempt; built only when the builder asks.
    known = {
        "attempt": lambda: 1,
        "settings": settings,
        "config": trainer_config,
        "config_hash_value": lambda: "0" * 16,
        "active_deadline_seconds": lambda: None,
    }
    arguments = {}
    for name, parameter in list(inspect.signature(build).parameters.items())[1:]:
        if name in known:
            arguments[name] = known[name]()
        elif parameter.default is inspect.Parameter.empty:
            pytest.fail(f"{build.__name__} takes a new required argument {name!r}: give it a value here")
    return build(job, **arguments)
