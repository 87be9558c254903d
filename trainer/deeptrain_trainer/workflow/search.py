"""Searching an index with an image: embed it with the same graph, then look up each embedding."""

from __future__ import annotations

from typing import Any

from PIL import Image

from .errors import WorkflowError
from .graph import GraphInput, WorkflowRunner
from .index import Metric, SearchIndex


def search_by_image(runner: WorkflowRunner, index: SearchIndex, image: Image.Image, k: int,
                    metric: Metric | None = None, name: str = "query") -> list[dict[str, Any]]:
    """One result per embedding the graph makes of the image (one per detected region for a crop graph):
    {"region" (when from a crop), "neighbours": [nearest first]}."""
    entries = runner.run([GraphInput(name=name, image=image)])[0]["nodes"].get(index.embed_node)
    if entries is None:
        raise WorkflowError(f"the index was built from node {index.embed_node!r}, which this workflow lacks")
    if not entries:
        return []
    found = index.search([entry["embedding"] for entry in entries], k, metric)
    return [{**({"region": entry["region"]} if "region" in entry else {}), "neighbours": neighbours}
            for entry, neighbours in zip(entries, found, strict=True)]
