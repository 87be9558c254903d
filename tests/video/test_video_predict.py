"""`deeptrain predict` on videos: per-frame entries for every visual type, bounded memory, annotated output."""

from __future__ import annotations

import json
import weakref
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deeptrain_api import catalog
from deeptrain_cli.errors import EXIT_INPUT
from deeptrain_cli.main import app
from deeptrain_trainer.data import video as video_module
from deeptrain_trainer.data.video import sample_frames
from deeptrain_trainer.inference import BATCH_SIZE, load_model

from .clips import write_numbered_clip

# What each type's per-frame entry holds, as an image's prediction does.
ENTRY_KEYS = {catalog.VISUAL_CLASSIFIER: "concepts", catalog.VISUAL_DETECTOR: "regions",
              catalog.VISUAL_EMBEDDER: "embedding", catalog.VISUAL_SEGMENTER: "regions",
              catalog.VISUAL_ANOMALY_HEATMAP: "score"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_numbered_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=50, fps=10.0)


@pytest.mark.parametrize("model_type", sorted(ENTRY_KEYS))
def test_predict_cli_answers_per_frame_and_saves_a_playable_annotated_video(visual_models, clip, tmp_path, model_type):
    saved = tmp_path / "saved"
    result = CliRunner().invoke(app, ["predict", str(visual_models[model_type]), str(clip), "--save", str(saved),
                                      "--video-frame-rate", "2"])
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.stdout)
    assert entry["input"] == str(clip)
    assert entry["video"]["durationMs"] == 5000 and entry["video"]["codec"] == "h264"
    frames = entry["frames"]
    assert [f["timeOffsetMs"] for f in frames] == [500 * k for k in range(10)]
    assert [f["frameIndex"] for f in frames] == [5 * k for k in range(10)]
    assert all(ENTRY_KEYS[model_type] in f for f in frames)
    assert not any(key.startswith("_") for f in frames for key in f)
    annotated = list(sample_frames(entry["saved"], 2))  # the annotated video decodes: one frame per sample
    assert len(annotated) == len(frames) and min(annotated[0].image.size) >= 256


def test_images_and_videos_mix_in_one_call_in_order(visual_models, clip, tmp_path):
    image = tmp_path / "frame.png"
    next(sample_frames(str(clip))).image.save(image)
    results = load_model(visual_models[catalog.VISUAL_CLASSIFIER]).predict([str(clip), str(image), str(clip)])
    assert [("frames" in r, r["input"]) for r in results] == [(True, str(clip)), (False, str(image)), (True, str(clip))]
    # The first frame of the video and the same frame as a PNG get the same prediction.
    assert results[1]["concepts"][0]["value"] == pytest.approx(results[0]["frames"][0]["concepts"][0]["value"], abs=1e-3)


def test_a_ten_minute_video_is_predicted_with_a_bounded_number_of_frames_alive(visual_models, tmp_path, monkeypatch):
    long_clip = write_numbered_clip(tmp_path / "long.mp4", frames=10 * 60 * 2, fps=2.0, size=32)
    alive = 0
    most = 0
    make_frame = video_module.Frame

    def released() -> None:
        nonlocal alive
        alive -= 1

    def counted_frame(*args, **kwargs):
        nonlocal alive, most
        frame = make_frame(*args, **kwargs)
        weakref.finalize(frame.image, released)  # counts the decoded pixels until they are freed
        alive += 1
        most = max(most, alive)
        return frame

    monkeypatch.setattr(video_module, "Frame", counted_frame)
    [entry] = load_model(visual_models[catalog.VISUAL_CLASSIFIER]).predict([str(long_clip)])
    assert len(entry["frames"]) == 600
    assert entry["frames"][-1]["timeOffsetMs"] == 599_000
    # One batch being predicted and the next one being decoded, whatever the video's length.
    assert most <= 2 * BATCH_SIZE, f"{most} decoded frames were alive at once"


@pytest.mark.parametrize("damage", ["header", "truncated"])
def test_a_damaged_video_fails_predict_with_one_line_naming_it(visual_models, clip, tmp_path, damage):
    if damage == "header":
        broken = tmp_path / "broken.mp4"
        broken.write_bytes(clip.read_bytes()[:300])
        expected = "cannot be opened as a video"
    else:  # frames decode (and are annotated) until the stream stops short of its declared length
        whole = write_numbered_clip(tmp_path / "whole.mkv", frames=200, fps=10.0, codec="libvpx-vp9")
        broken = tmp_path / "broken.mkv"
        broken.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        expected = "ends at 00:0"
    # At 10 frames per second a first batch of frames is annotated and written before the error.
    result = CliRunner().invoke(app, ["predict", str(visual_models[catalog.VISUAL_CLASSIFIER]), str(broken), str(clip),
                                      "--save", str(tmp_path / "saved"), "--video-frame-rate", "10"])
    assert result.exit_code == EXIT_INPUT
    failed, predicted = json.loads(result.stdout)
    assert failed["input"] == str(broken) and expected in failed["error"] and "truncated" in failed["error"]
    assert "frames" not in failed and len(predicted["frames"]) == 50  # the other video is still predicted
    assert "1 of 2 inputs could not be predicted" in result.stderr
    # No half-written annotated video for the damaged one.
    assert [path.name for path in (tmp_path / "saved").glob("*.mp4")] == ["0001-clip.annotated.mp4"]
