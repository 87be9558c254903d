"""A DeepTrainingJob's life as a user sees it through the API: children, Running, Succeeded, events."""

from __future__ import annotations

from operator_integration import API_VERSION, KIND, job_manifest

from deeptrain_api.trainer_contract import ModelSummary, TerminationMessage
from harness import assert_condition

MODEL = ModelSummary(uri="file:///mnt/pvc/models/shoes", version="0123456789ab", concepts=["boot", "sandal"],
                     metrics={"accuracy": 0.962}, checksum="sha256:" + "0" * 64)


async def test_created_job_gets_its_children(kube, namespace, operator, wait_trainer_job):
    await kube.create(job_manifest("shoes", namespace))
    job = await wait_trainer_job("shoes")
    owner = await kube.get(API_VERSION, KIND, "shoes", namespace)
    for api_version, kind, name in [("v1", "ConfigMap", "shoes-trainer-config"), ("v1", "Service", "shoes"),
                                    ("v1", "ServiceAccount", "shoes-trainer"),
                                    ("rbac.authorization.k8s.io/v1", "Role", "shoes-trainer"),
                                    ("rbac.authorization.k8s.io/v1", "RoleBinding", "shoes-trainer")]:
        child = await kube.wait_for(api_version, kind, name, namespace, lambda obj: obj is not None, what=kind)
        assert child["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
        assert child["metadata"]["labels"]["deeptrain.dev/job-name"] == "shoes"
        assert "team" not in child["metadata"]["labels"]
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2
    assert job["spec"]["completionMode"] == "Indexed"
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PET_NNODES"] == "2"
    assert env["PET_MASTER_ADDR"] == "shoes-1-0.shoes"
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "deeptrain/trainer:test"


async def test_running_then_succeeded_with_the_model_recorded(kube, namespace, operator, job_player, wait_job,
                                                               wait_trainer_job, wait_event):
    await kube.create(job_manifest("shoes", namespace))
    job = await wait_trainer_job("shoes")
    await job_player.start_pods(job)
    await job_player.set_running(job)
    running = await wait_job("shoes", type="Running", reason="WorkersRunning")
    assert running["status"]["phase"] == "Running"
    assert running["status"]["workers"]["active"] == 2
    assert running["status"]["startTime"]

    # rank 0 reports progress itself; the operator must leave it alone
    progress = {"epoch": 1, "epochs": 2, "percent": 50}
    await kube.patch(running, {"status": {"progress": progress}}, subresource="status")

    await job_player.succeed(job, {0: TerminationMessage(reason="Succeeded", model=MODEL).to_json()})
    done = await wait_job("shoes", type="Succeeded")
    assert done["status"]["phase"] == "Succeeded"
    assert done["status"]["model"]["uri"] == "pvc://models/shoes"  # spec.output.uri, where the user finds it
    assert done["status"]["model"]["version"] == MODEL.version
    assert done["status"]["metric"] == "accuracy=0.962"
    assert done["status"]["completionTime"]
    assert done["status"]["progress"] == progress
    assert_condition(done, "Running", "False")

    await wait_event("shoes", "Running")
    succeeded = await wait_event("shoes", "Succeeded")
    assert "accuracy=0.962" in succeeded["message"]


async def test_pods_waiting_on_an_image_surface_the_reason(kube, namespace, operator, job_player, wait_job,
                                                           wait_trainer_job):
    await kube.create(job_manifest("shoes", namespace))
    job = await wait_trainer_job("shoes")
    (first, *_) = await job_player.start_pods(job)
    await kube.patch(first, {"status": {"phase": "Pending", "containerStatuses": [{
        "name": "trainer", "image": "x", "imageID": "", "ready": False, "restartCount": 0,
        "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image x"}}}]}},
        subresource="status")
    waiting = await wait_job("shoes", type="Running", status="False", reason="ImagePullBackOff")
    assert "pulling image" in waiting["status"]["message"]
