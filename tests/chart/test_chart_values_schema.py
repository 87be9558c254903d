"""values.schema.json turns a typo or a wrong type in a values file into an install error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from chartlib import CHART, CUSTOM_VALUES, render, template, write_values  # noqa: E402

SCHEMA = CHART / "values.schema.json"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")

BAD_VALUES = {
    "unknown top-level key": ({"replicaCount": 2}, "replicaCount"),
    "unknown nested key": ({"operator": {"watchNamespace": ["a"]}}, "watchNamespace"),
    "typo under rbac": ({"rbac": {"creat": True}}, "creat"),
    "interval as string": ({"operator": {"reconcileInterval": "30s"}}, "reconcileInterval"),
    "namespaces as string": ({"operator": {"watchNamespaces": "team-a"}}, "watchNamespaces"),
    "invalid namespace name": ({"operator": {"watchNamespaces": ["Team_A"]}}, "watchNamespaces"),
    "duplicate namespace": ({"operator": {"watchNamespaces": ["a", "a"]}}, "watchNamespaces"),
    "root trainer uid": ({"operator": {"trainerUid": 0}}, "trainerUid"),
    "extra args as string": ({"operator": {"extraArgs": "--verbose"}}, "extraArgs"),
    "privileged metrics port": ({"metrics": {"port": 80}}, "port"),
    "bad pull policy": ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    "empty image repository": ({"image": {"repository": ""}}, "repository"),
    "unknown toleration field": ({"tolerations": [{"key": "a", "efect": "NoSchedule"}]}, "efect"),
    "bad resource quantity": ({"resources": {"limits": {"memory": "lots"}}}, "memory"),
    "unknown security field": ({"securityContext": {"runAsRoot": True}}, "runAsRoot"),
    "unknown affinity kind": ({"affinity": {"nodeAfinity": {}}}, "nodeAfinity"),
    "bool as string": ({"metrics": {"serviceMonitor": {"enabled": "yes"}}}, "enabled"),
    "bad scrape interval": ({"metrics": {"serviceMonitor": {"interval": "often"}}}, "interval"),
    "unknown network peer field": ({"servingNetworkPolicy": {"enabled": True, "from": [{"podSelecter": {}}]}},
                                   "podSelecter"),
}


@pytest.mark.parametrize("values,field", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_helm_refuses_bad_values(values, field, tmp_path):
    result = template(values=write_values(tmp_path, values), check=False)
    assert result.returncode != 0, f"helm rendered {values}"
    assert field in result.stderr, result.stderr


def merged_with_defaults(values: dict) -> dict:
    def merge(base, override):
        if isinstance(base, dict) and isinstance(override, dict):
            return {**base, **{k: merge(base.get(k), v) for k, v in override.items()}}
        return override

    return merge(yaml.safe_load((CHART / "values.yaml").read_text()), values)


def check_jsonschema(*instances: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--schemafile", str(SCHEMA), "--output-format", "json", *map(str, instances)],
        capture_output=True, text=True, timeout=120,
    )


def test_schema_is_a_valid_json_schema():
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--check-metaschema", str(SCHEMA)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_good_values_pass_check_jsonschema(tmp_path):
    # check-jsonschema sees each file whole, as helm does after merging it over values.yaml.
    files = [write_values(tmp_path, merged_with_defaults(v), f"{n}.yaml") for n, v in (("defaults", {}), ("custom", CUSTOM_VALUES))]
    result = check_jsonschema(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_jsonschema_refuses_bad_values(tmp_path):
    # One run over every bad file: each must be reported, with an error naming the bad field.
    files = {name: write_values(tmp_path, merged_with_defaults(values), f"bad-{index}.yaml")
             for index, (name, (values, _)) in enumerate(BAD_VALUES.items())}
    result = check_jsonschema(*files.values())
    assert result.returncode != 0
    errors = json.loads(result.stdout)["errors"]
    for name, path in files.items():
        field = BAD_VALUES[name][1]
        reported = [e for e in errors if e["filename"] == str(path)]
        assert any(field in e["path"] + e["message"] for e in reported), f"{name}: {reported}"


def walk_objects(schema, path="$"):
    if isinstance(schema, dict):
        if schema.get("type") == "object" or "properties" in schema:
            yield path, schema
        for key, value in schema.items():
            yield from walk_objects(value, f"{path}.{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from walk_objects(value, f"{path}[{index}]")


# Kubernetes types whose inside the API server validates (kubernetes-validate checks the rendering).
OPAQUE_KUBERNETES_OBJECTS = (
    "requiredDuringSchedulingIgnoredDuringExecution",
    "preferredDuringSchedulingIgnoredDuringExecution",
)


def test_every_object_in_the_schema_closes_its_keys():
    schema = json.loads(SCHEMA.read_text())
    for path, node in walk_objects(schema):
        if any(name in path for name in OPAQUE_KUBERNETES_OBJECTS):
            continue
        assert "additionalProperties" in node, f"{path} accepts unknown keys"
        if "properties" in node:
            assert node["additionalProperties"] is False, f"{path} accepts unknown keys"


def test_nullable_uids_let_the_platform_assign_them(tmp_path):
    # OpenShift's restricted SCC rejects fixed UIDs; nulls remove them from the rendered pod.
    values = {"podSecurityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None}}
    docs = render(write_values(tmp_path, values))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    context = deployment["spec"]["template"]["spec"]["securityContext"]
    assert context == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
