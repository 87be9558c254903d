"""Pure builders: a Workflow and its pinned models in, one child manifest out.

Children: a ConfigMap with the Workflow manifest the pods read, the serve Deployment and its Service
(spec.serve), and indexing Jobs (spec.index, default workflow only): one Job, or an indexed Job of
spec.index.parallelism shards followed by a merge Job, and for the milvus store a prune Job that
drops the replaced collection once the new one serves. Names are deterministic, labels
explicit (never the CR's), and each child has a controlling ownerReference to the Workflow.

Model and index directories reach the pods as PersistentVolumeClaim mounts (see volumes.py).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Sequence
from typing import Any

from deeptrain_api import workflow_contract as pod
from deeptrain_api.trainer_contract import DEFAULT_TERMINATION_LOG, ENV_TERMINATION_LOG, PVC_MOUNT_ROOT
from deeptrain_api.volumes import claim_and_path
from deeptrain_api.workflow import Workflow

from .. import constants as c
from ..settings import Settings

Manifest = dict[str, Any]
PinnedNode = dict[str, Any]  # status.nodes[] entry: {id, deepTrainingJob?, modelUri, version}

# Children names append at most `-index-<10 hex>`; Services and Job pods need 63-character DNS labels.
MAX_WORKFLOW_NAME_LENGTH = 46
INDEX_BACKOFF_LIMIT = 2
LIVENESS_DELAY_SECONDS = 10


# --- names -------------------------------------------------------------------------------------------

def config_map_name(workflow_name: str) -> str:
    return f"{workflow_name}-workflow"


def serve_name(workflow_name: str) -> str:
    """The Deployment and the Service: the endpoint is http://<name>-serve.<namespace>.svc:8080."""
    return f"{workflow_name}-serve"


def serve_selector(workflow_name: str) -> dict[str, str]:
    """The labels that pick the serving pods (Deployment selector, Service, NetworkPolicy in the chart)."""
    return {c.LABEL_WORKFLOW_NAME: workflow_name, c.LABEL_COMPONENT: c.COMPONENT_SERVE}


def index_job_name(workflow_name: str, index_hash: str) -> str:
    return f"{workflow_name}-index-{index_hash[:10]}"


def merge_job_name(workflow_name: str, index_hash: str) -> str:
    """The step after the shards of a sharded index Job: same hash, same name length."""
    return f"{workflow_name}-merge-{index_hash[:10]}"


def prune_job_name(workflow_name: str, retired_uri: str) -> str:
    return f"{workflow_name}-prune-{_digest(retired_uri)[:10]}"


def endpoint(workflow: Workflow) -> str:
    return f"http://{serve_name(_name(workflow))}.{workflow.metadata.namespace}.svc:{pod.SERVE_PORT}"


# --- metadata -------------------------------------------------------------------------------------------

def _name(workflow: Workflow) -> str:
    return workflow.metadata.name or ""


def labels(workflow_name: str, component: str) -> dict[str, str]:
    return {c.LABEL_NAME: c.APP_NAME, c.LABEL_MANAGED_BY: c.MANAGER, c.LABEL_COMPONENT: component,
            c.LABEL_WORKFLOW_NAME: workflow_name}


def owner_reference(workflow: Workflow) -> dict[str, Any]:
    return {"apiVersion": c.API_VERSION, "kind": c.WORKFLOW_KIND, "name": _name(workflow),
            "uid": workflow.metadata.uid, "controller": True, "blockOwnerDeletion": True}


def _metadata(workflow: Workflow, name: str, component: str, annotations: dict[str, str] | None = None) -> Manifest:
    meta: Manifest = {"name": name, "namespace": workflow.metadata.namespace,
                      "labels": labels(_name(workflow), component), "ownerReferences": [owner_reference(workflow)]}
    if annotations:
        meta["annotations"] = annotations
    return meta


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


# --- where things are in the pods --------------------------------------------------------------------

def index_location(workflow: Workflow, embed_model_uri: str) -> str:
    """The index's URI: `index/<workflow>` beside the embedder's model directory, in the same scheme."""
    parent = posixpath.dirname(embed_model_uri.rstrip("/"))
    return f"{parent}/{c.INDEX_DIR}/{_name(workflow)}"


