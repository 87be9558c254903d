"""load_splits: deterministic stratified splits, anomaly splits, concept checks, undecodable-image tolerance."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import fsspec
import pytest
from PIL import Image

from deeptrain_api import catalog
from deeptrain_api.trainer_contract import DatasetConfig, JobRef, TrainerConfig
from deeptrain_trainer.data import DatasetError, load_splits
from deeptrain_trainer.data.records import TextRecord
from deeptrain_trainer.data.splits import split_by_fraction

TEMPLATES = {catalog.VISUAL_CLASSIFIER: "ResNext", catalog.VISUAL_ANOMALY_HEATMAP: "PatchCore",
             catalog.TEXT_CLASSIFIER: "TextCNN"}


def config(uri: Path | str, *, model_type: str = catalog.VISUAL_CLASSIFIER, dataset_format: str = "imagefolder",
           seed: int = 0, concepts: list[str] | None = None, tolerance: float = 5.0,
           **dataset: object) -> TrainerConfig:
    return TrainerConfig(
        job=JobRef(name="splits"), modelType=model_type, template=TEMPLATES[model_type],
        hyperparameters=catalog.resolve_hyperparameters(model_type, {}), concepts=concepts, seed=seed,
        dataset=DatasetConfig(uri=str(uri), format=dataset_format, invalid_data_tolerance_percent=tolerance, **dataset),
        outputUri="file:///unused")


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (4, 4), 128).save(buffer, format="PNG")
    return buffer.getvalue()


def imagefolder(root: Path, counts: dict[str, int]) -> Path:
    for concept, count in counts.items():
        (root / concept).mkdir(parents=True)
        for index in range(count):
            (root / concept / f"{index:03d}.png").write_bytes(png())
    return root


def test_split_is_deterministic_stratified_and_seeded(tmp_path: Path) -> None:
    root = imagefolder(tmp_path / "data", {"cat": 40, "dog": 20})
    first = load_splits(config(root, validation_fraction=0.25))
    again = load_splits(config(root, validation_fraction=0.25))
    other_seed = load_splits(config(root, validation_fraction=0.25, seed=1))
    assert [r.uri for r in first.validation] == [r.uri for r in again.validation]
    assert [r.uri for r in first.validation] != [r.uri for r in other_seed.validation]
    assert Counter(r.concepts[0] for r in first.validation) == {"cat": 10, "dog": 5}
    assert {r.uri for r in first.train}.isdisjoint(r.uri for r in first.validation)
    assert len(first.train) + len(first.validation) == 60
    assert first.concepts == ["cat", "dog"]


def test_validation_uri_and_spec_concept_order(tmp_path: Path) -> None:
    train = imagefolder(tmp_path / "train", {"cat": 3, "dog": 3})
    validation = imagefolder(tmp_path / "val", {"dog": 2})
    splits = load_splits(config(train, validation_uri=str(validation), concepts=["dog", "cat"]))
    assert (len(splits.train), len(splits.validation), splits.concepts) == (6, 2, ["dog", "cat"])


def test_concept_without_training_example_is_named(tmp_path: Path) -> None:
    train = imagefolder(tmp_path / "train", {"cat": 3})
    validation = imagefolder(tmp_path / "val", {"cat": 1, "dog": 1})
    with pytest.raises(DatasetError, match="concept 'dog' has no training example"):
        load_splits(config(train, validation_uri=str(validation)))


def test_empty_validation_split_is_an_error(tmp_path: Path) -> None:
    root = imagefolder(tmp_path / "data", {"cat": 1})
    with pytest.raises(DatasetError, match="validation split is empty"):
        load_splits(config(root, validation_fraction=0.5))


def test_anomaly_trains_on_normal_images_and_validates_on_both(tmp_path: Path) -> None:
    root = imagefolder(tmp_path / "data", {"good": 10, "crack": 4})
    splits = load_splits(config(root, model_type=catalog.VISUAL_ANOMALY_HEATMAP, validation_fraction=0.2))
    assert {r.concepts[0] for r in splits.train} == {"good"} and len(splits.train) == 8
    assert Counter(r.concepts[0] for r in splits.validation) == {"good": 2, "crack": 4}


def test_anomaly_without_normal_images_is_an_error(tmp_path: Path) -> None:
    root = imagefolder(tmp_path / "data", {"crack": 4})
    with pytest.raises(DatasetError, match="no normal images"):
        load_splits(config(root, model_type=catalog.VISUAL_ANOMALY_HEATMAP))


def test_missing_image_names_the_jsonl_line(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png())
    path = tmp_path / "data.jsonl"
    path.write_text('{"image": "a.png", "concepts": [{"id": "x"}]}\n{"image": "gone.png", "concepts": [{"id": "x"}]}\n')
    with pytest.raises(DatasetError, match="gone.png not found") as error:
        load_splits(config(path, dataset_format="jsonl"))
    assert error.value.location == f"{path}:2"


def test_unlabelled_input_is_an_error_for_softmax(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("input,concepts\nfine film,pos\nbad film,neg\nno label here,\n")
    with pytest.raises(DatasetError, match="has no concept") as error:
        load_splits(config(path, model_type=catalog.TEXT_CLASSIFIER, dataset_format="csv"))
    assert error.value.location == f"{path}:4"


def test_undecodable_images_are_dropped_and_counted_within_tolerance(tmp_path: Path) -> None:
    root = imagefolder(tmp_path / "data", {"cat": 10, "dog": 10})
    (root / "dog" / "005.png").write_bytes(b"not a png at all")
    splits = load_splits(config(root, tolerance=5.0))
    assert (splits.image_stats.skipped, splits.image_stats.total) == (1, 20)
    assert splits.image_stats.skipped_fraction() == pytest.approx(0.05)
    assert all(not r.uri.endswith("dog/005.png") for r in splits.train + splits.validation)
    assert "dog/005.png" in splits.image_stats.summary()


def test_undecodable_images_over_tolerance_fail(tmp_path: Path) -> None:
    root = imagefolder(tmp_path / "data", {"cat": 10, "dog": 10})
    for index in (1, 2):
        (root / "dog" / f"{index:03d}.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"2 of 20 images could not be decoded.*10.0% is over the tolerated 5%"):
        load_splits(config(root, tolerance=5.0))


def test_tiny_groups_still_give_a_validation_example() -> None:
    records = [TextRecord(text=str(i), concepts=[concept]) for i, concept in enumerate("aabbc")]
    train, validation = split_by_fraction(records, 0.1, 0, catalog.TEXT_CLASSIFIER)
    assert len(validation) == 1 and len(train) == 4


def test_load_splits_over_an_object_store_filesystem() -> None:
    fs = fsspec.filesystem("memory")
    lines = []
    for index in range(6):
        fs.pipe(f"/splits-test/img/{index}.png", png())
        lines.append(f'{{"image": "img/{index}.png", "concepts": [{{"id": "{"ab"[index % 2]}"}}]}}')
    fs.pipe("/splits-test/data.jsonl", "\n".join(lines).encode())
    splits = load_splits(config("memory://splits-test/data.jsonl", dataset_format="jsonl", validation_fraction=0.34))
    assert (len(splits.train), len(splits.validation), splits.concepts) == (4, 2, ["a", "b"])
    assert all(r.uri.startswith("memory://") for r in splits.train)


def test_spec_concepts_subset_trains_only_those_concepts(tmp_path: Path) -> None:
    root = imagefolder(tmp_path / "data", {"boot": 10, "sandal": 10, "sneaker": 10})
    splits = load_splits(config(root, concepts=["sneaker", "boot"], validation_fraction=0.2))
    assert splits.concepts == ["sneaker", "boot"]
    seen = {concept for record in splits.train + splits.validation for concept in record.concepts}
    assert seen == {"boot", "sneaker"}
    assert len(splits.train) + len(splits.validation) == 20


def jsonl_with_broken_lines(root: Path, total: int, broken: int) -> Path:
    imagefolder(root, {"cat": 4, "dog": 4})
    lines = [f'{{"image": "{concept}/{index % 4:03d}.png", "concepts": [{{"id": "{concept}"}}]}}'
             for index in range(total // 2) for concept in ("cat", "dog")]
    for position in range(broken):
        lines[7 + position * 3] = '{"image": "cat/000.png", "concepts": ['  # a line torn mid-write
    (root / "annotations.jsonl").write_text("\n".join(lines) + "\n")
    return root / "annotations.jsonl"


def test_one_broken_jsonl_line_of_200_is_tolerated_and_counted(tmp_path: Path) -> None:
    annotations = jsonl_with_broken_lines(tmp_path / "data", 200, broken=1)
    splits = load_splits(config(annotations, dataset_format="jsonl"))
    assert len(splits.train) + len(splits.validation) == 199
    assert splits.image_stats.skipped == 1
    assert any("annotations.jsonl:8" in example for example in splits.image_stats.examples)


def test_broken_jsonl_lines_over_the_tolerance_fail_naming_a_line(tmp_path: Path) -> None:
    annotations = jsonl_with_broken_lines(tmp_path / "data", 200, broken=11)  # 5.5%
    with pytest.raises(DatasetError, match=r"11 of 200 lines are invalid, e\.g\. .*annotations\.jsonl:8.*"
                                           r"5\.5% is over the tolerated 5%"):
        load_splits(config(annotations, dataset_format="jsonl"))
    with pytest.raises(DatasetError, match="annotations.jsonl:8"):
        load_splits(config(jsonl_with_broken_lines(tmp_path / "strict", 200, broken=1), dataset_format="jsonl",
                           tolerance=0))


def test_a_classifier_needs_two_concepts_with_data(tmp_path: Path) -> None:
    root = imagefolder(tmp_path / "data", {"cat": 20})
    (root / "dog").mkdir()  # a concept folder without images teaches nothing
    with pytest.raises(DatasetError, match=r"at least two concepts with training data; found only 'cat'; "
                                           r"add data of another concept"):
        load_splits(config(root))


def test_the_failure_line_keeps_bracketed_fixes(tmp_path: Path) -> None:
    """The COCO box message's fix names "[x, y, width, height]": a console must print it, not eat it as markup."""
    import io as text_io

    from rich.console import Console

    from deeptrain_api.trainer_contract import TerminationMessage
    from deeptrain_trainer.launcher import print_failure

    out = text_io.StringIO()
    message = TerminationMessage(reason="InvalidDataset", exitCode=11, permanent=True,
                                 message="coco.json: annotations[0]: bbox [5, 5, 0, 0] is empty or outside the 4x4 "
                                         "image; give [x, y, width, height] in pixels with positive width and height")
    print_failure(Console(file=out, width=400), message, exit_code=1, log_path=tmp_path / "torchrun.log")
    printed = out.getvalue()
    assert "give [x, y, width, height] in pixels" in printed and "bbox [5, 5, 0, 0]" in printed
    assert f"torchrun's log (with its traceback): {tmp_path / 'torchrun.log'}" in printed
