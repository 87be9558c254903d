"""The one pure function that decides a Workflow's status from its spec and what was observed.

`compute_workflow_status(workflow, observed, now)` returns every status field. Nodes referencing a
DeepTrainingJob are pinned to that job's recorded model; while a pinned job trains again the old
pin keeps serving, and the new version is pinned once the job succeeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deeptrain_api.workflow import Workflow
from deeptrain_api.workflow_contract import MILVUS_SCHEME, parse_index_termination_message

from .. import constants as c
from ..conditions import Conditions
from .builders import endpoint

Manifest = dict[str, Any]
Problem = tuple[str, str]
# Kubelet waiting reasons for a container it cannot even create from its spec (env, mounts).
CONTAINER_CONFIG_ERRORS = frozenset({"CreateContainerConfigError", "CreateContainerError"})


@dataclass(frozen=True)
class ModelState:
    """What a referenced DeepTrainingJob offers; exists=False when there is no such job."""

    exists: bool
    succeeded: bool = False
    failed: bool = False
    phase: str = ""
    model_uri: str | None = None
    version: str | None = None
    model_type: str | None = None
    message: str = ""


@dataclass(frozen=True)
class WorkflowObserved:
    jobs: Mapping[str, ModelState] = field(default_factory=dict)  # by DeepTrainingJob name
    problems: Sequence[Problem] = ()
    deployment: Manifest | None = None
    serve_pods: Sequence[Manifest] = ()  # pods of the serve Deployment
    index_job: Manifest | None = None  # the indexing Job for the current pins, if created
    index_pods: Sequence[Manifest] = ()
    merge_job: Manifest | None = None  # after the shards of a sharded index Job
    merge_pods: Sequence[Manifest] = ()
    prune_job: Manifest | None = None  # drops status.index.retired
    default_winner: str | None = None  # the newest default workflow of the namespace
    index_uri: str | None = None


@dataclass(frozen=True)
class _Resolution:
    nodes: list[Manifest]
    failure: tuple[str, str] | None  # (reason, message)
    waiting: str | None  # message


def resolve_nodes(workflow: Workflow, jobs: Mapping[str, ModelState], previous: Sequence[Manifest]) -> _Resolution:
    pinned_before = {node.get("id"): node for node in previous}
    nodes: list[Manifest] = []
    failure: tuple[str, str] | None = None
    waiting: list[str] = []
    for node in workflow.spec.nodes:
        model = node.model
        if model.builtin is not None:
            nodes.append({"id": node.id, "ready": True})
            continue
        if model.uri is not None:
            nodes.append({"id": node.id, "modelUri": model.uri, "ready": True})
            continue
        job_name = model.deepTrainingJob or ""
        state = jobs.get(job_name, ModelState(exists=False))
        before = pinned_before.get(node.id) or {}
        if not state.exists:
            failure = failure or (c.REASON_MODEL_NOT_FOUND,
                                  f"node {node.id!r}: DeepTrainingJob {job_name!r} does not exist in this namespace")
            nodes.append({"id": node.id, "deepTrainingJob": job_name, "ready": False})
        elif state.failed:
            failure = failure or (c.REASON_MODEL_FAILED, f"node {node.id!r}: DeepTrainingJob {job_name!r} failed"
                                  + (f": {state.message}" if state.message else ""))
            nodes.append({"id": node.id, "deepTrainingJob": job_name, "ready": False})
        elif state.succeeded and state.model_uri:
            nodes.append({"id": node.id, "deepTrainingJob": job_name, "modelUri": state.model_uri,
                          "version": state.version, "ready": True})
        elif before.get("deepTrainingJob") == job_name and before.get("modelUri") and before.get("ready"):
            nodes.append(dict(before))  # the job trains again: keep serving the version pinned before
        else:
            waiting.append(f"node {node.id!r} waits for DeepTrainingJob {job_name!r} ({state.phase or 'not started'})")
            nodes.append({"id": node.id, "deepTrainingJob": job_name, "ready": False})
    return _Resolution(nodes, failure, "; ".join(waiting) or None)


def _deployment_available(deployment: Manifest | None, wanted: int) -> tuple[bool, str]:
    if deployment is None:
        return False, "the serve Deployment is being created"
    status = deployment.get("status") or {}
    generation = deployment.get("metadata", {}).get("generation")
    current = generation is None or (status.get("observedGeneration") or 0) >= generation
    available = int(status.get("availableReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    if wanted > 0 and current and available >= wanted and updated >= wanted:
        return True, f"{available}/{wanted} replicas available"
    return False, f"{available}/{wanted} replicas available, {updated} updated"


def serve_pod_problem(workflow: Workflow, pods: Sequence[Manifest]) -> tuple[str, str] | None:
    """Why the kubelet cannot start a serving container (a missing auth Secret above all), if it says so."""
    auth = workflow.spec.serve.auth if workflow.spec.serve is not None else None
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if container.get("name") != c.SERVE_CONTAINER or waiting.get("reason") not in CONTAINER_CONFIG_ERRORS:
                continue
            said = f"pod {pod['metadata']['name']}: {waiting.get('message') or waiting['reason']}"
            if auth is not None and auth.secretRef.name in (waiting.get("message") or ""):
                return c.REASON_AUTH_SECRET_NOT_FOUND, (
                    f"{said}; create Secret {auth.secretRef.name!r} with key {auth.key!r} listing the accepted "
                    "tokens (spec.serve.auth.secretRef), or remove spec.serve.auth")
            return c.REASON_SERVE_POD_WAITING, said
    return None


def job_finished(job: Manifest) -> str | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return cond["type"]
    return None


def _index_message(pods: Sequence[Manifest]) -> tuple[dict[str, Any] | None, str]:
    """(the parsed message of a succeeded pod, the last failed pod's message)."""
    built, failed = None, ""
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated") or {}
            if terminated.get("exitCode") == 0 and terminated.get("message"):
                built = parse_index_termination_message(terminated["message"]) or built
            elif terminated:
                failed = (terminated.get("message") or terminated.get("reason") or "").strip()[-500:]
    return built, failed


def compute_workflow_status(workflow: Workflow, observed: WorkflowObserved, now: datetime) -> Manifest:
    previous = workflow.status.to_dict() if workflow.status is not None else {}
    generation = workflow.metadata.generation
    conditions = Conditions(previous.get("conditions") or [], now, generation, c.WORKFLOW_CONDITION_TYPES)
    status: Manifest = {"observedGeneration": generation}
    spec = workflow.spec

    # Default: the newest default workflow of the namespace wins; the spec is never touched.
    is_default = spec.default and observed.default_winner in (None, workflow.metadata.name)
    if spec.default and is_default:
        conditions.set(c.DEFAULT, True, c.REASON_IS_DEFAULT, "the namespace's default workflow: it indexes inputs")
    elif spec.default:
        conditions.set(c.DEFAULT, False, c.REASON_SUPERSEDED_BY,
                       f"workflow {observed.default_winner!r} is a newer default workflow of this namespace; "
                       "set spec.default: false here, or delete the other, to make this one the default")
    else:
        conditions.drop(c.DEFAULT)

    if observed.problems:
        field_name, message = observed.problems[0]
        text = f"{field_name}: {message}"
        conditions.set(c.MODELS_READY, False, c.REASON_INVALID_SPEC, text)
        conditions.set(c.READY, False, c.REASON_INVALID_SPEC, text)
        status.update(phase=c.PHASE_FAILED, conditions=conditions.as_list(), nodes=previous.get("nodes") or [],
                      message=text)
        return status

    resolution = resolve_nodes(workflow, observed.jobs, previous.get("nodes") or [])
    status["nodes"] = resolution.nodes
    models_ready = resolution.failure is None and resolution.waiting is None
    if resolution.failure is not None:
        conditions.set(c.MODELS_READY, False, *resolution.failure)
    elif resolution.waiting is not None:
        conditions.set(c.MODELS_READY, False, c.REASON_WAITING_FOR_MODEL, resolution.waiting)
    else:
        pins = ", ".join(f"{n['id']}={n.get('version') or n.get('modelUri')}" for n in resolution.nodes
                         if n.get("modelUri"))
        conditions.set(c.MODELS_READY, True, c.REASON_MODELS_RESOLVED, f"pinned {pins}")
    waiting_reason = resolution.failure[0] if resolution.failure else c.REASON_WAITING_FOR_MODEL
    waiting_message = "the models are not ready"

    blockers: list[Manifest] = []
    if spec.serve is not None:
        status["endpoint"] = endpoint(workflow)
        if not models_ready:
            conditions.set(c.SERVING, False, waiting_reason, waiting_message)
        else:
            available, text = _deployment_available(observed.deployment, spec.serve.replicas)
            problem = None if available else serve_pod_problem(workflow, observed.serve_pods)
            if problem is not None:
                conditions.set(c.SERVING, False, *problem)
            else:
                conditions.set(c.SERVING, available,
                               c.REASON_DEPLOYMENT_AVAILABLE if available else c.REASON_DEPLOYMENT_PROGRESSING, text)
        blockers.append(conditions.get(c.SERVING) or {})
    else:
        conditions.drop(c.SERVING)

    if spec.index is not None:
        index_status = dict(previous.get("index") or {})
        if not is_default:
            conditions.set(c.INDEXED, False, c.REASON_NOT_DEFAULT,
                           "only the namespace's default workflow indexes; set spec.default: true")
        elif not models_ready:
            conditions.set(c.INDEXED, False, waiting_reason, waiting_message)
            blockers.append(conditions.get(c.INDEXED) or {})
        else:
            _index_conditions(conditions, observed, index_status, spec.index.parallelism)
            blockers.append(conditions.get(c.INDEXED) or {})
        if index_status:
            status["index"] = index_status
    else:
        conditions.drop(c.INDEXED)

    not_ready = [cond for cond in blockers if cond.get("status") != "True"]
    if resolution.failure is not None:
        conditions.set(c.READY, False, resolution.failure[0], resolution.failure[1])
        phase, message = c.PHASE_FAILED, resolution.failure[1]
    elif not models_ready:
        conditions.set(c.READY, False, c.REASON_WAITING_FOR_MODEL, resolution.waiting or "")
        phase, message = c.PHASE_PENDING, resolution.waiting or ""
    elif not_ready:
        text = "; ".join(f"{cond['type']}: {cond.get('message', '')}" for cond in not_ready)
        conditions.set(c.READY, False, c.REASON_NOT_READY, text)
        phase, message = c.PHASE_PENDING, text
    else:
        conditions.set(c.READY, True, c.REASON_READY, "models pinned" + (", serving" if spec.serve else "")
                       + (", indexed" if spec.index and is_default else ""))
        phase, message = c.PHASE_READY, ""
    status.update(phase=phase, conditions=conditions.as_list(), message=message)
    return status


def _index_conditions(conditions: Conditions, observed: WorkflowObserved, index_status: Manifest,
                      parallelism: int) -> None:
    job = observed.index_job
    if job is None:
        conditions.set(c.INDEXED, False, c.REASON_INDEXING, "the indexing Job is being created")
        return
    name = job["metadata"]["name"]
    finished = job_finished(job)
    if finished == "Failed":
        failed_shards = (job.get("status") or {}).get("failedIndexes")
        _, failed = _index_message(observed.index_pods)
        conditions.set(c.INDEXED, False, c.REASON_INDEXING_FAILED, f"Job {name} failed"
                       + (f" in shards {failed_shards}" if failed_shards else "")
                       + (f": {failed}" if failed else "; see its pods' logs"))
        return
    if finished != "Complete":
        conditions.set(c.INDEXED, False, c.REASON_INDEXING, f"Job {name} is indexing spec.index.dataset"
                       + (f" in {parallelism} shards" if parallelism > 1 else ""))
        return
    pods = observed.index_pods
    if parallelism > 1:
        merge = observed.merge_job
        merged = job_finished(merge) if merge is not None else None
        if merge is None or merged is None:
            conditions.set(c.INDEXED, False, c.REASON_INDEXING, f"the {parallelism} shards of Job {name} are "
                                                                "embedded; merging them")
            return
        if merged == "Failed":
            _, failed = _index_message(observed.merge_pods)
            conditions.set(c.INDEXED, False, c.REASON_INDEXING_FAILED, f"Job {merge['metadata']['name']} failed"
                           + (f": {failed}" if failed else "; see its pods' logs"))
            return
        name, pods = merge["metadata"]["name"], observed.merge_pods
    built, _ = _index_message(pods)
    _record_built(index_status, built or {}, observed)
    conditions.set(c.INDEXED, True, c.REASON_INDEX_BUILT,
                   f"Job {name} indexed {index_status.get('size', 'an unknown number of')} items")


def _record_built(index_status: Manifest, built: Manifest, observed: WorkflowObserved) -> None:
    """status.index from the build's message; a replaced collection is kept as `retired` until pruned."""
    uri = built.get("uri") if str(built.get("uri", "")).startswith(MILVUS_SCHEME) else observed.index_uri
    retired = index_status.get("retired")
    previous = index_status.get("uri")
    if previous and previous != uri and previous.startswith(MILVUS_SCHEME):
        retired = previous
    if retired and observed.prune_job is not None and job_finished(observed.prune_job) == "Complete":
        retired = None
    index_status.clear()
    index_status.update({**built, "uri": uri or built.get("uri")})
    if retired and retired != uri:
        index_status["retired"] = retired
