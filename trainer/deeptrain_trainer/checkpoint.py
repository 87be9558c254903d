"""Checkpoints that survive a kill at any instant.

`last.pt` is replaced atomically: the new checkpoint is written to a temporary file and fsynced,
the current `last.pt` becomes `prev.pt`, and the temporary file is renamed over `last.pt`. Loading
takes `last.pt` and falls back to `prev.pt` when `last.pt` is missing or unreadable, so a crash
between any two of these steps still leaves a complete checkpoint.

Besides the model and optimizer, a checkpoint holds one `ResumeState` per process: where the run
stands and everything of that process that the next steps depend on (its random streams, its share
of the epoch's running loss, its own BatchNorm statistics mid-epoch). Restoring all of it is what
makes a resumed run bit-identical to one that was never interrupted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .artifacts import writing

log = logging.getLogger(__name__)

LAST = "last.pt"
PREVIOUS = "prev.pt"


def config_hash(model_type: str, template: str, template_scale: Mapping[str, float], concepts: list[str]) -> str:
    """What must match for a checkpoint to be resumed: the architecture and the meaning of its outputs."""
    identity = {"modelType": model_type, "template": template, "templateScale": dict(template_scale),
                "concepts": list(concepts)}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def run_hash(config_json: str) -> str:
    """Which training run a checkpoint belongs to: the whole trainer config (a retrain changes it)."""
    return hashlib.sha256(config_json.encode()).hexdigest()


# What an object store or file system reports cheaply per file that changes when the content does.
_VERSION_KEYS = ("ETag", "etag", "md5Hash", "mtime", "LastModified", "last_modified", "updated", "created")


def dataset_fingerprint(uris: list[str]) -> str:
    """A hash of the listing of the dataset's files (relative path, size, mtime or etag): no file is read.

    Adding, removing, replacing or editing a file changes it; a listing is one call per folder tree
    (`find`), cheap for object stores too.
    """
    from .data.uris import filesystem

    listing = []
    for uri in uris:
        fs, root = filesystem(uri)
        entries = fs.find(root, detail=True, withdirs=False) if fs.isdir(root) else {root: fs.info(root)}
        for name, info in sorted(entries.items()):
            version = next((str(info[key]) for key in _VERSION_KEYS if info.get(key) is not None), "")
            listing.append([uri, name[len(root):], info.get("size"), version])
    return "sha256:" + hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def why_not_resume(checkpoint: Mapping[str, Any], run: str, fingerprint: str) -> str | None:
    """None when `checkpoint` continues this run on this data; else why a new run starts instead."""
    if checkpoint.get("run_hash") != run:
        return "the checkpoint belongs to an earlier run with another config"
    recorded = checkpoint.get("dataset_fingerprint")
    if recorded is None:
        return "the checkpoint does not record which data it was trained on (written by an older trainer)"
    if recorded != fingerprint:
        return (f"the dataset changed since the checkpoint was written (files added, removed or modified: "
                f"fingerprint {fingerprint[:19]}, was {recorded[:19]})")
    return None


@dataclass
class ResumeState:
    """Where the run stands, as one process sees it (the position fields are the same on every rank)."""

    epoch: int = 0  # the epoch under way (0-based); num_epochs once training is done
    step_in_epoch: int = 0  # optimizer steps already taken in `epoch`
    global_step: int = 0
    last_eval: dict[str, float] | None = None
    # This process's losses of the epoch so far: the epoch's logged mean covers all of its steps.
    loss_sum: float = 0.0
    loss_count: int = 0
    non_finite_steps: int = 0  # steps of the epoch skipped for a non-finite gradient
    non_finite_in_a_row: int = 0
    # Filled by `capture`: the process's random generators and floating-point buffers. Ranks keep
    # their own BatchNorm statistics between epoch ends, so rank 0's model alone does not carry them.
    rng: dict[str, Any] = field(default_factory=dict)
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)

    def start_epoch(self) -> None:
        self.loss_sum, self.loss_count, self.non_finite_steps = 0.0, 0, 0

    def capture(self, model: torch.nn.Module) -> dict[str, Any]:
        """This state with the process's generators and buffers, ready to save."""
        buffers = {name: buffer.detach().cpu().clone() for name, buffer in model.named_buffers()
                   if buffer.is_floating_point()}
        return asdict(self) | {"rng": capture_rng_state(), "buffers": buffers}

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> ResumeState:
        return cls(**saved)

    def restore_process_state(self, model: torch.nn.Module) -> None:
        """Put this process's generators and buffers back (call it last before the next step:
        anything drawing random numbers in between would shift every later draw)."""
        if self.rng:
            restore_rng_state(self.rng)
        named = dict(model.named_buffers())
        with torch.no_grad():
            for name, value in self.buffers.items():
                named[name].copy_(value)
        self.rng, self.buffers = {}, {}


def capture_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_checkpoint(directory: Path, state: Mapping[str, Any]) -> Path:
    """Write `state` as the new last.pt, keeping the one it replaces as prev.pt."""
    last, previous, tmp = directory / LAST, directory / PREVIOUS, directory / (LAST + ".tmp")
    with writing(directory):
        directory.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            torch.save(dict(state), handle)
            handle.flush()
            os.fsync(handle.fileno())
        if last.exists():
            os.replace(last, previous)
        os.replace(tmp, last)
        _fsync_directory(directory)
    return last


def load_checkpoint(directory: Path) -> dict[str, Any] | None:
    """The newest complete checkpoint in `directory`, or None when there is none."""
    for name in (LAST, PREVIOUS):
        path = directory / name
        if not path.exists():
            continue
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:  # a torn or corrupt file: the older one is still good
            log.warning("checkpoint %s is unreadable (%s); trying the previous one", path, error)
    return None


def _fsync_directory(directory: Path) -> None:
    # Makes the renames themselves durable; not every filesystem allows opening a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
