"""Scenario 6: deletion paths - a running job, a Workflow mid-resolution, a whole namespace, and a job
deleted while the operator is down.

Runs on the fake and on a real cluster.
Bar: the deleted object disappears within 60 s (no finalizer holds a job, even with no operator
running; a Workflow's finalizer is released by the operator), its children go with it, nothing in the
namespace keeps an ownerReference to a gone owner, and the restarted operator recreates nothing.
"""

from __future__ import annotations

import pytest
from fault_support import SHARED_CHILDREN, children_by_kind, eventually, orphans
from operator_integration import API_VERSION, KIND, job_manifest

pytestmark = pytest.mark.faults

WAIT_SECONDS = 60
NAMESPACE_WAIT_SECONDS = 120
WORKFLOW = ("deeptrain.dev/v1alpha1", "Workflow")


@pytest.fixture
def operator_env(operator_env: dict[str, str]) -> dict[str, str]:
    return {**operator_env, "DEEPTRAIN_SERVE_IMAGE": "deeptrain/serve:test"}


async def _running(kube, namespace, job_player, wait_job, wait_trainer_job, name: str) -> dict:
    await kube.create(job_manifest(name, namespace))
    trainer_job = await wait_trainer_job(name)
    await job_player.start_pods(trainer_job)
    await job_player.set_running(trainer_job)
    await wait_job(name, type="Running")
    return trainer_job


async def _all_gone(kube, namespace: str, name: str) -> None:
    await kube.wait_deleted(API_VERSION, KIND, name, namespace, timeout=WAIT_SECONDS)
    for api_version, kind, pattern in SHARED_CHILDREN:
        await kube.wait_deleted(api_version, kind, pattern.format(name), namespace, timeout=WAIT_SECONDS)

    async def nothing_labelled() -> bool:
        return not await children_by_kind(kube, namespace, name)

    await eventually(nothing_labelled, timeout=WAIT_SECONDS, what=f"every child and pod of {name} gone")


async def test_deleting_a_running_job_removes_everything_it_owned(
        kube, namespace, operator, job_player, wait_job, wait_trainer_job):
    await _running(kube, namespace, job_player, wait_job, wait_trainer_job, "shoes")
    job = await kube.get(API_VERSION, KIND, "shoes", namespace)
    assert not job["metadata"].get("finalizers")  # nothing but the garbage collector is needed
    await kube.delete(API_VERSION, KIND, "shoes", namespace)
    await _all_gone(kube, namespace, "shoes")
    assert await orphans(kube, namespace, [WORKFLOW]) == []


async def test_a_job_deleted_while_the_operator_is_down_goes_at_once_and_stays_gone(
        kube, namespace, operator, job_player, wait_job, wait_trainer_job):
    await _running(kube, namespace, job_player, wait_job, wait_trainer_job, "shoes")
    operator.stop()
    await kube.delete(API_VERSION, KIND, "shoes", namespace)
    await _all_gone(kube, namespace, "shoes")  # with no operator running at all
    operator.start()
    await _running(kube, namespace, job_player, wait_job, wait_trainer_job, "other")  # proves it is back at work
    assert not await children_by_kind(kube, namespace, "shoes")
    assert await orphans(kube, namespace, [WORKFLOW]) == []


async def test_deleting_a_workflow_mid_resolution_releases_it_and_leaves_the_job_running(
        kube, namespace, operator, job_player, wait_job, wait_trainer_job):
    await _running(kube, namespace, job_player, wait_job, wait_trainer_job, "embedder")
    await kube.create({"apiVersion": WORKFLOW[0], "kind": WORKFLOW[1], "metadata": {"name": "search",
                                                                                   "namespace": namespace},
                       "spec": {"nodes": [{"id": "embed", "model": {"deepTrainingJob": "embedder"}}],
                                "serve": {"replicas": 1}}})
    # Resolution is under way: the operator has taken the Workflow (its finalizer) and waits on the job.
    waiting = await kube.wait_for(
        *WORKFLOW, "search", namespace,
        lambda obj: obj is not None and obj["metadata"].get("finalizers") and (obj.get("status") or {}).get("conditions"),
        timeout=WAIT_SECONDS, what="the Workflow taken in hand")
    ready = next(c for c in waiting["status"]["conditions"] if c["type"] == "ModelsReady")
    assert ready["status"] != "True"

    await kube.delete(*WORKFLOW, "search", namespace)
    await kube.wait_deleted(*WORKFLOW, "search", namespace, timeout=WAIT_SECONDS)
    job = await kube.get(API_VERSION, KIND, "embedder", namespace)
    assert not (job["status"].get("workflows") or [])
    assert (job["status"]["attempt"], job["status"]["phase"]) == (1, "Running")
    assert await kube.list("apps/v1", "Deployment", namespace) == []
    assert await orphans(kube, namespace, [WORKFLOW]) == []


async def test_deleting_the_namespace_takes_every_job_and_child_with_it(
        kube, namespace, operator, job_player, wait_job, wait_trainer_job):
    for name in ("shoes", "boots"):
        await _running(kube, namespace, job_player, wait_job, wait_trainer_job, name)
    await kube.delete("v1", "Namespace", namespace)
    await kube.wait_deleted("v1", "Namespace", namespace, timeout=NAMESPACE_WAIT_SECONDS)
    assert await kube.list(API_VERSION, KIND, namespace) == []
    assert await kube.list("batch/v1", "Job", namespace) == []
