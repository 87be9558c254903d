"""KubeClient: the async test-side client, the same against the fake and against a real cluster."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from .kubeconfig import Connection, load_connection

Object = dict[str, Any]
PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}


class KubeApiError(Exception):
    """A non-2xx answer; `status` is the HTTP code, `body` the Status object (or text) the server sent."""

    def __init__(self, status: int, body: Any, method: str, path: str):
        self.status = status
        self.body = body
        self.reason = body.get("reason") if isinstance(body, dict) else None
        self.message = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(f"{method} {path}: {status} {self.reason}: {self.message}")


@dataclass(frozen=True)
class ResourceInfo:
    api_version: str
    kind: str
    plural: str
    namespaced: bool
    subresources: frozenset[str]

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
        return base


def describe(obj: Object | None) -> str:
    return "<absent>" if obj is None else yaml.safe_dump(obj, sort_keys=False)


class KubeClient:
    """Usage: `async with KubeClient(kubeconfig) as kube: await kube.create({...})`."""

    def __init__(self, kubeconfig: str | Path | Connection) -> None:
        self.connection = kubeconfig if isinstance(kubeconfig, Connection) else load_connection(kubeconfig)
        self._session: aiohttp.ClientSession | None = None
        self._discovered: dict[str, dict[str, ResourceInfo]] = {}

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                base_url=self.connection.server + "/",
                headers=self.connection.headers(),
                connector=aiohttp.TCPConnector(ssl=self.connection.ssl_context()),
                timeout=aiohttp.ClientTimeout(total=60),
            )
        return self._session

    # ---- raw requests ------------------------------------------------------------------------------

    async def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                      params: dict[str, str] | None = None) -> Any:
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.session.request(method, path.lstrip("/"), data=data, headers=headers,
                                        params=params) as response:
            text = await response.text()
            try:
                payload = json.loads(text) if text else None
            except ValueError:
                payload = text
            if response.status >= 400:
                raise KubeApiError(response.status, payload, method, path)
            return payload

    # ---- discovery ---------------------------------------------------------------------------------

    async def resource(self, api_version: str, kind: str) -> ResourceInfo:
        """Plural, scope and subresources of a kind, from discovery (cached; refreshed when a kind is new)."""
        known = self._discovered.get(api_version)
        if known is None or kind not in known:
            known = self._discovered[api_version] = await self._discover(api_version)
        if kind not in known:
            raise LookupError(f"the server does not serve {kind} in {api_version}")
        return known[kind]

    async def _discover(self, api_version: str) -> dict[str, ResourceInfo]:
        path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        try:
            listing = await self.request("GET", path)
        except KubeApiError as error:
            if error.status == 404:
                return {}
            raise
        subresources: dict[str, set[str]] = {}
        for entry in listing["resources"]:
            if "/" in entry["name"]:
                plural, sub = entry["name"].split("/", 1)
                subresources.setdefault(plural, set()).add(sub)
        return {
            entry["kind"]: ResourceInfo(api_version, entry["kind"], entry["name"], entry["namespaced"],
                                        frozenset(subresources.get(entry["name"], ())))
            for entry in listing["resources"] if "/" not in entry["name"]
        }

    async def _path_of(self, obj: Object, subresource: str | None = None, named: bool = True) -> str:
        info = await self.resource(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata", {})
        return info.path(meta.get("namespace"), meta.get("name") if named else None, subresource)

    # ---- verbs -------------------------------------------------------------------------------------

    async def create(self, obj: Object) -> Object:
        return await self.request("POST", await self._path_of(obj, named=False), obj)

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Object:
        info = await self.resource(api_version, kind)
        return await self.request("GET", info.path(namespace, name))

    async def get_or_none(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Object | None:
        try:
            return await self.get(api_version, kind, name, namespace)
        except KubeApiError as error:
            if error.status == 404:
                return None
            raise

    async def list(self, api_version: str, kind: str, namespace: str | None = None,
                   label_selector: str | None = None, field_selector: str | None = None) -> list[Object]:
        info = await self.resource(api_version, kind)
        params = {k: v for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v}
        listing = await self.request("GET", info.path(namespace), params=params)
        # A real apiserver leaves apiVersion/kind off built-in kinds' list items; give every item back complete,
        # so that it can be passed to patch() and the other verbs like an object read with get().
        return [{"apiVersion": api_version, "kind": kind, **item} for item in listing["items"]]

    async def patch(self, obj_ref: Object, patch: Any, type: str = "merge",
                    subresource: str | None = None) -> Object:
        """Patch the object `obj_ref` names (apiVersion, kind, metadata.name/namespace; the rest is ignored)."""
        return await self.request("PATCH", await self._path_of(obj_ref, subresource), patch, PATCH_TYPES[type])

    async def replace(self, obj: Object, subresource: str | None = None) -> Object:
        return await self.request("PUT", await self._path_of(obj, subresource), obj)

    async def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None,
                     propagation: str | None = "Background", missing_ok: bool = False) -> Object | None:
        info = await self.resource(api_version, kind)
        options = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation:
            options["propagationPolicy"] = propagation
        try:
            return await self.request("DELETE", info.path(namespace, name), options)
        except KubeApiError as error:
            if missing_ok and error.status == 404:
                return None
            raise

    async def apply(self, obj: Object) -> Object:
        """Create, or replace the existing object's content (what `kubectl apply` does for our CRDs)."""
        try:
            return await self.create(obj)
        except KubeApiError as error:
            if error.status != 409:
                raise
        meta = obj["metadata"]
        current = await self.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        updated = {**obj, "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]}}
        return await self.replace(updated)

    async def events(self, namespace: str, involved_name: str | None = None) -> list[Object]:
        """Core v1 Events in a namespace, oldest first, optionally only those about one object."""
        events = await self.list("v1", "Event", namespace)
        if involved_name:
            events = [e for e in events if e.get("involvedObject", {}).get("name") == involved_name]
        return sorted(events, key=lambda e: (e.get("lastTimestamp") or e.get("eventTime") or "",
                                             e["metadata"].get("creationTimestamp", "")))

    # ---- waiting -----------------------------------------------------------------------------------

    async def wait_for(self, api_version: str, kind: str, name: str, namespace: str | None,
                       predicate: Callable[[Object | None], Any], timeout: float = 30,
                       what: str = "the condition", interval: float = 0.1) -> Object | None:
        """Poll until `predicate(obj)` is true (`obj` is None while absent); fail the test on timeout.

        Polling rather than watching keeps waits correct across injected watch cuts and outages.
        """
        deadline = time.monotonic() + timeout
        last: Object | None = None
        last_error: Exception | None = None
        while True:
            try:
                last = await self.get_or_none(api_version, kind, name, namespace)
                last_error = None
                if predicate(last):
                    return last
            except (KubeApiError, aiohttp.ClientError) as error:
                last_error = error  # an injected fault or a blip; keep waiting
            if time.monotonic() >= deadline:
                where = f"{namespace}/{name}" if namespace else name
                note = f"\nlast error: {last_error}" if last_error else ""
                pytest.fail(f"timed out after {timeout}s waiting for {what} on {kind} {where}; last seen:\n"
                            f"{describe(last)}{note}", pytrace=False)
            await asyncio.sleep(interval)

    async def wait_deleted(self, api_version: str, kind: str, name: str, namespace: str | None = None,
                           timeout: float = 30) -> None:
        await self.wait_for(api_version, kind, name, namespace, lambda obj: obj is None, timeout,
                            what="deletion")
