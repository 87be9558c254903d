"""The /v1/clusters answers: the clusters stored with the index, or k-means computed on request, members paged.

Stored clusters (computed when the index was built, spec.index.clusters) scale with the index: the
answer lists each cluster's size and one page of its members. Clusters for another k are computed
on request, from a sample of the rows, for indexes up to ON_DEMAND_LIMIT rows.
"""

from __future__ import annotations

from typing import Any

from .errors import WorkflowError
from .index import SearchIndex
from .kmeans import Clusters

DEFAULT_PAGE = 100
MAX_PAGE = 1000
ON_DEMAND_LIMIT = 200_000


def stored_clusters(index: SearchIndex, cluster: int | None, offset: int, limit: int) -> dict[str, Any]:
    sizes = index.cluster_sizes()
    if not sizes:
        raise WorkflowError("k: this index was built without clusters (spec.index.clusters: 0); give k to "
                            "compute them now")
    wanted = sorted(sizes) if cluster is None else [cluster]
    if cluster is not None and cluster not in sizes:
        raise WorkflowError(f"cluster: {cluster} is not one of the index's clusters 0..{max(sizes)}")
    return {"k": len(sizes), "offset": offset, "limit": limit, "clusters": [
        {"id": c, "size": sizes[c], "members": [item["id"] for item in index.cluster_page(c, offset, limit)]}
        for c in wanted]}


def check_on_demand(index: SearchIndex) -> None:
    if index.count() > ON_DEMAND_LIMIT:
        raise WorkflowError(f"k: computing clusters on request is limited to {ON_DEMAND_LIMIT} rows and this index "
                            f"holds {index.count()}; page through the stored clusters (omit k), or set "
                            "spec.index.clusters")


def computed_clusters(index: SearchIndex, found: Clusters, seed: int, cluster: int | None, offset: int,
                      limit: int) -> dict[str, Any]:
    k = len(found.centroids)
    if cluster is not None and not 0 <= cluster < k:
        raise WorkflowError(f"cluster: {cluster} is not one of 0..{k - 1}")
    members: list[list[str]] = [[] for _ in range(k)]
    concepts: list[dict[str, int]] = [{} for _ in range(k)]
    assignment = dict(zip(found.ids, found.assignments.tolist(), strict=True))
    for rows in index.iter_rows(10_000):
        for row_id, item in zip(rows.ids, rows.items, strict=True):
            assigned = assignment[row_id]
            members[assigned].append(row_id)
            for concept in item.get("concepts", []):
                concepts[assigned][concept] = concepts[assigned].get(concept, 0) + 1
    wanted = range(k) if cluster is None else [cluster]
    return {"k": k, "seed": seed, "inertia": round(found.inertia, 6), "iterations": found.iterations,
            "offset": offset, "limit": limit, "clusters": [
                {"id": c, "size": len(members[c]), "members": members[c][offset:offset + limit],
                 "concepts": concepts[c], "centroid": [round(float(v), 6) for v in found.centroids[c]]}
                for c in wanted]}
