"""Read manifests from YAML and admit them as the cluster would: defaults, schema, CEL, then the models.

Used by `deeptrain validate` and `deeptrain run`; errors name the field the way `kubectl apply` does.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from . import structural
from .checks import job_name_problems, unknown_hyperparameters, validate_object
from .common import API_VERSION
from .crdgen import schema_for
from .job import DeepTrainingJob
from .workflow import Workflow
from .yaml_safety import UnsafeYamlError, load_documents, non_finite_number, read_manifest_text

ApiObject = DeepTrainingJob | Workflow
MODELS: dict[str, type[BaseModel]] = {DeepTrainingJob.__name__: DeepTrainingJob, Workflow.__name__: Workflow}

_FIXES = {
    structural.REQUIRED: "set it",
    structural.UNKNOWN_FIELD: "remove it or correct its spelling",
}


class ManifestError(ValueError):
    """A manifest that would not be admitted; str() is one line: `<field>: <what is wrong>; <how to fix>`."""

    def __init__(self, field: str, message: str, *, document: int | None = None, more: int = 0) -> None:
        self.field, self.message, self.document, self.more = field, message, document, more
        text = f"{field}: {message}"
        if document is not None:
            text = f"document {document}: {text}"
        if more:
            text += f" (and {more} more problem{'s' if more > 1 else ''})"
        # Keys and values quoted from the manifest may hold line breaks; the answer stays one line.
        super().__init__(text.replace("\r", "\\r").replace("\n", "\\n"))

    @classmethod
    def from_field_errors(cls, errors: list[structural.FieldError], document: int | None) -> ManifestError:
        first = errors[0]
        body = str(structural.FieldError("", first.type, first.value, first.message))
        if first.type in _FIXES:
            body += f"; {_FIXES[first.type]}"
        return cls(first.path or "(object)", body, document=document, more=len(errors) - 1)


@functools.cache
def _schema(kind: str) -> dict[str, Any]:
    return schema_for(kind)


def admit(document: Any, *, index: int | None = None) -> ApiObject:
    """One parsed YAML document as a model, or ManifestError naming the first problem."""
    if not isinstance(document, dict):
        raise ManifestError("(document)", "is not a mapping; write a Kubernetes object with apiVersion, kind, "
                                          "metadata and spec", document=index)
    kind = document.get("kind")
    if not isinstance(kind, str) or kind not in MODELS:
        raise ManifestError("kind", f"{kind!r} is not a deeptrain kind; use one of: {', '.join(MODELS)}",
                            document=index)
    if document.get("apiVersion") != API_VERSION:
        raise ManifestError("apiVersion", f"{document.get('apiVersion')!r} is not served; use {API_VERSION}",
                            document=index)
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        raise ManifestError("metadata.name", "Required value; give the object a name", document=index)
    if kind == DeepTrainingJob.__name__:
        # Checked before the schema: the apiserver reports its name rule at the object's root.
        problems = job_name_problems(str(metadata["name"]))
        if problems:
            raise ManifestError(*problems[0], document=index)

    schema = _schema(kind)
    defaulted = structural.apply_defaults(schema, document)
    errors = structural.validate(schema, defaulted, strict=True)
    if errors:
        raise ManifestError.from_field_errors(errors, index)
    if kind == DeepTrainingJob.__name__:
        problems = unknown_hyperparameters(defaulted["spec"].get("hyperparameters"))
        if problems:
            raise ManifestError(*problems[0], document=index, more=len(problems) - 1)
    try:
        obj = MODELS[kind].model_validate(structural.prune(schema, defaulted))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(object)"
        raise ManifestError(where, first["msg"], document=index, more=error.error_count() - 1) from None
    problems = validate_object(obj)  # type: ignore[arg-type]
    if problems:
        field, message = problems[0]
        raise ManifestError(field, message, document=index, more=len(problems) - 1)
    return obj  # type: ignore[return-value]


def load_objects(path: str | Path) -> list[ApiObject]:
    """Every object of a YAML file (one or more documents), each admitted; ManifestError on the first problem."""
    try:
        documents = load_documents(read_manifest_text(Path(path)))
    except UnsafeYamlError as error:
        raise ManifestError("(yaml)", str(error)) from None
    except yaml.YAMLError as error:
        raise ManifestError("(yaml)", f"{' '.join(str(error).split())}; fix the YAML syntax") from None
    except OSError as error:
        raise ManifestError("(file)", f"cannot be read ({error.strerror}); check the path") from None
    if not documents:
        raise ManifestError("(file)", "holds no objects; write a DeepTrainingJob or Workflow manifest")
    numbered = len(documents) > 1
    for i, document in enumerate(documents):
        found = non_finite_number(document)
        if found is not None:
            raise ManifestError(found[0], f"{found[1]}; give a finite number", document=i + 1 if numbered else None)
    return [admit(doc, index=i + 1 if numbered else None) for i, doc in enumerate(documents)]


def load_job(path: str | Path) -> DeepTrainingJob:
    """The one DeepTrainingJob of a manifest file."""
    objects = load_objects(path)
    jobs = [obj for obj in objects if isinstance(obj, DeepTrainingJob)]
    if len(jobs) != 1 or len(objects) != 1:
        raise ManifestError("kind", f"the file holds {len(jobs)} DeepTrainingJob(s) among {len(objects)} object(s); "
                                    "give a file with exactly one DeepTrainingJob")
    return jobs[0]
