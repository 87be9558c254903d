"""Small CRDs for testing the fake: one with a status subresource and a schema worth validating."""

from __future__ import annotations

from typing import Any

GROUP = "fake.example.com"
API_VERSION = f"{GROUP}/v1"


def widget_crd(plural: str = "widgets", kind: str = "Widget", scope: str = "Namespaced",
               status_subresource: bool = True) -> dict[str, Any]:
    spec_schema = {
        "type": "object",
        "required": ["size"],
        "properties": {
            "size": {"type": "integer", "minimum": 1, "maximum": 10},
            "color": {"type": "string", "enum": ["red", "green", "blue"], "default": "red"},
            "handle": {"type": "string", "minLength": 2, "maxLength": 8, "pattern": "^[a-z]+$"},
            "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
            "port": {"x-kubernetes-int-or-string": True},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "note": {"type": "string", "nullable": True},
            "options": {"type": "object", "properties": {"fast": {"type": "boolean", "default": False}}},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                      "items": {"type": "object", "required": ["name"],
                                "properties": {"name": {"type": "string"}, "number": {"type": "integer"}}}},
            "owner": {"type": "string"},
        },
        "x-kubernetes-validations": [
            {"rule": "self.color != 'blue' || self.size >= 5", "message": "blue widgets must be at least size 5",
             "fieldPath": ".size"},
            {"rule": "!has(self.owner) || self.owner.startsWith('team-')",
             "messageExpression": "'owner ' + self.owner + ' must start with team-'", "fieldPath": ".owner"},
            {"rule": "self.size >= oldSelf.size", "message": "size may not shrink"},
        ],
    }
    version: dict[str, Any] = {
        "name": "v1", "served": True, "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
            "spec": spec_schema,
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        }}},
    }
    if status_subresource:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP, "scope": scope,
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List",
                      "shortNames": [plural[:3]], "categories": ["fakes"]},
            "versions": [version],
        },
    }


def widget(name: str, namespace: str | None, size: int = 3, kind: str = "Widget", **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": {"size": size, **spec}}
