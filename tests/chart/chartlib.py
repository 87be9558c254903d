"""Rendering the chart with the helm binary the project pins (hack/install-helm.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "deeptrain-operator"
RELEASE = "dt"
NAMESPACE = "deeptrain-system"


def helm_binary() -> str:
    for candidate in (os.environ.get("HELM"), str(ROOT / ".tools" / "bin" / "helm"), shutil.which("helm")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("helm is not installed: run `bash hack/install-helm.sh` (installs the pinned helm into .tools/bin)")


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def write_values(tmp_path: Path, values: dict[str, Any], name: str = "values.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return path


def template(*args: str, values: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args]
    if values is not None:
        command += ["--values", str(values)]
    return helm(*command, check=check)


def render(values: Path | None = None, *args: str) -> list[dict[str, Any]]:
    """The manifests `helm install` would apply (templates only: crds/ is not templated)."""
    return [doc for doc in yaml.safe_load_all(template(*args, values=values).stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = find(docs, kind)
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


# Values that differ from the defaults wherever a user is likely to change something.
CUSTOM_VALUES: dict[str, Any] = {
    "image": {"repository": "acme/deeptrain-operator", "tag": "1.2.3", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "pull-secret"}],
    "operator": {
        "watchNamespaces": ["team-a", "team-b"],
        "reconcileInterval": 45,
        "trainerUid": 2000,
        "rendezvousPort": 29400,
        "extraArgs": ["--log-format=json", "--verbose"],
        "trainerImage": {"repository": "acme/deeptrain-trainer", "tag": "1.2.3-cuda"},
        "serveImage": {"repository": "", "tag": "1.2.3"},
    },
    "metrics": {
        "port": 9090,
        "service": {"enabled": True, "annotations": {"prometheus.io/scrape": "true"}},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}, "interval": "15s", "scrapeTimeout": "5s"},
    },
    "servingNetworkPolicy": {"enabled": True, "from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
        {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["shop"]}]}},
        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.1.0/24"]}}]},
    "serviceAccount": {"create": True, "name": "deeptrain", "annotations": {"example.dev/role": "ops"}},
    "rbac": {"create": True, "aggregateToUserRoles": True, "gangScheduling": True},
    "podAnnotations": {"example.dev/owner": "ml-platform"},
    "podLabels": {"team": "ml-platform"},
    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
    "priorityClassName": "system-cluster-critical",
    "nodeSelector": {"kubernetes.io/os": "linux", "node-role.example/ops": "true"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
    ],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}]}
                ]
            }
        }
    },
}
