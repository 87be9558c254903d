"""Short clips of one handwritten digit drifting over a tinted background, encoded H.264 in MP4.

Each clip shows one scikit-learn digit glyph (its concept), a different glyph per clip, moving and
bouncing off the edges, with fresh sensor-like noise in every frame. The clips sit in
ROOT/<digit>/ (imagefolder: a video classifier's data), and ROOT/annotations.jsonl lists the same
clips with the digit's box every half second (jsonl per-frame regions: a detector's data).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from ..data.video_writer import VideoWriter
from .digits import DIGIT_NAMES, HOLDOUT_GLYPHS, glyph_alpha, load_digit_glyphs
from .output import write_jsonl

NUM_CLIPS = 300
SEED = 20240603
FRAME_SIZE = 40
FRAMES_PER_SECOND = 8
SECONDS = 4
ANNOTATION_INTERVAL_MS = 500
# One encoder thread: the same clips give the same bytes on every machine.
ENCODER_OPTIONS = {"threads": "1", "preset": "veryfast", "crf": "18"}

Box = tuple[float, float, float, float]


def clip_frames(glyph: np.ndarray, rng: np.random.Generator) -> list[tuple[np.ndarray, Box]]:
    """Every frame of one clip [H, W, 3] uint8, with the glyph's normalised box (x1, y1, x2, y2)."""
    size = int(rng.integers(22, 27))
    alpha = glyph_alpha(glyph, size, float(rng.uniform(-8, 8)))[..., None]
    background = rng.uniform(0, 100, size=3)
    foreground = rng.uniform(150, 255, size=3)
    position = rng.uniform(0, FRAME_SIZE - size, size=2)
    velocity = rng.uniform(0.5, 1.5, size=2) * rng.choice([-1, 1], size=2)
    frames = []
    for _ in range(FRAMES_PER_SECOND * SECONDS):
        left, top = (int(round(v)) for v in position)
        coverage = np.zeros((FRAME_SIZE, FRAME_SIZE, 1), dtype=np.float32)
        coverage[top:top + size, left:left + size] = alpha
        pixels = background + coverage * (foreground - background) + rng.normal(0, 6, size=(FRAME_SIZE, FRAME_SIZE, 3))
        frames.append((pixels.clip(0, 255).astype(np.uint8),
                       (left / FRAME_SIZE, top / FRAME_SIZE, (left + size) / FRAME_SIZE, (top + size) / FRAME_SIZE)))
        position += velocity
        for axis in range(2):  # bounce off the edges
            if not 0 <= position[axis] <= FRAME_SIZE - size:
                velocity[axis] = -velocity[axis]
                position[axis] = min(max(position[axis], 0), FRAME_SIZE - size)
    return frames


def _frame_annotation(time_ms: int, concept: str, box: Box) -> dict[str, Any]:
    left, top, right, bottom = (round(v, 4) for v in box)
    return {"frame_info": {"time": time_ms}, "data": {"regions": [{
        "region_info": {"bounding_box": {"top_row": top, "left_col": left, "bottom_row": bottom, "right_col": right}},
        "data": {"concepts": [{"id": concept}]}}]}}


def write_digits_video(output: Path, limit: int | None, *, concepts: Collection[str] | None = None) -> str:
    """`concepts` keeps the clips of those digits only (the same clips as in the full set, fewer to encode)."""
    glyphs, labels = load_digit_glyphs()
    usable = len(glyphs) - HOLDOUT_GLYPHS  # the holdout glyphs stay out of every training set
    rng = np.random.default_rng(SEED)
    count = min(NUM_CLIPS if limit is None else limit, NUM_CLIPS, usable)
    frame_ms = 1000 // FRAMES_PER_SECOND
    step = ANNOTATION_INTERVAL_MS // frame_ms
    entries = []
    for clip in range(count):
        concept = DIGIT_NAMES[labels[clip]]
        frames = clip_frames(glyphs[clip], rng)  # drawn for every clip, so that each clip's pixels never change
        if concepts is not None and concept not in concepts:
            continue
        name = f"{concept}/clip-{clip:03d}.mp4"
        with VideoWriter(output / name, FRAMES_PER_SECOND, options=ENCODER_OPTIONS) as writer:
            for pixels, _ in frames:
                writer.write(pixels)
        entries.append({"id": f"clip-{clip:03d}", "video": name, "concepts": [{"id": concept}],
                        "frames": [_frame_annotation(index * frame_ms, concept, box)
                                   for index, (_, box) in enumerate(frames) if index % step == 0]})
    write_jsonl(output / "annotations.jsonl", entries)
    return (f"{len(entries)} clips of {SECONDS} s ({FRAMES_PER_SECOND} fps, {FRAME_SIZE} px, H.264/MP4), each one moving digit "
            f"(imagefolder; dataset.uri: {output}; per-frame boxes in {output / 'annotations.jsonl'})")
