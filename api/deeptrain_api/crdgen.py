"""Generate the CustomResourceDefinitions from the API models: `python -m deeptrain_api.crdgen`.

With `--write DIR` the files of crds/ are rewritten; without, the multi-document YAML is printed
(what `deeptrain crds` prints).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from . import job, workflow
from .common import GROUP, VERSION
from .openapi import JsonSchema, structural_schema

CATEGORY = "deeptrain"


def _column(name: str, json_path: str, type_: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "jsonPath": json_path, "description": description, **extra}


_AGE = _column("Age", ".metadata.creationTimestamp", "date", "Time since creation.")

_KINDS: list[dict[str, Any]] = [
    {
        "model": job.DeepTrainingJob,
        "kind": job.KIND,
        "plural": job.PLURAL,
        "short": "dtj",
        "columns": [
            _column("Type", ".spec.modelType", "string", "Model type."),
            _column("Template", ".spec.template", "string", "Architecture."),
            _column("Phase", ".status.phase", "string", "Lifecycle phase."),
            _column("Progress", ".status.progress.percent", "integer", "Percent of training steps done."),
            _column("Metric", ".status.metric", "string", "Primary metric of the latest evaluation."),
            _AGE,
        ],
    },
    {
        "model": workflow.Workflow,
        "kind": workflow.KIND,
        "plural": workflow.PLURAL,
        "short": "dwf",
        "columns": [
            _column("Default", ".spec.default", "boolean", "The namespace's default workflow."),
            _column("Phase", ".status.phase", "string", "Lifecycle phase."),
            _column("Endpoint", ".status.endpoint", "string", "Inference service URL."),
            _AGE,
        ],
    },
]


def root_schema(model: type[BaseModel]) -> JsonSchema:
    """The openAPIV3Schema of a kind: its model's structural schema with the apiserver's own metadata."""
    schema = structural_schema(model, override={
        "apiVersion": {"type": "string", "description": "deeptrain.dev/v1alpha1"},
        "kind": {"type": "string", "description": model.__name__},
        # The apiserver validates metadata itself; a CRD may only say that it is an object.
        "metadata": {"type": "object"},
    })
    schema["required"] = ["spec"]
    return schema


def crd_objects() -> list[dict[str, Any]]:
    """One CustomResourceDefinition per kind, in a fixed order."""
    crds = []
    for spec in _KINDS:
        kind, plural = spec["kind"], spec["plural"]
        crds.append({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {
                "name": f"{plural}.{GROUP}",
                "labels": {"app.kubernetes.io/name": "deeptrain", "app.kubernetes.io/part-of": "deeptrain"},
            },
            "spec": {
                "group": GROUP,
                "names": {
                    "kind": kind,
                    "listKind": f"{kind}List",
                    "plural": plural,
                    "singular": kind.lower(),
                    "shortNames": [spec["short"]],
                    "categories": [CATEGORY],
                },
                "scope": "Namespaced",
                "versions": [{
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": spec["columns"],
                    "schema": {"openAPIV3Schema": root_schema(spec["model"])},
                }],
            },
        })
    return crds


def schema_for(kind: str) -> JsonSchema:
    """The openAPIV3Schema of `kind` (DeepTrainingJob or Workflow)."""
    for spec in _KINDS:
        if spec["kind"] == kind:
            return root_schema(spec["model"])
    raise KeyError(kind)


def crd_filename(crd: dict[str, Any]) -> str:
    return f"{crd['spec']['group']}_{crd['spec']['names']['plural']}.yaml"


def render_crd(crd: dict[str, Any]) -> str:
    return "---\n" + yaml.safe_dump(crd, sort_keys=False, width=120, allow_unicode=True)


def render_crds() -> str:
    """Every CRD as one multi-document YAML stream (the concatenation of the files in crds/)."""
    return "".join(render_crd(crd) for crd in crd_objects())


def write_crds(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for crd in crd_objects():
        path = directory / crd_filename(crd)
        path.write_text(render_crd(crd))
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write"] and len(argv) == 2:
        for path in write_crds(Path(argv[1])):
            print(path)
        return 0
    if argv:
        print("usage: python -m deeptrain_api.crdgen [--write DIR]", file=sys.stderr)
        return 2
    sys.stdout.write(render_crds())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
