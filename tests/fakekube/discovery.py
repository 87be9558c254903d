"""Discovery documents: what `kubectl api-resources` and kopf's resource scanning read."""

from __future__ import annotations

from typing import Any

from .resources import ResourceRegistry

SERVER_VERSION = {
    "major": "1", "minor": "31", "gitVersion": "v1.31.0-fakekube", "gitCommit": "0" * 40,
    "gitTreeState": "clean", "buildDate": "2024-08-13T00:00:00Z", "goVersion": "go1.22.5",
    "compiler": "gc", "platform": "linux/amd64",
}


def core_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{name}/{version}", "version": version} for version in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def group_list(registry: ResourceRegistry) -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(name, versions) for name, versions in registry.groups().items()]}


def group(registry: ResourceRegistry, name: str) -> dict[str, Any] | None:
    versions = registry.groups().get(name)
    if versions is None:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def resource_list(registry: ResourceRegistry, group_name: str, version: str) -> dict[str, Any] | None:
    resources = registry.in_group_version(group_name, version)
    if not resources:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group_name}/{version}" if group_name else version,
        "resources": [entry for resource in resources for entry in resource.discovery_entries()],
    }
