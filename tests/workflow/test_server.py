"""The workflow HTTP service on 127.0.0.1: predict, search, clusters, probes, metrics and its OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading

import aiohttp
import numpy as np
import pytest
import yaml

from deeptrain_trainer.workflow.embedded_store import EmbeddedIndex
from deeptrain_trainer.workflow.graph import GraphInput, WorkflowRunner
from deeptrain_trainer.workflow.index import IndexMeta, Rows
from deeptrain_trainer.workflow.kmeans import store_clusters
from deeptrain_trainer.workflow.models import models_dir_resolver
from deeptrain_trainer.workflow.server import Loaded

from .conftest import (
    CROP_GRAPH,
    READY_WAIT_SECONDS,
    b64,
    noise_image,
    png_bytes,
    serving,
    wait_ready,
    workflow_of,
)


@pytest.fixture(scope="module")
def crop_runner(untrained_models) -> WorkflowRunner:
    return WorkflowRunner(workflow_of(CROP_GRAPH), models_dir_resolver(untrained_models))


@pytest.fixture(scope="module")
def crop_index(crop_runner, tmp_path_factory) -> EmbeddedIndex:
    """Rows embedding the regions of a few noise images, two concepts alternating."""
    outputs = crop_runner.run([GraphInput(name=f"/data/{i}.png", image=noise_image(64, 64, i)) for i in range(4)])
    vectors, items = [], []
    for output in outputs:
        for position, entry in enumerate(output["nodes"]["embed"]):
            vectors.append(entry["embedding"])
            items.append({"id": f"{output['input']}#{position}", "input": output["input"],
                          "concepts": [("circle", "square")[len(items) % 2]], "region": entry["region"]})
    index = EmbeddedIndex.create(tmp_path_factory.mktemp("crop") / "index", IndexMeta(embed_node="embed"))
    index.add(Rows(ids=[item["id"] for item in items], vectors=np.asarray(vectors, dtype=np.float32), items=items))
    index.commit()
    store_clusters(index, 3)
    index.commit()
    return index


def stored_row(index: EmbeddedIndex, position: int) -> tuple[list[float], dict]:
    rows = next(index.iter_rows(position + 1))
    return rows.vectors[position].tolist(), rows.items[position]


async def test_probes_follow_loading_and_predict_matches_the_runner(crop_runner):
    release = threading.Event()

    def slow_loader() -> Loaded:
        release.wait()
        return Loaded(crop_runner)

    image = noise_image(80, 60, 7)
    async with serving(slow_loader) as base, aiohttp.ClientSession() as session:
        async with session.get(f"{base}/healthz") as response:
            assert response.status == 200
        async with session.get(f"{base}/readyz") as response:
            assert response.status == 503
        async with session.post(f"{base}/v1/predict", json={"inputs": [{"image": {"base64": b64(image)}}]}) as response:
            assert response.status == 503
        release.set()
        ready = await wait_ready(session, base)
        assert set(ready["models"]) == {"detect", "embed"}

        async with session.post(f"{base}/v1/predict", json={"inputs": [{"image": {"base64": b64(image)}}]}) as response:
            assert response.status == 200
            body = await response.json()
    expected = crop_runner.run([GraphInput(name="inputs[0].image", image=image)])
    assert body["outputs"] == expected
    assert body["models"] == ready["models"]


async def test_multipart_predict_names_outputs_by_file(crop_runner):
    form = aiohttp.FormData()
    form.add_field("image", png_bytes(noise_image(64, 64, 1)), filename="first.png", content_type="image/png")
    form.add_field("image", png_bytes(noise_image(64, 64, 2)), filename="second.png", content_type="image/png")
    async with serving(lambda: Loaded(crop_runner)) as base, aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        async with session.post(f"{base}/v1/predict", data=form) as response:
            assert response.status == 200
            body = await response.json()
    assert [output["input"] for output in body["outputs"]] == ["first.png", "second.png"]
    assert all(set(output["nodes"]) == {"detect", "crop", "embed"} for output in body["outputs"])


async def test_bad_inputs_are_400_naming_the_field(crop_runner, tmp_path):
    image_path = tmp_path / "allowed" / "a.png"
    image_path.parent.mkdir()
    noise_image(64, 64, 3).save(image_path)
    async with serving(lambda: Loaded(crop_runner), allowed_uri_prefixes=[str(tmp_path / "allowed")]) as base, \
            aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        cases = [
            ({"inputs": [{"image": {"base64": "not base64!"}}]}, "inputs[0].image.base64"),
            ({"inputs": [{"image": {"uri": "/etc/passwd"}}]}, "outside the locations"),
            ({"inputs": [{"text": "hello"}]}, "image inputs"),
            ({"inputs": [{"image": {"base64": b64(noise_image(8, 8, 0))}}] * 33}, "at most 32"),
            ({"images": []}, "inputs"),
        ]
        for body, message in cases:
            async with session.post(f"{base}/v1/predict", json=body) as response:
                assert response.status == 400, body
                assert message in (await response.json())["error"]["message"]
        async with session.post(f"{base}/v1/predict", json={"inputs": [{"image": {"uri": str(image_path)}}]}) as response:
            assert response.status == 200
            assert (await response.json())["outputs"][0]["input"] == str(image_path)


async def test_search_by_vector_and_by_image(crop_runner, crop_index):
    async with serving(lambda: Loaded(crop_runner, crop_index), index_expected=True) as base, \
            aiohttp.ClientSession() as session:
        ready = await wait_ready(session, base)
        assert ready["index"] == {"size": crop_index.size, "version": crop_index.version}
        stored, item = stored_row(crop_index, 3)
        async with session.post(f"{base}/v1/search", json={"vector": stored, "k": 3}) as response:
            assert response.status == 200
            body = await response.json()
        neighbours = body["results"][0]["neighbours"]
        assert neighbours[0]["id"] == item["id"] and neighbours[0]["score"] == pytest.approx(1.0, abs=1e-4)
        assert [n["distance"] for n in neighbours] == sorted(n["distance"] for n in neighbours) and len(neighbours) == 3

        image = noise_image(64, 64, 2)  # one of the indexed images: each of its regions finds itself first
        async with session.post(f"{base}/v1/search", json={"image": {"base64": b64(image)}, "k": 2}) as response:
            assert response.status == 200
            body = await response.json()
        assert body["results"], "the detector with threshold 0 finds regions"
        for result in body["results"]:
            assert result["neighbours"][0]["input"] == "/data/2.png"
            assert result["neighbours"][0]["region"]["box"] == pytest.approx(result["region"]["box"], abs=1e-3)

        async with session.post(f"{base}/v1/search", json={"vector": [1.0, 2.0], "k": 3}) as response:
            assert response.status == 400
            assert "dimensions" in (await response.json())["error"]["message"]


async def test_clusters_cover_the_index(crop_runner, crop_index):
    async with serving(lambda: Loaded(crop_runner, crop_index), index_expected=True) as base, \
            aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        async with session.post(f"{base}/v1/clusters", json={"k": 2, "limit": 1000}) as response:
            assert response.status == 200
            body = await response.json()
        assert len(body["clusters"]) == 2
        members = [member for cluster in body["clusters"] for member in cluster["members"]]
        all_ids = sorted(row_id for rows in crop_index.iter_rows(100) for row_id in rows.ids)
        assert sorted(members) == all_ids
        assert sum(sum(cluster["concepts"].values()) for cluster in body["clusters"]) == crop_index.size
        async with session.post(f"{base}/v1/clusters", json={"k": crop_index.size + 1}) as response:
            assert response.status == 400

        # The clusters stored with the index, one page of members at a time.
        async with session.post(f"{base}/v1/clusters", json={}) as response:
            assert response.status == 200
            stored = await response.json()
        assert stored["k"] == 3 and sum(cluster["size"] for cluster in stored["clusters"]) == crop_index.size
        biggest = max(stored["clusters"], key=lambda cluster: cluster["size"])
        paged: list[str] = []
        for offset in range(0, biggest["size"] + 2, 2):
            async with session.post(f"{base}/v1/clusters",
                                    json={"cluster": biggest["id"], "offset": offset, "limit": 2}) as response:
                page = (await response.json())["clusters"]
            assert len(page) == 1 and len(page[0]["members"]) <= 2
            paged += page[0]["members"]
        assert paged == sorted(paged) and len(set(paged)) == biggest["size"]


async def test_search_without_an_index_is_a_conflict(crop_runner):
    async with serving(lambda: Loaded(crop_runner)) as base, aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        async with session.post(f"{base}/v1/search", json={"vector": [0.0], "k": 1}) as response:
            assert response.status == 409
            assert "spec.index" in (await response.json())["error"]["message"]


async def test_a_failed_load_fails_liveness_and_readiness():
    def broken() -> Loaded:
        raise FileNotFoundError("no model.json in /models/detector")

    async with serving(broken) as base, aiohttp.ClientSession() as session:
        for _ in range(READY_WAIT_SECONDS * 10):
            async with session.get(f"{base}/healthz") as response:
                if response.status == 500:
                    assert "no model.json" in (await response.json())["error"]
                    break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("liveness never reported the failed load")
        async with session.get(f"{base}/readyz") as response:
            assert response.status == 503


async def test_metrics_count_requests_and_time_them(crop_runner):
    async with serving(lambda: Loaded(crop_runner)) as base, aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        for _ in range(2):
            async with session.post(f"{base}/v1/predict", json={"inputs": [{"image": {"base64": b64(noise_image(32, 32, 0))}}]}):
                pass
        async with session.post(f"{base}/v1/predict", json={"nope": 1}):
            pass
        async with session.get(f"{base}/metrics") as response:
            assert response.status == 200 and response.content_type == "text/plain"
            text = await response.text()
    assert 'deeptrain_workflow_requests_total{code="200",method="POST",route="/v1/predict"} 2.0' in text
    assert 'deeptrain_workflow_requests_total{code="400",method="POST",route="/v1/predict"} 1.0' in text
    assert 'deeptrain_workflow_request_duration_seconds_count{method="POST",route="/v1/predict"} 3.0' in text
    assert 'deeptrain_workflow_request_duration_seconds_bucket{le="+Inf",method="POST",route="/v1/predict"} 3.0' in text


async def test_openapi_document_is_valid_and_lists_the_routes(crop_runner):
    validator = pytest.importorskip("openapi_spec_validator")
    async with serving(lambda: Loaded(crop_runner), workflow_name="shoe-search") as base, \
            aiohttp.ClientSession() as session:
        async with session.get(f"{base}/openapi.json") as response:
            document = await response.json()
    validator.validate(document)
    assert document["openapi"].startswith("3.")
    assert {"/v1/predict", "/v1/search", "/v1/clusters", "/healthz", "/readyz", "/metrics"} <= set(document["paths"])
    assert "shoe-search" in document["info"]["title"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_the_entrypoint_serves_a_workflow_file_with_pinned_and_folder_models(untrained_models, tmp_path):
    manifest = tmp_path / "workflow.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "deeptrain.dev/v1alpha1", "kind": "Workflow",
                                        "metadata": {"name": "shapes"}, "spec": {"nodes": CROP_GRAPH}}))
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "DEEPTRAIN_WORKFLOW_MODELS": json.dumps({"embed": str(untrained_models / "embedder")})}
    process = subprocess.Popen(
        [sys.executable, "-m", "deeptrain_trainer.serve", "--workflow", str(manifest), "--models",
         str(untrained_models / "missing"), "--model", f"detect={untrained_models / 'detector'}",
         "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(READY_WAIT_SECONDS * 10):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                        if response.status == 200:
                            ready = await response.json()
                            break
                except aiohttp.ClientConnectionError:
                    pass  # not listening yet
                assert process.poll() is None, process.stdout.read().decode()
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the service never became ready")
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert set(ready["models"]) == {"detect", "embed"}
