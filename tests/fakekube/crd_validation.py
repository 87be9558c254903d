"""What the apiextensions server checks in a CustomResourceDefinition's schema before it admits it.

Structural schema (every node typed, `x-kubernetes-*` extensions only where they mean something,
`metadata` described at most by name/generateName), and every `x-kubernetes-validations` rule:
it compiles against the schema's types and returns a bool, its messageExpression returns a string,
its fieldPath names a declared field, optionalOldSelf only on transition rules, transition rules
only where old values can be correlated, and the estimated cost stays within the per-rule and
per-schema budgets. Causes carry the apiserver's field paths and texts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .cel_types import CelCompileError, CelType, check, max_items, max_properties, optional, schema_type

Schema = dict[str, Any]
Cause = dict[str, str]

PER_RULE_COST_LIMIT = 10_000_000
PER_SCHEMA_COST_LIMIT = 100_000_000
_MOST_EXPENSIVE_REPORTED = 4
_RULE_REASONS = ("FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate")
_TYPES = ("object", "array", "string", "integer", "number", "boolean")
_METADATA_FIELDS = {"name", "generateName"}
_FIELD_PATH_STEP = re.compile(r"\.([A-Za-z_$][A-Za-z0-9_$-]*)|\['((?:[^'\\]|\\.)*)'\]|\[(\d+)\]")


def _cause(reason: str, field_path: str, message: str) -> Cause:
    return {"reason": reason, "message": message, "field": field_path}


def _go_json(value: Any) -> str:
    """JSON as Go's encoding/json writes it (compact, with <, > and & escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def validate_crd(crd: dict[str, Any]) -> list[Cause]:
    """Every reason the apiextensions server would refuse `crd`'s schemas, as Status causes."""
    versions = crd.get("spec", {}).get("versions") or []
    schemas = [(v.get("schema") or {}).get("openAPIV3Schema") for v in versions]
    if schemas and all(schema == schemas[0] for schema in schemas) and schemas[0] is not None:
        # Identical schemas are validated once, as the one top-level schema of the internal version.
        located = [("spec.validation.openAPIV3Schema", schemas[0])]
    else:
        located = [(f"spec.versions[{i}].schema.openAPIV3Schema", s) for i, s in enumerate(schemas) if s is not None]
    causes: list[Cause] = []
    for path, schema in located:
        structural = structural_causes(schema, path)
        causes.extend(structural)
        if not structural:
            causes.extend(_RuleChecker(path).causes(schema))
    return causes


# --- structural schema ------------------------------------------------------------------------------


def structural_causes(schema: Schema, path: str) -> list[Cause]:
    causes: list[Cause] = []
    _structural(schema, path, "root", causes)
    return causes


def _structural(schema: Schema, path: str, position: str, causes: list[Cause]) -> None:
    int_or_string = schema.get("x-kubernetes-int-or-string") is True
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    kind = schema.get("type")
    if kind is None and not int_or_string and preserve is not True:
        where = {"root": "at the root", "property": "for specified object fields",
                 "items": "for specified array items",
                 "additionalProperties": "for specified additionalProperties"}[position]
        causes.append(_cause("FieldValueRequired", f"{path}.type", f"Required value: must not be empty {where}"))
    elif kind is not None and kind not in _TYPES:
        supported = ", ".join(f'"{t}"' for t in _TYPES)
        causes.append(_cause("FieldValueNotSupported", f"{path}.type",
                             f'Unsupported value: "{kind}": supported values: {supported}'))
    if position == "root" and kind not in (None, "object"):
        causes.append(_cause("FieldValueInvalid", f"{path}.type", f'Invalid value: "{kind}": must be object at the root'))
    if preserve is False:
        causes.append(_cause("FieldValueInvalid", f"{path}.x-kubernetes-preserve-unknown-fields",
                             "Invalid value: false: must be true or undefined"))
    if int_or_string and kind is not None:
        causes.append(_cause("FieldValueForbidden", f"{path}.type",
                             "Forbidden: must be empty if x-kubernetes-int-or-string is true"))
    _extension_placement(schema, path, kind, causes)
    if "$ref" in schema:
        causes.append(_cause("FieldValueForbidden", f"{path}.$ref", "Forbidden: $ref is not supported"))
    if schema.get("uniqueItems") is True:
        causes.append(_cause("FieldValueForbidden", f"{path}.uniqueItems",
                             "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"))
    values = schema.get("additionalProperties")
    if values is False:
        causes.append(_cause("FieldValueForbidden", f"{path}.additionalProperties",
                             "Forbidden: must not be false"))
    if isinstance(values, dict) and schema.get("properties"):
        causes.append(_cause("FieldValueForbidden", f"{path}.additionalProperties",
                             "Forbidden: additionalProperties and properties are mutual exclusive"))
    for name, child in (schema.get("properties") or {}).items():
        child_path = f"{path}.properties[{name}]"
        if position == "root" and name == "metadata":
            _metadata(child, child_path, causes)
            continue
        _structural(child, child_path, "property", causes)
    if isinstance(schema.get("items"), dict):
        _structural(schema["items"], f"{path}.items", "items", causes)
    elif kind == "array":
        causes.append(_cause("FieldValueRequired", f"{path}.items", "Required value: must be specified"))
    if isinstance(values, dict):
        _structural(values, f"{path}.additionalProperties", "additionalProperties", causes)


