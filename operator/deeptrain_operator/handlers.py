"""kopf handlers: thin triggers of the level-based `reconcile()`.

Every trigger of a DeepTrainingJob (create, update, resume, a slow resync loop, and events of the child
Jobs and pods) ends in the same `reconcile(namespace, name)`, serialised per job by a lock. There is no
finalizer: children carry controlling ownerReferences, so the garbage collector removes them with the
job, and a stopped operator can never block a `kubectl delete`. That is also why the resync is a loop of
our own and not a kopf timer: kopf puts a finalizer on every object that has a timer.

Workflow handlers belong in a module of their own that uses `operator_state(memo)` the same way.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import kopf

from . import constants as c
from . import metrics
from .kube import KubeClient
from .reconcile import reconcile
from .settings import Settings

JOBS = (c.GROUP, c.VERSION, c.JOB_PLURAL)
OURS = {c.LABEL_MANAGED_BY: c.MANAGER}
_STATE_KEY = "deeptrain"
CLOSE_GRACE_SECONDS = 10.0
RESYNC_LOG = logging.getLogger(f"{__name__}.resync")
# Seconds between retries of a failed API request of kopf's own: about 10 minutes in all.
API_ERROR_BACKOFFS = (1, 1, 2, 3, 5, 8, 13, 21, *([30] * 18))


@dataclass
class OperatorState:
    """What one running operator shares between its handlers (kept in kopf's memo, not in globals,
    so that an operator restarted in the same process starts clean)."""

    # Read when the operator starts (not at import), so each run sees its own environment.
    settings: Settings = field(default_factory=Settings.from_env)
    kube: KubeClient = field(default_factory=KubeClient)
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    in_flight: int = 0
    closing: bool = False
    # Every job the watch has shown and not yet deleted: what the resync loop visits.
    known_jobs: set[tuple[str, str]] = field(default_factory=set)
    resync_task: asyncio.Task[None] | None = None

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self.locks.setdefault((namespace, name), asyncio.Lock())


def operator_state(memo: Any) -> OperatorState:
    state = memo.get(_STATE_KEY)
    if state is None:
        state = memo[_STATE_KEY] = OperatorState()
    return state


async def reconcile_job(memo: Any, namespace: str, name: str, logger: logging.Logger | logging.LoggerAdapter) -> None:  # type: ignore[type-arg]
    state = operator_state(memo)
    if state.closing:
        return  # a reconcile triggered while the operator stops
    state.in_flight += 1
    try:
        async with state.lock(namespace, name):
            await reconcile(state.kube, state.settings, namespace, name, logger=logger)
    finally:
        state.in_flight -= 1


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    # kopf's bookkeeping lives in annotations; status belongs to the operator and rank 0 only.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=c.KOPF_ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=c.KOPF_ANNOTATION_PREFIX, key="last-handled-configuration")
    settings.persistence.finalizer = c.KOPF_FINALIZER
    # Transitions are posted as events by the reconciler; kopf adds its own only for handler trouble.
    settings.posting.enabled = True
    settings.posting.level = logging.WARNING
    # A watch the server silently dropped would otherwise hang until the TCP stack notices.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # kopf's default retries of 5xx and unreachable-API errors give up after about 54 s, and then the
    # whole operator exits: ride out a control-plane restart or upgrade of several minutes instead.
    settings.networking.error_backoffs = API_ERROR_BACKOFFS
    metrics.serve(operator_state(memo).settings.metrics_port, logger)


@kopf.on.login()
def login(memo: kopf.Memo, logger: logging.Logger, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's own fallback order; the credentials also go to the operator's client for the children."""
    info = (kopf.login_via_client(logger=logger, **kwargs)
            or kopf.login_with_service_account(**kwargs)
            or kopf.login_with_kubeconfig(**kwargs))
    if info is not None:
        operator_state(memo).kube.use(info)
    return info


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    # Stop the resync loop, and let reconciles already running (kopf does not cancel them) finish first.
    state = operator_state(memo)
    state.closing = True
    if state.resync_task is not None:
        state.resync_task.cancel()
    for _ in range(int(CLOSE_GRACE_SECONDS / 0.1)):
        if not state.in_flight:
            break
        await asyncio.sleep(0.1)
    await state.kube.close()


@kopf.on.resume(*JOBS)
@kopf.on.create(*JOBS)
@kopf.on.update(*JOBS)
async def job_changed(name: str, namespace: str, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    await reconcile_job(memo, namespace, name, logger)


async def _resync_forever(memo: Any) -> None:
    """Level-based safety net: deadlines, TTLs and base models are noticed even when nothing else happens,
    and a reconcile that failed (an API error) is tried again within one interval."""
    state = operator_state(memo)
    while not state.closing:
        await asyncio.sleep(state.settings.reconcile_interval)
        for namespace, name in sorted(state.known_jobs):
            if state.closing:
                return
            try:
                await reconcile_job(memo, namespace, name, RESYNC_LOG)
            except (kopf.TemporaryError, kopf.PermanentError):
                pass  # waiting, or a spec the job's status already explains
            except Exception as error:
                RESYNC_LOG.warning(f"resync of {namespace}/{name} failed, trying again next round: {error!r}")


@kopf.on.event(*JOBS)
async def job_seen(type: str | None, name: str, namespace: str, memo: kopf.Memo, **_: Any) -> None:
    """Remember which jobs exist (the initial listing included), for the resync loop."""
    state = operator_state(memo)
    if type == "DELETED":
        state.known_jobs.discard((namespace, name))
        metrics.record_phase(namespace, name, None)
        return
    state.known_jobs.add((namespace, name))
    if state.resync_task is None and not state.closing:
        # Started from a handler, so that it inherits kopf's context: posting Events needs it.
        state.resync_task = asyncio.get_running_loop().create_task(_resync_forever(memo))


@kopf.on.delete(*JOBS, optional=True)
def job_deleted(name: str, namespace: str, memo: kopf.Memo, **_: Any) -> None:
    """Forget the job (optional: no finalizer is added for this)."""
    metrics.record_phase(namespace, name, None)
    operator_state(memo).locks.pop((namespace, name), None)


async def _child_event(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger) -> None:
    owner = (body.get("metadata", {}).get("labels") or {}).get(c.LABEL_JOB_NAME)
    if owner:
        try:
            await reconcile_job(memo, body["metadata"]["namespace"], owner, logger)
        except kopf.TemporaryError as error:
            # The resync loop and the next child event try again; an event handler is never retried by kopf.
            logger.debug(f"reconcile of {owner} postponed: {error}")


@kopf.on.event("batch", "v1", "jobs", labels=OURS)
async def trainer_job_event(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    await _child_event(body, memo, logger)


@kopf.on.event("", "v1", "pods", labels={**OURS, c.LABEL_COMPONENT: c.COMPONENT_TRAINER})
async def trainer_pod_event(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    await _child_event(body, memo, logger)
