"""Scenarios 8 and 3 (trainer side): signals during checkpoint writes, a full disk, rank kills.

No cluster needed; real torchrun with 2 processes (gloo, CPU) on a tiny config, every run bounded.
Bars:
- killed while a checkpoint is half written, the previous checkpoint is what loads (never a torn one);
- SIGTERM (what kubelet sends) while rank 0 writes a checkpoint: the write completes, last.pt loads
  on its own (no fallback needed) and holds at least the step being written, exit code 143;
- a full output disk ends `deeptrain run` with exit code 12 and an OutputError naming the path;
- 10 of 10 kills of a rank (alternating 0 and 1, each after a fresh checkpoint) recover: the gang
  resumes from the last checkpoint every time (10 "resumed" lines), the step count continues (never
  back to 0, strictly increasing across the run), every epoch is recorded once, and the run succeeds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_torchrun_resume import history, worker_pid

from deeptrain_trainer.checkpoint import LAST, load_checkpoint

pytestmark = pytest.mark.faults

HERE = Path(__file__).resolve().parent
WAIT_SECONDS = 300
KILLS = 10


def trainer_env(**extra: str) -> dict[str, str]:
    inherited = {key: value for key, value in os.environ.items() if key != "DEEPTRAIN_TERMINATION_LOG"}
    return {**inherited, "OMP_NUM_THREADS": "1", "DEEPTRAIN_REPORT": "none",
            "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1",
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]), **extra}


def torchrun(config, output: Path, *, max_restarts: int = 0, module: str = "deeptrain_trainer",
             **extra_env: str) -> subprocess.Popen:
    output.mkdir(parents=True, exist_ok=True)
    (output / "job.json").write_text(config.model_dump_json())
    log = open(output.parent / "torchrun.log", "a")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         f"--max-restarts={max_restarts}", "-m", module, "--config", str(output / "job.json")],
        env=trainer_env(**extra_env), stdout=log, stderr=subprocess.STDOUT)


def wait_until(condition, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the trainer exited ({process.returncode}) before {what}", pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT_SECONDS}s: {what}", pytrace=False)
        time.sleep(0.05)


def test_a_kill_mid_checkpoint_write_leaves_the_previous_checkpoint_loadable(tmp_path):
    marker = tmp_path / "writing"
    process = subprocess.Popen([sys.executable, "-m", "trainer_with_faults", "--save-twice", str(tmp_path / "ckpt")],
                               env=trainer_env(FAULT_SLOW_CHECKPOINT=str(marker)))
    wait_until(marker.exists, "the second checkpoint half written", process)
    process.send_signal(signal.SIGTERM)  # no handler in a bare save: the process dies mid-write
    assert process.wait(timeout=WAIT_SECONDS) == -signal.SIGTERM
    assert (tmp_path / "ckpt" / (LAST + ".tmp")).exists()  # the torn file is there, under its temporary name
    assert torch.load(tmp_path / "ckpt" / LAST, weights_only=False)["epoch"] == 1
    assert load_checkpoint(tmp_path / "ckpt")["epoch"] == 1


def test_sigterm_during_a_checkpoint_write_never_leaves_a_corrupt_latest_checkpoint(
        colour_squares, trainer_config, tmp_path):
    output, marker = tmp_path / "model", tmp_path / "writing"
    config = trainer_config(output, colour_squares, batch_size=8, image_size=32, num_epochs=4, lrate=0.02,
                            num_items_per_epoch=16)
    process = torchrun(config, output, module="trainer_with_faults", FAULT_SLOW_CHECKPOINT=str(marker))
    wait_until(marker.exists, "rank 0 half way through a checkpoint", process)
    step_being_written = int(marker.read_text())
    process.send_signal(signal.SIGTERM)  # kubelet stopping the pod; torchrun forwards it to the ranks
    code = process.wait(timeout=WAIT_SECONDS)
    log = (tmp_path / "torchrun.log").read_text()
    assert "stopped by SIGTERM" in log, log[-4000:]
    assert code != 0
    latest = torch.load(output / "checkpoints" / LAST, weights_only=False)  # last.pt itself, no fallback
    assert latest["resume"][0]["global_step"] >= step_being_written
    assert "unreadable" not in log


def test_a_full_output_disk_fails_with_output_error(colour_squares, trainer_config, tmp_path):
    output = tmp_path / "full"
    output.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(output)],
                             capture_output=True).returncode == 0
    try:
        config = trainer_config(output / "model", colour_squares, batch_size=8, image_size=32, num_epochs=2,
                                lrate=0.02, num_items_per_epoch=16)
        termination_log = tmp_path / "termination-log"
        extra = {} if mounted else {"FAULT_NO_SPACE": "1"}  # no tmpfs here: torch.save says ENOSPC instead
        config_dir = tmp_path / "config"
        process = torchrun(config, config_dir, module="trainer_with_faults",
                           DEEPTRAIN_TERMINATION_LOG=str(termination_log), **extra)
        process.wait(timeout=WAIT_SECONDS)
    finally:
        if mounted:
            subprocess.run(["umount", str(output)], check=False)
    log = (tmp_path / "torchrun.log").read_text()
    message = json.loads(termination_log.read_text())
    print(f"disk full simulated with {'a 256 KiB tmpfs' if mounted else 'torch.save raising ENOSPC'}")
    assert message["reason"] == "OutputError" and message["exitCode"] == 12 and message["permanent"], log[-4000:]
    assert "No space left on device" in message["message"] and str(output) in message["message"]


def test_ten_rank_kills_in_a_row_all_resume_from_the_last_checkpoint(colour_squares, trainer_config, tmp_path):
    output = tmp_path / "model"
    epochs, steps_per_epoch = 30, 2
    config = trainer_config(output, colour_squares, batch_size=8, image_size=32, num_epochs=epochs, lrate=0.02,
                            num_items_per_epoch=16, test_freq=epochs, seed=11)
    process = torchrun(config, output, max_restarts=KILLS)
    last = output / "checkpoints" / LAST
    killed: list[int] = []
    seen_checkpoint = 0
    for kill in range(KILLS):
        rank = kill % 2

        def fresh_checkpoint_and_a_new_rank(rank: int = rank, seen_checkpoint: int = seen_checkpoint) -> bool:
            if not last.exists() or last.stat().st_mtime_ns == seen_checkpoint:
                return False
            pid = worker_pid(output / "job.json", rank)
            return pid is not None and pid not in killed

        wait_until(fresh_checkpoint_and_a_new_rank, f"a checkpoint before kill {kill + 1}", process)
        seen_checkpoint = last.stat().st_mtime_ns
        pid = worker_pid(output / "job.json", rank)
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
    code = process.wait(timeout=WAIT_SECONDS)
    log = (tmp_path / "torchrun.log").read_text()
    assert code == 0, log[-5000:]

    resumed = [line for line in log.splitlines() if "resumed from checkpoint" in line]
    print(f"{len(killed)} ranks killed; {len(resumed)} resumes")
    assert len(resumed) == KILLS, log[-5000:]
    steps = [record["step"] for record in history(output)]
    assert steps == sorted(set(steps))  # continued every time, never back to step 0
    assert [record["epoch"] for record in history(output)] == list(range(1, epochs + 1))
    assert steps[-1] == epochs * steps_per_epoch
    assert (output / "model.safetensors").exists()
