"""Failures as a user meets them: gang restarts, permanent failures, exhausted backoff, deadlines."""

from __future__ import annotations

from operator_integration import API_VERSION, KIND, job_manifest, racing_the_operator

from deeptrain_api.trainer_contract import ExitCode, ModelSummary, TerminationMessage

MODEL = ModelSummary(uri="file:///mnt/pvc/models/shoes", version="abcdefabcdef", concepts=["boot"],
                     metrics={"accuracy": 0.9}, checksum="sha256:" + "1" * 64)


async def test_retryable_failure_restarts_the_gang_as_attempt_two(kube, namespace, operator, job_player, wait_job,
                                                                  wait_trainer_job, wait_event):
    await kube.create(job_manifest("shoes", namespace))
    first = await wait_trainer_job("shoes")
    await job_player.start_pods(first)
    await job_player.set_running(first)
    await wait_job("shoes", type="Running")

    await racing_the_operator(job_player.fail_pod(first, 1, exit_code=137, reason="OOMKilled"))
    restarting = await wait_job("shoes", type="Restarting", reason="OOMKilled")
    assert (restarting["status"]["attempt"], restarting["status"]["restarts"]) == (2, 1)

    second = await wait_trainer_job("shoes", attempt=2)
    # the first gang is gone before the second starts: never two copies of a rank
    assert await kube.get_or_none("batch/v1", "Job", "shoes-1", namespace) is None
    old_pods = await kube.list("v1", "Pod", namespace, label_selector="deeptrain.dev/attempt=1")
    assert old_pods == []
    await job_player.start_pods(second)
    await job_player.set_running(second)
    running = await wait_job("shoes", type="Running")
    assert running["status"]["conditions"]
    await job_player.succeed(second, {0: TerminationMessage(reason="Succeeded", model=MODEL).to_json()})
    done = await wait_job("shoes", type="Succeeded")
    assert (done["status"]["attempt"], done["status"]["restarts"]) == (2, 1)
    assert done["status"]["model"]["version"] == MODEL.version
    restarting_event = await wait_event("shoes", "Restarting")
    assert restarting_event["type"] == "Warning" and "OOMKilled" in restarting_event["message"]


async def test_permanent_failure_fails_at_once_without_restart(kube, namespace, operator, job_player, wait_job,
                                                               wait_trainer_job, wait_event):
    await kube.create(job_manifest("shoes", namespace))
    job = await wait_trainer_job("shoes")
    await job_player.start_pods(job)
    await job_player.set_running(job)
    message = TerminationMessage(reason="InvalidDataset", message="no images found under /mnt/pvc/datasets/shoes",
                                 permanent=True, exitCode=ExitCode.INVALID_DATASET)
    await racing_the_operator(job_player.fail_pod(job, 0, exit_code=1, message=message.to_json()))
    failed = await wait_job("shoes", type="Failed", reason="InvalidDataset")
    assert failed["status"]["message"] == "no images found under /mnt/pvc/datasets/shoes"
    assert (failed["status"]["attempt"], failed["status"]["restarts"]) == (1, 0)
    await kube.wait_deleted("batch/v1", "Job", "shoes-1", namespace)
    assert await kube.get_or_none("batch/v1", "Job", "shoes-2", namespace) is None
    failed_event = await wait_event("shoes", "Failed")
    assert failed_event["type"] == "Warning" and "InvalidDataset" in failed_event["message"]


async def test_exhausted_backoff_fails_and_leaves_nothing_running(kube, namespace, operator, job_player, wait_job,
                                                                  wait_trainer_job):
    await kube.create(job_manifest("shoes", namespace, runPolicy={"backoffLimit": 1}))
    first = await wait_trainer_job("shoes")
    await job_player.start_pods(first)
    await racing_the_operator(job_player.evict(first, 0))
    await wait_job("shoes", type="Restarting", reason="Evicted")
    second = await wait_trainer_job("shoes", attempt=2)
    await job_player.start_pods(second)
    await job_player.set_running(second)
    await racing_the_operator(job_player.fail_pod(second, 1, exit_code=1))
    failed = await wait_job("shoes", type="Failed", reason="BackoffLimitExceeded")
    assert failed["status"]["restarts"] == 1
    assert "WorkerFailed" in failed["status"]["message"]
    await kube.wait_deleted("batch/v1", "Job", "shoes-2", namespace)
    jobs = await kube.list("batch/v1", "Job", namespace, label_selector="deeptrain.dev/job-name=shoes")
    assert jobs == []
    assert await kube.list("v1", "Pod", namespace, label_selector="deeptrain.dev/job-name=shoes") == []


async def test_active_deadline_fails_the_job_and_stops_it(kube, namespace, operator, job_player, wait_job,
                                                          wait_trainer_job):
    await kube.create(job_manifest("shoes", namespace, runPolicy={"activeDeadlineSeconds": 3}))
    job = await wait_trainer_job("shoes")
    assert 1 <= job["spec"]["activeDeadlineSeconds"] <= 3
    await job_player.start_pods(job)
    await job_player.set_running(job)
    failed = await wait_job("shoes", type="Failed", reason="DeadlineExceeded", timeout=60)
    assert failed["status"]["phase"] == "Failed"
    await kube.wait_deleted("batch/v1", "Job", "shoes-1", namespace)
    obj = await kube.get(API_VERSION, KIND, "shoes", namespace)
    assert obj["status"]["phase"] == "Failed"
