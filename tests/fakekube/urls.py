"""Parsing resource URLs: /api/v1/..., /apis/GROUP/VERSION/..., namespaced or not."""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass(frozen=True)
class ResourceUrl:
    group: str
    version: str
    plural: str
    namespace: str | None = None  # None: a cluster-scoped resource, or all namespaces
    name: str | None = None  # None: the collection
    subresource: str | None = None


def parse_resource_url(path: str) -> ResourceUrl | None:
    """The resource a path addresses, or None for paths that are not resource paths (discovery, unknown)."""
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in NAMESPACE_SUBRESOURCES):
        namespace, rest = rest[1], rest[2:]
    else:
        namespace = None
    if len(rest) > 3:
        return None
    plural, name, subresource = (rest + [None, None])[:3]  # type: ignore[list-item]
    return ResourceUrl(group, version, plural, namespace, name, subresource)