def model_arguments(pinned: Sequence[PinnedNode]) -> list[str]:
    arguments = []
    for node in pinned:
        if node.get("modelUri"):
            arguments += [pod.ARG_MODEL, f"{node['id']}={claim_and_path(node['modelUri'])[1]}"]
    return arguments


def _claims(read: Sequence[str], write: Sequence[str] = ()) -> dict[str, bool]:
    """Each claim -> whether the pod writes to it."""
    claims: dict[str, bool] = {}
    for uri in read:
        if (claim := claim_and_path(uri)[0]) is not None:
            claims.setdefault(claim, False)
    for uri in write:
        if (claim := claim_and_path(uri)[0]) is not None:
            claims[claim] = True
    return dict(sorted(claims.items()))


def _volumes_and_mounts(workflow: Workflow, claims: dict[str, bool]) -> tuple[list[Manifest], list[Manifest]]:
    volumes: list[Manifest] = [{"name": "workflow", "configMap": {"name": config_map_name(_name(workflow))}},
                               {"name": "tmp", "emptyDir": {}}]
    mounts: list[Manifest] = [{"name": "workflow", "mountPath": c.WORKFLOW_MOUNT_PATH, "readOnly": True},
                              {"name": "tmp", "mountPath": "/tmp"}]
    for index, (claim, writable) in enumerate(claims.items()):
        volumes.append({"name": f"pvc-{index}", "persistentVolumeClaim": {"claimName": claim, "readOnly": not writable}})
        mounts.append({"name": f"pvc-{index}", "mountPath": f"{PVC_MOUNT_ROOT}/{claim}", "readOnly": not writable})
    return volumes, mounts


def _pod_security(settings: Settings) -> Manifest:
    return {"runAsNonRoot": True, "runAsUser": settings.trainer_uid, "runAsGroup": settings.trainer_uid,
            "fsGroup": settings.trainer_uid, "seccompProfile": {"type": "RuntimeDefault"}}


def _container_security() -> Manifest:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True}


def _workflow_path() -> str:
    return f"{c.WORKFLOW_MOUNT_PATH}/{pod.WORKFLOW_FILENAME}"


# --- hashes -------------------------------------------------------------------------------------------

def _pins(pinned: Sequence[PinnedNode]) -> list[list[Any]]:
    return [[node["id"], node.get("modelUri"), node.get("version")] for node in pinned]


def models_hash(workflow: Workflow, pinned: Sequence[PinnedNode], index_version: str | None) -> str:
    """What the serving pods run: the graph, the pinned model versions and the index version."""
    return _digest({"spec": workflow.spec.model_dump(mode="json", exclude={"serve"}), "pins": _pins(pinned),
                    "index": index_version})


def index_hash(workflow: Workflow, pinned: Sequence[PinnedNode]) -> str:
    """What an index is built from: the graph, the pinned model versions and spec.index."""
    return _digest({"nodes": [n.model_dump(mode="json") for n in workflow.spec.nodes], "pins": _pins(pinned),
                    "index": workflow.spec.index.model_dump(mode="json") if workflow.spec.index else None})


# --- children -------------------------------------------------------------------------------------------

def build_config_map(workflow: Workflow) -> Manifest:
    """The Workflow as the pods read it (identity and spec only: status would churn the file)."""
    document = {"apiVersion": c.API_VERSION, "kind": c.WORKFLOW_KIND,
                "metadata": {"name": _name(workflow), "namespace": workflow.metadata.namespace},
                "spec": workflow.spec.to_dict()}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _metadata(workflow, config_map_name(_name(workflow)), c.COMPONENT_WORKFLOW_CONFIG),
            "data": {pod.WORKFLOW_FILENAME: json.dumps(document, indent=2, sort_keys=True) + "\n"}}


