"""What the fake serves: built-in resource types, and custom ones registered from CRDs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
STATUS_VERBS = ["get", "patch", "update"]


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    has_status: bool = False
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # Schema of the served version, for custom resources only (admission).
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    # Generation counts spec changes for custom resources and for the built-in workloads.
    tracks_generation: bool = False
    # Served from a CRD (list items keep apiVersion/kind) rather than built in.
    custom: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> tuple[str, str]:
        return self.group, self.version

    def discovery_entries(self) -> list[dict[str, Any]]:
        main: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ALL_VERBS,
        }
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        if self.categories:
            main["categories"] = list(self.categories)
        entries = [main]
        if self.has_status:
            entries.append({"name": f"{self.plural}/status", "singularName": "", "namespaced": self.namespaced,
                            "kind": self.kind, "verbs": STATUS_VERBS})
        return entries


def _builtin(api_version: str, plural: str, kind: str, namespaced: bool = True, has_status: bool = False,
             short_names: tuple[str, ...] = (), categories: tuple[str, ...] = (),
             tracks_generation: bool = False) -> ResourceType:
    group, _, version = api_version.rpartition("/")
    return ResourceType(group=group, version=version, plural=plural, singular=kind.lower(), kind=kind,
                        namespaced=namespaced, has_status=has_status, short_names=short_names,
                        categories=categories, tracks_generation=tracks_generation)


BUILTIN_RESOURCES: tuple[ResourceType, ...] = (
    _builtin("v1", "namespaces", "Namespace", namespaced=False, has_status=True, short_names=("ns",)),
    _builtin("v1", "configmaps", "ConfigMap", short_names=("cm",)),
    _builtin("v1", "services", "Service", has_status=True, short_names=("svc",), categories=("all",)),
    _builtin("v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _builtin("v1", "pods", "Pod", has_status=True, short_names=("po",), categories=("all",)),
    _builtin("v1", "events", "Event", short_names=("ev",)),
    _builtin("v1", "secrets", "Secret"),
    _builtin("v1", "persistentvolumeclaims", "PersistentVolumeClaim", has_status=True, short_names=("pvc",)),
    _builtin("events.k8s.io/v1", "events", "Event", short_names=("ev",)),
    _builtin("batch/v1", "jobs", "Job", has_status=True, categories=("all",), tracks_generation=True),
    _builtin("apps/v1", "deployments", "Deployment", has_status=True, short_names=("deploy",),
             categories=("all",), tracks_generation=True),
    _builtin("rbac.authorization.k8s.io/v1", "roles", "Role"),
    _builtin("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    _builtin("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", namespaced=False),
    _builtin("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    _builtin("apiextensions.k8s.io/v1", "customresourcedefinitions", "CustomResourceDefinition",
             namespaced=False, has_status=True, short_names=("crd", "crds"), tracks_generation=True),
    _builtin("coordination.k8s.io/v1", "leases", "Lease"),
    _builtin("scheduling.x-k8s.io/v1alpha1", "podgroups", "PodGroup", has_status=True, short_names=("pg",)),
    _builtin("scheduling.volcano.sh/v1beta1", "podgroups", "PodGroup", has_status=True,
             short_names=("pg", "podgroup-v1beta1")),
)


def resource_from_crd(crd: dict[str, Any]) -> ResourceType | None:
    """The resource a CRD makes servable: its storage version (the one the fake keeps and serves)."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    versions = spec.get("versions", [])
    served = [v for v in versions if v.get("storage")] or [v for v in versions if v.get("served")]
    if not served or not names.get("plural"):
        return None
    version = served[0]
    return ResourceType(
        group=spec.get("group", ""),
        version=version["name"],
        plural=names["plural"],
        singular=names.get("singular") or names.get("kind", "").lower(),
        kind=names.get("kind", ""),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        has_status="status" in (version.get("subresources") or {}),
        short_names=tuple(names.get("shortNames", ())),
        categories=tuple(names.get("categories", ())),
        schema=(version.get("schema") or {}).get("openAPIV3Schema"),
        tracks_generation=True,
        custom=True,
    )


class ResourceRegistry:
    """Built-in types plus the ones CRDs add; lookups by URL parts and by apiVersion+kind."""

    def __init__(self) -> None:
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        for resource in BUILTIN_RESOURCES:
            self.add(resource)

    def add(self, resource: ResourceType) -> None:
        self._by_path[(resource.group, resource.version, resource.plural)] = resource

    def remove(self, resource: ResourceType) -> None:
        self._by_path.pop((resource.group, resource.version, resource.plural), None)

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for resource in self._by_path.values():
            if resource.group == group and resource.version == version and resource.kind == kind:
                return resource
        return None

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [r for r in self._by_path.values() if r.group == group and r.version == version]

    def groups(self) -> dict[str, list[str]]:
        """Named groups (not the legacy core group) and their versions, in registration order."""
        result: dict[str, list[str]] = {}
        for resource in self._by_path.values():
            if resource.group and resource.version not in result.setdefault(resource.group, []):
                result[resource.group].append(resource.version)
        return result

    def all(self) -> list[ResourceType]:
        return list(self._by_path.values())
