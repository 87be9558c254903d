"""The fake's CRD validation: the project's CRDs pass; what the apiextensions server refuses is refused."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from fakekube.crd_validation import valid_field_path, validate_crd

from .crd_samples import widget_crd

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CRDS = sorted((REPO / "crds").glob("*.yaml")) + sorted((REPO / "charts").glob("*/crds/*.yaml"))
ROOT = "spec.validation.openAPIV3Schema"


def fields(crd: dict[str, Any]) -> list[str]:
    return [cause["field"] for cause in validate_crd(crd)]


def with_spec(**properties: Any) -> dict[str, Any]:
    """The sample Widget CRD with extra spec properties (or replaced ones)."""
    crd = widget_crd()
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"]["properties"].update(copy.deepcopy(properties))
    return crd


def root_schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_the_shipped_crds_are_all_there() -> None:
    assert len(SHIPPED_CRDS) == 4


@pytest.mark.parametrize("path", SHIPPED_CRDS, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_crds_are_admitted(path: Path) -> None:
    assert validate_crd(yaml.safe_load(path.read_text())) == []


def test_sample_crd_is_admitted() -> None:
    assert validate_crd(widget_crd()) == []


def test_metadata_may_only_constrain_name_and_generate_name() -> None:
    crd = widget_crd()
    root_schema(crd)["properties"]["metadata"] = {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 50}}}
    assert validate_crd(crd) == []
    root_schema(crd)["properties"]["metadata"]["properties"]["labels"] = {"type": "object"}
    assert fields(crd) == [f"{ROOT}.properties[metadata]"]


def test_field_path_must_name_a_declared_field() -> None:
    crd = widget_crd()
    rules = root_schema(crd)["x-kubernetes-validations"] = [
        {"rule": "size(self.metadata.name) <= 10", "message": "m", "fieldPath": ".metadata.name"}]
    assert fields(crd) == [f"{ROOT}.x-kubernetes-validations[0].fieldPath"]
    rules[0]["fieldPath"] = ".spec.tags[0]"
    assert validate_crd(crd) == []
    spec = root_schema(crd)["properties"]["spec"]
    assert valid_field_path(".labels['a.b']", spec) and valid_field_path(".ports[1].name", spec)
    assert not valid_field_path(".size.value", spec) and not valid_field_path("size", spec)


@pytest.mark.parametrize(("extra", "field"), [
    ({"untyped": {"description": "x"}}, "properties[untyped].type"),
    ({"list": {"type": "array"}}, "properties[list].items"),
    ({"list": {"type": "array", "items": {}}}, "properties[list].items.type"),
    ({"set": {"type": "string", "x-kubernetes-list-type": "set"}}, "properties[set].x-kubernetes-list-type"),
    ({"both": {"type": "object", "properties": {"a": {"type": "string"}},
               "additionalProperties": {"type": "string"}}}, "properties[both].additionalProperties"),
    ({"ios": {"type": "string", "x-kubernetes-int-or-string": True}}, "properties[ios].type"),
    ({"keep": {"type": "object", "x-kubernetes-preserve-unknown-fields": False}},
     "properties[keep].x-kubernetes-preserve-unknown-fields"),
    ({"unique": {"type": "array", "uniqueItems": True, "items": {"type": "string"}}}, "properties[unique].uniqueItems"),
    ({"keyed": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}}}}},
     "properties[keyed].x-kubernetes-list-map-keys"),
])
def test_non_structural_schemas_are_refused(extra: dict[str, Any], field: str) -> None:
    assert fields(with_spec(**extra)) == [f"{ROOT}.properties[spec].{field}"]


def test_rules_are_compiled_against_the_schema_where_they_sit() -> None:
    rule_at = f"{ROOT}.properties[spec].properties[tags].x-kubernetes-validations[0]"
    for rule, field in [("self.all(t, t.size() > 0)", None), ("self.size", "rule"), ("self.all(t, t > 1)", "rule"),
                        ("size(self)", "rule")]:
        crd = with_spec(tags={"type": "array", "maxItems": 4, "items": {"type": "string", "maxLength": 8},
                              "x-kubernetes-validations": [{"rule": rule}]})
        assert fields(crd) == ([f"{rule_at}.{field}"] if field else []), rule


def test_transition_rules_need_correlatable_old_values() -> None:
    item_rule = {"rule": "self == oldSelf", "message": "immutable"}
    crd = with_spec(tags={"type": "array", "maxItems": 4, "items": {
        "type": "string", "maxLength": 8, "x-kubernetes-validations": [item_rule]}})
    assert fields(crd) == [f"{ROOT}.properties[spec].properties[tags].items.x-kubernetes-validations[0].rule"]
    crd = with_spec(ports={"type": "array", "maxItems": 4, "x-kubernetes-list-type": "map",
                           "x-kubernetes-list-map-keys": ["name"], "items": {
                               "type": "object", "required": ["name"], "x-kubernetes-validations": [
                                   {"rule": "self.number == oldSelf.number"}],
                               "properties": {"name": {"type": "string", "maxLength": 8},
                                              "number": {"type": "integer"}}}})
    assert validate_crd(crd) == []


def test_cost_is_multiplied_by_how_many_times_a_rule_runs() -> None:
    cheap = {"rule": "self.matches('^[a-z]+$')"}
    bounded = with_spec(tags={"type": "array", "maxItems": 100, "items": {
        "type": "string", "maxLength": 63, "x-kubernetes-validations": [cheap]}})
    assert validate_crd(bounded) == []
    # The same rule on every item of a list without maxItems, on strings without maxLength, is refused.
    unbounded = with_spec(tags={"type": "array", "items": {"type": "string", "x-kubernetes-validations": [cheap]}})
    causes = validate_crd(unbounded)
    assert {cause["reason"] for cause in causes} == {"FieldValueForbidden"}
    assert causes[0]["message"].startswith("Forbidden: estimated rule cost exceeds budget by factor of more than 100x")
    assert causes[-1]["field"] == ROOT
