"""A small async Kubernetes API client on aiohttp, using the credentials kopf logged in with.

kopf talks to the API for its own watching and patching; children are ours to create, adopt, patch
and delete, so the operator needs a client of its own. It only knows the kinds in `KINDS`.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlencode

import aiohttp
import kopf

from . import constants as c

PatchType = Literal["merge", "json", "strategic"]
Propagation = Literal["Foreground", "Background", "Orphan"]

_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def collection_path(self, namespace: str | None) -> str:
        root = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced:
            if not namespace:
                raise ValueError(f"{self.kind} is namespaced: give a namespace")
            return f"{root}/namespaces/{quote(namespace)}/{self.plural}"
        return f"{root}/{self.plural}"


CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps")
SERVICE = Kind("v1", "Service", "services")
SERVICE_ACCOUNT = Kind("v1", "ServiceAccount", "serviceaccounts")
POD = Kind("v1", "Pod", "pods")
EVENT = Kind("v1", "Event", "events")
JOB = Kind("batch/v1", "Job", "jobs")
ROLE = Kind("rbac.authorization.k8s.io/v1", "Role", "roles")
ROLE_BINDING = Kind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings")
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
DEEP_TRAINING_JOB = Kind(c.API_VERSION, c.JOB_KIND, c.JOB_PLURAL)
WORKFLOW = Kind(c.API_VERSION, c.WORKFLOW_KIND, c.WORKFLOW_PLURAL)
VOLCANO_PODGROUP = Kind(c.VOLCANO_PODGROUP_API, c.PODGROUP_KIND, "podgroups")
COSCHEDULING_PODGROUP = Kind(c.COSCHEDULING_PODGROUP_API, c.PODGROUP_KIND, "podgroups")

KINDS: dict[tuple[str, str], Kind] = {
    (k.api_version, k.kind): k
    for k in (CONFIG_MAP, SERVICE, SERVICE_ACCOUNT, POD, EVENT, JOB, ROLE, ROLE_BINDING, DEPLOYMENT,
              DEEP_TRAINING_JOB, WORKFLOW, VOLCANO_PODGROUP, COSCHEDULING_PODGROUP)
}


def kind_of(obj: dict[str, Any]) -> Kind:
    try:
        return KINDS[obj["apiVersion"], obj["kind"]]
    except KeyError:
        raise ValueError(f"unknown kind {obj.get('apiVersion')}/{obj.get('kind')}") from None


class KubeError(Exception):
    """A failed API request; `message` is the apiserver's Status message."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message


class NotFound(KubeError):
    pass


class AlreadyExists(KubeError):
    pass


class Conflict(KubeError):
    pass


class Invalid(KubeError):
    pass


def _error_for(code: int, body: dict[str, Any] | None, text: str) -> KubeError:
    reason = (body or {}).get("reason", "") or ""
    message = (body or {}).get("message") or text or reason
    if code == 404:
        return NotFound(code, reason or "NotFound", message)
    if code == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
        return cls(code, reason or "Conflict", message)
    if code == 422:
        return Invalid(code, reason or "Invalid", message)
    return KubeError(code, reason or "Error", message)


class KubeClient:
    """Requests go to the server of the latest `kopf.ConnectionInfo`; `use()` swaps it on re-login."""

    def __init__(self, info: kopf.ConnectionInfo | None = None) -> None:
        self._info = info
        self._session: aiohttp.ClientSession | None = None
        self._stale: aiohttp.ClientSession | None = None

    def use(self, info: kopf.ConnectionInfo) -> None:
        if info != self._info:
            self._info = info
            # The session carries the old credentials; the next request closes it and opens another.
            self._stale, self._session = self._session, None

    async def close(self) -> None:
        for session in (self._session, self._stale):
            if session is not None:
                await session.close()
        self._session = self._stale = None

    def _session_for(self, info: kopf.ConnectionInfo) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ssl_context: ssl.SSLContext | bool = info.as_ssl_context() if info.server.startswith("https") else False
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ssl_context),
                headers={**info.as_http_headers(), "User-Agent": c.MANAGER},
                timeout=aiohttp.ClientTimeout(total=60),
                trust_env=info.trust_env,
            )
        return self._session

    async def _request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                       body: Any = None, content_type: str = "application/json") -> dict[str, Any]:
        if self._info is None:
            raise RuntimeError("the Kubernetes client has no credentials yet (kopf has not logged in)")
        if self._stale is not None:
            await self._stale.close()
            self._stale = None
        session = self._session_for(self._info)
        url = self._info.server.rstrip("/") + path
        if params:
            url += "?" + urlencode(params)
        data = None if body is None else json.dumps(body)
        async with session.request(method, url, data=data, headers={"Content-Type": content_type}) as response:
            text = await response.text()
            try:
                parsed = json.loads(text) if text else {}
            except ValueError:
                parsed = None
            if response.status >= 400:
                raise _error_for(response.status, parsed if isinstance(parsed, dict) else None, text)
            return parsed if isinstance(parsed, dict) else {}

    @staticmethod
    def _object_path(kind: Kind, namespace: str | None, name: str, subresource: str | None = None) -> str:
        path = f"{kind.collection_path(namespace)}/{quote(name)}"
        return f"{path}/{subresource}" if subresource else path

    async def get(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any]:
        return await self._request("GET", self._object_path(kind, namespace, name))

    async def get_or_none(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return await self.get(kind, namespace, name)
        except NotFound:
            return None

    async def list(self, kind: Kind, namespace: str | None, *,
                   label_selector: dict[str, str] | None = None) -> list[dict[str, Any]]:
        params = {}
        if label_selector:
            params["labelSelector"] = ",".join(f"{key}={value}" for key, value in sorted(label_selector.items()))
        result = await self._request("GET", kind.collection_path(namespace), params=params)
        items = result.get("items") or []
        for item in items:  # list items come without apiVersion/kind
            item.setdefault("apiVersion", kind.api_version)
            item.setdefault("kind", kind.kind)
        return items

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind = kind_of(obj)
        namespace = obj.get("metadata", {}).get("namespace")
        return await self._request("POST", kind.collection_path(namespace), body=obj)

    async def patch(self, kind: Kind, namespace: str | None, name: str, patch: Any, *,
                    patch_type: PatchType = "merge", subresource: str | None = None) -> dict[str, Any]:
        return await self._request("PATCH", self._object_path(kind, namespace, name, subresource),
                                   body=patch, content_type=_CONTENT_TYPES[patch_type])

    async def delete(self, kind: Kind, namespace: str | None, name: str, *,
                     propagation: Propagation = "Background") -> bool:
        """Delete; False when it was already gone."""
        try:
            await self._request("DELETE", self._object_path(kind, namespace, name),
                                body={"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation})
        except NotFound:
            return False
        return True
