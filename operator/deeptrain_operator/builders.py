"""Pure builders: a DeepTrainingJob (and what the operator decided) in, one child manifest out.

No I/O here. Names are deterministic, labels are explicit (never copied from the CR), and every child
carries a controlling ownerReference so that deleting the job garbage-collects it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from deeptrain_api import DeepTrainingJob
from deeptrain_api import trainer_contract as contract
from deeptrain_api.processes import gpu_resources, nproc_per_node, pod_resources
from deeptrain_api.trainer_contract import TrainerConfig
from deeptrain_api.volumes import claim_of

from . import constants as c
from .settings import Settings

Manifest = dict[str, Any]

# Fields that may change without starting a new run: the run policy is applied live and Kueue may
# move a queued job between queues (api.job.FROZEN_WHILE_ACTIVE keeps the rest fixed while active).
_LIVE_FIELDS = ("runPolicy",)
_LIVE_SCHEDULING_FIELDS = ("queueName", "priorityClassName")


# --- names ---------------------------------------------------------------------------------------

def trainer_job_name(job_name: str, attempt: int) -> str:
    return f"{job_name}-{attempt}"


def config_map_name(job_name: str) -> str:
    return f"{job_name}-trainer-config"


def service_name(job_name: str) -> str:
    return job_name


def rbac_name(job_name: str) -> str:
    return f"{job_name}-trainer"


def podgroup_name(job_name: str) -> str:
    return job_name


def master_address(job_name: str, attempt: int) -> str:
    """Rank 0's stable DNS name: indexed Job pods are `<job>-<index>` under the Service's subdomain."""
    return f"{trainer_job_name(job_name, attempt)}-0.{service_name(job_name)}"


# --- shared metadata -----------------------------------------------------------------------------

def labels(job_name: str, component: str, attempt: int | None = None) -> dict[str, str]:
    result = {
        c.LABEL_NAME: c.APP_NAME,
        c.LABEL_MANAGED_BY: c.MANAGER,
        c.LABEL_COMPONENT: component,
        c.LABEL_JOB_NAME: job_name,
    }
    if attempt is not None:
        result[c.LABEL_ATTEMPT] = str(attempt)
    return result


def owner_reference(job: DeepTrainingJob) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.JOB_KIND,
        "name": job.metadata.name,
        "uid": job.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(job: DeepTrainingJob, name: str, component: str, attempt: int | None = None,
              annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": job.metadata.namespace,
        "labels": labels(_name(job), component, attempt),
        "ownerReferences": [owner_reference(job)],
    }
    if annotations:
        meta["annotations"] = annotations
    return meta


def _name(job: DeepTrainingJob) -> str:
    return job.metadata.name or ""


# --- hashes ----------------------------------------------------------------------------------------

def _digest(data: Any) -> str:
    text = data if isinstance(data, str) else json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def spec_hash(job: DeepTrainingJob) -> str:
    """Identifies the training run a spec asks for: equal hashes, same run; runPolicy edits are live."""
    spec = job.spec.to_dict()
    for field in _LIVE_FIELDS:
        spec.pop(field, None)
    for field in _LIVE_SCHEDULING_FIELDS:
        spec.get("scheduling", {}).pop(field, None)
    return _digest(spec)


def config_json(config: TrainerConfig) -> str:
    return json.dumps(config.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def config_hash(config: TrainerConfig) -> str:
    return _digest(config_json(config))


# --- resources -----------------------------------------------------------------------------------

# --- pvc mounts ----------------------------------------------------------------------------------

def pvc_claims(config: TrainerConfig) -> dict[str, bool]:
    """Each claim the run reads or writes -> whether the pods write to it (only the output's claim).

    Taken from the rendered config, so that a base model that another job wrote to its own claim is
    mounted too."""
    read = [config.dataset.uri, config.dataset.validation_uri, config.baseModelUri]
    claims: dict[str, bool] = {}
    for uri in read:
        if (claim := claim_of(uri)) is not None:
            claims.setdefault(claim, False)
    if (claim := claim_of(config.outputUri)) is not None:
        claims[claim] = True
    return dict(sorted(claims.items()))


# --- children ------------------------------------------------------------------------------------

def build_config_map(job: DeepTrainingJob, config: TrainerConfig) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(job, config_map_name(_name(job)), c.COMPONENT_CONFIG, annotations={
            c.ANNOTATION_CONFIG_HASH: config_hash(config),
            c.ANNOTATION_SPEC_HASH: spec_hash(job),
        }),
        "data": {contract.CONFIG_FILENAME: config_json(config)},
    }


def build_service(job: DeepTrainingJob, settings: Settings) -> Manifest:
    name = _name(job)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(job, service_name(name), c.COMPONENT_RENDEZVOUS),
        "spec": {
            "clusterIP": "None",
            # Rank 0 must be resolvable before it is ready, or the other ranks cannot rendezvous.
            "publishNotReadyAddresses": True,
            "selector": {c.LABEL_JOB_NAME: name, c.LABEL_COMPONENT: c.COMPONENT_TRAINER},
            "ports": [{"name": c.RENDEZVOUS_PORT_NAME, "port": settings.rendezvous_port,
                       "targetPort": settings.rendezvous_port, "protocol": "TCP"}],
        },
    }


def build_service_account(job: DeepTrainingJob) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(job, rbac_name(_name(job)), c.COMPONENT_RBAC),
    }


def build_role(job: DeepTrainingJob) -> Manifest:
    """Rank 0 may read its own job and patch its status (progress), nothing else."""
    name = _name(job)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(job, rbac_name(name), c.COMPONENT_RBAC),
        "rules": [
            {"apiGroups": [c.GROUP], "resources": [f"{c.JOB_PLURAL}/status"], "resourceNames": [name],
             "verbs": ["get", "patch"]},
            {"apiGroups": [c.GROUP], "resources": [c.JOB_PLURAL], "resourceNames": [name], "verbs": ["get"]},
        ],
    }


def build_role_binding(job: DeepTrainingJob) -> Manifest:
    name = rbac_name(_name(job))
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(job, name, c.COMPONENT_RBAC),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": job.metadata.namespace}],
    }


def build_podgroup(job: DeepTrainingJob) -> Manifest | None:
    """The gang's PodGroup when spec.scheduling.gang asks for one: all workers are placed, or none."""
    gang = job.spec.scheduling.gang
    if not gang:
        return None
    api_version = c.VOLCANO_PODGROUP_API if gang == c.GANG_VOLCANO else c.COSCHEDULING_PODGROUP_API
    spec: dict[str, Any] = {"minMember": job.spec.workers}
    if gang == c.GANG_VOLCANO and job.spec.scheduling.priorityClassName:
        spec["priorityClassName"] = job.spec.scheduling.priorityClassName
    return {
        "apiVersion": api_version,
        "kind": c.PODGROUP_KIND,
        "metadata": _metadata(job, podgroup_name(_name(job)), c.COMPONENT_SCHEDULING),
        "spec": spec,
    }


def is_kueue_managed(job: DeepTrainingJob) -> bool:
    return bool(job.spec.scheduling.queueName)


def build_trainer_job(job: DeepTrainingJob, *, attempt: int, settings: Settings, config: TrainerConfig,
                      active_deadline_seconds: int | None) -> Manifest:
    """The gang: an indexed Job with one pod per worker.

    backoffLimit is 0: the first pod failure of any kind fails the Job, and the operator decides
    between a gang restart (a new Job, attempt + 1) and failing the DeepTrainingJob. A podFailurePolicy
    would add nothing to that, so there is none. A Kueue-managed Job starts suspended; Kueue admits it
    by unsuspending it.
    """
    name = _name(job)
    job_name = trainer_job_name(name, attempt)
    meta = _metadata(job, job_name, c.COMPONENT_TRAINER, attempt,
                     annotations={c.ANNOTATION_CONFIG_HASH: config_hash(config)})
    if is_kueue_managed(job):
        meta["labels"][c.LABEL_KUEUE_QUEUE] = job.spec.scheduling.queueName
    spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": job.spec.workers,
        "parallelism": job.spec.workers,
        "backoffLimit": 0,
        "suspend": job.spec.runPolicy.suspend or is_kueue_managed(job),
        "template": build_pod_template(job, attempt=attempt, settings=settings, config=config),
    }
    if active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = active_deadline_seconds
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}


