"""Builders: a DeepTrainingJob in, the child manifests a user would find in the cluster out."""

from __future__ import annotations

import json
from typing import Any

from operator_samples import config_of, make_job

from deeptrain_api import processes
from deeptrain_api import trainer_contract as contract
from deeptrain_operator import builders
from deeptrain_operator.settings import Settings


def trainer_job(job: Any, settings: Settings, attempt: int = 1, deadline: int | None = None,
                base_model_uri: str | None = None) -> dict[str, Any]:
    return builders.build_trainer_job(job, attempt=attempt, settings=settings,
                                      config=config_of(job, base_model_uri), active_deadline_seconds=deadline)


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (trainer,) = pod_spec(manifest)["containers"]
    return trainer


def env(manifest: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container(manifest)["env"]}


def all_children(job: Any, settings: Settings) -> list[dict[str, Any]]:
    return [
        builders.build_config_map(job, config_of(job)),
        builders.build_service(job, settings),
        builders.build_service_account(job),
        builders.build_role(job),
        builders.build_role_binding(job),
        trainer_job(job, settings),
    ]


def test_pods_get_the_torchrun_env_contract(job, settings):
    variables = env(trainer_job(job, settings))
    assert variables["PET_NNODES"] == "2"
    assert variables["PET_NPROC_PER_NODE"] == "1"
    assert variables["PET_NODE_RANK"] == {"fieldRef": {
        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}
    assert variables["PET_MASTER_ADDR"] == "shoes-1-0.shoes"
    assert variables["PET_MASTER_PORT"] == "29500"
    assert variables["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] == "1"
    assert variables[contract.ENV_CONFIG] == "/etc/deeptrain/job.json"
    assert variables[contract.ENV_REPORT] == "kubernetes"
    assert variables[contract.ENV_JOB_NAME] == "shoes"
    assert variables[contract.ENV_JOB_NAMESPACE] == "team-a"
    trainer = container(trainer_job(job, settings))
    assert trainer["command"] == ["torchrun"]
    assert trainer["args"] == ["--max-restarts=0", "-m", "deeptrain_trainer"]
    assert trainer["image"] == "deeptrain-trainer:0.1.0"


def test_rank_zero_address_follows_the_attempt_and_port_setting(job):
    manifest = trainer_job(job, Settings(rendezvous_port=23456), attempt=3)
    assert env(manifest)["PET_MASTER_ADDR"] == "shoes-3-0.shoes"
    assert env(manifest)["PET_MASTER_PORT"] == "23456"
    assert container(manifest)["ports"] == [{"name": "rendezvous", "containerPort": 23456, "protocol": "TCP"}]


def test_indexed_job_runs_one_pod_per_worker_and_leaves_restarts_to_the_operator(job, settings):
    spec = trainer_job(job, settings)["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 2
    assert spec["backoffLimit"] == 0
    assert spec["suspend"] is False
    assert "activeDeadlineSeconds" not in spec
    pod = pod_spec(trainer_job(job, settings))
    assert pod["restartPolicy"] == "Never"
    assert pod["subdomain"] == "shoes"
    assert pod["serviceAccountName"] == "shoes-trainer"
    assert container(trainer_job(job, settings))["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_remaining_deadline_goes_on_the_job(job, settings):
    assert trainer_job(job, settings, deadline=120)["spec"]["activeDeadlineSeconds"] == 120


def test_children_carry_explicit_labels_never_the_jobs_own(job, settings):
    for child in all_children(job, settings):
        labels = child["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "deeptrain", child["kind"]
        assert labels["app.kubernetes.io/managed-by"] == "deeptrain-operator"
        assert labels["deeptrain.dev/job-name"] == "shoes"
        assert labels["app.kubernetes.io/component"] in {"trainer", "rendezvous", "config", "rbac"}
        assert "team" not in labels
    manifest = trainer_job(job, settings, attempt=2)
    assert manifest["metadata"]["labels"]["deeptrain.dev/attempt"] == "2"
    assert manifest["spec"]["template"]["metadata"]["labels"]["deeptrain.dev/attempt"] == "2"
    assert "team" not in manifest["spec"]["template"]["metadata"]["labels"]


def test_children_are_controlled_by_the_job_in_its_namespace(job, settings):
    for child in all_children(job, settings):
        assert child["metadata"]["namespace"] == "team-a"
        assert child["metadata"]["ownerReferences"] == [{
            "apiVersion": "deeptrain.dev/v1alpha1", "kind": "DeepTrainingJob", "name": "shoes",
            "uid": "uid-shoes", "controller": True, "blockOwnerDeletion": True}]


def test_names_are_deterministic(job, settings):
    first, second = all_children(job, settings), all_children(job, settings)
    assert first == second
    assert [child["metadata"]["name"] for child in first] == [
        "shoes-trainer-config", "shoes", "shoes-trainer", "shoes-trainer", "shoes-trainer", "shoes-1"]


def test_pods_run_under_the_restricted_security_profile(job):
    manifest = trainer_job(job, Settings(trainer_uid=4242))
    assert pod_spec(manifest)["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 4242, "runAsGroup": 4242, "fsGroup": 4242,
        "seccompProfile": {"type": "RuntimeDefault"}}
    assert container(manifest)["securityContext"] == {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True, "runAsNonRoot": True}
    mounts = {m["mountPath"] for m in container(manifest)["volumeMounts"]}
    assert {"/tmp", "/dev/shm", "/etc/deeptrain"} <= mounts
    volumes = {v["name"]: v for v in pod_spec(manifest)["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory"}
    assert volumes["config"]["configMap"] == {"name": "shoes-trainer-config"}


def test_gpu_limits_set_processes_and_tolerate_the_gpu_taint(settings):
    job = make_job({"resources": {"limits": {"nvidia.com/gpu": 4, "memory": "64Gi"}}})
    manifest = trainer_job(job, settings)
    assert env(manifest)["PET_NPROC_PER_NODE"] == "4"
    assert pod_spec(manifest)["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert container(manifest)["resources"] == {"limits": {"nvidia.com/gpu": 4, "memory": "64Gi"}}


def test_a_users_gpu_toleration_is_not_duplicated(settings):
    toleration = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "a100", "effect": "NoSchedule"}
    job = make_job({"resources": {"limits": {"nvidia.com/gpu": "2"}}, "scheduling": {"tolerations": [toleration]}})
    assert pod_spec(trainer_job(job, settings))["tolerations"] == [toleration]


def test_nproc_without_gpus_is_the_whole_cpus_or_the_integer_given(settings):
    assert processes.nproc_per_node(make_job({"resources": {"limits": {"cpu": "3500m"}}})) == 3
    assert processes.nproc_per_node(make_job({"resources": {"requests": {"cpu": 2}}})) == 2
    assert processes.nproc_per_node(make_job({"resources": {"limits": {"cpu": "500m"}}})) == 1
    assert processes.nproc_per_node(make_job({"nprocPerNode": 3, "resources": {"limits": {"cpu": 8}}})) == 3
    no_gpu_pod = pod_spec(trainer_job(make_job({"resources": {"limits": {"cpu": 8}}}), settings))
    assert "tolerations" not in no_gpu_pod


def test_kueue_queue_label_and_suspended_start(settings):
    job = make_job({"scheduling": {"queueName": "team-a-gpus"}})
    manifest = trainer_job(job, settings)
    assert manifest["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a-gpus"
    assert manifest["spec"]["suspend"] is True
    assert "kueue.x-k8s.io/queue-name" not in trainer_job(make_job(), settings)["metadata"]["labels"]


def test_user_suspend_creates_a_suspended_job(settings):
    assert trainer_job(make_job({"runPolicy": {"suspend": True}}), settings)["spec"]["suspend"] is True


def test_scheduling_fields_reach_the_pods(settings):
    job = make_job({"scheduling": {"priorityClassName": "high", "nodeSelector": {"pool": "gpu"}}})
    pod = pod_spec(trainer_job(job, settings))
    assert pod["priorityClassName"] == "high"
    assert pod["nodeSelector"] == {"pool": "gpu"}


def test_each_claim_is_mounted_once_read_only_unless_written(settings):
    job = make_job({"dataset": {"uri": "pvc://data/shoes", "validation": {"uri": "pvc://data/shoes-val"}},
                    "output": {"uri": "pvc://models/shoes"}})
    manifest = trainer_job(job, settings)
    claims = {v["persistentVolumeClaim"]["claimName"]: v for v in pod_spec(manifest)["volumes"]
              if "persistentVolumeClaim" in v}
    assert {name: v["persistentVolumeClaim"]["readOnly"] for name, v in claims.items()} == {
        "data": True, "models": False}
    mounts = {m["mountPath"]: m for m in container(manifest)["volumeMounts"]}
    assert mounts["/mnt/pvc/data"]["readOnly"] is True
    assert mounts["/mnt/pvc/models"]["readOnly"] is False
    assert mounts["/mnt/pvc/data"]["name"] == claims["data"]["name"]


def test_dataset_and_output_on_one_claim_mount_it_writable_once(settings):
    job = make_job({"dataset": {"uri": "pvc://work/data"}, "output": {"uri": "pvc://work/models"}})
    volumes = [v for v in pod_spec(trainer_job(job, settings))["volumes"] if "persistentVolumeClaim" in v]
    assert volumes == [{"name": "pvc-0", "persistentVolumeClaim": {"claimName": "work", "readOnly": False}}]


def test_another_jobs_model_claim_is_mounted_read_only(settings):
    job = make_job({"baseModel": {"deepTrainingJob": "embedder"}})
    manifest = trainer_job(job, settings, base_model_uri="file:///mnt/pvc/base-models/embedder")
    claims = {v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"]["readOnly"]
              for v in pod_spec(manifest)["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"base-models": True, "datasets": True, "models": False}


def test_object_store_jobs_mount_no_claims_and_get_the_secret_as_env(settings):
    job = make_job({"dataset": {"uri": "s3://bucket/shoes", "secretRef": {"name": "s3-creds"}},
                    "output": {"uri": "s3://bucket/models/shoes"}})
    manifest = trainer_job(job, settings)
    assert not [v for v in pod_spec(manifest)["volumes"] if "persistentVolumeClaim" in v]
    assert container(manifest)["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert "envFrom" not in container(trainer_job(make_job(), settings))


def test_config_map_holds_the_trainer_config_and_its_hash(job):
    config = config_of(job)
    config_map = builders.build_config_map(job, config)
    assert contract.load_config(config_map["data"]["job.json"]) == config
    annotations = config_map["metadata"]["annotations"]
    other = make_job({"hyperparameters": {"num_epochs": 3}})
    assert annotations["deeptrain.dev/config-hash"] != \
        builders.build_config_map(other, config_of(other))["metadata"]["annotations"]["deeptrain.dev/config-hash"]
    assert json.loads(config_map["data"]["job.json"])["outputUri"] == "file:///mnt/pvc/models/shoes"


def test_headless_service_for_rendezvous(job, settings):
    service = builders.build_service(job, settings)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {"deeptrain.dev/job-name": "shoes", "app.kubernetes.io/component": "trainer"}
    assert service["spec"]["ports"][0]["name"] == "rendezvous"
    pod_labels = trainer_job(job, settings)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_trainer_may_only_read_its_job_and_patch_its_status(job):
    role = builders.build_role(job)
    assert role["rules"] == [
        {"apiGroups": ["deeptrain.dev"], "resources": ["deeptrainingjobs/status"], "resourceNames": ["shoes"],
         "verbs": ["get", "patch"]},
        {"apiGroups": ["deeptrain.dev"], "resources": ["deeptrainingjobs"], "resourceNames": ["shoes"],
         "verbs": ["get"]},
    ]
    binding = builders.build_role_binding(job)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "shoes-trainer"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "shoes-trainer", "namespace": "team-a"}]


def test_volcano_gang_gets_a_podgroup_and_the_volcano_scheduler(settings):
    job = make_job({"scheduling": {"gang": "volcano", "priorityClassName": "high"}})
    podgroup = builders.build_podgroup(job)
    assert podgroup["apiVersion"] == "scheduling.volcano.sh/v1beta1"
    assert podgroup["spec"] == {"minMember": 2, "priorityClassName": "high"}
    template = trainer_job(job, settings)["spec"]["template"]
    assert template["spec"]["schedulerName"] == "volcano"
    assert template["metadata"]["annotations"]["scheduling.k8s.io/group-name"] == podgroup["metadata"]["name"]


def test_scheduler_plugins_gang_labels_the_pods(settings):
    job = make_job({"scheduling": {"gang": "scheduler-plugins"}})
    podgroup = builders.build_podgroup(job)
    assert podgroup["apiVersion"] == "scheduling.x-k8s.io/v1alpha1"
    assert podgroup["spec"] == {"minMember": 2}
    template = trainer_job(job, settings)["spec"]["template"]
    assert template["metadata"]["labels"]["scheduling.x-k8s.io/pod-group"] == podgroup["metadata"]["name"]
    assert builders.build_podgroup(make_job()) is None
    assert "schedulerName" not in pod_spec(trainer_job(make_job(), settings))


def test_spec_hash_ignores_the_run_policy_but_not_the_training(job):
    assert builders.spec_hash(make_job({"runPolicy": {"ttlSecondsAfterFinished": 60, "suspend": True}})) == \
        builders.spec_hash(job)
    assert builders.spec_hash(make_job({"scheduling": {"queueName": "other"}})) == builders.spec_hash(job)
    assert builders.spec_hash(make_job({"hyperparameters": {"num_epochs": 5}})) != builders.spec_hash(job)
    assert builders.spec_hash(make_job({"workers": 3})) != builders.spec_hash(job)
