"""Videos in training datasets: frame records at spec.dataset.videoFrameRate, per-frame annotations, grouped splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deeptrain_api import catalog
from deeptrain_api.manifests import ManifestError, load_job
from deeptrain_api.trainer_config import build_trainer_config
from deeptrain_api.trainer_contract import DatasetConfig, JobRef, TemplateScale, TrainerConfig
from deeptrain_trainer.data import DatasetError, build_dataset, load_splits
from deeptrain_trainer.data.images import load_record_image
from deeptrain_trainer.data.video_records import video_of

from .clips import read_number, write_numbered_clip

FPS = 5.0


def config_for(dataset: Path, *, model_type: str = catalog.VISUAL_CLASSIFIER, dataset_format: str = "imagefolder",
               rate: float = 1.0, fraction: float = 0.25, tolerance: float = 5.0, seed: int = 0) -> TrainerConfig:
    template = "InceptionV2" if model_type == catalog.VISUAL_DETECTOR else "ResNext"
    return TrainerConfig(
        job=JobRef(name="video-data"), modelType=model_type, template=template, templateScale=TemplateScale(),
        hyperparameters=catalog.resolve_hyperparameters(model_type, {"image_size": 64}),
        dataset=DatasetConfig(uri=str(dataset), format=dataset_format, validation_fraction=fraction,
                              invalid_data_tolerance_percent=tolerance, video_frame_rate=rate),
        outputUri="file:///unused", seed=seed)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """imagefolder: 8 clips of 3 s per concept, and 4 images per concept."""
    root = tmp_path_factory.mktemp("video-folder")
    for concept in ("left", "right"):
        for clip in range(8):
            write_numbered_clip(root / concept / f"clip-{clip}.mp4", frames=int(3 * FPS), fps=FPS)
        for image in range(4):
            (root / concept).mkdir(exist_ok=True)
            Image.fromarray(np.full((16, 16, 3), 40 * image, dtype=np.uint8)).save(root / concept / f"still-{image}.png")
    return root


def test_each_video_becomes_frames_at_the_rate_with_its_folders_concept(folder):
    splits = load_splits(config_for(folder, rate=2.0))
    records = splits.train + splits.validation
    frames = [r for r in records if r.frame_time_ms is not None]
    assert len(frames) == 16 * 6 and len(records) == 16 * 6 + 8  # 3 s at 2 per second, and the images
    clip = sorted((r for r in frames if r.uri.endswith("left/clip-3.mp4")), key=lambda r: r.frame_time_ms)
    assert [r.frame_time_ms for r in clip] == [0, 500, 1000, 1500, 2000, 2500]
    assert all(r.concepts == ["left"] for r in clip)
    assert splits.concepts == ["left", "right"]
    # A frame record's pixels are those of the first frame at or after its time (the sampler's rule):
    # at 5 frames per second, 0.5 s is frame 3 (0.6 s), 1.5 s frame 8, 2.5 s frame 13.
    assert [read_number(load_record_image(record)) for record in clip[1::2]] == [3, 8, 13]


@pytest.mark.parametrize("seed", range(6))
def test_splits_keep_every_video_on_one_side(folder, seed):
    splits = load_splits(config_for(folder, rate=2.0, fraction=0.3, seed=seed))
    train_videos = {video_of(r) for r in splits.train} - {None}
    validation_videos = {video_of(r) for r in splits.validation} - {None}
    assert train_videos and validation_videos
    assert not train_videos & validation_videos
    # Whole videos move: every held-out video has all of its frames held out.
    assert all(sum(video_of(r) == video for r in splits.validation) == 6 for video in validation_videos)
    # Still images are split as before, one by one.
    assert any(video_of(r) is None for r in splits.validation) and any(video_of(r) is None for r in splits.train)


def test_frame_records_feed_the_torch_dataset(folder):
    splits = load_splits(config_for(folder))
    dataset = build_dataset(catalog.VISUAL_CLASSIFIER, splits.train, splits.concepts, image_size=64, train=False,
                            flips=False)
    image, target = dataset[0]
    assert tuple(image.shape) == (3, 64, 64) and int(target) in (0, 1)


def test_jsonl_per_frame_regions_train_a_detector(tmp_path):
    write_numbered_clip(tmp_path / "clips" / "a.mkv", frames=int(4 * FPS), fps=FPS, codec="libvpx-vp9")
    write_numbered_clip(tmp_path / "clips" / "b.mp4", frames=int(4 * FPS), fps=FPS)
    box = {"top_row": 0.1, "left_col": 0.2, "bottom_row": 0.6, "right_col": 0.7}
    # The second line names its video with "image", as some exports do: the extension decides.
    lines = [{"id": f"clip-{name}", ("video" if name == "a.mkv" else "image"): f"clips/{name}", "concepts": [{"id": "band"}],
              "frames": [{"frame_info": {"time": time_ms}, "data": {"regions": [
                  {"region_info": {"bounding_box": box}, "data": {"concepts": [{"id": "band"}]}}]}}
                         for time_ms in (0, 1200, 2400)]}
             for name in ("a.mkv", "b.mp4")]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    splits = load_splits(config_for(tmp_path / "data.jsonl", model_type=catalog.VISUAL_DETECTOR,
                                    dataset_format="jsonl", fraction=0.5))
    records = splits.train + splits.validation
    assert sorted((r.id, r.frame_time_ms) for r in records) == [
        (f"clip-{n}@{t}", t) for n in ("a.mkv", "b.mp4") for t in (0, 1200, 2400)]
    assert all(r.boxes == [(0.2, 0.1, 0.7, 0.6)] and r.box_concepts == ["band"] for r in records)
    assert len({video_of(r) for r in splits.train}) == len({video_of(r) for r in splits.validation}) == 1
    frame = next(r for r in records if r.frame_time_ms == 1200)
    assert read_number(load_record_image(frame)) == 6  # 1.2 s at 5 frames per second


def test_a_bad_frame_time_is_named_with_its_line(tmp_path):
    write_numbered_clip(tmp_path / "a.mp4", frames=10, fps=FPS)
    lines = [{"video": "a.mp4", "concepts": [{"id": "band"}]}, {"video": "a.mp4", "frames": [{"frame_info": {"time": -5}}]}]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(DatasetError, match=r"data.jsonl:2 \(every entry of frames needs frame_info.time"):
        load_splits(config_for(tmp_path / "data.jsonl", dataset_format="jsonl", tolerance=0))


def test_damaged_videos_count_against_the_tolerance(folder, tmp_path):
    dataset = tmp_path / "data"
    for concept in ("left", "right"):
        (dataset / concept).mkdir(parents=True)
        for clip in range(4):
            (dataset / concept / f"clip-{clip}.mp4").write_bytes((folder / concept / f"clip-{clip}.mp4").read_bytes())
    (dataset / "left" / "clip-0.mp4").write_bytes(b"\x00" * 100)
    splits = load_splits(config_for(dataset, tolerance=50))
    assert splits.image_stats.skipped == 1 and "clip-0.mp4" in splits.image_stats.examples[0]
    with pytest.raises(DatasetError, match=r"1 of .* images could not be decoded.*clip-0.mp4"):
        load_splits(config_for(dataset, tolerance=1))


def test_video_frame_rate_is_an_api_field_with_a_range(tmp_path):
    manifest = tmp_path / "job.yaml"
    body = ("apiVersion: deeptrain.dev/v1alpha1\nkind: DeepTrainingJob\nmetadata: {name: clips}\n"
            "spec:\n  modelType: visual-classifier\n  template: ResNext\n"
            "  dataset: {uri: file://data, format: imagefolder, videoFrameRate: RATE}\n"
            "  output: {uri: file://out}\n")
    manifest.write_text(body.replace("RATE", "2.5"))
    assert build_trainer_config(load_job(manifest), local=True).dataset.video_frame_rate == 2.5
    manifest.write_text(body.replace("RATE", "0"))
    with pytest.raises(ManifestError, match="videoFrameRate"):
        load_job(manifest)
    manifest.write_text(body.replace(", videoFrameRate: RATE", ""))
    assert build_trainer_config(load_job(manifest), local=True).dataset.video_frame_rate == 1.0
