"""Scenario 4: someone deletes a child of a running job (Service, ConfigMap, Role).

Runs on the fake and on a real cluster.
Bar: each deleted child is recreated (a new UID, same name), the gang is left alone (attempt 1,
restarts 0, the trainer Job keeps its UID and its pods), and the job carries a Warning
ChildRecreated Event naming the child.
"""

from __future__ import annotations

import pytest
from fault_support import RBAC, eventually
from operator_integration import API_VERSION, KIND, job_manifest

pytestmark = pytest.mark.faults

WAIT_SECONDS = 60
DELETED_CHILDREN = [("v1", "Service", "shoes"), ("v1", "ConfigMap", "shoes-trainer-config"),
                    (RBAC, "Role", "shoes-trainer")]


@pytest.mark.parametrize(("api_version", "kind", "name"), DELETED_CHILDREN, ids=[k for _, k, _ in DELETED_CHILDREN])
async def test_a_deleted_child_is_recreated_and_the_gang_keeps_running(
        api_version, kind, name, kube, namespace, operator, job_player, wait_job, wait_trainer_job):
    await kube.create(job_manifest("shoes", namespace))
    trainer_job = await wait_trainer_job("shoes")
    await job_player.start_pods(trainer_job)
    await job_player.set_running(trainer_job)
    await wait_job("shoes", type="Running")
    pods_before = sorted(p["metadata"]["uid"] for p in await job_player.pods(trainer_job))
    child = await kube.get(api_version, kind, name, namespace)

    await kube.delete(api_version, kind, name, namespace)
    recreated = await kube.wait_for(
        api_version, kind, name, namespace,
        lambda obj: obj is not None and obj["metadata"]["uid"] != child["metadata"]["uid"],
        timeout=WAIT_SECONDS, what=f"the {kind} recreated")
    owner = await kube.get(API_VERSION, KIND, "shoes", namespace)
    assert [ref["uid"] for ref in recreated["metadata"]["ownerReferences"]] == [owner["metadata"]["uid"]]

    async def warned() -> list:
        return [e for e in await kube.events(namespace, "shoes")
                if e["reason"] == "ChildRecreated" and f"{kind} {name}" in e["message"]]

    warning = (await eventually(warned, timeout=WAIT_SECONDS, what=f"a ChildRecreated event about the {kind}"))[0]
    assert warning["type"] == "Warning"

    status = (await kube.get(API_VERSION, KIND, "shoes", namespace))["status"]
    assert (status["attempt"], status["restarts"], status["phase"]) == (1, 0, "Running")
    current_job = await kube.get("batch/v1", "Job", "shoes-1", namespace)
    assert current_job["metadata"]["uid"] == trainer_job["metadata"]["uid"]
    assert not current_job["metadata"].get("deletionTimestamp")
    assert sorted(p["metadata"]["uid"] for p in await job_player.pods(trainer_job)) == pods_before
    assert await kube.get_or_none("batch/v1", "Job", "shoes-2", namespace) is None
