"""The trainer's entry point with faults switched on by environment variables (tests/faults only).

FAULT_SLOW_CHECKPOINT=PATH: every checkpoint torch.save writes its bytes in slow chunks and touches PATH once the
first chunk is on disk, so a signal can be sent while a checkpoint is half written.
FAULT_NO_SPACE=1: every checkpoint torch.save fails with ENOSPC, as on a full disk.

Run as `torchrun ... -m trainer_with_faults --config job.json` with this folder on PYTHONPATH, or
`python -m trainer_with_faults --save-twice DIR` for a bare save without the trainer.
"""

from __future__ import annotations

import errno
import io
import os
import sys
import time
from pathlib import Path

import torch

CHUNKS = 10
CHUNK_DELAY_SECONDS = 0.2
_real_save = torch.save


def _is_checkpoint_file(handle) -> bool:
    # torch.save also pickles tensors in memory (torch.distributed's object collectives): leave those be.
    return str(getattr(handle, "name", "")).endswith(".tmp")


def _slow_save(obj, handle, *args, **kwargs):
    if not _is_checkpoint_file(handle):
        return _real_save(obj, handle, *args, **kwargs)
    buffer = io.BytesIO()
    _real_save(obj, buffer, *args, **kwargs)
    data = buffer.getvalue()
    step = max(1, len(data) // CHUNKS)
    for offset in range(0, len(data), step):
        handle.write(data[offset:offset + step])
        handle.flush()
        if offset == 0:
            # The trainer's checkpoints hold the position per rank; the bare saves of these tests an epoch.
            position = obj["resume"][0]["global_step"] if "resume" in obj else obj["epoch"]
            Path(os.environ["FAULT_SLOW_CHECKPOINT"]).write_text(str(position))
        time.sleep(CHUNK_DELAY_SECONDS)


def _no_space(obj, handle, *args, **kwargs):
    if not _is_checkpoint_file(handle):
        return _real_save(obj, handle, *args, **kwargs)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def install() -> None:
    if os.environ.get("FAULT_SLOW_CHECKPOINT"):
        torch.save = _slow_save
    if os.environ.get("FAULT_NO_SPACE"):
        torch.save = _no_space


def save_twice(directory: Path) -> None:
    """A complete checkpoint (epoch 1), then a slow one (epoch 2) the test kills half-way."""
    from deeptrain_trainer.checkpoint import save_checkpoint

    blob = torch.arange(2_000_000, dtype=torch.float32)  # 8 MB: the write takes a while
    save_checkpoint(directory, {"epoch": 1, "blob": blob})
    install()
    save_checkpoint(directory, {"epoch": 2, "blob": blob})


if __name__ == "__main__":
    if sys.argv[1:2] == ["--save-twice"]:
        save_twice(Path(sys.argv[2]))
    else:
        install()
        from deeptrain_trainer.__main__ import main

        sys.exit(main())
