"""DeepTrainingJobs admitted by the operator's own API code and the children its builders make,
for holding those children to what the chart promises (restricted pods, RBAC it can grant)."""

from __future__ import annotations

import copy
from typing import Any

from deeptrain_api import manifests
from deeptrain_api.trainer_config import build_trainer_config
from deeptrain_operator import builders as operator_builders
from deeptrain_operator.settings import Settings

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


def admit(document: dict[str, Any]):
    return manifests.admit(copy.deepcopy(document))


def settings() -> Settings:
    return Settings()


def trainer_job(document: dict[str, Any]) -> dict[str, Any]:
    """The batch/v1 Job the operator creates for the first attempt of `document`."""
    job = admit(document)
    return operator_builders.build_trainer_job(job, attempt=1, settings=settings(), config=build_trainer_config(job),
                                               active_deadline_seconds=None)
