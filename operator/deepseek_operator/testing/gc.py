"""The controllers a real control plane runs that tests rely on: garbage collection and namespaces.

Garbage collection follows owner references (docs: "Garbage Collection"): a dependent whose
owners are all gone is deleted in the background; dangling references beside live owners are
removed; an owner deleted with ``propagationPolicy=Foreground`` keeps its ``foregroundDeletion``
finalizer until its dependents are gone; ``Orphan`` strips the owner reference from dependents.
A deleted namespace's contents are deleted before the namespace itself goes.
Like the real controllers this runs asynchronously, shortly after the write that triggered it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from typing import Any

from deepseek_operator.testing.apierrors import ApiError
from deepseek_operator.testing.resources import ResourceType
from deepseek_operator.testing.store import FOREGROUND, ORPHAN, Store, WatchEvent

__all__ = ["Collector"]


class Collector:
    """Sweeps the store after writes that can leave work for the garbage collector."""

    def __init__(self, store: Store, delay_s: float = 0.01) -> None:
        self._store = store
        self._delay_s = delay_s
        self._wake = asyncio.Event()

    def notice(self, event: WatchEvent) -> None:
        """Hub subscriber: wake up for deletions and for objects with owners or deletion marks."""
        meta = event.obj["metadata"]
        if event.type == "DELETED" or meta.get("ownerReferences") or meta.get("deletionTimestamp"):
            self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._delay_s)
            self._wake.clear()
            self.sweep()

    def _rt(self, key: str) -> ResourceType:
        return self._store.registry.of_key(key)[0]

    def _delete(self, key: str, obj: dict[str, Any], propagation: str = "Background") -> None:
        meta = obj["metadata"]
        with contextlib.suppress(ApiError):  # deleted meanwhile
            self._store.delete(
                self._rt(key), meta.get("namespace", ""), meta["name"], propagation=propagation
            )

    def _update(self, key: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        with contextlib.suppress(ApiError):  # changed or deleted meanwhile
            self._store.update(self._rt(key), meta.get("namespace", ""), meta["name"], obj)

    def sweep(self) -> None:
        """One pass over the store; each change it makes wakes the next pass."""
        live = self._store.uids
        dependents: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for key, obj in self._store.all_items():
            refs = obj["metadata"].get("ownerReferences") or []
            for ref in refs:
                dependents.setdefault(str(ref.get("uid")), []).append((key, obj))
            if refs and not obj["metadata"].get("deletionTimestamp"):
                self._orphaned(key, obj, refs, live)
        for key, obj in self._store.all_items():
            meta = obj["metadata"]
            if not meta.get("deletionTimestamp"):
                continue
            finalizers = meta.get("finalizers") or []
            mine = dependents.get(meta["uid"], [])
            if ORPHAN in finalizers:
                self._orphan(key, obj, mine)
            elif FOREGROUND in finalizers:
                self._foreground(key, obj, mine)
            if key == "/namespaces":
                self._finalize_namespace(obj)

    def _orphaned(
        self, key: str, obj: dict[str, Any], refs: list[dict[str, Any]], live: dict[str, Any]
    ) -> None:
        present = [r for r in refs if r.get("uid") in live]
        if not present:
            self._delete(key, obj)
        elif len(present) < len(refs):
            updated = copy.deepcopy(obj)
            updated["metadata"]["ownerReferences"] = present
            self._update(key, updated)

    def _orphan(self, key: str, owner: dict[str, Any], dependents: list[tuple[str, dict[str, Any]]]) -> None:
        uid = owner["metadata"]["uid"]
        for dep_key, dep in dependents:
            updated = copy.deepcopy(dep)
            updated["metadata"]["ownerReferences"] = [
                r for r in dep["metadata"]["ownerReferences"] if r.get("uid") != uid
            ] or None
            if updated["metadata"]["ownerReferences"] is None:
                del updated["metadata"]["ownerReferences"]
            self._update(dep_key, updated)
        self._drop_finalizer(key, owner, ORPHAN)

    def _foreground(
        self, key: str, owner: dict[str, Any], dependents: list[tuple[str, dict[str, Any]]]
    ) -> None:
        for dep_key, dep in dependents:
            if not dep["metadata"].get("deletionTimestamp"):
                self._delete(dep_key, dep, "Foreground")
        if not dependents:
            self._drop_finalizer(key, owner, FOREGROUND)

    def _drop_finalizer(self, key: str, obj: dict[str, Any], finalizer: str) -> None:
        updated = copy.deepcopy(obj)
        updated["metadata"]["finalizers"] = [f for f in obj["metadata"]["finalizers"] if f != finalizer]
        self._update(key, updated)

    def _finalize_namespace(self, namespace: dict[str, Any]) -> None:
        name = namespace["metadata"]["name"]
        remaining = [
            (key, obj) for key, obj in self._store.all_items() if obj["metadata"].get("namespace") == name
        ]
        for key, obj in remaining:
            if not obj["metadata"].get("deletionTimestamp"):
                self._delete(key, obj)
        if not remaining and (namespace.get("spec") or {}).get("finalizers"):
            updated = copy.deepcopy(namespace)
            updated["spec"]["finalizers"] = []
            self._update("/namespaces", updated)
