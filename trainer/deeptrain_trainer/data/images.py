"""Image bytes -> RGB pixels, and the up-front check that drops undecodable images.

Counting happens once, in `load_splits`, before any DataLoader worker exists: every image's
header is opened (a few KB read, no pixel decoding), missing files are errors, and files that are
not images are dropped and counted in `ImageLoadStats`. An image whose header parses but whose
pixels do not (a truncated file) is caught later by the torch dataset, which substitutes the next
record and counts it in its own `ImageLoadStats` (exact with num_workers=0, per worker otherwise).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

from . import uris
from .errors import DatasetError
from .records import ImageRecord
from .video import load_frame

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# Opening a header is I/O-bound (object stores answer slowly), so a few threads pay off even on 2 cores.
HEADER_CHECK_THREADS = 8
SKIPPED_EXAMPLES_KEPT = 5
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


@dataclass
class ImageLoadStats:
    total: int = 0
    skipped: int = 0
    examples: list[str] = field(default_factory=list)  # the first few skipped images, with why

    def record_loaded(self) -> None:
        self.total += 1

    def record_skipped(self, uri: str, reason: str) -> None:
        self.total += 1
        self.skipped += 1
        if len(self.examples) < SKIPPED_EXAMPLES_KEPT:
            self.examples.append(f"{uri} ({reason})")

    def add(self, other: ImageLoadStats) -> None:
        self.total += other.total
        self.skipped += other.skipped
        self.examples.extend(other.examples[: SKIPPED_EXAMPLES_KEPT - len(self.examples)])

    def skipped_fraction(self) -> float:
        return self.skipped / self.total if self.total else 0.0

    def summary(self) -> str:
        text = f"{self.skipped} of {self.total} images could not be decoded"
        if self.examples:
            text += ", e.g. " + ", ".join(self.examples)
        return text


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in _HIGH_DEPTH_MODES:
        # convert("RGB") clips 16-bit and float pixels instead of scaling them into 8 bits.
        pixels = np.asarray(image, dtype=np.float64)
        top = pixels.max()
        scaled = (pixels / top * 255.0) if top > 0 else pixels
        image = Image.fromarray(scaled.clip(0, 255).astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


def decode_image(data: bytes, uri: str) -> Image.Image:
    """Decode to RGB, applying the EXIF orientation (annotations are drawn on the upright image).

    Raises DatasetError (location = uri) when the bytes are not a decodable image.
    """
    try:
        with Image.open(io.BytesIO(data)) as opened:
            upright = ImageOps.exif_transpose(opened)
            upright.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DatasetError(uri, f"cannot decode the image ({error})", "replace or remove the file") from error
    return to_rgb(upright)


def load_image(uri: str) -> Image.Image:
    return decode_image(uris.read_bytes(uri), uri)


def load_record_image(record: ImageRecord) -> Image.Image:
    """A record's pixels: its image, or its frame of a video."""
    if record.frame_time_ms is not None:
        return load_frame(record.uri, record.frame_time_ms)
    return load_image(record.uri)


def load_mask_image(uri: str | None, data: bytes | None) -> Image.Image:
    """A mask as grayscale; `uri` or `data` (inline bytes) names it."""
    raw = data if data is not None else uris.read_bytes(str(uri))
    try:
        with Image.open(io.BytesIO(raw)) as opened:
            return opened.convert("L")
    except (OSError, ValueError, SyntaxError) as error:
        raise DatasetError(uri or "inline mask", f"cannot decode the mask image ({error})",
                           "write masks as PNG, non-zero pixels marking the object") from error


def _header_problem(uri: str) -> str | None:
    """None when `uri` opens as an image; else why not. Raises FileNotFoundError when missing."""
    fs, path = uris.filesystem(uri)
    with fs.open(path, "rb") as handle:
        try:
            with Image.open(handle) as image:
                width, height = image.size
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            return str(error) or type(error).__name__
    return None if width > 0 and height > 0 else "image has no pixels"


def _missing_files(record: ImageRecord) -> list[str]:
    side_files = [mask.image_uri for mask in record.masks if mask.image_uri]
    if record.anomaly_mask_uri:
        side_files.append(record.anomaly_mask_uri)
    return [uri for uri in side_files if not uris.exists(uri)]


def _check_one(record: ImageRecord) -> str | None:
    try:
        # A video frame's file was opened when its video was sampled (video_records.expand_videos).
        problem = None if record.frame_time_ms is not None else _header_problem(record.uri)
    except FileNotFoundError:
        raise DatasetError(record.source or record.uri, f"image {record.uri} not found",
                           "fix the path (relative paths start at the annotation file's folder) or remove the entry") from None
    missing = _missing_files(record)
    if missing:
        raise DatasetError(record.source or record.uri, f"mask image {missing[0]} not found",
                           "fix the mask's path or remove the region")
    return problem


def check_images(records: Sequence[ImageRecord]) -> tuple[list[ImageRecord], ImageLoadStats]:
    """Drop records whose image is not decodable, counting them. Missing files raise DatasetError."""
    stats = ImageLoadStats()
    with ThreadPoolExecutor(max_workers=HEADER_CHECK_THREADS) as pool:
        problems = list(pool.map(_check_one, records))
    kept: list[ImageRecord] = []
    for record, problem in zip(records, problems, strict=True):
        if problem is None:
            stats.record_loaded()
            kept.append(record)
        else:
            stats.record_skipped(record.uri, problem)
    return kept, stats
