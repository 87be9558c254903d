"""build_trainer_config: what the trainer is told, in the cluster and on this machine."""

from __future__ import annotations

import pytest

from deeptrain_api import DeepTrainingJob, catalog
from deeptrain_api.trainer_config import TrainerConfigError, build_trainer_config
from deeptrain_api.trainer_contract import load_config

from .manifest_files import minimal_job


def job(**spec) -> DeepTrainingJob:
    doc = minimal_job()
    doc["spec"].update(spec)
    return DeepTrainingJob.model_validate(doc)


def test_cluster_config_maps_pvc_uris_to_the_mount() -> None:
    config = build_trainer_config(job(dataset={"uri": "pvc://datasets/shoes", "format": "imagefolder",
                                               "validation": {"uri": "pvc://datasets/shoes-val"}}))
    assert config.dataset.uri == "file:///mnt/pvc/datasets/shoes"
    assert config.dataset.validation_uri == "file:///mnt/pvc/datasets/shoes-val"
    assert config.outputUri == "file:///mnt/pvc/models/shoes"


def test_hyperparameters_are_resolved_with_per_type_defaults_and_the_learning_rate() -> None:
    config = build_trainer_config(job(hyperparameters={"batch_size": 32, "per_128_lrate": 0.2}))
    hp = config.hyperparameters
    assert hp["batch_size"] == 32 and hp["image_size"] == 256 and hp["num_epochs"] == 65
    assert hp["lrate"] == pytest.approx(0.2 * 32 / 128)
    assert hp == catalog.resolve_hyperparameters("visual-classifier", {"batch_size": 32, "per_128_lrate": 0.2})


def test_job_identity_seed_and_template_are_carried() -> None:
    config = build_trainer_config(job(templateScale={"width": 0.5}, concepts=["boot", "sandal"]))
    assert (config.job.name, config.job.namespace, config.job.uid, config.job.generation) == ("shoes", "team-a", "u-1", 2)
    assert config.seed == 0 and config.template == "ResNext" and config.modelType == "visual-classifier"
    assert (config.templateScale.width, config.templateScale.depth) == (0.5, 1.0)
    assert config.concepts == ["boot", "sandal"]
    assert config.dataset.invalid_data_tolerance_percent == 5
    assert load_config(config.model_dump_json()) == config


def test_local_config_refuses_pvc_naming_the_field_and_the_fix() -> None:
    with pytest.raises(TrainerConfigError, match=r"^spec.dataset.uri: pvc://datasets/shoes .*use a file:// URI"):
        build_trainer_config(job(), local=True)
    local = job(dataset={"uri": "file://data/shoes", "format": "imagefolder"})
    with pytest.raises(TrainerConfigError, match=r"^spec.output.uri: .*--output"):
        build_trainer_config(local, local=True)
    config = build_trainer_config(local, local=True, output_uri="file:///tmp/out")
    assert config.dataset.uri == "file://data/shoes", "relative file:// URIs stay relative to the working directory"
    assert config.outputUri == "file:///tmp/out"


def test_base_model_from_a_uri_or_from_the_referenced_job() -> None:
    assert build_trainer_config(job(baseModel={"uri": "pvc://models/base"})).baseModelUri == "file:///mnt/pvc/models/base"
    referencing = job(baseModel={"deepTrainingJob": "shoe-embedder"})
    resolved = build_trainer_config(referencing, base_model_uri="pvc://models/shoe-embedder")
    assert resolved.baseModelUri == "file:///mnt/pvc/models/shoe-embedder"
    with pytest.raises(TrainerConfigError, match=r"^spec.baseModel.deepTrainingJob: .*baseModel.uri"):
        build_trainer_config(referencing)
    assert build_trainer_config(job()).baseModelUri is None
