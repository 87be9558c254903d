"""A classifier trained on video clips with real torchrun learns to tell the clips' digits apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deeptrain_api import catalog
from deeptrain_api.trainer_contract import DatasetConfig, JobRef, TemplateScale, TrainerConfig
from deeptrain_trainer.data.splits import load_splits
from deeptrain_trainer.datasets.video import write_digits_video
from deeptrain_trainer.inference import load_model
from deeptrain_trainer.launcher import run_local

pytestmark = pytest.mark.torchrun

CONCEPTS = ["zero", "one", "four"]
BAR = 0.7  # three digits: guessing scores 0.33


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainerConfig, Path]:
    root = tmp_path_factory.mktemp("video-training")
    write_digits_video(root / "data", None, concepts=CONCEPTS)
    config = TrainerConfig(
        job=JobRef(name="video-classifier", namespace="tests"), modelType=catalog.VISUAL_CLASSIFIER,
        template="InceptionBatchNorm", templateScale=TemplateScale(width=0.25, depth=0.34), concepts=CONCEPTS,
        hyperparameters=catalog.resolve_hyperparameters(catalog.VISUAL_CLASSIFIER, {
            "batch_size": 32, "image_size": 32, "num_epochs": 4, "lrate": 0.02, "num_items_per_epoch": 640,
            "average_horizontal_flips": False, "test_freq": 4}),
        dataset=DatasetConfig(uri=str(root / "data"), format="imagefolder", validation_fraction=0.3,
                              video_frame_rate=1.0),
        outputUri=(root / "model").as_uri())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEEPTRAIN_REPORT", "none")
        assert run_local(config, nproc=2) == 0
    return config, root


def test_a_video_classifier_reaches_held_out_accuracy_far_above_chance(trained):
    config, root = trained
    card = json.loads((root / "model" / "model.json").read_text())
    assert card["metrics"]["accuracy"] >= BAR, card["metrics"]
    # Held out were whole clips: no clip has a frame on both sides.
    splits = load_splits(config)
    assert not {r.uri for r in splits.train} & {r.uri for r in splits.validation}
    assert len(splits.validation) >= 4 * 20  # 4 frames (4 s at 1 per second) of at least 20 clips


def test_the_trained_model_predicts_a_held_out_clip_frame_by_frame(trained):
    config, root = trained
    splits = load_splits(config)
    clip = splits.validation[0]
    [entry] = load_model(root / "model").predict([clip.uri], video_frame_rate=2.0)
    assert [frame["timeOffsetMs"] for frame in entry["frames"]] == [500 * k for k in range(8)]
    assert [frame["frameIndex"] for frame in entry["frames"]] == [4 * k for k in range(8)]
    votes = [frame["concepts"][0]["id"] for frame in entry["frames"]]
    assert all(frame["concepts"][0]["id"] in CONCEPTS for frame in entry["frames"])
    assert len(votes) == 8
