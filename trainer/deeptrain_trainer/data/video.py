"""Video files -> frames, sampled at a rate the caller chooses and decoded as a stream.

Every part of the project that reads video (prediction, workflow runs, the server, indexing,
training) goes through this module. Decoding is PyAV (FFmpeg, with its codecs inside the wheel).

Sampling: at `rate` frames per second the targets are t = 0, 1/rate, 2/rate, ... from the start
of the stream; each target takes the first decoded frame whose presentation time is at or after
it (so a frame is at most one frame interval late), and no frame is taken twice. Only the frames
taken are converted to RGB: the others are decoded and dropped at once, so memory holds a few
frames whatever the video's length.

Limits (duration, pixels per frame) are checked from the container's header before decoding and
again while decoding, for streams whose header does not say. Damaged input raises VideoError
naming the file: a container FFmpeg cannot open, a stream that stops decoding, or a stream that
ends well before the duration its header declares (a truncated file).
"""

from __future__ import annotations

import io
import math
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from PIL import Image

from deeptrain_api import catalog

from . import uris
from .errors import DatasetError

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})
DEFAULT_FRAME_RATE = catalog.DEFAULT_VIDEO_FRAME_RATE
MAX_FRAME_RATE = catalog.MAX_VIDEO_FRAME_RATE
# Defaults of VideoLimits: three hours, and frames up to 4096 x 2304 (above 4K UHD).
MAX_DURATION_S = 3 * 3600.0
MAX_FRAME_PIXELS = 4096 * 2304
# Timestamps are rationals converted to float seconds; this absorbs the rounding.
TIME_EPSILON_S = 0.001
# A stream may end this much (or three frame intervals, if longer) before its declared duration.
TRUNCATION_SLACK_S = 1.0

T = TypeVar("T")


class VideoError(DatasetError):
    """A video that cannot be read, or that exceeds the limits; the message names it and the fix."""


class VideoTooLarge(VideoError):
    """A video over the duration or pixel limit (a readable file, refused for its size)."""


def is_video(name: str) -> bool:
    """Whether a path or URI names a video file (by extension)."""
    return posixpath.splitext(name.split("?", 1)[0])[1].lower() in VIDEO_EXTENSIONS


def check_rate(rate: float, where: str = "video frame rate") -> float:
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) \
            or not 0 < rate <= MAX_FRAME_RATE:
        raise VideoError(where, f"{rate!r} is not a frame rate", f"give frames per second in (0, {MAX_FRAME_RATE:g}]")
    return float(rate)


def format_offset(milliseconds: int) -> str:
    """12000 -> "00:12.0", 3723500 -> "1:02:03.5": how search results show a time in a video."""
    tenths = int(round(milliseconds / 100))
    seconds, tenth = divmod(tenths, 10)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}.{tenth}" if hours else f"{minute:02d}:{second:02d}.{tenth}"


@dataclass(frozen=True)
class VideoLimits:
    max_duration_s: float = MAX_DURATION_S
    max_pixels: int = MAX_FRAME_PIXELS


@dataclass(frozen=True)
class VideoSource:
    """A video by location (any URI `uris` reads) or as bytes already in memory (an upload)."""

    name: str
    uri: str | None = None
    data: bytes | None = None

    @classmethod
    def from_uri(cls, uri: str, name: str | None = None) -> VideoSource:
        return cls(name=name or uri, uri=uris.resolve_uri(uri))

    @classmethod
    def from_bytes(cls, data: bytes, name: str) -> VideoSource:
        return cls(name=name, data=data)

    def open(self) -> str | IO[bytes]:
        """What av.open reads: a local path, or a file object (object stores, uploads)."""
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.uri is not None
        if not uris.has_protocol(self.uri):
            return self.uri
        fs, path = uris.filesystem(self.uri)
        return fs.open(path, "rb")


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    frame_rate: float | None  # the stream's average rate; None when the header does not say
    duration_s: float | None  # declared by the header; None when it does not say
    codec: str
    container: str

    def describe(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "codec": self.codec, "container": self.container,
                "frameRate": round(self.frame_rate, 3) if self.frame_rate else None,
                "durationMs": int(round(self.duration_s * 1000)) if self.duration_s is not None else None}


