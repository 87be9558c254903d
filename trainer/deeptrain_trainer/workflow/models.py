"""Where each node's model directory is: `--models DIR` locally, pinned directories in a pod.

A node's model is a directory holding model.safetensors and model.json. Locally a node
`{deepTrainingJob: NAME}` reads DIR/NAME (the `--output` of `deeptrain run` for that job); in the
cluster the operator pins every node to a directory and passes the map to the serve and index pods.
`{uri: ...}` nodes name their directory themselves. Only local or mounted directories are read:
`pvc://CLAIM/PATH` is where the pods mount it (/mnt/pvc/CLAIM/PATH).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from deeptrain_api.trainer_contract import PVC_MOUNT_ROOT
from deeptrain_api.workflow import WorkflowNode

from ..artifacts import local_path_of
from .errors import WorkflowError

PVC_SCHEME = "pvc://"

ModelResolver = Callable[[WorkflowNode], str]


def model_directory(uri: str, node_id: str) -> Path:
    """The local directory a node's model URI names."""
    if uri.startswith(PVC_SCHEME):
        return Path(PVC_MOUNT_ROOT) / uri.removeprefix(PVC_SCHEME)
    path = local_path_of(uri)
    if path is None:
        raise WorkflowError(f"node {node_id!r}: model {uri} is not a local or mounted directory; "
                            "copy the model directory here (or mount it) and point the node at it")
    return path


def models_dir_resolver(models_dir: Path) -> ModelResolver:
    """Local runs: `deepTrainingJob: NAME` is models_dir/NAME; `uri` nodes keep their URI."""

    def resolve(node: WorkflowNode) -> str:
        if node.model.deepTrainingJob is not None:
            return str(Path(models_dir) / node.model.deepTrainingJob)
        if node.model.uri is not None:
            return node.model.uri
        raise WorkflowError(f"node {node.id!r}: a builtin step has no model directory")

    return resolve


def pinned_resolver(pinned: Mapping[str, str], fallback: ModelResolver | None = None) -> ModelResolver:
    """Pods: node id -> model URI as the operator pinned it; `fallback` answers for nodes not in the map."""

    def resolve(node: WorkflowNode) -> str:
        if node.id in pinned:
            return pinned[node.id]
        if fallback is not None:
            return fallback(node)
        if node.model.uri is not None:
            return node.model.uri
        raise WorkflowError(f"node {node.id!r}: no model directory given for it; pass --model {node.id}=DIR "
                            "or --models DIR")

    return resolve


def parse_model_map(pairs: list[str]) -> dict[str, str]:
    """`NODE=DIR` arguments as a map."""
    pinned: dict[str, str] = {}
    for pair in pairs:
        node_id, sep, uri = pair.partition("=")
        if not sep or not node_id or not uri:
            raise WorkflowError(f"--model {pair!r}: write NODE=DIR, e.g. --model embed=/models/embedder")
        pinned[node_id] = uri
    return pinned
