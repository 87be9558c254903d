"""Brick-wall patches: `good` ones, and ones with scratches or a blob of gravel, MVTec-style."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .output import save_png

PATCH_SIZE = 64
NUM_GOOD = 200
NUM_PER_DEFECT = 40
SEED = 20240604
DEFECTS = ("scratch", "blob")


def _textures() -> tuple[np.ndarray, np.ndarray]:
    import skimage.data

    return skimage.data.brick(), skimage.data.gravel()


def _crop(texture: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    top, left = (int(v) for v in rng.integers(0, texture.shape[0] - PATCH_SIZE + 1, size=2))
    patch = texture[top : top + PATCH_SIZE, left : left + PATCH_SIZE].astype(np.float32)
    return patch * float(rng.uniform(0.9, 1.1))  # lighting varies a little between good patches too


def _scratch(patch: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    mask_image = Image.new("L", (PATCH_SIZE, PATCH_SIZE), 0)
    draw = ImageDraw.Draw(mask_image)
    for _ in range(int(rng.integers(1, 3))):
        start, end = rng.integers(4, PATCH_SIZE - 4, size=2), rng.integers(4, PATCH_SIZE - 4, size=2)
        draw.line([tuple(int(v) for v in start), tuple(int(v) for v in end)], fill=255, width=int(rng.integers(2, 4)))
    mask = np.asarray(mask_image) > 0
    shade = 20.0 if rng.random() < 0.5 else 235.0
    return np.where(mask, shade, patch), mask


def _blob(patch: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    radius_x, radius_y = (int(v) for v in rng.integers(6, 15, size=2))
    centre_x, centre_y = (int(v) for v in rng.integers(16, PATCH_SIZE - 16, size=2))
    mask_image = Image.new("L", (PATCH_SIZE, PATCH_SIZE), 0)
    ImageDraw.Draw(mask_image).ellipse([centre_x - radius_x, centre_y - radius_y, centre_x + radius_x, centre_y + radius_y], fill=255)
    mask = np.asarray(mask_image) > 0
    return np.where(mask, _crop(other, rng), patch), mask


def write_texture_anomaly(output: Path, limit: int | None) -> str:
    brick, gravel = _textures()
    rng = np.random.default_rng(SEED)
    scale = 1.0 if limit is None else min(1.0, limit / (NUM_GOOD + NUM_PER_DEFECT * len(DEFECTS)))
    num_good, num_defect = max(2, round(NUM_GOOD * scale)), max(1, round(NUM_PER_DEFECT * scale))
    for index in range(num_good):
        save_png(_crop(brick, rng).clip(0, 255).astype(np.uint8), output / "good" / f"{index:04d}.png")
    for defect in DEFECTS:
        for index in range(num_defect):
            patch = _crop(brick, rng)
            damaged, mask = _scratch(patch, rng) if defect == "scratch" else _blob(patch, gravel, rng)
            save_png(damaged.clip(0, 255).astype(np.uint8), output / defect / f"{index:04d}.png")
            save_png(mask.astype(np.uint8) * 255, output / "ground_truth" / defect / f"{index:04d}_mask.png")
    return (f"{num_good} good and {num_defect * len(DEFECTS)} defective ({', '.join(DEFECTS)}) {PATCH_SIZE} px patches "
            f"with ground-truth masks (imagefolder; dataset.uri: {output}; training uses only good)")
