"""Field types shared by DeepTrainingJob and Workflow: storage URIs, object names, dataset formats."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from . import catalog
from .common import NAME_MAX_LENGTH, URI_MAX_LENGTH
from .rules import URI_PATTERN, URI_RULE

_URI = re.compile(URI_PATTERN)
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _check_uri(value: str) -> str:
    if not _URI.match(value):
        raise ValueError(URI_RULE["message"])
    return value


def _check_object_name(value: str) -> str:
    if not _DNS_SUBDOMAIN.match(value):
        raise ValueError("must be a Kubernetes object name: lowercase letters, digits, '-' and '.'")
    return value


# The URI rule lives in CEL rather than `pattern` so that kubectl prints the accepted schemes, not a regex.
Uri = Annotated[
    str,
    Field(min_length=1, max_length=URI_MAX_LENGTH, json_schema_extra={"x-kubernetes-validations": [URI_RULE]}),
    AfterValidator(_check_uri),
]

ObjectName = Annotated[
    str,
    Field(min_length=1, max_length=NAME_MAX_LENGTH,
          pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
    AfterValidator(_check_object_name),
]

DatasetFormat = Literal[catalog.DATASET_FORMATS]  # type: ignore[valid-type]

VideoFrameRate = Annotated[
    float,
    Field(gt=0, le=catalog.MAX_VIDEO_FRAME_RATE,
          description=f"Frames per second sampled from each video file, (0, {catalog.MAX_VIDEO_FRAME_RATE:g}].")]
