"""Indexing a dataset: run the graph over its images (and every video's sampled frames) and keep one row
per embedding the embed node makes.

A graph whose embedder takes whole images gives one row per image; one fed by crops gives one row
per detected region. Rows remember their image's URI, the region (for crops) and the concepts the
dataset gives: the image's concepts for whole images, and for a crop the concept of the annotated
box it overlaps best (IoU >= 0.5), when the dataset has boxes. A video is one input of the listing:
its frames are sampled at spec.index.dataset.videoFrameRate, and their rows (ids KEY@MS) also hold
"timeOffsetMs", "frameIndex" and "at" (00:12.0), so that a search answers "this video at 00:12.0".

Each input of the listing has a key (its record id: its path below the dataset for an image folder) and a fingerprint (its size and
modification stamp as the file system reports them, and its labels). Rows are keyed by the input's
key, so indexing is incremental and idempotent: `plan` compares the listing with what the index
holds and only new or changed inputs are embedded, deleted ones removed; a shard that crashed and
runs again writes the same ids, never duplicates.

Sharding: `shard_of(key, shards)` splits the listing into disjoint shards by a hash of the key; each
shard embeds its inputs into a part (`write_part`), and `merge_parts` applies the parts to the index.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from deeptrain_api import catalog

from ..data import ImageRecord, read_records
from ..data.uris import filesystem, resolve_uri
from ..data.video import DEFAULT_FRAME_RATE, batched
from .crop import Box
from .errors import WorkflowError
from .graph import WorkflowRunner
from .index import Rows, SearchIndex
from .video import index_inputs, one_record_per_video

BATCH_SIZE = 32
MATCH_IOU = 0.5
PART_VECTORS = "vectors.npy"
PART_ROWS = "rows.jsonl"
# What file systems report as a file's version, most specific first (S3, GCS, Azure, local).
VERSION_KEYS = ("ETag", "etag", "md5Hash", "content_md5", "mtime", "LastModified", "last_modified", "created")

Progress = Callable[[int, int], None]  # (records done, records in all)


def read_dataset(uri: str, dataset_format: str) -> list[ImageRecord]:
    """The images of a dataset in any image format the trainer reads (labels optional in spirit, kept when given).

    Each record's id is its key in the index: the dataset's own id, else its path below the dataset
    (the same wherever the dataset is mounted).
    """
    records = one_record_per_video([r for r in read_records(uri, dataset_format, catalog.VISUAL_EMBEDDER, None)
                                    if isinstance(r, ImageRecord)])
    root = resolve_uri(uri).rstrip("/") + "/"
    return [replace(record, id=record.id or record.uri.removeprefix(root)) for record in records]


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


def record_key(record: ImageRecord) -> str:
    return record.id or record.uri


def fingerprint(record: ImageRecord) -> str:
    """Changes when the file or its labels change; reading the listing's metadata, not the image."""
    try:
        fs, path = filesystem(record.uri)
        info = fs.info(path)
        stamp = [info.get("size"), next((str(info[key]) for key in VERSION_KEYS if info.get(key) is not None), "")]
    except (OSError, ValueError):
        stamp = ["unreadable"]
    labels = [record.concepts, record.boxes, record.box_concepts]
    return hashlib.sha256(json.dumps([record.uri, stamp, labels], default=str).encode()).hexdigest()[:32]


def shard_of(key: str, shards: int) -> int:
    """The shard an input belongs to: stable across runs and listings (a hash of its key, not its position)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % shards


@dataclass(frozen=True)
class Plan:
    """What indexing must do to bring the index to the listing."""

    embed: list[ImageRecord]  # new or changed inputs
    remove: list[str]  # keys of inputs whose old rows go: changed or deleted
    new: int
    changed: int
    deleted: int
    unchanged: int

    def summary(self) -> str:
        return f"{self.new} new, {self.changed} changed, {self.deleted} deleted, {self.unchanged} unchanged inputs"


def plan(records: Sequence[ImageRecord], indexed: dict[str, str], *, shard: int = 0, shards: int = 1) -> Plan:
    """Compare the listing (this shard of it) with the index's inputs and their fingerprints."""
    mine = [record for record in records if shard_of(record_key(record), shards) == shard]
    keys = {record_key(record) for record in mine}
    embed, changed, new = [], [], 0
    for record in mine:
        key = record_key(record)
        if key not in indexed:
            embed.append(record)
            new += 1
        elif indexed[key] != fingerprint(record):
            embed.append(record)
            changed.append(key)
    deleted = [key for key in indexed if key not in keys and shard_of(key, shards) == shard]
    return Plan(embed=embed, remove=changed + deleted, new=new, changed=len(changed), deleted=len(deleted),
                unchanged=len(mine) - len(embed))


