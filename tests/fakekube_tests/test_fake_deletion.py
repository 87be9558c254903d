"""Deletion: finalizers, deletionTimestamp, preconditions, propagation and garbage collection."""

from __future__ import annotations

import pytest

from harness import KubeApiError, KubeClient


def configmap(name: str, namespace: str, finalizers: list[str] | None = None,
              owners: list[dict] | None = None) -> dict:
    metadata: dict = {"name": name, "namespace": namespace}
    if finalizers:
        metadata["finalizers"] = finalizers
    if owners:
        metadata["ownerReferences"] = owners
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}


def owned_by(owner: dict, controller: bool = True) -> dict:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": controller, "blockOwnerDeletion": True}


async def test_finalizers_hold_the_object_until_removed(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(configmap("a", namespace, ["example.com/hold"]))
    marked = await kube.delete("v1", "ConfigMap", "a", namespace)
    assert marked is not None and marked["metadata"]["deletionTimestamp"]
    still = await kube.get("v1", "ConfigMap", "a", namespace)
    assert still["metadata"]["finalizers"] == ["example.com/hold"]
    with pytest.raises(KubeApiError) as error:
        await kube.patch(created, {"metadata": {"finalizers": ["example.com/hold", "example.com/new"]}})
    assert error.value.status == 422
    assert "no new finalizers can be added if the object is being deleted" in error.value.message
    await kube.patch(created, {"metadata": {"finalizers": None}})
    assert await kube.get_or_none("v1", "ConfigMap", "a", namespace) is None


async def test_delete_preconditions(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(configmap("a", namespace))
    path = f"/api/v1/namespaces/{namespace}/configmaps/a"
    with pytest.raises(KubeApiError) as error:
        await kube.request("DELETE", path, {"preconditions": {"uid": "not-the-uid"}})
    assert error.value.status == 409
    await kube.request("DELETE", path, {"preconditions": {"uid": created["metadata"]["uid"]}})
    assert await kube.get_or_none("v1", "ConfigMap", "a", namespace) is None


async def test_background_deletion_collects_dependents(kube: KubeClient, namespace: str) -> None:
    owner = await kube.create(configmap("owner", namespace))
    child = await kube.create(configmap("child", namespace, owners=[owned_by(owner)]))
    await kube.create(configmap("grandchild", namespace, owners=[owned_by(child)]))
    await kube.delete("v1", "ConfigMap", "owner", namespace, propagation="Background")
    await kube.wait_deleted("v1", "ConfigMap", "child", namespace, timeout=10)
    await kube.wait_deleted("v1", "ConfigMap", "grandchild", namespace, timeout=10)


async def test_dependent_with_a_living_owner_survives(kube: KubeClient, namespace: str) -> None:
    first = await kube.create(configmap("first", namespace))
    second = await kube.create(configmap("second", namespace))
    await kube.create(configmap("shared", namespace, owners=[owned_by(first), owned_by(second, controller=False)]))
    await kube.delete("v1", "ConfigMap", "first", namespace)
    # The collector has acted once the sole dependent of `first` is gone; `shared` must still be there.
    await kube.create(configmap("only-first", namespace, owners=[owned_by(first)]))
    await kube.wait_deleted("v1", "ConfigMap", "only-first", namespace, timeout=10)
    assert await kube.get_or_none("v1", "ConfigMap", "shared", namespace) is not None
    await kube.delete("v1", "ConfigMap", "second", namespace)
    await kube.wait_deleted("v1", "ConfigMap", "shared", namespace, timeout=10)


async def test_orphan_deletion_keeps_dependents(kube: KubeClient, namespace: str) -> None:
    owner = await kube.create(configmap("owner", namespace))
    await kube.create(configmap("child", namespace, owners=[owned_by(owner)]))
    await kube.delete("v1", "ConfigMap", "owner", namespace, propagation="Orphan")
    child = await kube.get("v1", "ConfigMap", "child", namespace)
    assert "ownerReferences" not in child["metadata"]


async def test_foreground_deletion_waits_for_dependents(kube: KubeClient, namespace: str) -> None:
    owner = await kube.create(configmap("owner", namespace))
    await kube.create(configmap("child", namespace, ["example.com/hold"], owners=[owned_by(owner)]))
    marked = await kube.delete("v1", "ConfigMap", "owner", namespace, propagation="Foreground")
    assert marked is not None and "foregroundDeletion" in marked["metadata"]["finalizers"]
    child = await kube.wait_for("v1", "ConfigMap", "child", namespace,
                                lambda obj: obj and obj["metadata"].get("deletionTimestamp"), timeout=10)
    assert await kube.get_or_none("v1", "ConfigMap", "owner", namespace) is not None
    await kube.patch(child, {"metadata": {"finalizers": None}})
    await kube.wait_deleted("v1", "ConfigMap", "owner", namespace, timeout=10)


async def test_jobs_orphan_their_pods_unless_told_otherwise(kube: KubeClient, namespace: str) -> None:
    job = await kube.create({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": namespace},
                             "spec": {"template": {"spec": {"restartPolicy": "Never",
                                                            "containers": [{"name": "c", "image": "i"}]}}}})
    await kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "p", "namespace": namespace, "ownerReferences": [owned_by(job)]},
        "spec": {"containers": [{"name": "c", "image": "i"}]}})
    await kube.delete("batch/v1", "Job", "j", namespace, propagation=None)
    pod = await kube.get("v1", "Pod", "p", namespace)
    assert "ownerReferences" not in pod["metadata"]


async def test_namespace_deletion_cascades_and_blocks_new_content(kube: KubeClient) -> None:
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})
    await kube.create(configmap("a", "doomed"))
    held = await kube.create(configmap("held", "doomed", ["example.com/hold"]))
    terminating = await kube.delete("v1", "Namespace", "doomed")
    assert terminating is not None and terminating["status"]["phase"] == "Terminating"
    with pytest.raises(KubeApiError) as error:
        await kube.create(configmap("late", "doomed"))
    assert error.value.status == 403
    await kube.wait_deleted("v1", "ConfigMap", "a", "doomed", timeout=10)
    assert await kube.get_or_none("v1", "Namespace", "doomed") is not None
    await kube.patch(held, {"metadata": {"finalizers": None}})
    await kube.wait_deleted("v1", "Namespace", "doomed", timeout=10)
