"""Opening and creating an index in the store spec.index.store names."""

from __future__ import annotations

from pathlib import Path

from deeptrain_api.workflow_contract import MILVUS_SCHEME

from .embedded_store import INDEX_FILE, EmbeddedIndex, Structure
from .index import IndexMeta, SearchIndex
from .milvus_store import MilvusIndex, collection_name

EMBEDDED = "embedded"
MILVUS = "milvus"


def open_index(location: str | Path) -> SearchIndex:
    """The index at a directory (embedded store) or at milvus://COLLECTION (connection from the environment)."""
    location = str(location)
    if location.startswith(MILVUS_SCHEME):
        return MilvusIndex.open(location.removeprefix(MILVUS_SCHEME))
    return EmbeddedIndex.open(Path(location))


def create_index(store: str, meta: IndexMeta, *, directory: Path, workflow_name: str,
                 structure: Structure = "auto") -> SearchIndex:
    """A writable index for `meta`'s generation: this workflow's collection, or the embedded folder at `directory`.

    What is there already is added to when it holds the same generation (incremental indexing); an
    embedded folder of another generation (a retrained embedder) is replaced whole at commit.
    """
    if store == MILVUS:
        return MilvusIndex.create(collection_name(workflow_name, meta), meta)
    if (Path(directory) / INDEX_FILE).is_file():
        existing = EmbeddedIndex.open(Path(directory))
        if existing.meta.generation == meta.generation:
            existing.meta, existing.structure = meta, structure
            return existing
    return EmbeddedIndex.create(directory, meta, structure=structure)
