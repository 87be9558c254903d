"""Request inputs -> graph inputs: images sent inline (base64 or multipart) or by URI, texts, query vectors.

Two steps, both for a worker thread. `raw_inputs_from_json` checks the request's shape and gathers
each input's encoded bytes; `decode_inputs` reads every image's header first (Pillow opens
lazily: a few bytes, no pixels), refuses the request when one image or all of them together are
over the pixel limits, and only then decodes. A 20000x20000 PNG of a few hundred KB is refused
before it can become 1.2 GB of pixels. A video is kept as its bytes: its frames are decoded, checked
against the same pixel limit and sampled while the graph runs (workflow.video).

A server that opens any URI it is sent reads any file its pod can read and reaches any host its
pod can reach, so URIs are refused unless they start with one of the prefixes the server was
started with (`--allow-uri-prefix`, e.g. the indexed dataset's folder). Error messages never show
where the server keeps its files.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from ..data.images import to_rgb
from ..data.uris import filesystem, read_bytes, resolve_uri
from .errors import TooLarge, Unprocessable, WorkflowError
from .graph import GraphInput
from .limits import ServeLimits
from .video import video_graph_input, video_rate

# The platform's limit on inputs per workflow request.
MAX_INPUTS = 32
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class RawInput:
    """One input as the request carried it: an encoded image or video, or a text, and where it came from."""

    name: str  # what the output calls it
    where: str  # the request field, for messages
    data: bytes | None = None
    text: str | None = None
    video_rate: float | None = None  # set for a video: frames per second to sample


def open_image(data: bytes, where: str, max_pixels: int) -> Image.Image:
    """The image with only its header read; TooLarge when it has more than `max_pixels` pixels."""
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:  # Pillow's own guard, when it is stricter than ours
        counted = re.search(r"\((\d+) pixels\)", str(error))
        raise _too_many_pixels(where, f"has {int(counted.group(1)):,} pixels" if counted else "has too many pixels",
                               max_pixels) from error
    except Exception as error:  # noqa: BLE001 (every failure to parse untrusted bytes means "not an image")
        raise _not_an_image(where, error) from error
    pixels = image.width * image.height
    if pixels > max_pixels:
        raise _too_many_pixels(where, f"is {image.width}x{image.height} = {pixels:,} pixels", max_pixels)
    return image


def decode(image: Image.Image, where: str) -> Image.Image:
    """An opened image's pixels, upright (EXIF orientation) and RGB, as the models were trained on."""
    try:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # in place: a copy would double the peak memory
        return to_rgb(image)
    except Exception as error:  # noqa: BLE001 (truncated files, bad chunks and odd modes all mean "not an image")
        raise _not_an_image(where, error) from error


def _too_many_pixels(where: str, size: str, max_pixels: int) -> TooLarge:
    return TooLarge(f"{where}: the image {size}; this server decodes at most {max_pixels:,} pixels per image "
                    "(max_image_pixels); scale it down before sending")


def _not_an_image(where: str, error: Exception) -> Unprocessable:
    detail = str(error).split(" <", 1)[0][:200]  # Pillow's message may end with the repr of an in-memory file
    return Unprocessable(f"{where}: is not a decodable image ({type(error).__name__}: {detail}); "
                         "send PNG, JPEG, BMP, GIF, TIFF or WebP bytes")


def decode_inputs(raws: Sequence[RawInput], limits: ServeLimits) -> list[GraphInput]:
    """Graph inputs, or TooLarge before any pixel is decoded when the images are over the limits."""
    check_count(len(raws))
    opened: list[Image.Image | None] = []
    total = 0
    for raw in raws:
        if raw.data is None or raw.video_rate is not None:  # videos check their frames' pixels as they decode
            opened.append(None)
            continue
        image = open_image(raw.data, raw.where, limits.max_image_pixels)
        total += image.width * image.height
        opened.append(image)
    if total > limits.max_request_pixels:
        raise TooLarge(f"inputs: the request's images hold {total:,} pixels together; this server decodes at most "
                       f"{limits.max_request_pixels:,} per request (max_request_pixels); send fewer or smaller images")
    return [video_graph_input(raw, limits) if raw.video_rate is not None
            else GraphInput(name=raw.name, text=raw.text) if image is None
            else GraphInput(name=raw.name, image=decode(image, raw.where))
            for raw, image in zip(raws, opened, strict=True)]


