"""Kubernetes core shapes shared by the deeptrain kinds (subsets of metav1 / corev1).

Every string, list and map carries a size bound: the apiserver refuses CEL rules whose estimated
cost is unbounded, and the immutability rule compares whole spec subtrees.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

GROUP = "deeptrain.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

NAME_MAX_LENGTH = 253
LABEL_VALUE_MAX_LENGTH = 63
URI_MAX_LENGTH = 2048
MESSAGE_MAX_LENGTH = 32768
MAP_MAX_PROPERTIES = 64

# kube's resource.Quantity: an integer, or a string such as "500m", "16Gi", "1e3".
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
Quantity = Annotated[
    int | str,
    WithJsonSchema({
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": QUANTITY_PATTERN,
        "x-kubernetes-int-or-string": True,
    }),
]

# RFC 3339 timestamps stay strings so that what the apiserver stored round-trips byte for byte.
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]

ShortString = Annotated[str, Field(max_length=NAME_MAX_LENGTH)]
StringMap = Annotated[
    dict[str, Annotated[str, Field(max_length=NAME_MAX_LENGTH)]],
    Field(json_schema_extra={"maxProperties": MAP_MAX_PROPERTIES}),
]


class ApiModel(BaseModel):
    """Base of every API shape: attribute names are the manifest keys, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def to_dict(self) -> dict[str, Any]:
        """The manifest form: JSON types, unset optional fields left out."""
        return self.model_dump(mode="json", exclude_none=True)


class StatusModel(ApiModel):
    """Status is written by the operator and read back from the cluster; newer fields are ignored."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)


class ObjectMeta(BaseModel):
    """The metadata fields deeptrain reads; everything else the apiserver keeps is carried along."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    generateName: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    uid: str | None = None
    generation: int | None = None
    resourceVersion: str | None = None
    creationTimestamp: str | None = None
    deletionTimestamp: str | None = None
    finalizers: list[str] | None = None
    ownerReferences: list[dict[str, Any]] | None = None


class LocalObjectReference(ApiModel):
    """A reference to an object in the same namespace."""

    name: str = Field(min_length=1, max_length=NAME_MAX_LENGTH, description="Name of the referenced object.")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """One aspect of the object's state (the metav1.Condition shape)."""

    type: str = Field(max_length=316, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
                      description="Condition type in CamelCase, e.g. Running, Succeeded, Ready.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
                        description="CamelCase reason for the last transition, e.g. BackoffLimitExceeded.")
    message: str = Field(default="", max_length=MESSAGE_MAX_LENGTH, description="Human-readable details.")
    lastTransitionTime: Timestamp = Field(description="When status last changed.")
    observedGeneration: int | None = Field(default=None, ge=0,
                                           description="metadata.generation the condition was set for.")


class ResourceRequirements(ApiModel):
    """Compute resources of each worker pod, e.g. limits: {nvidia.com/gpu: 8}."""

    limits: dict[str, Quantity] | None = Field(default=None, json_schema_extra={"maxProperties": 32},
                                               description="Maximum resources per pod.")
    requests: dict[str, Quantity] | None = Field(default=None, json_schema_extra={"maxProperties": 32},
                                                 description="Minimum resources per pod; defaults to limits.")


class Toleration(ApiModel):
    """Lets the pods schedule onto nodes with a matching taint (core/v1 Toleration)."""

    key: str | None = Field(default=None, max_length=NAME_MAX_LENGTH)
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = Field(default=None, max_length=LABEL_VALUE_MAX_LENGTH)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None
