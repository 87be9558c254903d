"""Helpers the fault scenarios share: what exists under a job, orphans, a pod ledger, waits.

Everything here observes through the API only, so it works against the fake and a real cluster.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest
from operator_integration import API_VERSION, KIND

from deeptrain_api.trainer_contract import ModelSummary, TerminationMessage
from harness import KubeApiError, KubeClient

JOB_NAME_LABEL = "deeptrain.dev/job-name"
ATTEMPT_LABEL = "deeptrain.dev/attempt"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
RBAC = "rbac.authorization.k8s.io/v1"

# The shared children of job `shoes`, by deterministic name (the trainer Job is `<name>-<attempt>`).
SHARED_CHILDREN = [("v1", "ConfigMap", "{}-trainer-config"), ("v1", "Service", "{}"),
                   ("v1", "ServiceAccount", "{}-trainer"), (RBAC, "Role", "{}-trainer"),
                   (RBAC, "RoleBinding", "{}-trainer")]
# Every kind the operator creates, plus the pods of its Jobs: where orphans and duplicates could hide.
CHILD_KINDS = [("v1", "ConfigMap"), ("v1", "Service"), ("v1", "ServiceAccount"), (RBAC, "Role"),
               (RBAC, "RoleBinding"), ("batch/v1", "Job"), ("v1", "Pod"), ("apps/v1", "Deployment")]

MODEL = ModelSummary(uri="file:///mnt/pvc/models/shoes", version="0badc0ffee00", concepts=["boot"],
                     metrics={"accuracy": 0.9}, checksum="sha256:" + "3" * 64)
SUCCESS = {0: TerminationMessage(reason="Succeeded", model=MODEL).to_json()}


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float, what: str,
                     interval: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; API errors (injected faults) count as "not yet"."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = await check()
            if result:
                return result
        except KubeApiError as error:
            last_error = error
        if time.monotonic() > deadline:
            note = f" (last error: {last_error})" if last_error else ""
            pytest.fail(f"not within {timeout}s: {what}{note}", pytrace=False)
        await asyncio.sleep(interval)


async def children_by_kind(kube: KubeClient, namespace: str, job_name: str) -> dict[str, list[dict[str, Any]]]:
    """Every object labelled as belonging to job `job_name`, per kind (the operator labels all it makes)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for api_version, kind in CHILD_KINDS:
        items = await kube.list(api_version, kind, namespace, label_selector=f"{JOB_NAME_LABEL}={job_name}")
        if items:
            found[kind] = items
    return found


async def shared_child_uids(kube: KubeClient, namespace: str, job_name: str) -> dict[str, str]:
    uids = {}
    for api_version, kind, pattern in SHARED_CHILDREN:
        obj = await kube.get(api_version, kind, pattern.format(job_name), namespace)
        uids[kind] = obj["metadata"]["uid"]
    return uids


async def orphans(kube: KubeClient, namespace: str, extra_kinds: list[tuple[str, str]] = ()) -> list[str]:
    """Objects in `namespace` whose ownerReference points at an owner that no longer exists."""
    kinds = [*CHILD_KINDS, (API_VERSION, KIND), *extra_kinds]
    objects = [obj for api_version, kind in kinds for obj in await kube.list(api_version, kind, namespace)]
    alive = {obj["metadata"]["uid"] for obj in objects}
    return [f"{obj.get('kind', '?')} {obj['metadata']['name']} -> {ref['kind']} {ref['name']}"
            for obj in objects for ref in obj["metadata"].get("ownerReferences") or []
            if ref["uid"] not in alive]


async def drive_to_success(job_player: Any, trainer_job: dict[str, Any]) -> None:
    """Play the cluster: pods start, run, and rank 0 reports the model."""
    await job_player.start_pods(trainer_job)
    await job_player.set_running(trainer_job)
    await job_player.succeed(trainer_job, SUCCESS)


def report(text: str) -> None:
    """Print a figure; to the real stdout, because kopf's test runner swaps sys.stdout while it runs."""
    print(text, file=sys.__stdout__, flush=True)


def rss_mib() -> float:
    return psutil.Process(os.getpid()).memory_info().rss / 2**20


def _attempt(pod: dict[str, Any]) -> str:
    return (pod["metadata"].get("labels") or {}).get(ATTEMPT_LABEL, "?")


def _index(pod: dict[str, Any]) -> str:
    return (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX, "?")


def _live(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


@dataclass
class PodLedger:
    """Records the pods of a job as often as it can look, to prove two copies of a rank never coexisted.

    Each snapshot is a list of (attempt, completion index, live) per pod. A violation is a snapshot
    holding pods of two attempts at once, or two live pods of one completion index.
    """

    kube: KubeClient
    namespace: str
    job_name: str
    snapshots: list[list[tuple[str, str, bool]]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def record(self) -> None:
        pods = await self.kube.list("v1", "Pod", self.namespace, label_selector=f"{JOB_NAME_LABEL}={self.job_name}")
        self.snapshots.append(sorted((_attempt(p), _index(p), _live(p)) for p in pods))

    async def _run(self) -> None:
        while True:
            try:
                await self.record()
            except KubeApiError:
                pass
            await asyncio.sleep(0.02)

    def start(self) -> PodLedger:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.record()

    def violations(self) -> list[list[tuple[str, str, bool]]]:
        bad = []
        for snapshot in self.snapshots:
            attempts = {attempt for attempt, _, _ in snapshot}
            live_indexes = [index for _, index, live in snapshot if live]
            if len(attempts) > 1 or len(live_indexes) != len(set(live_indexes)):
                bad.append(snapshot)
        return bad

    def attempts_seen(self) -> list[str]:
        seen: list[str] = []
        for snapshot in self.snapshots:
            for attempt, _, _ in snapshot:
                if attempt not in seen:
                    seen.append(attempt)
        return seen
