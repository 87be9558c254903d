"""The workflow's HTTP service (aiohttp): predict, search, clusters, health, metrics and its OpenAPI description.

Models (and the index) load in a worker thread after the server starts: /healthz answers at once,
/readyz only once everything is loaded, so a pod takes traffic only when it can answer it. Model
calls run on one worker thread: the event loop stays free for probes and metrics while a batch
runs, and torch is never entered from two threads at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from .errors import WorkflowError
from .graph import GraphInput, WorkflowRunner
from .index import METRICS, Index
from .inputs import check_count, image_from_reference, inputs_from_json
from .kmeans import Clusters, kmeans
from .openapi import openapi_document
from .video import run_inputs, search_query, upload_input, video_from_reference

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024 * 1024
MAX_K = 1000
MAX_CLUSTERS = 1000
CLUSTER_CACHE_SIZE = 8


@dataclass(frozen=True)
class Loaded:
    runner: WorkflowRunner
    index: Index | None = None


Loader = Callable[[], Loaded]


class _State:
    def __init__(self, loader: Loader, index_expected: bool):
        self.loader = loader
        self.index_expected = index_expected
        self.loaded: Loaded | None = None
        self.error: str | None = None
        self.clusters: dict[tuple[int, int], Clusters] = {}
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workflow-model")

    def ready(self) -> Loaded:
        if self.loaded is None:
            raise web.HTTPServiceUnavailable(
                text=_error_json(self.error or "the models are still loading; retry when /readyz answers 200"),
                content_type="application/json")
        return self.loaded

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)


def _error_json(message: str) -> str:
    return json.dumps({"error": {"message": message}})


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=_error_json(message), content_type="application/json")


STATE_KEY = web.AppKey("workflow_state", _State)
LOADING_KEY = web.AppKey("workflow_loading", asyncio.Task)


def create_app(loader: Loader, *, index_expected: bool = False, allowed_uri_prefixes: Sequence[str] = (),
               workflow_name: str = "") -> web.Application:
    """The service; `loader` builds the runner (and index) and is called once, in a worker thread."""
    state = _State(loader, index_expected)
    registry = CollectorRegistry()
    requests = Counter("deeptrain_workflow_requests", "HTTP requests answered, by route and status code.",
                       ["method", "route", "code"], registry=registry)
    latency = Histogram("deeptrain_workflow_request_duration_seconds", "Time to answer a request, by route.",
                        ["method", "route"], registry=registry,
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
    prefixes = tuple(allowed_uri_prefixes)

    @web.middleware
    async def measure(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        started = time.perf_counter()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as error:
            code = error.status
            raise
        except WorkflowError as error:
            code = 400
            raise _bad_request(str(error)) from error
        finally:
            requests.labels(request.method, route, str(code)).inc()
            latency.labels(request.method, route).observe(time.perf_counter() - started)

    async def healthz(request: web.Request) -> web.Response:
        if state.error is not None:
            return web.json_response({"alive": False, "error": state.error}, status=500)
        return web.json_response({"alive": True})

    async def readyz(request: web.Request) -> web.Response:
        if state.loaded is None:
            return web.json_response({"ready": False, "reason": state.error or "loading models"}, status=503)
        body: dict[str, Any] = {"ready": True, "models": _versions(state.loaded.runner)}
        if state.loaded.index is not None:
            body["index"] = {"size": state.loaded.index.size, "version": state.loaded.index.version}
        return web.json_response(body)

    async def metrics(request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(openapi_document(workflow_name))

    async def predict(request: web.Request) -> web.Response:
        loaded = state.ready()
        inputs = await _request_inputs(request, prefixes)
        outputs = await state.call(run_inputs, loaded.runner, inputs)
        return web.json_response({"outputs": outputs, "models": _versions(loaded.runner)})

    async def search(request: web.Request) -> web.Response:
        loaded = state.ready()
        index = _index_of(loaded)
        body, images = await _search_body(request, prefixes)
        k = _bounded_int(body.get("k", 5), "k", 1, MAX_K)
        metric = body.get("metric", index.metric)
        if metric not in METRICS:
            raise _bad_request(f"metric: {metric!r} is not one of {', '.join(METRICS)}")
        if ("vector" in body) + len(images) != 1:
            raise _bad_request('give exactly one of "image", "video" or "vector"')
        if "vector" in body:
            vector = body["vector"]
            if not isinstance(vector, list) or not all(isinstance(v, int | float) for v in vector):
                raise _bad_request("vector: must be a list of numbers")
            neighbours = await state.call(index.search, [vector], k, metric)
            results = [{"neighbours": neighbours[0]}]
        else:
            results = await state.call(search_query, loaded.runner, index, images[0], k, metric)
        return web.json_response({"metric": metric, "k": k, "index": {"size": index.size, "version": index.version},
                                  "results": results})

    async def clusters(request: web.Request) -> web.Response:
        loaded = state.ready()
        index = _index_of(loaded)
        body = await _json_body(request)
        k = _bounded_int(body.get("k"), "k", 1, min(MAX_CLUSTERS, index.size))
        seed = _bounded_int(body.get("seed", 0), "seed", 0, 2**31 - 1)
        if (k, seed) not in state.clusters:
            if len(state.clusters) >= CLUSTER_CACHE_SIZE:
                state.clusters.pop(next(iter(state.clusters)))
            state.clusters[(k, seed)] = await state.call(kmeans, index, k, seed)
        return web.json_response(_clusters_body(index, state.clusters[(k, seed)], k, seed))

    async def start_loading(app: web.Application) -> None:
        async def load() -> None:
            try:
                loaded = await state.call(state.loader)
                if state.index_expected and loaded.index is None:
                    raise WorkflowError("an index was configured but none was loaded")
                state.loaded = loaded
                log.info("workflow ready: models %s", _versions(loaded.runner))
            except Exception as error:  # noqa: BLE001 (any failure leaves the pod unready and reported)
                state.error = f"loading failed: {error}"
                log.error("%s", state.error)

        app[LOADING_KEY] = asyncio.create_task(load())

    async def stop(app: web.Application) -> None:
        app[LOADING_KEY].cancel()
        state.executor.shutdown(wait=False, cancel_futures=True)

    app = web.Application(middlewares=[measure], client_max_size=MAX_REQUEST_BYTES)
    app[STATE_KEY] = state
    app.on_startup.append(start_loading)
    app.on_cleanup.append(stop)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_post("/v1/predict", predict)
    app.router.add_post("/v1/search", search)
    app.router.add_post("/v1/clusters", clusters)
    return app


def _versions(runner: WorkflowRunner) -> dict[str, Any]:
    return {node_id: info["version"] for node_id, info in runner.model_versions().items()}


def _index_of(loaded: Loaded) -> Index:
    if loaded.index is None:
        raise web.HTTPConflict(text=_error_json("this workflow serves no index; set spec.index and build it "
                                                "(`deeptrain index`) to search or cluster"),
                               content_type="application/json")
    return loaded.index


def _bounded_int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad_request(f"{name}: {value!r} must be an integer from {low} to {high}")
    return value


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as error:
        raise _bad_request(f"the body is not JSON ({error})") from error
    if not isinstance(body, dict):
        raise _bad_request("the body must be a JSON object")
    return body


async def _request_inputs(request: web.Request, prefixes: Sequence[str]) -> list[GraphInput]:
    if request.content_type.startswith("multipart/"):
        inputs = []
        async for part in await request.multipart():
            if part.name == "text" and not part.filename:
                inputs.append(GraphInput(name=f"text[{len(inputs)}]", text=await part.text()))
            else:
                name = part.filename or part.name or f"image[{len(inputs)}]"
                inputs.append(upload_input(await part.read(), name, part.headers.get("Content-Type")))
            check_count(len(inputs))
        if not inputs:
            raise _bad_request("the multipart body holds no image or text part")
        return inputs
    return inputs_from_json(await _json_body(request), prefixes)


async def _search_body(request: web.Request, prefixes: Sequence[str]) -> tuple[dict[str, Any], list[Any]]:
    """The search options and the query image or video, if any (multipart: fields k/metric plus one file part)."""
    if request.content_type.startswith("multipart/"):
        body: dict[str, Any] = {}
        images = []
        async for part in await request.multipart():
            if part.filename or part.name in ("image", "video"):
                name = part.filename or part.name
                images.append(upload_input(await part.read(), name, part.headers.get("Content-Type")))
            elif part.name == "k":
                text = await part.text()
                body["k"] = int(text) if text.strip().isdigit() else text
            elif part.name == "metric":
                body["metric"] = await part.text()
        return body, images
    body = await _json_body(request)
    images = [GraphInput(name="image", image=image_from_reference(body["image"], "image", prefixes)[0])
              ] if "image" in body else []
    if "video" in body:
        images.append(video_from_reference(body["video"], "video", prefixes))
    return body, images


def _clusters_body(index: Index, found: Clusters, k: int, seed: int) -> dict[str, Any]:
    clusters = []
    for cluster in range(k):
        members = [index.items[row] for row in range(index.size) if found.assignments[row] == cluster]
        concepts: dict[str, int] = {}
        for member in members:
            for concept in member.get("concepts", []):
                concepts[concept] = concepts.get(concept, 0) + 1
        clusters.append({"id": cluster, "size": len(members), "members": [member["id"] for member in members],
                         "concepts": concepts, "centroid": [round(float(v), 6) for v in found.centroids[cluster]]})
    return {"k": k, "seed": seed, "inertia": round(found.inertia, 6), "iterations": found.iterations,
            "clusters": clusters}
