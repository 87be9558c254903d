"""The controllers kube-controller-manager runs that clients observe through the API:
the garbage collector (ownerReferences, foreground deletion) and the namespace controller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from .resources import ResourceType
from .store import FOREGROUND, Object, Store, owner_uids

# Background collection happens "soon after" the owner goes, like the real collector's queue.
SWEEP_DELAY_SECONDS = 0.05


class GarbageCollector:
    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        self._store = store
        self._loop = loop
        self._scheduled = False
        store.on_write(self.schedule)

    def schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_later(SWEEP_DELAY_SECONDS, self._sweep)

    def _sweep(self) -> None:
        self._scheduled = False
        self._collect_orphans()
        self._finish_foreground_deletions()
        self._empty_terminating_namespaces()

    def _collect_orphans(self) -> None:
        store = self._store
        live = {obj["metadata"]["uid"]: obj for _, obj in store.all_objects()}
        for resource, obj in self._current(store.all_objects()):
            owners = owner_uids(obj)
            if not owners or obj["metadata"].get("deletionTimestamp"):
                continue
            if all(uid not in live for uid in owners):
                store.delete_object(resource, obj, "Background")
            elif all(uid not in live or _deleting_in_foreground(live[uid]) for uid in owners):
                store.delete_object(resource, obj, "Foreground")

    def _finish_foreground_deletions(self) -> None:
        store = self._store
        for resource, obj in self._current(store.all_objects()):
            if _deleting_in_foreground(obj) and not store.has_dependents(obj["metadata"]["uid"]):
                store.remove_finalizer(resource, obj, FOREGROUND)

    def _empty_terminating_namespaces(self) -> None:
        store = self._store
        namespaces = store.registry.lookup("", "v1", "namespaces")
        assert namespaces is not None
        for namespace in store.objects(("", "namespaces")):
            if not namespace["metadata"].get("deletionTimestamp"):
                continue
            name = namespace["metadata"]["name"]
            contents = [(resource, obj) for resource, obj in store.all_objects()
                        if resource.namespaced and obj["metadata"].get("namespace") == name]
            for resource, obj in self._current(contents):
                store.delete_object(resource, obj, "Background")
            if not contents:
                store.remove_finalizer(namespaces, namespace, "kubernetes")


    def _current(self, snapshot: list[tuple[ResourceType, Object]]) -> Iterator[tuple[ResourceType, Object]]:
        """Walk a snapshot, skipping objects that earlier steps of this sweep changed or removed."""
        for resource, obj in snapshot:
            meta = obj["metadata"]
            current = self._store.find(resource, meta.get("namespace", ""), meta["name"])
            if current is not None and current["metadata"]["resourceVersion"] == meta["resourceVersion"]:
                yield resource, current


def _deleting_in_foreground(obj: Object) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp")) and FOREGROUND in (obj["metadata"].get("finalizers") or ())
