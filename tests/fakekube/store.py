"""The object store: kube-apiserver's write semantics over an in-memory dict.

Every method runs on the server's event loop and never awaits, so each request is atomic, and a
watch registered in one call sees exactly the changes committed after its snapshot.
"""

from __future__ import annotations

import base64
import collections
import copy
import datetime
import json
import random
import uuid
from collections.abc import Callable
from typing import Any

from . import builtin_rules, errors
from .admission import WriteOptions, admit_custom_object, check_unknown_fields
from .crd_validation import validate_crd
from .patching import apply_patch
from .resources import ResourceRegistry, ResourceType, resource_from_crd
from .watching import Change, ResourceKey, Watcher

Object = dict[str, Any]
Matcher = Callable[[Object], bool]

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
_SERVER_MANAGED_METADATA = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                            "generation", "resourceVersion", "name", "namespace", "selfLink")
# Random suffixes for generateName use the apiserver's alphabet (no vowels, no look-alike digits).
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(resource: ResourceType) -> ResourceKey:
    return resource.group, resource.plural


def _without(obj: Object, *fields: str) -> Object:
    return {k: v for k, v in obj.items() if k not in fields}


class Store:
    def __init__(self, registry: ResourceRegistry, history_limit: int = 10_000) -> None:
        self.registry = registry
        self._objects: dict[ResourceKey, dict[tuple[str, str], Object]] = collections.defaultdict(dict)
        self._resource_version = 0
        self._history: collections.deque[Change] = collections.deque(maxlen=history_limit)
        self._oldest_resumable = 0  # a watch may resume from any resourceVersion >= this
        # A custom resource's watch history starts when its CRD is established (the apiserver's watch cache).
        self._served_since: dict[ResourceKey, int] = {}
        self._watchers: set[Watcher] = set()
        self._after_write: Callable[[], None] = lambda: None
        self._create_initial_namespace("default")

    def on_write(self, callback: Callable[[], None]) -> None:
        """Called after every committed change (the garbage collector uses it to schedule a sweep)."""
        self._after_write = callback

    @property
    def resource_version(self) -> int:
        return self._resource_version

    # ---- reads -------------------------------------------------------------------------------------

    def get(self, resource: ResourceType, namespace: str, name: str) -> Object:
        obj = self._objects[_key(resource)].get((namespace, name))
        if obj is None:
            raise errors.not_found(resource.plural, resource.group, name)
        return copy.deepcopy(obj)

    def find(self, resource: ResourceType, namespace: str, name: str) -> Object | None:
        return self._objects[_key(resource)].get((namespace, name))

    def list(self, resource: ResourceType, namespace: str | None, matches: Matcher,
             limit: int | None = None, continue_token: str | None = None) -> tuple[list[Object], int, str | None]:
        """Matching objects sorted by namespace/name, with the list's resourceVersion and a continue token."""
        list_rv, start_after = self._resource_version, None
        if continue_token:
            list_rv, start_after = self._decode_continue(continue_token)
        keys = sorted(k for k in self._objects[_key(resource)] if namespace is None or k[0] == namespace)
        if start_after is not None:
            keys = [k for k in keys if k > start_after]
        items = []
        for position, key in enumerate(keys):
            obj = self._objects[_key(resource)][key]
            if not matches(obj):
                continue
            if limit and len(items) == limit:
                return items, list_rv, self._encode_continue(list_rv, keys[position - 1])
            items.append(copy.deepcopy(obj))
        return items, list_rv, None

    @staticmethod
    def _encode_continue(resource_version: int, last: tuple[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps([resource_version, *last]).encode()).decode()

    @staticmethod
    def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
        try:
            resource_version, namespace, name = json.loads(base64.urlsafe_b64decode(token.encode()))
        except ValueError:
            raise errors.bad_request("invalid continue token") from None
        return int(resource_version), (namespace, name)

    def objects(self, resource_key: ResourceKey) -> list[Object]:
        return list(self._objects[resource_key].values())

    def all_objects(self) -> list[tuple[ResourceType, Object]]:
        result = []
        for resource in self.registry.all():
            result.extend((resource, obj) for obj in self._objects[_key(resource)].values())
        return result

    # ---- watches -----------------------------------------------------------------------------------

    def open_watch(self, resource: ResourceType, namespace: str | None, matches: Matcher,
                   since: str | None) -> Watcher:
        """A watcher pre-loaded with the events after `since` (or the current state as ADDED events)."""
        watcher = Watcher(_key(resource), namespace, matches)
        if since in (None, "", "0"):
            for obj in self.list(resource, namespace, matches)[0]:
                watcher.queue.put_nowait(("ADDED", obj))
        else:
            try:
                since_rv = int(since)
            except ValueError:
                raise errors.bad_request(f"invalid resourceVersion: {since!r}") from None
            oldest = max(self._oldest_resumable, self._served_since.get(_key(resource), 0))
            if since_rv < oldest:
                raise errors.gone(f"too old resource version: {since_rv} ({oldest})")
            for change in self._history:
                if change.resource_version > since_rv:
                    watcher.offer(change)
        self._watchers.add(watcher)
        return watcher

    def close_watch(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def cut_watches(self) -> int:
        watchers, self._watchers = self._watchers, set()
        for watcher in watchers:
            watcher.close()
        return len(watchers)

    def expire_history(self) -> None:
        """Forget every change so far: resuming a watch from any resourceVersion seen until now gets 410."""
        self._history.clear()
        self._resource_version += 1
        self._oldest_resumable = self._resource_version

    def _commit(self, resource: ResourceType, kind: str, obj: Object, previous: Object | None) -> None:
        change = Change(int(obj["metadata"]["resourceVersion"]), _key(resource),
                        obj["metadata"].get("namespace", ""), kind, copy.deepcopy(obj),
                        copy.deepcopy(previous) if previous is not None else None)
        if len(self._history) == self._history.maxlen:
            self._oldest_resumable = self._history[0].resource_version
        self._history.append(change)
        for watcher in list(self._watchers):
            watcher.offer(change)
        self._after_write()

    def _next_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    # ---- create ------------------------------------------------------------------------------------

    def _create_initial_namespace(self, name: str) -> None:
        namespaces = self.registry.lookup("", "v1", "namespaces")
        assert namespaces is not None
        self.create(namespaces, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def create(self, resource: ResourceType, namespace: str, body: Any, options: WriteOptions | None = None) -> Object:
        options = options or WriteOptions()
        obj = self._check_body(resource, namespace, body)
        check_unknown_fields(resource, obj, options)
        meta = obj["metadata"]
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise errors.invalid(resource.kind, resource.group, "", [{
                    "reason": "FieldValueRequired", "field": "metadata.name",
                    "message": "Required value: name or generateName is required"}])
            meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_SUFFIX_ALPHABET, k=5))
        name = meta["name"]
        if resource.namespaced:
            self._require_open_namespace(namespace)
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if (namespace, name) in self._objects[_key(resource)]:
            raise errors.already_exists(resource.plural, resource.group, name)
        for field in _SERVER_MANAGED_METADATA[:4]:
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if resource.tracks_generation:
            meta["generation"] = 1
        if resource.has_status:
            obj.pop("status", None)
        builtin_rules.prepare_create(resource, obj)
        if resource.schema is not None:
            obj = admit_custom_object(resource, obj, None)
        is_crd = _key(resource) == ("apiextensions.k8s.io", "customresourcedefinitions")
        if is_crd:
            self._check_crd(obj)
        if options.dry_run:
            return copy.deepcopy(obj)  # admitted, never stored: no resourceVersion, no event
        if is_crd:
            self._accept_crd(obj)
        meta = obj["metadata"]
        meta["resourceVersion"] = self._next_version()
        self._objects[_key(resource)][(namespace if resource.namespaced else "", name)] = obj
        self._commit(resource, "ADDED", obj, None)
        return copy.deepcopy(obj)

    def _check_body(self, resource: ResourceType, namespace: str, body: Any) -> Object:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        obj = copy.deepcopy(body)
        if obj.get("apiVersion", resource.api_version) != resource.api_version or \
                obj.get("kind", resource.kind) != resource.kind:
            raise errors.bad_request(f"the API version in the data ({obj.get('apiVersion')}) does not match the "
                                     f"expected API version ({resource.api_version})" if obj.get("apiVersion") !=
                                     resource.api_version else f"the kind in the data ({obj.get('kind')}) does not "
                                     f"match the expected kind ({resource.kind})")
        obj = {"apiVersion": resource.api_version, "kind": resource.kind,
               **{k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}}
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if resource.namespaced and meta.get("namespace") not in (None, "", namespace):
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent "
                                     "on the request")
        return obj

    def _require_open_namespace(self, namespace: str) -> None:
        ns = self._objects[("", "namespaces")].get(("", namespace))
        if ns is None:
            raise errors.not_found("namespaces", "", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(f"unable to create new content in namespace {namespace} because it is being "
                                   "terminated")

    # ---- update ------------------------------------------------------------------------------------

    def replace(self, resource: ResourceType, namespace: str, name: str, body: Any,
                subresource: str | None = None, options: WriteOptions | None = None) -> Object:
        old = self._existing(resource, namespace, name)
        new = self._check_body(resource, namespace, body)
        if new["metadata"].get("name", name) != name:
            raise errors.bad_request(f"the name of the object ({new['metadata'].get('name')}) does not match the "
                                     f"name on the URL ({name})")
        return self._write(resource, old, new, subresource, options or WriteOptions())

    def patch(self, resource: ResourceType, namespace: str, name: str, content_type: str, patch: Any,
              subresource: str | None = None, options: WriteOptions | None = None) -> Object:
        old = self._existing(resource, namespace, name)
        new = apply_patch(content_type, copy.deepcopy(old), patch)
        if not isinstance(new, dict):
            raise errors.bad_request("the patched object is not a JSON object")
        new = self._check_body(resource, namespace, new)
        return self._write(resource, old, new, subresource, options or WriteOptions())

    def _existing(self, resource: ResourceType, namespace: str, name: str) -> Object:
        obj = self._objects[_key(resource)].get((namespace if resource.namespaced else "", name))
        if obj is None:
            raise errors.not_found(resource.plural, resource.group, name)
        return obj

    def _write(self, resource: ResourceType, old: Object, new: Object, subresource: str | None,
               options: WriteOptions | None = None) -> Object:
        options = options or WriteOptions()
        check_unknown_fields(resource, new, options)
        name = old["metadata"]["name"]
        wanted_rv = new["metadata"].get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise errors.stale_version(resource.plural, resource.group, name)
        if subresource == "status":
            candidate = copy.deepcopy(old)
            if "status" in new:
                candidate["status"] = new["status"]
            else:
                candidate.pop("status", None)
        else:
            candidate = new
            if resource.has_status:
                candidate.pop("status", None)
                if "status" in old:
                    candidate["status"] = copy.deepcopy(old["status"])
            meta = candidate["metadata"]
            for field in _SERVER_MANAGED_METADATA:
                meta.pop(field, None)
                if field in old["metadata"]:
                    meta[field] = old["metadata"][field]
        self._check_finalizers(resource, old, candidate)
        builtin_rules.validate_update(resource, old, candidate)
        if resource.schema is not None:
            candidate = admit_custom_object(resource, candidate, old)
        if resource.tracks_generation and self._spec_changed(resource, old, candidate):
            candidate["metadata"]["generation"] = old["metadata"].get("generation", 0) + 1
        candidate["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if candidate == old:
            return copy.deepcopy(old)  # a no-op write is not a change: same resourceVersion, no event
        is_crd = _key(resource) == ("apiextensions.k8s.io", "customresourcedefinitions")
        if is_crd:
            self._check_crd(candidate)
        if options.dry_run:
            return copy.deepcopy(candidate)
        if is_crd:
            self._accept_crd(candidate)
        candidate["metadata"]["resourceVersion"] = self._next_version()
        key = (old["metadata"].get("namespace", ""), name)
        self._objects[_key(resource)][key] = candidate
        self._commit(resource, "MODIFIED", candidate, old)
        if candidate["metadata"].get("deletionTimestamp") and not self._finalizers(resource, candidate):
            self._remove(resource, candidate)
        return copy.deepcopy(candidate)

    @staticmethod
    def _spec_changed(resource: ResourceType, old: Object, new: Object) -> bool:
        ignored = ("metadata", "status") if resource.has_status else ("metadata",)
        return _without(old, *ignored) != _without(new, *ignored)

    @staticmethod
    def _check_finalizers(resource: ResourceType, old: Object, new: Object) -> None:
        if not old["metadata"].get("deletionTimestamp"):
            return
        added = set(new["metadata"].get("finalizers") or ()) - set(old["metadata"].get("finalizers") or ())
        if added:
            raise errors.invalid(resource.kind, resource.group, old["metadata"]["name"], [{
                "reason": "FieldValueForbidden", "field": "metadata.finalizers",
                "message": "Forbidden: no new finalizers can be added if the object is being deleted, found new "
                           f"finalizers {sorted(added)!r}"}])

    @staticmethod
    def _finalizers(resource: ResourceType, obj: Object) -> list[str]:
        finalizers = list(obj["metadata"].get("finalizers") or ())
        if _key(resource) == ("", "namespaces"):
            finalizers += obj.get("spec", {}).get("finalizers") or []
        return finalizers

    # ---- delete ------------------------------------------------------------------------------------

    def delete(self, resource: ResourceType, namespace: str, name: str, propagation: str | None = None,
               preconditions: dict[str, str] | None = None) -> Object:
        """Delete now, or mark for deletion while finalizers remain; returns the object's last state."""
        obj = self._existing(resource, namespace, name)
        for field, value in (preconditions or {}).items():
            if value and obj["metadata"].get(field) != value:
                why = (f"Precondition failed: {'UID' if field == 'uid' else 'ResourceVersion'} in precondition: "
                       f"{value}, {'UID' if field == 'uid' else 'ResourceVersion'} in object meta: "
                       f"{obj['metadata'].get(field)}")
                raise errors.conflict(resource.plural, resource.group, name, why)
        return self.delete_object(resource, obj, propagation or self._default_propagation(resource))

    @staticmethod
    def _default_propagation(resource: ResourceType) -> str:
        # batch/v1 Jobs keep the legacy default of orphaning their pods when no policy is given.
        return "Orphan" if (resource.group, resource.plural) == ("batch", "jobs") else "Background"

    def delete_object(self, resource: ResourceType, obj: Object, propagation: str) -> Object:
        if propagation not in ("Background", "Foreground", "Orphan"):
            raise errors.bad_request(f"unsupported propagationPolicy: {propagation!r}")
        if obj["metadata"].get("deletionTimestamp"):
            return copy.deepcopy(obj)
        if propagation == "Orphan":
            self._orphan_dependents(obj["metadata"]["uid"])
        finalizers = self._finalizers(resource, obj)
        if propagation == "Foreground":
            # Even without dependents: the garbage collector removes the finalizer, then the object.
            finalizers.append(FOREGROUND)
        if not finalizers:
            return self._remove(resource, obj)
        marked = copy.deepcopy(obj)
        meta = marked["metadata"]
        meta["deletionTimestamp"] = now_rfc3339()
        meta["deletionGracePeriodSeconds"] = 0
        if propagation == "Foreground":
            meta["finalizers"] = [*meta.get("finalizers", []), FOREGROUND]
        if _key(resource) == ("", "namespaces"):
            marked.setdefault("status", {})["phase"] = "Terminating"
        meta["resourceVersion"] = self._next_version()
        self._objects[_key(resource)][(meta.get("namespace", ""), meta["name"])] = marked
        self._commit(resource, "MODIFIED", marked, obj)
        return copy.deepcopy(marked)

    def _remove(self, resource: ResourceType, obj: Object) -> Object:
        meta = obj["metadata"]
        del self._objects[_key(resource)][(meta.get("namespace", ""), meta["name"])]
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = self._next_version()
        if _key(resource) == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._retire_crd(gone)
        self._commit(resource, "DELETED", gone, obj)
        return copy.deepcopy(gone)

    def remove_finalizer(self, resource: ResourceType, obj: Object, finalizer: str) -> None:
        patched = copy.deepcopy(obj)
        if _key(resource) == ("", "namespaces"):
            patched["spec"]["finalizers"] = [f for f in patched["spec"].get("finalizers", []) if f != finalizer]
        patched["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers", []) if f != finalizer]
        self._write(resource, obj, patched, None)

    def has_dependents(self, owner_uid: str) -> bool:
        return any(owner_uid in owner_uids(obj) for _, obj in self.all_objects())

    def _orphan_dependents(self, owner_uid: str) -> None:
        for resource, obj in self.all_objects():
            if owner_uid in owner_uids(obj):
                orphaned = copy.deepcopy(obj)
                orphaned["metadata"]["ownerReferences"] = [
                    ref for ref in obj["metadata"]["ownerReferences"] if ref.get("uid") != owner_uid]
                if not orphaned["metadata"]["ownerReferences"]:
                    del orphaned["metadata"]["ownerReferences"]
                self._write(resource, obj, orphaned, None)

    # ---- custom resource definitions ---------------------------------------------------------------

    @staticmethod
    def _check_crd(crd: Object) -> None:
        """Refuse a CRD the apiextensions server would refuse: its names, versions and schemas."""
        spec = crd.get("spec", {})
        name = crd["metadata"]["name"]
        expected = f"{spec.get('names', {}).get('plural')}.{spec.get('group')}"
        if name != expected:
            raise errors.invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, [{
                "reason": "FieldValueInvalid", "field": "metadata.name",
                "message": f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'}])
        if resource_from_crd(crd) is None:
            raise errors.invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, [{
                "reason": "FieldValueRequired", "field": "spec.versions",
                "message": "Required value: must have exactly one version marked as storage version"}])
        causes = validate_crd(crd)
        if causes:
            raise errors.invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, causes)

    def _accept_crd(self, crd: Object) -> None:
        """Serve the custom resource of a checked CRD and mark it Established."""
        spec = crd.get("spec", {})
        resource = resource_from_crd(crd)
        assert resource is not None
        previous = self.registry.lookup(resource.group, resource.version, resource.plural)
        if previous is None:
            for old in self.registry.all():
                if (old.group, old.plural) == (resource.group, resource.plural):
                    self.registry.remove(old)  # the storage version moved
            self._served_since[_key(resource)] = self._resource_version
        self.registry.add(resource)
        now = now_rfc3339()
        crd["status"] = {
            "acceptedNames": spec.get("names", {}),
            "storedVersions": [resource.version],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": now},
            ],
        }

    def _retire_crd(self, crd: Object) -> None:
        resource = resource_from_crd(crd)
        if resource is None:
            return
        self._served_since.pop(_key(resource), None)
        self.registry.remove(resource)
        instances = self._objects.pop((resource.group, resource.plural), {})
        for obj in instances.values():
            gone = copy.deepcopy(obj)
            gone["metadata"]["resourceVersion"] = self._next_version()
            self._commit(resource, "DELETED", gone, obj)


def owner_uids(obj: Object) -> set[str]:
    """The uids an object names as its owners."""
    return {ref.get("uid") for ref in obj["metadata"].get("ownerReferences") or ()}
