"""Questions both controllers ask of the child objects they own."""

from __future__ import annotations

from typing import Any

Manifest = dict[str, Any]


def controlled_by(obj: Manifest, uid: str | None) -> bool:
    """`obj` has a controlling ownerReference to the object with this uid."""
    return any(ref.get("controller") and ref.get("uid") == uid
               for ref in obj.get("metadata", {}).get("ownerReferences") or [])


def contains(actual: Any, wanted: Any) -> bool:
    """`wanted` is a subset of `actual` (the apiserver adds defaults around what we set)."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(contains(actual.get(key), value) for key, value in wanted.items())
    if isinstance(wanted, list):
        return isinstance(actual, list) and len(actual) == len(wanted) and \
            all(contains(a, w) for a, w in zip(actual, wanted, strict=True))
    return actual == wanted
