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

from deeptrain_api import catalog
from deeptrain_api.trainer_contract import TemplateScale, TrainerConfig
from deeptrain_trainer.artifacts import sha256_file
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
    bar: float  # `metric` must reach this
    why: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    concepts: list[str] | None = None  # train on these concept folders of an imagefolder only
    scale: TemplateScale = TemplateScale(width=0.25, depth=0.34)
    plots: tuple[str, ...] = ()
    metric: str = ""  # the metric held to `bar`; default: the model type's primary metric


DIGITS_SUBSET = ["zero", "one", "two", "three"]

CASES = [
    Case(catalog.VISUAL_CLASSIFIER, "InceptionBatchNorm", "digits", "", "imagefolder", 0.7,
         "4 digits drawn in random colours: guessing scores 0.25",
         {"batch_size": 32, "image_size": 32, "num_epochs": 6, "lrate": 0.02, "test_freq": 3},
         concepts=DIGITS_SUBSET, plots=("confusion_matrix.png",)),
    Case(catalog.VISUAL_EMBEDDER, "InceptionBatchNorm", "digits", "", "imagefolder", 0.6,
         "nearest neighbour of the same digit among 4: random embeddings score about 0.25",
         {"batch_size": 32, "image_size": 32, "num_epochs": 6, "lrate": 0.02, "test_freq": 3},
         concepts=DIGITS_SUBSET, plots=("embeddings_pca.png",)),
    Case(catalog.TEXT_CLASSIFIER, "TextCNN", "text", "data.csv", "csv", 0.7,
         "plot summary vs review, balanced classes: the majority class scores 0.5",
         {"batch_size": 32, "num_epochs": 5, "lrate": 0.005, "test_freq": 5}, plots=("confusion_matrix.png",)),
    Case(catalog.VISUAL_ANOMALY_HEATMAP, "PatchCore", "texture-anomaly", "", "imagefolder", 0.8,
         "defective vs good brick patches: random scores give an AUROC of 0.5",
         {"batch_size": 16, "image_size": 64, "num_epochs": 1}, plots=("sample_heatmaps.png",)),
    Case(catalog.VISUAL_SEGMENTER, "ResNext", "digits-segmentation", "annotations.jsonl", "jsonl", 0.1,
         "mean IoU over the 3 digit concepts: predicting background everywhere scores 0",
         {"batch_size": 16, "image_size": 64, "num_epochs": 6, "lrate": 0.05, "test_freq": 3}, plots=("sample_masks.png",),
         metric="mean_iou_foreground"),
    Case(catalog.VISUAL_DETECTOR, "InceptionV2", "shapes-detection", "annotations.json", "coco", 0.5,
         "mAP at IoU 0.5 over circles, squares, triangles: boxes at random positions score near 0",
         {"batch_size": 16, "image_size": 128, "num_epochs": 4, "lrate": 0.01, "test_freq": 2},
         plots=("precision_recall.png",)),
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
    held = case.metric or primary
    assert card["metrics"][held] >= case.bar, f"{held} {card['metrics'][held]:.3f} < {case.bar} ({case.why})"
    assert set(card["metricDefinitions"]) == set(card["metrics"])  # the card says what every number means

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


def test_local_run_launches_torchrun_and_summarises(colour_squares, trainer_config, tmp_path, monkeypatch, capfd):
    from deeptrain_trainer.launcher import run_local

    monkeypatch.setenv("DEEPTRAIN_REPORT", "none")
    output = tmp_path / "model"
    config = trainer_config(output, colour_squares, batch_size=8, image_size=32, num_epochs=2, lrate=0.02,
                            num_items_per_epoch=16)
    assert run_local(config, nproc=2) == 0
    assert json.loads((output / "job.json").read_text())["modelType"] == catalog.VISUAL_CLASSIFIER
    shown = capfd.readouterr().err
    assert "accuracy" in shown and str(output / "model.safetensors") in shown


def test_local_run_refuses_a_batch_that_does_not_split_over_the_processes(colour_squares, trainer_config, tmp_path, capfd):
    from deeptrain_trainer.launcher import run_local

    config = trainer_config(tmp_path / "model", colour_squares, batch_size=9, image_size=32, num_epochs=1)
    assert run_local(config, nproc=2) == 10
    assert "spec.hyperparameters.batch_size" in capfd.readouterr().err
    assert not (tmp_path / "model" / "job.json").exists()


def test_dataset_errors_fail_permanently_with_the_location(trainer_config, tmp_path):
    empty = tmp_path / "empty-dataset"
    empty.mkdir()
    output = tmp_path / "model"
    config = trainer_config(output, empty, batch_size=8, image_size=32, num_epochs=1)
    process = torchrun(config, output)
    assert process.wait(timeout=TORCHRUN_TIMEOUT_SECONDS) != 0
    message = json.loads((tmp_path / "model.termination-log").read_text())
    assert message["reason"] == "InvalidDataset" and message["exitCode"] == 11 and message["permanent"]
    assert str(empty) in message["message"]
