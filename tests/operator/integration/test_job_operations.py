"""Day-two operations: suspend/resume, Kueue admission, TTL, deletion, repairs, retraining, restarts."""

from __future__ import annotations

import pytest
from operator_integration import API_VERSION, KIND, job_manifest

from deeptrain_api.trainer_contract import ModelSummary, TerminationMessage
from harness import KubeApiError, find_condition

MODEL = ModelSummary(uri="file:///mnt/pvc/models/shoes", version="fedcbafedcba", concepts=["boot"],
                     metrics={"accuracy": 0.8}, checksum="sha256:" + "2" * 64)
SUCCESS = {0: TerminationMessage(reason="Succeeded", model=MODEL).to_json()}
CHILDREN = [("v1", "ConfigMap", "shoes-trainer-config"), ("v1", "Service", "shoes"),
            ("v1", "ServiceAccount", "shoes-trainer"), ("rbac.authorization.k8s.io/v1", "Role", "shoes-trainer"),
            ("rbac.authorization.k8s.io/v1", "RoleBinding", "shoes-trainer")]


async def run_to_success(kube, namespace, job_player, wait_job, wait_trainer_job, name="shoes", attempt=1):
    job = await wait_trainer_job(name, attempt=attempt)
    await job_player.start_pods(job)
    await job_player.set_running(job)
    await job_player.succeed(job, SUCCESS)
    return await wait_job(name, type="Succeeded")


async def test_suspend_stops_the_pods_and_resume_runs_them_again(kube, namespace, operator, job_player, wait_job,
                                                                  wait_trainer_job, wait_event):
    created = await kube.create(job_manifest("shoes", namespace))
    job = await wait_trainer_job("shoes")
    await job_player.start_pods(job)
    await job_player.set_running(job)
    await wait_job("shoes", type="Running")

    await kube.patch(created, {"spec": {"runPolicy": {"suspend": True}}})
    await kube.wait_for("batch/v1", "Job", "shoes-1", namespace, lambda obj: obj["spec"].get("suspend") is True,
                        what="the Job suspended")
    await job_player.sync(job)  # the Job controller removes the pods of a suspended Job
    suspended = await wait_job("shoes", type="Suspended")
    assert suspended["status"]["phase"] == "Suspended"
    assert await kube.list("v1", "Pod", namespace, label_selector="deeptrain.dev/job-name=shoes") == []

    await kube.patch(created, {"spec": {"runPolicy": {"suspend": False}}})
    await kube.wait_for("batch/v1", "Job", "shoes-1", namespace, lambda obj: obj["spec"].get("suspend") is False,
                        what="the Job resumed")
    await job_player.start_pods(job)
    await job_player.set_running(job)
    resumed = await wait_job("shoes", type="Running")
    assert find_condition(resumed, "Suspended")["reason"] == "JobResumed"
    assert resumed["status"]["attempt"] == 1
    await wait_event("shoes", "Suspended")
    await wait_event("shoes", "Resumed")


async def test_kueue_admits_by_unsuspending_the_job(kube, namespace, operator, job_player, wait_job,
                                                    wait_trainer_job):
    await kube.create(job_manifest("shoes", namespace, scheduling={"queueName": "team-a"}))
    job = await wait_trainer_job("shoes")
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    queued = await wait_job("shoes", type="Queued", reason="WaitingForAdmission")
    assert queued["status"]["phase"] == "Queued"

    await kube.patch(job, {"spec": {"suspend": False}})  # what Kueue does on admission
    await job_player.start_pods(job)
    await job_player.set_running(job)
    running = await wait_job("shoes", type="Running")
    assert find_condition(running, "Queued")["reason"] == "Admitted"
    current = await kube.get("batch/v1", "Job", "shoes-1", namespace)
    assert current["spec"]["suspend"] is False  # the operator leaves Kueue's decision alone


async def test_ttl_deletes_the_children_and_keeps_the_result(kube, namespace, operator, job_player, wait_job,
                                                             wait_trainer_job):
    await kube.create(job_manifest("shoes", namespace, runPolicy={"ttlSecondsAfterFinished": 1}))
    done = await run_to_success(kube, namespace, job_player, wait_job, wait_trainer_job)
    cleaned = await wait_job("shoes", type="Created", status="False", reason="TTLExpired", timeout=60)
    for api_version, kind, name in [*CHILDREN, ("batch/v1", "Job", "shoes-1")]:
        await kube.wait_deleted(api_version, kind, name, namespace)
    assert cleaned["status"]["phase"] == "Succeeded"
    assert cleaned["status"]["model"] == done["status"]["model"]
    # terminal is sticky: nothing comes back after the cleanup
    again = await wait_job("shoes", lambda obj: obj["status"]["phase"] == "Succeeded")
    assert again["status"]["attempt"] == 1
    assert await kube.get_or_none("batch/v1", "Job", "shoes-1", namespace) is None
    assert await kube.get_or_none("v1", "ConfigMap", "shoes-trainer-config", namespace) is None


async def test_deleting_the_job_removes_its_children(kube, namespace, operator, job_player, wait_trainer_job):
    await kube.create(job_manifest("shoes", namespace))
    job = await wait_trainer_job("shoes")
    await job_player.start_pods(job)
    await kube.delete(API_VERSION, KIND, "shoes", namespace)
    await kube.wait_deleted(API_VERSION, KIND, "shoes", namespace)
    for api_version, kind, name in [*CHILDREN, ("batch/v1", "Job", "shoes-1")]:
        await kube.wait_deleted(api_version, kind, name, namespace, timeout=60)


