"""Discovery: built-in groups and resources, and custom resources appearing and disappearing with their CRD."""

from __future__ import annotations

import pytest

from harness import KubeApiError, KubeClient
from harness.conditions import has_condition

from .crd_samples import API_VERSION, widget, widget_crd


async def test_version_and_core_group(kube: KubeClient) -> None:
    assert (await kube.request("GET", "/version"))["major"] == "1"
    assert (await kube.request("GET", "/api"))["versions"] == ["v1"]
    core = {entry["name"]: entry for entry in (await kube.request("GET", "/api/v1"))["resources"]}
    assert {"namespaces", "configmaps", "services", "serviceaccounts", "pods", "pods/status", "events", "secrets",
            "persistentvolumeclaims"} <= set(core)
    assert core["pods"]["namespaced"] and not core["namespaces"]["namespaced"]
    assert core["pods"]["kind"] == "Pod" and "watch" in core["pods"]["verbs"]


@pytest.mark.parametrize(("group_version", "expected"), [
    ("batch/v1", {"jobs", "jobs/status"}),
    ("apps/v1", {"deployments", "deployments/status"}),
    ("events.k8s.io/v1", {"events"}),
    ("rbac.authorization.k8s.io/v1", {"roles", "rolebindings", "clusterroles", "clusterrolebindings"}),
    ("apiextensions.k8s.io/v1", {"customresourcedefinitions"}),
    ("coordination.k8s.io/v1", {"leases"}),
    ("scheduling.x-k8s.io/v1alpha1", {"podgroups"}),
    ("scheduling.volcano.sh/v1beta1", {"podgroups"}),
])
async def test_builtin_groups(kube: KubeClient, group_version: str, expected: set[str]) -> None:
    groups = {g["name"]: g for g in (await kube.request("GET", "/apis"))["groups"]}
    group, version = group_version.split("/")
    assert groups[group]["preferredVersion"]["version"] == version
    assert (await kube.request("GET", f"/apis/{group}"))["versions"][0]["groupVersion"] == group_version
    listed = {entry["name"] for entry in (await kube.request("GET", f"/apis/{group_version}"))["resources"]}
    assert expected <= listed


@pytest.mark.usefixtures("sample_crds")  # keeps the group served after this CRD goes
async def test_custom_resource_discovery_follows_its_crd(kube: KubeClient) -> None:
    crd = widget_crd("sprockets", "Sprocket", scope="Cluster")
    created = await kube.create(crd)
    assert has_condition(created, "Established")
    entries = {e["name"]: e for e in (await kube.request("GET", f"/apis/{API_VERSION}"))["resources"]}
    assert entries["sprockets"] == {
        "name": "sprockets", "singularName": "sprocket", "namespaced": False, "kind": "Sprocket",
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        "shortNames": ["spr"], "categories": ["fakes"]}
    assert entries["sprockets/status"]["verbs"] == ["get", "patch", "update"]
    await kube.create(widget("s1", None, kind="Sprocket"))
    await kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd["metadata"]["name"])
    remaining = await kube.request("GET", f"/apis/{API_VERSION}")
    assert "sprockets" not in {e["name"] for e in remaining["resources"]}
    with pytest.raises(KubeApiError) as error:
        await kube.request("GET", f"/apis/{API_VERSION}/sprockets")
    assert error.value.status == 404


async def test_crd_name_must_match_its_names(kube: KubeClient) -> None:
    crd = widget_crd("bolts", "Bolt")
    crd["metadata"]["name"] = "wrong.fake.example.com"
    with pytest.raises(KubeApiError) as error:
        await kube.create(crd)
    assert error.value.status == 422
