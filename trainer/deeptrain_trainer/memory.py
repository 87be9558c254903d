"""How much memory training will take, checked before the first step.

estimate = parameters + gradients + optimizer state + activations kept for the backward pass.
The activation term is measured, not guessed: one forward pass of a small probe batch records the
bytes autograd saves, then it is scaled by pixels (image_size^2) and by the per-process batch,
which is how convolutional activations grow. Every saved tensor is counted as if all were alive at
once, so the estimate errs high (1.3x to 1.9x the measured peak, bench/memory_estimate.py).
Compared against the container's memory limit (the
cgroup limit Kubernetes sets from spec.resources) or, without one, the machine's memory; a GPU
process is compared against its device's memory instead.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from deeptrain_api.trainer_contract import ENV_JOB_NAME

from .errors import InsufficientMemory

log = logging.getLogger(__name__)

PROBE_SIDE = 64
PROBE_BATCH = 2
# Optimizer state per trainable parameter, in parameter copies.
OPTIMIZER_COPIES = {"sgd": 1, "adamw": 2}
CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
# cgroup v1 reports "no limit" as a huge number rather than "max".
UNLIMITED_ABOVE = 1 << 60
GIB = 1 << 30


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    gradients: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer + self.activations

    def describe(self) -> str:
        return (f"{self.total / GIB:.1f} GiB (parameters {self.parameters / GIB:.2f}, gradients "
                f"{self.gradients / GIB:.2f}, optimizer state {self.optimizer / GIB:.2f}, activations "
                f"{self.activations / GIB:.2f} GiB)")


def activation_bytes_per_item(model: nn.Module, image_size: int, device: torch.device) -> int:
    """Bytes autograd keeps for one item at `image_size`, from a probe forward at PROBE_SIDE pixels."""
    saved: dict[tuple[int, int], int] = {}

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        saved[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()  # shared storages count once
        return tensor

    was_training = model.training
    buffers = [buffer.detach().clone() for buffer in model.buffers()]  # batch norm statistics the probe moves
    model.train()
    probe = torch.zeros(PROBE_BATCH, 3, PROBE_SIDE, PROBE_SIDE, device=device)
    try:
        with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
            model(probe)
    finally:
        model.train(was_training)
        with torch.no_grad():
            for buffer, before in zip(model.buffers(), buffers, strict=True):
                buffer.copy_(before)
    return int(sum(saved.values()) / PROBE_BATCH * (image_size / PROBE_SIDE) ** 2)


def estimate_training_memory(model: nn.Module, *, image_size: int, per_rank_batch: int, optimizer: str,
                             device: torch.device) -> MemoryEstimate:
    trainable = [p for p in model.parameters() if p.requires_grad]
    parameters = sum(p.numel() * p.element_size() for p in model.parameters())
    gradients = sum(p.numel() * p.element_size() for p in trainable)
    state = gradients * OPTIMIZER_COPIES.get(optimizer, 2)
    activations = activation_bytes_per_item(model, image_size, device) * per_rank_batch
    return MemoryEstimate(parameters=parameters, gradients=gradients, optimizer=state, activations=activations)


def container_memory_limit() -> int | None:
    """The cgroup memory limit of this container, or None when there is none."""
    for path in CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < UNLIMITED_ABOVE:
            return int(text)
    return None


def machine_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(estimate: MemoryEstimate, *, processes: int, device: torch.device, announce: bool = True,
                 in_cluster: bool | None = None) -> None:
    """Raise InsufficientMemory in a cluster pod, or warn elsewhere, when the estimate exceeds the memory.

    `announce`: log the estimate and the warning (one process per machine does, the others stay quiet).
    """
    in_cluster = bool(os.environ.get(ENV_JOB_NAME)) if in_cluster is None else in_cluster
    if device.type == "cuda":
        needed, available = estimate.total, torch.cuda.get_device_properties(device).total_memory
        where = f"the GPU's {available / GIB:.1f} GiB"
        fix = "lower batch_size or image_size, or use GPUs with more memory"
    else:
        needed = estimate.total * processes
        limit = container_memory_limit()
        available = limit or machine_memory()
        where = (f"the container's memory limit of {available / GIB:.1f} GiB" if limit
                 else f"this machine's {(available or 0) / GIB:.1f} GiB")
        fix = "lower batch_size or image_size" + (", or raise spec.resources.limits.memory" if in_cluster else "")
    if announce:
        log.info("estimated training memory per process: %s", estimate.describe())
    if not available or needed <= available:
        return
    text = (f"training needs about {needed / GIB:.1f} GiB ({processes if device.type != 'cuda' else 1} x "
            f"{estimate.describe()}), more than {where}")
    if in_cluster:
        raise InsufficientMemory(f"{text}; {fix}")
    if announce:
        log.warning("%s: it will likely run out of memory; %s", text, fix)
