"""Readers: a dataset URI in one of the supported formats -> records, validated as they are read."""

from __future__ import annotations

from collections.abc import Collection

from deeptrain_api import catalog

from ..errors import DatasetError
from ..images import ImageLoadStats
from ..records import Record
from .coco import read_coco
from .csv_text import read_csv
from .imagefolder import read_imagefolder
from .jsonl import read_jsonl

_NEEDS_REGIONS = frozenset({catalog.VISUAL_DETECTOR, catalog.VISUAL_SEGMENTER})


def read_records(uri: str, dataset_format: str, model_type: str, concepts: Collection[str] | None,
                 skipped_lines: ImageLoadStats | None = None) -> list[Record]:
    """All records at `uri`, in a deterministic order; DatasetError on the first malformed entry, except
    that malformed lines of a jsonl file are counted in `skipped_lines` when it is given."""
    text_input = catalog.model_type(model_type).input == "text"
    formats_for_input = ("jsonl", "csv") if text_input else (
        ("jsonl", "coco") if model_type in _NEEDS_REGIONS else ("imagefolder", "jsonl", "coco"))
    if dataset_format not in formats_for_input:
        raise DatasetError(uri, f"format {dataset_format!r} cannot hold {model_type} training data",
                           f"use one of: {', '.join(formats_for_input)}")
    if dataset_format == "csv":
        return list(read_csv(uri, concepts=concepts))
    if dataset_format == "jsonl":
        return read_jsonl(uri, text_input=text_input, concepts=concepts, skipped=skipped_lines)
    if dataset_format == "coco":
        return list(read_coco(uri, concepts=concepts))
    return list(read_imagefolder(uri, anomaly=model_type == catalog.VISUAL_ANOMALY_HEATMAP, concepts=concepts))
