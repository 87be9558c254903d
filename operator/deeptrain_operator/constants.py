"""Every string the operator shares with the cluster: API names, labels, annotations, env, conditions.

Kept in one place so the builders, the status computation, the handlers and the tests cannot drift.
"""

from __future__ import annotations

from typing import Final

from deeptrain_api import trainer_contract as contract

GROUP: Final = "deeptrain.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
JOB_KIND: Final = "DeepTrainingJob"
JOB_PLURAL: Final = "deeptrainingjobs"
WORKFLOW_KIND: Final = "Workflow"
WORKFLOW_PLURAL: Final = "workflows"

# Where kopf keeps its handler progress and diff-base (annotations, never status).
KOPF_ANNOTATION_PREFIX: Final = GROUP
KOPF_FINALIZER: Final = f"{GROUP}/finalizer"

# Labels on every child. Explicit on purpose: the CR's own labels are never copied, so that a
# user's label cannot change which children a selector finds.
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_JOB_NAME: Final = f"{GROUP}/job-name"
LABEL_ATTEMPT: Final = f"{GROUP}/attempt"
APP_NAME: Final = "deeptrain"
MANAGER: Final = "deeptrain-operator"

COMPONENT_TRAINER: Final = "trainer"
COMPONENT_RENDEZVOUS: Final = "rendezvous"
COMPONENT_CONFIG: Final = "config"
COMPONENT_RBAC: Final = "rbac"
COMPONENT_SCHEDULING: Final = "scheduling"

ANNOTATION_CONFIG_HASH: Final = f"{GROUP}/config-hash"
ANNOTATION_SPEC_HASH: Final = f"{GROUP}/spec-hash"
# Status field holding the hash of the spec the current run was built from (runPolicy excluded).
STATUS_SPEC_HASH: Final = "specHash"

# Kubernetes-owned names the operator reads or writes.
ANNOTATION_COMPLETION_INDEX: Final = "batch.kubernetes.io/job-completion-index"
LABEL_KUEUE_QUEUE: Final = "kueue.x-k8s.io/queue-name"
ANNOTATION_VOLCANO_GROUP: Final = "scheduling.k8s.io/group-name"
LABEL_COSCHEDULING_GROUP: Final = "scheduling.x-k8s.io/pod-group"
VOLCANO_SCHEDULER: Final = "volcano"
COSCHEDULING_SCHEDULER: Final = "scheduler-plugins-scheduler"
GANG_VOLCANO: Final = "volcano"
GANG_SCHEDULER_PLUGINS: Final = "scheduler-plugins"
VOLCANO_PODGROUP_API: Final = "scheduling.volcano.sh/v1beta1"
COSCHEDULING_PODGROUP_API: Final = "scheduling.x-k8s.io/v1alpha1"
PODGROUP_KIND: Final = "PodGroup"

# Pods and containers.
TRAINER_CONTAINER: Final = "trainer"
RENDEZVOUS_PORT_NAME: Final = "rendezvous"
CONFIG_MOUNT_PATH: Final = "/etc/deeptrain"
CONFIG_PATH: Final = f"{CONFIG_MOUNT_PATH}/{contract.CONFIG_FILENAME}"
TERMINATION_LOG: Final = contract.DEFAULT_TERMINATION_LOG
REPORT_TO_KUBERNETES: Final = "kubernetes"

# torchrun's env contract, the one Kubeflow users know.
ENV_NNODES: Final = "PET_NNODES"
ENV_NPROC_PER_NODE: Final = "PET_NPROC_PER_NODE"
ENV_NODE_RANK: Final = "PET_NODE_RANK"
ENV_MASTER_ADDR: Final = "PET_MASTER_ADDR"
ENV_MASTER_PORT: Final = "PET_MASTER_PORT"
# Without it torchrun hands the rendezvous store to the workers and restarts mostly fail to rejoin.
ENV_DISABLE_SHARED_STORE: Final = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"
ENV_HOME: Final = "HOME"

# Condition types (metav1.Condition, list-map keyed by type).
CREATED: Final = "Created"
QUEUED: Final = "Queued"
RUNNING: Final = "Running"
RESTARTING: Final = "Restarting"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
SUSPENDED: Final = "Suspended"
CONDITION_TYPES: Final = (CREATED, QUEUED, RUNNING, RESTARTING, SUCCEEDED, FAILED, SUSPENDED)

# Phases (printer convenience; the conditions are the truth).
PHASE_CREATED: Final = "Created"
PHASE_QUEUED: Final = "Queued"
PHASE_RUNNING: Final = "Running"
PHASE_RESTARTING: Final = "Restarting"
PHASE_SUSPENDED: Final = "Suspended"
PHASE_SUCCEEDED: Final = "Succeeded"
PHASE_FAILED: Final = "Failed"
PHASES: Final = (PHASE_CREATED, PHASE_QUEUED, PHASE_RUNNING, PHASE_RESTARTING, PHASE_SUSPENDED,
                 PHASE_SUCCEEDED, PHASE_FAILED)

