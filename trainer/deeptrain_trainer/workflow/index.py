"""The search index interface every store implements, and what the stores share.

A row is one embedding: a deterministic string id (the input's key, `KEY#N` for the N-th region of
a crop graph), its vector, and its item, a JSON object the search answers with:
{"id", "input" (the dataset image's URI), "source" (the listing key of its input), "fingerprint"
(of that input, for incremental indexing), "concepts" (ground truth when the dataset has it),
"region" (for crops: {"box", "concept", "score"}), "timeOffsetMs" (for frames of a video),
"cluster" (once clustered)}.

Two stores (`spec.index.store`): `embedded` (FAISS files on disk, .embedded_store) and `milvus`
(a Milvus collection, .milvus_store). Both keep rows keyed by id, so adding a row twice replaces it:
re-running a crashed indexing step never duplicates rows.

Indexes are versioned by the models that embedded them (`models`): an index opened by a graph
whose embedder has another version refuses to answer (`check_models`) rather than compare vectors
of two different models.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .errors import WorkflowError

INDEX_KIND = "SearchIndex"
INDEX_API_VERSION = "deeptrain.dev/v1alpha1"

Metric = Literal["cosine", "euclidean"]
METRICS: tuple[Metric, ...] = ("cosine", "euclidean")
NO_CLUSTER = -1


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def check_metric(metric: str) -> Metric:
    if metric not in METRICS:
        raise WorkflowError(f"metric {metric!r}: use one of {', '.join(METRICS)}")
    return metric  # type: ignore[return-value]


def query_matrix(queries: np.ndarray | Sequence[Sequence[float]], dim: int) -> np.ndarray:
    """Queries as float32 [Q, D]; WorkflowError when the dimension is not the index's."""
    matrix = np.asarray(queries, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise WorkflowError(f"vector: has {matrix.shape[-1]} dimensions; this index holds {dim}")
    return matrix


def neighbour(item: dict[str, Any], distance: float, metric: Metric) -> dict[str, Any]:
    """A search hit: the item plus "distance" (1 - cosine similarity, or euclidean) and, for cosine, "score"."""
    found = {**item, "distance": round(float(distance), 6)}
    if metric == "cosine":
        found["score"] = round(1.0 - float(distance), 6)
    return found


@dataclass
class Rows:
    """Rows to add: ids, vectors float32 [N, D] and items, in the same order."""

    ids: list[str]
    vectors: np.ndarray
    items: list[dict[str, Any]]

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors, dtype=np.float32).reshape(len(self.ids), -1)
        if len(self.items) != len(self.ids) or len(set(self.ids)) != len(self.ids):
            raise WorkflowError("rows need one item per id and unique ids")

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class IndexMeta:
    """What an index was built from; `generation` names the model versions and metric its vectors belong to."""

    metric: Metric = "cosine"
    embed_node: str = ""
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)

    @property
    def generation(self) -> str:
        digest = hashlib.sha256(json.dumps({"metric": self.metric, "embedNode": self.embed_node, "models": {
            node: info.get("version") for node, info in sorted(self.models.items())}}, sort_keys=True).encode())
        return digest.hexdigest()[:12]

    def describe(self) -> dict[str, Any]:
        return {"apiVersion": INDEX_API_VERSION, "kind": INDEX_KIND, "metric": self.metric,
                "embedNode": self.embed_node, "models": self.models, "dataset": self.dataset,
                "generation": self.generation}

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> IndexMeta:
        return cls(metric=check_metric(description.get("metric", "cosine")), embed_node=description.get("embedNode", ""),
                   models=description.get("models") or {}, dataset=description.get("dataset") or {})


class SearchIndex(ABC):
    """Rows keyed by id, nearest-neighbour search over their vectors, and stored clusters.

    Changes (add, remove, set_clusters) become visible to other processes at `commit()`.
    """

    meta: IndexMeta

    @property
    def metric(self) -> Metric:
        return self.meta.metric

    @property
    def embed_node(self) -> str:
        return self.meta.embed_node

    @property
    def models(self) -> dict[str, dict[str, Any]]:
        return self.meta.models

    @property
    @abstractmethod
    def dim(self) -> int: ...

    @property
    @abstractmethod
    def version(self) -> str:
        """Changes whenever the rows change; the same rows give the same version."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the index is: a directory, or milvus://COLLECTION."""

    @property
    def size(self) -> int:
        return self.count()

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def add(self, rows: Rows) -> None:
        """Insert rows, replacing rows with the same ids."""

    @abstractmethod
    def remove_sources(self, sources: Iterable[str]) -> None:
        """Remove every row of these inputs (all regions of an image)."""

    @abstractmethod
    def sources(self) -> dict[str, str]:
        """Listing key -> fingerprint of every input that has rows."""

    @abstractmethod
    def search(self, queries: np.ndarray | Sequence[Sequence[float]], k: int = 5,
               metric: Metric | None = None) -> list[list[dict[str, Any]]]:
        """The k nearest items to each query vector, nearest first (see `neighbour`)."""

    @abstractmethod
    def iter_rows(self, batch_size: int) -> Iterator[Rows]:
        """Every row, in batches."""

    @abstractmethod
    def set_clusters(self, ids: Sequence[str], clusters: Sequence[int]) -> None: ...

    @abstractmethod
    def cluster_page(self, cluster: int, offset: int, limit: int) -> list[dict[str, Any]]:
        """Items of one stored cluster, in id order."""

    @abstractmethod
    def cluster_sizes(self) -> dict[int, int]:
        """Stored cluster -> member count (empty when the index was not clustered)."""

    @abstractmethod
    def commit(self) -> None: ...

    def check_metric(self, metric: str | None) -> Metric:
        return check_metric(metric or self.metric)

    def check_k(self, k: int) -> int:
        if k < 1:
            raise WorkflowError(f"k: {k} must be at least 1")
        return k

    def check_models(self, versions: dict[str, dict[str, Any]]) -> None:
        """Refuse a graph whose embedding models are not the ones this index's vectors come from."""
        mine = {node: info.get("version") for node, info in self.models.items()}
        theirs = {node: info.get("version") for node, info in versions.items() if node in mine}
        if mine and mine != theirs:
            raise WorkflowError(f"index {self.location} was built with models {mine}, the graph runs {theirs}; "
                                "build the index again with these models (`deeptrain index`)")
