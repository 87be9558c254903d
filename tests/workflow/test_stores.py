"""Both index stores behind the one interface: the same search, replace, remove and cluster behaviour.

The embedded store runs with each of its structures (exact, HNSW, IVF-PQ); the Milvus store runs
against Milvus Lite, the embedded engine, started by the test in its temporary folder.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from deeptrain_api.workflow_contract import ENV_MILVUS_URI
from deeptrain_trainer.workflow.embedded_store import EmbeddedIndex
from deeptrain_trainer.workflow.errors import WorkflowError
from deeptrain_trainer.workflow.index import IndexMeta, Metric, Rows, SearchIndex
from deeptrain_trainer.workflow.kmeans import store_clusters
from deeptrain_trainer.workflow.milvus_store import MilvusIndex, collection_name
from deeptrain_trainer.workflow.stores import open_index

DIM = 16
STORES = ["embedded-exact", "embedded-hnsw", "embedded-ivfpq", "milvus"]

Factory = Callable[..., SearchIndex]


@pytest.fixture(params=STORES)
def make_index(request, tmp_path) -> Factory:
    def make(metric: Metric = "cosine", models: dict | None = None) -> SearchIndex:
        meta = IndexMeta(metric=metric, embed_node="embed", models=models or {"embed": {"version": "v1"}})
        if request.param == "milvus":
            request.getfixturevalue("milvus_lite")
            return MilvusIndex.create(collection_name("shoes", meta), meta)
        return EmbeddedIndex.create(tmp_path / "index", meta, structure=request.param.removeprefix("embedded-"))

    return make


def clustered_rows(count: int, seed: int = 0, prefix: str = "img") -> Rows:
    """Points around 8 well-separated centres; two rows (two regions) per input."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, DIM)) * 4
    vectors = centres[np.arange(count) % 8] + rng.normal(scale=0.3, size=(count, DIM))
    ids = [f"{prefix}-{i // 2:04d}#{i % 2}" for i in range(count)]
    items = [{"id": row_id, "input": f"/data/{row_id.split('#')[0]}.png", "source": row_id.split("#")[0],
              "fingerprint": "f1", "concepts": [f"c{i % 8}"], "timeOffsetMs": None} for i, row_id in enumerate(ids)]
    return Rows(ids=ids, vectors=vectors.astype(np.float32), items=items)


def exact(rows: Rows, query: np.ndarray, k: int, metric: Metric) -> list[str]:
    vectors = rows.vectors
    if metric == "cosine":
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        order = np.argsort(-(unit @ (query / np.linalg.norm(query))), kind="stable")
    else:
        order = np.argsort(np.linalg.norm(vectors - query, axis=1), kind="stable")
    return [rows.ids[i] for i in order[:k]]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_search_finds_the_true_neighbours_nearest_first(make_index, metric):
    rows = clustered_rows(400)
    index = make_index(metric)
    index.add(rows)
    index.commit()
    assert index.count() == 400 and index.dim == DIM
    rng = np.random.default_rng(1)
    hits = 0
    for position in rng.choice(400, 10, replace=False):
        query = rows.vectors[position] + rng.normal(scale=0.05, size=DIM).astype(np.float32)
        found = index.search(query, k=5)[0]
        assert [n["distance"] for n in found] == sorted(n["distance"] for n in found) and len(found) == 5
        assert found[0]["id"] == rows.ids[position]
        hits += len({n["id"] for n in found} & set(exact(rows, query, 5, metric)))
        if metric == "cosine":
            assert found[0]["score"] == pytest.approx(1.0 - found[0]["distance"], abs=1e-5)
    assert hits / 50 >= 0.9, "the approximate structures find nearly all true neighbours"
    with pytest.raises(WorkflowError, match="has 3 dimensions; this index holds 16"):
        index.search([1.0, 0.0, 0.0], k=1)


def test_adding_the_same_ids_again_replaces_and_removing_a_source_removes_its_regions(make_index):
    rows = clustered_rows(40)
    index = make_index()
    index.add(rows)
    index.commit()
    moved = Rows(ids=rows.ids[:2], vectors=-rows.vectors[:2], items=rows.items[:2])
    index.add(moved)  # a re-run of the same input: same ids, no duplicates
    index.remove_sources(["img-0005"])
    index.commit()
    assert index.count() == 38
    assert set(index.sources()) == {f"img-{i:04d}" for i in range(20)} - {"img-0005"}
    assert index.search(-rows.vectors[0], k=1)[0][0]["id"] == "img-0000#0"
    assert all(n["source"] != "img-0005" for n in index.search(rows.vectors[10], k=38)[0])


def test_stored_clusters_page_through_every_member_once(make_index):
    rows = clustered_rows(160)
    index = make_index("euclidean")
    index.add(rows)
    index.commit()
    store_clusters(index, 8, seed=0)
    index.commit()
    sizes = index.cluster_sizes()
    assert sorted(sizes) == list(range(8)) and sum(sizes.values()) == 160
    members = []
    for cluster in sizes:
        page = [index.cluster_page(cluster, offset, 7) for offset in range(0, sizes[cluster], 7)]
        ids = [item["id"] for chunk in page for item in chunk]
        assert len(ids) == sizes[cluster] and all(item["cluster"] == cluster for chunk in page for item in chunk)
        # Well-separated groups: each cluster holds one concept.
        assert len({item["concepts"][0] for chunk in page for item in chunk}) == 1
        members += ids
    assert sorted(members) == sorted(rows.ids)


def test_a_replica_opening_the_index_sees_what_was_committed(make_index):
    rows = clustered_rows(60)
    index = make_index()
    index.add(rows)
    index.commit()
    replica = open_index(index.location)
    assert replica.count() == 60 and replica.version == index.version and replica.metric == "cosine"
    assert replica.search(rows.vectors[7], k=3) == index.search(rows.vectors[7], k=3)
    replica.check_models({"embed": {"version": "v1"}, "detect": {"version": "x"}})
    with pytest.raises(WorkflowError, match="build the index again"):
        replica.check_models({"embed": {"version": "v2"}})


def test_the_milvus_store_needs_a_connection(monkeypatch):
    monkeypatch.delenv(ENV_MILVUS_URI, raising=False)
    with pytest.raises(WorkflowError, match="spec.index.connection.secretRef"):
        MilvusIndex.create("dt_x_1", IndexMeta())
