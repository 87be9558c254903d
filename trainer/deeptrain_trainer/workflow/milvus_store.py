"""The Milvus store: one collection per index generation, in a Milvus the workflow's Secret points at.

The client (`pymilvus`) talks to a standalone or distributed Milvus (`uri` http://HOST:19530 plus a
`token`) and, for a local file path as `uri`, to Milvus Lite, the embedded engine: the same code in
both. Connection settings come from the environment (contract.ENV_MILVUS_*), which the operator
fills from the Secret named in spec.index.connection.secretRef.

Collections are named `dt_<workflow>_<generation>`: the generation hashes the embedding models'
versions and the metric (IndexMeta.generation), so a retrained embedder writes a new collection and
never mixes its vectors with the old model's. The old collection is dropped (`drop_other_generations`)
only once the new one serves. Rows are keyed by their deterministic id: inserting again replaces.
Reads are "Session"-consistent: a writer sees its own writes at once, while serving replicas (which
never write) skip the wait for the newest timestamp that strong consistency costs every query.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from deeptrain_api.workflow_contract import (
    ENV_MILVUS_DATABASE,
    ENV_MILVUS_TOKEN,
    ENV_MILVUS_URI,
    MILVUS_SCHEME,
)

from .errors import WorkflowError
from .index import (
    NO_CLUSTER,
    IndexMeta,
    Metric,
    Rows,
    SearchIndex,
    l2_normalise,
    neighbour,
    query_matrix,
)

COLLECTION_PREFIX = "dt_"
META_PROPERTY = "deeptrain.index"
MAX_ID_LENGTH = 2048
MAX_FINGERPRINT_LENGTH = 128
HNSW_PARAMS = {"M": 32, "efConstruction": 80}
HNSW_EF_SEARCH = 128
WRITE_BATCH = 1000
FIELDS = ["id", "source", "fingerprint", "cluster", "item"]


def connect() -> Any:
    """A client for the Milvus the environment names; one clear error when it names none or cannot be reached."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    uri = os.environ.get(ENV_MILVUS_URI, "")
    if not uri:
        raise WorkflowError(f"spec.index.store is milvus but {ENV_MILVUS_URI} is not set: put `uri` (and `token`) "
                            "in the Secret named by spec.index.connection.secretRef, or export it locally")
    try:
        return MilvusClient(uri=uri, token=os.environ.get(ENV_MILVUS_TOKEN, ""),
                            db_name=os.environ.get(ENV_MILVUS_DATABASE, ""))
    except MilvusException as error:
        raise WorkflowError(f"Milvus at {uri}: cannot connect ({error}); check the Secret's uri and token") from error


def collection_prefix(workflow_name: str) -> str:
    return COLLECTION_PREFIX + re.sub(r"[^0-9A-Za-z_]", "_", workflow_name) + "_"


def collection_name(workflow_name: str, meta: IndexMeta) -> str:
    return collection_prefix(workflow_name) + meta.generation


def _milvus_metric(metric: Metric) -> str:
    return "COSINE" if metric == "cosine" else "L2"


def _quoted(values: Iterable[str]) -> str:
    return "[" + ", ".join(json.dumps(value) for value in values) + "]"


