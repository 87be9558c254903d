"""What `helm install` would create: valid Kubernetes objects, one restricted operator pod wired to
the settings the operator reads, and metrics a Prometheus can find."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from chartlib import (  # noqa: E402
    CHART,
    CUSTOM_VALUES,
    NAMESPACE,
    ROOT,
    find,
    helm,
    only,
    render,
    template,
    write_values,
)
from pss import pod_template, restricted_violations  # noqa: E402

from deeptrain_operator.settings import Settings

KUBERNETES_VALIDATE = Path(sys.executable).with_name("kubernetes-validate")
# Not in the Kubernetes schemas kubernetes-validate ships; checked field by field below instead.
THIRD_PARTY_KINDS = {"ServiceMonitor"}


@pytest.fixture(scope="module")
def custom_values(tmp_path_factory) -> Path:
    return write_values(tmp_path_factory.mktemp("values"), CUSTOM_VALUES)


@pytest.fixture(scope="module")
def default_docs():
    return render()


@pytest.fixture(scope="module")
def custom_docs(custom_values):
    return render(custom_values)


def test_helm_lint_strict(custom_values):
    helm("lint", "--strict", str(CHART))
    helm("lint", "--strict", str(CHART), "--values", str(custom_values))


@pytest.mark.parametrize("kube_version", ["1.29.0", "1.37.0"])
@pytest.mark.parametrize("which", ["default", "custom"])
def test_rendered_manifests_are_valid_kubernetes_objects(which, kube_version, tmp_path, custom_values):
    rendered = template(values=custom_values if which == "custom" else None).stdout
    known = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] not in THIRD_PARTY_KINDS]
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(known))
    result = subprocess.run(
        [str(KUBERNETES_VALIDATE), "--strict", "--quiet", "-k", kube_version, str(manifest)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_crds_are_valid_kubernetes_objects():
    result = subprocess.run(
        [str(KUBERNETES_VALIDATE), "--strict", "--quiet", *map(str, sorted((CHART / "crds").glob("*.yaml")))],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("which", ["default", "custom"])
def test_every_namespaced_object_goes_to_the_release_namespace(which, default_docs, custom_docs):
    docs = default_docs if which == "default" else custom_docs
    per_watched_namespace = {"Role", "RoleBinding", "NetworkPolicy"}
    for doc in docs:
        if doc["kind"] in per_watched_namespace or doc["kind"].startswith("Cluster"):
            continue
        assert doc["metadata"].get("namespace") == NAMESPACE, f"{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("which", ["default", "custom"])
def test_operator_pod_meets_the_restricted_pod_security_profile(which, default_docs, custom_docs):
    deployment = only(default_docs if which == "default" else custom_docs, "Deployment")
    assert restricted_violations(pod_template(deployment)) == []


def test_operator_runs_as_one_replica_replaced_by_recreate(default_docs):
    spec = only(default_docs, "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def operator_container(docs):
    containers = pod_template(only(docs, "Deployment"))["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_probes_hit_kopf_health_endpoint(default_docs):
    container = operator_container(default_docs)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz"
        assert ports[get["port"]] == 8081


def test_read_only_root_filesystem_with_writable_tmp(default_docs):
    pod = pod_template(only(default_docs, "Deployment"))["spec"]
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def env_of(docs) -> dict[str, str]:
    return {e["name"]: e["value"] for e in operator_container(docs)["env"]}


def test_default_settings_reach_the_operator(default_docs):
    container = operator_container(default_docs)
    assert container["image"] == "deeptrain-operator:0.1.0"
    assert "command" not in container and "args" not in container
    assert env_of(default_docs) == {
        "DEEPTRAIN_TRAINER_IMAGE": "deeptrain-trainer:0.1.0",
        "DEEPTRAIN_SERVE_IMAGE": "deeptrain-trainer:0.1.0",
        "DEEPTRAIN_WATCH_NAMESPACES": "",
        "DEEPTRAIN_RECONCILE_INTERVAL": "30",
        "DEEPTRAIN_TRAINER_UID": "1000",
        "DEEPTRAIN_RENDEZVOUS_PORT": "29500",
        "DEEPTRAIN_METRICS_PORT": "8080",
    }


def test_custom_settings_reach_the_operator(custom_docs):
    container = operator_container(custom_docs)
    assert container["image"] == "acme/deeptrain-operator:1.2.3"
    assert container["imagePullPolicy"] == "Always"
    # appended to `kopf run` by `python -m deeptrain_operator`; the image's entrypoint stays in charge
    assert "command" not in container
    assert container["args"] == ["--log-format=json", "--verbose"]
    assert env_of(custom_docs) == {
        "DEEPTRAIN_TRAINER_IMAGE": "acme/deeptrain-trainer:1.2.3-cuda",
        # serveImage names only a tag: the trainer repository with that tag
        "DEEPTRAIN_SERVE_IMAGE": "acme/deeptrain-trainer:1.2.3",
        "DEEPTRAIN_WATCH_NAMESPACES": "team-a,team-b",
        "DEEPTRAIN_RECONCILE_INTERVAL": "45",
        "DEEPTRAIN_TRAINER_UID": "2000",
        "DEEPTRAIN_RENDEZVOUS_PORT": "29400",
        "DEEPTRAIN_METRICS_PORT": "9090",
    }


def test_settings_are_parsed_by_the_operator(custom_docs):
    settings = Settings.from_env(env_of(custom_docs))
    assert settings.watch_namespaces == ("team-a", "team-b")
    assert settings.trainer_image == "acme/deeptrain-trainer:1.2.3-cuda"
    assert settings.metrics_port == 9090
    assert settings.reconcile_interval == 45
    assert settings.trainer_uid == 2000
    assert settings.rendezvous_port == 29400


def test_scheduling_values_reach_the_pod(custom_docs):
    deployment = only(custom_docs, "Deployment")
    pod = pod_template(deployment)
    spec = pod["spec"]
    assert spec["nodeSelector"] == CUSTOM_VALUES["nodeSelector"]
    assert spec["tolerations"] == CUSTOM_VALUES["tolerations"]
    assert spec["affinity"] == CUSTOM_VALUES["affinity"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["imagePullSecrets"] == [{"name": "pull-secret"}]
    assert spec["serviceAccountName"] == "deeptrain"
    assert spec["containers"][0]["resources"] == CUSTOM_VALUES["resources"]
    assert pod["metadata"]["labels"]["team"] == "ml-platform"
    assert pod["metadata"]["annotations"] == {"example.dev/owner": "ml-platform"}
    # user labels must never leak into the immutable selector
    assert "team" not in deployment["spec"]["selector"]["matchLabels"]


def test_default_pod_has_no_empty_scheduling_fields(default_docs):
    spec = pod_template(only(default_docs, "Deployment"))["spec"]
    for field in ("nodeSelector", "tolerations", "affinity", "priorityClassName", "imagePullSecrets"):
        assert field not in spec


def test_metrics_service_selects_the_operator_pod(default_docs):
    service = only(default_docs, "Service")
    deployment = only(default_docs, "Deployment")
    pod_labels = pod_template(deployment)["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == 8080
    assert port["targetPort"] == "metrics"
    assert {"name": "metrics", "containerPort": 8080, "protocol": "TCP"} in operator_container(default_docs)["ports"]


def test_service_monitor_is_opt_in(default_docs):
    assert find(default_docs, "ServiceMonitor") == []


def test_service_monitor_scrapes_the_metrics_service(custom_docs):
    monitor = only(custom_docs, "ServiceMonitor")
    service = only(custom_docs, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "5s"}
    assert service["spec"]["ports"][0]["name"] == "metrics"
    assert service["metadata"]["annotations"] == {"prometheus.io/scrape": "true"}


def test_service_monitor_without_service_is_refused(tmp_path):
    values = write_values(tmp_path, {"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}})
    result = template(values=values, check=False)
    assert result.returncode != 0
    assert "metrics.service.enabled" in result.stderr


def test_existing_service_account_must_be_named(tmp_path):
    values = write_values(tmp_path, {"serviceAccount": {"create": False, "name": ""}})
    result = template(values=values, check=False)
    assert result.returncode != 0
    assert "serviceAccount.name is required" in result.stderr
    docs = render(write_values(tmp_path, {"serviceAccount": {"create": False, "name": "mine"}}, "mine.yaml"))
    assert find(docs, "ServiceAccount") == []
    assert pod_template(only(docs, "Deployment"))["spec"]["serviceAccountName"] == "mine"


def test_chart_and_image_versions_agree():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == "0.1.0"
    project = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{chart["appVersion"]}"' in project, "appVersion is the project version the images are built from"


def test_chart_defaults_match_the_operator_defaults(default_docs):
    # Installing the chart without values must behave like the operator run without any settings.
    from_chart = Settings.from_env(env_of(default_docs))
    assert from_chart == Settings()


def test_serving_network_policy_is_opt_in(default_docs):
    assert find(default_docs, "NetworkPolicy") == []


def test_serving_network_policy_guards_the_operator_s_serving_pods_in_each_watched_namespace(custom_docs):
    from deeptrain_api.workflow import Workflow
    from deeptrain_api.workflow_contract import SERVE_PORT
    from deeptrain_operator.workflows.builders import build_deployment

    policies = find(custom_docs, "NetworkPolicy")
    assert sorted(p["metadata"]["namespace"] for p in policies) == CUSTOM_VALUES["operator"]["watchNamespaces"]
    workflow = Workflow.model_validate({"metadata": {"name": "w", "namespace": "team-a", "uid": "u"},
                                       "spec": {"nodes": [{"id": "a", "model": {"uri": "pvc://m/a"}}], "serve": {}}})
    pod_labels = build_deployment(workflow, [], Settings())["spec"]["template"]["metadata"]["labels"]
    for policy in policies:
        spec = policy["spec"]
        assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
        assert spec["policyTypes"] == ["Ingress"]
        assert spec["ingress"] == [{"ports": [{"protocol": "TCP", "port": SERVE_PORT}],
                                    "from": CUSTOM_VALUES["servingNetworkPolicy"]["from"]}]


def test_serving_network_policy_defaults_to_the_same_namespace_and_needs_namespaces(tmp_path):
    docs = render(write_values(tmp_path, {"servingNetworkPolicy": {"enabled": True, "namespaces": ["shop"]}}))
    policy = only(docs, "NetworkPolicy")
    assert policy["metadata"]["namespace"] == "shop"
    assert policy["spec"]["ingress"][0]["from"] == [{"podSelector": {}}]
    result = template(values=write_values(tmp_path, {"servingNetworkPolicy": {"enabled": True}}, "none.yaml"),
                      check=False)
    assert result.returncode != 0 and "servingNetworkPolicy.namespaces" in result.stderr