def build_deployment(workflow: Workflow, pinned: Sequence[PinnedNode], settings: Settings, *,
                     index_uri: str | None = None, index_version: str | None = None) -> Manifest:
    name = _name(workflow)
    serve = workflow.spec.serve
    assert serve is not None, "only workflows with spec.serve are served"
    arguments = [pod.ARG_WORKFLOW, _workflow_path(), *model_arguments(pinned), pod.ARG_HOST, pod.POD_BIND_ADDRESS,
                 pod.ARG_PORT, str(pod.SERVE_PORT)]
    read = [node["modelUri"] for node in pinned if node.get("modelUri")]
    if index_uri is not None:
        arguments += [pod.ARG_INDEX, claim_and_path(index_uri)[1]]
        read.append(index_uri)
    volumes, mounts = _volumes_and_mounts(workflow, _claims(read))
    store_env = _store_env(workflow) if index_uri is not None else []
    probe = {"httpGet": {"path": pod.READY_PATH, "port": c.HTTP_PORT_NAME}, "periodSeconds": 5, "failureThreshold": 3}
    container: Manifest = {
        "name": c.SERVE_CONTAINER,
        "image": settings.serve_image,
        "command": ["python", "-m", pod.SERVE_MODULE],
        "args": arguments,
        "env": [{"name": c.ENV_HOME, "value": "/tmp"}, {"name": "OMP_NUM_THREADS", "value": "1"}, *store_env],
        "ports": [{"name": c.HTTP_PORT_NAME, "containerPort": pod.SERVE_PORT, "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": {"httpGet": {"path": pod.HEALTH_PATH, "port": c.HTTP_PORT_NAME},
                          "initialDelaySeconds": LIVENESS_DELAY_SECONDS, "periodSeconds": 10, "failureThreshold": 3},
        "volumeMounts": mounts,
        "securityContext": _container_security(),
    }
    if serve.resources is not None:
        container["resources"] = serve.resources.to_dict()
    if serve.auth is not None:
        # An env var from a missing Secret or key stops the container with CreateContainerConfigError,
        # which the status reports as AuthSecretNotFound: the service never starts open by mistake.
        container["env"].append({"name": pod.ENV_SERVE_TOKENS, "valueFrom": {"secretKeyRef": {
            "name": serve.auth.secretRef.name, "key": serve.auth.key}}})
    pod_labels = labels(name, c.COMPONENT_SERVE)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(workflow, serve_name(name), c.COMPONENT_SERVE),
        "spec": {
            "replicas": serve.replicas,
            "selector": {"matchLabels": serve_selector(name)},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": {
                    c.ANNOTATION_MODELS_HASH: models_hash(workflow, pinned, index_version),
                    "prometheus.io/scrape": "true", "prometheus.io/port": str(pod.SERVE_PORT),
                    "prometheus.io/path": pod.METRICS_PATH}},
                "spec": {"securityContext": _pod_security(settings), "automountServiceAccountToken": False,
                         "containers": [container], "volumes": volumes},
            },
        },
    }


def build_service(workflow: Workflow) -> Manifest:
    name = _name(workflow)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(workflow, serve_name(name), c.COMPONENT_SERVE),
        "spec": {"selector": serve_selector(name),
                 "ports": [{"name": c.HTTP_PORT_NAME, "port": pod.SERVE_PORT, "targetPort": c.HTTP_PORT_NAME,
                            "protocol": "TCP"}]},
    }


def _store_env(workflow: Workflow) -> list[Manifest]:
    """The milvus store's connection, from the keys of the Secret spec.index.connection names."""
    index = workflow.spec.index
    if index is None or index.connection is None:
        return []
    secret = index.connection.secretRef.name
    return [{"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": key != "uri"}}}
            for env, key in pod.MILVUS_SECRET_KEYS.items()]


