"""Pillow + NumPy transforms: resize to SxS, uint8 pixels to tensors, batch normalisation, masks and boxes.

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


# normalise() in two in-place passes: (x / 255 - mean) / std = x * SCALE - SHIFT, per channel.
_SCALE = torch.from_numpy(1.0 / (255.0 * IMAGENET_STD)).view(3, 1, 1)
_SHIFT = torch.from_numpy(IMAGENET_MEAN / IMAGENET_STD).view(3, 1, 1)


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> uint8 tensor [3, H, W] (a view of the pixels; normalise() makes the model input)."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 images [..., 3, H, W] -> float32 normalised with the ImageNet mean and std.

    Done once per batch, not per item: a 32-image batch costs three tensor ops instead of 32 x 4
    NumPy passes.
    """
    # [B, 3, H, W] uint8 -> [B, 3, H, W] float32
    return images.to(torch.float32).mul_(_SCALE).sub_(_SHIFT)


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
