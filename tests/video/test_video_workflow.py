"""Videos through Workflows: `deeptrain workflow run`, the server's /v1/predict and /v1/search, indexing, video queries."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import aiohttp
import pytest
import yaml
from typer.testing import CliRunner

from deeptrain_api import catalog
from deeptrain_cli.main import app
from deeptrain_trainer.data.video import sample_frames
from deeptrain_trainer.data.video_writer import VideoWriter
from deeptrain_trainer.datasets.video import write_digits_video
from deeptrain_trainer.workflow.limits import ServeLimits
from deeptrain_trainer.workflow.models import models_dir_resolver
from deeptrain_trainer.workflow.openapi import openapi_document
from deeptrain_trainer.workflow.server import Loaded
from deeptrain_trainer.workflow.stores import open_index
from workflow.test_server import serving, wait_ready

from .clips import write_numbered_clip

EMBEDDER = catalog.VISUAL_EMBEDDER
CLIPS = 6


@pytest.fixture(scope="module")
def setup(visual_models, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A one-node embedding workflow with spec.index over a folder of digit clips, and a numbered clip."""
    root = tmp_path_factory.mktemp("video-workflow")
    write_digits_video(root / "clips", CLIPS)
    workflow = {"apiVersion": "deeptrain.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": "clip-search"},
                "spec": {"nodes": [{"id": "embed", "model": {"deepTrainingJob": EMBEDDER}}],
                         "index": {"dataset": {"uri": f"file://{root / 'clips'}", "format": "imagefolder",
                                               "videoFrameRate": 2}}}}
    (root / "workflow.yaml").write_text(yaml.safe_dump(workflow))
    # A query: one indexed clip decoded and encoded again with another codec and container.
    query = root / "query.mkv"
    indexed = next((root / "clips").glob("*/clip-003.mp4"))
    with VideoWriter(query, 8, codec="libvpx-vp9") as writer:
        for frame in sample_frames(str(indexed), 8):
            writer.write(frame.image)
    numbered = write_numbered_clip(root / "numbered.mp4", frames=30, fps=10.0)
    return {"root": root, "workflow": root / "workflow.yaml", "models": visual_models[EMBEDDER].parent,
            "query": query, "indexed": indexed, "numbered": numbered}


def test_workflow_run_answers_each_video_frame_by_frame(setup, tmp_path):
    image = tmp_path / "frame.png"
    next(sample_frames(str(setup["numbered"]))).image.save(image)
    result = CliRunner().invoke(app, ["workflow", "run", str(setup["workflow"]), str(setup["numbered"]), str(image),
                                      "--models", str(setup["models"]), "--video-frame-rate", "2"])
    assert result.exit_code == 0, result.output
    video, still = json.loads(result.stdout)
    assert video["input"] == str(setup["numbered"]) and video["video"]["durationMs"] == 3000
    assert [(f["frameIndex"], f["timeOffsetMs"]) for f in video["frames"]] == [(5 * k, 500 * k) for k in range(6)]
    assert all(len(f["nodes"]["embed"]) == 1 for f in video["frames"])
    # The first frame as a PNG embeds like the video's first frame.
    first = video["frames"][0]["nodes"]["embed"][0]["embedding"]
    assert still["nodes"]["embed"][0]["embedding"] == pytest.approx(first, abs=0.02)


