"""A search index of a dataset's embeddings, and exact nearest-neighbour search over it.

On disk, a folder (`index/` next to the models by default) holding three files:
- vectors.npy: float32 [N, D], row i embeds item i; L2-normalised when the metric is cosine;
- items.jsonl: one JSON object per row, in row order: {"id", "input" (the dataset image's URI),
  "concepts" (ground truth when the dataset has it), "region" (the detected region, when the row
  embeds a crop: {"box", "concept", "score"})};
- index.json: {"apiVersion", "kind": "SearchIndex", "metric", "dim", "size", "embedNode", "version",
  "models": {node id: {"modelType", "template", "version"}}, "dataset": {"uri", "format"}}.
  `version` is a hash of the vectors and items, so the same models over the same data give the
  same version.

Search is exact (brute force, one matrix product): the indexes this project builds hold up to a
few hundred thousand rows, where a scan takes milliseconds to a few tenths of a second and returns
the true neighbours; an approximate index would add a native dependency and a recall knob for no
gain at that size.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import WorkflowError

INDEX_FILE = "index.json"
VECTORS_FILE = "vectors.npy"
ITEMS_FILE = "items.jsonl"
INDEX_KIND = "SearchIndex"
INDEX_API_VERSION = "deeptrain.dev/v1alpha1"

Metric = Literal["cosine", "euclidean"]
METRICS: tuple[Metric, ...] = ("cosine", "euclidean")


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass
class Index:
    vectors: np.ndarray  # float32 [N, D]
    items: list[dict[str, Any]]
    metric: Metric = "cosine"
    embed_node: str = ""
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    version: str = ""  # computed from the rows when not given (a loaded index keeps the saved one)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise WorkflowError(f"metric {self.metric!r}: use one of {', '.join(METRICS)}")
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or len(self.vectors) != len(self.items) or not len(self.items):
            raise WorkflowError(f"an index needs one vector per item and at least one item; got vectors of shape "
                                f"{self.vectors.shape} for {len(self.items)} items")
        if self.metric == "cosine" and not self.version:
            self.vectors = l2_normalise(self.vectors)
        if not self.version:
            digest = hashlib.sha256(np.ascontiguousarray(self.vectors).tobytes())
            digest.update(json.dumps(self.items, sort_keys=True).encode())
            self.version = digest.hexdigest()[:12]

    @property
    def size(self) -> int:
        return len(self.items)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def search(self, queries: np.ndarray | Sequence[Sequence[float]], k: int = 5,
               metric: Metric | None = None) -> list[list[dict[str, Any]]]:
        """The k nearest items to each query vector, nearest first.

        Each neighbour is its item plus "distance" (cosine distance 1 - similarity, or euclidean) and,
        for cosine, "score" (the similarity). Ties keep index order.
        """
        metric = metric or self.metric
        if metric not in METRICS:
            raise WorkflowError(f"metric {metric!r}: use one of {', '.join(METRICS)}")
        if k < 1:
            raise WorkflowError(f"k: {k} must be at least 1")
        matrix = np.asarray(queries, dtype=np.float32)
        if matrix.ndim == 1:
            matrix = matrix[None, :]
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise WorkflowError(f"vector: has {matrix.shape[-1]} dimensions; this index holds {self.dim}")
        distances = self._distances(matrix, metric)
        count = min(k, self.size)
        results = []
        for row in distances:
            order = np.argsort(row, kind="stable")[:count]
            neighbours = []
            for position in order:
                found = {**self.items[position], "distance": round(float(row[position]), 6)}
                if metric == "cosine":
                    found["score"] = round(1.0 - float(row[position]), 6)
                neighbours.append(found)
            results.append(neighbours)
        return results

    def _distances(self, queries: np.ndarray, metric: Metric) -> np.ndarray:
        if metric == "cosine":
            stored = self.vectors if self.metric == "cosine" else l2_normalise(self.vectors)
            return 1.0 - l2_normalise(queries) @ stored.T
        squared = (np.sum(queries**2, axis=1, keepdims=True) - 2.0 * queries @ self.vectors.T
                   + np.sum(self.vectors**2, axis=1)[None, :])
        return np.sqrt(np.maximum(squared, 0.0))

    def describe(self) -> dict[str, Any]:
        return {"apiVersion": INDEX_API_VERSION, "kind": INDEX_KIND, "metric": self.metric, "dim": self.dim,
                "size": self.size, "embedNode": self.embed_node, "version": self.version,
                "models": self.models, "dataset": self.dataset}

    def save(self, directory: Path) -> Path:
        """Write the three files into `directory`, replacing an earlier index there as one step.

        They are written into a sibling folder first and swapped in, so that a reader never sees
        vectors from one build with items from another.
        """
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        np.save(staging / VECTORS_FILE, self.vectors)
        with (staging / ITEMS_FILE).open("w", encoding="utf-8") as handle:
            for item in self.items:
                handle.write(json.dumps(item, sort_keys=True) + "\n")
        (staging / INDEX_FILE).write_text(json.dumps(self.describe(), indent=1, sort_keys=True) + "\n")
        os.chmod(staging, 0o755)
        previous = None
        if directory.exists():
            previous = directory.parent / f".{directory.name}-previous-{os.getpid()}"
            os.replace(directory, previous)
        os.replace(staging, directory)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
        return directory


def load_index(directory: Path) -> Index:
    directory = Path(directory)
    try:
        description = json.loads((directory / INDEX_FILE).read_text())
        vectors = np.load(directory / VECTORS_FILE, allow_pickle=False)
        items = [json.loads(line) for line in (directory / ITEMS_FILE).read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as error:
        raise WorkflowError(f"index {directory}: cannot be read ({error}); build it with `deeptrain index`") from error
    if description.get("kind") != INDEX_KIND or len(items) != len(vectors):
        raise WorkflowError(f"index {directory}: index.json, vectors.npy and items.jsonl do not belong together; "
                            "build it again with `deeptrain index`")
    return Index(vectors=vectors, items=items, metric=description["metric"], embed_node=description.get("embedNode", ""),
                 models=description.get("models", {}), dataset=description.get("dataset", {}),
                 version=description["version"])
