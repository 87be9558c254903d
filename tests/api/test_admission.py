"""Admission as the cluster does it (structural.validate + apply_defaults + prune) and as `deeptrain validate` does it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from deeptrain_api import manifests, structural
from deeptrain_api.crdgen import schema_for
from deeptrain_api.manifests import ManifestError, load_job, load_objects

from .manifest_files import (
    FIXTURES,
    INVALID,
    VALID_FILES,
    documents,
    expected_apiserver_fields,
    expected_field,
    minimal_job,
)

INVALID_FILES = sorted(INVALID.glob("*.yaml"))


def admit(doc: dict, old: dict | None = None) -> list[structural.FieldError]:
    schema = schema_for(doc["kind"])
    return structural.validate(schema, structural.apply_defaults(schema, doc), old=old, strict=True)


def test_there_is_a_broken_manifest_per_rule() -> None:
    assert len(INVALID_FILES) >= 15


@pytest.mark.parametrize("path", INVALID_FILES, ids=lambda p: p.stem)
def test_broken_manifest_rejected_by_schema_at_its_field(path: Path) -> None:
    (doc,) = documents(path)
    errors = [error for error in admit(doc) if error.message != structural.NOT_CHECKED]
    assert [error.path for error in errors] == expected_apiserver_fields(path), [str(e) for e in errors]


@pytest.mark.parametrize("path", INVALID_FILES, ids=lambda p: p.stem)
def test_broken_manifest_rejected_by_load_objects_in_one_line(path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        load_objects(path)
    message = str(caught.value)
    assert caught.value.field == expected_field(path)
    assert message.startswith(expected_field(path) + ": ") and "\n" not in message


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.stem)
def test_valid_manifests_pass(path: Path) -> None:
    for doc in documents(path):
        assert admit(doc) == []
    objects = load_objects(path)
    assert [obj.metadata.name for obj in objects] == [doc["metadata"]["name"] for doc in documents(path)]


def test_schema_defaults_fill_what_the_user_left_out() -> None:
    schema = schema_for("DeepTrainingJob")
    spec = structural.apply_defaults(schema, minimal_job())["spec"]
    assert spec["workers"] == 1
    assert spec["nprocPerNode"] == "auto"
    assert spec["runPolicy"] == {"suspend": False, "backoffLimit": 3}
    assert spec["dataset"]["invalidDataTolerancePercent"] == 5
    assert spec["scheduling"] == {"gang": ""}
    # Only hyperparameters that apply to every model type have schema defaults.
    assert spec["hyperparameters"] == {"base_gradient_multiplier": 1.0, "gradient_clip_norm": 10.0, "init_epochs": 25,
                                       "num_items_per_epoch": 0, "step_epochs": 7, "test_freq": 1}


def test_type_specific_hyperparameters_get_no_schema_default_so_a_detector_is_valid() -> None:
    job = minimal_job()
    job["spec"].update(modelType="visual-detector", template="InceptionV2")
    assert admit(job) == []


def test_explicit_null_is_dropped_like_an_omitted_field() -> None:
    job = minimal_job()
    job["spec"]["runPolicy"] = {"activeDeadlineSeconds": None}
    defaulted = structural.apply_defaults(schema_for("DeepTrainingJob"), job)
    assert defaulted["spec"]["runPolicy"] == {"suspend": False, "backoffLimit": 3}


def test_wrong_types_are_reported_and_rules_wait_for_them() -> None:
    job = minimal_job()
    job["spec"]["workers"] = "two"
    job["spec"]["template"] = "InceptionV4"  # also wrong, but a CEL rule finds it: not checked yet
    errors = admit(job)
    assert str(errors[0]) == 'spec.workers: Invalid value: "string": spec.workers in body must be of type integer: "string"'
    assert "some validation rules were not checked" in str(errors[-1])
    assert not any(error.path == "spec.template" for error in errors)


def test_error_message_has_the_apiserver_shape() -> None:
    job = minimal_job()
    job["spec"]["template"] = "InceptionV4"
    text = structural.format_error("DeepTrainingJob", "shoes", admit(job))
    # As recorded from a real apiserver: a failed rule on an object prints no value.
    assert text == ('DeepTrainingJob.deeptrain.dev "shoes" is invalid: spec.template: Invalid value: '
                    "spec.template InceptionV4 is not offered for visual-classifier; use one of: InceptionV2, "
                    "InceptionBatchNorm, InceptionResnetV2, ResNext")


def test_unknown_fields_are_errors_only_when_strict_and_pruning_drops_them() -> None:
    schema = schema_for("DeepTrainingJob")
    job = structural.apply_defaults(schema, minimal_job())
    job["spec"]["hyperparameters"]["bach_size"] = 64
    job["spec"]["extra"] = True
    assert structural.validate(schema, job) == []
    # Unknown hyperparameters are kept (never pruned silently) for the operator to refuse by name.
    assert {e.path for e in structural.validate(schema, job, strict=True)} == {"spec.extra"}
    pruned = structural.prune(schema, job)
    assert pruned["spec"]["hyperparameters"]["bach_size"] == 64 and "extra" not in pruned["spec"]
    assert pruned["metadata"] == job["metadata"], "metadata belongs to the apiserver and is never pruned"


def test_unknown_hyperparameter_is_named_with_the_names_that_exist() -> None:
    job = minimal_job()
    job["spec"]["hyperparameters"] = {"bach_size": 64}
    with pytest.raises(ManifestError) as caught:
        manifests.admit(job)
    assert caught.value.field == "spec.hyperparameters.bach_size"
    assert "did you mean batch_size?" in caught.value.message and "per_128_lrate" in caught.value.message


def test_nproc_per_node_is_int_or_string() -> None:
    for value, ok in ((4, True), ("auto", True), ("4", False), (0, False), (True, False)):
        job = minimal_job()
        job["spec"]["nprocPerNode"] = value
        assert (admit(job) == []) is ok, value


def test_quantities_accept_ints_and_kubernetes_strings() -> None:
    job = minimal_job()
    job["spec"]["resources"] = {"limits": {"nvidia.com/gpu": 1, "memory": "16Gi", "cpu": "500m"}}
    assert admit(job) == []
    job["spec"]["resources"]["limits"]["memory"] = "16 gigs"
    assert [e.path for e in admit(job)] == ["spec.resources.limits[memory]"]


def test_condition_lists_are_keyed_by_type() -> None:
    job = minimal_job()
    condition = {"type": "Running", "status": "True", "reason": "AllWorkersReady",
                 "lastTransitionTime": "2026-01-01T00:00:00Z"}
    job["status"] = {"phase": "Running", "conditions": [condition, dict(condition, status="False")]}
    assert [(e.path, e.type) for e in admit(job)] == [("status.conditions[1]", structural.DUPLICATE)]


def test_timestamps_must_be_rfc3339() -> None:
    job = minimal_job()
    job["status"] = {"startTime": "yesterday"}
    assert [e.path for e in admit(job)] == ["status.startTime"]


# --- immutability while the job runs -----------------------------------------------------------------


def _running_pair() -> tuple[dict, dict]:
    old, new = documents(FIXTURES / "immutable-edit-while-running.yaml")
    schema = schema_for("DeepTrainingJob")
    return structural.apply_defaults(schema, old), structural.apply_defaults(schema, new)


def test_spec_edit_of_a_running_job_is_refused() -> None:
    old, new = _running_pair()
    errors = structural.validate(schema_for("DeepTrainingJob"), new, old=old)
    assert len(errors) == 1 and errors[0].path == ""
    assert "suspend the job" in errors[0].message and "runPolicy" in errors[0].message


def test_the_same_edit_passes_on_create_and_once_the_job_finished() -> None:
    old, new = _running_pair()
    schema = schema_for("DeepTrainingJob")
    assert structural.validate(schema, new) == []
    for phase in ("Succeeded", "Failed", "Suspended"):
        finished = copy.deepcopy(old)
        finished["status"]["phase"] = phase
        assert structural.validate(schema, new, old=finished) == [], phase


@pytest.mark.parametrize("edit", [
    lambda spec: spec["runPolicy"].update(suspend=True),
    lambda spec: spec["runPolicy"].update(backoffLimit=10),
    lambda spec: spec["scheduling"].update(queueName="team-b", priorityClassName="high"),
])
def test_run_policy_and_queue_stay_editable_while_running(edit) -> None:
    old, _ = _running_pair()
    new = copy.deepcopy(old)
    edit(new["spec"])
    assert structural.validate(schema_for("DeepTrainingJob"), new, old=old) == []


@pytest.mark.parametrize("edit", [
    lambda spec: spec.update(workers=4),
    lambda spec: spec["scheduling"].update(nodeSelector={"gpu": "h100"}),
    lambda spec: spec.update(image="example.org/trainer:2"),
    lambda spec: spec["hyperparameters"].pop("batch_size"),
])
def test_other_spec_edits_are_refused_while_running(edit) -> None:
    old, _ = _running_pair()
    new = copy.deepcopy(old)
    edit(new["spec"])
    assert len(structural.validate(schema_for("DeepTrainingJob"), new, old=old)) == 1


def test_status_updates_of_a_running_job_pass() -> None:
    old, _ = _running_pair()
    new = copy.deepcopy(old)
    new["status"].update(phase="Succeeded", progress={"percent": 100, "epoch": 3, "epochs": 3})
    assert structural.validate(schema_for("DeepTrainingJob"), new, old=old) == []


def test_workflow_node_rules_see_old_items_by_id() -> None:
    schema = schema_for("Workflow")
    (workflow,) = documents(FIXTURES / "workflow.yaml")
    reordered = copy.deepcopy(workflow)
    reordered["spec"]["nodes"].reverse()
    assert [e.path for e in structural.validate(schema, reordered, old=workflow)] == ["spec.nodes"]


# --- load_objects / load_job -------------------------------------------------------------------------


def test_load_job_reads_one_job(tmp_path: Path) -> None:
    job = load_job(FIXTURES / "classifier.yaml")
    assert job.spec.runPolicy.backoffLimit == 3 and job.spec.hyperparameters.batch_size == 64
    with pytest.raises(ManifestError, match="exactly one DeepTrainingJob"):
        load_job(FIXTURES / "more-types.yaml")


def test_load_objects_names_the_document_of_a_multi_document_file(tmp_path: Path) -> None:
    docs = documents(FIXTURES / "more-types.yaml")
    docs[1]["spec"]["workers"] = 0
    path = tmp_path / "jobs.yaml"
    path.write_text("---\n".join(yaml.safe_dump(doc) for doc in docs))
    with pytest.raises(ManifestError) as caught:
        load_objects(path)
    assert str(caught.value).startswith("document 2: spec.workers: ")


@pytest.mark.parametrize(("text", "field"), [
    ("kind: Pod\napiVersion: v1\nmetadata: {name: x}\n", "kind"),
    ("kind: DeepTrainingJob\napiVersion: deeptrain.dev/v1\nmetadata: {name: x}\n", "apiVersion"),
    ("kind: Workflow\napiVersion: deeptrain.dev/v1alpha1\nspec: {}\n", "metadata.name"),
    ("kind: [unclosed\n", "(yaml)"),
    ("", "(file)"),
])
def test_load_objects_rejects_what_is_not_a_deeptrain_object(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as caught:
        load_objects(path)
    assert caught.value.field == field and "\n" not in str(caught.value)


def test_load_objects_applies_the_operator_checks(tmp_path: Path) -> None:
    (doc,) = documents(FIXTURES / "detector.yaml")
    doc["spec"]["nprocPerNode"] = 4  # the pods request 2 GPUs
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ManifestError, match=r'^spec.nprocPerNode: 4 processes per pod but 2 GPUs requested; use "auto"'):
        load_objects(path)


def test_deeptrain_validate_command_names_the_field_and_fails() -> None:
    from typer.testing import CliRunner

    from deeptrain_cli.main import app

    broken = INVALID / "template-not-offered.yaml"
    result = CliRunner().invoke(app, ["validate", str(FIXTURES / "workflow.yaml"), str(broken)])
    assert result.exit_code == 1
    assert "Workflow/shoe-search is valid" in result.output
    assert f"{broken}: spec.template: " in result.output