class MilvusIndex(SearchIndex):
    def __init__(self, client: Any, collection: str, meta: IndexMeta):
        self.client = client
        self.collection = collection
        self.meta = meta

    @classmethod
    def create(cls, collection: str, meta: IndexMeta) -> MilvusIndex:
        """The collection for `meta`'s generation: opened when it exists (a re-run adds to it), else made at the first add."""
        client = connect()
        if client.has_collection(collection):
            return cls.open(collection, client)
        return cls(client, collection, meta)

    @classmethod
    def open(cls, collection: str, client: Any = None) -> MilvusIndex:
        client = client or connect()
        if not client.has_collection(collection):
            raise WorkflowError(f"index {MILVUS_SCHEME}{collection}: no such collection; build it with `deeptrain index`")
        client.load_collection(collection)  # a collection is searchable only once loaded (again, after a restart)
        properties = client.describe_collection(collection).get("properties") or {}
        meta = IndexMeta.from_description(json.loads(properties.get(META_PROPERTY, "{}")))
        return cls(client, collection, meta)

    def _exists(self) -> bool:
        return bool(self.client.has_collection(self.collection))

    def _create(self, dim: int) -> None:
        from pymilvus import DataType, MilvusClient
        from pymilvus.exceptions import MilvusException

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_LENGTH)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("source", DataType.VARCHAR, max_length=MAX_ID_LENGTH)
        schema.add_field("fingerprint", DataType.VARCHAR, max_length=MAX_FINGERPRINT_LENGTH)
        schema.add_field("cluster", DataType.INT64)
        schema.add_field("item", DataType.JSON)
        index_params = self.client.prepare_index_params()
        index_params.add_index(field_name="vector", index_type="HNSW", metric_type=_milvus_metric(self.metric),
                               params=HNSW_PARAMS)
        index_params.add_index(field_name="source", index_type="INVERTED")
        index_params.add_index(field_name="cluster", index_type="INVERTED")
        try:
            self.client.create_collection(self.collection, schema=schema, index_params=index_params,
                                          consistency_level="Session")
        except MilvusException:
            if not self._exists():
                raise
            return  # another shard created it first: same schema, same generation
        self.client.alter_collection_properties(self.collection, properties={
            META_PROPERTY: json.dumps(self.meta.describe(), sort_keys=True)})

    # --- reading ---------------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        if not self._exists():
            return 0
        fields = self.client.describe_collection(self.collection)["fields"]
        return int(next(f for f in fields if f["name"] == "vector")["params"]["dim"])

    @property
    def version(self) -> str:
        """The generation and the row count: what a serving replica needs to tell two builds apart."""
        return f"{self.meta.generation}-{self.count()}"

    @property
    def location(self) -> str:
        return MILVUS_SCHEME + self.collection

    def count(self) -> int:
        if not self._exists():
            return 0
        found = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(found[0]["count(*)"])

    def sources(self) -> dict[str, str]:
        return {entity["source"]: entity["fingerprint"]
                for batch in self._iterate(["source", "fingerprint"], WRITE_BATCH) for entity in batch}

    def _iterate(self, fields: list[str], batch_size: int, filter_: str = "") -> Iterator[list[dict[str, Any]]]:
        if not self._exists():
            return
        iterator = self.client.query_iterator(self.collection, batch_size=batch_size, filter=filter_,
                                              output_fields=fields)
        try:
            while batch := iterator.next():
                yield batch
        finally:
            iterator.close()

    def search(self, queries: np.ndarray | Sequence[Sequence[float]], k: int = 5,
               metric: Metric | None = None) -> list[list[dict[str, Any]]]:
        metric = self.check_metric(metric)
        self.check_k(k)
        if metric != self.metric:
            raise WorkflowError(f"metric: collection {self.collection} is built for {self.metric}; ask for {self.metric} "
                                f"or build the index with spec.index.metric: {metric}")
        if not self._exists():
            return [[] for _ in np.atleast_2d(np.asarray(queries))]
        matrix = query_matrix(queries, self.dim)
        if metric == "cosine":
            matrix = l2_normalise(matrix)
        found = self.client.search(self.collection, data=matrix.tolist(), limit=k, output_fields=["item", "cluster"],
                                   search_params={"metric_type": _milvus_metric(metric),
                                                  "params": {"ef": max(HNSW_EF_SEARCH, 2 * k)}})
        # Milvus answers cosine similarity and squared L2 distance.
        return [[neighbour(_item(hit["entity"]), 1.0 - hit["distance"] if metric == "cosine"
                           else float(np.sqrt(max(hit["distance"], 0.0))), metric) for hit in hits] for hits in found]

    def iter_rows(self, batch_size: int) -> Iterator[Rows]:
        for batch in self._iterate([*FIELDS, "vector"], batch_size):
            yield Rows(ids=[entity["id"] for entity in batch],
                       vectors=np.asarray([entity["vector"] for entity in batch], dtype=np.float32),
                       items=[_item(entity) for entity in batch])

    def cluster_sizes(self) -> dict[int, int]:
        sizes: dict[int, int] = {}
        for batch in self._iterate(["cluster"], WRITE_BATCH, "cluster >= 0"):
            for entity in batch:
                sizes[entity["cluster"]] = sizes.get(entity["cluster"], 0) + 1
        return dict(sorted(sizes.items()))

    def cluster_page(self, cluster: int, offset: int, limit: int) -> list[dict[str, Any]]:
        if not self._exists():
            return []
        found = self.client.query(self.collection, filter=f"cluster == {int(cluster)}", output_fields=FIELDS,
                                  offset=offset, limit=limit)
        return sorted((_item(entity) for entity in found), key=lambda item: item["id"])

    # --- writing ---------------------------------------------------------------------------------------

    def add(self, rows: Rows) -> None:
        if not len(rows):
            return
        if not self._exists():
            self._create(rows.vectors.shape[1])
        vectors = l2_normalise(rows.vectors) if self.metric == "cosine" else rows.vectors
        entities = [{"id": row_id, "vector": vector.tolist(), "source": item.get("source", row_id),
                     "fingerprint": item.get("fingerprint", ""), "cluster": int(item.get("cluster", NO_CLUSTER)),
                     "item": {key: value for key, value in item.items() if key != "cluster"}}
                    for row_id, vector, item in zip(rows.ids, vectors, rows.items, strict=True)]
        for start in range(0, len(entities), WRITE_BATCH):
            self.client.upsert(self.collection, entities[start:start + WRITE_BATCH])

    def remove_sources(self, sources: Iterable[str]) -> None:
        gone = sorted(set(sources))
        if not gone or not self._exists():
            return
        for start in range(0, len(gone), WRITE_BATCH):
            self.client.delete(self.collection, filter=f"source in {_quoted(gone[start:start + WRITE_BATCH])}")

    def set_clusters(self, ids: Sequence[str], clusters: Sequence[int]) -> None:
        """Milvus replaces whole rows: each row is read back and written with its cluster."""
        wanted = dict(zip(ids, (int(c) for c in clusters), strict=True))
        keys = list(wanted)
        for start in range(0, len(keys), WRITE_BATCH):
            found = self.client.get(self.collection, ids=keys[start:start + WRITE_BATCH],
                                    output_fields=[*FIELDS, "vector"])
            for entity in found:
                entity["cluster"] = wanted[entity["id"]]
            self.client.upsert(self.collection, list(found))

    def commit(self) -> None:
        if self._exists():
            self.client.flush(self.collection)

    def drop_other_generations(self, workflow_name: str) -> list[str]:
        """Drop this workflow's collections except this one (call once this one serves); returns their names."""
        prefix = collection_prefix(workflow_name)
        dropped = [name for name in self.client.list_collections()
                   if name.startswith(prefix) and name != self.collection]
        for name in dropped:
            self.client.drop_collection(name)
        return dropped


def _item(entity: dict[str, Any]) -> dict[str, Any]:
    item = dict(entity.get("item") or {})
    item.setdefault("id", entity.get("id"))
    cluster = entity.get("cluster", NO_CLUSTER)
    if cluster is not None and cluster != NO_CLUSTER:
        item["cluster"] = cluster
    return item
