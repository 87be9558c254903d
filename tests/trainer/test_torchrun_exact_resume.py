"""A run stopped by SIGTERM mid-epoch, resumed, then hit by SIGKILL of a rank mid-epoch and restarted
by torchrun ends bit-identical to a run never interrupted: same weights, same metrics history.

The model is the image classifier, which has both dropout (its head) and BatchNorm (its ResNext
backbone), trained by 2 gloo processes: the dropout masks test the RNG streams, the per-rank
BatchNorm statistics mid-epoch test what the checkpoint keeps of each process. The SIGTERM
checkpoint is one the uninterrupted run never writes, so it also proves that checkpointing does not
perturb the run.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import pytest
import torch
from torchrun_support import WAIT_SECONDS, history, start, wait_for, worker_pid

pytestmark = pytest.mark.torchrun

NUM_EPOCHS = 3
STEPS_PER_EPOCH = 8  # 64 items per epoch / batch 8 (4 per process)


def epoch_started(log: Path, epoch: int) -> bool:
    return log.exists() and f"epoch {epoch}/{NUM_EPOCHS}: " in log.read_text()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def without_throughput(records: list[dict]) -> list[dict]:
    """The history minus the one wall-clock field."""
    return [{key: value for key, value in record.items() if key != "itemsPerSecond"} for record in records]


@pytest.fixture(scope="module")
def runs(colour_squares, trainer_config, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("exact-resume")
    straight_out, interrupted_out = root / "straight" / "model", root / "interrupted" / "model"

    def config(output: Path):
        return trainer_config(output, colour_squares, batch_size=8, image_size=32, num_epochs=NUM_EPOCHS, lrate=0.05,
                              num_items_per_epoch=64, test_freq=1, seed=11)

    straight = start(config(straight_out), straight_out, max_restarts=0)  # runs alongside the interrupted one

    first = start(config(interrupted_out), interrupted_out, max_restarts=0, log_name="first.log")
    wait_for(lambda: epoch_started(root / "interrupted" / "first.log", 2) or first.poll() is not None,
             "epoch 2 of the first launch", poll_seconds=0.01)
    first.send_signal(signal.SIGTERM)  # torchrun forwards it; the ranks stop together after a step
    first_code = first.wait(timeout=WAIT_SECONDS)
    stopped = torch.load(interrupted_out / "checkpoints" / "last.pt", weights_only=False)["resume"][0]

    second = start(config(interrupted_out), interrupted_out, max_restarts=1, log_name="second.log")
    wait_for(lambda: epoch_started(root / "interrupted" / "second.log", 3) or second.poll() is not None,
             "epoch 3 of the second launch", poll_seconds=0.01)
    rank1 = worker_pid(interrupted_out / "job.json", rank=1)
    assert rank1 is not None, (root / "interrupted" / "second.log").read_text()[-3000:]
    os.kill(rank1, signal.SIGKILL)  # torchrun restarts the gang, which resumes from the epoch-2 checkpoint
    second_code = second.wait(timeout=WAIT_SECONDS)
    straight_code = straight.wait(timeout=WAIT_SECONDS)
    return {"straight": straight_out, "interrupted": interrupted_out, "stopped": stopped,
            "codes": (first_code, second_code, straight_code),
            "logs": {name: (root / "interrupted" / f"{name}.log").read_text() for name in ("first", "second")}}


def test_both_interruptions_happened_mid_epoch_and_were_resumed(runs):
    first_code, second_code, straight_code = runs["codes"]
    assert first_code != 0 and "stopped by SIGTERM" in runs["logs"]["first"], runs["logs"]["first"][-3000:]
    assert second_code == 0 and straight_code == 0, runs["logs"]["second"][-3000:]
    stopped = runs["stopped"]
    assert stopped["epoch"] == 1 and 0 < stopped["step_in_epoch"] < STEPS_PER_EPOCH, stopped
    assert stopped["loss_count"] == stopped["step_in_epoch"]  # the epoch's running loss is in the checkpoint
    resumed = [line.split("resumed from checkpoint: ")[1] for line in runs["logs"]["second"].splitlines()
               if "resumed from checkpoint: " in line]
    assert resumed == [f"epoch 1, step {stopped['step_in_epoch']} in epoch, global step "
                       f"{STEPS_PER_EPOCH + stopped['step_in_epoch']}",
                       f"epoch 2, step 0 in epoch, global step {2 * STEPS_PER_EPOCH}"], resumed


def test_resumed_weights_are_bit_identical(runs):
    assert sha256(runs["interrupted"] / "model.safetensors") == sha256(runs["straight"] / "model.safetensors")


def test_resumed_metrics_history_is_identical(runs):
    interrupted, straight = history(runs["interrupted"]), history(runs["straight"])
    assert [record["epoch"] for record in straight] == list(range(1, NUM_EPOCHS + 1))
    # Loss and evaluation to the last digit; epoch 2's loss covers the steps before and after the SIGTERM.
    assert without_throughput(interrupted) == without_throughput(straight)
