"""What kube-apiserver's own strategies do to built-in kinds on create and update (the parts clients see)."""

from __future__ import annotations

import itertools
from typing import Any

from .errors import invalid
from .resources import ResourceType

_cluster_ips = (f"10.96.{n // 250}.{n % 250 + 2}" for n in itertools.count(10))


def prepare_create(resource: ResourceType, obj: dict[str, Any]) -> None:
    """Server-set fields of a new object, in place."""
    key = (resource.group, resource.plural)
    if key == ("", "namespaces"):
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
    elif key == ("", "pods"):
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif key == ("", "services"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        if spec.get("clusterIP") != "None":
            spec.setdefault("clusterIP", next(_cluster_ips))
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("sessionAffinity", "None")
    elif key == ("batch", "jobs"):
        _default_job(obj)
    elif key == ("apps", "deployments"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)


def _default_job(job: dict[str, Any]) -> None:
    uid = job["metadata"]["uid"]
    name = job["metadata"]["name"]
    spec = job.setdefault("spec", {})
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", spec["parallelism"] if spec.get("completionMode") == "Indexed" else 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    if not spec.get("manualSelector"):
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        labels = spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {})
        labels.update({
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        })


def validate_update(resource: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Immutable fields of built-in kinds: a Job's selector and pod template (once it may have started)."""
    if (resource.group, resource.plural) != ("batch", "jobs"):
        return
    old_spec, new_spec = old.get("spec", {}), new.get("spec", {})
    causes = []
    if new_spec.get("selector") != old_spec.get("selector"):
        causes.append(_immutable("spec.selector"))
    if new_spec.get("completions") != old_spec.get("completions"):
        causes.append(_immutable("spec.completions"))
    never_started = old_spec.get("suspend") and not old.get("status", {}).get("startTime")
    if new_spec.get("template") != old_spec.get("template") and not never_started:
        causes.append(_immutable("spec.template"))
    if causes:
        raise invalid("Job", "batch", new["metadata"]["name"], causes)


def _immutable(field: str) -> dict[str, str]:
    return {"reason": "FieldValueInvalid", "message": "Invalid value: \"object\": field is immutable", "field": field}
