"""The embedded store: an index folder on disk, searched with FAISS, shared by serving replicas through mmap.

The folder (`index/<workflow>` beside the models in the cluster):
- index.json: IndexMeta's description plus dim, size, version and `structure`;
- vectors.npy: float32 [N, D], rows sorted by id, L2-normalised for cosine;
- items.sqlite: one row per vector (row number, id, source, fingerprint, cluster, item JSON), so a
  replica looks items up on disk instead of holding them all;
- ann.faiss: the approximate structure, when there is one.

Structures (`structure`, "auto" picks by size): below EXACT_LIMIT rows an exact scan (a few
milliseconds per query at that size, and always the true neighbours); up to IVFPQ_LIMIT an HNSW
graph; beyond, IVF-PQ (64 bytes per 256-d vector instead of 1 KiB) whose candidates are re-ranked
exactly from vectors.npy. Readers map vectors.npy and ann.faiss read-only (`IO_FLAG_MMAP_IFC`):
replicas on one node share those pages through the page cache instead of each holding a copy.

Writes happen in memory and land at `commit()` as a new folder swapped in with one rename: a reader
never sees vectors from one build with items from another, and a crash leaves the previous index.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from .errors import WorkflowError
from .index import NO_CLUSTER, IndexMeta, Metric, Rows, SearchIndex, l2_normalise, neighbour, query_matrix

INDEX_FILE = "index.json"
VECTORS_FILE = "vectors.npy"
ITEMS_FILE = "items.sqlite"
ANN_FILE = "ann.faiss"

Structure = Literal["auto", "exact", "hnsw", "ivfpq"]
STRUCTURES: tuple[Structure, ...] = ("auto", "exact", "hnsw", "ivfpq")
EXACT_LIMIT = 50_000
IVFPQ_LIMIT = 20_000_000
HNSW_NEIGHBOURS = 32  # M: links per node; recall vs memory (M * 8 bytes per row)
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
IVF_PROBES = 32  # of sqrt(N) lists
# IVF-PQ candidates re-ranked exactly per neighbour asked for: codes blur the small distance differences
# inside a dense group of similar items, so the true top 10 hide among the code's top few hundred.
RERANK_FACTOR = 100
TRAINING_ROWS_PER_LIST = 64
READ_FLAGS = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY


def choose_structure(structure: Structure, size: int) -> Structure:
    if structure != "auto":
        return structure
    if size < EXACT_LIMIT:
        return "exact"
    return "hnsw" if size < IVFPQ_LIMIT else "ivfpq"


def _faiss_metric(metric: Metric) -> int:
    return faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2


def _distances(raw: np.ndarray, metric: Metric) -> np.ndarray:
    """FAISS scores -> our distances: 1 - similarity for cosine, sqrt of the squared L2 otherwise."""
    return 1.0 - raw if metric == "cosine" else np.sqrt(np.maximum(raw, 0.0))


def _pq_subquantizers(dim: int) -> int:
    """Bytes per vector: one per 4 dimensions, rounded to a divisor of dim (FAISS needs one)."""
    wanted = max(1, dim // 4)
    return max(m for m in range(1, wanted + 1) if dim % m == 0)


def build_ann(vectors: np.ndarray, metric: Metric, structure: Structure) -> faiss.Index | None:
    """The approximate structure over `vectors` (None for exact search)."""
    size, dim = vectors.shape
    if structure == "exact":
        return None
    if structure == "hnsw":
        ann = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, _faiss_metric(metric))
        ann.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    else:
        lists = max(1, min(int(math.sqrt(size)), size // TRAINING_ROWS_PER_LIST))
        quantizer = faiss.IndexFlat(dim, _faiss_metric(metric))
        # 8-bit codes need 256 training rows per sub-quantizer; tiny indexes get smaller codebooks.
        bits = max(1, min(8, int(math.log2(size))))
        ann = faiss.IndexIVFPQ(quantizer, dim, lists, _pq_subquantizers(dim), bits, _faiss_metric(metric))
        sample = np.random.default_rng(0).choice(size, min(size, lists * TRAINING_ROWS_PER_LIST), replace=False)
        ann.train(np.ascontiguousarray(vectors[np.sort(sample)]))
    for start in range(0, size, 100_000):
        ann.add(np.ascontiguousarray(vectors[start:start + 100_000]))
    return ann


class EmbeddedIndex(SearchIndex):
    def __init__(self, directory: Path, meta: IndexMeta, *, structure: Structure = "auto"):
        if structure not in STRUCTURES:
            raise WorkflowError(f"structure {structure!r}: use one of {', '.join(STRUCTURES)}")
        self.directory = Path(directory)
        self.meta = meta
        self.structure: Structure = structure
        self._dim = 0
        self._version = ""
        self._built: Structure = "exact"
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._ann: faiss.Index | None = None
        self._db: sqlite3.Connection | None = None
        self._pending: dict[str, tuple[np.ndarray, dict[str, Any]] | None] | None = None  # id -> row or removal
        self._pending_clusters: dict[str, int] = {}

    # --- opening ---------------------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, meta: IndexMeta, *, structure: Structure = "auto") -> EmbeddedIndex:
        """An empty index that replaces whatever is at `directory` when committed."""
        return cls(directory, meta, structure=structure)

    @classmethod
    def open(cls, directory: Path) -> EmbeddedIndex:
        directory = Path(directory)
        try:
            description = json.loads((directory / INDEX_FILE).read_text())
        except (OSError, ValueError) as error:
            raise WorkflowError(f"index {directory}: cannot be read ({error}); build it with `deeptrain index`") from error
        index = cls(directory, IndexMeta.from_description(description), structure=description.get("structure", "auto"))
        index._load(description)
        return index

    def _load(self, description: dict[str, Any]) -> None:
        try:
            self._vectors = np.load(self.directory / VECTORS_FILE, mmap_mode="r", allow_pickle=False)
            self._db = sqlite3.connect(f"file:{self.directory / ITEMS_FILE}?mode=ro&immutable=1", uri=True,
                                       check_same_thread=False)
            rows = self._db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
            self._built = description["built"]
            self._ann = faiss.read_index(str(self.directory / ANN_FILE), READ_FLAGS) if self._built != "exact" else None
        except (OSError, ValueError, KeyError, sqlite3.Error, RuntimeError) as error:
            raise WorkflowError(f"index {self.directory}: cannot be read ({error}); build it again with "
                                "`deeptrain index`") from error
        if description.get("kind") != "SearchIndex" or rows != len(self._vectors) or rows != description.get("size"):
            raise WorkflowError(f"index {self.directory}: index.json, vectors.npy and items.sqlite do not belong "
                                "together; build it again with `deeptrain index`")
        self._dim = int(description["dim"])
        self._version = description["version"]

    # --- reading ---------------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def version(self) -> str:
        return self._version

    @property
    def location(self) -> str:
        return str(self.directory)

    def count(self) -> int:
        return len(self._vectors)

    def _query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._db is None:
            return []
        return self._db.execute(sql, parameters).fetchall()

    def _items_of(self, rows: Iterable[int]) -> dict[int, dict[str, Any]]:
        wanted = sorted({int(row) for row in rows})
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row, item, cluster in self._query(f"SELECT row, item, cluster FROM rows WHERE row IN ({marks})", chunk):
                found[row] = _with_cluster(json.loads(item), cluster)
        return found

    def sources(self) -> dict[str, str]:
        return dict(self._query("SELECT source, MIN(fingerprint) FROM rows GROUP BY source"))

    def search(self, queries: np.ndarray | Sequence[Sequence[float]], k: int = 5,
               metric: Metric | None = None) -> list[list[dict[str, Any]]]:
        metric = self.check_metric(metric)
        self.check_k(k)
        if not self.count():
            return [[] for _ in np.atleast_2d(np.asarray(queries))]
        matrix = query_matrix(queries, self.dim)
        count = min(k, self.count())
        if metric != self.metric and self._built != "exact":
            raise WorkflowError(f"metric: this index is approximate and built for {self.metric}; ask for {self.metric} "
                                f"or build it with spec.index.metric: {metric}")
        if self._built == "exact":
            distances, rows = self._exact(matrix, count, metric)
        elif self._built == "hnsw":
            assert self._ann is not None
            params = faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, 2 * count))
            raw, rows = self._ann.search(self._prepared(matrix), count, params=params)
            distances = _distances(raw, metric)
        else:
            distances, rows = self._ivfpq(matrix, count, metric)
        items = self._items_of(row for row in rows.ravel() if row >= 0)
        return [[neighbour(items[int(row)], distance, metric) for distance, row in zip(d_row, r_row, strict=True)
                 if row >= 0] for d_row, r_row in zip(distances, rows, strict=True)]

    def _prepared(self, matrix: np.ndarray) -> np.ndarray:
        return l2_normalise(matrix) if self.metric == "cosine" else np.ascontiguousarray(matrix)

    def _exact(self, matrix: np.ndarray, count: int, metric: Metric) -> tuple[np.ndarray, np.ndarray]:
        stored = self._vectors if metric == self.metric or metric == "euclidean" else l2_normalise(self._vectors)
        queries = l2_normalise(matrix) if metric == "cosine" else matrix
        raw, rows = faiss.knn(np.ascontiguousarray(queries), stored, count, metric=_faiss_metric(metric))
        return _distances(raw, metric), rows

    def _ivfpq(self, matrix: np.ndarray, count: int, metric: Metric) -> tuple[np.ndarray, np.ndarray]:
        """IVF-PQ proposes candidates from compressed codes; the exact vectors (mapped) put them in order."""
        assert self._ann is not None
        queries = self._prepared(matrix)
        params = faiss.SearchParametersIVF(nprobe=IVF_PROBES)
        _, candidates = self._ann.search(queries, min(self.count(), count * RERANK_FACTOR), params=params)
        all_distances, all_rows = [], []
        for query, rows in zip(queries, candidates, strict=True):
            rows = np.sort(rows[rows >= 0])
            raw, order = faiss.knn(query[None, :], np.ascontiguousarray(self._vectors[rows]), min(count, len(rows)),
                                   metric=_faiss_metric(metric))
            padded_rows = np.full(count, -1)
            padded_rows[:order.shape[1]] = np.where(order[0] >= 0, rows[np.maximum(order[0], 0)], -1)
            padded = np.zeros(count, dtype=np.float32)
            padded[:raw.shape[1]] = raw[0]
            all_distances.append(_distances(padded, metric))
            all_rows.append(padded_rows)
        return np.stack(all_distances), np.stack(all_rows)

    def iter_rows(self, batch_size: int) -> Iterator[Rows]:
        for start in range(0, self.count(), batch_size):
            stop = min(start + batch_size, self.count())
            found = self._query("SELECT id, item, cluster FROM rows WHERE row >= ? AND row < ? ORDER BY row",
                                (start, stop))
            yield Rows(ids=[row[0] for row in found], vectors=np.asarray(self._vectors[start:stop]),
                       items=[_with_cluster(json.loads(row[1]), row[2]) for row in found])

    def cluster_sizes(self) -> dict[int, int]:
        return dict(self._query("SELECT cluster, COUNT(*) FROM rows WHERE cluster >= 0 GROUP BY cluster"))

    def cluster_page(self, cluster: int, offset: int, limit: int) -> list[dict[str, Any]]:
        found = self._query("SELECT item, cluster FROM rows WHERE cluster = ? ORDER BY id LIMIT ? OFFSET ?",
                            (cluster, limit, offset))
        return [_with_cluster(json.loads(item), value) for item, value in found]

    # --- writing ---------------------------------------------------------------------------------------

    def _changes(self) -> dict[str, tuple[np.ndarray, dict[str, Any]] | None]:
        if self._pending is None:
            self._pending = {}
        return self._pending

    def add(self, rows: Rows) -> None:
        if self._dim and rows.vectors.shape[1] != self._dim:
            raise WorkflowError(f"rows have {rows.vectors.shape[1]} dimensions; this index holds {self._dim}")
        changes = self._changes()
        for row_id, vector, item in zip(rows.ids, rows.vectors, rows.items, strict=True):
            changes[row_id] = (vector, item)
            self._pending_clusters.pop(row_id, None)

    def remove_sources(self, sources: Iterable[str]) -> None:
        gone = set(sources)
        changes = self._changes()
        for source in gone:
            for (row_id,) in self._query("SELECT id FROM rows WHERE source = ?", (source,)):
                changes[row_id] = None
        for row_id, change in list(changes.items()):
            if change is not None and change[1].get("source") in gone:
                changes[row_id] = None

    def set_clusters(self, ids: Sequence[str], clusters: Sequence[int]) -> None:
        self._pending_clusters.update(zip(ids, (int(c) for c in clusters), strict=True))

    def commit(self) -> None:
        """Write the index with every change as a new folder and swap it in; then read from it."""
        ids, vectors, items, clusters = self._merged()
        if len(vectors) and self.metric == "cosine":
            vectors = l2_normalise(vectors)
        built = choose_structure(self.structure, len(ids))
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.directory.name}-", dir=self.directory.parent))
        np.save(staging / VECTORS_FILE, vectors)
        _write_items(staging / ITEMS_FILE, ids, items, clusters)
        if self._pending is None and built == self._built and built != "exact":
            # Only cluster ids changed: the rows, and so the structure over them, are the same.
            shutil.copyfile(self.directory / ANN_FILE, staging / ANN_FILE)
        elif (ann := build_ann(vectors, self.metric, built) if len(ids) else None) is not None:
            faiss.write_index(ann, str(staging / ANN_FILE))
        digest = hashlib.sha256(vectors.tobytes())
        for row_id, item, cluster in zip(ids, items, clusters, strict=True):
            digest.update(json.dumps([row_id, item, cluster], sort_keys=True).encode())
        description = {**self.meta.describe(), "dim": int(vectors.shape[1]) if len(ids) else self._dim,
                       "size": len(ids), "version": digest.hexdigest()[:12], "structure": self.structure,
                       "built": built if (staging / ANN_FILE).exists() else "exact"}
        (staging / INDEX_FILE).write_text(json.dumps(description, indent=1, sort_keys=True) + "\n")
        os.chmod(staging, 0o755)
        previous = None
        if self.directory.exists():
            previous = self.directory.parent / f".{self.directory.name}-previous-{os.getpid()}"
            os.replace(self.directory, previous)
        os.replace(staging, self.directory)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
        self.close()
        self._pending, self._pending_clusters = None, {}
        self._load(description)

    def _merged(self) -> tuple[list[str], np.ndarray, list[dict[str, Any]], list[int]]:
        """The committed rows with the pending changes applied, sorted by id (the same rows give the same files)."""
        changes = self._pending or {}
        kept = [(row_id, row, None) for row, row_id in self._query("SELECT row, id FROM rows ORDER BY row")
                if row_id not in changes]
        kept_items = self._items_of(row for _, row, _ in kept)
        entries = [(row_id, self._vectors[row], kept_items[row]) for row_id, row, _ in kept]
        entries += [(row_id, change[0], change[1]) for row_id, change in changes.items() if change is not None]
        entries.sort(key=lambda entry: entry[0])
        ids = [entry[0] for entry in entries]
        dim = self._dim or (len(entries[0][1]) if entries else 0)
        vectors = np.asarray([entry[1] for entry in entries], dtype=np.float32).reshape(len(entries), dim)
        items = [{key: value for key, value in entry[2].items() if key != "cluster"} for entry in entries]
        clusters = [self._pending_clusters.get(row_id, entry[2].get("cluster", NO_CLUSTER))
                    for row_id, entry in zip(ids, entries, strict=True)]
        return ids, vectors, items, clusters

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _with_cluster(item: dict[str, Any], cluster: int) -> dict[str, Any]:
    return {**item, "cluster": cluster} if cluster != NO_CLUSTER else item


def _write_items(path: Path, ids: Sequence[str], items: Sequence[dict[str, Any]], clusters: Sequence[int]) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute("CREATE TABLE rows (row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, source TEXT NOT NULL, "
                   "fingerprint TEXT NOT NULL, cluster INTEGER NOT NULL, item TEXT NOT NULL)")
        db.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?)", (
            (row, row_id, item.get("source", row_id), item.get("fingerprint", ""), cluster,
             json.dumps(item, sort_keys=True)) for row, (row_id, item, cluster) in enumerate(zip(ids, items, clusters,
                                                                                                   strict=True))))
        db.execute("CREATE INDEX rows_by_source ON rows (source)")
        db.execute("CREATE INDEX rows_by_cluster ON rows (cluster, id)")
        db.commit()
    finally:
        db.close()
