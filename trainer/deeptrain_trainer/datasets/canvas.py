"""Textured backgrounds and non-overlapping object placement for the detection and segmentation sets."""

from __future__ import annotations

import numpy as np

# scikit-image's bundled photographs and textures (read through the package at make time).
BACKGROUND_IMAGES = ("brick", "grass", "gravel", "coffee", "rocket")
PLACEMENT_TRIES = 40


def background_sources() -> list[np.ndarray]:
    import skimage.data

    sources = []
    for name in BACKGROUND_IMAGES:
        pixels = getattr(skimage.data, name)()
        sources.append(np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels[..., :3])
    return sources


def random_background(sources: list[np.ndarray], width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A crop of one source, its contrast lowered so that objects stay the salient thing. float [H, W, 3]."""
    source = sources[int(rng.integers(len(sources)))]
    top = int(rng.integers(0, source.shape[0] - height + 1))
    left = int(rng.integers(0, source.shape[1] - width + 1))
    crop = source[top : top + height, left : left + width].astype(np.float32)
    return crop * 0.55 + 0.45 * float(rng.uniform(60, 190))


def place_boxes(sizes: list[int], width: int, height: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(left, top, size) for squares of the given sizes that neither overlap nor touch; some may be dropped."""
    placed: list[tuple[int, int, int]] = []
    for size in sizes:
        for _ in range(PLACEMENT_TRIES):
            left, top = int(rng.integers(0, width - size + 1)), int(rng.integers(0, height - size + 1))
            if all(left + size + 2 <= x or x + s + 2 <= left or top + size + 2 <= y or y + s + 2 <= top
                   for x, y, s in placed):
                placed.append((left, top, size))
                break
    return placed


def bright_colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated colour: one channel high, one low, one anywhere."""
    channels = rng.permutation(3)
    colour = np.empty(3, dtype=np.float32)
    colour[channels[0]] = rng.uniform(200, 255)
    colour[channels[1]] = rng.uniform(0, 60)
    colour[channels[2]] = rng.uniform(0, 255)
    return colour
