"""Writing example datasets byte-for-byte reproducibly."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# Marks a folder `deeptrain data make` wrote, so that making it again may replace it.
MARKER_FILE = ".deeptrain-dataset"


def prepare_output(output: Path, name: str) -> None:
    """An empty `output` folder; refuses to clear a non-empty folder it did not write."""
    if output.exists() and any(output.iterdir()):
        if not (output / MARKER_FILE).is_file():
            raise FileExistsError(f"{output} is not empty and was not written by `deeptrain data make`; "
                                  "choose an empty or new folder")
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / MARKER_FILE).write_text(f"{name}\n")


def save_png(pixels: np.ndarray, path: Path) -> None:
    """uint8 [H, W] (grayscale) or [H, W, 3] (RGB), with no metadata so the bytes depend on pixels only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(pixels)).save(path, format="PNG", optimize=False, compress_level=6)


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def write_jsonl(path: Path, entries: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for entry in entries:
            handle.write(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, sort_keys=True, indent=1) + "\n", encoding="utf-8")
