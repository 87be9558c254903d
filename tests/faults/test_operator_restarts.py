"""Scenarios 1 and 2: the operator dies mid-work, or is away while the world changes.

Bar: after a restart the operator converges on what the API says, never on what it remembered: one
set of children with their original UIDs, the job completes; edits, deletions and lost pods that
happened while it was down are all honoured within a bounded wait (60 s).
"""

from __future__ import annotations

import pytest
from fault_support import (
    ATTEMPT_LABEL,
    JOB_NAME_LABEL,
    SHARED_CHILDREN,
    children_by_kind,
    drive_to_success,
    eventually,
    orphans,
    shared_child_uids,
)
from operator_faults import expect_injected_errors, unexpected_errors
from operator_integration import API_VERSION, KIND, job_manifest

from harness import find_condition

pytestmark = pytest.mark.faults

CONVERGE_SECONDS = 60


async def test_operator_killed_between_children_and_job_keeps_one_set_of_children(
        kube, namespace, operator, fakekube, job_player, wait_job, wait_trainer_job):
    """Needs the fake (a 500 on the Job create holds the operator between its first children and the Job).

    Bar: after the restart exactly one of each child exists, the ones made before the stop keep their
    UIDs, exactly one trainer Job is created, and the job runs to Succeeded at attempt 1.
    """
    expect_injected_errors(operator)
    job_create = fakekube.faults.add("POST", rf"/namespaces/{namespace}/jobs(\?|$)", status=500)
    await kube.create(job_manifest("shoes", namespace))

    async def first_children_made() -> bool:
        made = await children_by_kind(kube, namespace, "shoes")
        return job_create.injected > 0 and {"ConfigMap", "Service", "RoleBinding"} <= set(made)

    await eventually(first_children_made, timeout=CONVERGE_SECONDS, what="the children before the Job")
    operator.stop()  # the crash: mid-creation, with the Job never made
    fakekube.clear_faults()
    assert await kube.list("batch/v1", "Job", namespace) == []
    before = await shared_child_uids(kube, namespace, "shoes")

    operator.start()
    trainer_job = await wait_trainer_job("shoes", timeout=CONVERGE_SECONDS)
    assert await shared_child_uids(kube, namespace, "shoes") == before
    children = await children_by_kind(kube, namespace, "shoes")
    counts = {kind: len(items) for kind, items in children.items()}
    assert counts == {"ConfigMap": 1, "Service": 1, "ServiceAccount": 1, "Role": 1, "RoleBinding": 1, "Job": 1}

    await drive_to_success(job_player, trainer_job)
    done = await wait_job("shoes", type="Succeeded", timeout=CONVERGE_SECONDS)
    assert (done["status"]["attempt"], done["status"]["restarts"]) == (1, 0)
    assert await shared_child_uids(kube, namespace, "shoes") == before
    assert [j["metadata"]["uid"] for j in await kube.list("batch/v1", "Job", namespace)] == \
        [trainer_job["metadata"]["uid"]]
    assert unexpected_errors(operator, injected=[500]) == []


async def _running(kube, namespace, job_player, wait_job, wait_trainer_job, name, **spec):
    await kube.create(job_manifest(name, namespace, **spec))
    trainer_job = await wait_trainer_job(name)
    await job_player.start_pods(trainer_job)
    await job_player.set_running(trainer_job)
    await wait_job(name, type="Running")
    return trainer_job


async def test_changes_made_while_the_operator_is_down_are_honoured_after_restart(
        kube, namespace, operator, job_player, wait_job, wait_trainer_job):
    """Runs on the fake and on a real cluster.

    While the operator is stopped: a worker pod of one job is deleted, another job is suspended,
    a third job is deleted. Bar, within 60 s of the restart: the first job reports the lost worker
    (1 of 2 active, Running=False) without a new attempt, and runs again once the pod is replaced;
    the suspended job's trainer Job is suspended and the job reports Suspended; the deleted job leaves
    nothing behind and nothing is recreated for it.
    """
    lost_pod = await _running(kube, namespace, job_player, wait_job, wait_trainer_job, "lost-pod")
    paused = await _running(kube, namespace, job_player, wait_job, wait_trainer_job, "paused")
    await _running(kube, namespace, job_player, wait_job, wait_trainer_job, "gone")

    operator.stop()
    victim = await job_player.pod(lost_pod, 1)
    await kube.delete("v1", "Pod", victim["metadata"]["name"], namespace, propagation=None)
    await kube.patch({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "paused", "namespace": namespace}},
                     {"spec": {"runPolicy": {"suspend": True}}})
    await kube.delete(API_VERSION, KIND, "gone", namespace)
    await kube.wait_deleted(API_VERSION, KIND, "gone", namespace, timeout=CONVERGE_SECONDS)
    operator.start()

    # The lost worker: seen, but not a reason to restart the gang (the Job controller replaces the pod).
    short = await wait_job("lost-pod", lambda obj: obj["status"]["workers"]["active"] == 1,
                           type="Running", status="False", timeout=CONVERGE_SECONDS)
    assert (short["status"]["attempt"], short["status"]["restarts"]) == (1, 0)
    await job_player.start_pods(lost_pod)
    await job_player.set_running(lost_pod)
    back = await wait_job("lost-pod", lambda obj: obj["status"]["workers"]["active"] == 2, type="Running",
                          timeout=CONVERGE_SECONDS)
    assert back["status"]["attempt"] == 1

    # The suspend edit: the gang is suspended, its pods go, the job says so.
    await kube.wait_for("batch/v1", "Job", "paused-1", namespace, lambda obj: obj["spec"].get("suspend") is True,
                        timeout=CONVERGE_SECONDS, what="the Job suspended")
    await job_player.sync(paused)
    suspended = await wait_job("paused", type="Suspended", timeout=CONVERGE_SECONDS)
    assert find_condition(suspended, "Running")["status"] == "False"
    assert await kube.list("v1", "Pod", namespace, label_selector=f"{JOB_NAME_LABEL}=paused") == []

    # The deleted job: its children went with it, and the restarted operator made none again.
    for api_version, kind, pattern in SHARED_CHILDREN:
        await kube.wait_deleted(api_version, kind, pattern.format("gone"), namespace, timeout=CONVERGE_SECONDS)

    async def gone_for_good() -> bool:
        return not await children_by_kind(kube, namespace, "gone")

    await eventually(gone_for_good, timeout=CONVERGE_SECONDS, what="every child of the deleted job gone")
    assert await orphans(kube, namespace) == []
    attempts = {p["metadata"]["labels"][ATTEMPT_LABEL] for p in await kube.list(
        "v1", "Pod", namespace, label_selector=f"{JOB_NAME_LABEL}=lost-pod")}
    assert attempts == {"1"}
