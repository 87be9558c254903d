"""COCO instances JSON: images, annotations (bbox [x, y, w, h] in pixels, polygon or uncompressed
RLE segmentation), categories (the category name is the concept).

Image file names are relative to the JSON file's folder, or to an `images/` folder beside it.
Boxes are clamped to the image (as the platform's COCO import does); a box left empty is an error.
An annotation without segmentation gets its box as its mask.
"""

from __future__ import annotations

import io
import json
from collections.abc import Collection
from typing import Any

import numpy as np
from PIL import Image

from .. import uris
from ..errors import DatasetError, line_location
from ..records import Box, ImageRecord, Mask, Point
from .common import annotation_file, require_known_concept

IMAGES_DIR = "images"


def _load_document(path: str) -> dict[str, Any]:
    try:
        document = json.loads(uris.read_bytes(path))
    except json.JSONDecodeError as error:
        raise DatasetError(line_location(path, error.lineno), f"not valid JSON ({error.msg})") from None
    except UnicodeDecodeError as error:
        raise DatasetError(path, f"not UTF-8 text ({error.reason})", "save the file as UTF-8") from None
    if not isinstance(document, dict) or not all(isinstance(document.get(key), list)
                                                 for key in ("images", "annotations", "categories")):
        raise DatasetError(path, "a COCO file needs lists \"images\", \"annotations\" and \"categories\"")
    return document


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and bool(np.isfinite(value))


def _image_base(json_dir: str, images: list[dict[str, Any]]) -> str:
    """Where file names start: the JSON's folder, or images/ beside it (decided once, from the first image)."""
    images_dir = uris.join_uri(json_dir, IMAGES_DIR)
    if images and uris.is_dir(images_dir) and not uris.exists(uris.join_uri(json_dir, str(images[0].get("file_name")))):
        return images_dir
    return json_dir


def _rle_mask_png(segmentation: dict[str, Any], where: str, path: str) -> bytes:
    counts, size = segmentation.get("counts"), segmentation.get("size")
    if isinstance(counts, str):
        raise DatasetError(path, f"{where}: compressed RLE is not supported",
                           "write segmentation as polygons or uncompressed RLE (a list of counts)")
    if not (isinstance(counts, list) and all(isinstance(c, int) and c >= 0 for c in counts)
            and isinstance(size, list) and len(size) == 2):
        raise DatasetError(path, f"{where}: RLE needs \"counts\" (a list of run lengths) and \"size\" [height, width]")
    height, width = int(size[0]), int(size[1])
    if sum(counts) != height * width:
        raise DatasetError(path, f"{where}: RLE counts add up to {sum(counts)}, not height*width = {height * width}")
    # Runs alternate background/object starting with background, in column-major order.
    values = np.repeat(np.arange(len(counts)) % 2, counts).astype(np.uint8) * 255
    mask = values.reshape((width, height)).T
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(mask), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _masks(segmentation: Any, box: Box, width: float, height: float, where: str, path: str) -> list[Mask]:
    if not segmentation:
        left, top, right, bottom = box
        return [Mask(polygon=((left, top), (right, top), (right, bottom), (left, bottom)))]
    if isinstance(segmentation, dict):
        return [Mask(image_bytes=_rle_mask_png(segmentation, where, path))]
    if not isinstance(segmentation, list):
        raise DatasetError(path, f"{where}: segmentation must be a list of polygons or an RLE object")
    masks = []
    for polygon in segmentation:
        if not (isinstance(polygon, list) and len(polygon) >= 6 and len(polygon) % 2 == 0
                and all(_number(value) for value in polygon)):
            raise DatasetError(path, f"{where}: each polygon must be a flat list [x1, y1, x2, y2, ...] of at least 3 points")
        points: tuple[Point, ...] = tuple(
            (min(max(x / width, 0.0), 1.0), min(max(y / height, 0.0), 1.0))
            for x, y in zip(polygon[0::2], polygon[1::2], strict=True))
        masks.append(Mask(polygon=points))
    return masks


def _box(bbox: Any, width: float, height: float, where: str, path: str) -> Box:
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(value) for value in bbox)):
        raise DatasetError(path, f"{where}: bbox must be [x, y, width, height] in pixels (got {bbox!r})")
    x, y, w, h = bbox
    left, top = max(x / width, 0.0), max(y / height, 0.0)
    right, bottom = min((x + w) / width, 1.0), min((y + h) / height, 1.0)
    if w <= 0 or h <= 0 or left >= right or top >= bottom:
        raise DatasetError(path, f"{where}: bbox {bbox} is empty or outside the {width:g}x{height:g} image",
                           "give [x, y, width, height] in pixels with positive width and height")
    return (left, top, right, bottom)


def read_coco(uri: str, *, concepts: Collection[str] | None) -> list[ImageRecord]:
    path = annotation_file(uri, ".json", "COCO")
    document = _load_document(path)
    categories: dict[Any, str] = {}
    for index, category in enumerate(document["categories"]):
        if not isinstance(category, dict) or not isinstance(category.get("name"), str) or "id" not in category:
            raise DatasetError(path, f"categories[{index}] needs an \"id\" and a string \"name\"")
        categories[category["id"]] = category["name"]
    images: list[dict[str, Any]] = document["images"]
    if not images:
        raise DatasetError(path, "\"images\" is empty", "list the dataset's images")
    base = _image_base(uris.parent_uri(path), images)
    parts: dict[Any, dict[str, list[Any]]] = {}
    sizes: dict[Any, tuple[float, float]] = {}
    for index, image in enumerate(images):
        if not (isinstance(image, dict) and isinstance(image.get("file_name"), str) and "id" in image
                and _number(image.get("width")) and _number(image.get("height"))
                and image["width"] > 0 and image["height"] > 0):
            raise DatasetError(path, f"images[{index}] needs \"id\", \"file_name\" and positive \"width\" and \"height\"")
        sizes[image["id"]] = (float(image["width"]), float(image["height"]))
        parts[image["id"]] = {"concepts": [], "boxes": [], "box_concepts": [], "box_crowd": [], "masks": [],
                              "mask_concepts": []}
    for index, annotation in enumerate(document["annotations"]):
        where = f"annotations[{index}]" + (f" (id {annotation['id']})" if isinstance(annotation, dict) and "id" in annotation else "")
        if not isinstance(annotation, dict) or annotation.get("image_id") not in parts:
            raise DatasetError(path, f"{where}: image_id does not name an entry of \"images\"")
        concept = categories.get(annotation.get("category_id"))
        if concept is None:
            raise DatasetError(path, f"{where}: category_id {annotation.get('category_id')!r} does not name an entry of \"categories\"")
        require_known_concept(concept, concepts, path)
        width, height = sizes[annotation["image_id"]]
        box = _box(annotation.get("bbox"), width, height, where, path)
        record = parts[annotation["image_id"]]
        crowd = annotation.get("iscrowd", 0)
        if crowd not in (0, 1):  # True/False compare equal to 1/0
            raise DatasetError(path, f"{where}: iscrowd must be 0 or 1, not {crowd!r}")
        record["boxes"].append(box)
        record["box_concepts"].append(concept)
        record["box_crowd"].append(bool(crowd))
        for mask in _masks(annotation.get("segmentation"), box, width, height, where, path):
            record["masks"].append(mask)
            record["mask_concepts"].append(concept)
        if concept not in record["concepts"]:
            record["concepts"].append(concept)
    return [ImageRecord(uri=uris.join_uri(base, image["file_name"]), id=str(image["id"]),
                        source=f"{path} (image {image['file_name']})", **parts[image["id"]])
            for image in images]