@dataclass(frozen=True)
class Frame:
    image: Image.Image  # RGB
    index: int  # position of the frame in the decoded stream, from 0
    time_s: float  # presentation time, from the start of the stream

    @property
    def time_offset_ms(self) -> int:
        return int(round(self.time_s * 1000))

    def describe(self) -> dict[str, Any]:
        """The fields every per-frame output carries."""
        return {"frameIndex": self.index, "timeOffsetMs": self.time_offset_ms}


def _av() -> Any:
    try:
        import av
    except ImportError as error:  # the operator image has no video support, and needs none
        raise VideoError("video", "PyAV is not installed", "install the trainer extra (pip install "
                         "'deeptrain-operator[trainer]')") from error
    return av


class VideoReader:
    """An open video: `info`, then `frames(rate)` (a stream) or `frame_at(ms)` (one frame). Close it."""

    def __init__(self, source: VideoSource, limits: VideoLimits = VideoLimits()):
        self.source = source
        self.limits = limits
        av = _av()
        self._errors: tuple[type[BaseException], ...] = (av.error.FFmpegError, OSError, ValueError, EOFError)
        self._handle = source.open()
        try:
            self._container = av.open(self._handle, mode="r", metadata_errors="ignore")
        except FileNotFoundError:
            self._close_handle()
            raise
        except self._errors as error:
            self._close_handle()
            raise self._error(f"cannot be opened as a video ({error}): it is damaged, truncated or not a video",
                              "re-encode it (for example H.264 in MP4) or replace it") from error
        try:
            self.info = self._read_info()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()
        self._close_handle()

    def _close_handle(self) -> None:
        if not isinstance(self._handle, str):
            self._handle.close()

    def _error(self, problem: str, fix: str, kind: type[VideoError] = VideoError) -> VideoError:
        return kind(self.source.name, problem, fix)

    def _read_info(self) -> VideoInfo:
        if not self._container.streams.video:
            raise self._error("holds no video stream", "give a file with a video track")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: a few frames in flight, a large gain on long streams
        self._stream = stream
        width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
        if width <= 0 or height <= 0:
            raise self._error("has a video stream without a frame size", "re-encode it")
        self._check_pixels(width, height)
        duration: float | None = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif self._container.duration is not None:
            duration = self._container.duration / 1_000_000
        if duration is not None and duration <= 0:
            duration = None
        if duration is not None:
            self._check_duration(duration)
        self._origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        rate = float(stream.average_rate) if stream.average_rate else None
        return VideoInfo(width=width, height=height, frame_rate=rate, duration_s=duration,
                         codec=stream.codec_context.name, container=self._container.format.name)

    def _check_pixels(self, width: int, height: int) -> None:
        if width * height > self.limits.max_pixels:
            raise self._error(f"frames of {width}x{height} pixels exceed the limit of {self.limits.max_pixels} pixels",
                              "scale the video down first", VideoTooLarge)

    def _check_duration(self, seconds: float) -> None:
        if seconds > self.limits.max_duration_s:
            raise self._error(f"lasts {format_offset(int(seconds * 1000))}, longer than the limit of "
                              f"{format_offset(int(self.limits.max_duration_s * 1000))}", "cut it into shorter videos",
                              VideoTooLarge)

    def _decoded(self) -> Iterator[tuple[int, float, Any]]:
        """(index, time from the start in seconds, av.VideoFrame) of every frame, in presentation order."""
        interval = 1.0 / self.info.frame_rate if self.info.frame_rate else 0.0
        index = -1
        last = 0.0
        decoding = self._container.decode(self._stream)
        while True:
            try:
                frame = next(decoding)
            except StopIteration:
                break
            except self._errors as error:
                raise self._error(f"cannot be decoded after {format_offset(int(last * 1000))} ({error})",
                                  "the file is damaged; re-encode or replace it") from error
            index += 1
            seconds = frame.time - self._origin if frame.time is not None else index * interval
            last = max(seconds, 0.0)
            if last > self.limits.max_duration_s:
                self._check_duration(last)
            if frame.width != self.info.width or frame.height != self.info.height:
                self._check_pixels(frame.width, frame.height)
            yield index, last, frame
        self._check_complete(index + 1, last, interval)

    def _check_complete(self, count: int, last: float, interval: float) -> None:
        if count == 0:
            raise self._error("holds no decodable frame", "the file is empty or damaged; re-encode or replace it")
        declared = self.info.duration_s
        if declared is not None and last + max(TRUNCATION_SLACK_S, 3 * interval) < declared:
            raise self._error(f"ends at {format_offset(int(last * 1000))} although its header says it lasts "
                              f"{format_offset(int(declared * 1000))}", "the file is truncated; copy it again")

    def frames(self, rate: float = DEFAULT_FRAME_RATE) -> Iterator[Frame]:
        """The sampled frames, as they are decoded."""
        step = 1.0 / check_rate(rate)
        target = 0
        for index, seconds, frame in self._decoded():
            if seconds + TIME_EPSILON_S < target * step:
                continue
            yield Frame(image=_rgb(frame), index=index, time_s=seconds)
            # The next target after this frame: a frame is never taken twice, even when rate > fps.
            target = math.floor((seconds + TIME_EPSILON_S) / step) + 1

    def frame_at(self, time_ms: int) -> Frame:
        """The frame `frames()` takes for the target `time_ms`: seek to a key frame before it, decode forward."""
        seconds = time_ms / 1000
        if self.info.duration_s is not None and seconds > self.info.duration_s + TIME_EPSILON_S:
            raise self._error(f"has no frame at {format_offset(time_ms)} (it lasts "
                              f"{format_offset(int(self.info.duration_s * 1000))})", "fix the frame's time offset")
        stream = self._stream
        try:
            self._container.seek(int((seconds + self._origin) / stream.time_base), stream=stream, backward=True)
        except self._errors as error:
            raise self._error(f"cannot seek to {format_offset(time_ms)} ({error})", "re-encode or replace it") from error
        interval = 1.0 / self.info.frame_rate if self.info.frame_rate else 0.0
        previous = None
        try:
            for frame in self._container.decode(stream):
                at = frame.time - self._origin if frame.time is not None else 0.0
                if at + TIME_EPSILON_S >= seconds:
                    return Frame(image=_rgb(frame), index=_index_at(at, interval), time_s=max(at, 0.0))
                previous = (frame, at)
        except self._errors as error:
            raise self._error(f"cannot be decoded at {format_offset(time_ms)} ({error})",
                              "the file is damaged; re-encode or replace it") from error
        if previous is None:
            raise self._error(f"has no frame at {format_offset(time_ms)}", "the file is damaged; re-encode or replace it")
        frame, at = previous
        return Frame(image=_rgb(frame), index=_index_at(at, interval), time_s=max(at, 0.0))


