"""metadata.generation and the status subresource, as controllers depend on them."""

from __future__ import annotations

import pytest

from harness import KubeApiError, KubeClient

from .crd_samples import API_VERSION, widget

pytestmark = pytest.mark.usefixtures("sample_crds")


async def test_generation_counts_spec_changes_only(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(widget("w", namespace))
    assert created["metadata"]["generation"] == 1
    relabelled = await kube.patch(created, {"metadata": {"labels": {"a": "b"}}})
    assert relabelled["metadata"]["generation"] == 1
    resized = await kube.patch(created, {"spec": {"size": 4}})
    assert resized["metadata"]["generation"] == 2
    with_status = await kube.patch(created, {"status": {"phase": "Running"}}, subresource="status")
    assert with_status["metadata"]["generation"] == 2
    assert int(with_status["metadata"]["resourceVersion"]) > int(resized["metadata"]["resourceVersion"])


async def test_main_endpoint_ignores_status(kube: KubeClient, namespace: str) -> None:
    created = await kube.create({**widget("w", namespace), "status": {"phase": "Forged"}})
    assert "status" not in created
    patched = await kube.patch(created, {"spec": {"size": 5}, "status": {"phase": "Forged"}})
    assert patched["spec"]["size"] == 5
    assert "status" not in patched


async def test_status_endpoint_ignores_everything_but_status(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(widget("w", namespace))
    patched = await kube.patch(created, {"spec": {"size": 9}, "metadata": {"labels": {"x": "y"}},
                                         "status": {"phase": "Running"}}, subresource="status")
    assert patched["status"] == {"phase": "Running"}
    assert patched["spec"]["size"] == 3
    assert "labels" not in patched["metadata"]


async def test_without_status_subresource_status_is_spec_like(kube: KubeClient) -> None:
    created = await kube.create(widget("g-status", None, kind="Gadget"))
    try:
        patched = await kube.patch(created, {"status": {"phase": "Running"}})
        assert patched["status"] == {"phase": "Running"}
        assert patched["metadata"]["generation"] == 2
        with pytest.raises(KubeApiError) as error:
            await kube.patch(created, {"status": {"phase": "x"}}, subresource="status")
        assert error.value.status == 404
    finally:
        await kube.delete(API_VERSION, "Gadget", "g-status")


async def test_pod_status_subresource(kube: KubeClient, namespace: str) -> None:
    pod = await kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": namespace},
                             "spec": {"containers": [{"name": "c", "image": "i"}]}})
    assert pod["status"]["phase"] == "Pending"
    running = await kube.patch(pod, {"status": {"phase": "Running"}}, subresource="status")
    assert running["status"]["phase"] == "Running"
