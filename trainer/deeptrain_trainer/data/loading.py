"""Where a DataLoader loads its batches: in the training process or in worker processes.

Workers pay off only where they run while the model computes on cores the training process does
not use, and only when there is real work to move off it:
- a split held in memory (`in_memory`: text, or images decoded once by `preload`) costs a gather,
  a flip and one normalisation per batch, less than handing the batch over from another process:
  in-process;
- CPU training runs one training process per core, so a worker only takes time from them:
  in-process;
- CUDA training on images decoded every epoch: workers decode while the GPU computes; they stay
  alive across epochs (persistent) and keep batches queued (prefetch).
On CUDA, batches go to page-locked memory so that the copy to the GPU is asynchronous.
"""

from __future__ import annotations

import os
from typing import Any

CUDA_LOADER_WORKERS = 4
PREFETCH_BATCHES_PER_WORKER = 4


def cores_per_process() -> int:
    """The cores this process may use, shared with the other training processes of this node."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def loader_options(*, in_memory: bool, on_cuda: bool, persistent: bool) -> dict[str, Any]:
    """DataLoader keyword arguments for a dataset, by the rules above.

    `persistent`: the DataLoader is kept and iterated every epoch (workers then outlive the epoch);
    a DataLoader made for one pass gets workers that end with it.
    """
    options: dict[str, Any] = {"pin_memory": on_cuda, "num_workers": 0}
    workers = min(CUDA_LOADER_WORKERS, cores_per_process() - 1) if on_cuda and not in_memory else 0
    if workers > 0:
        options.update(num_workers=workers, persistent_workers=persistent, prefetch_factor=PREFETCH_BATCHES_PER_WORKER)
    return options
