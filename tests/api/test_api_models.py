"""The pydantic models: same defaults as the schema, lossless round trips, and the operator's own checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from deeptrain_api import DeepTrainingJob, Workflow, structural
from deeptrain_api.checks import validate_job
from deeptrain_api.crdgen import schema_for

from .manifest_files import VALID_FILES, documents, minimal_job

MODELS = {"DeepTrainingJob": DeepTrainingJob, "Workflow": Workflow}


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.stem)
def test_model_defaults_equal_schema_defaults(path: Path) -> None:
    """What the operator reads from a manifest is what the cluster would have stored."""
    for doc in documents(path):
        schema = schema_for(doc["kind"])
        stored = structural.prune(schema, structural.apply_defaults(schema, doc))
        assert MODELS[doc["kind"]].model_validate(doc).to_dict() == stored


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.stem)
def test_round_trip_is_lossless(path: Path) -> None:
    for doc in documents(path):
        model = MODELS[doc["kind"]].model_validate(doc)
        again = type(model).model_validate(model.to_dict())
        assert again == model and again.to_dict() == model.to_dict()


def test_attributes_read_like_the_manifest() -> None:
    job = DeepTrainingJob.model_validate(minimal_job())
    assert job.spec.runPolicy.backoffLimit == 3
    assert job.spec.nprocPerNode == "auto"
    assert job.spec.hyperparameters.init_epochs == 25
    assert job.spec.hyperparameters.image_size is None
    assert job.metadata.uid == "u-1" and job.status is None


def test_status_round_trips_and_tolerates_newer_fields() -> None:
    doc = minimal_job()
    doc["status"] = {
        "observedGeneration": 2, "phase": "Succeeded", "attempt": 1, "restarts": 0,
        "hyperparameters": {"batch_size": 64, "lrate": 0.005, "logreg": False},
        "conditions": [{"type": "Succeeded", "status": "True", "reason": "TrainingFinished", "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 2}],
        "progress": {"epoch": 3, "epochs": 3, "percent": 100, "lastEval": {"accuracy": 0.96}},
        "model": {"uri": "pvc://models/shoes", "version": "0123456789ab", "format": "safetensors",
                  "concepts": ["boot"], "metrics": {"accuracy": 0.96}, "checksum": "sha256:00"},
        "metric": "accuracy=0.960",
        "workflows": [{"name": "shoe-search"}],
    }
    job = DeepTrainingJob.model_validate(doc)
    assert job.status.model.metrics == {"accuracy": 0.96} and job.status.hyperparameters["lrate"] == 0.005
    assert job.to_dict()["status"] == doc["status"]
    assert structural.validate(schema_for("DeepTrainingJob"), doc) == []
    doc["status"]["somethingNewer"] = 1
    assert DeepTrainingJob.model_validate(doc).status.phase == "Succeeded"


@pytest.mark.parametrize(("edit", "where"), [
    (lambda s: s.setdefault("hyperparameters", {}).update(batch_size=0), ("spec", "hyperparameters", "batch_size")),
    (lambda s: s.setdefault("hyperparameters", {}).update(lrate=0.1, per_128_lrate=0.1), ("spec", "hyperparameters")),
    (lambda s: s.setdefault("hyperparameters", {}).update(bach_size=1), ("spec", "hyperparameters", "bach_size")),
    (lambda s: s["dataset"].update(validation={}), ("spec", "dataset", "validation")),
    (lambda s: s["dataset"].update(uri="ftp://x"), ("spec", "dataset", "uri")),
    (lambda s: s.update(baseModel={"deepTrainingJob": "a", "uri": "file://b"}), ("spec", "baseModel")),
    (lambda s: s.update(nprocPerNode=0), ("spec", "nprocPerNode")),
    (lambda s: s.update(concepts=["a", "a"]), ("spec", "concepts")),
    (lambda s: s.update(templateScale={"width": 0}), ("spec", "templateScale", "width")),
])
def test_models_reject_what_the_schema_rejects(edit, where) -> None:
    doc = minimal_job()
    edit(doc["spec"])
    with pytest.raises(ValidationError) as caught:
        DeepTrainingJob.model_validate(doc)
    assert caught.value.errors()[0]["loc"][: len(where)] == where


def test_workflow_model_checks_the_graph() -> None:
    node = {"id": "detect", "model": {"deepTrainingJob": "d"}}
    spec = {"nodes": [node, dict(node, id="embed", inputs=["crop"])]}
    with pytest.raises(ValidationError, match="must name a node listed before it"):
        Workflow.model_validate({"metadata": {"name": "w"}, "spec": spec})
    with pytest.raises(ValidationError, match="repeated"):
        Workflow.model_validate({"metadata": {"name": "w"}, "spec": {"nodes": [node, node]}})


def test_validate_job_uses_the_catalog() -> None:
    doc = minimal_job()
    doc["spec"].update(template="InceptionV4")
    doc["spec"]["hyperparameters"] = {"detection_score_threshold": 0.5}
    fields = [field for field, _ in validate_job(DeepTrainingJob.model_validate(doc))]
    assert fields == ["spec.template", "spec.hyperparameters.detection_score_threshold"]


def test_validate_job_checks_names_batch_and_gpus() -> None:
    doc = minimal_job()
    assert validate_job(DeepTrainingJob.model_validate(doc)) == []
    doc["metadata"]["name"] = "1-shoes"
    assert [f for f, _ in validate_job(DeepTrainingJob.model_validate(doc))] == ["metadata.name"]
    doc = minimal_job()
    doc["spec"].update(workers=4, nprocPerNode=8, hyperparameters={"batch_size": 16})
    ((field, message),) = validate_job(DeepTrainingJob.model_validate(doc))
    assert field == "spec.hyperparameters.batch_size" and "32 training processes" in message
    # "auto" is only known from the pods' resources: 2 workers x 3 GPUs cannot share a batch of 64.
    doc = minimal_job()
    doc["spec"].update(workers=2, resources={"limits": {"nvidia.com/gpu": 3}}, hyperparameters={"batch_size": 64})
    ((field, message),) = validate_job(DeepTrainingJob.model_validate(doc))
    assert field == "spec.hyperparameters.batch_size" and "64" in message and "6 training processes" in message
    doc["spec"]["hyperparameters"] = {"batch_size": 66}
    assert validate_job(DeepTrainingJob.model_validate(doc)) == []
    doc = minimal_job()
    doc["spec"]["baseModel"] = {"deepTrainingJob": "shoes"}
    assert [f for f, _ in validate_job(DeepTrainingJob.model_validate(doc))] == ["spec.baseModel.deepTrainingJob"]
