"""In-memory object storage with the API server's write semantics (the "registry" of a real server).

One global ``resourceVersion`` counter orders every write, like etcd's revision. Writes apply the
strategies every real resource has: uid/creationTimestamp on create, ``generation`` bumped on
spec changes only, status subresource separate from the main resource, optimistic concurrency
(409 on a stale ``resourceVersion``), finalizers and ``deletionTimestamp`` (graceful deletion
until the last finalizer goes), and the ``orphan``/``foregroundDeletion`` finalizers that
propagation policies add. Each committed write becomes one ``WatchEvent``.

Like etcd, the store refuses an object larger than etcd's default ``--max-request-bytes``
(1.5 MiB), measured as compact JSON (how custom resources are stored; built-in objects, stored as
protobuf by a real server, are measured the same way here, which overestimates them a little). As
the API server does, a create or update that etcd refuses is tried once more without
``managedFields``; then it fails with a 500 ``etcdserver: request is too large``.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from deepseek_operator.testing.apierrors import ApiError
from deepseek_operator.testing.fielderrors import ErrorType, FieldError
from deepseek_operator.testing.resources import Registry, ResourceType
from deepseek_operator.testing.selectors import FieldSelector, LabelSelector

__all__ = ["MAX_STORED_OBJECT_BYTES", "Admission", "Store", "WatchEvent", "rfc3339", "stored_size"]

# (resource type, new object, old object or None, strict field validation) -> warnings.
# It may rewrite the new object (pruning, defaults) and raises ApiError to refuse it.
Admission = Callable[[ResourceType, dict[str, Any], dict[str, Any] | None, bool], list[str]]

MAX_STORED_OBJECT_BYTES = 1536 * 1024
"""etcd's default ``--max-request-bytes`` (1.5 MiB): larger writes get "etcdserver: request is too large"."""
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
_SERVER_META = ("uid", "creationTimestamp", "resourceVersion", "generation", "deletionTimestamp")


@dataclass(frozen=True)
class WatchEvent:
    """One committed change: ``type`` is ADDED/MODIFIED/DELETED; ``old`` is the previous state."""

    type: str
    key: str
    namespace: str
    obj: dict[str, Any]
    old: dict[str, Any] | None
    rv: int


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def stored_size(obj: Any) -> int:
    """Bytes of an object as compact JSON (UTF-8)."""
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _fit_in_etcd(obj: dict[str, Any], *, retry_without_managed_fields: bool) -> None:
    """Refuse an object etcd would refuse; the API server's one retry drops ``managedFields``
    (not for server-side apply, whose managed fields are the point)."""
    if stored_size(obj) <= MAX_STORED_OBJECT_BYTES:
        return
    if retry_without_managed_fields:
        obj["metadata"].pop("managedFields", None)
        if stored_size(obj) <= MAX_STORED_OBJECT_BYTES:
            return
    raise ApiError.etcd_request_too_large()


def _spec_of(obj: dict[str, Any], with_status: bool) -> dict[str, Any]:
    """What ``generation`` counts: everything but metadata (and status, when it is a subresource)."""
    return {k: v for k, v in obj.items() if k != "metadata" and not (with_status and k == "status")}


