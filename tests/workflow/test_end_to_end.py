"""End to end on this machine: train a detector and an embedder with torchrun, wire them into a
detector -> crop -> embedder workflow, run it locally and over HTTP, index a dataset and search it.

Data: the shapes-detection example (circles, squares, triangles on photographic textures). Scenes
1-250 train both models (the embedder on crops of their annotated boxes) and are indexed; scenes
251-300 are held out as queries. Every detected region of a held-out scene that overlaps an
annotated shape (IoU >= 0.5) is a query; its precision@5 is the share of its 5 nearest indexed
regions whose annotated shape is the same. Guessing scores 1/3; the bar is 0.6 (a run here scored 0.79 over 161 queries).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import yaml
from aiohttp import web
from PIL import Image
from typer.testing import CliRunner

from deeptrain_api import catalog
from deeptrain_api.trainer_contract import DatasetConfig, JobRef, TemplateScale, TrainerConfig
from deeptrain_cli.main import app as cli
from deeptrain_trainer.datasets import make_dataset
from deeptrain_trainer.launcher import run_local
from deeptrain_trainer.workflow.commands import index_dataset, open_runner
from deeptrain_trainer.workflow.indexing import known_concepts, read_dataset
from deeptrain_trainer.workflow.kmeans import kmeans
from deeptrain_trainer.workflow.search import search_by_image
from deeptrain_trainer.workflow.server import Loaded, create_app
from deeptrain_trainer.workflow.stores import open_index

pytestmark = pytest.mark.torchrun

SCENES = 300
TRAIN_SCENES = 250
PRECISION_BAR = 0.6
K = 5
SMALL = TemplateScale(width=0.25, depth=0.34)
CROP_MARGIN = 1.1


def coco_subset(source: Path, target: Path, image_ids: range) -> Path:
    document = json.loads(source.read_text())
    wanted = set(image_ids)
    document["images"] = [image for image in document["images"] if image["id"] in wanted]
    document["annotations"] = [a for a in document["annotations"] if a["image_id"] in wanted]
    target.write_text(json.dumps(document))
    return target


def write_box_crops(coco: Path, output: Path) -> Path:
    """imagefolder of every annotated box, cut as the workflow's image-crop node cuts (margin 1.1)."""
    from deeptrain_trainer.workflow.crop import crop_region

    for record in read_dataset(str(coco), "coco"):
        image = Image.open(record.uri).convert("RGB")
        for position, ((x1, y1, x2, y2), concept) in enumerate(zip(record.boxes, record.box_concepts, strict=True)):
            box = {"top_row": y1, "left_col": x1, "bottom_row": y2, "right_col": x2}
            crop, _ = crop_region(image, box, CROP_MARGIN)
            (output / concept).mkdir(parents=True, exist_ok=True)
            crop.save(output / concept / f"{Path(record.uri).stem}-{position}.png")
    return output


def train(output: Path, dataset: Path, dataset_format: str, model_type: str, template: str,
          **hyperparameters: Any) -> Path:
    config = TrainerConfig(job=JobRef(name=output.name, namespace="local"), modelType=model_type, template=template,
                           templateScale=SMALL,
                           hyperparameters=catalog.resolve_hyperparameters(model_type, hyperparameters),
                           dataset=DatasetConfig(uri=str(dataset), format=dataset_format, validation_fraction=0.2),
                           outputUri=output.as_uri())
    assert run_local(config, nproc=2) == 0
    return output


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    os.environ["DEEPTRAIN_REPORT"] = "none"
    root = tmp_path_factory.mktemp("end-to-end")
    data = root / "shapes"
    make_dataset("shapes-detection", data, limit=SCENES)
    train_coco = coco_subset(data / "annotations.json", data / "train.json", range(1, TRAIN_SCENES + 1))
    heldout = coco_subset(data / "annotations.json", data / "heldout.json", range(TRAIN_SCENES + 1, SCENES + 1))
    crops = write_box_crops(train_coco, root / "crops")
    models = root / "models"
    train(models / "shapes-detector", train_coco, "coco", catalog.VISUAL_DETECTOR, "InceptionV2",
          batch_size=16, image_size=96, num_epochs=10, lrate=0.01, test_freq=10)
    train(models / "shapes-embedder", crops, "imagefolder", catalog.VISUAL_EMBEDDER, "ResNext",
          batch_size=32, image_size=32, num_epochs=4, lrate=0.02, test_freq=4)
    workflow = yaml.safe_load(Path(__file__).parents[2].joinpath("examples", "workflow.yaml").read_text())
    workflow["spec"]["index"]["dataset"] = {"uri": train_coco.as_uri(), "format": "coco"}
    manifest = root / "workflow.yaml"
    manifest.write_text(yaml.safe_dump(workflow))
    return {"models": models, "workflow": manifest, "heldout": heldout}


