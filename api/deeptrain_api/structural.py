"""Admission the way kube-apiserver does it for a CRD: defaulting, pruning, OpenAPI and CEL validation.

`deeptrain validate` and the test suite's fake API server both use this module, so a manifest is
judged the same way on a laptop, in CI and in a cluster, with the apiserver's error messages.
Schemas are the structural openAPIV3Schema of a CRD version (see crdgen).
"""

from __future__ import annotations

import copy
import datetime
import json
import re
from dataclasses import dataclass, field
from typing import Any

from . import cel
from .common import GROUP

Schema = dict[str, Any]

# Error types, spelled as the apiserver's field errors print them.
INVALID = "Invalid value"
REQUIRED = "Required value"
UNSUPPORTED = "Unsupported value"
DUPLICATE = "Duplicate value"
FORBIDDEN = "Forbidden"
TOO_LONG = "Too long"
TOO_MANY = "Too many"
UNKNOWN_FIELD = "Unknown field"
_WITHOUT_VALUE = {REQUIRED, FORBIDDEN, TOO_LONG, UNKNOWN_FIELD}

_CEL_REASONS = {"FieldValueRequired": REQUIRED, "FieldValueForbidden": FORBIDDEN,
                "FieldValueDuplicate": DUPLICATE, "FieldValueInvalid": INVALID}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
NOT_CHECKED = ("some validation rules were not checked because the object was invalid; "
               "correct the existing errors to complete validation")
# Schema errors after which the apiserver does not run the CEL rules at all.
_BLOCKING_CEL = {REQUIRED, UNSUPPORTED, TOO_LONG, TOO_MANY}


class _Omitted:
    """The value of a FieldError the apiserver does not print: a failed rule on an object or list."""

    def __repr__(self) -> str:
        return "OMITTED"


OMITTED = _Omitted()


@dataclass(frozen=True)
class FieldError:
    """One problem at one field, like the apiserver's field.Error."""

    path: str
    type: str
    value: Any = None
    message: str = ""
    type_mismatch: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        body = self.type
        if self.type not in _WITHOUT_VALUE and self.value is not OMITTED:
            body += f": {_show(self.value)}"
        if self.message:
            body += f": {self.message}"
        return f"{self.path}: {body}" if self.path else body


def format_error(kind: str, name: str, errors: list[FieldError], *, group: str = GROUP) -> str:
    """kube-apiserver's 422 message: `Kind.group "name" is invalid: <error>` (several in brackets)."""
    qualified = kind if "." in kind else f"{kind}.{group}"
    detail = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
    return f'{qualified} "{name}" is invalid: {detail}'


def validate(schema: Schema, obj: Any, *, old: Any | None = None, strict: bool = False) -> list[FieldError]:
    """Every problem with `obj` under `schema`; `old` is the stored object on updates (transition rules).

    strict=True also reports fields the schema does not declare, as `kubectl apply` (field validation
    Strict) does; otherwise they are left to `prune`, as the apiserver's default does.
    """
    errors: list[FieldError] = []
    _check_schema(schema, obj, "", errors, strict=strict, root=True)
    if any(error.type_mismatch or error.type in _BLOCKING_CEL for error in errors):
        # As the apiserver: rules wait until the object is typed, complete and within its sizes and enums.
        errors.append(FieldError("", INVALID, None, NOT_CHECKED))
        return errors
    _check_rules(schema, obj, old, old is not None, "", errors)
    return errors


def apply_defaults(schema: Schema, obj: Any) -> Any:
    """A copy of `obj` with schema defaults filled in and nulls of non-nullable fields without default removed."""
    result = copy.deepcopy(obj)
    _default(schema, result, root=True)
    return result


def prune(schema: Schema, obj: Any) -> Any:
    """A copy of `obj` without the fields the schema does not declare (the apiserver drops them silently)."""
    result = copy.deepcopy(obj)
    _prune(schema, result, root=True)
    return result


