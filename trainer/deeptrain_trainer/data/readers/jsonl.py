"""JSON lines in the platform's annotation shape, one input per line.

    {"id": "a1", "image": "images/a1.png",            # or "text": "..." for text-classifier
     "concepts": [{"id": "cat", "value": 1}, {"id": "dog", "value": 0}],   # value 0: a negative
     "regions": [{"region_info": {"bounding_box": {"top_row": 0.1, "left_col": 0.2,
                                                   "bottom_row": 0.5, "right_col": 0.6}},
                  "data": {"concepts": [{"id": "cat"}]}},
                 {"region_info": {"polygon": {"points": [{"row": 0.1, "col": 0.2}, ...]}}, ...},
                 {"region_info": {"mask": {"image": {"uri": "masks/a1.png"}}}, ...}]}   # or "base64"

A video is a line with "video" instead of "image"; its concepts hold for every frame. Without
"frames", its frames are sampled at spec.dataset.videoFrameRate; with them, the annotated frames
are the records, each at its time offset in milliseconds and with its own concepts and regions:

    {"id": "v1", "video": "clips/v1.mp4", "concepts": [{"id": "cat"}],
     "frames": [{"frame_info": {"time": 1500}, "data": {"regions": [...]}}, ...]}

Coordinates are normalised (row = y, col = x). Image and video paths are relative to the jsonl
file's folder unless they are URIs. Blank lines are skipped.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Collection
from typing import Any

from .. import uris
from ..errors import DatasetError, line_location
from ..images import ImageLoadStats
from ..records import Box, ImageRecord, Mask, Point, Record, TextRecord
from ..video import is_video
from .common import annotation_file, fraction, require_known_concept


def _concepts(entries: Any, where: str, location: str,
              allowed: Collection[str] | None) -> tuple[list[str], list[str]]:
    """(positive, negative) concept ids of a platform concept list."""
    if not isinstance(entries, list):
        raise DatasetError(location, f"{where} must be a list of {{\"id\": ..., \"value\": ...}}")
    positives: list[str] = []
    negatives: list[str] = []
    for entry in entries:
        concept = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(concept, str) or not concept:
            raise DatasetError(location, f"every entry of {where} needs a string \"id\" (got {entry!r})")
        value = entry.get("value", 1)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DatasetError(location, f"{where}: value of {concept!r} must be a number (got {value!r})",
                               "use 1 for present and 0 for absent")
        if value == 0:
            negatives.append(concept)
        else:
            require_known_concept(concept, allowed, location)
            positives.append(concept)
    return positives, negatives


def _box(spec: Any, location: str) -> Box:
    if not isinstance(spec, dict):
        raise DatasetError(location, "bounding_box must be an object with top_row, left_col, bottom_row, right_col")
    top, left, bottom, right = (fraction(spec.get(key), f"bounding_box.{key}", location)
                                for key in ("top_row", "left_col", "bottom_row", "right_col"))
    if top >= bottom or left >= right:
        raise DatasetError(location, f"bounding_box is inverted or empty (top_row {top:g}, bottom_row {bottom:g}, "
                                     f"left_col {left:g}, right_col {right:g})",
                           "top_row must be less than bottom_row and left_col less than right_col")
    return (left, top, right, bottom)


def _polygon(spec: Any, location: str) -> tuple[Point, ...]:
    points = spec.get("points") if isinstance(spec, dict) else None
    if not isinstance(points, list) or len(points) < 3:
        raise DatasetError(location, "polygon needs a list of at least 3 points {\"row\": y, \"col\": x}")
    vertices: list[Point] = []
    for point in points:
        if not isinstance(point, dict):
            raise DatasetError(location, f"polygon point must be {{\"row\": y, \"col\": x}} (got {point!r})")
        vertices.append((fraction(point.get("col"), "polygon point col", location),
                         fraction(point.get("row"), "polygon point row", location)))
    return tuple(vertices)


def _mask_image(spec: Any, base_dir: str, location: str) -> Mask:
    image = spec.get("image") if isinstance(spec, dict) else None
    if isinstance(image, dict) and isinstance(image.get("base64"), str):
        try:
            return Mask(image_bytes=base64.b64decode(image["base64"], validate=True))
        except binascii.Error as error:
            raise DatasetError(location, f"mask.image.base64 is not valid base64 ({error})") from None
    target = image.get("uri", image.get("url")) if isinstance(image, dict) else None
    if not isinstance(target, str) or not target:
        raise DatasetError(location, "mask needs {\"image\": {\"uri\": ...}} or {\"image\": {\"base64\": ...}}")
    return Mask(image_uri=uris.join_uri(base_dir, target))


def _add_regions(regions: Any, base_dir: str, location: str, allowed: Collection[str] | None,
                 record: dict[str, list[Any]]) -> None:
    if not isinstance(regions, list):
        raise DatasetError(location, "regions must be a list")
    for region in regions:
        info = region.get("region_info") if isinstance(region, dict) else None
        kinds = [kind for kind in ("bounding_box", "polygon", "mask") if isinstance(info, dict) and kind in info]
        if len(kinds) != 1:
            raise DatasetError(location, "each region needs region_info with exactly one of bounding_box, polygon, mask")
        data = region.get("data") or {}
        positives, _ = _concepts(data.get("concepts", []) if isinstance(data, dict) else None,
                                 "region data.concepts", location, allowed)
        if not positives:
            raise DatasetError(location, "a region has no concept", "add data.concepts [{\"id\": ...}] to the region")
        kind = kinds[0]
        for concept in positives:
            if kind == "bounding_box":
                record["boxes"].append(_box(info[kind], location))
                record["box_concepts"].append(concept)
            else:
                mask = (Mask(polygon=_polygon(info[kind], location)) if kind == "polygon"
                        else _mask_image(info[kind], base_dir, location))
                record["masks"].append(mask)
                record["mask_concepts"].append(concept)


def _parse_line(text: str, location: str) -> dict[str, Any]:
    try:
        entry = json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(location, f"not valid JSON ({error.msg} at column {error.colno})",
                           "write one JSON object per line") from None
    if not isinstance(entry, dict):
        raise DatasetError(location, "each line must be a JSON object", "write one JSON object per line")
    return entry


def _text_record(entry: dict[str, Any], line_id: str, location: str,
                 allowed: Collection[str] | None) -> TextRecord:
    text = entry.get("text")
    if not isinstance(text, str):
        raise DatasetError(location, "missing \"text\" (a string)", "text-classifier needs {\"text\": ...} on every line")
    positives, negatives = _concepts(entry.get("concepts", []), "concepts", location, allowed)
    return TextRecord(text=text, concepts=positives, negative_concepts=negatives,
                      id=str(entry.get("id", line_id)), source=location)


def _frame_time_ms(frame: Any, location: str) -> int:
    info = frame.get("frame_info") if isinstance(frame, dict) else None
    time_ms = info.get("time") if isinstance(info, dict) else None
    if isinstance(time_ms, bool) or not isinstance(time_ms, int | float) or not math.isfinite(time_ms) or time_ms < 0:
        raise DatasetError(location, f"every entry of frames needs frame_info.time, a time offset in milliseconds >= 0 "
                                     f"(got {time_ms!r})", "write {\"frame_info\": {\"time\": 1500}, \"data\": {...}}")
    return int(round(time_ms))


def _video_records(entry: dict[str, Any], line_id: str, base_dir: str, location: str,
                   allowed: Collection[str] | None) -> list[ImageRecord]:
    video = entry.get("video", entry.get("image"))  # an "image" naming a video file is read as one
    if not isinstance(video, str) or not video:
        raise DatasetError(location, "\"video\" must be a path relative to this file, or a URI")
    uri = uris.join_uri(base_dir, video)
    positives, negatives = _concepts(entry.get("concepts", []), "concepts", location, allowed)
    record_id = str(entry.get("id", line_id))
    frames = entry.get("frames")
    if frames is None:
        return [ImageRecord(uri=uri, concepts=positives, negative_concepts=negatives, id=record_id, source=location)]
    if not isinstance(frames, list) or not frames:
        raise DatasetError(location, "frames must be a non-empty list of {\"frame_info\": {\"time\": ms}, \"data\": {...}}",
                           "or leave it out to sample the whole video")
    records = []
    for frame in frames:
        time_ms = _frame_time_ms(frame, location)
        data = frame.get("data") or {}
        if not isinstance(data, dict):
            raise DatasetError(location, "a frame's data must be an object with concepts and regions")
        frame_positives, frame_negatives = _concepts(data.get("concepts", []), "frame data.concepts", location, allowed)
        parts: dict[str, list[Any]] = {"boxes": [], "box_concepts": [], "masks": [], "mask_concepts": []}
        _add_regions(data.get("regions", []), base_dir, location, allowed, parts)
        records.append(ImageRecord(uri=uri, concepts=list(dict.fromkeys(positives + frame_positives)),
                                   negative_concepts=list(dict.fromkeys(negatives + frame_negatives)),
                                   frame_time_ms=time_ms, id=f"{record_id}@{time_ms}", source=location, **parts))
    return records


def _image_record(entry: dict[str, Any], line_id: str, base_dir: str, location: str,
                  allowed: Collection[str] | None) -> ImageRecord:
    image = entry.get("image")
    if not isinstance(image, str) or not image:
        raise DatasetError(location, "missing \"image\" or \"video\" (a path relative to this file, or a URI)",
                           "image model types need {\"image\": ...} or {\"video\": ...} on every line")
    positives, negatives = _concepts(entry.get("concepts", []), "concepts", location, allowed)
    parts: dict[str, list[Any]] = {"boxes": [], "box_concepts": [], "masks": [], "mask_concepts": []}
    _add_regions(entry.get("regions", []), base_dir, location, allowed, parts)
    return ImageRecord(uri=uris.join_uri(base_dir, image), concepts=positives, negative_concepts=negatives,
                       id=str(entry.get("id", line_id)), source=location, **parts)


def read_jsonl(uri: str, *, text_input: bool, concepts: Collection[str] | None,
               skipped: ImageLoadStats | None = None) -> list[Record]:
    """Records of every line; a malformed line raises DatasetError, or is counted in `skipped` when given."""
    path = annotation_file(uri, ".jsonl", "jsonl")
    base_dir = uris.parent_uri(path)
    try:
        content = uris.read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError(path, f"not UTF-8 text ({error.reason})", "save the file as UTF-8") from None
    records: list[Record] = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        location = line_location(path, number)
        line_id = f"line-{number}"
        try:
            entry = _parse_line(line, location)
            if text_input:
                records.append(_text_record(entry, line_id, location, concepts))
            elif "video" in entry or is_video(str(entry.get("image", ""))):
                records.extend(_video_records(entry, line_id, base_dir, location, concepts))
            else:
                records.append(_image_record(entry, line_id, base_dir, location, concepts))
        except DatasetError as error:
            if skipped is None:
                raise
            skipped.record_skipped(location, error.problem)
            continue
        if skipped is not None:
            skipped.record_loaded()
    if not records:
        raise DatasetError(path, "the file has no entries", "write one JSON object per input")
    return records
