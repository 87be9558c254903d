"""Checks every reader shares."""

from __future__ import annotations

import math
import posixpath
from collections.abc import Collection
from typing import Any

from .. import uris
from ..errors import DatasetError


def require_known_concept(concept: str, allowed: Collection[str] | None, location: str) -> None:
    if allowed is not None and concept not in allowed:
        raise DatasetError(location, f"concept {concept!r} is not one of spec.concepts ({', '.join(allowed)})",
                           "add it to spec.concepts or remove it from the dataset")


def fraction(value: Any, name: str, location: str) -> float:
    """A normalised coordinate: a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DatasetError(location, f"{name} must be a number in [0, 1] (got {value!r})",
                           "give coordinates normalised by the image's width and height")
    if not 0.0 <= value <= 1.0:
        raise DatasetError(location, f"{name} is outside [0, 1] (got {value:g})",
                           "give coordinates normalised by the image's width and height")
    return float(value)


def annotation_file(uri: str, extension: str, format_name: str) -> str:
    """`uri` itself when it names a file; the single `*{extension}` file in it when it names a folder."""
    resolved = uris.resolve_uri(uri)
    if not uris.is_dir(resolved):
        if not uris.exists(resolved):
            raise DatasetError(resolved, "not found", f"point dataset.uri at a {format_name} file or its folder")
        return resolved
    candidates = [name for name, is_dir in uris.list_dir(resolved) if not is_dir and name.endswith(extension)]
    if len(candidates) != 1:
        found = f"found {', '.join(candidates)}" if candidates else "found none"
        raise DatasetError(resolved, f"expected exactly one *{extension} file in this folder ({found})",
                           f"point dataset.uri at the {format_name} file itself")
    return uris.join_uri(resolved, posixpath.basename(candidates[0]))
