"""Admission of custom resources: the CRD's structural schema, judged by deeptrain's own admission module.

`deeptrain_operator.api.structural` does what the apiserver does (pruning, defaulting, OpenAPI and CEL
validation); this module only puts its findings in the apiserver's 422 shape.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from deeptrain_operator.api import structural

from .errors import invalid
from .resources import ResourceType

Object = dict[str, Any]
Cause = dict[str, str]

# Status cause reasons, by the field error types the apiserver prints.
_CAUSE_REASONS = {
    structural.INVALID: "FieldValueInvalid",
    structural.REQUIRED: "FieldValueRequired",
    structural.UNSUPPORTED: "FieldValueNotSupported",
    structural.DUPLICATE: "FieldValueDuplicate",
    structural.FORBIDDEN: "FieldValueForbidden",
    structural.TOO_LONG: "FieldValueTooLong",
    structural.TOO_MANY: "FieldValueTooMany",
    structural.UNKNOWN_FIELD: "FieldValueNotFound",
}


def admit(schema: dict[str, Any], new: Object, old: Object | None) -> tuple[Object, list[Cause]]:
    """The stored form of `new` (pruned, then defaulted, as the apiserver decodes it) and its validation
    failures as Status causes; `old` is the stored object on updates, for CEL transition rules."""
    pruned = structural.prune(schema, new)
    admitted = structural.apply_defaults(schema, pruned)
    errors = structural.validate(schema, admitted, old=old)
    return admitted, [_cause(error) for error in errors]


def _cause(error: structural.FieldError) -> Cause:
    return {"reason": _CAUSE_REASONS.get(error.type, "FieldValueInvalid"),
            "message": str(dataclasses.replace(error, path="")), "field": error.path}


def admit_custom_object(resource: ResourceType, new: Object, old: Object | None) -> Object:
    assert resource.schema is not None
    admitted, causes = admit(resource.schema, new, old)
    if causes:
        raise invalid(resource.kind, resource.group, new["metadata"].get("name", ""), causes)
    return admitted
