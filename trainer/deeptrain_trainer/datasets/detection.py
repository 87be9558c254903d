"""Drawn shapes on photographic textures, with boxes and polygons, as COCO instances JSON."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .canvas import background_sources, bright_colour, place_boxes, random_background
from .output import save_png, write_json

SHAPES = ("circle", "square", "triangle")
NUM_IMAGES = 600
SEED = 20240602
CIRCLE_VERTICES = 24


def shape_polygon(shape: str, left: int, top: int, size: int) -> list[tuple[float, float]]:
    if shape == "square":
        return [(left, top), (left + size, top), (left + size, top + size), (left, top + size)]
    if shape == "triangle":
        return [(left + size / 2, top), (left + size, top + size), (left, top + size)]
    radius = size / 2
    return [(left + radius + radius * math.cos(2 * math.pi * k / CIRCLE_VERTICES),
             top + radius + radius * math.sin(2 * math.pi * k / CIRCLE_VERTICES)) for k in range(CIRCLE_VERTICES)]


def render_scene(sources: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[str, list[tuple[float, float]]]]]:
    width, height = (int(v) for v in rng.integers(96, 129, size=2))
    pixels = random_background(sources, width, height, rng).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    count = int(rng.integers(1, 4))
    objects = []
    for left, top, size in place_boxes([int(s) for s in rng.integers(24, 57, size=count)], width, height, rng):
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        polygon = shape_polygon(shape, left, top, size)
        fill = tuple(int(c) for c in bright_colour(rng))
        draw.polygon(polygon, fill=fill, outline=(0, 0, 0), width=2)
        objects.append((shape, polygon))
    return np.asarray(image), objects


def write_shapes_detection(output: Path, limit: int | None) -> str:
    sources = background_sources()
    rng = np.random.default_rng(SEED)
    count = NUM_IMAGES if limit is None else min(limit, NUM_IMAGES)
    images, annotations = [], []
    for image_id in range(1, count + 1):
        pixels, objects = render_scene(sources, rng)
        file_name = f"{image_id:04d}.png"
        save_png(pixels, output / "images" / file_name)
        images.append({"id": image_id, "file_name": file_name, "width": pixels.shape[1], "height": pixels.shape[0]})
        for shape, polygon in objects:
            xs, ys = [x for x, _ in polygon], [y for _, y in polygon]
            box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": SHAPES.index(shape) + 1,
                                "bbox": [round(v, 2) for v in box], "area": round(box[2] * box[3], 2), "iscrowd": 0,
                                "segmentation": [[round(v, 2) for point in polygon for v in point]]})
    categories = [{"id": i + 1, "name": shape, "supercategory": "shape"} for i, shape in enumerate(SHAPES)]
    write_json(output / "annotations.json", {"images": images, "annotations": annotations, "categories": categories})
    return (f"{count} images with {len(annotations)} boxes of {', '.join(SHAPES)} "
            f"(coco; dataset.uri: {output / 'annotations.json'})")
