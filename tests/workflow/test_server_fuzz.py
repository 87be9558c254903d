"""Fuzzing the serving API from its own OpenAPI document (schemathesis), on 127.0.0.1.

The server runs in-process on a thread of its own, with tokens, a small index and tight limits, so
that the fuzzer also meets the 413 and 503 paths. The document's examples carry a real PNG, so the
examples phase runs the models; the generated phase throws schema-shaped and broken bodies at every
route. Whatever arrives, the answer is never a 5xx (but a 503 from the queue), is JSON, and is one
the document lists, with a body matching its schema.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import requests
from aiohttp import web
from hypothesis import HealthCheck, settings
from PIL import Image

from deeptrain_trainer.workflow.auth import BearerTokens, parse_tokens
from deeptrain_trainer.workflow.graph import WorkflowRunner
from deeptrain_trainer.workflow.limits import ServeLimits
from deeptrain_trainer.workflow.models import models_dir_resolver
from deeptrain_trainer.workflow.openapi import openapi_document
from deeptrain_trainer.workflow.server import Loaded, create_app

from .conftest import embedded_index, workflow_of

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import checks  # noqa: E402

TOKEN = "fuzz-token"
LIMITS = ServeLimits(max_body_bytes=256 * 1024, max_image_pixels=1_000_000, max_request_pixels=2_000_000,
                     concurrency=1, queue_depth=4)
GRAPH = [{"id": "embed", "model": {"deepTrainingJob": "embedder"}}]
EXAMPLES_PER_ROUTE = 12
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance, checks.response_headers_conformance, checks.ignored_auth]

schema = schemathesis.openapi.from_dict(openapi_document("fuzz", LIMITS, authenticated=True))


@pytest.fixture(scope="module")
def base_url(untrained_models, tmp_path_factory) -> Iterator[str]:
    runner = WorkflowRunner(workflow_of(GRAPH), models_dir_resolver(untrained_models))
    dim = runner.predictors["embed"].embed([Image.new("RGB", (8, 8))]).shape[1]
    vectors = np.random.default_rng(0).normal(size=(12, dim)).astype(np.float32)
    index = embedded_index(tmp_path_factory.mktemp("fuzz") / "index", vectors,
                           [{"id": str(i), "input": f"{i}.png", "concepts": ["a"]} for i in range(12)], embed_node="embed")
    app = create_app(lambda: Loaded(runner, index), index_expected=True, workflow_name="fuzz", limits=LIMITS,
                     tokens=BearerTokens(parse_tokens(TOKEN)))
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}

    async def start() -> None:
        app_runner = web.AppRunner(app)
        await app_runner.setup()
        await web.TCPSite(app_runner, "127.0.0.1", 0).start()
        holder["runner"], holder["port"] = app_runner, app_runner.addresses[0][1]
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(60)
    url = f"http://127.0.0.1:{holder['port']}"
    _wait_ready(url)
    yield url
    asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(30)  # type: ignore[union-attr]
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def _wait_ready(url: str) -> None:
    for _ in range(600):
        if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError("the fuzzed server never became ready")


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
def test_the_api_answers_every_request_as_documented(case, base_url):
    response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    case.validate_response(response, checks=CHECKS)
    assert response.status_code < 500 or response.status_code == 503, response.text
