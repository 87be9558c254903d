"""Admission of custom resources: the CRD's structural schema, judged by deeptrain's own admission module.

`deeptrain_api.structural` does what the apiserver does (pruning, defaulting, OpenAPI and CEL
validation); this module puts its findings in the apiserver's 422 shape and applies the request's
field validation (Strict, Warn, Ignore) to the fields pruning would drop.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from deeptrain_api import structural

from .errors import bad_request, invalid
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
            "message": str(dataclasses.replace(error, path="")), "field": error.path or "<nil>"}


FIELD_VALIDATIONS = ("Ignore", "Warn", "Strict")


@dataclasses.dataclass
class WriteOptions:
    """What a write request asks for besides its body (dryRun, fieldValidation), and the warnings it earns."""

    dry_run: bool = False
    # What the apiserver does for a client that sends no fieldValidation: prune, with a Warning header.
    field_validation: str = "Warn"
    warnings: list[str] = dataclasses.field(default_factory=list)


def check_unknown_fields(resource: ResourceType, obj: Object, options: WriteOptions) -> None:
    """fieldValidation: Strict refuses fields the schema would prune, Warn reports them, Ignore says nothing."""
    if resource.schema is None or options.field_validation == "Ignore":
        return
    unknown = [f'unknown field "{path}"' for path in structural.unknown_fields(resource.schema, obj)]
    if not unknown:
        return
    if options.field_validation == "Strict":
        raise bad_request(f'{resource.kind} in version "{resource.version}" cannot be handled as a {resource.kind}: '
                          f"strict decoding error: {', '.join(unknown)}")
    options.warnings.extend(unknown)


def admit_custom_object(resource: ResourceType, new: Object, old: Object | None) -> Object:
    assert resource.schema is not None
    admitted, causes = admit(resource.schema, new, old)
    if causes:
        raise invalid(resource.kind, resource.group, new["metadata"].get("name", ""), causes)
    return admitted
