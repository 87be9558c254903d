"""RGB frames -> a video file a person can play: `predict --save`, the example clips and the tests.

H.264 in MP4 by default (every player reads it); any encoder the PyAV wheel's FFmpeg has can be
named (`libvpx-vp9` in .mkv or .webm, `mpeg4` in .avi, ...). The encoders want an even frame size
in 4:2:0 chroma, so the first frame's size is rounded up to even and every frame is scaled to it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from PIL import Image

from .video import _av

DEFAULT_CODEC = "libx264"


def frame_rate_fraction(rate: float) -> Fraction:
    return Fraction(rate).limit_denominator(1001)


class VideoWriter:
    def __init__(self, path: Path, frame_rate: float, *, codec: str = DEFAULT_CODEC,
                 options: dict[str, str] | None = None):
        av = _av()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w")
        self._stream = self._container.add_stream(codec, rate=frame_rate_fraction(frame_rate))
        self._stream.pix_fmt = "yuv420p"
        if options:
            self._stream.options = dict(options)
        self._av = av
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, image: Image.Image | np.ndarray) -> None:
        picture = image if isinstance(image, Image.Image) else Image.fromarray(np.ascontiguousarray(image))
        picture = picture.convert("RGB")
        if self._size is None:
            self._size = (picture.width + picture.width % 2, picture.height + picture.height % 2)
            self._stream.width, self._stream.height = self._size
        if picture.size != self._size:
            picture = picture.resize(self._size, Image.Resampling.BILINEAR)
        frame = self._av.VideoFrame.from_image(picture)
        self._mux(self._stream.encode(frame))
        self.frames += 1

    def _mux(self, packets: Any) -> None:
        for packet in packets:
            self._container.mux(packet)

    def close(self) -> Path:
        """Flush the encoder and finish the file; a writer given no frame leaves no file."""
        if self._size is not None:
            self._mux(self._stream.encode(None))
        self._container.close()
        if self._size is None:
            self.path.unlink(missing_ok=True)
        return self.path

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
