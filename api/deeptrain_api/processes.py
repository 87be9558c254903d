"""How many processes a job runs: GPUs per pod and `nprocPerNode: auto` resolved from the pod's resources.

Admission (the batch-size divisibility check) and the pod builder must agree on this number, so both
read it here.
"""

from __future__ import annotations

import math

from .job import DeepTrainingJob

GPU_MARKER = "gpu"  # any resource whose name contains it counts as a GPU (nvidia.com/gpu, amd.com/gpu)


def pod_resources(job: DeepTrainingJob) -> dict[str, dict[str, int | str]]:
    return job.spec.resources.to_dict() if job.spec.resources is not None else {}


def quantity(value: int | str) -> float:
    """The number in a CPU or device quantity ("2", "500m", 4); other suffixes count as their number."""
    if isinstance(value, int):
        return float(value)
    text = value.strip()
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    try:
        return float(text)
    except ValueError:
        return float("".join(ch for ch in text if ch.isdigit() or ch == ".") or 0)


def gpu_resources(job: DeepTrainingJob) -> dict[str, int]:
    """GPU-like resources per pod (any resource name containing "gpu"), limits first."""
    found: dict[str, int] = {}
    resources = pod_resources(job)
    for section in ("requests", "limits"):  # limits win: GPUs are declared as limits
        for resource, amount in resources.get(section, {}).items():
            if GPU_MARKER in resource.lower():
                found[resource] = int(quantity(amount))
    return {name: count for name, count in found.items() if count > 0}


def nproc_per_node(job: DeepTrainingJob) -> int:
    """Processes per pod. "auto": the GPUs a pod gets (summed over GPU resource names); without GPUs the
    whole CPUs of the CPU limit (else the CPU request); 1 when neither is set."""
    if isinstance(job.spec.nprocPerNode, int):
        return job.spec.nprocPerNode
    gpus = sum(gpu_resources(job).values())
    if gpus:
        return gpus
    resources = pod_resources(job)
    cpu = resources.get("limits", {}).get("cpu") or resources.get("requests", {}).get("cpu")
    if cpu is not None:
        return max(1, math.floor(quantity(cpu)))
    return 1
