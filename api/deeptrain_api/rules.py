"""CEL validation rules (x-kubernetes-validations) for the CRD schemas, most of them derived from the catalog.

Rules stay within the CEL subset that both the apiserver and cel-python evaluate: has(), in, size(),
all/exists, ternaries, string matches(). Messages name the field and say how to fix it, because
they are what `kubectl apply` prints.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import catalog

Rule = dict[str, Any]

# Phases in which pods exist or are about to: the spec they were built from must not change under them.
ACTIVE_PHASES = ("Created", "Queued", "Running", "Restarting")

URI_PATTERN = (
    r"^(pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?|file://.+|s3://[^/]+(/.*)?|gs://[^/]+(/.*)?|https?://[^/]+(/.*)?)$"
)
URI_RULE: Rule = {
    "rule": f"self.matches('{URI_PATTERN}')",
    "message": "must be pvc://CLAIM/PATH, file://PATH, s3://BUCKET/PATH, gs://BUCKET/PATH or https://HOST/PATH",
}


# Pod hostnames are <name>-<attempt>-<index> and must stay DNS labels (63 characters).
MAX_JOB_NAME_LENGTH = 50


def cel_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


def count_present(fields: Iterable[str]) -> str:
    return " + ".join(f"(has(self.{name}) ? 1 : 0)" for name in fields)


def exactly_one(fields: tuple[str, ...], where: str) -> Rule:
    names = " or ".join(fields) if len(fields) == 2 else ", ".join(fields)
    return {"rule": f"{count_present(fields)} == 1", "message": f"{where}: give exactly one of {names}"}


def template_offered() -> Rule:
    """spec.template must be one of the templates the catalog offers for spec.modelType."""
    offered = " || ".join(
        f"(self.modelType == '{mt.name}' && self.template in {cel_list(mt.templates)})"
        for mt in catalog.MODEL_TYPES.values()
    )
    choices = ", ".join(f"'{mt.name}': '{', '.join(mt.templates)}'" for mt in catalog.MODEL_TYPES.values())
    return {
        "rule": offered,
        "messageExpression": (
            "'spec.template ' + self.template + ' is not offered for ' + self.modelType"
            f" + '; use one of: ' + {{{choices}}}[self.modelType]"
        ),
        "message": "spec.template is not offered for spec.modelType; pick a template of that model type",
        "fieldPath": ".template",
    }


def hyperparameters_for_model_type() -> list[Rule]:
    """One rule per hyperparameter that only some model types use."""
    every_type = set(catalog.MODEL_TYPES)
    rules: list[Rule] = []
    for hp in catalog.HYPERPARAMETERS.values():
        if hp.model_types >= every_type:
            continue
        types = [name for name in catalog.MODEL_TYPES if name in hp.model_types]
        rules.append({
            "rule": f"!has(self.hyperparameters) || !has(self.hyperparameters.{hp.name})"
                    f" || self.modelType in {cel_list(types)}",
            "messageExpression": f"'spec.hyperparameters.{hp.name} applies only to {', '.join(types)}"
                                 f"; remove it for ' + self.modelType",
            "message": f"spec.hyperparameters.{hp.name} applies only to {', '.join(types)}; remove it",
            "fieldPath": f".hyperparameters.{hp.name}",
        })
    return rules


def batch_divides_over_processes() -> Rule:
    """The global batch splits evenly over workers x nprocPerNode, when both are integers at admission
    ("auto" depends on the pods' resources: the operator checks those jobs before creating pods)."""
    defaults = "{" + ", ".join(f"'{mt.name}': {mt.defaults['batch_size']}" for mt in catalog.MODEL_TYPES.values()) + "}"
    batch = (f"(has(self.hyperparameters) && has(self.hyperparameters.batch_size)"
             f" ? self.hyperparameters.batch_size : {defaults}[self.modelType])")
    workers = "(has(self.workers) ? self.workers : 1)"
    processes = f"({workers} * self.nprocPerNode)"
    return {
        # Invalid counts (< 1) are their own fields' errors, not this rule's.
        "rule": f"!has(self.nprocPerNode) || type(self.nprocPerNode) != int || self.nprocPerNode < 1"
                f" || {workers} < 1 || {batch} % {processes} == 0",
        "messageExpression": (
            f"'spec.hyperparameters.batch_size ' + string({batch}) + ' (the global batch) must be a multiple of the '"
            f" + string({processes}) + ' training processes (workers x nprocPerNode); change batch_size, workers"
            " or nprocPerNode'"),
        "message": "spec.hyperparameters.batch_size (the global batch) must be a multiple of workers x nprocPerNode; "
                   "change batch_size, workers or nprocPerNode",
        "fieldPath": ".hyperparameters.batch_size",
    }


def at_most_one_learning_rate() -> Rule:
    keys = catalog.LEARNING_RATE_KEYS
    return {
        "rule": f"{count_present(keys)} <= 1",
        "message": f"spec.hyperparameters: give at most one of {', '.join(keys)}; remove the others",
    }


def unchanged(field: str, *, always_present: bool) -> str:
    """CEL: spec.<field> is the same in self and oldSelf, absent in both counting as the same.

    `field` may be one level deep ("scheduling.nodeSelector"); its parent must then be required or
    defaulted so that it exists on both sides.
    """
    if always_present:
        return f"self.spec.{field} == oldSelf.spec.{field}"
    parent, _, name = field.rpartition(".")
    new_parent, old_parent = ("self.spec", "oldSelf.spec") if not parent else (f"self.spec.{parent}", f"oldSelf.spec.{parent}")
    return (f"(has({new_parent}.{name}) == has({old_parent}.{name})"
            f" && (!has({new_parent}.{name}) || {new_parent}.{name} == {old_parent}.{name}))")


def name_fits_pod_hostnames() -> Rule:
    """Root rule on the object's name.

    Without a fieldPath: the apiserver accepts a fieldPath only to a field the CRD schema declares,
    and our schema leaves metadata to the apiserver. The error is reported at the object's root, so
    the message names the field.
    """
    return {"rule": f"size(self.metadata.name) <= {MAX_JOB_NAME_LENGTH}",
            "message": f"metadata.name must be at most {MAX_JOB_NAME_LENGTH} characters, to leave room for the "
                       "pods' hostnames (<name>-<attempt>-<index>); rename the job"}


def immutable_while_active(frozen_fields: dict[str, bool]) -> Rule:
    """Root rule: while pods exist for a spec, only runPolicy and the queue/priority may change.

    `frozen_fields` maps each spec field path to whether it is always present (required or defaulted).
    """
    phase = "oldSelf.status.phase"
    active = f"has(oldSelf.status) && has({phase}) && {phase} in {cel_list(ACTIVE_PHASES)}"
    same = " && ".join(unchanged(field, always_present=present) for field, present in frozen_fields.items())
    return {
        "rule": f"!({active}) || ({same})",
        "message": (
            f"spec fields other than runPolicy, scheduling.queueName and scheduling.priorityClassName cannot "
            f"change while the job is {', '.join(ACTIVE_PHASES)}; suspend the job (spec.runPolicy.suspend: true) "
            "or wait until it finishes (editing a finished job's spec starts a new training run)"
        ),
    }
