"""Fixtures of the operator's integration suite: the real kopf operator against an API server.

The same tests run against the in-process fake (default) and a real cluster (DEEPTRAIN_TEST_KUBECONFIG).
They play the Job controller and kubelet only through JobPlayer and observe only through the API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from operator_integration import API_VERSION, KIND

from harness import KubeClient, wait_for_condition

# Integration runs re-check each job every second, so that deadlines and TTLs are noticed quickly.
RECONCILE_INTERVAL = "1"


@pytest.fixture
def operator_env(operator_env: dict[str, str]) -> dict[str, str]:
    return {**operator_env, "DEEPTRAIN_RECONCILE_INTERVAL": RECONCILE_INTERVAL, "DEEPTRAIN_METRICS_PORT": "0"}


JobWaiter = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def wait_job(kube: KubeClient, namespace: str) -> JobWaiter:
    """Wait until the DeepTrainingJob satisfies `predicate` (or has condition `type` = `status`)."""

    async def wait(name: str, predicate: Callable[[dict[str, Any]], Any] | None = None, **condition: Any) -> dict[str, Any]:
        return await wait_for_condition(kube, API_VERSION, KIND, name, namespace, predicate, **condition)

    return wait


@pytest.fixture
def wait_trainer_job(kube: KubeClient, namespace: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Wait for the child Job `<name>-<attempt>` to exist (not being deleted)."""

    async def wait(name: str, attempt: int = 1, timeout: float = 30) -> dict[str, Any]:
        found = await kube.wait_for("batch/v1", "Job", f"{name}-{attempt}", namespace,
                                    lambda obj: obj is not None and not obj["metadata"].get("deletionTimestamp"),
                                    timeout=timeout, what=f"attempt {attempt}'s Job")
        assert found is not None
        return found

    return wait


@pytest.fixture
def wait_event(kube: KubeClient, namespace: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Wait for an Event about the job with `reason` (kopf posts events in the background)."""

    async def wait(name: str, reason: str, timeout: float = 30) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        async def poll() -> bool:
            found[:] = [e for e in await kube.events(namespace, name) if e["reason"] == reason]
            return bool(found)

        deadline = asyncio.get_running_loop().time() + timeout
        while not await poll():
            if asyncio.get_running_loop().time() > deadline:
                reasons = [e["reason"] for e in await kube.events(namespace, name)]
                pytest.fail(f"no {reason} event about {name} within {timeout}s; events: {reasons}", pytrace=False)
            await asyncio.sleep(0.1)
        return found[-1]

    return wait
