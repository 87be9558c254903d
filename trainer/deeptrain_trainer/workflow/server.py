"""The workflow's HTTP service (aiohttp): predict, search, clusters, health, metrics and its OpenAPI description.

Models (and the index) load in a worker thread after the server starts: /healthz answers at once,
/readyz only once everything is loaded, so a pod takes traffic only when it can answer it.

The event loop only moves bytes. A request first takes an admission slot (admission.py: a bounded
queue, 503 + Retry-After when full), then reads its body (at most max_body_bytes), then parses and
decodes it on a decode thread (body.py, inputs.py: nesting and pixel limits checked before the
work), and runs the models on the one model thread (torch is never entered from two threads at
once). So probes and metrics answer within milliseconds whatever the load, and the memory in use
is bounded by the limits (limits.py). Every refusal is a JSON error with a 4xx status naming the
limit or field; a 500 means a bug, and its answer shows no detail.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ..data.video import DEFAULT_FRAME_RATE
from .admission import Admission, Overloaded
from .auth import CHALLENGE, OPEN_PATHS, BearerTokens
from .body import READ_CHUNK_BYTES, parse_json, read_body, too_large
from .clusters import DEFAULT_PAGE, MAX_PAGE, check_on_demand, computed_clusters, stored_clusters
from .errors import WorkflowError
from .graph import WorkflowRunner
from .index import METRICS, SearchIndex
from .inputs import MAX_INPUTS, RawInput, decode_inputs, image_bytes, query_vector, raw_inputs_from_json
from .kmeans import Clusters, kmeans
from .limits import ServeLimits
from .openapi import openapi_document
from .video import is_video_part, run_inputs, search_query, video_rate

log = logging.getLogger(__name__)

MAX_K = 1000
MAX_CLUSTERS = 1000
CLUSTER_CACHE_SIZE = 8
LOADING_RETRY_AFTER_SECONDS = 5
# An absolute path of two or more parts: load errors name model and index directories, which a
# caller has no business knowing; only the last part is shown.
_SERVER_PATH = re.compile(r"(?<![\w.:/-])/(?:[^\s'\"(),;:/]+/)+([^\s'\"(),;:/]+)")
_strict_dumps = functools.partial(json.dumps, allow_nan=False)


@dataclass(frozen=True)
class Loaded:
    runner: WorkflowRunner
    index: SearchIndex | None = None


Loader = Callable[[], Loaded]


def without_server_paths(text: str) -> str:
    return _SERVER_PATH.sub(lambda match: f".../{match.group(1)}", text)


class _State:
    def __init__(self, loader: Loader, index_expected: bool, limits: ServeLimits):
        self.loader = loader
        self.index_expected = index_expected
        self.limits = limits
        self.admission = Admission(limits.concurrency, limits.queue_depth)
        self.loaded: Loaded | None = None
        self.error: str | None = None
        self.clusters: dict[tuple[int, int], Clusters] = {}
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workflow-model")
        self.decode_threads = ThreadPoolExecutor(max_workers=limits.concurrency, thread_name_prefix="workflow-decode")

    def ready(self) -> Loaded:
        if self.loaded is None:
            raise web.HTTPServiceUnavailable(
                text=_error_json(self.error or "the models are still loading; retry when /readyz answers 200"),
                content_type="application/json", headers={"Retry-After": str(LOADING_RETRY_AFTER_SECONDS)})
        return self.loaded

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run on the model thread."""
        return await asyncio.get_running_loop().run_in_executor(self.model_thread, function, *args)

    async def decode(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run parsing and decoding on a decode thread."""
        return await asyncio.get_running_loop().run_in_executor(self.decode_threads, function, *args)


def _error_json(message: str) -> str:
    return json.dumps({"error": {"message": message}})


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=_error_json(message), content_type="application/json", headers=headers)


def _as_json(error: web.HTTPException) -> web.Response:
    """The refusal as a response; aiohttp's own (404, 405, ...) carry text/plain, the API promises JSON."""
    headers = {name: value for name, value in error.headers.items() if name.lower() not in ("content-type",
                                                                                             "content-length")}
    if error.content_type == "application/json":
        return web.Response(status=error.status, text=error.text, content_type="application/json", headers=headers)
    message = error.text if error.text and not error.text.startswith(f"{error.status}:") else error.reason
    return _error_response(error.status, message, headers)


STATE_KEY = web.AppKey("workflow_state", _State)
LOADING_KEY = web.AppKey("workflow_loading", asyncio.Task)


def create_app(loader: Loader, *, index_expected: bool = False, allowed_uri_prefixes: Sequence[str] = (),
               workflow_name: str = "", limits: ServeLimits | None = None,
               tokens: BearerTokens | None = None) -> web.Application:
    """The service; `loader` builds the runner (and index) and is called once, in a worker thread.

    With `tokens`, every route but the probes, metrics and the OpenAPI document asks for one of them.
    """
    limits = limits or ServeLimits()
    state = _State(loader, index_expected, limits)
    registry = CollectorRegistry()
    requests = Counter("deeptrain_workflow_requests", "HTTP requests answered, by route and status code.",
                       ["method", "route", "code"], registry=registry)
    latency = Histogram("deeptrain_workflow_request_duration_seconds", "Time to answer a request, by route.",
                        ["method", "route"], registry=registry,
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
    Gauge("deeptrain_workflow_requests_running", "Requests being decoded or run now.",
          registry=registry).set_function(lambda: state.admission.running)
    Gauge("deeptrain_workflow_requests_waiting", "Requests waiting for a slot.",
          registry=registry).set_function(lambda: state.admission.waiting)
    prefixes = tuple(allowed_uri_prefixes)

    @web.middleware
    async def guard(request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Authentication, JSON errors for every refusal, and the request metrics."""
        started = time.perf_counter()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        response: web.StreamResponse
        try:
            if tokens is not None and request.path not in OPEN_PATHS and \
                    not tokens.allows(request.headers.get("Authorization")):
                response = _error_response(401, "send the header `Authorization: Bearer TOKEN` with a token this "
                                                "workflow accepts", {"WWW-Authenticate": CHALLENGE})
            else:
                response = await handler(request)
        except web.HTTPException as error:
            response = _as_json(error)
        except WorkflowError as error:
            response = _error_response(error.status, str(error))
        except Overloaded as error:
            response = _error_response(503, str(error), {"Retry-After": str(error.retry_after)})
        except Exception:  # noqa: BLE001 (a bug: logged in full, answered without detail)
            log.exception("%s %s failed", request.method, request.path)
            response = _error_response(500, "the server failed to answer this request; its log has the details")
        requests.labels(request.method, route, str(response.status)).inc()
        latency.labels(request.method, route).observe(time.perf_counter() - started)
        return response

    def answer(body: dict[str, Any]) -> web.Response:
        return web.json_response(body, dumps=_strict_dumps)

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
        return web.json_response(openapi_document(workflow_name, limits, authenticated=tokens is not None))

    async def json_body(request: web.Request) -> dict[str, Any]:
        data = await read_body(request, limits.max_body_bytes)
        return await state.decode(parse_json, data, limits.max_json_depth)

    async def predict(request: web.Request) -> web.Response:
        loaded = state.ready()
        async with state.admission.slot():
            if request.content_type.startswith("multipart/"):
                raws = await _multipart_inputs(request, limits.max_body_bytes)
            else:
                body = await json_body(request)
                raws = await state.decode(raw_inputs_from_json, body, prefixes, limits.max_body_bytes)
            inputs = await state.decode(decode_inputs, raws, limits)
            outputs = await state.call(run_inputs, loaded.runner, inputs)
        return answer({"outputs": outputs, "models": _versions(loaded.runner)})

    async def search(request: web.Request) -> web.Response:
        loaded = state.ready()
        index = _index_of(loaded)
        async with state.admission.slot():
            if request.content_type.startswith("multipart/"):
                body, images = await _multipart_search(request, limits.max_body_bytes)
            else:
                body = await json_body(request)
                images = []
                if "image" in body:
                    data, name = await state.decode(image_bytes, body["image"], "image", prefixes,
                                                    limits.max_body_bytes)
                    images.append(RawInput(name=name, where="image", data=data))
                if "video" in body:
                    data, name = await state.decode(image_bytes, body["video"], "video", prefixes,
                                                    limits.max_body_bytes)
                    images.append(RawInput(name=name, where="video", data=data,
                                           video_rate=video_rate(body["video"], "video")))
            k = _bounded_int(body.get("k", 5), "k", 1, MAX_K)
            metric = body.get("metric", index.metric)
            if metric not in METRICS:
                raise WorkflowError(f"metric: {metric!r} is not one of {', '.join(METRICS)}")
            if ("vector" in body) + len(images) != 1:
                raise WorkflowError('give exactly one of "image", "video" or "vector"')
            if "vector" in body:
                query = query_vector(body["vector"], metric)
                neighbours = await state.call(index.search, query[None, :], k, metric)
                results = [{"neighbours": neighbours[0]}]
            else:
                decoded = await state.decode(decode_inputs, images, limits)
                results = await state.call(search_query, loaded.runner, index, decoded[0], k, metric)
        return answer({"metric": metric, "k": k, "index": {"size": index.size, "version": index.version},
                       "results": results})

    async def clusters(request: web.Request) -> web.Response:
        loaded = state.ready()
        index = _index_of(loaded)
        async with state.admission.slot():
            body = await json_body(request)
            offset = _bounded_int(body.get("offset", 0), "offset", 0, 2**31 - 1)
            limit = _bounded_int(body.get("limit", DEFAULT_PAGE), "limit", 1, MAX_PAGE)
            cluster = None if body.get("cluster") is None else _bounded_int(body["cluster"], "cluster", 0, MAX_CLUSTERS)
            if "k" not in body:
                return answer(await state.call(stored_clusters, index, cluster, offset, limit))
            check_on_demand(index)
            k = _bounded_int(body.get("k"), "k", 1, min(MAX_CLUSTERS, index.size))
            seed = _bounded_int(body.get("seed", 0), "seed", 0, 2**31 - 1)
            if (k, seed) not in state.clusters:
                if len(state.clusters) >= CLUSTER_CACHE_SIZE:
                    state.clusters.pop(next(iter(state.clusters)))
                state.clusters[(k, seed)] = await state.call(kmeans, index, k, seed)
            found = await state.call(computed_clusters, index, state.clusters[(k, seed)], seed, cluster, offset, limit)
        return answer(found)

    async def start_loading(app: web.Application) -> None:
        async def load() -> None:
            try:
                loaded = await state.call(state.loader)
                if state.index_expected and loaded.index is None:
                    raise WorkflowError("an index was configured but none was loaded")
                state.loaded = loaded
                log.info("workflow ready: models %s", _versions(loaded.runner))
            except Exception as error:  # noqa: BLE001 (any failure leaves the pod unready and reported)
                log.error("loading failed: %s", error)
                state.error = f"loading failed: {without_server_paths(str(error))}; the server log has the details"

        app[LOADING_KEY] = asyncio.create_task(load())

    async def stop(app: web.Application) -> None:
        app[LOADING_KEY].cancel()
        state.model_thread.shutdown(wait=False, cancel_futures=True)
        state.decode_threads.shutdown(wait=False, cancel_futures=True)

    app = web.Application(middlewares=[guard], client_max_size=limits.max_body_bytes)
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


def _index_of(loaded: Loaded) -> SearchIndex:
    if loaded.index is None:
        raise web.HTTPConflict(text=_error_json("this workflow serves no index; set spec.index and build it "
                                                "(`deeptrain index`) to search or cluster"),
                               content_type="application/json")
    return loaded.index


def _bounded_int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise WorkflowError(f"{name}: {value!r} must be an integer from {low} to {high}")
    return value


async def _multipart_parts(request: web.Request, limit: int) -> list[tuple[str, str | None, bytes]]:
    """(field name, file name, content) of each part, reading at most `limit` bytes in all."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(str(request.content_length), limit)
    parts: list[tuple[str, str | None, bytes]] = []
    total = 0
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                raise WorkflowError("the multipart body nests another multipart body; send flat form fields")
            chunks = []
            while chunk := await part.read_chunk(READ_CHUNK_BYTES):
                total += len(chunk)
                if total > limit:
                    raise too_large(f"more than {limit}", limit)
                chunks.append(chunk)
            parts.append((part.name or "", part.filename, b"".join(chunks)))
            if len(parts) > MAX_INPUTS + 2:  # the inputs, and the k and metric fields of a search
                raise WorkflowError(f"the multipart body has more than {MAX_INPUTS} parts; send at most {MAX_INPUTS} inputs")
    except WorkflowError:
        raise
    except Exception as error:  # noqa: BLE001 (aiohttp's multipart parser raises many kinds on malformed bodies)
        raise WorkflowError(f"the multipart body cannot be parsed ({type(error).__name__}); send multipart/form-data "
                           "with one part per image or text") from error
    return parts


def _text(content: bytes, where: str) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise WorkflowError(f"{where}: is not UTF-8 text") from error


async def _multipart_inputs(request: web.Request, limit: int) -> list[RawInput]:
    raws = []
    for position, (name, filename, content) in enumerate(await _multipart_parts(request, limit)):
        where = f"parts[{position}]"
        if name == "text" and not filename:
            raws.append(RawInput(name=f"text[{len(raws)}]", where=where, text=_text(content, where)))
        else:
            raws.append(RawInput(name=filename or name or f"image[{len(raws)}]", where=where, data=content,
                                 video_rate=DEFAULT_FRAME_RATE if is_video_part(name, filename) else None))
    if not raws:
        raise WorkflowError("the multipart body holds no image or text part")
    return raws


async def _multipart_search(request: web.Request, limit: int) -> tuple[dict[str, Any], list[RawInput]]:
    """The search options and the query image or video, if any (multipart: fields k/metric plus one file part)."""
    body: dict[str, Any] = {}
    images = []
    for position, (name, filename, content) in enumerate(await _multipart_parts(request, limit)):
        if filename or name in ("image", "video"):
            images.append(RawInput(name=filename or name, where=f"parts[{position}]", data=content,
                                   video_rate=DEFAULT_FRAME_RATE if is_video_part(name, filename) else None))
        elif name == "k":
            text = _text(content, "k").strip()
            body["k"] = int(text) if text.isascii() and text.isdigit() and len(text) < 10 else text
        elif name == "metric":
            body["metric"] = _text(content, "metric")
    return body, images

