"""Indexing a dataset: run the graph over every image (and every video's sampled frames) and keep one row
per embedding the embed node makes.

A graph whose embedder takes whole images gives one row per image; one fed by crops gives one row
per detected region. Rows remember their image's URI, the region (for crops) and the concepts the
dataset gives: the image's concepts for whole images, and for a crop the concept of the annotated
box it overlaps best (IoU >= 0.5), when the dataset has boxes. A video's frames are sampled at
spec.index.dataset.videoFrameRate; their rows also hold "timeOffsetMs", "frameIndex" and "at" (the
offset as 00:12.0), so that a search answers "this video at 00:12.0".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import catalog
from ..data import ImageRecord, read_records
from ..data.video import DEFAULT_FRAME_RATE, batched
from .crop import Box
from .errors import WorkflowError
from .graph import WorkflowRunner
from .index import Index, Metric
from .video import index_inputs

BATCH_SIZE = 32
MATCH_IOU = 0.5

Progress = Callable[[int, int], None]  # (records done, records in all)


def read_dataset(uri: str, dataset_format: str) -> list[ImageRecord]:
    """The images of a dataset in any image format the trainer reads (labels optional in spirit, kept when given)."""
    records = read_records(uri, dataset_format, catalog.VISUAL_EMBEDDER, None)
    return [record for record in records if isinstance(record, ImageRecord)]


def embed_node_of(runner: WorkflowRunner, embed_node_id: str | None) -> str:
    embedders = runner.embedding_nodes()
    if embed_node_id is None:
        if len(embedders) != 1:
            raise WorkflowError(f"spec.nodes: indexing needs exactly one visual-embedder node to choose from, found "
                                f"{embedders or 'none'}; name the one to index")
        return embedders[0]
    if embed_node_id not in embedders:
        raise WorkflowError(f"node {embed_node_id!r} is not a visual-embedder node of this workflow "
                            f"(those are: {embedders or 'none'})")
    return embed_node_id


def _iou(region_box: dict[str, float], box: tuple[float, float, float, float]) -> float:
    x1, y1, x2, y2 = box
    left, top = max(region_box["left_col"], x1), max(region_box["top_row"], y1)
    right, bottom = min(region_box["right_col"], x2), min(region_box["bottom_row"], y2)
    intersection = max(0.0, right - left) * max(0.0, bottom - top)
    area = ((region_box["right_col"] - region_box["left_col"]) * (region_box["bottom_row"] - region_box["top_row"])
            + (x2 - x1) * (y2 - y1) - intersection)
    return intersection / area if area > 0 else 0.0


def known_concepts(record: ImageRecord, region: dict[str, Any] | None) -> list[str]:
    if region is None:
        return list(record.concepts)
    box: Box = region["box"]
    overlaps = [(_iou(box, truth), concept) for truth, concept in zip(record.boxes, record.box_concepts, strict=True)]
    best = max(overlaps, default=(0.0, ""))
    return [best[1]] if best[0] >= MATCH_IOU else []


def build_index(runner: WorkflowRunner, dataset_records: Sequence[ImageRecord], embed_node_id: str | None = None,
                *, metric: Metric = "cosine", dataset: dict[str, Any] | None = None,
                progress: Progress | None = None, video_frame_rate: float = DEFAULT_FRAME_RATE) -> Index:
    """An index of every embedding `embed_node_id` makes over the records' images and videos' sampled frames."""
    node = embed_node_of(runner, embed_node_id)
    vectors: list[list[float]] = []
    items: list[dict[str, Any]] = []
    for batch in batched(index_inputs(dataset_records, video_frame_rate), BATCH_SIZE):
        outputs = runner.run([piece.graph_input for piece in batch])
        for piece, output in zip(batch, outputs, strict=True):
            record_id = piece.record_id or f"{len(items):06d}"
            for position, entry in enumerate(output["nodes"][node]):
                region = entry.get("region")
                item = {"id": record_id if region is None else f"{record_id}#{position}", "input": piece.record.uri,
                        "concepts": known_concepts(piece.record, region), **piece.extra}
                if region is not None:
                    item["region"] = region
                items.append(item)
                vectors.append(entry["embedding"])
        if progress is not None:
            progress(batch[-1].records_done, len(dataset_records))
    if not items:
        raise WorkflowError(f"node {node!r} made no embedding for any of the {len(dataset_records)} images "
                            "(did the detector find nothing?); nothing to index")
    models = {node_id: {key: info[key] for key in ("modelType", "template", "version")}
              for node_id, info in runner.model_versions().items()}
    return Index(vectors=np.asarray(vectors, dtype=np.float32), items=items, metric=metric, embed_node=node,
                 models=models, dataset=dataset or {})