def test_index_stores_each_frames_video_and_offset_and_a_video_query_finds_its_clip(setup):
    index_dir = setup["root"] / "index"
    result = CliRunner().invoke(app, ["index", str(setup["workflow"]), "--models", str(setup["models"]),
                                      "--output", str(index_dir)])
    assert result.exit_code == 0, result.output
    items = indexed_items(index_dir)
    assert len(items) == CLIPS * 8  # 4 s clips at 2 frames per second
    row = next(item for item in items if item["input"] == str(setup["indexed"]) and item["timeOffsetMs"] == 1500)
    assert row["at"] == "00:01.5" and row["frameIndex"] == 12 and row["concepts"] and row["id"].endswith("@1500")

    result = CliRunner().invoke(app, ["search", str(setup["query"]), "--workflow", str(setup["workflow"]),
                                      "--models", str(setup["models"]), "--index", str(index_dir), "-k", "5"])
    assert result.exit_code == 0, result.output
    [found] = json.loads(result.stdout)
    assert found["queryFrames"] == 4
    neighbours = found["neighbours"]
    assert len(neighbours) == 5 and len({n["id"] for n in neighbours}) == 5
    assert neighbours[0]["input"] == str(setup["indexed"])
    assert [n["distance"] for n in neighbours] == sorted(n["distance"] for n in neighbours)
    assert neighbours[0]["queryTimeOffsetMs"] in (0, 1000, 2000, 3000)  # the query sampled at 1 per second
    assert neighbours[0]["at"] == f"00:0{neighbours[0]['timeOffsetMs'] // 1000}.{neighbours[0]['timeOffsetMs'] % 1000 // 100}"


def test_a_jsonl_dataset_with_annotated_frames_indexes_each_video_once(setup, tmp_path):
    workflow = yaml.safe_load(setup["workflow"].read_text())
    workflow["spec"]["index"]["dataset"] = {"uri": f"file://{setup['root'] / 'clips' / 'annotations.jsonl'}",
                                            "format": "jsonl", "videoFrameRate": 1}
    (tmp_path / "workflow.yaml").write_text(yaml.safe_dump(workflow))
    result = CliRunner().invoke(app, ["index", str(tmp_path / "workflow.yaml"), "--models", str(setup["models"]),
                                      "--output", str(tmp_path / "index")])
    assert result.exit_code == 0, result.output
    items = indexed_items(tmp_path / "index")
    assert len(items) == CLIPS * 4  # sampled at 1 per second, not once per annotated frame
    assert len({item["id"] for item in items}) == len(items)
    assert all(item["concepts"] and item["id"].startswith("clip-") for item in items)


async def test_server_predicts_uploaded_inline_and_referenced_videos(setup):
    runner_loader = _loader(setup)
    numbered = setup["numbered"]
    encoded = base64.b64encode(numbered.read_bytes()).decode()
    async with serving(runner_loader, allowed_uri_prefixes=[str(setup["root"])]) as base, aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        form = aiohttp.FormData()
        form.add_field("video", numbered.read_bytes(), filename="clip.mp4", content_type="video/mp4")
        async with session.post(f"{base}/v1/predict", data=form) as response:
            assert response.status == 200, await response.text()
            [uploaded] = (await response.json())["outputs"]
        assert uploaded["input"] == "clip.mp4" and len(uploaded["frames"]) == 3
        body = {"inputs": [{"video": {"base64": encoded, "frameRate": 2}}, {"video": {"uri": str(numbered)}}]}
        async with session.post(f"{base}/v1/predict", json=body) as response:
            assert response.status == 200, await response.text()
            inline, referenced = (await response.json())["outputs"]
        assert [f["timeOffsetMs"] for f in inline["frames"]] == [500 * k for k in range(6)]
        assert referenced["input"] == str(numbered) and len(referenced["frames"]) == 3
        same_frame = inline["frames"][2]["nodes"]["embed"][0]["embedding"]  # 1 s, in batches of different sizes
        assert referenced["frames"][1]["nodes"]["embed"][0]["embedding"] == pytest.approx(same_frame, abs=1e-4)
        # A damaged video is 422, a bad rate or a location the server may not read 400, naming the field.
        cases = [({"inputs": [{"video": {"base64": base64.b64encode(b"\0" * 500).decode()}}]}, 422,
                  "cannot be opened as a video"),
                 ({"inputs": [{"video": {"base64": encoded, "frameRate": 0}}]}, 400, "inputs[0].video.frameRate"),
                 ({"inputs": [{"video": {"uri": "/etc/hostname.mp4"}}]}, 400, "outside the locations")]
        for bad, status, message in cases:
            async with session.post(f"{base}/v1/predict", json=bad) as response:
                assert response.status == status
                assert message in (await response.json())["error"]["message"]
    # Frames may have no more pixels than an image may: 413 naming the limit.
    async with serving(runner_loader, limits=ServeLimits(max_image_pixels=32 * 32)) as base, \
            aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        async with session.post(f"{base}/v1/predict", json={"inputs": [{"video": {"base64": encoded}}]}) as response:
            assert response.status == 413
            assert "frames of 64x64 pixels exceed the limit of 1024 pixels" in (await response.json())["error"]["message"]