def _extension_placement(schema: Schema, path: str, kind: str | None, causes: list[Cause]) -> None:
    list_type = schema.get("x-kubernetes-list-type")
    if list_type is not None and kind != "array":
        causes.append(_cause("FieldValueInvalid", f"{path}.x-kubernetes-list-type",
                             f'Invalid value: "{list_type}": must only be used if type is array'))
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        causes.append(_cause("FieldValueNotSupported", f"{path}.x-kubernetes-list-type",
                             f'Unsupported value: "{list_type}": supported values: "atomic", "set", "map"'))
    keys = schema.get("x-kubernetes-list-map-keys")
    if keys is not None and list_type != "map":
        causes.append(_cause("FieldValueForbidden", f"{path}.x-kubernetes-list-map-keys",
                             "Forbidden: must not be set if x-kubernetes-list-type is not map"))
    if list_type == "map":
        item_properties = (schema.get("items") or {}).get("properties") or {}
        if not keys:
            causes.append(_cause("FieldValueRequired", f"{path}.x-kubernetes-list-map-keys",
                                 "Required value: must not be empty if x-kubernetes-list-type is map"))
        for key in keys or ():
            if key not in item_properties:
                causes.append(_cause("FieldValueInvalid", f"{path}.x-kubernetes-list-map-keys",
                                     f'Invalid value: {_go_json(keys)}: entries must all be names of item properties'))
                break
    map_type = schema.get("x-kubernetes-map-type")
    if map_type is not None and kind != "object":
        causes.append(_cause("FieldValueInvalid", f"{path}.x-kubernetes-map-type",
                             f'Invalid value: "{map_type}": must only be used if type is object'))
    if schema.get("x-kubernetes-embedded-resource") and kind != "object":
        causes.append(_cause("FieldValueInvalid", f"{path}.type",
                             f'Invalid value: "{kind or ""}": must be object if x-kubernetes-embedded-resource is true'))


def _metadata(schema: Schema, path: str, causes: list[Cause]) -> None:
    """A CRD may say that metadata is an object and constrain name and generateName; nothing else."""
    allowed_keys = {"type", "properties", "description"}
    properties = schema.get("properties") or {}
    described_beyond = set(schema) - allowed_keys or set(properties) - _METADATA_FIELDS or any(
        child.get("type") != "string" for child in properties.values())
    if schema.get("type") not in (None, "object") or described_beyond:
        causes.append(_cause("FieldValueForbidden", path, "Forbidden: must not specify anything other than name and "
                                                          "generateName, but metadata is implicitly specified"))


# --- validation rules -------------------------------------------------------------------------------


@dataclass
class _Node:
    schema: Schema
    path: str
    cardinality: int
    correlatable: bool
    root: bool = False


