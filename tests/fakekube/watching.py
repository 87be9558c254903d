"""Watch events and the per-stream queues that deliver them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ResourceKey = tuple[str, str]  # (group, plural): the fake keeps one version of each resource


@dataclass(frozen=True)
class Change:
    """One committed write, as the history and watches see it."""

    resource_version: int
    resource: ResourceKey
    namespace: str
    type: str  # ADDED | MODIFIED | DELETED
    object: dict[str, Any]
    previous: dict[str, Any] | None = None


# Put on a watcher's queue to end its stream (server shutdown, fault injection, timeout).
CLOSE = object()


class Watcher:
    """One open watch stream: which objects it wants, and a queue of events to send."""

    def __init__(self, resource: ResourceKey, namespace: str | None,
                 matches: Callable[[dict[str, Any]], bool]) -> None:
        self.resource = resource
        self.namespace = namespace
        self.matches = matches
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def offer(self, change: Change) -> None:
        """Queue the event this stream sees for a change, if any.

        A modification that moves an object into or out of the selector arrives as ADDED or DELETED,
        as it does from the real server.
        """
        if change.resource != self.resource:
            return
        if self.namespace is not None and change.namespace != self.namespace:
            return
        now = self.matches(change.object)
        before = change.previous is not None and self.matches(change.previous)
        if change.type == "MODIFIED":
            if now and not before:
                self.queue.put_nowait(("ADDED", change.object))
            elif before and not now:
                self.queue.put_nowait(("DELETED", change.object))
            elif now:
                self.queue.put_nowait(("MODIFIED", change.object))
        elif now:
            self.queue.put_nowait((change.type, change.object))

    def close(self) -> None:
        self.queue.put_nowait(CLOSE)