async def test_a_deleted_child_is_recreated_without_restarting_the_gang(kube, namespace, operator, job_player,
                                                                        wait_job, wait_trainer_job, wait_event):
    await kube.create(job_manifest("shoes", namespace))
    job = await wait_trainer_job("shoes")
    await job_player.start_pods(job)
    await job_player.set_running(job)
    await wait_job("shoes", type="Running")
    service = await kube.get("v1", "Service", "shoes", namespace)
    await kube.delete("v1", "Service", "shoes", namespace)
    recreated = await kube.wait_for("v1", "Service", "shoes", namespace,
                                    lambda obj: obj is not None and obj["metadata"]["uid"] != service["metadata"]["uid"],
                                    what="the Service recreated")
    assert recreated["spec"]["clusterIP"] == "None"
    status = (await kube.get(API_VERSION, KIND, "shoes", namespace))["status"]
    assert (status["attempt"], status["restarts"], status["phase"]) == (1, 0, "Running")
    warning = await wait_event("shoes", "ChildRecreated")
    assert warning["type"] == "Warning" and "Service shoes" in warning["message"]


async def test_editing_a_finished_job_retrains_it(kube, namespace, operator, job_player, wait_job, wait_trainer_job):
    created = await kube.create(job_manifest("shoes", namespace))
    await run_to_success(kube, namespace, job_player, wait_job, wait_trainer_job)
    config = await kube.get("v1", "ConfigMap", "shoes-trainer-config", namespace)
    await kube.patch(created, {"spec": {"hyperparameters": {"num_epochs": 3}}})
    retraining = await wait_job("shoes", lambda obj: obj["status"].get("attempt") == 2)
    assert retraining["status"]["restarts"] == 0
    assert find_condition(retraining, "Succeeded")["status"] == "False"
    await wait_trainer_job("shoes", attempt=2)
    new_config = await kube.get("v1", "ConfigMap", "shoes-trainer-config", namespace)
    assert new_config["data"]["job.json"] != config["data"]["job.json"]
    assert '"num_epochs": 3' in new_config["data"]["job.json"]
    done = await run_to_success(kube, namespace, job_player, wait_job, wait_trainer_job, attempt=2)
    assert done["status"]["attempt"] == 2


async def test_restarted_operator_creates_no_duplicate_children(kube, namespace, operator, job_player, wait_job,
                                                                wait_trainer_job):
    await kube.create(job_manifest("shoes", namespace))
    job = await wait_trainer_job("shoes")
    await job_player.start_pods(job)
    await job_player.set_running(job)
    await wait_job("shoes", type="Running")
    before = {kind: (await kube.get(api_version, kind, name, namespace))["metadata"]["uid"]
              for api_version, kind, name in [*CHILDREN, ("batch/v1", "Job", "shoes-1")]}

    operator.restart()
    await job_player.succeed(job, SUCCESS)
    await wait_job("shoes", type="Succeeded")
    after = {kind: (await kube.get(api_version, kind, name, namespace))["metadata"]["uid"]
             for api_version, kind, name in [*CHILDREN, ("batch/v1", "Job", "shoes-1")]}
    assert after == before
    jobs = await kube.list("batch/v1", "Job", namespace, label_selector="deeptrain.dev/job-name=shoes")
    assert [j["metadata"]["name"] for j in jobs] == ["shoes-1"]


async def test_the_schema_rejects_an_invalid_spec_naming_the_field(kube, namespace):
    manifest = job_manifest("shoes", namespace, hyperparameters={"batch_size": 8, "num_epochs": 2,
                                                                 "detection_score_threshold": 0.5})
    with pytest.raises(KubeApiError) as rejected:
        await kube.create(manifest)
    assert rejected.value.status == 422
    assert "detection_score_threshold" in str(rejected.value)


@pytest.mark.parametrize(("name", "spec", "message"), [
    # each field is valid alone; together they cannot run
    ("more-processes-than-gpus", {"nprocPerNode": 4, "resources": {"limits": {"nvidia.com/gpu": 2}}},
     "spec.nprocPerNode:"),
    # nprocPerNode "auto" = 3 GPUs per pod: 2 x 3 processes cannot share a batch of 8 (the schema cannot know)
    ("batch-not-divisible", {"workers": 2, "resources": {"limits": {"nvidia.com/gpu": 3}}},
     "spec.hyperparameters.batch_size: the global batch of 8 does not split evenly over the 6 training processes"),
])
async def test_a_spec_only_the_operator_can_refuse_fails_with_invalid_spec(name, spec, message, kube, namespace,
                                                                            operator, wait_job):
    await kube.create(job_manifest(name, namespace, **spec))
    failed = await wait_job(name, type="Failed", reason="InvalidSpec")
    assert failed["status"]["message"].startswith(message), failed["status"]["message"]
    assert failed["status"]["phase"] == "Failed"
    assert await kube.list("batch/v1", "Job", namespace) == []


async def test_an_unknown_hyperparameter_is_never_dropped_silently(kube, namespace, operator, wait_job):
    # kubectl asks for Strict field validation; a client that asks for Warn (or nothing) only gets a warning,
    # and the CRD keeps the key, so that the operator refuses the job instead of training without the setting.
    manifest = job_manifest("shoes", namespace, hyperparameters={"batch_size": 8, "num_epochs": 2,
                                                                 "learning_rate": 0.01})
    info = await kube.resource(API_VERSION, KIND)
    created = await kube.request("POST", info.path(namespace), manifest, params={"fieldValidation": "Warn"})
    assert created["spec"]["hyperparameters"]["learning_rate"] == 0.01
    failed = await wait_job("shoes", type="Failed", reason="InvalidSpec")
    message = failed["status"]["message"]
    assert message.startswith("spec.hyperparameters.learning_rate: is not a hyperparameter; did you mean lrate?")
    assert "per_item_lrate" in message and "batch_size" in message
    assert await kube.list("batch/v1", "Job", namespace) == []
