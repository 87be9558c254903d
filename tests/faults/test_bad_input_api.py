"""Scenario 7 (API side): objects generated from the CRD's own openAPIV3Schema (crds/*.yaml).

No cluster needed: admission is structural.py, the code the fake apiserver and `deeptrain validate` use.
Bar (200 examples each, hypothesis):
- an object the schema accepts (OpenAPI and CEL) is accepted by the pydantic model, admission keeps
  every field the user wrote (prune drops nothing, defaulting changes nothing given), admission is
  idempotent, and the model's dump admits back to the very same object;
- the same object with one field moved out of its schema (wrong type, out of range, not in the enum,
  too long) is rejected, with an error naming exactly that field.
"""

from __future__ import annotations

import copy
import json
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from deeptrain_api import DeepTrainingJob, catalog, structural

pytestmark = pytest.mark.faults

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "deeptrain.dev_deeptrainingjobs.yaml"
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
# Strings guarded by a CEL rule on their shape (storage URIs): a random string almost never passes,
# so they are drawn from URIs of every scheme the API documents.
URIS = ["pvc://datasets/shoes", "file:///data/shoes", "s3://bucket/shoes", "gs://bucket/a/b",
        "https://example.org/shoes.tar"]
# At most this many optional fields per object: keeps examples small and mostly acceptable.
OPTIONAL_PER_OBJECT = 3


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_FILE.read_text())
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    return version["schema"]["openAPIV3Schema"]


SCHEMA = crd_schema()
SPEC_SCHEMA = SCHEMA["properties"]["spec"]


def _text(node: dict[str, Any]) -> st.SearchStrategy[str]:
    if node.get("x-kubernetes-validations"):
        return st.sampled_from(URIS)
    if "pattern" in node:
        return st.from_regex(node["pattern"], fullmatch=True).filter(
            lambda s: node.get("minLength", 0) <= len(s) <= node.get("maxLength", 63))
    return st.text(string.ascii_lowercase + string.digits + "-", min_size=node.get("minLength", 0),
                   max_size=min(node.get("maxLength", 20), 20))


