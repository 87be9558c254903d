"""Watch streams: resume from a resourceVersion, 410 Gone, selectors, bookmarks, timeouts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fakekube import FakeKubeServer
from harness import KubeClient

Event = dict[str, Any]


@asynccontextmanager
async def watching(kube: KubeClient, namespace: str, **params: str) -> AsyncIterator[asyncio.Queue[Event | None]]:
    """Events of a ConfigMap watch as they arrive; None when the server ends the stream."""
    events: asyncio.Queue[Event | None] = asyncio.Queue()
    path = f"api/v1/namespaces/{namespace}/configmaps"

    async def read() -> None:
        async with kube.session.get(path, params={"watch": "true", **params}) as response:
            async for line in response.content:
                if line.strip():
                    events.put_nowait(json.loads(line))
        events.put_nowait(None)

    reader = asyncio.create_task(read())
    try:
        yield events
    finally:
        reader.cancel()


async def next_event(events: asyncio.Queue[Event | None]) -> Event | None:
    return await asyncio.wait_for(events.get(), 10)


def configmap(name: str, namespace: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace,
                                                                  "labels": labels}}


async def test_watch_from_a_version_replays_later_changes(kube: KubeClient, namespace: str) -> None:
    first = await kube.create(configmap("a", namespace))
    await kube.patch(first, {"data": {"x": "1"}})
    await kube.delete("v1", "ConfigMap", "a", namespace)
    async with watching(kube, namespace, resourceVersion=first["metadata"]["resourceVersion"]) as events:
        modified, deleted = await next_event(events), await next_event(events)
        await kube.create(configmap("b", namespace))
        added = await next_event(events)
    assert [e["type"] for e in (modified, deleted, added)] == ["MODIFIED", "DELETED", "ADDED"]
    assert modified["object"]["data"] == {"x": "1"}
    assert added["object"]["metadata"]["name"] == "b"
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in (modified, deleted, added)]
    assert versions == sorted(versions)


async def test_watch_without_version_starts_with_current_state(kube: KubeClient, namespace: str) -> None:
    await kube.create(configmap("a", namespace))
    async with watching(kube, namespace) as events:
        event = await next_event(events)
    assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "a"


async def test_watch_applies_label_selector_and_reports_leaving(kube: KubeClient, namespace: str) -> None:
    listing = await kube.request("GET", f"/api/v1/namespaces/{namespace}/configmaps")
    since = listing["metadata"]["resourceVersion"]
    async with watching(kube, namespace, resourceVersion=since, labelSelector="app=a") as events:
        await kube.create(configmap("other", namespace, app="b"))
        mine = await kube.create(configmap("mine", namespace, app="a"))
        added = await next_event(events)
        await kube.patch(mine, {"metadata": {"labels": {"app": "b"}}})
        left = await next_event(events)
    assert (added["type"], added["object"]["metadata"]["name"]) == ("ADDED", "mine")
    assert (left["type"], left["object"]["metadata"]["name"]) == ("DELETED", "mine")


async def test_expired_history_gives_410_error_event(kube: KubeClient, namespace: str,
                                                      fakekube: FakeKubeServer) -> None:
    created = await kube.create(configmap("a", namespace))
    fakekube.faults.expire_history()
    async with watching(kube, namespace, resourceVersion=created["metadata"]["resourceVersion"]) as events:
        error, end = await next_event(events), await next_event(events)
    assert error["type"] == "ERROR"
    assert error["object"]["code"] == 410 and error["object"]["reason"] == "Expired"
    assert end is None
    fresh = await kube.request("GET", f"/api/v1/namespaces/{namespace}/configmaps")
    async with watching(kube, namespace, resourceVersion=fresh["metadata"]["resourceVersion"]) as events:
        await kube.create(configmap("b", namespace))
        assert (await next_event(events))["type"] == "ADDED"


async def test_timeout_seconds_ends_the_stream(kube: KubeClient, namespace: str) -> None:
    listing = await kube.request("GET", f"/api/v1/namespaces/{namespace}/configmaps")
    async with watching(kube, namespace, resourceVersion=listing["metadata"]["resourceVersion"],
                        timeoutSeconds="1") as events:
        assert await next_event(events) is None


async def test_bookmarks_carry_the_current_version(tmp_path: Path) -> None:
    with FakeKubeServer(bookmark_interval=0.2) as server:
        async with KubeClient(server.write_kubeconfig(tmp_path / "config")) as kube:
            created = await kube.create(configmap("a", "default"))
            async with watching(kube, "default", resourceVersion=created["metadata"]["resourceVersion"],
                                allowWatchBookmarks="true") as events:
                bookmark = await next_event(events)
    assert bookmark["type"] == "BOOKMARK"
    assert int(bookmark["object"]["metadata"]["resourceVersion"]) >= int(created["metadata"]["resourceVersion"])


async def test_cut_watches_ends_open_streams(kube: KubeClient, namespace: str, fakekube: FakeKubeServer) -> None:
    listing = await kube.request("GET", f"/api/v1/namespaces/{namespace}/configmaps")
    async with watching(kube, namespace, resourceVersion=listing["metadata"]["resourceVersion"]) as events:
        await kube.create(configmap("a", namespace))
        assert (await next_event(events))["type"] == "ADDED"
        assert fakekube.faults.cut_watches() >= 1
        assert await next_event(events) is None