@dataclass
class _RuleChecker:
    prefix: str
    costs: list[tuple[str, int]] = field(default_factory=list)

    def causes(self, schema: Schema) -> list[Cause]:
        causes: list[Cause] = []
        for node in self._nodes(_Node(schema, self.prefix, 1, True, root=True)):
            for index, rule in enumerate(node.schema.get("x-kubernetes-validations") or []):
                causes.extend(self._rule(node, index, rule))
        total = sum(cost for _, cost in self.costs)
        if total > PER_SCHEMA_COST_LIMIT:
            # Rules under 1% of the schema's budget are not named as contributors.
            noticeable = [entry for entry in self.costs if entry[1] >= PER_SCHEMA_COST_LIMIT // 100]
            expensive = sorted(noticeable, key=lambda entry: -entry[1])[:_MOST_EXPENSIVE_REPORTED]
            causes.extend(_cause("FieldValueForbidden", rule_path, "Forbidden: contributed to estimated rule cost total "
                                                                   "exceeding cost limit for entire OpenAPIv3 schema")
                          for rule_path, _ in expensive)
            causes.append(_cause("FieldValueForbidden", self.prefix, "Forbidden: " + _over_budget(
                "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema", total,
                PER_SCHEMA_COST_LIMIT)))
        return causes

    def _nodes(self, node: _Node) -> list[_Node]:
        found = [node]
        schema = node.schema
        for name, child in (schema.get("properties") or {}).items():
            if node.root and name == "metadata":
                continue
            found += self._nodes(_Node(child, f"{node.path}.properties[{name}]", node.cardinality, node.correlatable))
        if isinstance(schema.get("items"), dict):
            correlatable = node.correlatable and schema.get("x-kubernetes-list-type") == "map"
            found += self._nodes(_Node(schema["items"], f"{node.path}.items", node.cardinality * max_items(schema),
                                       correlatable))
        values = schema.get("additionalProperties")
        if isinstance(values, dict):
            found += self._nodes(_Node(values, f"{node.path}.additionalProperties",
                                       node.cardinality * max_properties(schema), node.correlatable))
        return found

    def _rule(self, node: _Node, index: int, rule: dict[str, Any]) -> list[Cause]:
        base = f"{node.path}.x-kubernetes-validations[{index}]"
        shown = _go_json({"Rule": rule.get("rule", ""), "Message": rule.get("message", ""),
                          "MessageExpression": rule.get("messageExpression", ""), "Reason": rule.get("reason"),
                          "FieldPath": rule.get("fieldPath", ""), "OptionalOldSelf": rule.get("optionalOldSelf")})
        self_type = schema_type(node.schema, root=node.root)
        old_type = optional(self_type) if rule.get("optionalOldSelf") else self_type
        variables = {"self": self_type, "oldSelf": old_type}
        causes: list[Cause] = []
        uses_old_self = False
        try:
            checked = check(rule.get("rule", ""), variables)
        except CelCompileError as error:
            causes.append(_cause("FieldValueInvalid", f"{base}.rule",
                                 f"Invalid value: {shown}: compilation failed: {error}"))
        else:
            uses_old_self = checked.uses_old_self
            if checked.type.kind != "bool":
                causes.append(_cause("FieldValueInvalid", f"{base}.rule",
                                     f"Invalid value: {shown}: cel expression must evaluate to a bool"))
            cost = checked.cost * node.cardinality
            if cost > PER_RULE_COST_LIMIT:
                causes.append(_cause("FieldValueForbidden", f"{base}.rule",
                                     "Forbidden: " + _over_budget("estimated rule cost", cost, PER_RULE_COST_LIMIT)))
            self.costs.append((f"{base}.rule", cost))
            if uses_old_self and not node.correlatable:
                causes.append(_cause("FieldValueInvalid", f"{base}.rule",
                                     f"Invalid value: {shown}: oldSelf cannot be used on the uncorrelatable portion "
                                     "of the schema"))
        if rule.get("optionalOldSelf") and not uses_old_self:
            causes.append(_cause("FieldValueInvalid", f"{base}.optionalOldSelf",
                                 "Invalid value: true: may not be set if oldSelf is not used in rule"))
        if "messageExpression" in rule:
            causes.extend(_message_expression(rule["messageExpression"], variables, base, shown, node.cardinality))
        if rule.get("fieldPath") and not valid_field_path(rule["fieldPath"], node.schema):
            causes.append(_cause("FieldValueInvalid", f"{base}.fieldPath",
                                 f'Invalid value: {json.dumps(rule["fieldPath"])}: must be a valid path'))
        if rule.get("reason") is not None and rule["reason"] not in _RULE_REASONS:
            supported = ", ".join(f'"{reason}"' for reason in _RULE_REASONS)
            causes.append(_cause("FieldValueNotSupported", f"{base}.reason",
                                 f'Unsupported value: "{rule["reason"]}": supported values: {supported}'))
        return causes


def _message_expression(expression: str, variables: dict[str, CelType], base: str, shown: str,
                        cardinality: int) -> list[Cause]:
    if not expression.strip():
        return [_cause("FieldValueRequired", f"{base}.messageExpression",
                       "Required value: messageExpression must be non-empty if specified")]
    try:
        checked = check(expression, variables)
    except CelCompileError as error:
        return [_cause("FieldValueInvalid", f"{base}.messageExpression",
                       f"Invalid value: {shown}: messageExpression compilation failed: {error}")]
    causes = []
    if checked.type.kind != "string":
        causes.append(_cause("FieldValueInvalid", f"{base}.messageExpression",
                             f"Invalid value: {shown}: messageExpression must evaluate to a string"))
    if checked.cost * cardinality > PER_RULE_COST_LIMIT:
        causes.append(_cause("FieldValueForbidden", f"{base}.messageExpression", "Forbidden: " + _over_budget(
            "estimated messageExpression cost", checked.cost * cardinality, PER_RULE_COST_LIMIT)))
    return causes


def _over_budget(what: str, cost: int, limit: int) -> str:
    factor = cost / limit
    if factor > 100:
        shown = "more than 100x"
    elif factor < 1.5:
        shown = f"{factor:f}x"
    else:
        shown = f"{factor:.1f}x"
    return (f"{what} exceeds budget by factor of {shown} (try simplifying the rule, or adding maxItems, "
            "maxProperties, and maxLength where arrays, maps, and strings are declared)")


def valid_field_path(path: str, schema: Schema) -> bool:
    """`.a.b`, `['key']` and `[index]` steps from `schema`, each to a field the schema declares."""
    position, node = 0, schema
    if not path:
        return False
    while position < len(path):
        step = _FIELD_PATH_STEP.match(path, position)
        if step is None:
            return False
        position = step.end()
        name = step.group(1) if step.group(1) is not None else step.group(2)
        if name is not None:
            properties = node.get("properties") or {}
            values = node.get("additionalProperties")
            if name in properties:
                node = properties[name]
            elif isinstance(values, dict):
                node = values
            else:
                return False
        else:
            if node.get("type") != "array" or not isinstance(node.get("items"), dict):
                return False
            node = node["items"]
    return True
