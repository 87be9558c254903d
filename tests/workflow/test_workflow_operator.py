"""A Workflow's life as a user sees it through the API, with the real operator reconciling jobs and workflows.

The DeepTrainingJobs are driven to success or failure the way the cluster would (JobPlayer plays the
Job controller and kubelet of their trainer Jobs), so these tests run unchanged on a real cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from deeptrain_api.trainer_contract import ModelSummary, TerminationMessage
from deeptrain_api.workflow_contract import index_termination_message
from harness import assert_condition, find_condition, wait_for_condition

API_VERSION = "deeptrain.dev/v1alpha1"
JOB_KIND = "DeepTrainingJob"
WORKFLOW_KIND = "Workflow"
# Timestamps have one-second resolution: two objects created this far apart are ordered by time.
CREATION_GAP_SECONDS = 1.1


@pytest.fixture
def operator_env(operator_env: dict[str, str]) -> dict[str, str]:
    return {**operator_env, "DEEPTRAIN_RECONCILE_INTERVAL": "1", "DEEPTRAIN_METRICS_PORT": "0",
            "DEEPTRAIN_SERVE_IMAGE": "deeptrain/serve:test"}


def job_manifest(name: str, namespace: str, model_type: str, **spec: Any) -> dict[str, Any]:
    templates = {"visual-detector": "InceptionV2", "visual-embedder": "ResNext"}
    return {"apiVersion": API_VERSION, "kind": JOB_KIND, "metadata": {"name": name, "namespace": namespace},
            "spec": {"modelType": model_type, "template": templates[model_type],
                     "hyperparameters": {"batch_size": 8, "num_epochs": 2},
                     "dataset": {"uri": "pvc://datasets/shapes", "format": "coco" if model_type == "visual-detector"
                                 else "imagefolder"},
                     "output": {"uri": f"pvc://models/{name}"}, "workers": 1, **spec}}


def workflow_manifest(name: str, namespace: str, nodes: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": WORKFLOW_KIND, "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodes": nodes, **spec}}


CROP_GRAPH = [
    {"id": "detect", "model": {"deepTrainingJob": "detector"}},
    {"id": "crop", "model": {"builtin": "image-crop", "params": {"margin": 1.1}}, "inputs": ["detect"]},
    {"id": "embed", "model": {"deepTrainingJob": "embedder"}, "inputs": ["crop"]},
]


def model(name: str, version: str) -> ModelSummary:
    return ModelSummary(uri=f"file:///mnt/pvc/models/{name}", version=version, concepts=["circle", "square"],
                        metrics={}, checksum="sha256:" + version.ljust(64, "0"))


Waiter = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def wait_workflow(kube, namespace) -> Waiter:
    async def wait(name: str, predicate: Callable[[dict[str, Any]], Any] | None = None, **condition: Any) -> dict[str, Any]:
        return await wait_for_condition(kube, API_VERSION, WORKFLOW_KIND, name, namespace, predicate, **condition)

    return wait


@pytest.fixture
def train(kube, namespace, job_player) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Create a job (or reuse it) and play its trainer Job for `attempt`; finish it as asked."""

    async def run(name: str, model_type: str, *, attempt: int = 1, version: str | None = None,
                  fail_with: int | None = None, create: bool = True) -> dict[str, Any]:
        if create:
            await kube.create(job_manifest(name, namespace, model_type))
        trainer = await kube.wait_for("batch/v1", "Job", f"{name}-{attempt}", namespace,
                                      lambda obj: obj is not None and not obj["metadata"].get("deletionTimestamp"),
                                      what=f"attempt {attempt} of {name}")
        await job_player.start_pods(trainer)
        await job_player.set_running(trainer)
        if fail_with is not None:
            message = TerminationMessage(reason="InvalidDataset", message="no images found", permanent=True,
                                         exitCode=fail_with)
            await job_player.fail_pod(trainer, 0, exit_code=fail_with, message=message.to_json())
        elif version is not None:
            await job_player.succeed(trainer, {0: TerminationMessage(reason="Succeeded",
                                                                     model=model(name, version)).to_json()})
        return trainer

    return run


