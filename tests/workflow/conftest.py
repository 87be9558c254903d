"""Fixtures for the workflow runtime tests: model directories written without training, workflows, images."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import torch
from aiohttp import web
from PIL import Image

from deeptrain_api import catalog
from deeptrain_api.trainer_contract import DatasetConfig, JobRef, TemplateScale, TrainerConfig
from deeptrain_api.workflow import Workflow
from deeptrain_trainer.artifacts import OutputDir, build_model_card, write_model
from deeptrain_trainer.tasks import task_for
from deeptrain_trainer.tasks.base import ModelSpec
from deeptrain_trainer.workflow.embedded_store import EmbeddedIndex
from deeptrain_trainer.workflow.index import IndexMeta, Rows
from deeptrain_trainer.workflow.server import Loaded, create_app

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

READY_WAIT_SECONDS = 120
TINY = TemplateScale(width=0.125, depth=0.34)
TEMPLATES = {catalog.VISUAL_DETECTOR: "InceptionV2", catalog.VISUAL_EMBEDDER: "ResNext",
             catalog.VISUAL_CLASSIFIER: "ResNext"}

ModelFactory = Callable[..., Path]


def write_untrained_model(output: Path, model_type: str, concepts: list[str], *, image_size: int = 64,
                          inference: dict[str, Any] | None = None, seed: int = 0, template: str | None = None) -> Path:
    """A model directory exactly as the trainer writes one, with freshly initialised weights."""
    template = template or TEMPLATES[model_type]
    hyperparameters = catalog.resolve_hyperparameters(model_type, {"batch_size": 8, "image_size": image_size})
    config = TrainerConfig(job=JobRef(name=output.name), modelType=model_type, template=template, templateScale=TINY,
                           hyperparameters=hyperparameters, dataset=DatasetConfig(uri="unused", format="imagefolder"),
                           outputUri=output.as_uri())
    task = task_for(model_type)
    spec = ModelSpec.from_config(config, concepts)
    torch.manual_seed(seed)
    model = task.build_model(spec)
    card = build_model_card(config=config, concepts=concepts, input_spec=task.input_spec(spec, None), metrics={},
                            evaluation={}, inference=inference or {}, lineage={}, created="2024-01-01T00:00:00Z")
    write_model(OutputDir(output.as_uri()), model.state_dict(), card)
    return output


@pytest.fixture(scope="session")
def untrained_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory: `detector` (finds boxes everywhere: threshold 0), `embedder`, `classifier`."""
    root = tmp_path_factory.mktemp("models")
    write_untrained_model(root / "detector", catalog.VISUAL_DETECTOR, ["circle", "square"],
                          inference={"detection_score_threshold": 0.0})
    write_untrained_model(root / "embedder", catalog.VISUAL_EMBEDDER, ["circle", "square"], image_size=32)
    write_untrained_model(root / "classifier", catalog.VISUAL_CLASSIFIER, ["circle", "square"], image_size=32)
    return root


@pytest.fixture
def milvus_lite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Milvus Lite in this test's folder (the client starts it on first use), stopped when the test ends."""
    from milvus_lite.server_manager import server_manager_instance

    from deeptrain_api.workflow_contract import ENV_MILVUS_URI

    monkeypatch.setenv(ENV_MILVUS_URI, str(tmp_path / "milvus.db"))
    yield tmp_path / "milvus.db"
    server_manager_instance.release_all()


def embedded_index(directory: Path, vectors: np.ndarray, items: list[dict[str, Any]], **meta: Any) -> EmbeddedIndex:
    """An embedded index of these rows (ids from the items), committed to `directory`."""
    index = EmbeddedIndex.create(directory, IndexMeta(**meta))
    index.add(Rows(ids=[item["id"] for item in items], vectors=vectors, items=items))
    index.commit()
    return index


def workflow_of(nodes: list[dict[str, Any]], *, name: str = "graph", **spec: Any) -> Workflow:
    return Workflow.model_validate({"metadata": {"name": name}, "spec": {"nodes": nodes, **spec}})


CROP_GRAPH = [
    {"id": "detect", "model": {"deepTrainingJob": "detector"}},
    {"id": "crop", "model": {"builtin": "image-crop", "params": {"margin": 1.1}}, "inputs": ["detect"]},
    {"id": "embed", "model": {"deepTrainingJob": "embedder"}, "inputs": ["crop"]},
]


def noise_image(width: int, height: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def b64(image: Image.Image) -> str:
    return base64.b64encode(png_bytes(image)).decode()


@contextlib.asynccontextmanager
async def serving(loader: Callable[[], Loaded], **options) -> AsyncIterator[str]:
    runner = web.AppRunner(create_app(loader, **options))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def wait_ready(session: aiohttp.ClientSession, base: str) -> dict:
    for _ in range(READY_WAIT_SECONDS * 10):
        async with session.get(f"{base}/readyz") as response:
            if response.status == 200:
                return await response.json()
        await asyncio.sleep(0.1)
    raise AssertionError("the service never became ready")
