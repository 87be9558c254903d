"""Real `torchrun --nproc-per-node 2` (gloo, CPU) training of every model type on the example datasets.

Each case trains a small model for a few epochs and asserts that the held-out primary metric beats
a bar well above what guessing scores, and that the output holds every artifact a user relies on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from deeptrain_trainer import catalog
from deeptrain_trainer.artifacts import sha256_file
from deeptrain_trainer.contract import TemplateScale, TrainerConfig
from deeptrain_trainer.inference import load_model

pytestmark = pytest.mark.torchrun

TORCHRUN_TIMEOUT_SECONDS = 600


def torchrun(config: TrainerConfig, output: Path, *, max_restarts: int = 0,
             extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    output.mkdir(parents=True, exist_ok=True)
    config_path = output / "job.json"
    config_path.write_text(config.model_dump_json())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DEEPTRAIN_REPORT": "none", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1",
           "DEEPTRAIN_TERMINATION_LOG": str(output.parent / f"{output.name}.termination-log"), **(extra_env or {})}
    log = open(output.parent / f"{output.name}.log", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         f"--max-restarts={max_restarts}", "-m", "deeptrain_trainer", "--config", str(config_path)],
        env=env, stdout=log, stderr=subprocess.STDOUT)


def train(config: TrainerConfig, output: Path) -> str:
    process = torchrun(config, output)
    code = process.wait(timeout=TORCHRUN_TIMEOUT_SECONDS)
    log = (output.parent / f"{output.name}.log").read_text()
    assert code == 0, log[-6000:]
    return log


@dataclass(frozen=True)
class Case:
    model_type: str
    template: str
    dataset: str
    dataset_file: str  # under the made dataset's folder ("" = the folder itself)
    dataset_format: str
    bar: float  # the primary metric must reach this
    why: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    concepts: list[str] | None = None  # train on these concept folders of an imagefolder only
    scale: TemplateScale = TemplateScale(width=0.25, depth=0.34)
    plots: tuple[str, ...] = ()


CASES = [
    Case(catalog.VISUAL_CLASSIFIER, "InceptionBatchNorm", "digits", "", "imagefolder", 0.7,
         "4 digits in random colours: guessing scores 0.25",
         {"batch_size": 32, "image_size": 32, "num_epochs": 8, "lrate": 0.02, "test_freq": 4},
         concepts=["zero", "one", "two", "three"], plots=("confusion_matrix.png",)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.model_type)
def test_model_type_learns_and_writes_complete_artifacts(case: Case, example_dataset, trainer_config, tmp_path):
    dataset = example_dataset(case.dataset)
    if case.concepts:  # an imagefolder with only these concept folders
        subset = tmp_path / "subset"
        for concept in case.concepts:
            shutil.copytree(dataset / concept, subset / concept)
        dataset = subset
    output = tmp_path / "model"
    config = trainer_config(output, dataset / case.dataset_file if case.dataset_file else dataset,
                         model_type=case.model_type, template=case.template, dataset_format=case.dataset_format,
                         scale=case.scale, validation_fraction=0.2, **case.hyperparameters)
    train(config, output)

    card = json.loads((output / "model.json").read_text())
    primary = catalog.model_type(case.model_type).primary_metric
    assert card["metrics"][primary] >= case.bar, f"{primary} {card['metrics'][primary]:.3f} < {case.bar} ({case.why})"

    # The card names the weights it describes, and they rebuild the model.
    assert card["checksum"] == "sha256:" + sha256_file(output / "model.safetensors")
    assert card["version"] == card["checksum"].removeprefix("sha256:")[:12]
    assert load_file(str(output / "model.safetensors"))
    assert card["modelType"] == case.model_type and card["concepts"]
    assert card["dataset"]["train"] > 0 and card["dataset"]["validation"] > 0
    history = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    epochs = 1 if case.template == "PatchCore" else case.hyperparameters["num_epochs"]
    assert [record["epoch"] for record in history] == list(range(1, epochs + 1))
    assert history[-1]["eval"][primary] == pytest.approx(card["metrics"][primary])
    assert list((output / "tensorboard").glob("events.out.tfevents.*"))
    for plot in ("training_curves.png", *case.plots):
        assert (output / "plots" / plot).stat().st_size > 0, plot
    assert (output / "checkpoints" / "last.pt").exists()
    termination = json.loads((tmp_path / "model.termination-log").read_text())
    assert termination["reason"] == "Succeeded" and termination["model"]["checksum"] == card["checksum"]

    # And the trained model predicts.
    predictor = load_model(output)
    assert predictor.concepts == card["concepts"]
