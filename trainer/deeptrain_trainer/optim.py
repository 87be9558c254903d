"""Optimizer and learning-rate schedule exactly as the catalog documents the hyperparameters.

`batch_size` is the global batch of one optimizer step; the per-step rate `lrate` (resolved by the
catalog from lrate / per_item_lrate / per_128_lrate) applies to that global batch. Each parameter
group carries an `lr_multiplier` (the backbone's is `base_gradient_multiplier`, the head's 1), and
the rate set at the start of every epoch is `learning_rate_at_epoch * lr_multiplier`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from deeptrain_api import catalog

from .errors import ConfigError

OptimizerKind = Literal["sgd", "adamw"]

SGD_MOMENTUM = 0.9
SGD_WEIGHT_DECAY = 1e-4
ADAMW_WEIGHT_DECAY = 0.01
CLIP_EPSILON = 1e-6  # torch.nn.utils.clip_grad_norm_'s


def per_rank_batch_size(batch_size: int, world_size: int) -> int:
    """Items each process loads per step.

    Rounding would silently change the global batch and with it the per-item rate the user asked
    for, so a batch that does not split evenly over the processes is refused instead.
    """
    if batch_size % world_size or batch_size < world_size:
        raise ConfigError(
            f"spec.hyperparameters.batch_size: {batch_size} is the global batch and must be a multiple of the "
            f"{world_size} training processes (workers x nprocPerNode); "
            f"use e.g. {max(world_size, batch_size // world_size * world_size)}")
    return batch_size // world_size


def build_optimizer(model: nn.Module, hyperparameters: Mapping[str, Any], kind: OptimizerKind) -> torch.optim.Optimizer:
    """Backbone and head groups; norms and biases get no weight decay (it only shrinks their scale)."""
    groups_by_role: dict[str, list[nn.Parameter]] = model.parameter_groups()
    multipliers = {"backbone": float(hyperparameters.get("base_gradient_multiplier", 1.0)), "head": 1.0}
    weight_decay = SGD_WEIGHT_DECAY if kind == "sgd" else ADAMW_WEIGHT_DECAY
    param_groups: list[dict[str, Any]] = []
    for role, params in groups_by_role.items():
        trainable = [p for p in params if p.requires_grad]
        decayed = [p for p in trainable if p.ndim > 1]
        not_decayed = [p for p in trainable if p.ndim <= 1]
        for group_params, decay in ((decayed, weight_decay), (not_decayed, 0.0)):
            if group_params:
                param_groups.append({"params": group_params, "weight_decay": decay, "role": role,
                                     "lr_multiplier": multipliers[role]})
    if not param_groups:
        raise ConfigError(f"{type(model).__name__} has no trainable parameters")
    base_rate = catalog.learning_rate_at_epoch(hyperparameters, 0)
    for group in param_groups:
        group["lr"] = base_rate * group["lr_multiplier"]
    if kind == "sgd":
        return torch.optim.SGD(param_groups, lr=base_rate, momentum=SGD_MOMENTUM, nesterov=True)
    return torch.optim.AdamW(param_groups, lr=base_rate)


def set_epoch_learning_rate(optimizer: torch.optim.Optimizer, hyperparameters: Mapping[str, Any], epoch: int) -> float:
    """Apply the documented step schedule for 0-based `epoch`; returns the head (full) rate."""
    rate = catalog.learning_rate_at_epoch(hyperparameters, epoch)
    for group in optimizer.param_groups:
        group["lr"] = rate * group["lr_multiplier"]
    return rate


def learning_rates_by_role(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    return {group["role"]: group["lr"] for group in optimizer.param_groups}


def clip_gradient_norm(parameters: Sequence[nn.Parameter], max_norm: float) -> float:
    """The gradients' global 2-norm (inf or nan when one is not finite); clipped to `max_norm` above it.

    Same norm and same clipped gradients as torch.nn.utils.clip_grad_norm_, bit for bit, at a fraction
    of its per-step cost on small models: that function multiplies every gradient by its coefficient
    even when the coefficient is clamped to exactly 1, a pass most steps do not need, and callers
    usually hand it `model.parameters()`, a walk of the whole module tree on every step (pass a list
    made once). Reading the norm on the host here also serves the caller's finiteness check.
    """
    with_grads = [p for p in parameters if p.grad is not None]
    total = torch.nn.utils.get_total_norm([p.grad for p in with_grads])
    # clip_grad_norm_'s coefficient, computed as it does and clamped by it at 1 (then a multiply by
    # exactly 1): both values in one read from the device.
    norm, coefficient = torch.stack([total, max_norm / (total + CLIP_EPSILON)]).tolist()
    if math.isfinite(norm) and coefficient < 1.0:
        torch.nn.utils.clip_grads_with_norm_(with_grads, max_norm, total)
    return norm