def embed_rows(runner: WorkflowRunner, records: Sequence[ImageRecord], node: str,
               progress: Progress | None = None, video_frame_rate: float = DEFAULT_FRAME_RATE) -> Iterable[Rows]:
    """Rows for the records' embeddings, one batch of images (or sampled video frames) at a time."""
    for batch in batched(index_inputs(records, video_frame_rate), BATCH_SIZE):
        ids: list[str] = []
        vectors: list[list[float]] = []
        items: list[dict[str, Any]] = []
        for piece, output in zip(batch, runner.run([piece.graph_input for piece in batch]), strict=True):
            record = piece.record
            key, stamp = record_key(record), fingerprint(record)
            base = f"{key}@{piece.extra['timeOffsetMs']}" if piece.extra else key
            for position, entry in enumerate(output["nodes"][node]):
                region = entry.get("region")
                row_id = base if region is None else f"{base}#{position}"
                item = {"id": row_id, "input": record.uri, "source": key, "fingerprint": stamp,
                        "concepts": known_concepts(record, region), **piece.extra}
                if region is not None:
                    item["region"] = region
                ids.append(row_id)
                vectors.append(entry["embedding"])
                items.append(item)
        yield Rows(ids=ids, vectors=np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1), items=items)
        if progress is not None:
            progress(batch[-1].records_done, len(records))


def model_versions(runner: WorkflowRunner) -> dict[str, dict[str, Any]]:
    return {node_id: {key: info[key] for key in ("modelType", "template", "version")}
            for node_id, info in runner.model_versions().items()}


def update_index(index: SearchIndex, runner: WorkflowRunner, records: Sequence[ImageRecord], node: str,
                 progress: Progress | None = None, video_frame_rate: float = DEFAULT_FRAME_RATE) -> Plan:
    """Embed what is new or changed in the listing and remove what left it (one process, all shards)."""
    todo = plan(records, index.sources())
    index.remove_sources(todo.remove)
    for rows in embed_rows(runner, todo.embed, node, progress, video_frame_rate):
        index.add(rows)
    return todo


# --- parts of a sharded run -----------------------------------------------------------------------------

def part_directory(parts: Path, shard: int, shards: int) -> Path:
    return Path(parts) / f"shard-{shard:05d}-of-{shards:05d}"


def write_part(parts: Path, shard: int, shards: int, todo: Plan, rows: Iterable[Rows]) -> Path:
    """A shard's part: its rows and the keys whose old rows go, written whole or not at all."""
    target = part_directory(parts, shard, shards)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    batches = list(rows)
    vectors = np.concatenate([batch.vectors for batch in batches]) if batches else np.zeros((0, 0), np.float32)
    np.save(staging / PART_VECTORS, vectors)
    with (staging / PART_ROWS).open("w", encoding="utf-8") as handle:
        handle.write(json.dumps({"remove": todo.remove}) + "\n")
        for batch in batches:
            for row_id, item in zip(batch.ids, batch.items, strict=True):
                handle.write(json.dumps({"id": row_id, "item": item}, sort_keys=True) + "\n")
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target


def read_part(directory: Path) -> tuple[list[str], Rows]:
    lines = (directory / PART_ROWS).read_text().splitlines()
    removed = json.loads(lines[0])["remove"]
    entries = [json.loads(line) for line in lines[1:] if line.strip()]
    vectors = np.load(directory / PART_VECTORS, allow_pickle=False)
    return removed, Rows(ids=[e["id"] for e in entries], vectors=vectors.reshape(len(entries), -1),
                         items=[e["item"] for e in entries])


def merge_parts(index: SearchIndex, parts: Path, shards: int) -> int:
    """Apply every shard's part to the index; WorkflowError naming the shards whose part is missing."""
    missing = [shard for shard in range(shards) if not part_directory(parts, shard, shards).is_dir()]
    if missing:
        raise WorkflowError(f"shards {missing} of {shards} wrote no part under {parts}; run them "
                            f"(`deeptrain index --shard I/{shards}`) before merging")
    added = 0
    for shard in range(shards):
        removed, rows = read_part(part_directory(parts, shard, shards))
        index.remove_sources(removed)
        index.add(rows)
        added += len(rows)
    return added
