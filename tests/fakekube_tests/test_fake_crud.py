"""Create, read, update, patch and list: the semantics clients rely on."""

from __future__ import annotations

import pytest

from harness import KubeApiError, KubeClient

from .crd_samples import API_VERSION, widget

pytestmark = pytest.mark.usefixtures("sample_crds")


def configmap(name: str, namespace: str, labels: dict[str, str] | None = None, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}}, "data": data}


async def test_create_sets_server_fields_and_resource_versions_grow(kube: KubeClient, namespace: str) -> None:
    first = await kube.create(configmap("a", namespace, x="1"))
    second = await kube.create(configmap("b", namespace, x="2"))
    assert first["metadata"]["uid"] != second["metadata"]["uid"]
    assert first["metadata"]["creationTimestamp"].endswith("Z")
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    fetched = await kube.get("v1", "ConfigMap", "a", namespace)
    assert fetched == first


async def test_create_existing_name_is_already_exists(kube: KubeClient, namespace: str) -> None:
    await kube.create(configmap("a", namespace))
    with pytest.raises(KubeApiError) as error:
        await kube.create(configmap("a", namespace))
    assert (error.value.status, error.value.reason) == (409, "AlreadyExists")
    assert error.value.message == 'configmaps "a" already exists'


async def test_generate_name_makes_distinct_names(kube: KubeClient, namespace: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-", "namespace": namespace}}
    names = {(await kube.create(body))["metadata"]["name"] for _ in range(3)}
    assert len(names) == 3 and all(name.startswith("gen-") and len(name) == 9 for name in names)


async def test_missing_namespace_is_not_found(kube: KubeClient) -> None:
    with pytest.raises(KubeApiError) as error:
        await kube.create(configmap("a", "no-such-namespace"))
    assert error.value.status == 404
    assert error.value.message == 'namespaces "no-such-namespace" not found'


async def test_get_missing_is_not_found_with_group(kube: KubeClient, namespace: str) -> None:
    with pytest.raises(KubeApiError) as error:
        await kube.get(API_VERSION, "Widget", "nope", namespace)
    assert error.value.status == 404
    assert error.value.message == 'widgets.fake.example.com "nope" not found'


async def test_stale_resource_version_conflicts(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(configmap("a", namespace, x="1"))
    await kube.patch(created, {"data": {"x": "2"}})
    stale = {**created, "data": {"x": "3"}}
    with pytest.raises(KubeApiError) as put_error:
        await kube.replace(stale)
    with pytest.raises(KubeApiError) as patch_error:
        await kube.patch(created, {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]},
                                   "data": {"x": "4"}})
    assert put_error.value.status == patch_error.value.status == 409
    assert put_error.value.reason == "Conflict"
    assert "the object has been modified" in put_error.value.message
    assert (await kube.get("v1", "ConfigMap", "a", namespace))["data"] == {"x": "2"}


async def test_put_with_current_version_succeeds(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(configmap("a", namespace, x="1"))
    updated = await kube.replace({**created, "data": {"x": "2"}})
    assert updated["data"] == {"x": "2"}
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]


