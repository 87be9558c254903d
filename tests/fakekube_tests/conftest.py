"""Fixtures of the fake's own tests: the sample CRDs installed once on the shared fake."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from harness import KubeClient, KubeEnv
from harness.conditions import has_condition

from .crd_samples import widget_crd


async def _install(kube_env: KubeEnv) -> None:
    async with KubeClient(kube_env.kubeconfig) as kube:
        for crd in (widget_crd(), widget_crd("gadgets", "Gadget", scope="Cluster", status_subresource=False)):
            await kube.apply(crd)
            await kube.wait_for("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd["metadata"]["name"],
                                None, lambda obj: has_condition(obj, "Established"), what="Established")


@pytest.fixture(scope="session")
def sample_crds(kube_env: KubeEnv) -> Iterator[None]:
    """Widget (namespaced, with a status subresource) and Gadget (cluster-scoped, without)."""
    asyncio.run(_install(kube_env))
    yield
