"""The graph executor: what each node receives and returns, crops, coordinates and graph checks."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from deeptrain_trainer.workflow.crop import crop_region, scale_box
from deeptrain_trainer.workflow.errors import WorkflowError
from deeptrain_trainer.workflow.graph import GraphInput, WorkflowRunner
from deeptrain_trainer.workflow.models import models_dir_resolver, parse_model_map, pinned_resolver

from .conftest import CROP_GRAPH, noise_image, workflow_of


def test_crop_margin_grows_the_box_about_its_centre_and_stays_inside_the_image():
    image = Image.new("RGB", (200, 100))
    crop, cut = crop_region(image, {"top_row": 0.2, "left_col": 0.4, "bottom_row": 0.6, "right_col": 0.6}, 1.5)
    assert crop.size == (60, 60)  # 40 x 40 px box, 1.5 times as big
    assert cut == pytest.approx({"top_row": 0.1, "left_col": 0.35, "bottom_row": 0.7, "right_col": 0.65})
    corner = scale_box({"top_row": 0.0, "left_col": 0.9, "bottom_row": 0.2, "right_col": 1.0}, 2.0)
    assert corner == pytest.approx({"top_row": 0.0, "left_col": 0.85, "bottom_row": 0.3, "right_col": 1.0})


def test_a_box_thinner_than_a_pixel_still_crops_one_pixel():
    crop, _ = crop_region(Image.new("RGB", (50, 50)), {"top_row": 0.5, "left_col": 0.5, "bottom_row": 0.5,
                                                      "right_col": 0.5}, 1.0)
    assert crop.size == (1, 1)


def test_detector_crop_embedder_gives_one_embedding_per_region(untrained_models):
    runner = WorkflowRunner(workflow_of(CROP_GRAPH), models_dir_resolver(untrained_models))
    images = [noise_image(96, 64, seed) for seed in range(3)]
    outputs = runner.run([GraphInput(name=f"image-{i}", image=image) for i, image in enumerate(images)])

    assert [output["input"] for output in outputs] == ["image-0", "image-1", "image-2"]
    assert json.loads(json.dumps(outputs)) == outputs  # JSON as it is
    total_regions = 0
    for output, image in zip(outputs, images, strict=True):
        detections = output["nodes"]["detect"]
        assert len(detections) == 1  # one entry per input image
        regions = detections[0]["regions"]
        total_regions += len(regions)
        crops, embeddings = output["nodes"]["crop"], output["nodes"]["embed"]
        assert [crop["region"] for crop in crops] == regions
        assert [entry["region"] for entry in embeddings] == regions
        for region, crop in zip(regions, crops, strict=True):
            box, cut = region["box"], crop["cropBox"]
            assert 0 <= box["left_col"] <= box["right_col"] <= 1 and 0 <= box["top_row"] <= box["bottom_row"] <= 1
            assert cut["left_col"] <= box["left_col"] + 1e-3 and cut["right_col"] >= box["right_col"] - 1e-3
            width = round((cut["right_col"] - cut["left_col"]) * image.width)
            assert crop["size"][0] == width
        for entry in embeddings:
            assert sum(v * v for v in entry["embedding"]) == pytest.approx(1.0, abs=1e-3)
    assert total_regions > 0, "a detector with threshold 0 returns boxes"


def test_a_node_fed_by_a_model_node_sees_the_same_images(untrained_models):
    graph = [{"id": "embed", "model": {"deepTrainingJob": "embedder"}},
             {"id": "classify", "model": {"deepTrainingJob": "classifier"}, "inputs": ["embed"]}]
    runner = WorkflowRunner(workflow_of(graph), models_dir_resolver(untrained_models))
    outputs = runner.run([GraphInput(name="a", image=noise_image(40, 40, 1)), GraphInput(name="b", image=noise_image(40, 40, 2))])
    for output in outputs:
        assert len(output["nodes"]["embed"]) == 1 and "embedding" in output["nodes"]["embed"][0]
        assert [c["id"] for c in output["nodes"]["classify"][0]["concepts"]] in (["circle", "square"], ["square", "circle"])


def test_each_model_directory_is_loaded_once(untrained_models):
    graph = [{"id": "one", "model": {"deepTrainingJob": "embedder"}},
             {"id": "two", "model": {"uri": (untrained_models / "embedder").as_uri()}}]
    runner = WorkflowRunner(workflow_of(graph), models_dir_resolver(untrained_models))
    assert runner.predictors["one"] is runner.predictors["two"]
    versions = runner.model_versions()
    assert versions["one"]["version"] == versions["two"]["version"] and versions["one"]["modelType"] == "visual-embedder"


def test_image_crop_must_follow_a_detector(untrained_models):
    graph = [{"id": "embed", "model": {"deepTrainingJob": "embedder"}},
             {"id": "crop", "model": {"builtin": "image-crop"}, "inputs": ["embed"]}]
    with pytest.raises(WorkflowError, match="node 'crop'.*visual-detector"):
        WorkflowRunner(workflow_of(graph), models_dir_resolver(untrained_models))


def test_a_missing_model_names_the_node(untrained_models, tmp_path):
    graph = [{"id": "detect", "model": {"deepTrainingJob": "no-such-job"}}]
    with pytest.raises(WorkflowError, match="node 'detect'.*no-such-job"):
        WorkflowRunner(workflow_of(graph), models_dir_resolver(untrained_models))


def test_pinned_directories_win_over_the_models_folder(untrained_models):
    graph = [{"id": "embed", "model": {"deepTrainingJob": "not-in-the-folder"}}]
    resolver = pinned_resolver(parse_model_map([f"embed={untrained_models / 'embedder'}"]),
                               models_dir_resolver(untrained_models))
    runner = WorkflowRunner(workflow_of(graph), resolver)
    assert runner.model_type("embed") == "visual-embedder"
    with pytest.raises(WorkflowError, match="NODE=DIR"):
        parse_model_map(["embed"])


def test_text_inputs_are_refused_by_an_image_workflow(untrained_models):
    runner = WorkflowRunner(workflow_of(CROP_GRAPH), models_dir_resolver(untrained_models))
    with pytest.raises(WorkflowError, match=r"inputs\[0\].*image inputs"):
        runner.run([GraphInput(name="hello", text="hello")])