def image_bytes(reference: Any, where: str, allowed_prefixes: Sequence[str], max_bytes: int) -> tuple[bytes, str]:
    """(encoded image, name) for {"base64": ...} or {"uri": ...}."""
    if not isinstance(reference, dict) or len(reference.keys() & {"base64", "uri"}) != 1:
        raise WorkflowError(f"{where}: give exactly one of {{\"base64\": ...}} or {{\"uri\": ...}}")
    if "base64" in reference:
        encoded = reference["base64"]
        if not isinstance(encoded, str):
            raise WorkflowError(f"{where}.base64: must be a string of base64")
        try:
            return base64.b64decode(encoded, validate=True), where
        except (binascii.Error, ValueError) as error:
            raise WorkflowError(f"{where}.base64: is not valid base64 ({error})") from error
    uri = reference["uri"]
    if not isinstance(uri, str) or not uri:
        raise WorkflowError(f"{where}.uri: must be a non-empty string")
    if not _allowed(uri, allowed_prefixes):
        raise WorkflowError(f"{where}.uri: {uri} is outside the locations this server was allowed to read "
                            "(--allow-uri-prefix); send it inline as base64")
    try:
        fs, path = filesystem(uri)
        size = fs.size(path)
        if size is not None and size > max_bytes:
            raise TooLarge(f"{where}.uri: {uri} is {size} bytes, over the {max_bytes} left of what this server "
                           "reads by URI for one request (max_body_bytes, for all such images together)")
        data = read_bytes(uri)
        if len(data) > max_bytes:  # a store that does not tell sizes up front
            raise TooLarge(f"{where}.uri: {uri} holds more than the {max_bytes} bytes left of what this server "
                           "reads by URI for one request (max_body_bytes, for all such images together)")
        return data, uri
    except WorkflowError:
        raise
    except FileNotFoundError as error:
        raise Unprocessable(f"{where}.uri: there is no file at {uri}") from error
    except Exception as error:  # noqa: BLE001 (fsspec raises many kinds; their text may show server paths)
        raise Unprocessable(f"{where}.uri: {uri} cannot be read ({type(error).__name__})") from error


def _allowed(uri: str, prefixes: Sequence[str]) -> bool:
    resolved = resolve_uri(uri)
    for prefix in prefixes:
        root = resolve_uri(prefix).rstrip("/")
        if resolved == root or resolved.startswith(root + "/"):
            return True
    return False


def raw_inputs_from_json(body: Any, allowed_prefixes: Sequence[str], max_bytes: int) -> list[RawInput]:
    """{"inputs": [{"image": {...}} | {"video": {...}} | {"text": "..."}, ...]} -> raw inputs."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise WorkflowError('inputs: send {"inputs": [{"image": {"base64": ...}} | {"video": {"base64": ...}} '
                            '| {"text": ...}, ...]}')
    check_count(len(body["inputs"]))
    raws = []
    unread = max_bytes  # images read by URI share one body's worth of bytes, like images sent inline
    for position, entry in enumerate(body["inputs"]):
        where = f"inputs[{position}]"
        if not isinstance(entry, dict) or len(entry.keys() & {"image", "video", "text"}) != 1:
            raise WorkflowError(f"{where}: give exactly one of \"image\", \"video\" or \"text\"")
        if "text" in entry:
            if not isinstance(entry["text"], str):
                raise WorkflowError(f"{where}.text: must be a string")
            raws.append(RawInput(name=where, where=f"{where}.text", text=entry["text"]))
        else:
            kind = "video" if "video" in entry else "image"
            data, name = image_bytes(entry[kind], f"{where}.{kind}", allowed_prefixes, unread)
            if isinstance(entry[kind], dict) and "uri" in entry[kind]:
                unread -= len(data)
            rate = video_rate(entry[kind], f"{where}.video") if kind == "video" else None
            raws.append(RawInput(name=name, where=f"{where}.{kind}", data=data, video_rate=rate))
    return raws


def query_vector(value: Any, metric: str) -> np.ndarray:
    """A search vector: a non-empty list of finite numbers that float32 arithmetic can hold."""
    if not isinstance(value, list) or not value or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise WorkflowError("vector: must be a non-empty list of numbers")
    vector = np.asarray(value, dtype=np.float64)
    if not np.isfinite(vector).all():
        raise Unprocessable("vector: holds NaN or infinite values; send finite numbers")
    if float(np.sum(vector**2)) > FLOAT32_MAX:
        raise Unprocessable("vector: its length is beyond float32 range; scale it down (search compares directions "
                            "for cosine and the index's own scale for euclidean)")
    query = vector.astype(np.float32)
    if metric == "cosine" and not np.any(query):
        raise Unprocessable("vector: is all zeros, which has no direction; cosine search needs a non-zero vector")
    return query


def check_count(count: int) -> None:
    if count > MAX_INPUTS:
        raise WorkflowError(f"inputs: {count} inputs in one request; send at most {MAX_INPUTS}")
