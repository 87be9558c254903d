"""What the readers return: one record per input, coordinates normalised to [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass, field

# Normalised (x1, y1, x2, y2): left, top, right, bottom as fractions of the image's width/height.
Box = tuple[float, float, float, float]
# Normalised (x, y) polygon vertex.
Point = tuple[float, float]

# Concepts that mean "normal" for visual-anomaly-heatmap (MVTec names its normal folder `good`).
NORMAL_CONCEPTS = frozenset({"good", "normal"})


@dataclass(frozen=True)
class Mask:
    """One object's pixels: exactly one of a polygon, a mask image URI or mask image bytes.

    Mask images are read as grayscale; every non-zero pixel belongs to the object. They cover the
    whole input image and are resized to it when their size differs.
    """

    polygon: tuple[Point, ...] | None = None
    image_uri: str | None = None
    image_bytes: bytes | None = None


@dataclass(frozen=True)
class ImageRecord:
    uri: str  # what `uris.read_bytes` opens: an absolute local path or a protocol://path URI
    concepts: list[str] = field(default_factory=list)  # image-level, positive (value != 0)
    negative_concepts: list[str] = field(default_factory=list)  # image-level, value 0
    boxes: list[Box] = field(default_factory=list)
    box_concepts: list[str] = field(default_factory=list)  # one per box
    # One per box when the format marks crowds (COCO iscrowd: a region of many objects, labelled as one
    # box); empty when it does not. Crowd boxes are regions to ignore, never objects to find.
    box_crowd: list[bool] = field(default_factory=list)
    masks: list[Mask] = field(default_factory=list)
    mask_concepts: list[str] = field(default_factory=list)  # one per mask
    anomaly_mask_uri: str | None = None  # ground-truth defect pixels (visual-anomaly-heatmap)
    # A video frame: its time offset in the video at `uri`. A video record without one stands for
    # all its frames until `data.video_records.expand_videos` samples them.
    frame_time_ms: int | None = None
    id: str = ""
    source: str = ""  # where the record was declared ("path:line" or path), for error messages

    @property
    def crowd_flags(self) -> list[bool]:
        return self.box_crowd or [False] * len(self.boxes)

    @property
    def is_anomalous(self) -> bool:
        return any(concept not in NORMAL_CONCEPTS for concept in self.concepts)


@dataclass(frozen=True)
class TextRecord:
    text: str
    concepts: list[str] = field(default_factory=list)
    negative_concepts: list[str] = field(default_factory=list)
    id: str = ""
    source: str = ""


Record = ImageRecord | TextRecord
