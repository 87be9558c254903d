"""The checked-in CRDs: generated from the models, accepted by Kubernetes, structural, with rules that compile."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml

from deeptrain_api import catalog, cel, crdgen

from .manifest_files import REPO

CRD_DIR = REPO / "crds"
REGENERATE = "python -m deeptrain_api.crdgen --write crds"


def _schemas() -> dict[str, dict[str, Any]]:
    return {crd["spec"]["names"]["kind"]: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            for crd in crdgen.crd_objects()}


def _nodes(schema: dict[str, Any], path: str = ""):
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _nodes(schema[key], f"{path}[]")


def test_checked_in_crds_equal_generated() -> None:
    for crd in crdgen.crd_objects():
        path = CRD_DIR / crdgen.crd_filename(crd)
        assert path.exists(), f"{path} is missing; run `{REGENERATE}`"
        assert path.read_text() == crdgen.render_crd(crd), f"{path} is stale; run `{REGENERATE}` (or `deeptrain crds`)"
    assert sorted(p.name for p in CRD_DIR.glob("*.yaml")) == sorted(map(crdgen.crd_filename, crdgen.crd_objects()))


def test_render_crds_is_the_concatenation_of_the_files() -> None:
    files = "".join(p.read_text() for p in sorted(CRD_DIR.glob("*.yaml")))
    assert crdgen.render_crds() == files
    assert [doc["metadata"]["name"] for doc in yaml.safe_load_all(files)] == [
        "deeptrainingjobs.deeptrain.dev", "workflows.deeptrain.dev"]


def test_crds_command_prints_the_crds() -> None:
    result = subprocess.run([sys.executable, "-m", "deeptrain_api.crdgen"], capture_output=True, text=True,
                            check=True)
    assert result.stdout == crdgen.render_crds()


def test_kubernetes_validate_accepts_every_crd() -> None:
    files = sorted(str(p) for p in CRD_DIR.glob("*.yaml"))
    tool = REPO / ".venv" / "bin" / "kubernetes-validate"
    result = subprocess.run([str(tool) if tool.exists() else "kubernetes-validate", *files],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_names_scope_and_subresources() -> None:
    job, workflow = crdgen.crd_objects()
    assert job["spec"]["names"]["shortNames"] == ["dtj"] and workflow["spec"]["names"]["shortNames"] == ["dwf"]
    for crd in (job, workflow):
        assert crd["spec"]["group"] == "deeptrain.dev" and crd["spec"]["scope"] == "Namespaced"
        assert crd["spec"]["names"]["categories"] == ["deeptrain"]
        (version,) = crd["spec"]["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
        assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in job["spec"]["versions"][0]["additionalPrinterColumns"]] == [
        "Type", "Template", "Phase", "Progress", "Metric", "Age"]
    assert [c["name"] for c in workflow["spec"]["versions"][0]["additionalPrinterColumns"]] == [
        "Default", "Phase", "Endpoint", "Age"]


def test_printer_columns_point_at_existing_fields() -> None:
    for crd in crdgen.crd_objects():
        version = crd["spec"]["versions"][0]
        schema = version["schema"]["openAPIV3Schema"]
        for column in version["additionalPrinterColumns"]:
            if column["jsonPath"].startswith(".metadata."):
                continue  # ObjectMeta is the apiserver's, not in the CRD schema
            node = schema
            for part in column["jsonPath"].strip(".").split("."):
                node = node["properties"][part]
            assert column["type"] in {"string", "integer", "number", "boolean", "date"}


@pytest.mark.parametrize("kind", ["DeepTrainingJob", "Workflow"])
def test_schema_is_structural(kind: str) -> None:
    for path, node in _nodes(_schemas()[kind]):
        if node.get("x-kubernetes-int-or-string"):
            assert all(set(branch) == {"type"} for branch in node.get("anyOf", [])), path
            continue
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), f"{kind}{path} has no type"
        assert not {"$ref", "oneOf", "allOf", "anyOf", "title"} & set(node), f"{kind}{path}"
        assert node.get("additionalProperties") is not False, f"{kind}{path}"
        assert not ("properties" in node and "additionalProperties" in node), f"{kind}{path}"
        if node.get("x-kubernetes-list-type") == "map":
            item_schema = node["items"]
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in item_schema.get("required", []) or "default" in item_schema["properties"][key]


@pytest.mark.parametrize("kind", ["DeepTrainingJob", "Workflow"])
def test_spec_is_bounded_for_cel_cost_estimation(kind: str) -> None:
    """The apiserver refuses rules whose cost it cannot bound: every string, list and map in spec is bounded."""
    for path, node in _nodes(_schemas()[kind]["properties"]["spec"], ".spec"):
        if node.get("type") == "string" and "enum" not in node:
            assert "maxLength" in node, f"{kind}{path} needs maxLength"
        if node.get("type") == "array":
            assert "maxItems" in node, f"{kind}{path} needs maxItems"
        if node.get("type") == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, f"{kind}{path} needs maxProperties"


def test_every_rule_compiles_in_cel_python() -> None:
    count = 0
    for schema in _schemas().values():
        for _, node in _nodes(schema):
            for rule in node.get("x-kubernetes-validations", []):
                cel.compile_expression(rule["rule"])
                if "messageExpression" in rule:
                    cel.compile_expression(rule["messageExpression"])
                assert rule.get("message"), "every rule needs a static message too"
                count += 1
    assert count >= 15


def test_hyperparameter_schema_follows_the_catalog() -> None:
    hyperparameters = _schemas()["DeepTrainingJob"]["properties"]["spec"]["properties"]["hyperparameters"]
    assert set(hyperparameters["properties"]) == set(catalog.HYPERPARAMETERS)
    for name, hp in catalog.HYPERPARAMETERS.items():
        prop = hyperparameters["properties"][name]
        assert prop["type"] == hp.type
        applies_everywhere = hp.model_types == set(catalog.MODEL_TYPES)
        assert ("default" in prop) == (applies_everywhere and hp.default is not None), name
        if hp.maximum is not None:
            assert prop["maximum"] == hp.maximum
        if hp.multiple_of:
            assert prop["multipleOf"] == hp.multiple_of


def test_template_enum_lists_every_catalog_template() -> None:
    spec = _schemas()["DeepTrainingJob"]["properties"]["spec"]["properties"]
    templates = {t for mt in catalog.MODEL_TYPES.values() for t in mt.templates}
    assert set(spec["template"]["enum"]) == templates
    assert spec["modelType"]["enum"] == list(catalog.MODEL_TYPES)
    assert spec["dataset"]["properties"]["format"]["enum"] == list(catalog.DATASET_FORMATS)
