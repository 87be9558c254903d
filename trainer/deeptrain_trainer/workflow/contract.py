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

# Arguments of `python -m deeptrain_trainer.serve` and of `deeptrain index`.
ARG_WORKFLOW = "--workflow"
ARG_MODEL = "--model"  # NODE=DIR, once per model node
ARG_INDEX = "--index"
ARG_OUTPUT = "--output"
ARG_PORT = "--port"
ARG_ALLOW_URI_PREFIX = "--allow-uri-prefix"

WORKFLOW_FILENAME = "workflow.json"  # the Workflow manifest, as the serve and index pods read it


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