async def test_noop_patch_keeps_resource_version(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(configmap("a", namespace, x="1"))
    patched = await kube.patch(created, {"data": {"x": "1"}})
    assert patched["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_merge_json_and_strategic_patches(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(configmap("a", namespace, x="1", y="2"))
    merged = await kube.patch(created, {"data": {"x": None, "z": "3"}})
    assert merged["data"] == {"y": "2", "z": "3"}
    jsoned = await kube.patch(created, [{"op": "replace", "path": "/data/y", "value": "20"},
                                        {"op": "add", "path": "/metadata/labels/l", "value": "v"}], type="json")
    assert jsoned["data"] == {"y": "20", "z": "3"} and jsoned["metadata"]["labels"] == {"l": "v"}
    with pytest.raises(KubeApiError) as failed_test:
        await kube.patch(created, [{"op": "test", "path": "/data/y", "value": "nope"}], type="json")
    assert failed_test.value.status == 422


async def test_strategic_patch_merges_containers_by_name(kube: KubeClient, namespace: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": namespace},
           "spec": {"containers": [{"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                                   {"name": "b", "image": "b:1"}]}}
    created = await kube.create(pod)
    patched = await kube.patch(created, {"spec": {"containers": [
        {"name": "a", "env": [{"name": "Y", "value": "2"}]}]}}, type="strategic")
    containers = patched["spec"]["containers"]
    assert [c["name"] for c in containers] == ["a", "b"]
    assert containers[0]["image"] == "a:1"
    assert containers[0]["env"] == [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]


async def test_strategic_patch_is_refused_for_custom_resources(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(widget("w", namespace))
    with pytest.raises(KubeApiError) as error:
        await kube.patch(created, {"spec": {"size": 4}}, type="strategic")
    assert error.value.status == 415


@pytest.mark.parametrize(("selector", "expected"), [
    ("app=a", {"one"}),
    ("app==a", {"one"}),
    ("app!=a", {"two", "three"}),
    ("app in (a, b)", {"one", "two"}),
    ("app notin (a,b)", {"three"}),
    ("tier", {"one", "three"}),
    ("!tier", {"two"}),
    ("app=a,tier=web", {"one"}),
])
async def test_label_selectors(kube: KubeClient, namespace: str, selector: str, expected: set[str]) -> None:
    await kube.create(configmap("one", namespace, {"app": "a", "tier": "web"}))
    await kube.create(configmap("two", namespace, {"app": "b"}))
    await kube.create(configmap("three", namespace, {"tier": "db"}))
    found = await kube.list("v1", "ConfigMap", namespace, label_selector=selector)
    assert {item["metadata"]["name"] for item in found} == expected


async def test_field_selectors_and_all_namespaces(kube: KubeClient, namespace: str) -> None:
    other = f"{namespace}-b"
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    try:
        await kube.create(configmap("a", namespace))
        await kube.create(configmap("a", other))
        everywhere = await kube.list("v1", "ConfigMap", None, field_selector="metadata.name=a")
        assert {item["metadata"]["namespace"] for item in everywhere} >= {namespace, other}
        only = await kube.list("v1", "ConfigMap", None, field_selector=f"metadata.namespace={other}")
        assert [item["metadata"]["name"] for item in only] == ["a"]
    finally:
        await kube.delete("v1", "Namespace", other)


async def test_list_pagination_returns_everything_once(kube: KubeClient, namespace: str) -> None:
    for index in range(5):
        await kube.create(configmap(f"cm-{index}", namespace))
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    names, token, pages = [], None, 0
    while True:
        params = {"limit": "2", **({"continue": token} if token else {})}
        page = await kube.request("GET", path, params=params)
        names += [item["metadata"]["name"] for item in page["items"]]
        pages += 1
        token = page["metadata"].get("continue")
        if not token:
            break
    assert names == [f"cm-{index}" for index in range(5)]
    assert pages == 3


async def test_cluster_scoped_custom_resource(kube: KubeClient) -> None:
    gadget = widget("g1", None, kind="Gadget")
    created = await kube.create(gadget)
    try:
        assert "namespace" not in created["metadata"]
        assert (await kube.get(API_VERSION, "Gadget", "g1"))["spec"]["size"] == 3
        with pytest.raises(KubeApiError) as error:
            await kube.request("GET", "/apis/fake.example.com/v1/namespaces/default/gadgets/g1")
        assert error.value.status == 404
    finally:
        await kube.delete(API_VERSION, "Gadget", "g1")


async def test_job_defaults_and_immutable_template(kube: KubeClient, namespace: str) -> None:
    job = await kube.create({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": namespace},
                             "spec": {"template": {"spec": {"restartPolicy": "Never",
                                                            "containers": [{"name": "c", "image": "i"}]}}}})
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert job["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "j"
    assert job["spec"]["backoffLimit"] == 6
    with pytest.raises(KubeApiError) as error:
        await kube.patch(job, {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "other"}]}}}})
    assert error.value.status == 422
    assert "spec.template" in error.value.message and "field is immutable" in error.value.message
