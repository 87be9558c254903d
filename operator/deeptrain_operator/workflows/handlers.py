"""kopf handlers for Workflows: thin triggers of the level-based `reconcile_workflow()`.

Registered by importing this module next to deeptrain_operator.handlers (which sets up kopf, the
login and the shared Kubernetes client). Triggers: the Workflow's own changes, a slow timer, changes
of DeepTrainingJobs (a model finished, failed or was retrained) and of the Workflow's children.

The delete handler is not optional, so kopf keeps its finalizer on every Workflow until the
back-references in the jobs' status.workflows are removed; the children go by garbage collection.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from .. import constants as c
from .. import kube as k
from ..handlers import operator_state
from ..settings import Settings
from .reconcile import reconcile_workflow

WORKFLOWS = (c.GROUP, c.VERSION, c.WORKFLOW_PLURAL)
JOBS = (c.GROUP, c.VERSION, c.JOB_PLURAL)
OURS = {c.LABEL_MANAGED_BY: c.MANAGER, c.LABEL_WORKFLOW_NAME: kopf.PRESENT}


def _lock_key(name: str) -> str:
    # Workflows share the lock table with jobs; a prefix keeps a job and a workflow of one name apart.
    return f"{c.WORKFLOW_KIND}/{name}"


async def reconcile_one(memo: Any, namespace: str, name: str, logger: Any) -> None:
    state = operator_state(memo)
    if state.closing:
        return
    state.in_flight += 1
    try:
        async with state.lock(namespace, _lock_key(name)):
            await reconcile_workflow(state.kube, state.settings, namespace, name, logger=logger)
    finally:
        state.in_flight -= 1


async def _reconcile_quietly(memo: Any, namespace: str, name: str, logger: Any) -> None:
    try:
        await reconcile_one(memo, namespace, name, logger)
    except (kopf.TemporaryError, kopf.PermanentError) as error:
        # Event handlers are not retried; the timer and the next event try again.
        logger.debug(f"reconcile of workflow {name} postponed: {error}")


@kopf.on.resume(*WORKFLOWS)
@kopf.on.create(*WORKFLOWS)
@kopf.on.update(*WORKFLOWS)
async def workflow_changed(name: str, namespace: str, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    await reconcile_one(memo, namespace, name, logger)


# kopf fixes a timer's interval when the decorator registers it, so this one setting is read at import.
# (Workflows carry kopf's finalizer anyway: their deletion must remove the jobs' back-references.)
@kopf.timer(*WORKFLOWS, interval=Settings.from_env().reconcile_interval)
async def workflow_resync(name: str, namespace: str, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    await reconcile_one(memo, namespace, name, logger)


@kopf.on.delete(*WORKFLOWS)
async def workflow_deleted(name: str, namespace: str, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    """Remove this workflow from the jobs' back-references; kopf then releases its finalizer."""
    await reconcile_one(memo, namespace, name, logger)
    operator_state(memo).locks.pop((namespace, _lock_key(name)), None)


@kopf.on.event(*JOBS)
async def referenced_job_event(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    """A job's model changed state: reconcile every workflow that references it (or used to)."""
    namespace, job_name = body["metadata"]["namespace"], body["metadata"]["name"]
    state = operator_state(memo)
    if state.closing:
        return
    names = {ref.get("name") for ref in (body.get("status") or {}).get("workflows") or []}
    for workflow in await state.kube.list(k.WORKFLOW, namespace):
        nodes = (workflow.get("spec") or {}).get("nodes") or []
        if any((node.get("model") or {}).get("deepTrainingJob") == job_name for node in nodes):
            names.add(workflow["metadata"]["name"])
    for name in sorted(n for n in names if n):
        await _reconcile_quietly(memo, namespace, name, logger)


@kopf.on.event("apps", "v1", "deployments", labels=OURS)
@kopf.on.event("batch", "v1", "jobs", labels=OURS)
async def child_event(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    owner = (body["metadata"].get("labels") or {}).get(c.LABEL_WORKFLOW_NAME)
    if owner:
        await _reconcile_quietly(memo, body["metadata"]["namespace"], owner, logger)


@kopf.on.event(*WORKFLOWS)
async def other_workflow_event(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    """Which workflow is the default depends on the others: a default one appearing or going re-decides it."""
    namespace, changed = body["metadata"]["namespace"], body["metadata"]["name"]
    state = operator_state(memo)
    if state.closing:
        return
    for workflow in await state.kube.list(k.WORKFLOW, namespace):
        name = workflow["metadata"]["name"]
        if name != changed and (workflow.get("spec") or {}).get("default"):
            await _reconcile_quietly(memo, namespace, name, logger)
