"""YAML read the way a manifest should be: bounded in size, no aliases, no duplicate keys, finite numbers.

PyYAML's safe loader still expands aliases (a 700-byte "billion laughs" document grows to gigabytes),
keeps the last of two equal keys without a word, and reads `.nan`/`.inf` as floats that range checks
then misreport. Kubernetes manifests need none of these, so each is refused with the line it is on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent

# A manifest is stored in etcd, whose objects are at most about 1.5 MiB; 1 MiB is ample for one file.
MAX_MANIFEST_BYTES = 1024 * 1024


class UnsafeYamlError(ValueError):
    """A document this loader refuses; str() is `line N: what; how to fix`."""


class _ManifestLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            raise UnsafeYamlError(f"line {event.start_mark.line + 1}: the alias *{event.anchor} is not accepted "
                                  "(aliases can expand without bound); write the value out in full")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:  # an unhashable key: the base constructor names it
                break
            if first != line:
                raise UnsafeYamlError(f"line {line}: duplicate key {key!r} (first given on line {first}); "
                                      "keep one of them")
        return super().construct_mapping(node, deep=deep)


def read_manifest_text(path: Path) -> str:
    """The file's text, read no further than the size limit; UnsafeYamlError when too big or not text."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise UnsafeYamlError(f"the file is larger than {MAX_MANIFEST_BYTES // 1024} KiB; "
                              "give a manifest of one or a few objects")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnsafeYamlError(f"byte {error.start} is not UTF-8 text (is it a binary file?); "
                              "give a YAML manifest") from None
    if "\0" in text:
        raise UnsafeYamlError("the file holds NUL bytes (is it a binary file?); give a YAML manifest")
    return text


def load_documents(text: str) -> list[Any]:
    """Every non-empty document of `text`; UnsafeYamlError or yaml.YAMLError naming the line."""
    return [doc for doc in yaml.load_all(text, Loader=_ManifestLoader) if doc is not None]


def non_finite_number(value: Any, path: str = "") -> tuple[str, str] | None:
    """(field path, what is wrong) of the first NaN or infinity in `value`, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "(document)", f"{value} is {'not a number' if math.isnan(value) else 'infinite'}"
    children = (value.items() if isinstance(value, dict)
                else enumerate(value) if isinstance(value, list) else ())
    for key, child in children:
        where = f"{path}[{key}]" if isinstance(value, list) else (f"{path}.{key}" if path else str(key))
        found = non_finite_number(child, where)
        if found is not None:
            return found
    return None