# --- OpenAPI ----------------------------------------------------------------------------------------


def _check_schema(schema: Schema, value: Any, path: str, errors: list[FieldError], *, strict: bool,
                  root: bool = False) -> None:
    if value is None:
        if not schema.get("nullable") and not _accepts_anything(schema):
            errors.append(_type_error(path, "null", _type_names(schema)))
        return
    if schema.get("x-kubernetes-int-or-string"):
        if isinstance(value, bool) or not isinstance(value, int | str):
            errors.append(_type_error(path, _json_type(value), "integer,string"))
            return
    elif "type" in schema:
        if not _has_type(value, schema["type"]):
            errors.append(_type_error(path, _json_type(value), schema["type"]))
            return
    elif _accepts_anything(schema):
        return

    if isinstance(value, dict):
        _check_object(schema, value, path, errors, strict=strict, root=root)
    elif isinstance(value, list):
        _check_array(schema, value, path, errors, strict=strict)
    else:
        _check_scalar(schema, value, path, errors)


def _check_object(schema: Schema, value: dict[str, Any], path: str, errors: list[FieldError], *,
                  strict: bool, root: bool) -> None:
    properties: dict[str, Schema] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value or (value[name] is None and not properties.get(name, {}).get("nullable")):
            errors.append(FieldError(_child(path, name), REQUIRED))
    values_schema = schema.get("additionalProperties")
    for name, item in value.items():
        if name in properties:
            if not (root and name == "metadata"):  # the apiserver checks ObjectMeta itself
                _check_schema(properties[name], item, _child(path, name), errors, strict=strict)
        elif isinstance(values_schema, dict):
            _check_schema(values_schema, item, f"{path}[{name}]", errors, strict=strict)
        elif strict and not schema.get("x-kubernetes-preserve-unknown-fields"):
            errors.append(FieldError(_child(path, name), UNKNOWN_FIELD, None, "field not declared in schema"))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(FieldError(path, TOO_MANY, len(value), f"must have at most {schema['maxProperties']} items"))
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        errors.append(FieldError(path, INVALID, value,
                                 f"{path} in body should have at least {schema['minProperties']} properties"))


def _check_array(schema: Schema, value: list[Any], path: str, errors: list[FieldError], *, strict: bool) -> None:
    items = schema.get("items", {})
    for index, item in enumerate(value):
        _check_schema(items, item, f"{path}[{index}]", errors, strict=strict)
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(FieldError(path, TOO_MANY, len(value), f"must have at most {schema['maxItems']} items"))
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(FieldError(path, INVALID, value, f"{path} in body should have at least {schema['minItems']} items"))
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        seen: list[Any] = []
        for index, item in enumerate(value):
            if item in seen:
                errors.append(FieldError(f"{path}[{index}]", DUPLICATE, item))
            seen.append(item)
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen_keys: set[str] = set()
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            key = {name: item.get(name, items.get("properties", {}).get(name, {}).get("default")) for name in keys}
            text = json.dumps(key, sort_keys=True)
            if text in seen_keys:
                errors.append(FieldError(f"{path}[{index}]", DUPLICATE, key))
            seen_keys.add(text)


