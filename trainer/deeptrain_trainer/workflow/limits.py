"""The serving process's limits: what one request may hold and how much work runs at once.

Each limit is a setting with a default, given as a command-line option or an environment variable
(`--max-image-pixels` / DEEPTRAIN_SERVE_MAX_IMAGE_PIXELS, ...). Together they bound the server's
memory, whatever the load: the idle server (models loaded) plus `concurrency` x (3 x
`max_body_bytes` + 4 bytes x `max_request_pixels`). A request in progress holds its body, the
parsed JSON and the decoded image bytes (about 3 x the body at worst) and its pixels (Pillow keeps
RGB in 4 bytes); requests beyond `concurrency` wait unread in a queue of `queue_depth`, and the
rest are turned away with 503.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ENV_PREFIX = "DEEPTRAIN_SERVE_"


@dataclass(frozen=True)
class ServeLimits:
    max_body_bytes: int = 64 * 1024 * 1024
    max_image_pixels: int = 100_000_000
    max_request_pixels: int = 100_000_000
    max_json_depth: int = 32
    concurrency: int = 2
    queue_depth: int = 32

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < MINIMUM[field.name]:
                raise ValueError(f"{option(field.name)} ({env_name(field.name)}): {value!r} must be an integer "
                                 f"of at least {MINIMUM[field.name]}")

    def describe(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def memory_bound(self, idle_bytes: int) -> int:
        """The most resident memory the server should reach, given what it holds when idle."""
        return idle_bytes + self.concurrency * (3 * self.max_body_bytes + 4 * self.max_request_pixels)


MINIMUM = {"max_body_bytes": 1024, "max_image_pixels": 1, "max_request_pixels": 1, "max_json_depth": 2,
           "concurrency": 1, "queue_depth": 0}
HELP = {
    "max_body_bytes": "Largest request body in bytes; a larger one is answered 413.",
    "max_image_pixels": "Most pixels (width x height) of one image, checked from its header before decoding; "
                        "a larger one is answered 413.",
    "max_request_pixels": "Most pixels of all the images of one request together; more is answered 413.",
    "max_json_depth": "Deepest nesting of arrays and objects in a JSON body; deeper is answered 400.",
    "concurrency": "Requests decoded and run at once; the others wait in the queue.",
    "queue_depth": "Requests that may wait for a free slot; beyond it the server answers 503 with Retry-After.",
}


def option(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def add_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str] = os.environ) -> None:
    """One option per limit, defaulting to its environment variable, else the built-in default."""
    defaults = ServeLimits()
    for field in dataclasses.fields(ServeLimits):
        fallback = getattr(defaults, field.name)
        parser.add_argument(option(field.name), dest=field.name, type=int,
                            default=env.get(env_name(field.name), fallback),  # a string default is parsed too
                            help=f"{HELP[field.name]} Default {fallback} ({env_name(field.name)}).")


def from_arguments(args: argparse.Namespace) -> ServeLimits:
    values: dict[str, Any] = {field.name: getattr(args, field.name) for field in dataclasses.fields(ServeLimits)}
    return ServeLimits(**values)
