"""The serving process under abuse: oversized images and bodies, deep JSON, non-finite vectors, floods, tokens.

Each case is the request a user sent that once took the server down or answered wrongly; here each
gets a 4xx JSON error naming the limit or field, /healthz keeps answering within a second, and no
answer shows where the server keeps its files.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import threading
import time
import zlib
from pathlib import Path

import aiohttp
import numpy as np
import psutil
import pytest
import yaml
from PIL import Image

from deeptrain_trainer import serve
from deeptrain_trainer.workflow.auth import BearerTokens, parse_tokens
from deeptrain_trainer.workflow.embedded_store import EmbeddedIndex
from deeptrain_trainer.workflow.graph import WorkflowRunner
from deeptrain_trainer.workflow.limits import ServeLimits, env_name
from deeptrain_trainer.workflow.models import models_dir_resolver
from deeptrain_trainer.workflow.openapi import openapi_document
from deeptrain_trainer.workflow.server import Loaded

from .conftest import b64, embedded_index, noise_image, png_bytes, serving, wait_ready, workflow_of

README = Path(__file__).resolve().parents[2] / "README.md"
CLASSIFY = [{"id": "classify", "model": {"deepTrainingJob": "classifier"}}]
HEALTH_BUDGET_SECONDS = 1.0


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries almost no pixel data: only its header is ever read."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def b64_bytes(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def classifier(untrained_models) -> WorkflowRunner:
    return WorkflowRunner(workflow_of(CLASSIFY), models_dir_resolver(untrained_models))


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    """A real 10000x10000 PNG (one bit per pixel, so that making it is quick): 300 MB once decoded to RGB."""
    return png_bytes(Image.new("1", (10_000, 10_000), 1))


class HealthWatch:
    """Polls /healthz while a request runs; records the slowest answer."""

    def __init__(self, session: aiohttp.ClientSession, base: str):
        self.session, self.base, self.slowest, self.answers = session, base, 0.0, 0
        self._task: asyncio.Task | None = None

    async def _poll(self) -> None:
        while True:
            started = time.perf_counter()
            async with self.session.get(f"{self.base}/healthz") as response:
                assert response.status == 200
            self.slowest = max(self.slowest, time.perf_counter() - started)
            self.answers += 1
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> HealthWatch:
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


class PeakRss:
    """The largest growth of this process's resident memory while the block runs."""

    def __init__(self) -> None:
        self.process, self.growth, self._stop = psutil.Process(), 0, threading.Event()

    def _sample(self, baseline: int) -> None:
        while not self._stop.is_set():
            self.growth = max(self.growth, self.process.memory_info().rss - baseline)
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self._thread = threading.Thread(target=self._sample, args=(self.process.memory_info().rss,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def error_of(response: aiohttp.ClientResponse, status: int) -> str:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return (await response.json())["error"]["message"]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own, lower threshold
async def test_eight_huge_pngs_are_refused_from_their_headers_and_health_keeps_answering(classifier, huge_png):
    body = {"inputs": [{"image": {"base64": b64_bytes(huge_png)}}] * 8}
    async with serving(lambda: Loaded(classifier)) as base, aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        with PeakRss() as rss:
            async with HealthWatch(session, base) as health:
                async with session.post(f"{base}/v1/predict", json=body) as response:
                    message = await error_of(response, 413)
        assert "800,000,000 pixels" in message and "max_request_pixels" in message
        assert health.slowest < HEALTH_BUDGET_SECONDS
        assert rss.growth < 250 * 2**20, f"grew {rss.growth / 2**20:.0f} MiB: pixels were decoded"


async def test_a_large_image_is_decoded_off_the_event_loop(classifier):
    image = Image.new("RGB", (4000, 3000), (200, 30, 30))
    async with serving(lambda: Loaded(classifier)) as base, aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        async with HealthWatch(session, base) as health:
            async with session.post(f"{base}/v1/predict", json={"inputs": [{"image": {"base64": b64(image)}}]}) as response:
                assert response.status == 200
                assert (await response.json())["outputs"][0]["nodes"]["classify"]
        assert health.answers >= 2 and health.slowest < HEALTH_BUDGET_SECONDS


async def test_one_image_over_the_pixel_limit_is_413_naming_the_limit(classifier):
    huge = png_header_only(20_000, 20_000)
    form = aiohttp.FormData()
    form.add_field("image", huge, filename="huge.png", content_type="image/png")
    async with serving(lambda: Loaded(classifier)) as base, aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        async with session.post(f"{base}/v1/predict", json={"inputs": [{"image": {"base64": b64_bytes(huge)}}]}) as response:
            message = await error_of(response, 413)
        assert "inputs[0].image" in message and "400,000,000" in message and "100,000,000" in message
        assert "max_image_pixels" in message
        async with session.post(f"{base}/v1/predict", data=form) as response:
            assert "max_image_pixels" in await error_of(response, 413)


async def test_deep_json_and_non_json_numbers_are_400(classifier, crop_free_index):
    async with serving(lambda: Loaded(classifier, crop_free_index), index_expected=True) as base, \
            aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        deep = '{"inputs":' + "[" * 100_000 + "]" * 100_000 + "}"
        async with session.post(f"{base}/v1/predict", data=deep, headers={"Content-Type": "application/json"}) as response:
            assert "max_json_depth" in await error_of(response, 400)
        dims = crop_free_index.dim
        for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
            vector = "[" + ", ".join([literal] + ["0.5"] * (dims - 1)) + "]"
            async with session.post(f"{base}/v1/search", data=f'{{"vector": {vector}}}',
                                    headers={"Content-Type": "application/json"}) as response:
                assert "finite" in await error_of(response, 400)
        for vector, words in (([1e30] * dims, "float32"), ([0.0] * dims, "zeros")):
            async with session.post(f"{base}/v1/search", json={"vector": vector}) as response:
                assert words in await error_of(response, 422)
        async with session.post(f"{base}/v1/search", json={"vector": next(crop_free_index.iter_rows(1)).vectors[0].tolist(),
                                                           "metric": "euclidean"}) as response:
            assert response.status == 200
            assert "NaN" not in await response.text()


@pytest.fixture(scope="module")
def crop_free_index(tmp_path_factory) -> EmbeddedIndex:
    vectors = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    return embedded_index(tmp_path_factory.mktemp("crop-free") / "index", vectors,
                          [{"id": str(i), "input": f"{i}.png"} for i in range(6)], embed_node="classify")


async def raw_post(base: str, path: str, declared: int, sent: bytes) -> tuple[int, dict, bytes]:
    """POST that declares `declared` bytes but sends only `sent`: what a client uploading 70 MB meets first."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {declared}\r\n\r\n".encode() + sent)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    body = await reader.readexactly(int(headers["Content-Length"]))
    writer.close()
    return int(lines[0].split()[1]), headers, body


async def test_a_body_over_the_limit_is_a_json_413_declared_or_streamed(classifier):
    async with serving(lambda: Loaded(classifier)) as base, aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        status, headers, body = await raw_post(base, "/v1/predict", 70 * 2**20, b"{" + b" " * 2**20)
        assert status == 413 and headers["Content-Type"].startswith("application/json")
        message = json.loads(body)["error"]["message"]
        assert str(64 * 2**20) in message and "max_body_bytes" in message

    async def stream():
        for _ in range(40):
            yield b" " * 2**16

    async with serving(lambda: Loaded(classifier), limits=ServeLimits(max_body_bytes=2**20)) as base, \
            aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        async with session.post(f"{base}/v1/predict", data=stream(),
                                headers={"Content-Type": "application/json"}) as response:
            assert "max_body_bytes" in await error_of(response, 413)


async def test_images_read_by_uri_share_one_body_s_worth_of_bytes(classifier, tmp_path):
    paths = []
    for seed in range(3):
        paths.append(tmp_path / f"{seed}.png")
        paths[-1].write_bytes(png_bytes(noise_image(64, 64, seed)))
    each = paths[0].stat().st_size
    limits = ServeLimits(max_body_bytes=int(each * 2.5))
    async with serving(lambda: Loaded(classifier), allowed_uri_prefixes=[str(tmp_path)], limits=limits) as base, \
            aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        two = {"inputs": [{"image": {"uri": str(path)}} for path in paths[:2]]}
        async with session.post(f"{base}/v1/predict", json=two) as response:
            assert response.status == 200
        three = {"inputs": [{"image": {"uri": str(path)}} for path in paths]}
        async with session.post(f"{base}/v1/predict", json=three) as response:
            message = await error_of(response, 413)
        assert message.startswith("inputs[2].image.uri") and "max_body_bytes" in message


class GatedRunner:
    """The real runner, held at a gate: requests stay in flight until the test opens it."""

    def __init__(self, runner: WorkflowRunner):
        self.runner, self.gate, self.entered = runner, threading.Event(), threading.Semaphore(0)

    def run(self, inputs):
        self.entered.release()
        self.gate.wait(timeout=60)
        return self.runner.run(inputs)

    def model_versions(self):
        return self.runner.model_versions()


async def test_a_full_queue_answers_503_with_retry_after_while_health_answers(classifier):
    gated = GatedRunner(classifier)
    body = {"inputs": [{"image": {"base64": b64(noise_image(32, 32, 0))}}]}
    async with serving(lambda: Loaded(gated), limits=ServeLimits(concurrency=1, queue_depth=2)) as base, \
            aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        admitted = [asyncio.create_task(session.post(f"{base}/v1/predict", json=body)) for _ in range(3)]
        await asyncio.get_running_loop().run_in_executor(None, gated.entered.acquire)  # one runs, two wait
        for _ in range(50):
            async with session.get(f"{base}/metrics") as response:
                if "deeptrain_workflow_requests_waiting 2.0" in await response.text():
                    break
            await asyncio.sleep(0.05)
        async with HealthWatch(session, base) as health:
            async with session.post(f"{base}/v1/predict", json=body) as response:
                assert "busy" in await error_of(response, 503)
                assert int(response.headers["Retry-After"]) >= 1
            await asyncio.sleep(0.3)
        assert health.slowest < HEALTH_BUDGET_SECONDS
        gated.gate.set()
        for task in admitted:
            response = await task
            assert response.status == 200
            response.release()


async def test_no_answer_shows_server_paths(classifier, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()

    def broken() -> Loaded:
        raise FileNotFoundError(f"no model.json in {tmp_path}/models/detector")

    async with serving(broken) as base, aiohttp.ClientSession() as session:
        for _ in range(100):
            async with session.get(f"{base}/healthz") as response:
                if response.status == 500:
                    text = await response.text()
                    break
            await asyncio.sleep(0.05)
        assert "no model.json" in text and str(tmp_path) not in text and "detector" in text
        async with session.get(f"{base}/readyz") as response:
            assert str(tmp_path) not in await response.text()
    async with serving(lambda: Loaded(classifier), allowed_uri_prefixes=[str(allowed)]) as base, \
            aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        for uri in ("/etc/passwd", f"{allowed}-sibling/a.png", f"{allowed}/../secret.png"):
            async with session.post(f"{base}/v1/predict", json={"inputs": [{"image": {"uri": uri}}]}) as response:
                message = await error_of(response, 400)
            assert "outside the locations" in message and str(allowed) not in message.replace(uri, "")
        async with session.post(f"{base}/v1/predict", json={"inputs": [{"image": {"uri": f"{allowed}/missing.png"}}]}) as response:
            assert "no file" in await error_of(response, 422)
        async with session.get(f"{base}/nowhere") as response:
            await error_of(response, 404)
        async with session.get(f"{base}/v1/predict") as response:
            await error_of(response, 405)


async def test_bearer_tokens_guard_the_api_but_not_probes_or_metrics(classifier):
    tokens = BearerTokens(parse_tokens("first-token, second-token\n"))
    body = {"inputs": [{"image": {"base64": b64(noise_image(32, 32, 1))}}]}
    async with serving(lambda: Loaded(classifier), tokens=tokens) as base, aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            async with session.get(f"{base}{path}") as response:
                assert response.status == 200, path
        for header in (None, "Bearer wrong", "Basic second-token", "Bearer second-token-and-more", "Bearer "):
            headers = {"Authorization": header} if header else {}
            async with session.post(f"{base}/v1/predict", json=body, headers=headers) as response:
                assert "Authorization: Bearer" in await error_of(response, 401)
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
        async with session.post(f"{base}/v1/predict", json=body, headers={"Authorization": "Bearer second-token"}) as response:
            assert response.status == 200
        async with session.get(f"{base}/openapi.json") as response:
            document = await response.json()
    assert document["security"] == [{"bearer": []}]
    assert document["paths"]["/healthz"]["get"]["security"] == []


def test_the_server_listens_on_loopback_unless_told_and_refuses_empty_tokens(tmp_path, monkeypatch, capsys):
    manifest = tmp_path / "workflow.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "deeptrain.dev/v1alpha1", "kind": "Workflow",
                                        "metadata": {"name": "w"}, "spec": {"nodes": CLASSIFY}}))
    monkeypatch.delenv("DEEPTRAIN_SERVE_HOST", raising=False)
    assert serve.parse_args(["--workflow", str(manifest)]).host == "127.0.0.1"
    monkeypatch.setenv("DEEPTRAIN_SERVE_HOST", "0.0.0.0")
    assert serve.parse_args(["--workflow", str(manifest)]).host == "0.0.0.0"
    assert serve.parse_args(["--workflow", str(manifest), "--host", "::1"]).host == "::1"
    monkeypatch.setenv(env_name("queue_depth"), "3")
    args = serve.parse_args(["--workflow", str(manifest), "--concurrency", "4"])
    assert (args.queue_depth, args.concurrency) == (3, 4)
    monkeypatch.setenv("DEEPTRAIN_SERVE_TOKENS", " , ")
    assert serve.main(["--workflow", str(manifest)]) == 2
    assert "holds no token" in capsys.readouterr().err
    monkeypatch.delenv("DEEPTRAIN_SERVE_TOKENS")
    assert serve.main(["--workflow", str(manifest), "--max-image-pixels", "0"]) == 2
    assert "--max-image-pixels" in capsys.readouterr().err


def test_every_limit_is_documented_in_the_openapi_document_and_the_readme():
    validator = pytest.importorskip("openapi_spec_validator")
    limits = ServeLimits(max_body_bytes=5000, queue_depth=7)
    document = openapi_document("w", limits, authenticated=True)
    validator.validate(document)
    assert document["info"]["x-deeptrain-limits"] == limits.describe()
    for route in ("/v1/predict", "/v1/search", "/v1/clusters"):
        assert {"401", "413", "503"} <= set(document["paths"][route]["post"]["responses"])
    assert {"401", "413", "422", "503"} <= set(document["paths"]["/v1/predict"]["post"]["responses"])
    assert "5000" in document["paths"]["/v1/predict"]["post"]["responses"]["413"]["description"]
    readme_rows = {line.split("`")[3]: line for line in README.read_text().splitlines()
                   if line.startswith("| `--") and "DEEPTRAIN_SERVE_" in line}
    described = openapi_document("w")["info"]["description"]
    for name, value in ServeLimits().describe().items():
        assert f"| {value}" in readme_rows[env_name(name)], f"README's default for {name}"
        assert f"`{name}` = {value} ({env_name(name)})" in described
