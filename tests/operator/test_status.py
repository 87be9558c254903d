"""compute_status: each observed situation -> the conditions, phase and reason a user reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from operator_samples import make_job

from deeptrain_api.trainer_contract import ModelSummary, TerminationMessage
from deeptrain_operator import builders
from deeptrain_operator.events import transition_events
from deeptrain_operator.status import BaseModelState, Observed, compute_status, format_time

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
MODEL = ModelSummary(uri="file:///mnt/pvc/models/shoes", version="0123456789ab", concepts=["boot", "sandal"],
                     metrics={"accuracy": 0.9623, "loss": 0.12}, checksum="sha256:00")


def trainer_job(attempt: int = 1, *, suspend: bool = False, conditions: list[dict[str, Any]] | None = None,
                deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"shoes-{attempt}", "namespace": "team-a", "uid": f"job-uid-{attempt}",
                            "labels": builders.labels("shoes", "trainer", attempt)}
    if deleting:
        meta["deletionTimestamp"] = format_time(NOW)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {"suspend": suspend},
            "status": {"conditions": conditions or []}}


def pod(index: int, phase: str = "Pending", attempt: int = 1, *, terminated: dict[str, Any] | None = None,
        waiting: dict[str, Any] | None = None, conditions: list[dict[str, Any]] | None = None,
        reason: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if terminated is not None:
        state["terminated"] = terminated
    elif waiting is not None:
        state["waiting"] = waiting
    elif phase == "Running":
        state["running"] = {}
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or [],
                              "containerStatuses": [{"name": "trainer", "state": state}]}
    if phase == "Running":
        status["conditions"] = [{"type": "Ready", "status": "True"}, *status["conditions"]]
    if reason:
        status["reason"] = reason
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"shoes-{attempt}-{index}-abcde", "namespace": "team-a",
                         "labels": builders.labels("shoes", "trainer", attempt),
                         "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
                         "ownerReferences": [{"kind": "Job", "uid": f"job-uid-{attempt}", "controller": True}]},
            "status": status}


def exited(code: int, message: str = "", reason: str = "Error") -> dict[str, Any]:
    return {"exitCode": code, "reason": reason, "message": message}


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def status_after(*steps: tuple[dict[str, Any], Observed], job_spec: dict[str, Any] | None = None,
                 now: datetime = NOW) -> dict[str, Any]:
    """Run compute_status over a sequence of observations, feeding each status into the next."""
    status: dict[str, Any] | None = None
    for spec, observed in steps:
        job = make_job({**(job_spec or {}), **spec}, status=_stored(status))
        status = compute_status(job, observed, now)
    assert status is not None
    return status


def _stored(status: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the apiserver keeps: None values are dropped by the merge patch."""
    if status is None:
        return None
    return {key: value for key, value in status.items() if value is not None}


def compute(observed: Observed, *, spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None,
            now: datetime = NOW, generation: int = 1) -> dict[str, Any]:
    return compute_status(make_job(spec, status=_stored(status), generation=generation), observed, now)


RUNNING = Observed(trainer_jobs=[trainer_job()], pods=[pod(0, "Running"), pod(1, "Running")])


def test_a_new_job_is_created_with_its_effective_hyperparameters():
    status = compute(Observed())
    assert conditions(status) == {"Created": ("False", "CreatingChildren")}
    assert status["phase"] == "Created"
    assert (status["attempt"], status["restarts"]) == (1, 0)
    assert status["observedGeneration"] == 1
    assert status["hyperparameters"]["num_epochs"] == 2
    assert status["hyperparameters"]["image_size"] == 256  # the model type's default
    assert status["hyperparameters"]["lrate"] == pytest.approx(64 * 7.8125e-05)


