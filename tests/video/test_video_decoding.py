"""Decoding and sampling real encoded videos: frame times, limits, damaged files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from deeptrain_trainer.data.video import (
    VideoError,
    VideoLimits,
    VideoSource,
    format_offset,
    is_video,
    open_video,
    sample_frames,
    sample_times_ms,
)

from .clips import read_number, write_numbered_clip

# (encoder, container, source frames per second, sampling rate): H.264 in MP4 and two others.
FORMATS = [("libx264", "mp4", 25.0, 1.0), ("libvpx-vp9", "mkv", 12.0, 2.0), ("mpeg4", "avi", 7.5, 0.5)]
SECONDS = 8


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    return {container: write_numbered_clip(root / f"numbered.{container}", frames=int(fps * SECONDS), fps=fps,
                                           codec=codec)
            for codec, container, fps, _ in FORMATS}


@pytest.mark.parametrize(("codec", "container", "fps", "rate"), FORMATS)
def test_sampled_frames_are_the_frames_on_screen_at_each_target_time(clips, codec, container, fps, rate):
    frames = list(sample_frames(str(clips[container]), rate))
    assert len(frames) == math.ceil(SECONDS * rate)
    interval_ms = 1000 / fps
    for k, frame in enumerate(frames):
        target_ms = k * 1000 / rate
        assert target_ms - 1 <= frame.time_offset_ms < target_ms + interval_ms, (k, frame.time_offset_ms)
        # The pixels are those of the frame the index names (its number is drawn on it).
        assert read_number(frame.image) == frame.index
        assert frame.index == round(frame.time_offset_ms / interval_ms)
        assert frame.describe() == {"frameIndex": frame.index, "timeOffsetMs": frame.time_offset_ms}


@pytest.mark.parametrize(("codec", "container", "fps", "rate"), FORMATS)
def test_seeking_to_a_sampled_time_gives_the_same_frame(clips, codec, container, fps, rate):
    with open_video(str(clips[container])) as video:
        assert (video.info.width, video.info.height) == (64, 64)
        assert video.info.duration_s == pytest.approx(SECONDS, abs=1 / fps)
        times = sample_times_ms(video.info, rate)
    streamed = {frame.time_offset_ms: frame.index for frame in sample_frames(str(clips[container]), rate)}
    assert len(times) == len(streamed)
    for target in times[1::2]:
        with open_video(str(clips[container])) as video:
            frame = video.frame_at(target)
        assert read_number(frame.image) == frame.index
        assert frame.index in streamed.values()
        assert 0 <= frame.time_offset_ms - target < 1000 / fps


def test_a_rate_above_the_source_rate_never_repeats_a_frame(clips):
    frames = list(sample_frames(str(clips["avi"]), 30.0))  # the source has 7.5 frames per second
    assert [frame.index for frame in frames] == list(range(int(7.5 * SECONDS)))


def test_bytes_in_memory_decode_like_the_file(clips):
    data = clips["mkv"].read_bytes()
    from_bytes = [(f.index, f.time_offset_ms) for f in sample_frames(VideoSource.from_bytes(data, "upload.mkv"))]
    assert from_bytes == [(f.index, f.time_offset_ms) for f in sample_frames(str(clips["mkv"]))]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("damage", ["truncated-mp4", "truncated-mkv", "garbage", "empty", "header-only"])
def test_damaged_videos_give_one_clear_error(clips, tmp_path, damage):
    source = clips["mkv" if damage == "truncated-mkv" else "mp4"].read_bytes()
    data = {"truncated-mp4": source[: len(source) // 2], "truncated-mkv": source[: len(source) // 2],
            "garbage": bytes(range(256)) * 64, "empty": b"", "header-only": source[:64]}[damage]
    path = tmp_path / f"{damage}.{'mkv' if damage == 'truncated-mkv' else 'mp4'}"
    path.write_bytes(data)
    with pytest.raises(VideoError) as raised:
        list(sample_frames(str(path)))
    message = str(raised.value)
    assert message.startswith(str(path))
    assert "truncated" in message or "damaged" in message
    assert "re-encode" in message or "copy it again" in message


def test_limits_are_checked_before_decoding(clips):
    with pytest.raises(VideoError, match=r"lasts 00:08.0, longer than the limit of 00:05.0; cut it"):
        open_video(str(clips["mp4"]), VideoLimits(max_duration_s=5))
    with pytest.raises(VideoError, match=r"frames of 64x64 pixels exceed the limit of 1024 pixels; scale"):
        open_video(str(clips["mp4"]), VideoLimits(max_pixels=32 * 32))


def test_a_missing_file_and_a_bad_rate_are_named(clips, tmp_path):
    with pytest.raises(FileNotFoundError):
        open_video(str(tmp_path / "missing.mp4"))
    with pytest.raises(VideoError, match="frames per second"):
        list(sample_frames(str(clips["mp4"]), 0))


def test_names_and_offsets():
    assert is_video("s3://bucket/a/clip.MP4") and is_video("x.webm") and not is_video("x.png")
    assert format_offset(12000) == "00:12.0"
    assert format_offset(3723500) == "1:02:03.5"
