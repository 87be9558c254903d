"""Turn a pydantic model's JSON schema into a structural OpenAPI v3 schema, as CRDs require.

Structural means: every node says its `type` (or is int-or-string / preserve-unknown-fields),
$refs are inlined, `anyOf` appears only in the int-or-string pattern, and `additionalProperties:
false` is left out (the apiserver prunes unknown fields instead of allowing that keyword).
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

JsonSchema = dict[str, Any]

# JSON-schema annotations that are of no use to kubectl explain or to admission.
_DROPPED = {"title", "$defs"}


class SchemaError(ValueError):
    """The model uses a shape that has no structural OpenAPI equivalent."""


def structural_schema(model: type[BaseModel], *, override: dict[str, JsonSchema] | None = None) -> JsonSchema:
    """`model`'s schema; `override` replaces top-level properties (e.g. the apiserver-owned metadata)."""
    schema = model.model_json_schema(mode="validation")
    if override:
        schema["properties"] = {**schema["properties"], **override}
    return _convert(schema, schema.get("$defs", {}), path=model.__name__)


def _convert(node: JsonSchema, defs: dict[str, JsonSchema], path: str) -> JsonSchema:
    node = _inline(node, defs)
    out: JsonSchema = {}
    for key, value in node.items():
        if key in _DROPPED or (key == "default" and value is None):
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound], out[key] = value, True
        elif key == "properties":
            out[key] = {name: _convert(value[name], defs, f"{path}.{name}") for name in sorted(value)}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _convert(value, defs, f"{path}[]")
        elif key == "anyOf":
            out[key] = [_convert(branch, defs, path) for branch in value]
        else:
            out[key] = copy.deepcopy(value)
    _check_structural(out, path)
    return _canonical_order(out)


def _canonical_order(node: JsonSchema) -> JsonSchema:
    """description, type, then the rest alphabetically: stable diffs of the generated YAML."""
    first = [key for key in ("description", "type") if key in node]
    return {key: node[key] for key in first + sorted(set(node) - set(first))}


def _inline(node: JsonSchema, defs: dict[str, JsonSchema]) -> JsonSchema:
    """Resolve $ref and drop the `null` branch pydantic adds for optional fields."""
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _inline(merged, defs)
    branches = node.get("anyOf")
    if branches is not None and not node.get("x-kubernetes-int-or-string"):
        concrete = [branch for branch in branches if branch.get("type") != "null"]
        if len(concrete) == 1:
            outer = {k: v for k, v in node.items() if k != "anyOf"}
            inner = _inline(concrete[0], defs)
            # The field's own description and default win over the referenced model's.
            return {**inner, **outer}
    return node


def _check_structural(node: JsonSchema, path: str) -> None:
    if node.get("x-kubernetes-int-or-string"):
        branches = node.get("anyOf", [])
        if any(set(branch) != {"type"} for branch in branches):
            raise SchemaError(f"{path}: int-or-string allows only anyOf [{{type: integer}}, {{type: string}}]")
        return
    if "anyOf" in node or "oneOf" in node or "allOf" in node:
        raise SchemaError(f"{path}: a union that is not int-or-string has no structural form")
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        raise SchemaError(f"{path}: no type")
    if "properties" in node and "additionalProperties" in node:
        raise SchemaError(f"{path}: properties and additionalProperties exclude each other")
