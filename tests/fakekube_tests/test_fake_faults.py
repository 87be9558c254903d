"""Fault injection and request counting."""

from __future__ import annotations

import pytest

from fakekube import FakeKubeServer
from harness import KubeApiError, KubeClient


def configmap(name: str, namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}}


async def test_rule_with_count_fails_that_many_matching_requests(kube: KubeClient, namespace: str,
                                                                 fakekube: FakeKubeServer) -> None:
    rule = fakekube.faults.add("POST", r"/configmaps$", status=409, count=2)
    outcomes = []
    for index in range(3):
        try:
            await kube.create(configmap(f"cm-{index}", namespace))
            outcomes.append("ok")
        except KubeApiError as error:
            outcomes.append(str(error.status))
    assert outcomes == ["409", "409", "ok"]
    assert rule.injected == 2
    await kube.get("v1", "ConfigMap", "cm-2", namespace)  # other verbs pass


async def test_probability_is_reproducible_with_a_seed(kube: KubeClient, namespace: str,
                                                       fakekube: FakeKubeServer) -> None:
    await kube.create(configmap("a", namespace))

    async def failures() -> list[bool]:
        result = []
        for _ in range(20):
            try:
                await kube.get("v1", "ConfigMap", "a", namespace)
                result.append(False)
            except KubeApiError as error:
                assert error.status == 500 and error.reason == "InternalError"
                result.append(True)
        return result

    fakekube.faults.add("GET", "/configmaps/a", status=500, probability=0.5, seed=7)
    first = await failures()
    fakekube.clear_faults()
    fakekube.faults.add("GET", "/configmaps/a", status=500, probability=0.5, seed=7)
    assert await failures() == first
    assert 0 < sum(first) < 20


async def test_outage_fails_everything_until_cleared(kube: KubeClient, fakekube: FakeKubeServer) -> None:
    fakekube.faults.outage(seconds=600, status=503)
    with pytest.raises(KubeApiError) as error:
        await kube.request("GET", "/api/v1")
    assert error.value.status == 503 and error.value.reason == "ServiceUnavailable"
    fakekube.clear_faults()
    await kube.request("GET", "/api/v1")


async def test_request_counts_by_verb_and_resource(kube: KubeClient, namespace: str,
                                                   fakekube: FakeKubeServer) -> None:
    fakekube.reset_request_counts()
    created = await kube.create(configmap("a", namespace))
    await kube.patch(created, {"data": {"x": "1"}})
    await kube.list("v1", "ConfigMap", namespace)
    pod = await kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": namespace},
                             "spec": {"containers": [{"name": "c", "image": "i"}]}})
    await kube.patch(pod, {"status": {"phase": "Running"}}, subresource="status")
    counts = fakekube.request_counts()
    assert counts[("create", "configmaps")] == 1
    assert counts[("patch", "configmaps")] == 1
    assert counts[("list", "configmaps")] == 1
    assert counts[("patch", "pods/status")] == 1