async def test_server_searches_with_a_video(setup):
    index_dir = setup["root"] / "index"
    if not index_dir.exists():
        pytest.skip("needs the index the indexing test builds")
    loader = _loader(setup, index_dir)
    async with serving(loader) as base, aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        form = aiohttp.FormData()
        form.add_field("k", "3")
        form.add_field("video", setup["query"].read_bytes(), filename="query.mkv", content_type="video/x-matroska")
        async with session.post(f"{base}/v1/search", data=form) as response:
            assert response.status == 200, await response.text()
            [found] = (await response.json())["results"]
    assert found["neighbours"][0]["input"] == str(setup["indexed"]) and len(found["neighbours"]) == 3


def test_openapi_document_describes_video_inputs_and_frames():
    validator = pytest.importorskip("openapi_spec_validator")
    document = openapi_document("clips")
    validator.validate(document)
    schemas = document["components"]["schemas"]
    assert "video" in schemas["Input"]["properties"] and "frameRate" in schemas["VideoRef"]["properties"]
    frame = schemas["VideoFrameOutput"]["properties"]
    assert {"frameIndex", "timeOffsetMs", "nodes"} <= frame.keys()
    assert {"timeOffsetMs", "at"} <= schemas["Neighbour"]["properties"].keys()
    assert "video" in schemas["SearchRequest"]["properties"]


def indexed_items(location: Path) -> list[dict]:
    return [item for rows in open_index(location).iter_rows(1000) for item in rows.items]


def _loader(setup: dict[str, Path], index_dir: Path | None = None):
    from deeptrain_trainer.workflow.graph import WorkflowRunner
    from deeptrain_trainer.workflow.manifest import load_workflow

    def load() -> Loaded:
        runner = WorkflowRunner(load_workflow(setup["workflow"]), models_dir_resolver(setup["models"]))
        return Loaded(runner=runner, index=open_index(index_dir) if index_dir else None)

    return load


def test_a_crop_graph_indexes_each_frames_regions_with_the_frames_offset(setup, tmp_path):
    clips = tmp_path / "clips" / "digit"
    clips.mkdir(parents=True)
    (clips / "clip.mp4").write_bytes(setup["indexed"].read_bytes())
    workflow = {"apiVersion": "deeptrain.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": "crops"},
                "spec": {"nodes": [{"id": "detect", "model": {"deepTrainingJob": catalog.VISUAL_DETECTOR}},
                                   {"id": "crop", "model": {"builtin": "image-crop"}, "inputs": ["detect"]},
                                   {"id": "embed", "model": {"deepTrainingJob": EMBEDDER}, "inputs": ["crop"]}],
                         "index": {"dataset": {"uri": f"file://{tmp_path / 'clips'}", "format": "imagefolder"}}}}
    (tmp_path / "workflow.yaml").write_text(yaml.safe_dump(workflow))
    result = CliRunner().invoke(app, ["index", str(tmp_path / "workflow.yaml"), "--models", str(setup["models"]),
                                      "--output", str(tmp_path / "index")])
    assert result.exit_code == 0, result.output
    items = indexed_items(tmp_path / "index")
    offsets = {item["timeOffsetMs"] for item in items}
    assert offsets == {0, 1000, 2000, 3000}  # 1 frame per second by default
    assert len(items) > len(offsets)  # the untrained detector (threshold 0) finds several regions per frame
    assert all("region" in item and item["id"].startswith(f"digit/clip@{item['timeOffsetMs']}#") for item in items)
