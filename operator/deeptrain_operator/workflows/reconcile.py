"""The one idempotent, level-based reconcile of a Workflow.

Every trigger (create, update, resume, the timer, changes of the DeepTrainingJobs it references and
of its own children) calls `reconcile_workflow(namespace, name)`: read the Workflow and what it
depends on, compute the status (status.py), write it, then move the children and the jobs'
back-references one step towards it. A Workflow being deleted only has its back-references removed:
its children go with it through their ownerReferences.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from deeptrain_api import catalog
from deeptrain_api.workflow import Workflow, WorkflowStatus

from .. import constants as c
from .. import events
from .. import kube as k
from ..children import contains, controlled_by
from ..conditions import Conditions, format_time
from ..settings import Settings
from ..status import condition_status, is_deleting
from . import builders
from .events import transition_events
from .status import ModelState, WorkflowObserved, compute_workflow_status, job_finished, resolve_nodes

Manifest = dict[str, Any]
Logger = logging.Logger | logging.LoggerAdapter  # type: ignore[type-arg]

OWNED_STATUS_FIELDS = tuple(name for name in WorkflowStatus.model_fields if name != "updatedAt")
JOB_COMPLETION_LABEL = "batch.kubernetes.io/job-name"
BACK_REFERENCE_RETRIES = 5
CHILD_CONFLICT_DELAY_SECONDS = 10.0


# --- observing -------------------------------------------------------------------------------------------

def model_state(job: Manifest) -> ModelState:
    status = job.get("status") or {}
    model = status.get("model") or {}
    succeeded = condition_status(status, c.SUCCEEDED) == "True"
    return ModelState(exists=True, succeeded=succeeded,
                      failed=condition_status(status, c.FAILED) == "True" and not succeeded,
                      phase=status.get("phase") or "", model_uri=model.get("uri"), version=model.get("version"),
                      model_type=(job.get("spec") or {}).get("modelType"), message=status.get("message") or "")


def default_winner(workflows: list[Manifest]) -> str | None:
    """The newest default workflow (by creationTimestamp, then name) that is not being deleted."""
    defaults = [w for w in workflows if (w.get("spec") or {}).get("default") and not is_deleting(w)]
    if not defaults:
        return None
    newest = max(defaults, key=lambda w: (w["metadata"].get("creationTimestamp") or "", w["metadata"]["name"]))
    return newest["metadata"]["name"]


def graph_problems(workflow: Workflow, jobs: dict[str, ModelState]) -> list[tuple[str, str]]:
    """What the schema cannot check: name length, and image-crop fed by something that is not a detector."""
    problems: list[tuple[str, str]] = []
    name = workflow.metadata.name or ""
    if len(name) > builders.MAX_WORKFLOW_NAME_LENGTH:
        problems.append(("metadata.name", f"is {len(name)} characters; at most {builders.MAX_WORKFLOW_NAME_LENGTH} "
                                          "leave room for the names of its Service and Jobs; rename the workflow"))
    by_id = {node.id: node for node in workflow.spec.nodes}
    for position, node in enumerate(workflow.spec.nodes):
        if node.model.builtin != "image-crop":
            continue
        if not node.inputs:
            problems.append((f"spec.nodes[{position}].inputs", f"node {node.id!r}: image-crop needs a "
                                                               "visual-detector node as input"))
        for source in node.inputs or ():
            job_name = by_id[source].model.deepTrainingJob
            state = jobs.get(job_name or "")
            if by_id[source].model.builtin is not None or (
                    state is not None and state.model_type not in (None, catalog.VISUAL_DETECTOR)):
                problems.append((f"spec.nodes[{position}].inputs", f"node {node.id!r}: input {source!r} is not a "
                                                                   "visual-detector; image-crop cuts detected regions"))
    return problems


def embed_node(workflow: Workflow, jobs: dict[str, ModelState]) -> str | None:
    """The node whose embeddings are indexed: the last one whose job trains a visual-embedder."""
    found = [node.id for node in workflow.spec.nodes
             if (state := jobs.get(node.model.deepTrainingJob or "")) is not None
             and state.model_type == catalog.VISUAL_EMBEDDER]
    return found[-1] if found else None


def index_location(workflow: Workflow, pinned: list[Manifest], embed: str | None) -> str | None:
    uris = {node["id"]: node["modelUri"] for node in pinned if node.get("modelUri")}
    uri = uris.get(embed or "") or (list(uris.values())[-1] if uris else None)
    return builders.index_location(workflow, uri) if uri else None


# --- reconciling ------------------------------------------------------------------------------------------

async def reconcile_workflow(kube: k.KubeClient, settings: Settings, namespace: str, name: str, *,
                             logger: Logger) -> None:
    body = await kube.get_or_none(k.WORKFLOW, namespace, name)
    if body is None:
        return
    job_bodies = await kube.list(k.DEEP_TRAINING_JOB, namespace)
    if is_deleting(body):
        await sync_back_references(kube, namespace, name, set(), job_bodies)
        return
    now = datetime.now(UTC)
    try:
        workflow = Workflow.model_validate(body)
    except ValidationError as error:
        problems = [(".".join(str(part) for part in e["loc"]), e["msg"]) for e in error.errors()]
        await _write_invalid(kube, body, problems, now)
        raise kopf.PermanentError(f"invalid spec: {problems[0][0]}: {problems[0][1]}") from None

    jobs = {job["metadata"]["name"]: model_state(job) for job in job_bodies}
    referenced = {node.model.deepTrainingJob for node in workflow.spec.nodes if node.model.deepTrainingJob}
    workflows = await kube.list(k.WORKFLOW, namespace)
    problems = graph_problems(workflow, jobs)
    pinned = resolve_nodes(workflow, jobs, (body.get("status") or {}).get("nodes") or []).nodes
    embed = embed_node(workflow, jobs)
    index_uri = index_location(workflow, pinned, embed) if workflow.spec.index is not None else None
    digest = builders.index_hash(workflow, pinned)
    index_job, index_pods = await _job_and_pods(kube, namespace, builders.index_job_name(name, digest))
    merge_job, merge_pods = await _job_and_pods(kube, namespace, builders.merge_job_name(name, digest))
    retired = ((body.get("status") or {}).get("index") or {}).get("retired")
    prune_job = await kube.get_or_none(k.JOB, namespace, builders.prune_job_name(name, retired)) if retired else None
    deployment = await kube.get_or_none(k.DEPLOYMENT, namespace, builders.serve_name(name))
    serve_pods = await kube.list(k.POD, namespace, label_selector=builders.serve_selector(name)) \
        if deployment is not None else []
    observed = WorkflowObserved(jobs=jobs, problems=problems, deployment=deployment, serve_pods=serve_pods,
                                index_job=index_job, index_pods=index_pods, merge_job=merge_job, merge_pods=merge_pods,
                                prune_job=prune_job, default_winner=default_winner(workflows), index_uri=index_uri)
    status = compute_workflow_status(workflow, observed, now)
    await _record(kube, body, status, now)

    await sync_back_references(kube, namespace, name, referenced & set(jobs), job_bodies)
    if problems or status["phase"] == c.PHASE_FAILED:
        return
    await _converge(kube, settings, body, workflow, status, embed=embed, index_uri=index_uri,
                    index_jobs=(index_job, merge_job, prune_job), deployment=deployment, logger=logger)


async def _job_and_pods(kube: k.KubeClient, namespace: str, name: str) -> tuple[Manifest | None, list[Manifest]]:
    job = await kube.get_or_none(k.JOB, namespace, name)
    pods = await kube.list(k.POD, namespace, label_selector={JOB_COMPLETION_LABEL: name}) if job is not None else []
    return job, pods


async def _record(kube: k.KubeClient, body: Manifest, status: Manifest, now: datetime) -> None:
    previous = body.get("status") or {}
    if all(previous.get(key) == status.get(key) for key in OWNED_STATUS_FIELDS):
        return
    patch = {key: status.get(key) for key in OWNED_STATUS_FIELDS}
    patch["updatedAt"] = format_time(now)
    meta = body["metadata"]
    await kube.patch(k.WORKFLOW, meta["namespace"], meta["name"], {"status": patch}, subresource="status")
    events.post(body, transition_events(previous, status))


async def _write_invalid(kube: k.KubeClient, body: Manifest, problems: list[tuple[str, str]], now: datetime) -> None:
    previous = body.get("status") or {}
    conditions = Conditions(previous.get("conditions") or [], now, body["metadata"].get("generation"),
                            c.WORKFLOW_CONDITION_TYPES)
    text = f"{problems[0][0]}: {problems[0][1]}"
    conditions.set(c.MODELS_READY, False, c.REASON_INVALID_SPEC, text)
    conditions.set(c.READY, False, c.REASON_INVALID_SPEC, text)
    status = {"observedGeneration": body["metadata"].get("generation"), "phase": c.PHASE_FAILED,
              "conditions": conditions.as_list(), "message": text}
    await _record(kube, body, status, now)


async def _converge(kube: k.KubeClient, settings: Settings, body: Manifest, workflow: Workflow, status: Manifest, *,
                    embed: str | None, index_uri: str | None,
                    index_jobs: tuple[Manifest | None, Manifest | None, Manifest | None],
                    deployment: Manifest | None, logger: Logger) -> None:
    namespace, name = workflow.metadata.namespace, workflow.metadata.name or ""
    models_ready = condition_status(status, c.MODELS_READY) == "True"
    if not models_ready:
        return  # keep serving what runs (a model in training) until every node has a model again
    pinned = status.get("nodes") or []
    config_map = builders.build_config_map(workflow)
    await ensure(kube, body, config_map, await kube.get_or_none(k.CONFIG_MAP, namespace, builders.config_map_name(name)),
                 logger=logger)

    # The last built index serves until the next one is built: pods of new models refuse an index of the
    # old ones (never mixing vectors), so the old pods keep serving until both are new. A replaced
    # collection is pruned only once every replica runs the current one.
    index = status.get("index") or {}
    serves_current_index = workflow.spec.serve is None
    if workflow.spec.serve is not None:
        desired = builders.build_deployment(workflow, pinned, settings, index_uri=index.get("uri"),
                                            index_version=index.get("version"))
        serves_current_index = deployment is not None and condition_status(status, c.SERVING) == "True" and \
            _pod_annotation(deployment, c.ANNOTATION_MODELS_HASH) == _pod_annotation(desired, c.ANNOTATION_MODELS_HASH)
        await ensure(kube, body, desired, deployment, logger=logger)
        await ensure(kube, body, builders.build_service(workflow),
                     await kube.get_or_none(k.SERVICE, namespace, builders.serve_name(name)), logger=logger)
    else:
        await _delete_owned(kube, body, [deployment, await kube.get_or_none(k.SERVICE, namespace, builders.serve_name(name))])

    index_job, merge_job, prune_job = index_jobs
    indexes = condition_status(status, c.INDEXED) is not None and \
        condition_reason_of(status, c.INDEXED) != c.REASON_NOT_DEFAULT
    keep: list[str] = []
    if indexes and index_uri is not None:
        options = {"embed_node": embed, "index_uri": index_uri}
        current = builders.build_index_job(workflow, pinned, settings, **options)
        keep.append(current["metadata"]["name"])
        if index_job is None:
            await ensure(kube, body, current, None, logger=logger)
        elif workflow.spec.index is not None and workflow.spec.index.parallelism > 1:
            merge = builders.build_merge_job(workflow, pinned, settings, **options)
            keep.append(merge["metadata"]["name"])
            if merge_job is None and job_finished(index_job) == "Complete":
                await ensure(kube, body, merge, None, logger=logger)
        retired = index.get("retired")
        if retired:
            prune = builders.build_prune_job(workflow, pinned, settings, retired=retired, **options)
            keep.append(prune["metadata"]["name"])
            if prune_job is None and serves_current_index:
                await ensure(kube, body, prune, None, logger=logger)
    old_jobs = await kube.list(k.JOB, namespace, label_selector={c.LABEL_WORKFLOW_NAME: name,
                                                                  c.LABEL_COMPONENT: c.COMPONENT_INDEX})
    await _delete_owned(kube, body, [job for job in old_jobs if job["metadata"]["name"] not in keep])


def _pod_annotation(deployment: Manifest, key: str) -> str | None:
    return (((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations", {}).get(key)


def condition_reason_of(status: Manifest, type_: str) -> str | None:
    cond = next((x for x in status.get("conditions") or [] if x.get("type") == type_), None)
    return cond.get("reason") if cond else None


async def _delete_owned(kube: k.KubeClient, owner: Manifest, objects: list[Manifest | None]) -> None:
    for obj in objects:
        if obj is not None and controlled_by(obj, owner["metadata"]["uid"]) and not is_deleting(obj):
            await kube.delete(k.kind_of(obj), obj["metadata"]["namespace"], obj["metadata"]["name"],
                              propagation="Background")


def _owned_parts(desired: Manifest) -> Manifest:
    """The parts of a child the operator keeps as built (the rest is immutable or the cluster's)."""
    spec = desired.get("spec") or {}
    if desired["kind"] == "ConfigMap":
        return {"data": desired["data"]}
    if desired["kind"] == "Service":
        return {"spec": {"selector": spec["selector"], "ports": spec["ports"]}}
    if desired["kind"] == "Deployment":
        return {"spec": {"replicas": spec["replicas"], "template": spec["template"]}}
    return {}


def drift_patch(desired: Manifest, existing: Manifest) -> Manifest:
    """A merge patch restoring what changed in the operator-owned parts of a child."""
    patch: Manifest = {}
    for part in ("labels", "annotations"):
        wanted = desired["metadata"].get(part) or {}
        if not contains(existing["metadata"].get(part) or {}, wanted):
            patch.setdefault("metadata", {})[part] = wanted
    for key, wanted in _owned_parts(desired).items():
        if not contains(existing.get(key), wanted):
            patch[key] = wanted
    return patch


async def ensure(kube: k.KubeClient, owner: Manifest, desired: Manifest, existing: Manifest | None, *,
                 logger: Logger) -> None:
    """Create `desired`, or bring what is there under its name back to it (ours only)."""
    kind = k.kind_of(desired)
    meta = desired["metadata"]
    if existing is None:
        try:
            await kube.create(desired)
            return
        except k.AlreadyExists:
            existing = await kube.get(kind, meta["namespace"], meta["name"])
    if not controlled_by(existing, owner["metadata"]["uid"]):
        message = f"{kind.kind} {meta['name']} exists and is not controlled by this Workflow; delete or rename it"
        events.post(owner, [events.Event("Warning", c.EVENT_CHILD_CONFLICT, message)])
        raise kopf.TemporaryError(message, delay=CHILD_CONFLICT_DELAY_SECONDS)
    patch = drift_patch(desired, existing)
    if patch:
        logger.info(f"updating {kind.kind} {meta['name']}: {sorted(patch)}")
        await kube.patch(kind, meta["namespace"], meta["name"], patch)


async def sync_back_references(kube: k.KubeClient, namespace: str, workflow_name: str, wanted: set[str],
                               job_bodies: list[Manifest]) -> None:
    """status.workflows of each DeepTrainingJob names this workflow exactly when it references the job.

    A merge patch replaces the whole list, so it carries the resourceVersion it was computed from: a
    concurrent writer (another workflow) makes it fail with 409, and it is recomputed from a fresh read.
    """
    for job in job_bodies:
        job_name = job["metadata"]["name"]
        for _ in range(BACK_REFERENCE_RETRIES):
            references = list((job.get("status") or {}).get("workflows") or [])
            names = [ref.get("name") for ref in references]
            if (workflow_name in names) == (job_name in wanted):
                break
            updated = [ref for ref in references if ref.get("name") != workflow_name]
            if job_name in wanted:
                updated.append({"name": workflow_name, "namespace": namespace})
            updated.sort(key=lambda ref: ref.get("name") or "")
            try:
                await kube.patch(k.DEEP_TRAINING_JOB, namespace, job_name,
                                 {"metadata": {"resourceVersion": job["metadata"]["resourceVersion"]},
                                  "status": {"workflows": updated or None}}, subresource="status")
                break
            except k.Conflict:
                job = await kube.get(k.DEEP_TRAINING_JOB, namespace, job_name)
            except k.NotFound:
                break
