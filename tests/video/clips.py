"""Real encoded test videos whose frames say which frame they are.

Frame i shows i in binary: eight vertical bands, band b white when bit b of i is set. Decoding a
frame and reading the bands back gives its index, so a test can check which frame a sampler took
whatever the codec's small pixel errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from deeptrain_trainer.data.video_writer import VideoWriter

BANDS = 8
FAST = {"preset": "ultrafast"}


def numbered_frame(index: int, size: int = 64) -> np.ndarray:
    pixels = np.full((size, size, 3), 16, dtype=np.uint8)
    band = size // BANDS
    for bit in range(BANDS):
        if (index >> bit) & 1:
            pixels[:, bit * band:(bit + 1) * band] = 240
    return pixels


def read_number(image: Image.Image) -> int:
    pixels = np.asarray(image.convert("L"), dtype=np.float32)
    band = pixels.shape[1] // BANDS
    row = pixels[pixels.shape[0] // 2]
    return sum(1 << bit for bit in range(BANDS) if row[bit * band + band // 2] > 128)


def write_numbered_clip(path: Path, *, frames: int, fps: float, codec: str = "libx264",
                        size: int = 64, options: dict[str, str] | None = None) -> Path:
    if options is None and codec == "libx264":
        options = FAST
    with VideoWriter(path, fps, codec=codec, options=options) as writer:
        for index in range(frames):
            writer.write(numbered_frame(index % (1 << BANDS), size))
    return path