def _index_pod_job(workflow: Workflow, pinned: Sequence[PinnedNode], settings: Settings, *, name: str,
                   extra_args: list[str], embed_node: str | None, index_uri: str, digest: str,
                   job_spec: Manifest) -> Manifest:
    """A Job running `deeptrain index` (one shard, the merge, a whole build or a prune) over the pinned models."""
    index = workflow.spec.index
    assert index is not None, "only workflows with spec.index are indexed"
    arguments = ["index", _workflow_path(), *model_arguments(pinned), pod.ARG_OUTPUT, claim_and_path(index_uri)[1],
                 *extra_args]
    if embed_node is not None:
        arguments += ["--node", embed_node]
    read = [node["modelUri"] for node in pinned if node.get("modelUri")] + [index.dataset.uri]
    volumes, mounts = _volumes_and_mounts(workflow, _claims(read, [index_uri]))
    env: list[Manifest] = [{"name": c.ENV_HOME, "value": "/tmp"}, {"name": "OMP_NUM_THREADS", "value": "1"},
                           {"name": ENV_TERMINATION_LOG, "value": DEFAULT_TERMINATION_LOG}]
    if pod.ARG_SHARD in extra_args:
        env.append({"name": c.ENV_SHARD_INDEX, "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{c.ANNOTATION_COMPLETION_INDEX}']"}}})
    container: Manifest = {
        "name": c.INDEX_CONTAINER,
        "image": settings.serve_image,
        "command": ["deeptrain"],
        "args": arguments,
        "env": env + _store_env(workflow),
        "volumeMounts": mounts,
        "terminationMessagePath": DEFAULT_TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": _container_security(),
    }
    if workflow.spec.serve is not None and workflow.spec.serve.resources is not None:
        container["resources"] = workflow.spec.serve.resources.to_dict()
    annotations = {c.ANNOTATION_INDEX_HASH: digest}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(workflow, name, c.COMPONENT_INDEX, annotations),
        "spec": {
            **job_spec,
            "template": {
                "metadata": {"labels": labels(_name(workflow), c.COMPONENT_INDEX), "annotations": annotations},
                "spec": {"restartPolicy": "Never", "securityContext": _pod_security(settings),
                         "automountServiceAccountToken": False, "containers": [container], "volumes": volumes},
            },
        },
    }


def build_index_job(workflow: Workflow, pinned: Sequence[PinnedNode], settings: Settings, *, embed_node: str | None,
                    index_uri: str) -> Manifest:
    """Indexes spec.index.dataset: one pod, or an indexed Job of spec.index.parallelism pods each embedding
    one shard, where a failed shard is retried alone. The termination message of a whole build carries the
    index size for status.index; a sharded build reports through its merge Job."""
    index = workflow.spec.index
    assert index is not None, "only workflows with spec.index are indexed"
    digest = index_hash(workflow, pinned)
    name = index_job_name(_name(workflow), digest)
    if index.parallelism == 1:
        return _index_pod_job(workflow, pinned, settings, name=name, extra_args=[], embed_node=embed_node,
                              index_uri=index_uri, digest=digest, job_spec={"backoffLimit": INDEX_BACKOFF_LIMIT})
    shards = index.parallelism
    return _index_pod_job(
        workflow, pinned, settings, name=name, extra_args=[pod.ARG_SHARD, f"$({c.ENV_SHARD_INDEX})/{shards}"],
        embed_node=embed_node, index_uri=index_uri, digest=digest,
        job_spec={"completionMode": "Indexed", "completions": shards, "parallelism": shards,
                  "backoffLimitPerIndex": INDEX_BACKOFF_LIMIT})


def build_merge_job(workflow: Workflow, pinned: Sequence[PinnedNode], settings: Settings, *, embed_node: str | None,
                    index_uri: str) -> Manifest:
    """After every shard succeeded: merge their parts (embedded) or finish the collection, cluster, commit."""
    index = workflow.spec.index
    assert index is not None, "only workflows with spec.index are indexed"
    digest = index_hash(workflow, pinned)
    return _index_pod_job(workflow, pinned, settings, name=merge_job_name(_name(workflow), digest),
                          extra_args=[pod.ARG_MERGE, str(index.parallelism)], embed_node=embed_node,
                          index_uri=index_uri, digest=digest, job_spec={"backoffLimit": INDEX_BACKOFF_LIMIT})


def build_prune_job(workflow: Workflow, pinned: Sequence[PinnedNode], settings: Settings, *, embed_node: str | None,
                    index_uri: str, retired: str) -> Manifest:
    """Once the new collection serves: drop the workflow's collections of other model versions."""
    return _index_pod_job(workflow, pinned, settings, name=prune_job_name(_name(workflow), retired),
                          extra_args=[pod.ARG_PRUNE], embed_node=embed_node, index_uri=index_uri,
                          digest=index_hash(workflow, pinned), job_spec={"backoffLimit": INDEX_BACKOFF_LIMIT})
