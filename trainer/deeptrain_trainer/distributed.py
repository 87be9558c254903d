"""Process group setup from torchrun's env, per-rank seeding and the few collectives the trainer needs.

A world of one (no torchrun, or `--nproc-per-node 1`) runs without a process group: every
collective below degrades to the identity, so the training loop has a single code path.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"


def init_distributed(timeout: timedelta = timedelta(minutes=30)) -> DistributedContext:
    """Join the torchrun gang: nccl when this process has a GPU, gloo otherwise."""
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timeout,
                                device_id=device if device.type == "cuda" else None)
    return DistributedContext(rank=rank, local_rank=local_rank, world_size=world_size, device=device)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int, rank: int) -> None:
    """Different augmentation streams per rank, reproducible from the job's seed."""
    rank_seed = seed * 1000 + rank
    random.seed(rank_seed)
    np.random.seed(rank_seed % 2**32)
    torch.manual_seed(rank_seed)


def wants_sync_batch_norm(per_rank_batch: int, world_size: int, below: int) -> bool:
    """The SyncBatchNorm rule: several processes, each with fewer than `below` items per step (BatchNorm
    statistics over a handful of items are noisy enough to hurt accuracy)."""
    return world_size > 1 and per_rank_batch < below


def barrier(ctx: DistributedContext) -> None:
    if ctx.is_distributed:
        dist.barrier()


def max_across_ranks(ctx: DistributedContext, value: int) -> int:
    """The largest `value` of any rank, on every rank (e.g. so that all ranks stop at the same step)."""
    if not ctx.is_distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=_collective_device(ctx))
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def start_max_of_each_across_ranks(ctx: DistributedContext, values: Sequence[float]) -> Callable[[], list[float]]:
    """Start the element-wise maximum of every rank's `values` (the same length on all) in one collective;
    the returned function waits for it and gives the result. Started now and read a step later, it
    overlaps the step in between instead of holding every rank at a synchronisation point."""
    if not ctx.is_distributed:
        return lambda: list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device(ctx))
    work = dist.all_reduce(tensor, op=dist.ReduceOp.MAX, async_op=True)

    def result() -> list[float]:
        work.wait()
        return tensor.tolist()

    return result


def mean_across_ranks(ctx: DistributedContext, value: float) -> float:
    if not ctx.is_distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=_collective_device(ctx))
    dist.all_reduce(tensor)
    return float(tensor.item()) / ctx.world_size


def average_buffers(ctx: DistributedContext, module: torch.nn.Module) -> None:
    """Make every rank's floating-point buffers (BatchNorm running statistics) their mean over ranks.

    One all-reduce per dtype over the buffers laid end to end, not one per buffer: a model has
    dozens of them, and each collective is a round trip every rank waits for.
    """
    if not ctx.is_distributed:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for buffer in module.buffers():
        if buffer.is_floating_point():
            by_dtype.setdefault(buffer.dtype, []).append(buffer)
    for buffers in by_dtype.values():
        flat = torch.cat([buffer.reshape(-1) for buffer in buffers])
        dist.all_reduce(flat)
        flat.div_(ctx.world_size)
        for buffer, mean in zip(buffers, flat.split([buffer.numel() for buffer in buffers]), strict=True):
            buffer.copy_(mean.view_as(buffer))


def gather_to_main(ctx: DistributedContext, obj: Any) -> list[Any] | None:
    """Every rank's `obj` on rank 0 (in rank order); None elsewhere."""
    if not ctx.is_distributed:
        return [obj]
    gathered: list[Any] | None = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def all_gather(ctx: DistributedContext, obj: Any) -> list[Any]:
    if not ctx.is_distributed:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_from_main(ctx: DistributedContext, obj: Any) -> Any:
    if not ctx.is_distributed:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def process_count() -> int:
    """Processes in the training gang (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def summed_over_processes(value: torch.Tensor) -> torch.Tensor:
    """`value` summed over every process of the training gang, for loss terms defined over the global
    batch (detector positives, Dice overlaps). Gradients flow into this process's own share only;
    see `undo_gradient_averaging`. Every process must call it at the same point of its step."""
    if process_count() == 1:
        return value
    total = value.detach().clone()
    dist.all_reduce(total)
    return value + (total - value.detach())


def undo_gradient_averaging(term: torch.Tensor) -> torch.Tensor:
    """A loss term that is already the same global value on every process: DDP averages gradients over
    the processes, which would divide this term's gradient by their number; scale it back (the
    value is unchanged, only its gradient is multiplied)."""
    processes = process_count()
    return term if processes == 1 else term + (processes - 1) * (term - term.detach())


def _collective_device(ctx: DistributedContext) -> torch.device:
    # nccl only reduces CUDA tensors; gloo only CPU ones.
    return ctx.device if ctx.is_cuda else torch.device("cpu")
