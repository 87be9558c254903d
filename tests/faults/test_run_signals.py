"""Scenario (issue: killing `deeptrain run` leaves training running): no orphan survives the CLI.

`deeptrain run` is killed the way `timeout` does (SIGTERM), the way a closed terminal does (SIGHUP)
and outright (SIGKILL). Bar: every process of its tree (torchrun and both ranks) ends, the ranks
having written a checkpoint mid-epoch, and on the catchable signals the CLI exits 128 + the signal.
(What a failed run prints is checked in test_bad_input_datasets.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

pytestmark = pytest.mark.faults

WAIT_SECONDS = 180
MANIFEST = """\
apiVersion: deeptrain.dev/v1alpha1
kind: DeepTrainingJob
metadata: {{name: signals}}
spec:
  modelType: visual-classifier
  template: ResNext
  templateScale: {{width: 0.25, depth: 0.34}}
  hyperparameters: {{batch_size: 8, image_size: 32, num_epochs: 500, lrate: 0.02, num_items_per_epoch: 16}}
  dataset: {{uri: "file://{dataset}", format: imagefolder, validation: {{fraction: 0.25}}}}
  output: {{uri: "file://{output}"}}
  nprocPerNode: 2
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("signals-data")
    rng = np.random.default_rng(0)
    for concept in ("red", "blue"):
        (root / concept).mkdir()
        for index in range(8):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / concept / f"{index}.png")
    return root


def start_run(dataset: Path, work: Path) -> tuple[subprocess.Popen, Path, Path]:
    output = work / "model"
    manifest = work / "job.yaml"
    manifest.write_text(MANIFEST.format(dataset=dataset, output=output))
    log = work / "cli.log"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DEEPTRAIN_")},
           "OMP_NUM_THREADS": "1", "DEEPTRAIN_REPORT": "none", "COLUMNS": "400"}
    with open(log, "w") as handle:
        # Its own session, as a shell job is: the signals below reach the CLI alone.
        process = subprocess.Popen([sys.executable, "-m", "deeptrain_cli.main", "run", str(manifest)],
                                   stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return process, output, log


def wait_until(condition, what: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"`deeptrain run` exited ({process.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {WAIT_SECONDS}s:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def trainer_tree(process: subprocess.Popen) -> list[psutil.Process]:
    return psutil.Process(process.pid).children(recursive=True)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
def test_killing_the_cli_ends_the_whole_torchrun_tree(signum, dataset, tmp_path):
    process, output, log = start_run(dataset, tmp_path)
    checkpoint = output / "checkpoints" / "last.pt"
    wait_until(lambda: "epoch 1/500:" in log.read_text(), "the first epoch", process, log)
    tree = trainer_tree(process)
    ranks = [p for p in tree if "deeptrain_trainer" in p.cmdline() and "--config" in p.cmdline()
             and "torchrun_logged" not in " ".join(p.cmdline())]
    assert len(ranks) == 2, [p.cmdline() for p in tree]
    written_before = checkpoint.stat().st_mtime_ns if checkpoint.exists() else 0

    process.send_signal(signum)
    code = process.wait(timeout=WAIT_SECONDS)
    _, alive = psutil.wait_procs(tree, timeout=WAIT_SECONDS)
    assert not alive, f"left running: {[p.cmdline() for p in alive]}\n{log.read_text()[-3000:]}"

    text = log.read_text()
    # Written on the signal, mid-epoch; after SIGKILL too, as torchrun passes on its parent-death SIGTERM.
    assert checkpoint.exists() and checkpoint.stat().st_mtime_ns > written_before, text[-3000:]
    assert "stopped by SIGTERM; the next run resumes from the checkpoint" in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 128 + signum, text[-3000:]
        assert "interrupted; checkpoint kept" in text, text[-3000:]

