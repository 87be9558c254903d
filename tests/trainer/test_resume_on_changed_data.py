"""Resume continues the same run on the same data only: a changed dataset starts a new run and says why.

The trainer runs in this process (one rank, no torchrun): what is tested is the decision, which every
rank of a gang takes from rank 0's listing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deeptrain_trainer.checkpoint import dataset_fingerprint, why_not_resume
from deeptrain_trainer.engine import run_from_config_file


@pytest.fixture
def signal_handlers_restored():
    """The trainer installs its SIGINT/SIGTERM handlers; give pytest its own back."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def train(config, output: Path) -> dict:
    output.mkdir(parents=True, exist_ok=True)
    (output / "job.json").write_text(config.model_dump_json())
    assert run_from_config_file(str(output / "job.json")) == 0
    return json.loads((output / "model.json").read_text())


def weights_sha(output: Path) -> str:
    return hashlib.sha256((output / "model.safetensors").read_bytes()).hexdigest()


def test_added_images_start_a_new_run_instead_of_passing_the_old_model_off(
        colour_squares, trainer_config, tmp_path, caplog, signal_handlers_restored, monkeypatch):
    monkeypatch.setenv("DEEPTRAIN_REPORT", "none")
    monkeypatch.setenv("DEEPTRAIN_TERMINATION_LOG", str(tmp_path / "termination-log"))
    dataset = tmp_path / "data"
    shutil.copytree(colour_squares, dataset)
    output = tmp_path / "model"
    config = trainer_config(output, dataset, batch_size=8, image_size=32, num_epochs=1, lrate=0.02,
                            num_items_per_epoch=16)
    first = train(config, output)
    first_weights = weights_sha(output)
    assert first["dataset"]["fingerprint"].startswith("sha256:")
    assert "newRunReason" not in first["dataset"]

    rng = np.random.default_rng(1)
    for index in range(12):  # the case: more images of one concept
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(dataset / "red" / f"new-{index}.png")
    with caplog.at_level(logging.INFO, logger="deeptrain_trainer"):
        changed = train(config, output)
    assert "the dataset changed since the checkpoint was written" in caplog.text
    assert "resumed from checkpoint" not in caplog.text
    assert "dataset changed" in changed["dataset"]["newRunReason"]
    assert changed["dataset"]["fingerprint"] != first["dataset"]["fingerprint"]
    assert changed["dataset"]["train"] > first["dataset"]["train"]
    assert weights_sha(output) != first_weights  # trained anew, not the old weights under a new card


def test_fingerprint_follows_the_listing(tmp_path):
    (tmp_path / "a").mkdir()
    image = tmp_path / "a" / "1.png"
    image.write_bytes(b"one")
    before = dataset_fingerprint([str(tmp_path)])
    assert dataset_fingerprint([str(tmp_path)]) == before
    image.write_bytes(b"two!")  # same name, new size and mtime
    assert dataset_fingerprint([str(tmp_path)]) != before
    assert dataset_fingerprint([str(image)]) != dataset_fingerprint([str(tmp_path)])  # a single file is listed too


def test_resume_decision():
    checkpoint = {"run_hash": "r", "dataset_fingerprint": "sha256:aaa"}
    assert why_not_resume(checkpoint, "r", "sha256:aaa") is None
    assert "another config" in why_not_resume(checkpoint, "other", "sha256:aaa")
    assert "dataset changed" in why_not_resume(checkpoint, "r", "sha256:bbb")
    assert "does not record" in why_not_resume({"run_hash": "r"}, "r", "sha256:aaa")
