"""Reading the Workflow a runtime runs: the same admission as `deeptrain validate` and the cluster."""

from __future__ import annotations

from pathlib import Path

from deeptrain_api.manifests import ManifestError, load_objects
from deeptrain_api.workflow import Workflow

from .errors import WorkflowError


def load_workflow(path: Path | str) -> Workflow:
    """The one Workflow in a YAML or JSON file; WorkflowError naming the field when it would not be admitted."""
    try:
        objects = load_objects(path)
    except ManifestError as error:
        raise WorkflowError(f"{path}: {error}") from None
    workflows = [obj for obj in objects if isinstance(obj, Workflow)]
    if len(workflows) != 1:
        raise WorkflowError(f"{path}: holds {len(workflows)} Workflow objects; give a file with exactly one")
    return workflows[0]
