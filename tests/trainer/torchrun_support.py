"""Launching the trainer under real torchrun (2 processes, gloo) from tests, and finding its ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from deeptrain_api.trainer_contract import TrainerConfig

WAIT_SECONDS = 300


def start(config: TrainerConfig, output: Path, *, max_restarts: int, log_name: str = "torchrun.log") -> subprocess.Popen:
    """torchrun with 2 processes on `config`; stdout and stderr appended to `output.parent / log_name`."""
    output.mkdir(parents=True, exist_ok=True)
    (output / "job.json").write_text(config.model_dump_json())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DEEPTRAIN_REPORT": "none", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    env.pop("DEEPTRAIN_TERMINATION_LOG", None)
    log = open(output.parent / log_name, "a")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         f"--max-restarts={max_restarts}", "-m", "deeptrain_trainer", "--config", str(output / "job.json")],
        env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for(condition, what: str, poll_seconds: float = 0.05) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(poll_seconds)


def worker_pid(config_path: Path, rank: int) -> int | None:
    """The training process of `rank` for this config, found in /proc (torchrun puts RANK in its env)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(config_path).encode() in cmdline and b"deeptrain_trainer" in cmdline and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def history(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
