"""The operator <-> workflow pods contract: arguments, ports, probe paths, the indexing termination message.

Torch-free: the operator builds the serve Deployment and the indexing Job from these names.
"""

from __future__ import annotations

import json
from typing import Any

SERVE_MODULE = "deeptrain_trainer.serve"
SERVE_PORT = 8080
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
OPENAPI_PATH = "/openapi.json"
# Bearer tokens of the serving API (whitespace- or comma-separated); the operator fills it from the
# Secret key named in spec.serve.auth.
ENV_SERVE_TOKENS = "DEEPTRAIN_SERVE_TOKENS"
# Every interface, in a pod (the Service reaches it there); locally the server listens on loopback.
POD_BIND_ADDRESS = "0.0.0.0"  # noqa: S104

# Arguments of `python -m deeptrain_trainer.serve` and of `deeptrain index`.
ARG_WORKFLOW = "--workflow"
ARG_MODEL = "--model"  # NODE=DIR, once per model node
ARG_INDEX = "--index"
ARG_OUTPUT = "--output"
ARG_PORT = "--port"
ARG_HOST = "--host"
ARG_ALLOW_URI_PREFIX = "--allow-uri-prefix"

ARG_SHARD = "--shard"  # I/N: embed the I-th of N disjoint shards of the listing and write its part
ARG_MERGE = "--merge"  # N: combine the N shards' parts, remove deleted inputs, cluster, commit
ARG_PRUNE = "--prune"  # drop the store's other generations of this workflow's index

WORKFLOW_FILENAME = "workflow.json"  # the Workflow manifest, as the serve and index pods read it

# Where the milvus store connects: the operator fills these from the keys `uri`, `token` and
# `database` of the Secret spec.index.connection.secretRef names.
ENV_MILVUS_URI = "DEEPTRAIN_MILVUS_URI"
ENV_MILVUS_TOKEN = "DEEPTRAIN_MILVUS_TOKEN"
ENV_MILVUS_DATABASE = "DEEPTRAIN_MILVUS_DATABASE"
MILVUS_SCHEME = "milvus://"  # an index location that is a Milvus collection: milvus://COLLECTION
MILVUS_SECRET_KEYS = {ENV_MILVUS_URI: "uri", ENV_MILVUS_TOKEN: "token", ENV_MILVUS_DATABASE: "database"}


def index_termination_message(size: int, version: str, uri: str) -> str:
    """What `deeptrain index` leaves in the termination log: the operator copies it to status.index."""
    return json.dumps({"size": size, "version": version, "uri": uri}, sort_keys=True)


def parse_index_termination_message(text: str) -> dict[str, Any] | None:
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("size"), int):
        return None
    return {key: message[key] for key in ("size", "version", "uri") if key in message}
