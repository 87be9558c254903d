"""A real kopf operator, run by the harness's OperatorRunner, against the fake."""

from __future__ import annotations

import pytest

from fakekube import FakeKubeServer
from harness import KubeClient, OperatorRunner

from .crd_samples import API_VERSION, widget

pytestmark = pytest.mark.usefixtures("sample_crds")


@pytest.fixture
def operator_modules() -> tuple[str, ...]:
    return ("fakekube_tests.tiny_operator",)


def seen_size(size: int):
    return lambda obj: obj is not None and (obj.get("status") or {}).get("seenSize") == size


async def test_operator_round_trip(kube: KubeClient, namespace: str, operator: OperatorRunner) -> None:
    created = await kube.create(widget("w", namespace, size=3))
    await kube.wait_for(API_VERSION, "Widget", "w", namespace, seen_size(3), what="status.seenSize=3")
    await kube.patch(created, {"spec": {"size": 5}})
    handled = await kube.wait_for(API_VERSION, "Widget", "w", namespace, seen_size(5), what="status.seenSize=5")
    assert handled is not None and handled["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
    await kube.delete(API_VERSION, "Widget", "w", namespace)
    await kube.wait_deleted(API_VERSION, "Widget", "w", namespace)
    assert "widget w is going" in operator.logs()


async def test_operator_catches_up_after_restart(kube: KubeClient, namespace: str, operator: OperatorRunner) -> None:
    operator.stop()
    await kube.create(widget("while-down", namespace, size=4))
    operator.start()
    await kube.wait_for(API_VERSION, "Widget", "while-down", namespace, seen_size(4), what="status.seenSize=4")


async def test_unhandled_exception_is_reported(kube: KubeClient, namespace: str, operator: OperatorRunner) -> None:
    obj = widget("bad", namespace)
    obj["metadata"]["labels"] = {"explode": "yes"}
    await kube.create(obj)
    await kube.wait_for(API_VERSION, "Widget", "bad", namespace, seen_size(3), what="status.seenSize=3")
    await kube.wait_for(API_VERSION, "Widget", "bad", namespace, lambda _: operator.unhandled_exceptions(),
                        what="the operator to log the failing handler")
    with pytest.raises(pytest.fail.Exception, match="this handler has a bug"):
        operator.check()
    operator.allow_errors("failed with an exception")
    operator.check()


async def test_operator_recovers_from_cut_watches_and_410(kube: KubeClient, namespace: str,
                                                          operator: OperatorRunner, fakekube: FakeKubeServer) -> None:
    await kube.create(widget("before", namespace, size=2))
    await kube.wait_for(API_VERSION, "Widget", "before", namespace, seen_size(2), what="status.seenSize=2")
    fakekube.faults.expire_history()
    fakekube.faults.cut_watches()
    await kube.create(widget("after", namespace, size=6))
    await kube.wait_for(API_VERSION, "Widget", "after", namespace, seen_size(6), what="status.seenSize=6")
