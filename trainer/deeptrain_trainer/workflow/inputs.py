"""Request inputs -> graph inputs: images sent inline (base64 or multipart) or by URI, and texts.

A server that opens any URI it is sent reads any file its pod can read and reaches any host its
pod can reach, so URIs are refused unless they start with one of the prefixes the server was
started with (`--allow-uri-prefix`, e.g. the indexed dataset's folder).
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..data.images import load_image
from ..data.uris import resolve_uri
from .errors import WorkflowError
from .graph import GraphInput
from .video import video_from_reference

# The platform's limit on inputs per workflow request.
MAX_INPUTS = 32


def decode_image_bytes(data: bytes, where: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            return opened.copy()
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise WorkflowError(f"{where}: is not a decodable image ({error}); send PNG, JPEG, BMP, GIF or TIFF bytes") from error


def read_reference(reference: Any, where: str, allowed_prefixes: Sequence[str]) -> tuple[bytes | None, str]:
    """(the decoded bytes, where) for {"base64": ...}; (None, the resolved URI) for an allowed {"uri": ...}."""
    if not isinstance(reference, dict) or len(reference.keys() & {"base64", "uri"}) != 1:
        raise WorkflowError(f"{where}: give exactly one of {{\"base64\": ...}} or {{\"uri\": ...}}")
    if "base64" in reference:
        try:
            return base64.b64decode(str(reference["base64"]), validate=True), where
        except (binascii.Error, ValueError) as error:
            raise WorkflowError(f"{where}.base64: is not valid base64 ({error})") from error
    uri = str(reference["uri"])
    resolved = resolve_uri(uri)
    if not any(resolved.startswith(resolve_uri(prefix)) for prefix in allowed_prefixes):
        raise WorkflowError(f"{where}.uri: {uri} is outside the locations this server reads "
                            f"({', '.join(allowed_prefixes) or 'none: send inputs inline as base64'})")
    return None, resolved


def image_from_reference(reference: Any, where: str, allowed_prefixes: Sequence[str]) -> tuple[Image.Image, str]:
    """(image, name) for {"base64": ...} or {"uri": ...}."""
    data, location = read_reference(reference, where, allowed_prefixes)
    if data is not None:
        return decode_image_bytes(data, f"{where}.base64"), where
    uri = str(reference["uri"])
    try:
        return load_image(location), uri
    except Exception as error:  # noqa: BLE001 (fsspec and PIL raise many kinds; all mean "cannot read it")
        raise WorkflowError(f"{where}.uri: cannot read an image at {uri} ({error})") from error


def inputs_from_json(body: Any, allowed_prefixes: Sequence[str]) -> list[GraphInput]:
    """{"inputs": [{"image": {...}} | {"video": {...}} | {"text": "..."}, ...]} -> graph inputs."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise WorkflowError('inputs: send {"inputs": [{"image": {"base64": ...}} | {"video": {"base64": ...}} '
                            '| {"text": ...}, ...]}')
    check_count(len(body["inputs"]))
    inputs = []
    for position, entry in enumerate(body["inputs"]):
        where = f"inputs[{position}]"
        if not isinstance(entry, dict) or len(entry.keys() & {"image", "video", "text"}) != 1:
            raise WorkflowError(f"{where}: give exactly one of \"image\", \"video\" or \"text\"")
        if "text" in entry:
            inputs.append(GraphInput(name=where, text=str(entry["text"])))
        elif "video" in entry:
            inputs.append(video_from_reference(entry["video"], f"{where}.video", allowed_prefixes))
        else:
            image, name = image_from_reference(entry["image"], f"{where}.image", allowed_prefixes)
            inputs.append(GraphInput(name=name, image=image))
    return inputs


def check_count(count: int) -> None:
    if count > MAX_INPUTS:
        raise WorkflowError(f"inputs: {count} inputs in one request; send at most {MAX_INPUTS}")