def _rgb(frame: Any) -> Image.Image:
    """A decoded frame as RGB pixels. Through a NumPy array: PyAV's to_image() takes about 4x as long."""
    return Image.fromarray(frame.to_ndarray(format="rgb24"))


def _index_at(seconds: float, interval: float) -> int:
    """A frame's index from its time (seeking loses the count): exact for constant-rate streams."""
    return int(round(seconds / interval)) if interval else 0


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of `size` items (the last may be shorter), taken lazily: frames are decoded one batch at a time.
    (itertools.batched arrives with Python 3.12.)"""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def open_video(source: VideoSource | str, limits: VideoLimits = VideoLimits()) -> VideoReader:
    """Raises FileNotFoundError when nothing is there, VideoError when it is not a readable video."""
    return VideoReader(source if isinstance(source, VideoSource) else VideoSource.from_uri(source), limits)


def sample_frames(source: VideoSource | str, rate: float = DEFAULT_FRAME_RATE,
                  limits: VideoLimits = VideoLimits()) -> Iterator[Frame]:
    """The frames of a video sampled at `rate` per second, streamed (the file is closed when the iterator ends)."""
    with open_video(source, limits) as video:
        yield from video.frames(rate)


def sample_times_ms(info: VideoInfo, rate: float) -> list[int]:
    """The targets `frames(rate)` samples, from the declared duration: what training turns into frame records."""
    step = 1.0 / check_rate(rate)
    duration = info.duration_s or 0.0
    count = max(1, math.ceil(duration / step - TIME_EPSILON_S)) if duration else 1
    return [int(round(k * step * 1000)) for k in range(count)]


def load_frame(uri: str, time_ms: int, limits: VideoLimits = VideoLimits()) -> Image.Image:
    """One frame of a video as RGB (a training record's pixels)."""
    with open_video(uri, limits) as video:
        return video.frame_at(time_ms).image
