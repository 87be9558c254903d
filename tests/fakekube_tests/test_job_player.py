"""The JobPlayer plays the Job controller and kubelet the way the operator will observe them."""

from __future__ import annotations

from typing import Any

import pytest

from harness import JobPlayer, KubeClient, assert_condition
from harness.conditions import has_condition
from harness.kubelet import COMPLETION_INDEX, CONTROLLER_UID, JOB_NAME


def indexed_job(name: str, namespace: str, workers: int = 2, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": namespace},
        "spec": {"completions": workers, "parallelism": workers, "completionMode": "Indexed", "backoffLimit": 0,
                 **spec,
                 "template": {"metadata": {"labels": {"app": "trainer"}}, "spec": {
                     "subdomain": name, "restartPolicy": "Never",
                     "containers": [{"name": "trainer", "image": "trainer:1"}]}}},
    }


async def test_start_pods_like_the_job_controller(kube: KubeClient, namespace: str, job_player: JobPlayer) -> None:
    job = await kube.create(indexed_job("train", namespace))
    pods = await job_player.start_pods(job)
    assert [pod["metadata"]["labels"][COMPLETION_INDEX] for pod in pods] == ["0", "1"]
    for index, pod in enumerate(pods):
        meta = pod["metadata"]
        assert meta["labels"][JOB_NAME] == "train" and meta["labels"][CONTROLLER_UID] == job["metadata"]["uid"]
        assert meta["labels"]["app"] == "trainer"
        assert meta["annotations"][COMPLETION_INDEX] == str(index)
        assert meta["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
        assert meta["ownerReferences"][0]["controller"] is True
        assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == (f"train-{index}", "train")
    status = (await job_player.job(job))["status"]
    assert status["active"] == 2 and status["startTime"]


async def test_running_then_succeeded(kube: KubeClient, namespace: str, job_player: JobPlayer) -> None:
    job = await kube.create(indexed_job("train", namespace))
    await job_player.start_pods(job)
    await job_player.set_running(job, ready=True)
    running = await job_player.job(job)
    assert (running["status"]["active"], running["status"]["ready"]) == (2, 2)
    await job_player.succeed(job, termination_message={0: '{"accuracy": 0.9}'})
    done = await job_player.job(job)
    assert_condition(done, "Complete", "True")
    assert done["status"]["succeeded"] == 2 and done["status"]["completionTime"]
    assert done["status"]["completedIndexes"] == "0-1"
    rank0 = await job_player.pod(job, 0)
    assert rank0["status"]["containerStatuses"][0]["state"]["terminated"]["message"] == '{"accuracy": 0.9}'


async def test_failed_pod_beyond_backoff_limit_fails_the_job(kube: KubeClient, namespace: str,
                                                             job_player: JobPlayer) -> None:
    job = await kube.create(indexed_job("train", namespace))
    await job_player.start_pods(job)
    await job_player.set_running(job)
    await job_player.fail_pod(job, 1, exit_code=137, reason="OOMKilled")
    failed = await job_player.job(job)
    assert_condition(failed, "Failed", "True", reason="BackoffLimitExceeded")
    assert failed["status"]["failed"] == 1 and failed["status"]["active"] == 0
    terminated = (await job_player.pod(job, 1))["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled")
    assert await job_player.pods(job, include_terminated=False) == []


async def test_failed_pod_within_backoff_limit_is_replaced(kube: KubeClient, namespace: str,
                                                           job_player: JobPlayer) -> None:
    job = await kube.create(indexed_job("train", namespace, backoffLimit=2))
    await job_player.start_pods(job)
    await job_player.fail_pod(job, 0, exit_code=1)
    current = await job_player.job(job)
    assert not has_condition(current, "Failed")
    assert current["status"]["failed"] == 1 and current["status"]["active"] == 2
    assert (await job_player.pod(job, 0))["status"]["phase"] == "Pending"


async def test_pod_failure_policy_fail_job(kube: KubeClient, namespace: str, job_player: JobPlayer) -> None:
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [10, 11]}},
                        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}
    job = await kube.create(indexed_job("train", namespace, backoffLimit=3, podFailurePolicy=policy))
    await job_player.start_pods(job)
    await job_player.evict(job, 0)
    after_eviction = await job_player.job(job)
    assert after_eviction["status"]["failed"] == 0 and not has_condition(after_eviction, "Failed")
    disrupted = (await job_player.pods(job))[0]
    assert has_condition(disrupted, "DisruptionTarget")
    await job_player.fail_pod(job, 1, exit_code=11)
    failed = await job_player.job(job)
    condition = assert_condition(failed, "Failed", "True", reason="PodFailurePolicy")
    assert "exit code 11 matching FailJob rule at index 0" in condition["message"]


async def test_deadline_exceeded(kube: KubeClient, namespace: str, job_player: JobPlayer) -> None:
    job = await kube.create(indexed_job("train", namespace, activeDeadlineSeconds=60))
    await job_player.start_pods(job)
    await job_player.exceed_deadline(job)
    assert_condition(await job_player.job(job), "Failed", "True", reason="DeadlineExceeded")


async def test_suspended_job_has_no_pods_until_resumed(kube: KubeClient, namespace: str,
                                                       job_player: JobPlayer) -> None:
    job = await kube.create(indexed_job("train", namespace, suspend=True))
    assert await job_player.start_pods(job) == []
    suspended = await job_player.job(job)
    assert_condition(suspended, "Suspended", "True", reason="JobSuspended")
    assert "startTime" not in suspended["status"]
    await kube.patch(job, {"spec": {"suspend": False}})
    assert len(await job_player.start_pods(job)) == 2
    assert_condition(await job_player.job(job), "Suspended", "False", reason="JobResumed")


async def test_assert_condition_fails_with_the_status_shown() -> None:
    obj = {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Waiting"}]}}
    with pytest.raises(pytest.fail.Exception, match="expected condition Ready=True"):
        assert_condition(obj, "Ready", "True")
    assert assert_condition(obj, "Ready", "False", reason="Waiting")["reason"] == "Waiting"