def _check_scalar(schema: Schema, value: Any, path: str, errors: list[FieldError]) -> None:
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_show(choice) for choice in schema["enum"])
        errors.append(FieldError(path, UNSUPPORTED, value, f"supported values: {supported}"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(schema, value, path, errors)
    if isinstance(value, str):
        _check_string(schema, value, path, errors)


def _check_number(schema: Schema, value: float, path: str, errors: list[FieldError]) -> None:
    def fail(text: str) -> None:
        errors.append(FieldError(path, INVALID, value, f"{path} in body {text}"))

    if "minimum" in schema:
        low = schema["minimum"]
        if schema.get("exclusiveMinimum") and value <= low:
            fail(f"should be greater than {_number(low)}")
        elif value < low:
            fail(f"should be greater than or equal to {_number(low)}")
    if "maximum" in schema:
        high = schema["maximum"]
        if schema.get("exclusiveMaximum") and value >= high:
            fail(f"should be less than {_number(high)}")
        elif value > high:
            fail(f"should be less than or equal to {_number(high)}")
    step = schema.get("multipleOf")
    if step and (value / step) != int(value / step):
        fail(f"should be a multiple of {_number(step)}")


def _check_string(schema: Schema, value: str, path: str, errors: list[FieldError]) -> None:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(FieldError(path, TOO_LONG, value, f"may not be more than {schema['maxLength']} bytes"))
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(FieldError(path, INVALID, value, f"{path} in body should be at least {schema['minLength']} chars long"))
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(FieldError(path, INVALID, value, f"{path} in body should match '{schema['pattern']}'"))
    if schema.get("format") == "date-time" and not _is_date_time(value):
        errors.append(FieldError(path, INVALID, value, f'{path} in body must be of type date-time: {_show(value)}'))


# --- CEL --------------------------------------------------------------------------------------------


def _check_rules(schema: Schema, value: Any, old: Any, has_old: bool, path: str, errors: list[FieldError]) -> None:
    if value is None:
        return
    rules = schema.get("x-kubernetes-validations", [])
    if rules:
        self_value = cel.to_cel(schema, value)
        old_value = cel.to_cel(schema, old) if has_old else None
        for rule in rules:
            if cel.references_old_self(rule["rule"]) and not has_old:
                continue
            bindings = {"self": self_value, **({"oldSelf": old_value} if has_old else {})}
            error = _evaluate_rule(rule, bindings, value, path)
            if error is not None:
                errors.append(error)

    if isinstance(value, dict):
        properties = schema.get("properties", {})
        values_schema = schema.get("additionalProperties")
        for name, item in value.items():
            child_schema = properties.get(name, values_schema if isinstance(values_schema, dict) else None)
            if child_schema is None:
                continue
            child_has_old = has_old and isinstance(old, dict) and name in old
            child_path = _child(path, name) if name in properties else f"{path}[{name}]"
            _check_rules(child_schema, item, old[name] if child_has_old else None, child_has_old, child_path, errors)
    elif isinstance(value, list):
        items = schema.get("items", {})
        old_items = _correlate(schema, old) if has_old and isinstance(old, list) else {}
        for index, item in enumerate(value):
            key = _map_key(schema, item)
            has_old_item = key is not None and key in old_items
            _check_rules(items, item, old_items.get(key), has_old_item, f"{path}[{index}]", errors)


def _evaluate_rule(rule: dict[str, Any], bindings: dict[str, Any], value: Any, path: str) -> FieldError | None:
    where = (path + rule["fieldPath"]).lstrip(".") if rule.get("fieldPath") else path
    # The apiserver prints the value a rule judged when it is a scalar, and nothing for objects and lists.
    shown = OMITTED if isinstance(value, dict | list) else value
    try:
        passed = cel.evaluate(rule["rule"], bindings)
    except cel.RuleError as error:
        return FieldError(where, INVALID, shown, f"rule {rule['rule']!r} could not be evaluated: {error}")
    if passed is True:
        return None
    message = rule.get("message") or f"failed rule: {rule['rule']}"
    if "messageExpression" in rule:
        try:
            computed = str(cel.evaluate(rule["messageExpression"], bindings))
        except cel.RuleError:
            computed = ""
        message = computed if computed.strip() else message
    error_type = _CEL_REASONS.get(rule.get("reason", ""), INVALID)
    return FieldError(where, error_type, shown, message)


def _map_key(schema: Schema, item: Any) -> str | None:
    if schema.get("x-kubernetes-list-type") != "map" or not isinstance(item, dict):
        return None
    return json.dumps([item.get(name) for name in schema.get("x-kubernetes-list-map-keys", [])])


def _correlate(schema: Schema, old: list[Any]) -> dict[str, Any]:
    """Old items by map key: only list-type map items have an oldSelf (as in the apiserver)."""
    return {key: item for item in old if (key := _map_key(schema, item)) is not None}


# --- defaulting and pruning -------------------------------------------------------------------------


def _default(schema: Schema, value: Any, *, root: bool = False) -> None:
    if isinstance(value, dict):
        properties: dict[str, Schema] = schema.get("properties", {})
        for name, child in properties.items():
            if root and name in _ALWAYS_KEPT_AT_ROOT:
                continue
            if value.get(name) is None and name in value and not child.get("nullable") and "default" not in child:
                del value[name]
            elif value.get(name) is None and "default" in child and not (name in value and child.get("nullable")):
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                _default(child, value[name])
        values_schema = schema.get("additionalProperties")
        if isinstance(values_schema, dict):
            for name in list(value):
                if name not in properties:
                    _default(values_schema, value[name])
    elif isinstance(value, list):
        for item in value:
            _default(schema.get("items", {}), item)


# The apiserver keeps these on every object, whatever the schema declares.
_ALWAYS_KEPT_AT_ROOT = frozenset({"apiVersion", "kind", "metadata"})


def _prune(schema: Schema, value: Any, *, root: bool = False) -> None:
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
            return
        properties: dict[str, Schema] = schema.get("properties", {})
        values_schema = schema.get("additionalProperties")
        for name in list(value):
            if root and name in _ALWAYS_KEPT_AT_ROOT:
                continue
            if name in properties:
                _prune(properties[name], value[name])
            elif isinstance(values_schema, dict):
                _prune(values_schema, value[name])
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                del value[name]
    elif isinstance(value, list):
        for item in value:
            _prune(schema.get("items", {}), item)


def unknown_fields(schema: Schema, obj: Any) -> list[str]:
    """Paths of the fields `prune` drops, as the apiserver names them in its field validation."""
    found: list[str] = []
    _unknown(schema, obj, "", found, root=True)
    return found


def _unknown(schema: Schema, value: Any, path: str, found: list[str], *, root: bool = False) -> None:
    if isinstance(value, dict):
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        properties: dict[str, Schema] = schema.get("properties", {})
        values_schema = schema.get("additionalProperties")
        for name, item in value.items():
            if root and name in _ALWAYS_KEPT_AT_ROOT:
                continue
            if name in properties:
                _unknown(properties[name], item, _child(path, name), found)
            elif isinstance(values_schema, dict):
                _unknown(values_schema, item, _child(path, name), found)
            elif not preserve:
                found.append(_child(path, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _unknown(schema.get("items", {}), item, f"{path}[{index}]", found)


# --- helpers ----------------------------------------------------------------------------------------


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _accepts_anything(schema: Schema) -> bool:
    return "type" not in schema and not schema.get("x-kubernetes-int-or-string") and bool(
        schema.get("x-kubernetes-preserve-unknown-fields"))


def _has_type(value: Any, type_name: str) -> bool:
    if type_name == "object":
        return isinstance(value, dict)
    if type_name == "array":
        return isinstance(value, list)
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "integer":
        return not isinstance(value, bool) and (isinstance(value, int) or (isinstance(value, float) and value.is_integer()))
    if type_name == "number":
        return not isinstance(value, bool) and isinstance(value, int | float)
    return True


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_names(schema: Schema) -> str:
    return "integer,string" if schema.get("x-kubernetes-int-or-string") else schema.get("type", "object")


def _type_error(path: str, actual: str, expected: str) -> FieldError:
    return FieldError(path, INVALID, actual, f"{path} in body must be of type {expected}: {_show(actual)}",
                      type_mismatch=True)


def _is_date_time(text: str) -> bool:
    if not _RFC3339.match(text):
        return False
    try:
        datetime.datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


def _number(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _show(value: Any) -> str:
    """A value as the apiserver prints it: strings quoted, numbers and booleans bare, the rest as JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