def _number(node: dict[str, Any], integer: bool) -> st.SearchStrategy[Any]:
    low, high = node.get("minimum"), node.get("maximum")
    if integer:
        step = node.get("multipleOf", 1)
        low = 0 if low is None else int(low)
        high = low + 1000 if high is None else int(high)
        return st.integers(-(-low // step), high // step).map(lambda n: n * step)
    return st.floats(low if low is not None else -1e6, high if high is not None else 1e6,
                     exclude_min=bool(node.get("exclusiveMinimum")), exclude_max=bool(node.get("exclusiveMaximum")),
                     allow_nan=False, allow_infinity=False)


def values(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A value of `node`'s OpenAPI type within its constraints (CEL rules across fields not included)."""
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if node.get("x-kubernetes-int-or-string"):
        return st.one_of(st.integers(1, 8), st.sampled_from(["auto", "1", "500m", "2Gi"]))
    kind = node.get("type")
    if kind == "boolean":
        return st.booleans()
    if kind in ("integer", "number"):
        return _number(node, kind == "integer")
    if kind == "string":
        return _text(node)
    if kind == "array":
        size = min(node.get("maxItems", 3), 3)
        unique = node.get("x-kubernetes-list-type") == "set"
        return st.lists(values(node["items"]), max_size=size, unique=unique)
    if kind == "object" and node.get("properties"):
        return objects(node)
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return st.dictionaries(st.text(string.ascii_lowercase, min_size=1, max_size=8),
                               values(node["additionalProperties"]), max_size=2)
    return st.just({})


def objects(node: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = node["properties"]
    required = node.get("required", [])
    optional = sorted(set(properties) - set(required))

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        chosen = draw(st.lists(st.sampled_from(optional), unique=True, max_size=OPTIONAL_PER_OBJECT)) \
            if optional else []
        return {key: draw(values(properties[key])) for key in [*required, *chosen]}

    return build()


@st.composite
def accepted_jobs(draw: st.DrawFn) -> dict[str, Any]:
    """A whole DeepTrainingJob the schema accepts. modelType and template come from the catalog the
    schema is generated from (their pairing is a CEL rule a blind draw rarely meets)."""
    spec = draw(objects(SPEC_SCHEMA))
    spec["modelType"] = draw(st.sampled_from(sorted(catalog.MODEL_TYPES)))
    spec["template"] = draw(st.sampled_from(sorted(catalog.model_type(spec["modelType"]).templates)))
    job = {"apiVersion": "deeptrain.dev/v1alpha1", "kind": "DeepTrainingJob",
           "metadata": {"name": "fuzz", "namespace": "default"}, "spec": spec}
    assume(admission_errors(job) == [])
    return job


def admit(obj: dict[str, Any]) -> dict[str, Any]:
    return structural.prune(SCHEMA, structural.apply_defaults(SCHEMA, copy.deepcopy(obj)))


def admission_errors(obj: dict[str, Any]) -> list[structural.FieldError]:
    return structural.validate(SCHEMA, structural.apply_defaults(SCHEMA, copy.deepcopy(obj)), strict=True)


def contains(outer: Any, inner: Any) -> bool:
    if isinstance(inner, dict):
        return isinstance(outer, dict) and all(k in outer and contains(outer[k], v) for k, v in inner.items())
    if isinstance(inner, list):
        return isinstance(outer, list) and len(outer) == len(inner) and all(map(contains, outer, inner))
    return outer == inner and type(outer) is type(inner)


@FUZZ
@given(accepted_jobs())
def test_an_accepted_object_round_trips_through_admission_and_the_model(job):
    admitted = admit(job)
    assert contains(admitted, job), "admission dropped or changed a field the user wrote"
    assert admit(admitted) == admitted
    model = DeepTrainingJob.model_validate(admitted)
    dumped = model.model_dump(mode="json", exclude_none=True)
    assert admit(dumped)["spec"] == admitted["spec"]


def leaves(obj: Any, node: dict[str, Any], path: str = "") -> list[tuple[str, list[Any], dict[str, Any]]]:
    """(field path as the apiserver names it, key path, schema) of every scalar the object holds."""
    found = []
    if isinstance(obj, dict) and node.get("properties"):
        for key, value in obj.items():
            child = node["properties"].get(key)
            if child is not None:
                for text, keys, schema in leaves(value, child, f"{path}.{key}" if path else key):
                    found.append((text, [key, *keys], schema))
    elif isinstance(obj, list) and "items" in node:
        for index, value in enumerate(obj):
            for text, keys, schema in leaves(value, node["items"], f"{path}[{index}]"):
                found.append((text, [index, *keys], schema))
    elif not isinstance(obj, (dict, list)) and not node.get("x-kubernetes-int-or-string"):
        found.append((path, [], node))
    return found


def out_of_schema(node: dict[str, Any]) -> list[Any]:
    """Values that break `node`'s own constraints."""
    kind = node.get("type")
    broken: list[Any] = [["not", "a", kind]]  # wrong type, for every type
    if "enum" in node:
        broken.append("definitely-not-" + str(node["enum"][-1]))
    if "maximum" in node:
        broken.append(node["maximum"] + (1 if kind == "integer" else 0.5))
    if "minimum" in node:
        broken.append(node["minimum"] - (1 if kind == "integer" else 0.5))
    if "maxLength" in node and not node.get("x-kubernetes-validations"):
        broken.append("x" * (node["maxLength"] + 1))
    return broken


@FUZZ
@given(accepted_jobs(), st.data())
def test_one_field_out_of_its_schema_is_rejected_naming_the_field(job, data):
    fields = [leaf for leaf in leaves(job["spec"], SPEC_SCHEMA, "spec")]
    path, keys, node = data.draw(st.sampled_from(fields), label="field")
    value = data.draw(st.sampled_from(out_of_schema(node)), label="broken value")
    broken = copy.deepcopy(job)
    target = broken["spec"]
    for key in keys[:-1]:
        target = target[key]
    if keys:
        target[keys[-1]] = value
    else:  # pragma: no cover - every spec leaf has a key path
        pytest.fail(f"no key path for {path}")
    errors = admission_errors(broken)
    assert errors, f"{path} = {json.dumps(value)} was accepted"
    assert path in {error.path for error in errors}, [str(e) for e in errors]
