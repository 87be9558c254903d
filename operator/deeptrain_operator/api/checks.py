"""Checks of a parsed object that its CRD schema cannot express; the operator runs them before creating pods."""

from __future__ import annotations

import re

from deeptrain_trainer import catalog

from .job import DeepTrainingJob
from .rules import MAX_JOB_NAME_LENGTH
from .workflow import Workflow

Problem = tuple[str, str]  # (field path, "what is wrong; how to fix it")

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_GPU_RESOURCE = "gpu"


def validate_job(job: DeepTrainingJob) -> list[Problem]:
    """Every problem with `job` beyond its schema, as (field, message) pairs; empty when it can run."""
    spec = job.spec
    problems: list[Problem] = list(
        catalog.check_hyperparameters(spec.modelType, spec.template, spec.hyperparameters.to_dict()))
    name = job.metadata.name or ""
    if not _DNS_LABEL.match(name) or len(name) > MAX_JOB_NAME_LENGTH:
        # The name becomes the rendezvous Service and the pods' hostnames.
        problems.append(("metadata.name", f"{name!r} must be a DNS label (lowercase letters, digits and '-', "
                                          f"starting with a letter, at most {MAX_JOB_NAME_LENGTH} characters "
                                          "to leave room for <name>-<attempt>-<index> pod hostnames); rename the job"))
    if spec.baseModel is not None and spec.baseModel.deepTrainingJob == name:
        problems.append(("spec.baseModel.deepTrainingJob", "a job cannot warm-start from its own model; "
                                                           "name another DeepTrainingJob or give baseModel.uri"))
    gpus = _gpus_per_pod(job)
    if isinstance(spec.nprocPerNode, int) and gpus and spec.nprocPerNode > gpus:
        problems.append(("spec.nprocPerNode", f"{spec.nprocPerNode} processes per pod but {gpus} GPUs requested; "
                                              f'use "auto" or at most {gpus}'))
    if not problems:
        from ..builders import nproc_per_node  # what the pods will run, "auto" resolved from their resources

        processes = spec.workers * nproc_per_node(job)
        batch_size = catalog.resolve_hyperparameters(spec.modelType, spec.hyperparameters.to_dict())["batch_size"]
        if batch_size % processes:
            problems.append(("spec.hyperparameters.batch_size",
                             f"the global batch of {batch_size} does not split evenly over the {processes} training "
                             f"processes (workers {spec.workers} x nprocPerNode {processes // spec.workers}); "
                             f"use a multiple of {processes} or change workers/nprocPerNode"))
    return problems


def validate_object(obj: DeepTrainingJob | Workflow) -> list[Problem]:
    """validate_job for jobs; a Workflow's rules are all in its schema and model."""
    return validate_job(obj) if isinstance(obj, DeepTrainingJob) else []


def _gpus_per_pod(job: DeepTrainingJob) -> int:
    """GPUs each pod asks for, from any resource whose name mentions gpu (nvidia.com/gpu, amd.com/gpu)."""
    resources = job.spec.resources
    if resources is None:
        return 0
    for amounts in (resources.limits, resources.requests):
        for resource, amount in (amounts or {}).items():
            if _GPU_RESOURCE in resource and str(amount).isdigit():
                return int(amount)
    return 0
