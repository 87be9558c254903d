"""The HTTP layer: routes requests to discovery, the store and watch streams, in kube-apiserver's shapes."""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
from typing import Any

from aiohttp import web

from . import discovery, errors
from .admission import FIELD_VALIDATIONS, WriteOptions
from .faults import Faults, reason_for
from .patching import STRATEGIC
from .resources import ResourceRegistry, ResourceType
from .selectors import object_matcher
from .store import Store
from .urls import ResourceUrl, parse_resource_url
from .watching import CLOSE

JSON = "application/json"


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type=JSON)


def _error(error: errors.ApiError) -> web.Response:
    return _json(error.status(), error.code)


def _warned(response: web.Response, options: WriteOptions) -> web.Response:
    """The apiserver's warnings as `Warning: 299 - "text"` headers (kubectl prints them)."""
    for warning in options.warnings:
        response.headers.add("Warning", f"299 - {json.dumps(warning)}")
    return response


class RequestCounter:
    """Requests served, per (verb, resource), for the scale reports; read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def count(self, verb: str, resource: str) -> None:
        with self._lock:
            self._counts[(verb, resource)] += 1

    def snapshot(self) -> collections.Counter[tuple[str, str]]:
        with self._lock:
            return collections.Counter(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


class ApiServer:
    def __init__(self, store: Store, registry: ResourceRegistry, faults: Faults, counter: RequestCounter,
                 bookmark_interval: float) -> None:
        self.store = store
        self.registry = registry
        self.faults = faults
        self.counter = counter
        self.bookmark_interval = bookmark_interval

    def application(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        url = parse_resource_url(request.path)
        self.counter.count(self._verb(request, url), self._counted_resource(url) if url else request.path)
        injected = self.faults.injected_status(request.method, request.path_qs)
        if injected is not None:
            return self._injected(injected)
        try:
            if url is None:
                return self._discovery(request)
            return await self._resource_request(request, url)
        except errors.ApiError as error:
            return _error(error)

    @staticmethod
    def _injected(status: int) -> web.Response:
        error = errors.ApiError(status, reason_for(status), f"injected fault: {reason_for(status)}")
        response = _error(error)
        if status == 429:
            response.headers["Retry-After"] = "1"
        return response

    @staticmethod
    def _verb(request: web.Request, url: ResourceUrl | None) -> str:
        collection = url is not None and url.name is None
        if request.method == "GET":
            if request.query.get("watch") in ("true", "1"):
                return "watch"
            return "list" if collection else "get"
        return {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "deletecollection" if collection else "delete"}.get(request.method, request.method)

    @staticmethod
    def _counted_resource(url: ResourceUrl) -> str:
        return f"{url.plural}/{url.subresource}" if url.subresource else url.plural

    # ---- discovery ---------------------------------------------------------------------------------

    def _discovery(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            raise errors.method_not_allowed(request.method)
        parts = [part for part in request.path.split("/") if part]
        body: dict[str, Any] | None = None
        if parts == ["version"]:
            body = discovery.SERVER_VERSION
        elif parts == ["api"]:
            body = discovery.core_versions()
        elif parts == ["api", "v1"]:
            body = discovery.resource_list(self.registry, "", "v1")
        elif parts == ["apis"]:
            body = discovery.group_list(self.registry)
        elif len(parts) == 2 and parts[0] == "apis":
            body = discovery.group(self.registry, parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            body = discovery.resource_list(self.registry, parts[1], parts[2])
        elif parts in ([], ["healthz"], ["livez"], ["readyz"]):
            return web.Response(text="ok")
        if body is None:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        return _json(body)

    # ---- resources ---------------------------------------------------------------------------------

    def _resource(self, url: ResourceUrl) -> ResourceType:
        resource = self.registry.lookup(url.group, url.version, url.plural)
        not_found = errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        if resource is None:
            raise not_found
        if url.namespace is not None and not resource.namespaced:
            raise not_found
        if url.name is not None and resource.namespaced and url.namespace is None:
            raise not_found
        if url.subresource is not None and not (url.subresource == "status" and resource.has_status):
            raise not_found
        return resource

    async def _resource_request(self, request: web.Request, url: ResourceUrl) -> web.StreamResponse:
        resource = self._resource(url)
        namespace = url.namespace or ""
        method = request.method
        query = request.query
        if url.name is None:
            if method == "GET" and query.get("watch") in ("true", "1"):
                return await self._watch(request, resource, url.namespace)
            if method == "GET":
                return self._list(resource, url.namespace, query)
            if method == "POST":
                if resource.namespaced and url.namespace is None:
                    raise errors.method_not_allowed(method)
                options = self._write_options(request)
                created = self.store.create(resource, namespace, await self._body(request), options)
                return _warned(_json(created, 201), options)
            if method == "DELETE":
                return self._delete_collection(resource, url.namespace, query)
        else:
            if method == "GET":
                return _json(self.store.get(resource, namespace, url.name))
            if method == "PUT":
                options = self._write_options(request)
                replaced = self.store.replace(resource, namespace, url.name, await self._body(request),
                                              url.subresource, options)
                return _warned(_json(replaced), options)
            if method == "PATCH":
                content_type = request.headers.get("Content-Type", "")
                if content_type.startswith(STRATEGIC) and resource.schema is not None:
                    raise errors.unsupported_media_type(content_type)
                options = self._write_options(request)
                patched = self.store.patch(resource, namespace, url.name, content_type,
                                           await self._body(request), url.subresource, options)
                return _warned(_json(patched), options)
            if method == "DELETE":
                return await self._delete(request, resource, namespace, url.name)
        raise errors.method_not_allowed(method)

    @staticmethod
    def _write_options(request: web.Request) -> WriteOptions:
        dry_run = request.query.getall("dryRun", [])
        if any(value != "All" for value in dry_run):
            raise errors.bad_request(f"unsupported dryRun value: {dry_run}; the only supported value is All")
        validation = request.query.get("fieldValidation", "Warn") or "Warn"
        if validation not in FIELD_VALIDATIONS:
            raise errors.bad_request(f'fieldValidation must be one of "Ignore", "Warn", "Strict": got "{validation}"')
        return WriteOptions(dry_run=bool(dry_run), field_validation=validation)

    @staticmethod
    async def _body(request: web.Request) -> Any:
        if "protobuf" in request.headers.get("Content-Type", "") or "cbor" in request.headers.get("Content-Type", ""):
            # Clients that prefer a binary encoding retry with JSON after a 415.
            raise errors.unsupported_media_type(request.headers["Content-Type"])
        try:
            return json.loads(await request.read() or b"null")
        except ValueError as exc:
            raise errors.bad_request(f"invalid JSON in the request body: {exc}") from None

    def _list(self, resource: ResourceType, namespace: str | None, query: Any) -> web.Response:
        matches = object_matcher(query.get("labelSelector"), query.get("fieldSelector"))
        limit = int(query["limit"]) if query.get("limit") else None
        items, resource_version, continue_token = self.store.list(resource, namespace, matches, limit,
                                                                  query.get("continue"))
        metadata: dict[str, Any] = {"resourceVersion": str(resource_version)}
        if continue_token:
            metadata["continue"] = continue_token
        if not resource.custom:
            # A real apiserver sends built-in kinds' list items without apiVersion and kind.
            items = [{k: v for k, v in item.items() if k not in ("apiVersion", "kind")} for item in items]
        return _json({"kind": f"{resource.kind}List", "apiVersion": resource.api_version,
                      "metadata": metadata, "items": items})

    async def _delete(self, request: web.Request, resource: ResourceType, namespace: str,
                      name: str) -> web.Response:
        options = await self._body(request) or {}
        propagation = options.get("propagationPolicy") or request.query.get("propagationPolicy")
        if propagation is None and options.get("orphanDependents") is not None:
            propagation = "Orphan" if options["orphanDependents"] else "Background"
        if self._write_options(request).dry_run or options.get("dryRun"):
            return _json(self.store.get(resource, namespace, name))  # `kubectl delete --dry-run=server`
        return _json(self.store.delete(resource, namespace, name, propagation, options.get("preconditions")))

    def _delete_collection(self, resource: ResourceType, namespace: str | None, query: Any) -> web.Response:
        matches = object_matcher(query.get("labelSelector"), query.get("fieldSelector"))
        items, _, _ = self.store.list(resource, namespace, matches)
        for item in items:
            self.store.delete(resource, item["metadata"].get("namespace", ""), item["metadata"]["name"],
                              query.get("propagationPolicy"))
        return self._list(resource, namespace, query)

    # ---- watch -------------------------------------------------------------------------------------

    async def _watch(self, request: web.Request, resource: ResourceType, namespace: str | None) -> web.StreamResponse:
        query = request.query
        matches = object_matcher(query.get("labelSelector"), query.get("fieldSelector"))
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        response = web.StreamResponse(headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        try:
            watcher = self.store.open_watch(resource, namespace, matches, query.get("resourceVersion"))
        except errors.ApiError as error:
            if error.code != 410:
                raise
            # Like the real server: the stream opens fine, then says 410 in an ERROR event and ends.
            await response.prepare(request)
            await response.write(json.dumps({"type": "ERROR", "object": error.status()}).encode() + b"\n")
            return response
        await response.prepare(request)
        deadline = time.monotonic() + timeout if timeout is not None else None
        try:
            while True:
                wait = self.bookmark_interval if bookmarks else None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    wait = left if wait is None else min(wait, left)
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), wait)
                except TimeoutError:
                    if bookmarks and watcher.queue.empty():
                        await response.write(self._bookmark(resource))
                    continue
                if item is CLOSE:
                    break
                event_type, obj = item
                await response.write(json.dumps({"type": event_type, "object": obj}).encode() + b"\n")
        except ConnectionResetError:
            pass  # the client went away; nothing to tell it
        finally:
            self.store.close_watch(watcher)
        return response

    def _bookmark(self, resource: ResourceType) -> bytes:
        obj = {"kind": resource.kind, "apiVersion": resource.api_version,
               "metadata": {"resourceVersion": str(self.store.resource_version)}}
        return json.dumps({"type": "BOOKMARK", "object": obj}).encode() + b"\n"