def build_pod_template(job: DeepTrainingJob, *, attempt: int, settings: Settings,
                       config: TrainerConfig) -> Manifest:
    name = _name(job)
    scheduling = job.spec.scheduling
    pod_labels = labels(name, c.COMPONENT_TRAINER, attempt)
    pod_annotations = {c.ANNOTATION_CONFIG_HASH: config_hash(config)}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "subdomain": service_name(name),
        "serviceAccountName": rbac_name(name),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.trainer_uid,
            "runAsGroup": settings.trainer_uid,
            "fsGroup": settings.trainer_uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [build_trainer_container(job, attempt=attempt, settings=settings, config=config)],
        "volumes": _volumes(job, config),
    }
    if scheduling.priorityClassName:
        pod_spec["priorityClassName"] = scheduling.priorityClassName
    if scheduling.nodeSelector:
        pod_spec["nodeSelector"] = dict(scheduling.nodeSelector)
    if tolerations := _tolerations(job):
        pod_spec["tolerations"] = tolerations
    if scheduling.gang == c.GANG_VOLCANO:
        pod_spec["schedulerName"] = c.VOLCANO_SCHEDULER
        pod_annotations[c.ANNOTATION_VOLCANO_GROUP] = podgroup_name(name)
    elif scheduling.gang == c.GANG_SCHEDULER_PLUGINS:
        pod_spec["schedulerName"] = c.COSCHEDULING_SCHEDULER
        pod_labels[c.LABEL_COSCHEDULING_GROUP] = podgroup_name(name)
    return {"metadata": {"labels": pod_labels, "annotations": pod_annotations}, "spec": pod_spec}


