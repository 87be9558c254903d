"""The image-crop builtin: one image per detected region, the box scaled by a margin and kept inside the image."""

from __future__ import annotations

import math
from typing import Any

from PIL import Image

DEFAULT_MARGIN = 1.0
SIDES = ("top_row", "left_col", "bottom_row", "right_col")

Box = dict[str, float]  # normalised: top_row, left_col, bottom_row, right_col in [0, 1]


def scale_box(box: Box, margin: float) -> Box:
    """`box` grown (or shrunk) by `margin` about its centre, clamped to the image."""
    centre_y = (box["top_row"] + box["bottom_row"]) / 2
    centre_x = (box["left_col"] + box["right_col"]) / 2
    half_h = (box["bottom_row"] - box["top_row"]) * margin / 2
    half_w = (box["right_col"] - box["left_col"]) * margin / 2
    return {"top_row": max(0.0, centre_y - half_h), "left_col": max(0.0, centre_x - half_w),
            "bottom_row": min(1.0, centre_y + half_h), "right_col": min(1.0, centre_x + half_w)}


def pixel_window(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) pixels covering `box`, at least one pixel each way."""
    left = min(max(0, math.floor(box["left_col"] * width)), width - 1)
    top = min(max(0, math.floor(box["top_row"] * height)), height - 1)
    right = max(left + 1, min(width, math.ceil(box["right_col"] * width)))
    bottom = max(top + 1, min(height, math.ceil(box["bottom_row"] * height)))
    return left, top, right, bottom


def crop_region(image: Image.Image, box: Box, margin: float) -> tuple[Image.Image, Box]:
    """The crop of `image` for `box` and the normalised box actually cut (after margin, clamping and rounding)."""
    width, height = image.size
    left, top, right, bottom = pixel_window(scale_box(box, margin), width, height)
    cut = {"top_row": top / height, "left_col": left / width, "bottom_row": bottom / height, "right_col": right / width}
    return image.crop((left, top, right, bottom)), cut


def box_in_parent(box: Box, window: Box | None) -> Box:
    """A box given relative to `window` (a crop's box in the input), expressed relative to the input."""
    if window is None:
        return dict(box)
    height = window["bottom_row"] - window["top_row"]
    width = window["right_col"] - window["left_col"]
    return {"top_row": window["top_row"] + box["top_row"] * height,
            "left_col": window["left_col"] + box["left_col"] * width,
            "bottom_row": window["top_row"] + box["bottom_row"] * height,
            "right_col": window["left_col"] + box["right_col"] * width}


def rounded(box: Box) -> dict[str, Any]:
    return {side: round(float(box[side]), 5) for side in SIDES}
