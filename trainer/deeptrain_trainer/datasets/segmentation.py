"""Large digits on photographic textures with per-pixel masks, as jsonl with base64 mask regions."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from .canvas import background_sources, bright_colour, place_boxes, random_background
from .digits import DIGIT_NAMES, glyph_alpha, load_digit_glyphs
from .output import png_bytes, save_png, write_jsonl

SEGMENT_DIGITS = (0, 1, 4)  # shapes that differ clearly: a ring, a stroke, an open angle
NUM_IMAGES = 500
SEED = 20240603
MASK_THRESHOLD = 0.5  # glyph coverage above which a pixel belongs to the digit


def render_scene(sources: list[np.ndarray], glyphs_by_digit: dict[int, np.ndarray],
                 rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    width, height = (int(v) for v in rng.integers(96, 113, size=2))
    pixels = random_background(sources, width, height, rng)
    objects = []
    count = int(rng.integers(1, 4))
    for left, top, size in place_boxes([int(s) for s in rng.integers(32, 57, size=count)], width, height, rng):
        digit = SEGMENT_DIGITS[int(rng.integers(len(SEGMENT_DIGITS)))]
        glyphs = glyphs_by_digit[digit]
        alpha = glyph_alpha(glyphs[int(rng.integers(len(glyphs)))], size, float(rng.uniform(-15, 15)))
        coverage = np.zeros((height, width), dtype=np.float32)
        coverage[top : top + size, left : left + size] = alpha
        pixels = pixels + coverage[..., None] * (bright_colour(rng) - pixels)
        objects.append((DIGIT_NAMES[digit], coverage > MASK_THRESHOLD))
    return pixels.clip(0, 255).astype(np.uint8), objects


def write_digits_segmentation(output: Path, limit: int | None) -> str:
    sources = background_sources()
    glyphs, labels = load_digit_glyphs()
    glyphs_by_digit = {digit: glyphs[labels == digit] for digit in SEGMENT_DIGITS}
    rng = np.random.default_rng(SEED)
    count = NUM_IMAGES if limit is None else min(limit, NUM_IMAGES)
    entries = []
    regions_written = 0
    for index in range(count):
        pixels, objects = render_scene(sources, glyphs_by_digit, rng)
        save_png(pixels, output / "images" / f"{index:04d}.png")
        regions = [{"region_info": {"mask": {"image": {"base64": base64.b64encode(png_bytes(mask.astype(np.uint8) * 255)).decode()}}},
                    "data": {"concepts": [{"id": concept, "value": 1}]}} for concept, mask in objects]
        regions_written += len(regions)
        entries.append({"id": f"scene-{index:04d}", "image": f"images/{index:04d}.png", "regions": regions})
    write_jsonl(output / "annotations.jsonl", entries)
    names = ", ".join(DIGIT_NAMES[d] for d in SEGMENT_DIGITS)
    return f"{count} images with {regions_written} masks of {names} (jsonl; dataset.uri: {output / 'annotations.jsonl'})"
