"""fieldValidation, dryRun, list items and foreground deletion, as a real apiserver answers them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness import KubeClient

from .crd_samples import API_VERSION, widget

pytestmark = pytest.mark.usefixtures("sample_crds")


async def post(kube: KubeClient, namespace: str, body: dict[str, Any], query: str = "") -> tuple[int, Any, list[str]]:
    path = f"apis/{API_VERSION}/namespaces/{namespace}/widgets{query}"
    async with kube.session.post(path, data=json.dumps(body), headers={"Content-Type": "application/json"}) as answer:
        return answer.status, await answer.json(), answer.headers.getall("Warning", [])


@pytest.mark.parametrize(("query", "status", "warned"), [
    ("", 201, True),  # a client that asks for nothing gets Warn
    ("?fieldValidation=Warn", 201, True),
    ("?fieldValidation=Ignore", 201, False),
    ("?fieldValidation=Strict", 400, False),
])
async def test_unknown_fields_by_field_validation(kube: KubeClient, namespace: str, query: str, status: int,
                                                  warned: bool) -> None:
    code, body, warnings = await post(kube, namespace, widget("w", namespace, colour="red"), query)
    assert code == status
    if status == 400:
        assert body["reason"] == "BadRequest"
        assert body["message"] == ('Widget in version "v1" cannot be handled as a Widget: strict decoding error: '
                                   'unknown field "spec.colour"')
    else:
        assert "colour" not in body["spec"], "pruned"
    assert warnings == (['299 - "unknown field \\"spec.colour\\""'] if warned else [])


async def test_dry_run_admits_without_storing(kube: KubeClient, namespace: str) -> None:
    code, body, _ = await post(kube, namespace, widget("w", namespace), "?dryRun=All")
    assert code == 201 and body["spec"]["color"] == "red", "defaulted as a real create"
    assert "resourceVersion" not in body["metadata"]
    assert await kube.get_or_none(API_VERSION, "Widget", "w", namespace) is None
    code, body, _ = await post(kube, namespace, widget("w", namespace, size=99), "?dryRun=All")
    assert code == 422
    await kube.create(widget("w", namespace))
    await kube.request("DELETE", f"/apis/{API_VERSION}/namespaces/{namespace}/widgets/w", params={"dryRun": "All"})
    assert await kube.get_or_none(API_VERSION, "Widget", "w", namespace) is not None


async def test_list_items_of_built_in_kinds_carry_no_api_version_or_kind(kube: KubeClient, namespace: str) -> None:
    await kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": namespace}})
    await kube.create(widget("w", namespace))
    configmaps = await kube.request("GET", f"/api/v1/namespaces/{namespace}/configmaps")
    assert configmaps["kind"] == "ConfigMapList"
    assert [set(item) & {"apiVersion", "kind"} for item in configmaps["items"]] == [set()]
    widgets = await kube.request("GET", f"/apis/{API_VERSION}/namespaces/{namespace}/widgets")
    assert [(item["apiVersion"], item["kind"]) for item in widgets["items"]] == [(API_VERSION, "Widget")]
    # The test client gives list items back complete, so that they can be patched like anything read with get().
    (listed,) = await kube.list("v1", "ConfigMap", namespace)
    patched = await kube.patch(listed, {"data": {"a": "b"}})
    assert patched["data"] == {"a": "b"}


async def test_foreground_deletion_without_dependents_goes_through_the_finalizer(kube: KubeClient,
                                                                               namespace: str) -> None:
    await kube.create(widget("w", namespace))
    deleted = await kube.delete(API_VERSION, "Widget", "w", namespace, propagation="Foreground")
    assert deleted["metadata"]["finalizers"] == ["foregroundDeletion"] and deleted["metadata"]["deletionTimestamp"]
    await kube.wait_deleted(API_VERSION, "Widget", "w", namespace, timeout=10)
