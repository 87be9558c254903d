"""The Workflow controller's pure parts: child manifests from a workflow and its pins; status from observations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from deeptrain_api.workflow import Workflow
from deeptrain_operator.settings import Settings
from deeptrain_operator.workflows import builders
from deeptrain_operator.workflows.status import ModelState, WorkflowObserved, compute_workflow_status

NOW = datetime(2024, 5, 1, tzinfo=UTC)
NODES = [
    {"id": "detect", "model": {"deepTrainingJob": "detector"}},
    {"id": "crop", "model": {"builtin": "image-crop", "params": {"margin": 1.1}}, "inputs": ["detect"]},
    {"id": "embed", "model": {"deepTrainingJob": "embedder"}, "inputs": ["crop"]},
]
PINNED = [
    {"id": "detect", "deepTrainingJob": "detector", "modelUri": "pvc://models/detector", "version": "d1", "ready": True},
    {"id": "crop", "ready": True},
    {"id": "embed", "deepTrainingJob": "embedder", "modelUri": "file:///mnt/pvc/models/embedder", "version": "e1",
     "ready": True},
]


def workflow(status: dict | None = None, **spec) -> Workflow:
    return Workflow.model_validate({"metadata": {"name": "search", "namespace": "team", "uid": "u-1", "generation": 3},
                                    "spec": {"nodes": NODES, **spec}, **({"status": status} if status else {})})


def succeeded(name: str, version: str) -> ModelState:
    return ModelState(exists=True, succeeded=True, phase="Succeeded", model_uri=f"pvc://models/{name}", version=version)


def conditions(status: dict) -> dict[str, tuple[str, str]]:
    return {cond["type"]: (cond["status"], cond["reason"]) for cond in status["conditions"]}


def test_serving_pods_mount_the_model_claims_read_only_and_run_restricted():
    deployment = builders.build_deployment(workflow(serve={"replicas": 2}), PINNED, Settings(serve_image="serve:1"))
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "serve:1" and container["command"] == ["python", "-m", "deeptrain_trainer.serve"]
    assert "detect=/mnt/pvc/models/detector" in container["args"] and "embed=/mnt/pvc/models/embedder" in container["args"]
    claims = {v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"]["readOnly"]
              for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"models": True}
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                            "readOnlyRootFilesystem": True, "runAsNonRoot": True}
    assert deployment["metadata"]["ownerReferences"][0] == {
        "apiVersion": "deeptrain.dev/v1alpha1", "kind": "Workflow", "name": "search", "uid": "u-1",
        "controller": True, "blockOwnerDeletion": True}


def test_models_hash_follows_versions_and_the_index_not_the_replica_count():
    base = workflow(serve={"replicas": 1})
    first = builders.models_hash(base, PINNED, None)
    assert builders.models_hash(workflow(serve={"replicas": 5}), PINNED, None) == first
    retrained = [dict(node, version="e2") if node["id"] == "embed" else node for node in PINNED]
    assert builders.models_hash(base, retrained, None) != first
    assert builders.models_hash(base, PINNED, "index-v2") != first


def test_the_index_job_writes_beside_the_embedder_and_reads_the_dataset():
    indexed = workflow(default=True, index={"dataset": {"uri": "pvc://datasets/shapes/coco.json", "format": "coco"}})
    location = builders.index_location(indexed, "file:///mnt/pvc/models/embedder")
    assert location == "file:///mnt/pvc/models/index/search"
    job = builders.build_index_job(indexed, PINNED, Settings(), embed_node="embed", index_uri=location)
    pod = job["spec"]["template"]["spec"]
    claims = {v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"]["readOnly"]
              for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"datasets": True, "models": False}
    args = pod["containers"][0]["args"]
    assert args[args.index("--output") + 1] == "/mnt/pvc/models/index/search"
    assert job["metadata"]["name"].startswith("search-index-") and len(job["metadata"]["name"]) <= 63


def test_a_retraining_job_keeps_its_pin_until_it_succeeds_again():
    before = workflow(status={"nodes": [dict(node) for node in PINNED]})
    training = ModelState(exists=True, phase="Running")
    status = compute_workflow_status(before, WorkflowObserved(jobs={"detector": training,
                                                                    "embedder": succeeded("embedder", "e1")}), NOW)
    assert conditions(status)["ModelsReady"] == ("True", "ModelsResolved")
    assert status["nodes"][0]["version"] == "d1" and status["phase"] == "Ready"
    fresh = compute_workflow_status(workflow(), WorkflowObserved(jobs={"detector": training,
                                                                       "embedder": succeeded("embedder", "e1")}), NOW)
    assert conditions(fresh)["ModelsReady"] == ("False", "WaitingForModel") and fresh["phase"] == "Pending"


def test_ready_waits_for_the_deployment_when_serving_is_asked_for():
    jobs = {"detector": succeeded("detector", "d1"), "embedder": succeeded("embedder", "e1")}
    served = workflow(serve={"replicas": 2})
    rolling = {"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "availableReplicas": 1,
                                                         "updatedReplicas": 2}}
    status = compute_workflow_status(served, WorkflowObserved(jobs=jobs, deployment=rolling), NOW)
    assert conditions(status)["Serving"] == ("False", "DeploymentProgressing") and status["phase"] == "Pending"
    available = {"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "availableReplicas": 2,
                                                           "updatedReplicas": 2}}
    status = compute_workflow_status(served, WorkflowObserved(jobs=jobs, deployment=available), NOW)
    assert conditions(status)["Serving"] == ("True", "DeploymentAvailable") and status["phase"] == "Ready"
    assert status["endpoint"] == "http://search-serve.team.svc:8080"


def test_a_superseded_default_neither_indexes_nor_blocks_ready():
    jobs = {"detector": succeeded("detector", "d1"), "embedder": succeeded("embedder", "e1")}
    index = {"dataset": {"uri": "pvc://datasets/shapes/coco.json", "format": "coco"}}
    status = compute_workflow_status(workflow(default=True, index=index),
                                     WorkflowObserved(jobs=jobs, default_winner="newer"), NOW)
    found = conditions(status)
    assert found["Default"] == ("False", "SupersededBy") and found["Indexed"] == ("False", "NotDefault")
    assert status["phase"] == "Ready"


MILVUS_INDEX = {"dataset": {"uri": "pvc://datasets/shapes/coco.json", "format": "coco"}, "store": "milvus",
                "parallelism": 4, "connection": {"secretRef": {"name": "milvus-credentials"}}}


def complete(name: str, message: str | None = None) -> tuple[dict, list[dict]]:
    job = {"metadata": {"name": name}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    terminated = {"exitCode": 0, **({"message": message} if message else {})}
    return job, [{"status": {"containerStatuses": [{"state": {"terminated": terminated}}]}}]


def test_a_sharded_index_is_an_indexed_job_then_a_merge_with_the_milvus_secret_in_env():
    indexed = workflow(default=True, index=MILVUS_INDEX, serve={"replicas": 1})
    location = "file:///mnt/pvc/models/index/search"
    shards = builders.build_index_job(indexed, PINNED, Settings(), embed_node="embed", index_uri=location)
    spec = shards["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 4
    assert spec["backoffLimitPerIndex"] == builders.INDEX_BACKOFF_LIMIT and "backoffLimit" not in spec
    container = spec["template"]["spec"]["containers"][0]
    assert container["args"][container["args"].index("--shard") + 1] == "$(DEEPTRAIN_SHARD_INDEX)/4"
    env = {e["name"]: e.get("valueFrom") for e in container["env"]}
    assert env["DEEPTRAIN_SHARD_INDEX"]["fieldRef"]["fieldPath"] == \
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert env["DEEPTRAIN_MILVUS_URI"]["secretKeyRef"] == {"name": "milvus-credentials", "key": "uri", "optional": False}
    assert env["DEEPTRAIN_MILVUS_TOKEN"]["secretKeyRef"]["optional"] is True

    merge = builders.build_merge_job(indexed, PINNED, Settings(), embed_node="embed", index_uri=location)
    args = merge["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--merge") + 1] == "4" and "--shard" not in args
    assert merge["metadata"]["name"].startswith("search-merge-") and len(merge["metadata"]["name"]) <= 63
    served = builders.build_deployment(indexed, PINNED, Settings(), index_uri="milvus://dt_search_abc", index_version="v")
    serve = served["spec"]["template"]["spec"]["containers"][0]
    assert serve["args"][serve["args"].index("--index") + 1] == "milvus://dt_search_abc"
    assert "DEEPTRAIN_MILVUS_URI" in {e["name"] for e in serve["env"]}


def test_the_milvus_store_needs_a_connection_secret():
    with pytest.raises(ValidationError, match="connection.secretRef"):
        workflow(default=True, index={**MILVUS_INDEX, "connection": None})


def test_a_sharded_index_is_built_once_merged_and_a_replaced_collection_retires_until_pruned():
    jobs = {"detector": succeeded("detector", "d1"), "embedder": succeeded("embedder", "e1")}
    old = {"uri": "milvus://dt_search_old", "size": 10, "version": "old-10"}
    before = workflow(default=True, index=MILVUS_INDEX, status={"index": old})
    shards, shard_pods = complete("search-index-abc")
    status = compute_workflow_status(before, WorkflowObserved(jobs=jobs, index_job=shards, index_pods=shard_pods), NOW)
    assert conditions(status)["Indexed"] == ("False", "Indexing") and "merging" in status["message"]
    assert status["index"] == old, "the old collection is what serves meanwhile"

    merge, merge_pods = complete("search-merge-abc", '{"size": 12, "uri": "milvus://dt_search_new", "version": "n-12"}')
    observed = WorkflowObserved(jobs=jobs, index_job=shards, index_pods=shard_pods, merge_job=merge,
                                merge_pods=merge_pods)
    status = compute_workflow_status(before, observed, NOW)
    assert conditions(status)["Indexed"] == ("True", "IndexBuilt")
    assert status["index"] == {"size": 12, "uri": "milvus://dt_search_new", "version": "n-12",
                               "retired": "milvus://dt_search_old"}

    after = workflow(default=True, index=MILVUS_INDEX, status={"index": status["index"]})
    pruned, _ = complete(builders.prune_job_name("search", "milvus://dt_search_old"))
    status = compute_workflow_status(after, WorkflowObserved(jobs=jobs, index_job=shards, index_pods=shard_pods,
                                                             merge_job=merge, merge_pods=merge_pods,
                                                             prune_job=pruned), NOW)
    assert "retired" not in status["index"] and status["index"]["uri"] == "milvus://dt_search_new"


def test_a_failed_shard_names_itself_in_the_condition():
    jobs = {"detector": succeeded("detector", "d1"), "embedder": succeeded("embedder", "e1")}
    failed = {"metadata": {"name": "search-index-abc"}, "status": {
        "failedIndexes": "2", "conditions": [{"type": "Failed", "status": "True"}]}}
    status = compute_workflow_status(workflow(default=True, index=MILVUS_INDEX),
                                     WorkflowObserved(jobs=jobs, index_job=failed), NOW)
    assert conditions(status)["Indexed"] == ("False", "IndexingFailed") and "in shards 2" in status["message"]


AUTH = {"secretRef": {"name": "search-tokens"}}


def test_serving_with_auth_takes_its_tokens_from_the_secret_and_listens_on_every_interface():
    container = builders.build_deployment(workflow(serve={"auth": AUTH}), PINNED, Settings())[
        "spec"]["template"]["spec"]["containers"][0]
    assert container["args"][container["args"].index("--host") + 1] == "0.0.0.0"
    tokens = next(env for env in container["env"] if env["name"] == "DEEPTRAIN_SERVE_TOKENS")
    assert tokens["valueFrom"] == {"secretKeyRef": {"name": "search-tokens", "key": "tokens"}}
    open_container = builders.build_deployment(workflow(serve={}), PINNED, Settings())[
        "spec"]["template"]["spec"]["containers"][0]
    assert all(env["name"] != "DEEPTRAIN_SERVE_TOKENS" for env in open_container["env"])


def serve_pod(reason: str, message: str) -> dict:
    return {"metadata": {"name": "search-serve-abc"}, "status": {"containerStatuses": [
        {"name": "serve", "state": {"waiting": {"reason": reason, "message": message}}}]}}


def test_a_missing_auth_secret_is_a_serving_condition_naming_the_secret_and_the_fix():
    jobs = {"detector": succeeded("detector", "d1"), "embedder": succeeded("embedder", "e1")}
    served = workflow(serve={"auth": {**AUTH, "key": "api"}})
    rolling = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1}}
    for message in ('secret "search-tokens" not found', "couldn't find key api in Secret team/search-tokens"):
        observed = WorkflowObserved(jobs=jobs, deployment=rolling,
                                    serve_pods=[serve_pod("CreateContainerConfigError", message)])
        status = compute_workflow_status(served, observed, NOW)
        assert conditions(status)["Serving"] == ("False", "AuthSecretNotFound") and status["phase"] == "Pending"
        serving = next(cond for cond in status["conditions"] if cond["type"] == "Serving")
        assert message in serving["message"] and "create Secret 'search-tokens' with key 'api'" in serving["message"]
    other = WorkflowObserved(jobs=jobs, deployment=rolling,
                             serve_pods=[serve_pod("CreateContainerConfigError", 'configmap "x" not found')])
    assert conditions(compute_workflow_status(served, other, NOW))["Serving"] == ("False", "ServePodWaiting")
