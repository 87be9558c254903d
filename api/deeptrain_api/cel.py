"""The Kubernetes CEL environment for x-kubernetes-validations, evaluated with cel-python.

Values are converted with their schema, as the apiserver types them: a `number` field holding 1 is
the double 1.0, an int-or-string is an int or a string. Each expression is compiled once.
"""

from __future__ import annotations

import functools
from typing import Any

import celpy
from celpy import celtypes

_ENVIRONMENT = celpy.Environment()


class RuleError(Exception):
    """A rule or message expression that does not compile or cannot be evaluated."""


@functools.cache
def compile_expression(expression: str) -> celpy.Runner:
    try:
        return _ENVIRONMENT.program(_ENVIRONMENT.compile(expression))
    except Exception as error:  # cel-python raises its own parser exceptions, with no shared base
        raise RuleError(f"cannot compile {expression!r}: {error}") from error


def evaluate(expression: str, bindings: dict[str, Any]) -> Any:
    """Evaluate `expression` with already converted `bindings`: True/False for booleans, else the CEL value."""
    try:
        result = compile_expression(expression).evaluate(bindings)
    except celpy.CELEvalError as error:
        raise RuleError(str(error.args[0] if error.args else error)) from error
    if isinstance(result, celpy.CELEvalError):
        raise RuleError(str(result.args[0] if result.args else result))
    return bool(result) if isinstance(result, celtypes.BoolType) else result


def references_old_self(expression: str) -> bool:
    """Transition rules (those that read oldSelf) run only on updates where the old value exists."""
    return "oldSelf" in expression


def to_cel(schema: dict[str, Any], value: Any) -> Any:
    """`value` (JSON) as the CEL value the apiserver would bind for a field of `schema`."""
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        values_schema = schema.get("additionalProperties")
        values_schema = values_schema if isinstance(values_schema, dict) else {}
        return celtypes.MapType({
            celtypes.StringType(key): to_cel(properties.get(key, values_schema), item) for key, item in value.items()
        })
    if isinstance(value, list):
        return celtypes.ListType([to_cel(schema.get("items", {}), item) for item in value])
    if isinstance(value, str):
        return celtypes.StringType(value)
    # Beyond int64 the apiserver's JSON decoding keeps a number as a float64, and so does CEL here.
    if isinstance(value, int) and schema.get("type") != "number" and _fits_int64(value):
        return celtypes.IntType(value)
    if (isinstance(value, float) and schema.get("type") == "integer" and value.is_integer()
            and _fits_int64(int(value))):
        return celtypes.IntType(int(value))
    return celtypes.DoubleType(value)


def _fits_int64(value: int) -> bool:
    return -(2**63) <= value < 2**63
