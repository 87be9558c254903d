"""The one idempotent, level-based reconcile of a DeepTrainingJob.

Every trigger (create, update, resume, the slow resync loop, events of the child Jobs and pods) calls
`reconcile(namespace, name)`. It reads the job fresh, observes its children, computes the status
(status.py), writes it, and then moves the children one step towards what that status says.
Writing the status first matters: a gang restart is recorded (attempt + 1) before the old gang is
deleted, so a crash in between can never lose the failure or rerun the old attempt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from deeptrain_api import DeepTrainingJob
from deeptrain_api import trainer_contract as contract
from deeptrain_api.checks import unknown_hyperparameters, validate_job
from deeptrain_api.job import DeepTrainingJobStatus
from deeptrain_api.trainer_config import TrainerConfigError, build_trainer_config

from . import builders, events, metrics
from . import constants as c
from . import kube as k
from .children import contains, controlled_by
from .settings import Settings
from .status import (
    BaseModelState,
    Observed,
    children_expired,
    compute_status,
    condition_reason,
    condition_status,
    current_trainer_job,
    invalid_spec_status,
    is_deleting,
    is_terminal,
    job_created_message,
    remaining_deadline,
    stale_children,
)

Manifest = dict[str, Any]
Logger = logging.Logger | logging.LoggerAdapter  # type: ignore[type-arg]

# The status fields the operator owns; `progress` is rank 0's and is never written here. Only those the
# API's status schema declares: the apiserver prunes the others, and they would look changed forever.
OWNED_STATUS_FIELDS = tuple(
    name for name in ("observedGeneration", "phase", "hyperparameters", "conditions", "startTime", "completionTime",
                      "attempt", "restarts", "workers", "model", "metric", "message", c.STATUS_SPEC_HASH)
    if name in DeepTrainingJobStatus.model_fields)
# How soon to look again while waiting on something no watch event announces (another job's model).
WAIT_DELAY_SECONDS = 10.0


@dataclass
class Children:
    """What exists under the names of a job's children (ownership is checked before use); trainer Jobs
    only when this job controls them."""

    config_map: Manifest | None = None
    service: Manifest | None = None
    service_account: Manifest | None = None
    role: Manifest | None = None
    role_binding: Manifest | None = None
    podgroup: Manifest | None = None
    trainer_jobs: list[Manifest] = field(default_factory=list)
    # Pods of the job's gangs: found by label, whoever owns them, because a leftover pod of an old gang
    # still counts as a running rank.
    pods: list[Manifest] = field(default_factory=list)


def _podgroup_kind(job: DeepTrainingJob) -> k.Kind | None:
    gang = job.spec.scheduling.gang
    if not gang:
        return None
    return k.VOLCANO_PODGROUP if gang == c.GANG_VOLCANO else k.COSCHEDULING_PODGROUP


async def observe(kube: k.KubeClient, job: DeepTrainingJob) -> Children:
    name, namespace, uid = job.metadata.name or "", job.metadata.namespace, job.metadata.uid
    selector = {c.LABEL_JOB_NAME: name}

    async def named(kind: k.Kind, child_name: str) -> Manifest | None:
        return await kube.get_or_none(kind, namespace, child_name)

    podgroup_kind = _podgroup_kind(job)
    return Children(
        config_map=await named(k.CONFIG_MAP, builders.config_map_name(name)),
        service=await named(k.SERVICE, builders.service_name(name)),
        service_account=await named(k.SERVICE_ACCOUNT, builders.rbac_name(name)),
        role=await named(k.ROLE, builders.rbac_name(name)),
        role_binding=await named(k.ROLE_BINDING, builders.rbac_name(name)),
        podgroup=await named(podgroup_kind, builders.podgroup_name(name)) if podgroup_kind else None,
        trainer_jobs=[j for j in await kube.list(k.JOB, namespace, label_selector=selector) if controlled_by(j, uid)],
        pods=await kube.list(k.POD, namespace, label_selector={**selector, c.LABEL_COMPONENT: c.COMPONENT_TRAINER}),
    )


async def base_model_state(kube: k.KubeClient, job: DeepTrainingJob) -> BaseModelState | None:
    base = job.spec.baseModel
    if base is None or not base.deepTrainingJob:
        return None
    other = await kube.get_or_none(k.DEEP_TRAINING_JOB, job.metadata.namespace, base.deepTrainingJob)
    if other is None:
        return BaseModelState(exists=False)
    status = other.get("status") or {}
    succeeded = condition_status(status, c.SUCCEEDED) == "True"
    return BaseModelState(
        exists=True,
        succeeded=succeeded,
        failed=condition_status(status, c.FAILED) == "True" and not succeeded,
        model_uri=(status.get("model") or {}).get("uri"),
        message=status.get("message") or "",
    )


def _config_of_current_run(config_map: Manifest | None, uid: str | None,
                           run_hash: str) -> contract.TrainerConfig | None:
    """The config the current run was started with, when its ConfigMap is still there and intact."""
    if config_map is None or not controlled_by(config_map, uid):
        return None
    if (config_map["metadata"].get("annotations") or {}).get(c.ANNOTATION_SPEC_HASH) != run_hash:
        return None
    try:
        return contract.load_config((config_map.get("data") or {}).get(contract.CONFIG_FILENAME, ""))
    except ValueError:
        return None


async def reconcile(kube: k.KubeClient, settings: Settings, namespace: str, name: str, *, logger: Logger) -> None:
    with metrics.RECONCILE_DURATION.time():
        try:
            await _reconcile(kube, settings, namespace, name, logger=logger)
        except (kopf.TemporaryError, kopf.PermanentError):
            raise
        except k.NotFound:
            if await kube.get_or_none(k.DEEP_TRAINING_JOB, namespace, name) is None:
                return  # deleted while we were at it: nothing left to reconcile
            metrics.RECONCILE_ERRORS.labels(error="NotFound").inc()
            raise
        except Exception as error:
            metrics.RECONCILE_ERRORS.labels(error=type(error).__name__).inc()
            raise


async def _reconcile(kube: k.KubeClient, settings: Settings, namespace: str, name: str, *, logger: Logger) -> None:
    body = await kube.get_or_none(k.DEEP_TRAINING_JOB, namespace, name)
    if body is None or is_deleting(body):
        metrics.record_phase(namespace, name, None)
        return  # the garbage collector removes the children through their ownerReferences
    now = datetime.now(UTC)
    previous = body.get("status") or {}

    # The CRD keeps unknown hyperparameters (a client without strict field validation would have them
    # pruned silently): refuse them here, naming the key and the names that exist.
    problems = unknown_hyperparameters((body.get("spec") or {}).get("hyperparameters"))
    job: DeepTrainingJob | None = None
    if not problems:
        try:
            job = DeepTrainingJob.model_validate(body)
        except ValidationError as error:
            # The apiserver admitted what our model rejects (an older CRD is installed): say which field.
            problems = [(".".join(str(part) for part in e["loc"]), e["msg"]) for e in error.errors()]
    if job is None:
        await _write_status(kube, body, invalid_spec_status(previous, problems, now, body["metadata"].get("generation")))
        raise kopf.PermanentError(f"invalid spec: {problems[0][0]}: {problems[0][1]}")

    children = await observe(kube, job)
    problems = validate_job(job)
    run_hash = builders.spec_hash(job)
    config = _config_of_current_run(children.config_map, job.metadata.uid, run_hash)
    base: BaseModelState | None = None
    if not problems and config is None:
        base = await base_model_state(kube, job)
        if base is None or (base.succeeded and base.model_uri):
            try:
                config = build_trainer_config(job, base_model_uri=base.model_uri if base else None)
            except (TrainerConfigError, ValidationError) as error:
                problems.append(("spec", str(error)))
    observed = Observed(trainer_jobs=children.trainer_jobs, pods=children.pods,
                        base_model=base if config is None else None, problems=problems)
    status = compute_status(job, observed, now)
    await _record(kube, body, previous, status)
    await _converge(kube, settings, body, job, status, children, config, now, logger=logger)
    if problems and (condition_reason(previous, c.FAILED) != c.REASON_INVALID_SPEC
                     or previous.get("message") != status["message"]):
        raise kopf.PermanentError(f"invalid spec: {status['message']}")


async def _record(kube: k.KubeClient, body: Manifest, previous: Manifest, status: Manifest) -> None:
    """Write the status when it changed, with its events and metrics."""
    meta = body["metadata"]
    metrics.record_phase(meta["namespace"], meta["name"], status.get("phase"))
    if all(previous.get(key) == status.get(key) for key in OWNED_STATUS_FIELDS):
        return
    await _write_status(kube, body, status)
    if (status.get("restarts") or 0) > (previous.get("restarts") or 0):
        metrics.JOB_RESTARTS.labels(namespace=meta["namespace"],
                                    reason=condition_reason(status, c.RESTARTING) or "").inc()
    if is_terminal(status) and not is_terminal(previous):
        reason = condition_reason(status, c.FAILED if status["phase"] == c.PHASE_FAILED else c.SUCCEEDED) or ""
        metrics.JOBS_FINISHED.labels(namespace=meta["namespace"], phase=status["phase"], reason=reason).inc()
    events.post(body, events.transition_events(previous, status))


async def _write_status(kube: k.KubeClient, body: Manifest, status: Manifest) -> None:
    # A merge patch of the owned fields only: rank 0's status.progress is left as it is.
    meta = body["metadata"]
    patch = {key: status.get(key) for key in OWNED_STATUS_FIELDS if key in status}
    await kube.patch(k.DEEP_TRAINING_JOB, meta["namespace"], meta["name"], {"status": patch}, subresource="status")


async def _converge(kube: k.KubeClient, settings: Settings, body: Manifest, job: DeepTrainingJob,
                    status: Manifest, children: Children, config: contract.TrainerConfig | None, now: datetime, *,
                    logger: Logger) -> None:
    """Move the children one step towards what `status` says; raise TemporaryError while waiting."""
    namespace = job.metadata.namespace
    if children_expired(status):
        await _delete_children(kube, namespace, job.metadata.uid, children)
        return
    if is_terminal(status):
        if status["phase"] == c.PHASE_FAILED:
            # A failed job leaves nothing running: every gang goes, with its pods.
            for trainer_job in children.trainer_jobs:
                if not is_deleting(trainer_job):
                    await kube.delete(k.JOB, namespace, trainer_job["metadata"]["name"], propagation="Foreground")
        return
    if config is None:
        raise kopf.TemporaryError(f"waiting: {status.get('message') or 'for the base model'}",
                                  delay=min(WAIT_DELAY_SECONDS, settings.reconcile_interval))

    attempt = status["attempt"]
    observed = Observed(trainer_jobs=children.trainer_jobs, pods=children.pods)
    stale = stale_children(observed, attempt)
    if stale:
        # Not an error: the deletion events of the old gang's Job and pods bring us back (the resync loop too).
        await _stop(kube, namespace, stale)
        logger.info(f"attempt {attempt} starts once {len(stale)} object(s) of an earlier attempt are gone")
        return

    recreate = condition_reason(status, c.CREATED) == c.REASON_JOB_CREATED
    for desired, existing in _shared_children(job, settings, config, children):
        await _ensure(kube, body, desired, existing, warn_if_missing=recreate, logger=logger)
    trainer_job = current_trainer_job(observed, attempt)
    desired_job = builders.build_trainer_job(
        job, attempt=attempt, settings=settings, config=config,
        active_deadline_seconds=remaining_deadline(job, status.get("startTime"), now))
    if trainer_job is None:
        await _ensure(kube, body, desired_job, None, warn_if_missing=_job_was_created(status, desired_job),
                      logger=logger)
    else:
        await _ensure_job_settings(kube, job, trainer_job)


def _shared_children(job: DeepTrainingJob, settings: Settings, config: contract.TrainerConfig,
                     children: Children) -> list[tuple[Manifest, Manifest | None]]:
    pairs: list[tuple[Manifest, Manifest | None]] = [
        (builders.build_config_map(job, config), children.config_map),
        (builders.build_service(job, settings), children.service),
        (builders.build_service_account(job), children.service_account),
        (builders.build_role(job), children.role),
        (builders.build_role_binding(job), children.role_binding),
    ]
    if (podgroup := builders.build_podgroup(job)) is not None:
        pairs.append((podgroup, children.podgroup))
    return pairs


def _job_was_created(status: Manifest, desired_job: Manifest) -> bool:
    """Whether status already says this very Job was created: then it is missing because someone deleted it."""
    created = next((cond for cond in status.get("conditions") or [] if cond.get("type") == c.CREATED), {})
    return created.get("status") == "True" and created.get("message") == job_created_message(desired_job)


async def _stop(kube: k.KubeClient, namespace: str | None, stale: list[Manifest]) -> None:
    for obj in stale:
        if is_deleting(obj):
            continue
        kind = k.kind_of(obj)
        # Foreground: the Job is gone only once its pods are, so its absence proves no rank still runs.
        await kube.delete(kind, namespace, obj["metadata"]["name"],
                          propagation="Foreground" if kind is k.JOB else "Background")


async def _delete_children(kube: k.KubeClient, namespace: str | None, uid: str | None, children: Children) -> None:
    named = [children.config_map, children.service, children.service_account, children.role, children.role_binding,
             children.podgroup, *children.trainer_jobs]
    for obj in named:
        if obj is not None and controlled_by(obj, uid) and not is_deleting(obj):
            await kube.delete(k.kind_of(obj), namespace, obj["metadata"]["name"], propagation="Background")


async def _ensure(kube: k.KubeClient, owner: Manifest, desired: Manifest, existing: Manifest | None, *,
                  warn_if_missing: bool, logger: Logger) -> None:
    """Create `desired`, or adopt what is there under its name (ours: patch drift; not ours: wait)."""
    kind = k.kind_of(desired)
    meta = desired["metadata"]
    if existing is None:
        try:
            await kube.create(desired)
        except k.AlreadyExists:
            existing = await kube.get(kind, meta["namespace"], meta["name"])
        else:
            if warn_if_missing:
                message = f"{kind.kind} {meta['name']} was deleted; recreated it"
                logger.warning(message)
                events.post(owner, [events.Event("Warning", c.EVENT_CHILD_RECREATED, message)])
            return
    if not controlled_by(existing, owner["metadata"]["uid"]):
        message = (f"{kind.kind} {meta['name']} exists and is not controlled by this DeepTrainingJob; "
                   "delete or rename it")
        events.post(owner, [events.Event("Warning", c.EVENT_CHILD_CONFLICT, message)])
        raise kopf.TemporaryError(message, delay=WAIT_DELAY_SECONDS)
    patch = drift_patch(desired, existing)
    if patch:
        logger.info(f"correcting drift of {kind.kind} {meta['name']}: {sorted(patch)}")
        await kube.patch(kind, meta["namespace"], meta["name"], patch)


# Per kind, the top-level parts the operator keeps as built (the rest is immutable or the cluster's).
_MUTABLE_PARTS: dict[str, tuple[str, ...]] = {
    "ConfigMap": ("data",),
    "Service": ("spec",),
    "ServiceAccount": (),
    "Role": ("rules",),
    "RoleBinding": ("subjects",),
    "PodGroup": ("spec",),
    "Job": (),
}
_SERVICE_MUTABLE_SPEC = ("selector", "ports", "publishNotReadyAddresses")


def drift_patch(desired: Manifest, existing: Manifest) -> Manifest:
    """A merge patch restoring what someone changed in the operator-owned parts of a child."""
    patch: Manifest = {}
    meta = desired["metadata"]
    for part in ("labels", "annotations"):
        wanted = meta.get(part) or {}
        if not contains(existing["metadata"].get(part) or {}, wanted):
            patch.setdefault("metadata", {})[part] = wanted
    for part in _MUTABLE_PARTS.get(desired["kind"], ()):
        wanted = desired.get(part)
        if desired["kind"] == "Service":
            wanted = {key: desired["spec"][key] for key in _SERVICE_MUTABLE_SPEC}
        if wanted is not None and not contains(existing.get(part), wanted):
            patch[part] = wanted
    return patch


async def _ensure_job_settings(kube: k.KubeClient, job: DeepTrainingJob, trainer_job: Manifest) -> None:
    """Apply runPolicy.suspend to the running gang. Kueue owns `suspend` of the Jobs it manages: the
    operator may suspend one for the user, but only Kueue unsuspends it (admission)."""
    meta = trainer_job["metadata"]
    suspended = bool(trainer_job.get("spec", {}).get("suspend"))
    patch: Manifest = {}
    if job.spec.runPolicy.suspend and not suspended:
        patch["spec"] = {"suspend": True}
    elif not job.spec.runPolicy.suspend and suspended and not builders.is_kueue_managed(job):
        patch["spec"] = {"suspend": False}
    queue = job.spec.scheduling.queueName
    if queue and suspended and (meta.get("labels") or {}).get(c.LABEL_KUEUE_QUEUE) != queue:
        patch["metadata"] = {"labels": {c.LABEL_KUEUE_QUEUE: queue}}  # Kueue moves a queued Job to another queue
    if patch:
        await kube.patch(k.JOB, meta["namespace"], meta["name"], patch)
