"""The strings a Workflow shares with the cluster: labels, annotations, finalizer, conditions and reasons.

The operator-wide ones (group, labels every child carries, the manager's name) live in
deeptrain_operator.constants; these are the Workflow's own.
"""

from __future__ import annotations

from typing import Final

from .. import constants as c

LABEL_WORKFLOW_NAME: Final = f"{c.GROUP}/workflow-name"
COMPONENT_SERVE: Final = "workflow-serve"
COMPONENT_INDEX: Final = "workflow-index"
COMPONENT_WORKFLOW_CONFIG: Final = "workflow-config"

# Pod-template annotation of the serve Deployment: a new value rolls the pods (new model versions or index).
ANNOTATION_MODELS_HASH: Final = f"{c.GROUP}/models-hash"
# On index Jobs: the hash of what they index (pinned models + spec.index), also part of their name.
ANNOTATION_INDEX_HASH: Final = f"{c.GROUP}/index-hash"

SERVE_CONTAINER: Final = "serve"
INDEX_CONTAINER: Final = "index"
HTTP_PORT_NAME: Final = "http"
WORKFLOW_MOUNT_PATH: Final = "/etc/deeptrain"
INDEX_DIR: Final = "index"  # the index lives in <embed model's parent>/index/<workflow name>

# Phases (printer convenience; conditions are the truth).
PHASE_PENDING: Final = "Pending"
PHASE_READY: Final = "Ready"
PHASE_FAILED: Final = "Failed"

# Condition types.
MODELS_READY: Final = "ModelsReady"
SERVING: Final = "Serving"
INDEXED: Final = "Indexed"
READY: Final = "Ready"
DEFAULT: Final = "Default"
CONDITION_TYPES: Final = (MODELS_READY, SERVING, INDEXED, READY, DEFAULT)

# Condition reasons.
REASON_MODELS_RESOLVED: Final = "ModelsResolved"
REASON_WAITING_FOR_MODEL: Final = "WaitingForModel"
REASON_MODEL_FAILED: Final = "ModelFailed"
REASON_MODEL_NOT_FOUND: Final = "ModelNotFound"
REASON_INVALID_SPEC: Final = "InvalidSpec"
REASON_NOT_REQUESTED: Final = "NotRequested"  # no spec.serve / no spec.index
REASON_DEPLOYMENT_AVAILABLE: Final = "DeploymentAvailable"
REASON_DEPLOYMENT_PROGRESSING: Final = "DeploymentProgressing"
REASON_NOT_DEFAULT: Final = "NotDefault"  # spec.index is set but only the default workflow indexes
REASON_INDEXING: Final = "Indexing"
REASON_INDEX_BUILT: Final = "IndexBuilt"
REASON_INDEXING_FAILED: Final = "IndexingFailed"
REASON_IS_DEFAULT: Final = "IsDefault"
REASON_SUPERSEDED_BY: Final = "SupersededBy"
REASON_READY: Final = "WorkflowReady"
REASON_NOT_READY: Final = "WorkflowNotReady"