def _tolerations(job: DeepTrainingJob) -> list[dict[str, Any]]:
    tolerations = [t.to_dict() for t in job.spec.scheduling.tolerations or []]
    tolerated = {t.get("key") for t in tolerations}
    # GPU nodes are usually tainted with their device resource name; requesting GPUs implies tolerating it.
    for resource in gpu_resources(job):
        if resource not in tolerated:
            tolerations.append({"key": resource, "operator": "Exists", "effect": "NoSchedule"})
    return tolerations


def _volumes(job: DeepTrainingJob, config: TrainerConfig) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": config_map_name(_name(job))}},
        # NCCL and the data loader workers share tensors through /dev/shm; the runtime's 64Mi is too small.
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        {"name": "tmp", "emptyDir": {}},
    ]
    for index, (claim, writable) in enumerate(pvc_claims(config).items()):
        volumes.append({"name": f"pvc-{index}",
                        "persistentVolumeClaim": {"claimName": claim, "readOnly": not writable}})
    return volumes


def _volume_mounts(config: TrainerConfig) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": c.CONFIG_MOUNT_PATH, "readOnly": True},
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    for index, (claim, writable) in enumerate(pvc_claims(config).items()):
        mounts.append({"name": f"pvc-{index}", "mountPath": f"{contract.PVC_MOUNT_ROOT}/{claim}",
                       "readOnly": not writable})
    return mounts


def build_env(job: DeepTrainingJob, *, attempt: int, settings: Settings) -> list[dict[str, Any]]:
    name = _name(job)
    return [
        {"name": c.ENV_NNODES, "value": str(job.spec.workers)},
        {"name": c.ENV_NPROC_PER_NODE, "value": str(nproc_per_node(job))},
        {"name": c.ENV_NODE_RANK, "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{c.ANNOTATION_COMPLETION_INDEX}']"}}},
        {"name": c.ENV_MASTER_ADDR, "value": master_address(name, attempt)},
        {"name": c.ENV_MASTER_PORT, "value": str(settings.rendezvous_port)},
        {"name": c.ENV_DISABLE_SHARED_STORE, "value": "1"},
        {"name": contract.ENV_CONFIG, "value": c.CONFIG_PATH},
        {"name": contract.ENV_REPORT, "value": c.REPORT_TO_KUBERNETES},
        {"name": contract.ENV_JOB_NAME, "value": name},
        {"name": contract.ENV_JOB_NAMESPACE, "value": job.metadata.namespace},
        # The root filesystem is read-only; libraries that cache under $HOME get the writable /tmp.
        {"name": c.ENV_HOME, "value": "/tmp"},
    ]


def build_trainer_container(job: DeepTrainingJob, *, attempt: int, settings: Settings,
                            config: TrainerConfig) -> Manifest:
    container: dict[str, Any] = {
        "name": c.TRAINER_CONTAINER,
        "image": job.spec.image or settings.trainer_image,
        # torchrun reads its rendezvous settings from the PET_* env; gang restarts are the operator's.
        "command": ["torchrun"],
        "args": ["--max-restarts=0", "-m", "deeptrain_trainer"],
        "env": build_env(job, attempt=attempt, settings=settings),
        "ports": [{"name": c.RENDEZVOUS_PORT_NAME, "containerPort": settings.rendezvous_port, "protocol": "TCP"}],
        "volumeMounts": _volume_mounts(config),
        "terminationMessagePath": c.TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
    }
    if job.spec.dataset.secretRef is not None:
        container["envFrom"] = [{"secretRef": {"name": job.spec.dataset.secretRef.name}}]
    if resources := pod_resources(job):
        container["resources"] = resources
    return container
