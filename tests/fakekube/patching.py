"""The three PATCH flavours kube-apiserver accepts: JSON merge, JSON patch and strategic merge."""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError, bad_request, unsupported_media_type

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"

# Strategic merge keys of the list fields our objects use (from the Kubernetes API's patchMergeKey tags).
_STRATEGIC_LIST_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "name",
    "ports": "containerPort",
    "conditions": "type",
    "imagePullSecrets": "name",
}
# Lists of scalars whose strategic merge is a union (patchStrategy "merge").
_STRATEGIC_SET_LISTS = {"finalizers"}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Merge patch, except the known keyed lists merge item by item and finalizers merge as a set."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue  # directives such as $retainKeys are not needed by our clients
        current = result.get(key)
        if value is None:
            result.pop(key, None)
        elif key in _STRATEGIC_LIST_KEYS and isinstance(value, list) and isinstance(current, list):
            result[key] = _merge_keyed_list(current, value, _STRATEGIC_LIST_KEYS[key])
        elif key in _STRATEGIC_SET_LISTS and isinstance(value, list) and isinstance(current, list):
            result[key] = current + [item for item in value if item not in current]
        else:
            result[key] = strategic_merge_patch(current, value)
    return result


def _merge_keyed_list(current: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    merged = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            return copy.deepcopy(patch)  # not a keyed list after all: replace like a merge patch would
        position = next((i for i, old in enumerate(merged)
                         if isinstance(old, dict) and old.get(merge_key) == item[merge_key]), None)
        if item.get("$patch") == "delete":
            if position is not None:
                del merged[position]
        elif position is None:
            merged.append(copy.deepcopy(item))
        else:
            merged[position] = strategic_merge_patch(merged[position], item)
    return merged


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer: {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _container_and_key(document: Any, path: str) -> tuple[Any, str]:
    parts = _pointer(path)
    if not parts:
        raise bad_request("the root document cannot be the target of this operation")
    node = document
    for part in parts[:-1]:
        node = _child(node, part, path)
    return node, parts[-1]


def _child(node: Any, part: str, path: str) -> Any:
    try:
        if isinstance(node, list):
            return node[int(part)]
        return node[part]
    except (KeyError, IndexError, ValueError, TypeError):
        raise _unprocessable(f"doc is missing path: {path!r}") from None


def _unprocessable(message: str) -> ApiError:
    return ApiError(422, "Invalid", message)


def _get(document: Any, path: str) -> Any:
    node = document
    for part in _pointer(path):
        node = _child(node, part, path)
    return node


def _add(document: Any, path: str, value: Any) -> Any:
    if path == "":
        return copy.deepcopy(value)
    container, key = _container_and_key(document, path)
    if isinstance(container, list):
        index = len(container) if key == "-" else int(key)
        if not 0 <= index <= len(container):
            raise _unprocessable(f"index out of range in {path!r}")
        container.insert(index, copy.deepcopy(value))
    elif isinstance(container, dict):
        container[key] = copy.deepcopy(value)
    else:
        raise _unprocessable(f"doc is missing path: {path!r}")
    return document


def _remove(document: Any, path: str) -> Any:
    container, key = _container_and_key(document, path)
    try:
        if isinstance(container, list):
            del container[int(key)]
        else:
            del container[key]
    except (KeyError, IndexError, ValueError, TypeError):
        raise _unprocessable(f"unable to remove nonexistent key: {path!r}") from None
    return document


def json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902, applied atomically: a failing operation leaves the caller's document untouched."""
    if not isinstance(operations, list):
        raise bad_request("a JSON patch must be a list of operations")
    result = copy.deepcopy(document)
    for operation in operations:
        op, path = operation.get("op"), operation.get("path", "")
        if op == "add":
            result = _add(result, path, operation.get("value"))
        elif op == "remove":
            result = _remove(result, path)
        elif op == "replace":
            _get(result, path)  # replace requires the target to exist
            result = _add(_remove(result, path), path, operation.get("value")) if path else operation.get("value")
        elif op == "move":
            value = _get(result, operation["from"])
            result = _add(_remove(result, operation["from"]), path, value)
        elif op == "copy":
            result = _add(result, path, _get(result, operation["from"]))
        elif op == "test":
            if _get(result, path) != operation.get("value"):
                # What kube-apiserver answers for a failed test: a 422 that does not say which test failed.
                raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request", {})
        else:
            raise bad_request(f"unknown JSON patch operation: {op!r}")
    return result


def apply_patch(content_type: str, document: dict[str, Any], patch: Any) -> Any:
    media_type = content_type.split(";")[0].strip()
    if media_type == MERGE:
        return merge_patch(document, patch)
    if media_type == JSON_PATCH:
        return json_patch(document, patch)
    if media_type == STRATEGIC:
        return strategic_merge_patch(document, patch)
    raise unsupported_media_type(media_type)
