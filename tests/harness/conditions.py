"""Assertions on metav1.Condition lists, with the whole status shown when they fail."""

from __future__ import annotations

from typing import Any

import pytest
import yaml


def find_condition(obj: dict[str, Any] | None, type: str) -> dict[str, Any] | None:
    for condition in ((obj or {}).get("status") or {}).get("conditions") or ():
        if condition.get("type") == type:
            return condition
    return None


def has_condition(obj: dict[str, Any] | None, type: str, status: str = "True", reason: str | None = None) -> bool:
    """A predicate for `kube.wait_for`: the condition is there with this status (and reason)."""
    condition = find_condition(obj, type)
    return condition is not None and condition.get("status") == status and \
        (reason is None or condition.get("reason") == reason)


def assert_condition(obj: dict[str, Any] | None, type: str, status: str = "True",
                     reason: str | None = None) -> dict[str, Any]:
    """Fail unless `obj` has condition `type` with `status` (and `reason`); returns the condition."""
    if not has_condition(obj, type, status, reason):
        want = f"{type}={status}" + (f" (reason {reason})" if reason else "")
        shown = yaml.safe_dump((obj or {}).get("status"), sort_keys=False)
        pytest.fail(f"expected condition {want}; status is:\n{shown}", pytrace=False)
    condition = find_condition(obj, type)
    assert condition is not None
    return condition


async def wait_for_condition(kube: Any, api_version: str, kind: str, name: str, namespace: str,
                             predicate: Any = None, *, type: str | None = None, status: str = "True",
                             reason: str | None = None, timeout: float = 30) -> dict[str, Any]:
    """Wait until the object has condition `type` = `status` (and `reason`) and satisfies `predicate`."""

    def ready(obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        if type is not None and not has_condition(obj, type, status, reason):
            return False
        return predicate is None or bool(predicate(obj))

    what = f"condition {type}={status}" + (f" ({reason})" if reason else "") if type else "the predicate"
    found = await kube.wait_for(api_version, kind, name, namespace, ready, timeout=timeout, what=what)
    assert found is not None
    return found
