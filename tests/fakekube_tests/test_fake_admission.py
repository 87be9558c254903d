"""Custom resources are admitted from their CRD: pruning, defaulting, OpenAPI and CEL validation, 422 shape."""

from __future__ import annotations

import pytest

from harness import KubeApiError, KubeClient

from .crd_samples import widget

pytestmark = pytest.mark.usefixtures("sample_crds")


async def rejected(kube: KubeClient, obj: dict) -> KubeApiError:
    with pytest.raises(KubeApiError) as error:
        await kube.create(obj)
    assert error.value.status == 422 and error.value.reason == "Invalid"
    return error.value


async def test_invalid_value_in_apiserver_shape(kube: KubeClient, namespace: str) -> None:
    error = await rejected(kube, widget("w", namespace, color="pink"))
    # As a real apiserver: an enum violation also holds back the CEL rules, and says so at <nil>.
    assert error.message == ('Widget.fake.example.com "w" is invalid: [spec.color: Unsupported value: "pink": '
                             'supported values: "red", "green", "blue", <nil>: Invalid value: null: some validation '
                             'rules were not checked because the object was invalid; correct the existing errors '
                             'to complete validation]')
    assert error.body["kind"] == "Status" and error.body["status"] == "Failure" and error.body["code"] == 422
    details = error.body["details"]
    assert (details["name"], details["group"], details["kind"]) == ("w", "fake.example.com", "Widget")
    assert details["causes"][0] == {"reason": "FieldValueNotSupported", "field": "spec.color",
                                    "message": 'Unsupported value: "pink": supported values: "red", "green", "blue"'}
    assert [cause["field"] for cause in details["causes"]] == ["spec.color", "<nil>"]


@pytest.mark.parametrize(("spec", "field"), [
    ({"size": 11}, "spec.size"),
    ({"size": 0}, "spec.size"),
    ({"size": "big"}, "spec.size"),
    ({"handle": "x"}, "spec.handle"),
    ({"handle": "toolongname"}, "spec.handle"),
    ({"handle": "ABC"}, "spec.handle"),
    ({"ratio": 0}, "spec.ratio"),
    ({"port": 1.5}, "spec.port"),
    ({"tags": ["a", "b", "c"]}, "spec.tags"),
    ({"labels": {"a": 1}}, "spec.labels[a]"),
    ({"ports": [{"name": "a"}, {"name": "a"}]}, "spec.ports[1]"),
    ({"ports": [{"number": 1}]}, "spec.ports[0].name"),
])
async def test_openapi_constraints(kube: KubeClient, namespace: str, spec: dict, field: str) -> None:
    error = await rejected(kube, widget("w", namespace, **spec))
    assert field in [cause["field"] for cause in error.body["details"]["causes"]]


async def test_required_field(kube: KubeClient, namespace: str) -> None:
    obj = widget("w", namespace)
    del obj["spec"]["size"]
    error = await rejected(kube, obj)
    assert error.body["details"]["causes"][0] == {"reason": "FieldValueRequired", "field": "spec.size",
                                                  "message": "Required value"}


async def test_accepted_shapes(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(widget("w", namespace, port="http", note=None, extra={"any": {"thing": 1}},
                                       labels={"a": "b"}, ports=[{"name": "a"}, {"name": "b"}]))
    assert created["spec"]["port"] == "http"
    assert created["spec"]["extra"] == {"any": {"thing": 1}}


async def test_defaults_and_pruning(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(widget("w", namespace, options={}, unknown="dropped"))
    assert created["spec"]["color"] == "red"
    assert created["spec"]["options"] == {"fast": False}
    assert "unknown" not in created["spec"]
    assert created["apiVersion"] == "fake.example.com/v1" and created["kind"] == "Widget"


async def test_cel_rule_with_message_and_field_path(kube: KubeClient, namespace: str) -> None:
    error = await rejected(kube, widget("w", namespace, size=2, color="blue"))
    assert error.message == ('Widget.fake.example.com "w" is invalid: spec.size: Invalid value: '
                             "blue widgets must be at least size 5")


async def test_cel_message_expression(kube: KubeClient, namespace: str) -> None:
    error = await rejected(kube, widget("w", namespace, owner="bob"))
    assert error.body["details"]["causes"][0]["message"].endswith("owner bob must start with team-")


async def test_transition_rule_runs_on_update_only(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(widget("w", namespace, size=5))
    with pytest.raises(KubeApiError) as error:
        await kube.patch(created, {"spec": {"size": 4}})
    assert error.value.status == 422 and "size may not shrink" in error.value.message
    assert (await kube.patch(created, {"spec": {"size": 6}}))["spec"]["size"] == 6
