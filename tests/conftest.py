"""Fixtures for tests that talk to Kubernetes: the fake by default, a real cluster via DEEPTRAIN_TEST_KUBECONFIG.

    async def test_job_runs(kube, namespace, operator, job_player):
        job = await kube.create({...})
        ...

Override `operator_modules`, `operator_env` or `operator_args` in a test module to run another operator
or with other settings.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from fakekube import FakeKubeServer
from harness import JobPlayer, KubeClient, KubeEnv, OperatorRunner
from harness.environment import kube_environment, unique_name

# `make test` draws the same examples every run, so a red run is reproducible and never a roll of the
# dice; HYPOTHESIS_PROFILE=explore draws new ones (and keeps failures in .hypothesis/ to replay).
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
hypothesis_settings.register_profile("explore")
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def kube_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeEnv]:
    with kube_environment(tmp_path_factory.mktemp("kube")) as env:
        yield env


@pytest.fixture
def fakekube(kube_env: KubeEnv) -> Iterator[FakeKubeServer]:
    """The fake server itself, for fault injection and request counts; skips on a real cluster."""
    if kube_env.fake is None:
        pytest.skip("needs the in-process fake (fault injection); DEEPTRAIN_TEST_KUBECONFIG names a real cluster")
    yield kube_env.fake
    kube_env.fake.clear_faults()


@pytest.fixture
async def kube(kube_env: KubeEnv) -> AsyncIterator[KubeClient]:
    async with KubeClient(kube_env.kubeconfig) as client:
        yield client


@pytest.fixture
async def namespace(kube: KubeClient, kube_env: KubeEnv, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh namespace for one test, deleted afterwards (and waited for on a real cluster)."""
    name = unique_name("t", request.node.name)
    await kube.create({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": name, "labels": {"deeptrain.dev/test": "true"}}})
    yield name
    await kube.delete("v1", "Namespace", name, missing_ok=True)
    if kube_env.real:
        await _wait_namespace_gone(kube, kube_env, name)


async def _wait_namespace_gone(kube: KubeClient, kube_env: KubeEnv, name: str) -> None:
    """Wait for the namespace to go; release finalizers the (already stopped) operator left behind."""
    for _ in range(100):
        if await kube.get_or_none("v1", "Namespace", name) is None:
            return
        await asyncio.sleep(0.1)
    for api_version, kind in [*kube_env.crd_kinds(), ("batch/v1", "Job"), ("v1", "Pod")]:
        for obj in await kube.list(api_version, kind, name):
            if obj["metadata"].get("finalizers"):
                await kube.patch(obj, {"metadata": {"finalizers": None}})
    await kube.wait_deleted("v1", "Namespace", name, None, timeout=120)


@pytest.fixture
def operator_modules() -> tuple[str, ...]:
    """The handler modules `python -m deeptrain_operator` runs."""
    from deeptrain_operator.__main__ import HANDLER_MODULES

    return HANDLER_MODULES


@pytest.fixture
def operator_env(tmp_path: Path) -> dict[str, str]:
    """Settings the operator reads from its environment; extend by overriding this fixture."""
    return {
        "DEEPTRAIN_TRAINER_IMAGE": "deeptrain/trainer:test",
        "DEEPTRAIN_DEFAULT_OUTPUT_URI": f"file://{tmp_path / 'models'}",
    }


@pytest.fixture
def operator_args() -> list[str]:
    return []


@pytest.fixture
def operator(kube_env: KubeEnv, namespace: str, operator_modules: tuple[str, ...], operator_env: dict[str, str],
             operator_args: list[str]) -> Iterator[OperatorRunner]:
    """The operator, in-process, watching `namespace`; fails the test if it logged an unhandled exception."""
    if any(module.startswith("deeptrain_operator") for module in operator_modules):
        kube_env.require_crds()
    runner = OperatorRunner(operator_modules, namespace, kube_env.kubeconfig, operator_env, operator_args).start()
    yield runner
    runner.stop()
    runner.check()


@pytest.fixture
def job_player(kube: KubeClient, kube_env: KubeEnv) -> JobPlayer:
    """Plays the Job controller and kubelet: always on the fake, on a real cluster only if it has none."""
    return JobPlayer(kube, plays_controller=True if kube_env.fake is not None else None)
