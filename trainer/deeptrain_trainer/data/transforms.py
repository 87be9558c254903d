"""Pillow + NumPy transforms: resize to SxS, optional horizontal flip, normalise.

Images are resized bilinearly, masks with nearest neighbour, without keeping the aspect ratio
(normalised boxes and polygons then map to the square by scaling alone). A flip mirrors the pixels,
the rasterised masks and the boxes (x1' = 1 - x2, x2' = 1 - x1) together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from .images import load_mask_image
from .records import Box, Mask

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def resize_image(image: Image.Image, size: int) -> Image.Image:
    return image.resize((size, size), Image.Resampling.BILINEAR)


def flip_image(image: Image.Image) -> Image.Image:
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> float tensor [3, H, W] normalised with the ImageNet mean and std."""
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    normalised = (pixels - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))


def flip_boxes(boxes: Sequence[Box]) -> list[Box]:
    return [(1.0 - x2, y1, 1.0 - x1, y2) for x1, y1, x2, y2 in boxes]


def boxes_to_pixels(boxes: Sequence[Box], size: int) -> torch.Tensor:
    """Normalised boxes -> FloatTensor [N, 4] of x1, y1, x2, y2 in pixels of the SxS image."""
    if not boxes:
        return torch.zeros((0, 4), dtype=torch.float32)
    return torch.tensor(boxes, dtype=torch.float32) * size


def rasterize_mask(mask: Mask, size: tuple[int, int]) -> np.ndarray:
    """A mask as a boolean [height, width] array for (width, height) `size` (before any flip)."""
    width, height = size
    if mask.polygon is not None:
        canvas = Image.new("L", (width, height), 0)
        ImageDraw.Draw(canvas).polygon([(x * width, y * height) for x, y in mask.polygon], fill=1)
        return np.asarray(canvas, dtype=bool)
    image = load_mask_image(mask.image_uri, mask.image_bytes)
    return np.asarray(image.resize((width, height), Image.Resampling.NEAREST)) > 0


def flip_mask(mask: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(mask[:, ::-1])
