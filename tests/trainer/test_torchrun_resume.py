"""Kill a rank or stop the gang mid-training: the run resumes from its checkpoint and finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from torchrun_support import WAIT_SECONDS, history, start, wait_for, worker_pid

from deeptrain_api.trainer_contract import TrainerConfig

pytestmark = pytest.mark.torchrun

NUM_EPOCHS = 6


def small_config(trainer_config, output: Path, dataset: Path, seed: int) -> TrainerConfig:
    return trainer_config(output, dataset, batch_size=8, image_size=32, num_epochs=NUM_EPOCHS, lrate=0.02,
                          num_items_per_epoch=32, test_freq=2, seed=seed)


@pytest.mark.parametrize("attempt", range(5))
def test_killed_rank_is_restarted_and_resumes_from_the_checkpoint(attempt, colour_squares, trainer_config, tmp_path):
    output = tmp_path / "model"
    config = small_config(trainer_config, output, colour_squares, seed=attempt)
    process = start(config, output, max_restarts=1)
    wait_for(lambda: (output / "checkpoints" / "last.pt").exists() or process.poll() is not None, "first checkpoint")
    pid = worker_pid(output / "job.json", rank=1)
    assert pid is not None, "rank 1 is not running"
    os.kill(pid, signal.SIGKILL)
    assert process.wait(timeout=WAIT_SECONDS) == 0, (tmp_path / "torchrun.log").read_text()[-5000:]

    log = (tmp_path / "torchrun.log").read_text()
    resumed = [int(word) for line in log.splitlines() if "resumed from checkpoint: epoch" in line
               for word in [line.split("epoch ")[1].split(",")[0]]]
    assert resumed and resumed[0] > 0, log[-5000:]
    records = history(output)
    steps = [record["step"] for record in records]
    assert steps == sorted(set(steps)) and steps[0] > 0  # continued, never restarted from step 0
    assert [record["epoch"] for record in records] == list(range(1, NUM_EPOCHS + 1))
    assert steps[-1] == NUM_EPOCHS * 4  # 32 items per epoch / 8 per step
    assert (output / "model.safetensors").exists()


def test_sigterm_checkpoints_mid_training_and_the_next_run_resumes(colour_squares, trainer_config, tmp_path):
    output = tmp_path / "model"
    config = small_config(trainer_config, output, colour_squares, seed=7)
    process = start(config, output, max_restarts=0)
    wait_for(lambda: (output / "checkpoints" / "last.pt").exists() or process.poll() is not None, "first checkpoint")
    process.send_signal(signal.SIGTERM)  # what kubelet sends a pod being stopped; torchrun forwards it
    process.wait(timeout=WAIT_SECONDS)
    log = (tmp_path / "torchrun.log").read_text()
    assert "stopped by SIGTERM" in log, log[-5000:]
    assert not (output / "model.safetensors").exists()
    stopped_at = history(output)[-1]["step"] if (output / "metrics.jsonl").exists() else 0

    assert start(config, output, max_restarts=0).wait(timeout=WAIT_SECONDS) == 0
    log = (tmp_path / "torchrun.log").read_text()
    assert "resumed from checkpoint" in log
    steps = [record["step"] for record in history(output)]
    assert steps == sorted(set(steps)) and steps[-1] == NUM_EPOCHS * 4 and steps[-1] > stopped_at
    assert (output / "model.safetensors").exists()


def test_a_retrain_with_another_config_starts_over_instead_of_resuming(colour_squares, trainer_config, tmp_path):
    output = tmp_path / "model"
    config = small_config(trainer_config, output, colour_squares, seed=3)
    process = start(config, output, max_restarts=0)
    wait_for(lambda: (output / "checkpoints" / "last.pt").exists() or process.poll() is not None, "first checkpoint")
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=WAIT_SECONDS)

    # What the operator renders after a finished job's spec is edited: a new generation, new hyperparameters.
    retrain = small_config(trainer_config, output, colour_squares, seed=3).model_copy(update={
        "job": config.job.model_copy(update={"generation": 2})})
    assert start(retrain, output, max_restarts=0).wait(timeout=WAIT_SECONDS) == 0
    log = (tmp_path / "torchrun.log").read_text()
    assert "starting a new run" in log and "resumed from checkpoint" not in log, log[-5000:]
    assert [record["epoch"] for record in history(output)] == list(range(1, NUM_EPOCHS + 1))


def test_ctrl_c_on_deeptrain_run_keeps_a_checkpoint_and_the_same_command_resumes(colour_squares, tmp_path):
    manifest = tmp_path / "job.yaml"
    manifest.write_text(f"""
apiVersion: deeptrain.dev/v1alpha1
kind: DeepTrainingJob
metadata: {{name: squares}}
spec:
  modelType: visual-classifier
  template: ResNext
  templateScale: {{width: 0.25, depth: 0.34}}
  hyperparameters: {{batch_size: 8, image_size: 32, num_epochs: {NUM_EPOCHS}, lrate: 0.02, num_items_per_epoch: 32}}
  dataset: {{uri: "file://{colour_squares}", format: imagefolder, validation: {{fraction: 0.25}}}}
  output: {{uri: "file://{tmp_path / 'model'}"}}
  nprocPerNode: 2
""")
    command = [str(Path(sys.executable).with_name("deeptrain")), "run", str(manifest)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DEEPTRAIN_REPORT": "none"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: (tmp_path / "model" / "checkpoints" / "last.pt").exists() or first.poll() is not None,
             "first checkpoint")
    first.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
    shown, _ = first.communicate(timeout=WAIT_SECONDS)
    assert first.returncode == 130, shown[-3000:]
    assert "interrupted; checkpoint kept in" in shown and not (tmp_path / "model" / "model.safetensors").exists()

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=WAIT_SECONDS)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resumed from checkpoint" in second.stdout + second.stderr
    assert (tmp_path / "model" / "model.safetensors").exists()