def precision_at_k(results_by_record: list[tuple[Any, list[dict[str, Any]]]]) -> tuple[float, int]:
    hits = total = 0
    for record, results in results_by_record:
        for result in results:
            truth = known_concepts(record, result["region"])
            if not truth:
                continue  # a region that is not an annotated shape has no right answer
            hits += sum(neighbour["concepts"] == truth for neighbour in result["neighbours"])
            total += len(result["neighbours"])
    return hits / max(total, 1), total // K


async def test_train_index_and_search_visually_locally_and_over_http(trained, tmp_path):
    models, manifest = trained["models"], trained["workflow"]
    heldout = read_dataset(str(trained["heldout"]), "coco")

    # `deeptrain index`: spec.index.dataset through detector -> crop -> embedder, saved beside the models.
    index, written = index_dataset(manifest, models)
    assert written == str(models / "index") and index.embed_node == "embed"
    described = json.loads((Path(written) / "index.json").read_text())
    assert set(described["models"]) == {"detect", "embed"} and described["size"] == index.size
    items = [item for rows in index.iter_rows(1000) for item in rows.items]
    labelled = sum(bool(item["concepts"]) for item in items)
    assert labelled >= 0.8 * index.size, "most indexed regions are annotated shapes: the detector finds them"

    runner = open_runner(manifest, models, ())
    loaded_index = open_index(written)
    local = [(record, search_by_image(runner, loaded_index, Image.open(record.uri), K)) for record in heldout]
    precision, queries = precision_at_k(local)
    assert queries >= 40, f"only {queries} held-out shapes were detected"
    assert precision >= PRECISION_BAR, f"precision@{K} {precision:.2f} over {queries} queries (chance 0.33)"

    # `deeptrain workflow run` and `deeptrain search` print the same graph output and neighbours.
    first = heldout[0].uri
    shell = CliRunner()
    ran = shell.invoke(cli, ["workflow", "run", str(manifest), first, "--models", str(models)])
    assert ran.exit_code == 0, ran.output
    graph_output = json.loads(ran.stdout)[0]
    regions = graph_output["nodes"]["detect"][0]["regions"]
    assert len(graph_output["nodes"]["crop"]) == len(graph_output["nodes"]["embed"]) == len(regions) > 0
    searched = shell.invoke(cli, ["search", first, "--workflow", str(manifest), "--models", str(models),
                                  "--index", written, "-k", str(K)])
    assert searched.exit_code == 0, searched.output
    assert json.loads(searched.stdout) == local[0][1]

    # The HTTP service answers as the local runtime does.
    app = web.AppRunner(create_app(lambda: Loaded(runner, loaded_index), index_expected=True))
    await app.setup()
    site = web.TCPSite(app, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{app.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                async with session.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.1)
            image = {"base64": base64.b64encode(Path(first).read_bytes()).decode()}
            async with session.post(f"{base}/v1/predict", json={"inputs": [{"image": image}]}) as response:
                assert response.status == 200
                served = (await response.json())["outputs"][0]
            async with session.post(f"{base}/v1/search", json={"image": image, "k": K}) as response:
                assert response.status == 200
                served_search = (await response.json())["results"]
            async with session.post(f"{base}/v1/clusters", json={"k": 3, "limit": 1000}) as response:
                assert response.status == 200
                clusters = (await response.json())["clusters"]
    finally:
        await app.cleanup()
    assert served["nodes"]["detect"] == graph_output["nodes"]["detect"]
    assert [n["id"] for r in served_search for n in r["neighbours"]] == [n["id"] for r in local[0][1] for n in r["neighbours"]]
    assert sum(cluster["size"] for cluster in clusters) == loaded_index.size

    # Clusters of the embeddings follow the shapes: each cluster is mostly one shape.
    found = kmeans(loaded_index, k=3, seed=0)
    labels = [item["concepts"][0] if item["concepts"] else None for item in items]
    majority = 0
    for cluster in range(3):
        members = [label for label, assigned in zip(labels, found.assignments, strict=True)
                   if assigned == cluster and label]
        majority += max((members.count(shape) for shape in set(members)), default=0)
    purity = majority / max(1, sum(label is not None for label in labels))
    assert purity >= 0.5, f"cluster purity {purity:.2f} (one cluster for everything scores about 0.33)"
    assert np.isfinite(found.inertia)