class Store:
    """Objects by storage key, namespace and name; all methods run on the server's event loop."""

    def __init__(
        self,
        registry: Registry,
        clock: Callable[[], datetime],
        publish: Callable[[WatchEvent], None],
        admit: Admission,
    ) -> None:
        self.registry = registry
        self._clock = clock
        self._publish = publish
        self._admit = admit
        self.rv = 1
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self.uids: dict[str, tuple[str, str, str]] = {}

    # --- reads -----------------------------------------------------------------------------

    def find(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects.get(rt.key, {}).get((namespace, name))

    def get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.find(rt, namespace, name)
        if obj is None:
            raise ApiError.not_found(rt, name)
        return self.present(rt, obj)

    def present(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """A copy of a stored object as read through ``rt``'s version."""
        out = copy.deepcopy(obj)
        out["apiVersion"] = rt.api_version
        return out

    def items(self, key: str, namespace: str = "") -> Iterator[dict[str, Any]]:
        """Stored objects (not copies) of one storage key, optionally in one namespace."""
        for (ns, _), obj in list(self._objects.get(key, {}).items()):
            if not namespace or ns == namespace:
                yield obj

    def all_items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for key, objects in list(self._objects.items()):
            for obj in list(objects.values()):
                yield key, obj

    def select(
        self, rt: ResourceType, namespace: str, labels: LabelSelector, fields: FieldSelector
    ) -> tuple[list[dict[str, Any]], int]:
        out = [
            self.present(rt, obj)
            for obj in self.items(rt.key, namespace)
            if labels.matches(obj["metadata"].get("labels")) and fields.matches(obj)
        ]
        out.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return out, self.rv

    # --- writes ----------------------------------------------------------------------------

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def _now(self) -> str:
        return rfc3339(self._clock())

    def _commit(
        self, rt: ResourceType, kind: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> dict[str, Any]:
        rv = self._next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        meta = obj["metadata"]
        namespace = meta.get("namespace", "")
        bucket = self._objects.setdefault(rt.key, {})
        if kind == "DELETED":
            bucket.pop((namespace, meta["name"]), None)
            self.uids.pop(meta["uid"], None)
        else:
            bucket[(namespace, meta["name"])] = obj
            self.uids[meta["uid"]] = (rt.key, namespace, meta["name"])
        self._publish(WatchEvent(kind, rt.key, namespace, copy.deepcopy(obj), old, rv))
        return self.present(rt, obj)

    def create(
        self,
        rt: ResourceType,
        namespace: str,
        body: dict[str, Any],
        *,
        dry_run: bool = False,
        strict: bool = False,
        apply: bool = False,
    ) -> tuple[dict[str, Any], list[str]]:
        """Store a new object; ``apply``: the write is a server-side apply (see ``_fit_in_etcd``)."""
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        for name in _SERVER_META:
            meta.pop(name, None)
        if rt.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = str(meta.get("name") or "")
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        if rt.status:
            obj.pop("status", None)  # status is written through its subresource only
        warnings = self._admit(rt, obj, None, strict)
        if self.find(rt, namespace if rt.namespaced else "", name) is not None:
            raise ApiError.already_exists(rt, name)
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self._now()
        if rt.generation:
            meta["generation"] = 1
        if dry_run:
            return self.present(rt, obj), warnings
        _fit_in_etcd(obj, retry_without_managed_fields=not apply)
        return self._commit(rt, "ADDED", obj, None), warnings

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: dict[str, Any],
        *,
        subresource: str = "",
        dry_run: bool = False,
        strict: bool = False,
        apply: bool = False,
    ) -> tuple[dict[str, Any], list[str]]:
        """PUT semantics: optimistic concurrency on ``metadata.resourceVersion`` when it is given;
        ``apply``: the write is a server-side apply (see ``_fit_in_etcd``)."""
        current = self.find(rt, namespace, name)
        if current is None:
            raise ApiError.not_found(rt, name)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise ApiError.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        given_rv = meta.get("resourceVersion")
        if given_rv and given_rv != current["metadata"]["resourceVersion"]:
            raise ApiError.stale(rt, name)
        if not given_rv and rt.crd:
            raise ApiError.invalid(
                rt,
                name,
                [
                    FieldError(
                        ErrorType.INVALID, "metadata.resourceVersion", "must be specified for an update", 0
                    )
                ],
            )
        obj = self._prepare_update(rt, current, obj, subresource)
        if obj == current:
            return self.present(rt, current), []
        warnings = self._admit(rt, obj, current, strict)
        old = copy.deepcopy(current)
        if rt.generation and _spec_of(obj, rt.status) != _spec_of(current, rt.status):
            obj["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        if dry_run:
            return self.present(rt, obj), warnings
        _fit_in_etcd(obj, retry_without_managed_fields=not apply)
        meta = obj["metadata"]
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not self._namespace_pending(rt, obj)
        ):
            return self._commit(rt, "DELETED", obj, old), warnings
        return self._commit(rt, "MODIFIED", obj, old), warnings

    def _prepare_update(
        self, rt: ResourceType, current: dict[str, Any], obj: dict[str, Any], subresource: str
    ) -> dict[str, Any]:
        """Keep what this write may not change: server metadata, and spec or status by subresource."""
        if subresource == "status":
            merged = copy.deepcopy(current)
            if "status" in obj:
                merged["status"] = obj["status"]
            else:
                merged.pop("status", None)
            if "managedFields" in obj["metadata"]:
                merged["metadata"]["managedFields"] = obj["metadata"]["managedFields"]
            return merged
        meta = obj["metadata"]
        old_meta = current["metadata"]
        for name in (
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            if name in old_meta:
                meta[name] = old_meta[name]
            else:
                meta.pop(name, None)
        if "managedFields" not in meta and "managedFields" in old_meta:
            meta["managedFields"] = old_meta["managedFields"]
        meta["name"] = old_meta["name"]
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if rt.namespaced:
            meta["namespace"] = old_meta["namespace"]
        obj["apiVersion"], obj["kind"] = current["apiVersion"], current["kind"]
        if rt.status:
            if "status" in current:
                obj["status"] = copy.deepcopy(current["status"])
            else:
                obj.pop("status", None)
        if old_meta.get("deletionTimestamp"):
            new = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if new:
                raise ApiError.invalid(
                    rt,
                    old_meta["name"],
                    [
                        FieldError(
                            ErrorType.FORBIDDEN,
                            "metadata.finalizers",
                            "no new finalizers can be added if the object is being deleted, "
                            f"found new finalizers {sorted(new)}",
                        )
                    ],
                )
        return obj

    def _namespace_pending(self, rt: ResourceType, obj: dict[str, Any]) -> bool:
        return rt.key == "/namespaces" and bool((obj.get("spec") or {}).get("finalizers"))

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        propagation: str = "",
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Delete now, or mark deleting (``deletionTimestamp``) while finalizers remain."""
        current = self.find(rt, namespace, name)
        if current is None:
            raise ApiError.not_found(rt, name)
        preconditions = preconditions or {}
        if preconditions.get("uid") and preconditions["uid"] != current["metadata"]["uid"]:
            raise ApiError.conflict(
                rt,
                name,
                f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                f"UID in object meta: {current['metadata']['uid']}",
            )
        if (
            preconditions.get("resourceVersion")
            and preconditions["resourceVersion"] != current["metadata"]["resourceVersion"]
        ):
            raise ApiError.conflict(
                rt,
                name,
                f"Precondition failed: ResourceVersion in precondition: {preconditions['resourceVersion']}, "
                f"ResourceVersion in object meta: {current['metadata']['resourceVersion']}",
            )
        obj = copy.deepcopy(current)
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if propagation == "Foreground" and FOREGROUND not in finalizers:
            finalizers.append(FOREGROUND)
        elif propagation == "Orphan" and ORPHAN not in finalizers:
            finalizers.append(ORPHAN)
        if rt.key == "/namespaces":
            obj.setdefault("status", {})["phase"] = "Terminating"
        if dry_run:
            return self.present(rt, obj)
        if finalizers or self._namespace_pending(rt, obj):
            if meta.get("deletionTimestamp") and finalizers == list(meta.get("finalizers") or []):
                return self.present(rt, current)
            meta["finalizers"] = finalizers
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = self._now()
                meta["deletionGracePeriodSeconds"] = 0
                if rt.generation:
                    meta["generation"] = int(meta.get("generation", 1)) + 1
            return self._commit(rt, "MODIFIED", obj, copy.deepcopy(current))
        return self._commit(rt, "DELETED", obj, copy.deepcopy(current))

    def namespace_state(self, namespace: str) -> str:
        """``Active``, ``Terminating`` or ``""`` (absent): where namespaced objects may be created."""
        rt = self.registry.get("", "v1", "namespaces")
        assert rt is not None
        ns = self.find(rt, "", namespace)
        if ns is None:
            return ""
        return "Terminating" if ns["metadata"].get("deletionTimestamp") else "Active"
