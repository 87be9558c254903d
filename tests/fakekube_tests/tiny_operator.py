"""A minimal kopf operator for the fake's round-trip test: it reports each Widget's size in its status."""

from __future__ import annotations

from typing import Any

import kopf


@kopf.on.create("fake.example.com", "v1", "widgets")
@kopf.on.update("fake.example.com", "v1", "widgets", field="spec.size")
def report_size(spec: Any, patch: kopf.Patch, **_: Any) -> None:
    patch.status["seenSize"] = spec["size"]


@kopf.on.delete("fake.example.com", "v1", "widgets")
def say_goodbye(name: str, logger: Any, **_: Any) -> None:
    logger.info(f"widget {name} is going")


@kopf.on.create("fake.example.com", "v1", "widgets", labels={"explode": "yes"})
def explode(**_: Any) -> None:
    raise RuntimeError("this handler has a bug")
