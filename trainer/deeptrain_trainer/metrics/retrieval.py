"""Embedder metrics: leave-one-out nearest-neighbour recall over the validation embeddings.

Each validation item queries all the others by cosine similarity; recall@k is the fraction of
queries with at least one of their k nearest neighbours sharing a concept with them.
"""

from __future__ import annotations

import numpy as np

RECALL_KS = (1, 5)


def recall_at_k(embeddings: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = RECALL_KS) -> dict[str, float]:
    """`embeddings` [N, D]; `labels` [N] class ids or [N, C] multi-hot."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    unit = embeddings / np.where(norms > 0, norms, 1.0)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None, :] if labels.ndim == 1 else (labels.astype(np.int64) @ labels.T.astype(np.int64)) > 0
    num_items = len(embeddings)
    neighbours = np.argsort(-similarity, axis=1, kind="stable")
    results = {}
    for k in ks:
        if num_items < 2:
            results[f"recall_at_{k}"] = 0.0
            continue
        top = neighbours[:, : min(k, num_items - 1)]
        hits = np.take_along_axis(same, top, axis=1).any(axis=1)
        results[f"recall_at_{k}"] = float(hits.mean())
    return results
