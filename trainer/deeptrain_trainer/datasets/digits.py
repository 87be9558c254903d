"""Handwritten digits (scikit-learn's copy of the UCI optdigits set) as 32 px RGB images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .output import save_png, write_jsonl

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
IMAGE_SIZE = 32
SEED = 20240601
# The last glyphs of scikit-learn's set never go into `digits`: `digits-holdout` renders them, so a
# model trained on `digits` can be tried on inputs it has seen neither in training nor in validation.
HOLDOUT_GLYPHS = 50


def load_digit_glyphs() -> tuple[np.ndarray, np.ndarray]:
    """(glyphs [N, 8, 8] float in [0, 1], labels [N]) from the data scikit-learn ships."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images / 16.0, digits.target


def glyph_alpha(glyph: np.ndarray, size: int, angle: float) -> np.ndarray:
    """An 8x8 glyph upscaled to size x size and rotated: float coverage in [0, 1]."""
    small = Image.fromarray((glyph * 255).astype(np.uint8), mode="L")
    large = small.resize((size, size), Image.Resampling.BICUBIC)
    rotated = large.rotate(angle, resample=Image.Resampling.BILINEAR)
    return np.asarray(rotated, dtype=np.float32) / 255.0


def render_digit(glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One 32x32 RGB image: the glyph shifted, rotated and coloured at random, with sensor-like noise."""
    glyph_size = int(rng.integers(24, 29))
    alpha = glyph_alpha(glyph, glyph_size, float(rng.uniform(-8, 8)))
    canvas = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    top, left = rng.integers(0, IMAGE_SIZE - glyph_size + 1, size=2)
    canvas[top : top + glyph_size, left : left + glyph_size] = alpha
    # Bright ink on a darker, tinted background: contrast and hue vary, polarity does not, so that a
    # small network learns the digits within a few minutes of CPU time.
    background = rng.uniform(0, 100, size=3)
    foreground = rng.uniform(150, 255, size=3)
    pixels = background + canvas[..., None] * (foreground - background)
    pixels += rng.normal(0, 6, size=pixels.shape)
    return pixels.clip(0, 255).astype(np.uint8)


def digit_images(limit: int | None, *, holdout: bool = False) -> list[tuple[np.ndarray, str]]:
    glyphs, labels = load_digit_glyphs()
    first = len(glyphs) - HOLDOUT_GLYPHS
    indices = range(first, len(glyphs)) if holdout else range(first)
    if limit is not None:
        indices = indices[:limit]
    rng = np.random.default_rng(SEED + 1 if holdout else SEED)
    return [(render_digit(glyphs[i], rng), DIGIT_NAMES[labels[i]]) for i in indices]


def write_digits_imagefolder(output: Path, limit: int | None, *, holdout: bool = False) -> str:
    images = digit_images(limit, holdout=holdout)
    for index, (pixels, concept) in enumerate(images):
        save_png(pixels, output / concept / f"{index:04d}.png")
    return f"{len(images)} digit images in {len(set(c for _, c in images))} concepts (imagefolder; dataset.uri: {output})"


def write_digits_holdout(output: Path, limit: int | None) -> str:
    return write_digits_imagefolder(output, limit, holdout=True)


def write_digits_jsonl(output: Path, limit: int | None) -> str:
    images = digit_images(limit)
    entries = []
    for index, (pixels, concept) in enumerate(images):
        save_png(pixels, output / "images" / f"{index:04d}.png")
        entries.append({"id": f"digit-{index:04d}", "image": f"images/{index:04d}.png",
                        "concepts": [{"id": concept, "value": 1}]})
    write_jsonl(output / "annotations.jsonl", entries)
    return f"{len(images)} digit images in {len(set(c for _, c in images))} concepts (jsonl; dataset.uri: {output / 'annotations.jsonl'})"
