"""Checks of a parsed object that its CRD schema cannot express; the operator runs them before creating pods."""

from __future__ import annotations

import difflib
import re

from . import catalog
from .job import DeepTrainingJob
from .processes import gpu_resources, nproc_per_node
from .rules import MAX_JOB_NAME_LENGTH
from .workflow import Workflow

Problem = tuple[str, str]  # (field path, "what is wrong; how to fix it")

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def validate_job(job: DeepTrainingJob) -> list[Problem]:
    """Every problem with `job` beyond its schema, as (field, message) pairs; empty when it can run."""
    spec = job.spec
    problems: list[Problem] = list(
        catalog.check_hyperparameters(spec.modelType, spec.template, spec.hyperparameters.to_dict()))
    name = job.metadata.name or ""
    problems.extend(job_name_problems(name))
    if spec.baseModel is not None and spec.baseModel.deepTrainingJob == name:
        problems.append(("spec.baseModel.deepTrainingJob", "a job cannot warm-start from its own model; "
                                                           "name another DeepTrainingJob or give baseModel.uri"))
    gpus = sum(gpu_resources(job).values())
    if isinstance(spec.nprocPerNode, int) and gpus and spec.nprocPerNode > gpus:
        problems.append(("spec.nprocPerNode", f"{spec.nprocPerNode} processes per pod but {gpus} GPUs requested; "
                                              f'use "auto" or at most {gpus}'))
    if not problems:
        processes = spec.workers * nproc_per_node(job)
        batch_size = catalog.resolve_hyperparameters(spec.modelType, spec.hyperparameters.to_dict())["batch_size"]
        if batch_size % processes:
            problems.append(("spec.hyperparameters.batch_size",
                             f"the global batch of {batch_size} does not split evenly over the {processes} training "
                             f"processes (workers {spec.workers} x nprocPerNode {processes // spec.workers}); "
                             f"use a multiple of {processes} or change workers/nprocPerNode"))
    return problems


def unknown_hyperparameters(hyperparameters: object) -> list[Problem]:
    """Keys of spec.hyperparameters that are not hyperparameters (the CRD keeps them so they are seen)."""
    if not isinstance(hyperparameters, dict):
        return []
    known = sorted(catalog.HYPERPARAMETERS)
    problems = []
    for key in hyperparameters:
        if key in catalog.HYPERPARAMETERS:
            continue
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}? " if close else ""
        problems.append((f"spec.hyperparameters.{key}", f"is not a hyperparameter; {hint}use one of: {', '.join(known)}"))
    return problems


def job_name_problems(name: str) -> list[Problem]:
    """The job's name becomes the rendezvous Service and the pods' hostnames: it must leave room for them."""
    if _DNS_LABEL.match(name) and len(name) <= MAX_JOB_NAME_LENGTH:
        return []
    return [("metadata.name", f"{name!r} must be a DNS label (lowercase letters, digits and '-', "
                              f"starting with a letter, at most {MAX_JOB_NAME_LENGTH} characters "
                              "to leave room for <name>-<attempt>-<index> pod hostnames); rename the job")]


def validate_object(obj: DeepTrainingJob | Workflow) -> list[Problem]:
    """validate_job for jobs; a Workflow's rules are all in its schema and model."""
    return validate_job(obj) if isinstance(obj, DeepTrainingJob) else []
