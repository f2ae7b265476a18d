"""What the operator knows of the cluster: the latest body of every object it watches.

Fed by kopf's watch streams (`handlers`), read by the reconciler, so a steady-state reconcile
sends no GET at all. Children are filed under the deployment named by their
`deepseek.serving.dev/deployment` label.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from deepseek_operator.api import constants
from deepseek_operator.workqueue import Key

__all__ = ["ObjectCache"]

ChildKey = tuple[str, str]
"""(kind, name) of an owned object."""


class ObjectCache:
    def __init__(self) -> None:
        self._deployments: dict[Key, dict[str, Any]] = {}
        self._children: dict[Key, dict[ChildKey, dict[str, Any]]] = {}

    @staticmethod
    def key_of(body: Mapping[str, Any]) -> Key:
        metadata = body["metadata"]
        return metadata.get("namespace") or "default", metadata["name"]

    def deployment(self, key: Key) -> dict[str, Any] | None:
        return self._deployments.get(key)

    def put_deployment(self, body: Mapping[str, Any]) -> Key:
        key = self.key_of(body)
        self._deployments[key] = copy.deepcopy(dict(body))
        return key

    def drop_deployment(self, body: Mapping[str, Any]) -> Key:
        key = self.key_of(body)
        self._deployments.pop(key, None)
        return key

    @staticmethod
    def owner_of(body: Mapping[str, Any]) -> Key | None:
        """The deployment a child belongs to, from its label."""
        metadata = body["metadata"]
        owner = (metadata.get("labels") or {}).get(constants.LABEL_DEPLOYMENT)
        return (metadata.get("namespace") or "default", owner) if owner else None

    def put_child(self, body: Mapping[str, Any]) -> Key | None:
        owner = self.owner_of(body)
        if owner is not None:
            self._children.setdefault(owner, {})[(body["kind"], body["metadata"]["name"])] = copy.deepcopy(
                dict(body)
            )
        return owner

    def drop_child(self, body: Mapping[str, Any]) -> Key | None:
        owner = self.owner_of(body)
        if owner is not None:
            self._children.get(owner, {}).pop((body["kind"], body["metadata"]["name"]), None)
        return owner

    def children(self, owner: Key, kind: str | None = None) -> list[dict[str, Any]]:
        found = self._children.get(owner, {})
        return [body for (child_kind, _), body in sorted(found.items()) if kind is None or child_kind == kind]

    def child(self, owner: Key, kind: str, name: str) -> dict[str, Any] | None:
        return self._children.get(owner, {}).get((kind, name))