# Condition reasons.
REASON_JOB_CREATED: Final = "JobCreated"
REASON_CREATING: Final = "CreatingChildren"
REASON_WAITING_FOR_BASE_MODEL: Final = "WaitingForBaseModel"
REASON_WAITING_FOR_ADMISSION: Final = "WaitingForAdmission"
REASON_ADMITTED: Final = "Admitted"
REASON_WAITING_FOR_WORKERS: Final = "WaitingForWorkers"
REASON_WORKERS_RUNNING: Final = "WorkersRunning"
REASON_RESTARTED: Final = "Restarted"
REASON_SPEC_CHANGED: Final = "SpecChanged"
REASON_JOB_SUCCEEDED: Final = "JobSucceeded"
REASON_JOB_FAILED: Final = "JobFailed"
REASON_JOB_SUSPENDED: Final = "JobSuspended"
REASON_JOB_RESUMED: Final = "JobResumed"
REASON_TTL_EXPIRED: Final = "TTLExpired"
REASON_INVALID_SPEC: Final = "InvalidSpec"
REASON_BASE_MODEL_NOT_FOUND: Final = "BaseModelNotFound"
REASON_BASE_MODEL_FAILED: Final = "BaseModelFailed"
REASON_BACKOFF_LIMIT_EXCEEDED: Final = "BackoffLimitExceeded"
REASON_DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
REASON_UNSCHEDULABLE: Final = "Unschedulable"
REASON_IMAGE_PULL_BACKOFF: Final = "ImagePullBackOff"
REASON_OOM_KILLED: Final = "OOMKilled"
REASON_EVICTED: Final = "Evicted"
REASON_PREEMPTED: Final = "Preempted"
REASON_NODE_LOST: Final = "NodeLost"
REASON_WORKER_FAILED: Final = "WorkerFailed"

# Event reasons beyond the condition types (those are posted under their own names).
EVENT_RESUMED: Final = "Resumed"
EVENT_CHILD_RECREATED: Final = "ChildRecreated"
EVENT_CHILD_CONFLICT: Final = "ChildConflict"
EVENT_RETRAINING: Final = "Retraining"
EVENT_CHILDREN_DELETED: Final = "ChildrenDeleted"


# --- Workflow -------------------------------------------------------------------------------------
# (PHASE_FAILED and REASON_INVALID_SPEC above serve both kinds.)

LABEL_WORKFLOW_NAME: Final = f"{GROUP}/workflow-name"
COMPONENT_SERVE: Final = "workflow-serve"
COMPONENT_INDEX: Final = "workflow-index"
COMPONENT_WORKFLOW_CONFIG: Final = "workflow-config"

# Pod-template annotation of the serve Deployment: a new value rolls the pods (new model versions or index).
ANNOTATION_MODELS_HASH: Final = f"{GROUP}/models-hash"
# On index Jobs: the hash of what they index (pinned models + spec.index), also part of their name.
ANNOTATION_INDEX_HASH: Final = f"{GROUP}/index-hash"

SERVE_CONTAINER: Final = "serve"
INDEX_CONTAINER: Final = "index"
HTTP_PORT_NAME: Final = "http"
WORKFLOW_MOUNT_PATH: Final = "/etc/deeptrain"
INDEX_DIR: Final = "index"  # the index lives in <embed model's parent>/index/<workflow name>
ENV_SHARD_INDEX: Final = "DEEPTRAIN_SHARD_INDEX"  # an index pod's shard: its Job completion index

# Phases (printer convenience; conditions are the truth).
PHASE_PENDING: Final = "Pending"
PHASE_READY: Final = "Ready"

# Condition types.
MODELS_READY: Final = "ModelsReady"
SERVING: Final = "Serving"
INDEXED: Final = "Indexed"
READY: Final = "Ready"
DEFAULT: Final = "Default"
WORKFLOW_CONDITION_TYPES: Final = (MODELS_READY, SERVING, INDEXED, READY, DEFAULT)

# Condition reasons.
REASON_MODELS_RESOLVED: Final = "ModelsResolved"
REASON_WAITING_FOR_MODEL: Final = "WaitingForModel"
REASON_MODEL_FAILED: Final = "ModelFailed"
REASON_MODEL_NOT_FOUND: Final = "ModelNotFound"
REASON_NOT_REQUESTED: Final = "NotRequested"  # no spec.serve / no spec.index
REASON_DEPLOYMENT_AVAILABLE: Final = "DeploymentAvailable"
REASON_DEPLOYMENT_PROGRESSING: Final = "DeploymentProgressing"
REASON_AUTH_SECRET_NOT_FOUND: Final = "AuthSecretNotFound"  # spec.serve.auth names a Secret or key that is missing
REASON_SERVE_POD_WAITING: Final = "ServePodWaiting"  # the kubelet cannot start a serving container
REASON_NOT_DEFAULT: Final = "NotDefault"  # spec.index is set but only the default workflow indexes
REASON_INDEXING: Final = "Indexing"
REASON_INDEX_BUILT: Final = "IndexBuilt"
REASON_INDEXING_FAILED: Final = "IndexingFailed"
REASON_IS_DEFAULT: Final = "IsDefault"
REASON_SUPERSEDED_BY: Final = "SupersededBy"
REASON_READY: Final = "WorkflowReady"
REASON_NOT_READY: Final = "WorkflowNotReady"
