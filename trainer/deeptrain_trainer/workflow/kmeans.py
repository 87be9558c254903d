"""k-means over an index's vectors: k-means++ seeding (Arthur & Vassilvitskii, 2007), then Lloyd's iterations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import WorkflowError
from .index import Index

MAX_ITERATIONS = 100


@dataclass(frozen=True)
class Clusters:
    assignments: np.ndarray  # int [N]: the cluster of each index row
    centroids: np.ndarray  # float32 [k, D]
    inertia: float  # sum of squared distances of rows to their centroid
    iterations: int


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


def kmeans(index: Index, k: int, seed: int = 0, max_iterations: int = MAX_ITERATIONS) -> Clusters:
    """Cluster the index's rows (its stored vectors: unit length for a cosine index) into k groups.

    Deterministic for a given seed. A cluster that empties takes the row farthest from its centre,
    so every one of the k clusters keeps at least one member.
    """
    points = index.vectors.astype(np.float64)
    if not 1 <= k <= len(points):
        raise WorkflowError(f"k: {k} must be between 1 and the index size {len(points)}")
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
    inertia = float(_squared_distances(points, centres)[np.arange(len(points)), assignments].sum())
    return Clusters(assignments=assignments, centroids=centres.astype(np.float32), inertia=inertia,
                    iterations=iterations)