def test_job_created_and_pods_pending():
    status = compute(Observed(trainer_jobs=[trainer_job()], pods=[pod(0), pod(1)]))
    assert conditions(status) == {"Created": ("True", "JobCreated"), "Running": ("False", "WaitingForWorkers")}
    assert status["phase"] == "Created"
    assert status["workers"] == {"active": 2, "ready": 0, "succeeded": 0, "failed": 0}


@pytest.mark.parametrize(("pods", "reason", "detail"), [
    ([pod(0, conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                          "message": "0/3 nodes have nvidia.com/gpu"}])], "Unschedulable", "nvidia.com/gpu"),
    ([pod(0, waiting={"reason": "ImagePullBackOff", "message": "Back-off pulling image"})],
     "ImagePullBackOff", "pulling image"),
    ([pod(0, waiting={"reason": "ErrImagePull", "message": "not found"})], "ImagePullBackOff", "not found"),
    ([pod(0, waiting={"reason": "CreateContainerConfigError", "message": 'secret "s3" not found'})],
     "CreateContainerConfigError", "secret"),
])
def test_why_workers_wait_is_surfaced(pods, reason, detail):
    status = compute(Observed(trainer_jobs=[trainer_job()], pods=pods))
    running = next(c for c in status["conditions"] if c["type"] == "Running")
    assert (running["status"], running["reason"]) == ("False", reason)
    assert detail in running["message"]
    assert status["phase"] == "Created"


def test_all_workers_running():
    status = compute(RUNNING)
    assert conditions(status)["Running"] == ("True", "WorkersRunning")
    assert status["phase"] == "Running"
    assert status["startTime"] == format_time(NOW)
    assert status["workers"] == {"active": 2, "ready": 2, "succeeded": 0, "failed": 0}


def test_success_records_the_model_from_rank_zeros_termination_message():
    message = TerminationMessage(reason="Succeeded", model=MODEL).to_json()
    done = Observed(trainer_jobs=[trainer_job(conditions=[{"type": "Complete", "status": "True"}])],
                    pods=[pod(0, "Succeeded", terminated=exited(0, message, "Completed")),
                          pod(1, "Succeeded", terminated=exited(0, "", "Completed"))])
    status = status_after(({}, RUNNING), ({}, done))
    assert conditions(status)["Succeeded"] == ("True", "JobSucceeded")
    assert conditions(status)["Running"] == ("False", "JobSucceeded")
    assert status["phase"] == "Succeeded"
    # The URI the user gave (spec.output.uri), not the path the trainer reported from inside its pod.
    assert status["model"]["uri"] == "pvc://models/shoes" != MODEL.uri
    assert status["model"]["metrics"]["accuracy"] == pytest.approx(0.9623)
    assert status["metric"] == "accuracy=0.9623"
    assert status["completionTime"] == format_time(NOW)


def test_permanent_failure_fails_at_once_with_the_trainers_reason():
    message = TerminationMessage(reason="InvalidDataset", message="no images under /mnt/pvc/datasets/shoes",
                                 permanent=True, exitCode=11).to_json()
    failed = Observed(trainer_jobs=[trainer_job()], pods=[pod(0, "Failed", terminated=exited(1, message)),
                                                          pod(1, "Running")])
    status = status_after(({}, RUNNING), ({}, failed))
    assert conditions(status)["Failed"] == ("True", "InvalidDataset")
    assert status["message"] == "no images under /mnt/pvc/datasets/shoes"
    assert (status["attempt"], status["restarts"]) == (1, 0)
    assert status["phase"] == "Failed"
    assert "Restarting" not in conditions(status)


def test_a_permanent_exit_code_without_a_message_is_permanent_too():
    failed = Observed(trainer_jobs=[trainer_job()], pods=[pod(0, "Running"), pod(1, "Failed", terminated=exited(12))])
    status = compute(failed)
    assert conditions(status)["Failed"] == ("True", "OutputError")
    assert "worker 1" in status["message"]