async def wait_job(kube, namespace: str, name: str, predicate: Callable[[dict[str, Any]], Any],
                   what: str) -> dict[str, Any]:
    found = await kube.wait_for(API_VERSION, JOB_KIND, name, namespace,
                                lambda obj: obj is not None and predicate(obj), what=what)
    assert found is not None
    return found


async def wait_listed(kube, namespace: str, selector: str, predicate: Callable[[list[dict[str, Any]]], bool], *,
                      what: str, timeout: float = 30) -> list[dict[str, Any]]:
    """Poll the namespace's Jobs matching `selector` (not being deleted) until `predicate` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        jobs = [job for job in await kube.list("batch/v1", "Job", namespace, label_selector=selector)
                if not job["metadata"].get("deletionTimestamp")]
        if predicate(jobs):
            return jobs
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}; found {[j['metadata']['name'] for j in jobs]}", pytrace=False)
        await asyncio.sleep(0.1)


def back_references(job: dict[str, Any]) -> list[str]:
    return [ref["name"] for ref in (job.get("status") or {}).get("workflows") or []]


async def test_waits_for_a_running_job_then_pins_the_models_when_they_succeed(kube, namespace, operator, train,
                                                                              wait_workflow):
    await train("detector", "visual-detector")
    await train("embedder", "visual-embedder", version="eeeeeeeeeeee")
    await kube.create(workflow_manifest("shape-search", namespace, CROP_GRAPH))

    waiting = await wait_workflow("shape-search", type="ModelsReady", status="False", reason="WaitingForModel")
    assert waiting["status"]["phase"] == "Pending"
    assert "'detect'" in find_condition(waiting, "ModelsReady")["message"]
    assert_condition(waiting, "Ready", "False")

    await train("detector", "visual-detector", version="dddddddddddd", create=False)
    ready = await wait_workflow("shape-search", type="Ready")
    assert ready["status"]["phase"] == "Ready"
    assert_condition(ready, "ModelsReady", "True", reason="ModelsResolved")
    nodes = {node["id"]: node for node in ready["status"]["nodes"]}
    assert nodes["detect"]["deepTrainingJob"] == "detector" and nodes["detect"]["version"] == "dddddddddddd"
    assert nodes["detect"]["modelUri"] == "pvc://models/detector"
    assert nodes["embed"]["version"] == "eeeeeeeeeeee" and nodes["crop"]["ready"]
    for job in ("detector", "embedder"):
        found = await wait_job(kube, namespace, job, lambda obj: back_references(obj) == ["shape-search"],
                               what="the workflow's back-reference")
        assert found["status"]["phase"] == "Succeeded"


async def test_a_missing_job_fails_the_workflow_naming_the_node(kube, namespace, operator, wait_workflow):
    nodes = [{"id": "embed", "model": {"deepTrainingJob": "no-such-job"}}]
    await kube.create(workflow_manifest("lost", namespace, nodes))
    failed = await wait_workflow("lost", type="ModelsReady", status="False", reason="ModelNotFound")
    assert failed["status"]["phase"] == "Failed"
    assert "'embed'" in failed["status"]["message"] and "no-such-job" in failed["status"]["message"]


async def test_a_failed_job_fails_the_workflow_naming_the_node(kube, namespace, operator, train, wait_workflow):
    await kube.create(workflow_manifest("doomed", namespace, [{"id": "embed", "model": {"deepTrainingJob": "embedder"}}]))
    await train("embedder", "visual-embedder", fail_with=11)
    failed = await wait_workflow("doomed", type="ModelsReady", status="False", reason="ModelFailed")
    assert failed["status"]["phase"] == "Failed"
    assert_condition(failed, "Ready", "False", reason="ModelFailed")
    assert "'embed'" in failed["status"]["message"] and "embedder" in failed["status"]["message"]


async def test_a_crop_fed_by_an_embedder_is_an_invalid_spec(kube, namespace, operator, train, wait_workflow):
    await train("embedder", "visual-embedder", version="eeeeeeeeeeee")
    nodes = [{"id": "embed", "model": {"deepTrainingJob": "embedder"}},
             {"id": "crop", "model": {"builtin": "image-crop"}, "inputs": ["embed"]}]
    await kube.create(workflow_manifest("odd", namespace, nodes))
    failed = await wait_workflow("odd", type="Ready", status="False", reason="InvalidSpec")
    assert "'crop'" in failed["status"]["message"] and "visual-detector" in failed["status"]["message"]


async def test_back_references_follow_the_spec_and_go_with_the_workflow(kube, namespace, operator, train,
                                                                        wait_workflow):
    await train("embedder", "visual-embedder", version="eeeeeeeeeeee")
    await train("detector", "visual-detector", version="dddddddddddd")
    created = await kube.create(workflow_manifest("search", namespace, [{"id": "embed", "model": {"deepTrainingJob": "embedder"}}]))
    await wait_job(kube, namespace, "embedder", lambda obj: back_references(obj) == ["search"], what="back-reference")
    # kopf holds the Workflow with a finalizer until the back-references are gone.
    await wait_workflow("search", lambda obj: obj["metadata"].get("finalizers"))

    await kube.patch(created, {"spec": {"nodes": [{"id": "detect", "model": {"deepTrainingJob": "detector"}}]}})
    await wait_job(kube, namespace, "detector", lambda obj: back_references(obj) == ["search"], what="new back-reference")
    await wait_job(kube, namespace, "embedder", lambda obj: back_references(obj) == [], what="back-reference removed")

    await kube.delete(API_VERSION, WORKFLOW_KIND, "search", namespace)
    await wait_job(kube, namespace, "detector", lambda obj: back_references(obj) == [], what="back-reference removed")
    await kube.wait_deleted(API_VERSION, WORKFLOW_KIND, "search", namespace)


async def test_a_retrained_job_is_pinned_anew_and_rolls_the_serving_pods(kube, namespace, operator, train,
                                                                         wait_workflow, job_player):
    await train("embedder", "visual-embedder", version="111111111111")
    await kube.create(workflow_manifest("search", namespace, [{"id": "embed", "model": {"deepTrainingJob": "embedder"}}],
                                        serve={"replicas": 2}))
    await wait_workflow("search", type="ModelsReady")
    deployment = await kube.wait_for("apps/v1", "Deployment", "search-serve", namespace, lambda obj: obj is not None,
                                     what="the serve Deployment")
    service = await kube.get("v1", "Service", "search-serve", namespace)
    template = deployment["spec"]["template"]
    first_hash = template["metadata"]["annotations"]["deeptrain.dev/models-hash"]
    container = template["spec"]["containers"][0]
    assert deployment["spec"]["replicas"] == 2 and container["image"] == "deeptrain/serve:test"
    assert "embed=/mnt/pvc/models/embedder" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    owner = await kube.get(API_VERSION, WORKFLOW_KIND, "search", namespace)
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
    assert owner["status"]["endpoint"] == f"http://search-serve.{namespace}.svc:8080"

    # Retrain: a spec change starts attempt 2; the old version keeps serving until it succeeds.
    job = await kube.get(API_VERSION, JOB_KIND, "embedder", namespace)
    await kube.patch(job, {"spec": {"hyperparameters": {"batch_size": 8, "num_epochs": 3}}})
    await train("embedder", "visual-embedder", attempt=2, create=False)
    await wait_job(kube, namespace, "embedder", lambda obj: obj["status"].get("phase") == "Running",
                   what="retraining")
    still = await wait_workflow("search", type="ModelsReady")
    assert still["status"]["nodes"][0]["version"] == "111111111111"

    await job_player.succeed(await kube.get("batch/v1", "Job", "embedder-2", namespace),
                             {0: TerminationMessage(reason="Succeeded", model=model("embedder", "222222222222")).to_json()})
    repinned = await wait_workflow("search", lambda obj: obj["status"]["nodes"][0].get("version") == "222222222222")
    assert_condition(repinned, "ModelsReady", "True")
    rolled = await kube.wait_for(
        "apps/v1", "Deployment", "search-serve", namespace,
        lambda obj: obj["spec"]["template"]["metadata"]["annotations"]["deeptrain.dev/models-hash"] != first_hash,
        what="a new models-hash on the pod template")
    assert rolled["metadata"]["uid"] == deployment["metadata"]["uid"]  # rolled in place, not replaced


async def test_two_default_workflows_the_newest_wins_and_indexes(kube, namespace, operator, train, wait_workflow,
                                                                 job_player):
    await train("detector", "visual-detector", version="dddddddddddd")
    await train("embedder", "visual-embedder", version="eeeeeeeeeeee")
    index = {"dataset": {"uri": "pvc://datasets/shapes/annotations.json", "format": "coco"}}
    await kube.create(workflow_manifest("older", namespace, CROP_GRAPH, default=True, index=index))
    await wait_workflow("older", type="Default", reason="IsDefault")
    await asyncio.sleep(CREATION_GAP_SECONDS)
    # Named to sort first, so that only its creation time can make it the winner.
    await kube.create(workflow_manifest("newer", namespace, CROP_GRAPH, default=True, index=index))

    loser = await wait_workflow("older", type="Default", status="False", reason="SupersededBy")
    assert "'newer'" in find_condition(loser, "Default")["message"]
    assert loser["spec"]["default"] is True  # status only: the spec stays the user's
    assert_condition(loser, "Indexed", "False", reason="NotDefault")
    winner = await wait_workflow("newer", type="Default", reason="IsDefault")
    assert_condition(winner, "Indexed", "False", reason="Indexing")

    index_jobs = await wait_listed(kube, namespace, "app.kubernetes.io/component=workflow-index",
                                   lambda jobs: [j["metadata"]["labels"]["deeptrain.dev/workflow-name"]
                                                 for j in jobs] == ["newer"], what="only the winner's index Job")
    index_job = index_jobs[0]
    args = index_job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "index" and "--output" in args and "embed" in args
    await job_player.start_pods(index_job)
    await job_player.succeed(index_job, index_termination_message(42, "abcdef012345", "unused"))
    indexed = await wait_workflow("newer", type="Indexed", reason="IndexBuilt")
    assert indexed["status"]["index"]["size"] == 42 and indexed["status"]["index"]["version"] == "abcdef012345"
    assert indexed["status"]["index"]["uri"] == "pvc://models/index/newer"  # beside the embedder, as the user names it
    assert_condition(indexed, "Ready", "True")

    await kube.delete(API_VERSION, WORKFLOW_KIND, "newer", namespace)
    await wait_workflow("older", type="Default", reason="IsDefault")


async def test_serving_with_a_missing_token_secret_says_so_naming_the_fix(kube, namespace, operator, train,
                                                                       wait_workflow):
    await train("embedder", "visual-embedder", version="111111111111")
    auth = {"secretRef": {"name": "search-tokens"}}
    await kube.create(workflow_manifest("guarded", namespace, [{"id": "embed", "model": {"deepTrainingJob": "embedder"}}],
                                        serve={"replicas": 1, "auth": auth}))
    deployment = await kube.wait_for("apps/v1", "Deployment", "guarded-serve", namespace, lambda obj: obj is not None,
                                     what="the serve Deployment")
    template = deployment["spec"]["template"]
    container = template["spec"]["containers"][0]
    assert {"name": "DEEPTRAIN_SERVE_TOKENS",
            "valueFrom": {"secretKeyRef": {"name": "search-tokens", "key": "tokens"}}} in container["env"]
    # What the ReplicaSet controller and the kubelet make of it while the Secret does not exist.
    pod = await kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "guarded-serve-7c9d-x1", "namespace": namespace, "labels": template["metadata"]["labels"]},
        "spec": template["spec"]})
    await kube.patch(pod, {"status": {"phase": "Pending", "containerStatuses": [{
        "name": container["name"], "image": container["image"], "imageID": "", "ready": False, "restartCount": 0,
        "state": {"waiting": {"reason": "CreateContainerConfigError",
                              "message": 'secret "search-tokens" not found'}}}]}}, subresource="status")
    refused = await wait_workflow("guarded", type="Serving", status="False", reason="AuthSecretNotFound")
    message = find_condition(refused, "Serving")["message"]
    assert "guarded-serve-7c9d-x1" in message and "create Secret 'search-tokens' with key 'tokens'" in message
    assert refused["status"]["phase"] == "Pending"
