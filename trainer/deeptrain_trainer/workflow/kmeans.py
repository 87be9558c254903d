"""k-means that scales with the index: Lloyd's iterations with k-means++ seeding (Arthur & Vassilvitskii,
2007) on a uniform sample of the rows, then every row assigned to its nearest centre in batches.

Up to SAMPLE_ROWS rows this is exact k-means over the whole index; beyond, the centres come from the
sample (a million rows cost one pass to sample and one to assign), which is what keeps clustering a
100-million-row index a job of minutes rather than hours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import WorkflowError
from .index import SearchIndex

MAX_ITERATIONS = 100
SAMPLE_ROWS = 100_000
ASSIGN_BATCH = 10_000


@dataclass(frozen=True)
class Clusters:
    ids: list[str]  # every row id, in the store's row order
    assignments: np.ndarray  # int [N]: the cluster of each row
    centroids: np.ndarray  # float32 [k, D]
    inertia: float  # sum of squared distances of rows to their centroid
    iterations: int  # Lloyd iterations on the sample


def _squared_distances(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    squared = np.sum(points**2, axis=1)[:, None] - 2.0 * points @ centres.T + np.sum(centres**2, axis=1)[None, :]
    return np.maximum(squared, 0.0)


def _seed_centres(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++: each next centre drawn with probability proportional to its squared distance to the nearest one."""
    centres = [points[rng.integers(len(points))]]
    nearest = _squared_distances(points, centres[0][None, :])[:, 0]
    for _ in range(1, k):
        total = float(nearest.sum())
        # All remaining points coincide with a centre: any of them is as good as another.
        choice = rng.integers(len(points)) if total <= 0 else rng.choice(len(points), p=nearest / total)
        centres.append(points[choice])
        nearest = np.minimum(nearest, _squared_distances(points, points[choice][None, :])[:, 0])
    return np.stack(centres)


def lloyd(points: np.ndarray, k: int, seed: int = 0,
          max_iterations: int = MAX_ITERATIONS) -> tuple[np.ndarray, np.ndarray, int]:
    """(assignments, centres, iterations) of k-means over `points`, deterministic for a seed.

    A cluster that empties takes the point farthest from its centre, so all k keep a member.
    """
    rng = np.random.default_rng(seed)
    centres = _seed_centres(points, k, rng)
    assignments = np.full(len(points), -1)
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        distances = _squared_distances(points, centres)
        new_assignments = np.argmin(distances, axis=1)
        own = distances[np.arange(len(points)), new_assignments]
        for cluster in range(k):
            if not np.any(new_assignments == cluster):
                # Take the worst-fitting row from a cluster that can spare it (k <= N: one always can).
                sizes = np.bincount(new_assignments, minlength=k)
                candidates = np.flatnonzero(sizes[new_assignments] > 1)
                farthest = int(candidates[np.argmax(own[candidates])])
                new_assignments[farthest] = cluster
                own[farthest] = 0.0
        if np.array_equal(new_assignments, assignments):
            break
        assignments = new_assignments
        centres = np.stack([points[assignments == cluster].mean(axis=0) for cluster in range(k)])
    return assignments, centres, iterations


def _sample(index: SearchIndex, size: int, rng: np.random.Generator) -> np.ndarray:
    """A uniform sample of `size` rows' vectors in one pass (reservoir sampling, batch-wise)."""
    kept: np.ndarray | None = None
    seen = 0
    for rows in index.iter_rows(ASSIGN_BATCH):
        vectors = rows.vectors.astype(np.float64)
        if kept is None:
            kept = np.empty((size, vectors.shape[1]))
        for vector in vectors:
            if seen < size:
                kept[seen] = vector
            elif (slot := rng.integers(seen + 1)) < size:
                kept[slot] = vector
            seen += 1
    assert kept is not None
    return kept[:min(seen, size)]


def kmeans(index: SearchIndex, k: int, seed: int = 0, sample_rows: int = SAMPLE_ROWS) -> Clusters:
    """Cluster the index's stored vectors (unit length for a cosine index) into k groups."""
    size = index.count()
    if not 1 <= k <= size:
        raise WorkflowError(f"k: {k} must be between 1 and the index size {size}")
    points = _sample(index, min(size, sample_rows), np.random.default_rng(seed))
    sampled, centres, iterations = lloyd(points, k, seed)
    ids: list[str] = []
    assignments: list[np.ndarray] = []
    inertia = 0.0
    for rows in index.iter_rows(ASSIGN_BATCH):
        distances = _squared_distances(rows.vectors.astype(np.float64), centres)
        # The whole index was the sample: keep Lloyd's answer (every cluster non-empty) as it is.
        nearest = sampled[len(ids):len(ids) + len(rows)] if size <= sample_rows else np.argmin(distances, axis=1)
        inertia += float(distances[np.arange(len(nearest)), nearest].sum())
        ids += rows.ids
        assignments.append(nearest)
    return Clusters(ids=ids, assignments=np.concatenate(assignments), centroids=centres.astype(np.float32),
                    inertia=inertia, iterations=iterations)

def store_clusters(index: SearchIndex, k: int, seed: int = 0) -> Clusters:
    """k-means over the index with each row's cluster id written to the store (visible at commit)."""
    found = kmeans(index, min(k, index.count()), seed)
    index.set_clusters(found.ids, found.assignments.tolist())
    return found