@pytest.mark.parametrize(("failed_pod", "reason", "detail"), [
    (pod(1, "Failed", terminated=exited(137, reason="OOMKilled")), "OOMKilled", "memory"),
    (pod(1, "Failed", terminated=exited(137), conditions=[
        {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI", "message": "evicting"}]),
     "Evicted", "evicting"),
    (pod(1, "Failed", terminated=exited(137), conditions=[
        {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager"}]), "NodeLost", "worker 1"),
    (pod(1, "Failed", reason="Evicted"), "Evicted", "evicted"),
    (pod(1, "Failed", terminated=exited(143)), "WorkerFailed", "signal 15"),
    (pod(1, "Failed", terminated=exited(1, TerminationMessage(reason="Error", message="NCCL timeout").to_json())),
     "WorkerFailed", "NCCL timeout"),
])
def test_retryable_failures_restart_the_gang_as_the_next_attempt(failed_pod, reason, detail):
    status = status_after(({}, RUNNING), ({}, Observed(trainer_jobs=[trainer_job()], pods=[pod(0, "Running"),
                                                                                         failed_pod])))
    assert conditions(status)["Restarting"] == ("True", reason)
    assert conditions(status)["Running"][0] == "False"
    assert detail in next(c["message"] for c in status["conditions"] if c["type"] == "Restarting")
    assert (status["attempt"], status["restarts"]) == (2, 1)
    assert status["phase"] == "Restarting"


def test_a_failed_job_without_pods_left_is_retried():
    gone = Observed(trainer_jobs=[trainer_job(conditions=[
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the limit"}])])
    status = status_after(({}, RUNNING), ({}, gone))
    assert conditions(status)["Restarting"] == ("True", "WorkerFailed")
    assert status["attempt"] == 2


def test_restart_waits_then_the_next_attempt_runs():
    failed = Observed(trainer_jobs=[trainer_job()], pods=[pod(0, "Running"), pod(1, "Failed", terminated=exited(1))])
    old_attempt_stopping = Observed(trainer_jobs=[trainer_job(deleting=True)],
                                    pods=[pod(0, "Running"), pod(1, "Failed", terminated=exited(1))])
    second = Observed(trainer_jobs=[trainer_job(2)], pods=[pod(0, "Running", 2), pod(1, "Running", 2)])
    stopping = status_after(({}, RUNNING), ({}, failed), ({}, old_attempt_stopping))
    # The old attempt's failed pod is not counted again: still one restart, still attempt 2.
    assert (stopping["attempt"], stopping["restarts"]) == (2, 1)
    assert stopping["phase"] == "Restarting"
    running = status_after(({}, RUNNING), ({}, failed), ({}, old_attempt_stopping), ({}, second))
    assert conditions(running)["Restarting"] == ("False", "Restarted")
    assert conditions(running)["Running"] == ("True", "WorkersRunning")
    assert (running["attempt"], running["restarts"]) == (2, 1)
    assert running["startTime"] == format_time(NOW)


def test_backoff_limit_exhausted_fails_with_the_last_cause():
    failed = Observed(trainer_jobs=[trainer_job(2)], pods=[pod(0, "Failed", 2, terminated=exited(137, reason="OOMKilled"))])
    status = compute(failed, spec={"runPolicy": {"backoffLimit": 1}},
                     status={"attempt": 2, "restarts": 1, "specHash": builders.spec_hash(make_job())})
    assert conditions(status)["Failed"] == ("True", "BackoffLimitExceeded")
    assert "OOMKilled" in status["message"]
    assert (status["attempt"], status["restarts"]) == (2, 1)


def test_backoff_limit_zero_fails_on_the_first_retryable_failure():
    failed = Observed(trainer_jobs=[trainer_job()], pods=[pod(0, "Failed", terminated=exited(1))])
    status = compute(failed, spec={"runPolicy": {"backoffLimit": 0}})
    assert conditions(status)["Failed"] == ("True", "BackoffLimitExceeded")


def test_terminal_states_are_sticky():
    failed = compute(Observed(trainer_jobs=[trainer_job()], pods=[pod(0, "Failed", terminated=exited(11))]))
    later = compute(Observed(), status=failed, now=NOW + timedelta(hours=1))
    assert conditions(later)["Failed"] == ("True", "InvalidDataset")
    assert later["phase"] == "Failed"
    assert later["completionTime"] == failed["completionTime"]


def test_suspend_and_resume():
    suspended = status_after(({}, RUNNING), ({"runPolicy": {"suspend": True}},
                                             Observed(trainer_jobs=[trainer_job(suspend=True)])))
    assert conditions(suspended)["Suspended"] == ("True", "JobSuspended")
    assert conditions(suspended)["Running"] == ("False", "JobSuspended")
    assert suspended["phase"] == "Suspended"
    assert "startTime" not in _stored(suspended)
    resumed = status_after(({}, RUNNING), ({"runPolicy": {"suspend": True}}, Observed(trainer_jobs=[trainer_job(suspend=True)])),
                           ({}, RUNNING))
    assert conditions(resumed)["Suspended"] == ("False", "JobResumed")
    assert resumed["phase"] == "Running"


def test_kueue_queued_then_admitted():
    queue = {"scheduling": {"queueName": "gpus"}}
    queued = compute(Observed(trainer_jobs=[trainer_job(suspend=True)]), spec=queue)
    assert conditions(queued)["Queued"] == ("True", "WaitingForAdmission")
    assert queued["phase"] == "Queued"
    assert "startTime" not in _stored(queued)
    admitted = status_after((queue, Observed(trainer_jobs=[trainer_job(suspend=True)])), (queue, RUNNING))
    assert conditions(admitted)["Queued"] == ("False", "Admitted")
    assert admitted["phase"] == "Running"


def test_active_deadline_counts_from_the_start_across_attempts():
    spec = {"runPolicy": {"activeDeadlineSeconds": 600}}
    started = {"startTime": format_time(NOW - timedelta(seconds=601)), "attempt": 2, "restarts": 1,
               "specHash": builders.spec_hash(make_job(spec))}
    status = compute(Observed(trainer_jobs=[trainer_job(2)], pods=[pod(0, "Running", 2), pod(1, "Running", 2)]),
                     spec=spec, status=started)
    assert conditions(status)["Failed"] == ("True", "DeadlineExceeded")
    assert status["phase"] == "Failed"
    still_running = compute(RUNNING, spec=spec, status={**started, "attempt": 1,
                                                        "startTime": format_time(NOW - timedelta(seconds=60))})
    assert still_running["phase"] == "Running"


def test_the_jobs_own_deadline_failure_is_a_deadline_failure():
    expired = Observed(trainer_jobs=[trainer_job(conditions=[
        {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "too long"}])])
    status = compute(expired, spec={"runPolicy": {"activeDeadlineSeconds": 60}})
    assert conditions(status)["Failed"] == ("True", "DeadlineExceeded")


def test_ttl_expiry_marks_the_children_for_deletion_and_keeps_the_result():
    message = TerminationMessage(reason="Succeeded", model=MODEL).to_json()
    done = Observed(trainer_jobs=[trainer_job(conditions=[{"type": "Complete", "status": "True"}])],
                    pods=[pod(0, "Succeeded", terminated=exited(0, message, "Completed"))])
    spec = {"runPolicy": {"ttlSecondsAfterFinished": 60}}
    finished = compute(done, spec=spec)
    soon = compute(done, spec=spec, status=finished, now=NOW + timedelta(seconds=30))
    assert conditions(soon)["Created"] == ("True", "JobCreated")
    expired = compute(done, spec=spec, status=finished, now=NOW + timedelta(seconds=61))
    assert conditions(expired)["Created"] == ("False", "TTLExpired")
    assert conditions(expired)["Succeeded"] == ("True", "JobSucceeded")
    assert expired["model"] == finished["model"]
    after = compute(Observed(), spec=spec, status=expired, now=NOW + timedelta(seconds=90))
    assert after["phase"] == "Succeeded" and after["model"] == finished["model"]


def test_editing_a_finished_jobs_spec_starts_a_new_run():
    message = TerminationMessage(reason="Succeeded", model=MODEL).to_json()
    done = Observed(trainer_jobs=[trainer_job(conditions=[{"type": "Complete", "status": "True"}])],
                    pods=[pod(0, "Succeeded", terminated=exited(0, message, "Completed"))])
    finished = compute(done)
    retrain = compute(done, spec={"hyperparameters": {"num_epochs": 4}}, status=finished, generation=2)
    assert retrain["attempt"] == 2 and retrain["restarts"] == 0
    assert conditions(retrain)["Succeeded"] == ("False", "SpecChanged")
    assert conditions(retrain)["Created"] == ("False", "CreatingChildren")
    assert retrain["phase"] == "Created"
    assert retrain["observedGeneration"] == 2
    assert retrain["model"] == finished["model"]  # the last trained model stays until a new one replaces it


def test_editing_only_the_run_policy_of_a_finished_job_does_not_retrain():
    done = Observed(trainer_jobs=[trainer_job(conditions=[{"type": "Complete", "status": "True"}])],
                    pods=[pod(0, "Succeeded", terminated=exited(0, "", "Completed"))])
    finished = compute(done)
    policy_edit = compute(done, spec={"runPolicy": {"ttlSecondsAfterFinished": 600}}, status=finished, generation=2)
    assert policy_edit["phase"] == "Succeeded" and policy_edit["attempt"] == 1


def test_invalid_spec_fails_naming_the_field():
    status = compute(Observed(problems=[("metadata.name", "is 60 characters; at most 50")]))
    assert conditions(status)["Failed"] == ("True", "InvalidSpec")
    assert status["message"].startswith("metadata.name: ")
    assert status["phase"] == "Failed"


def test_a_fixed_invalid_spec_runs():
    invalid = compute(Observed(problems=[("spec.workers", "too many")]))
    fixed = compute(Observed(), spec={"workers": 1}, status=invalid, generation=2)  # the user fixed the spec
    assert fixed["phase"] == "Created"
    assert conditions(fixed)["Failed"] == ("False", "SpecChanged")


@pytest.mark.parametrize(("base", "phase", "reason"), [
    (BaseModelState(exists=False), "Failed", "BaseModelNotFound"),
    (BaseModelState(exists=True, failed=True, message="out of memory"), "Failed", "BaseModelFailed"),
    (BaseModelState(exists=True), "Created", "WaitingForBaseModel"),
])
def test_base_model_job_gates_the_start(base, phase, reason):
    status = compute(Observed(base_model=base), spec={"baseModel": {"deepTrainingJob": "embedder"}})
    assert status["phase"] == phase
    assert reason in {c["reason"] for c in status["conditions"]}


def test_transition_times_only_move_when_the_status_does():
    first = compute(RUNNING)
    later = compute(RUNNING, status=first, now=NOW + timedelta(minutes=5))
    assert later["conditions"] == first["conditions"]


def test_transitions_are_announced_as_events():
    running = compute(RUNNING)
    restarting = compute(Observed(trainer_jobs=[trainer_job()],
                                  pods=[pod(0, "Running"), pod(1, "Failed", terminated=exited(137, reason="OOMKilled"))]),
                         status=running)
    assert [(e.type, e.reason) for e in transition_events({}, running)] == [
        ("Normal", "Created"), ("Normal", "Running")]
    events = transition_events(running, restarting)
    assert [(e.type, e.reason) for e in events] == [("Warning", "Restarting")]
    assert "OOMKilled" in events[0].message
    assert transition_events(running, compute(RUNNING, status=running)) == []
