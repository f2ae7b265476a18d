"""What the operator knows of the cluster: the latest body of every object it watches.

Fed by kopf's watch streams (`handlers`), read by the reconciler, so a steady-state reconcile
sends no GET at all. Children are filed under the deployment named by their
`deepseek.serving.dev/deployment` label. ConfigMaps a deployment names in its spec (architecture,
expert-load statistics) are kept too, so that their changes reach the deployment in seconds and
reading them costs nothing; other ConfigMaps pass through without being kept.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from deepseek_operator.api import constants
from deepseek_operator.workqueue import Key

__all__ = ["REFERENCE_PATHS", "ObjectCache", "referenced_config_maps"]

ChildKey = tuple[str, str]
"""(kind, name) of an owned object."""

REFERENCE_PATHS = (
    ("spec", "model", "architecture", "configMapRef", "name"),
    ("spec", "parallelism", "eplb", "loadStats", "name"),
)
"""Where a DeepSeekDeployment names ConfigMaps of its namespace."""


def referenced_config_maps(body: Mapping[str, Any]) -> set[str]:
    """Names of the ConfigMaps a deployment's spec names."""
    names = set()
    for path in REFERENCE_PATHS:
        node: object = body
        for part in path:
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, str) and node:
            names.add(node)
    return names


class ObjectCache:
    def __init__(self) -> None:
        self._deployments: dict[Key, dict[str, Any]] = {}
        self._children: dict[Key, dict[ChildKey, dict[str, Any]]] = {}
        self._config_maps: dict[Key, dict[str, str] | None] = {}
        """Referenced ConfigMaps' data by (namespace, name); None: known not to exist."""

    @staticmethod
    def key_of(body: Mapping[str, Any]) -> Key:
        metadata = body["metadata"]
        return metadata.get("namespace") or "default", metadata["name"]

    # ─── deployments ─────────────────────────────────────────────────────────────────────────

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

    # ─── children ────────────────────────────────────────────────────────────────────────────

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

    # ─── referenced ConfigMaps ───────────────────────────────────────────────────────────────

    def referencing(self, namespace: str, config_map: str) -> list[Key]:
        """The deployments whose spec names this ConfigMap."""
        return sorted(
            key
            for key, body in self._deployments.items()
            if key[0] == namespace and config_map in referenced_config_maps(body)
        )

    def put_config_map(self, body: Mapping[str, Any]) -> list[Key]:
        """Keep a watched ConfigMap if a deployment names it; returns those deployments."""
        key = self.key_of(body)
        referencing = self.referencing(*key)
        if referencing:
            self._config_maps[key] = dict(body.get("data") or {})
        return referencing

    def drop_config_map(self, body: Mapping[str, Any]) -> list[Key]:
        key = self.key_of(body)
        referencing = self.referencing(*key)
        if referencing:
            self._config_maps[key] = None
        return referencing

    def config_map(self, namespace: str, name: str) -> tuple[bool, dict[str, str] | None]:
        """(known, data): whether the cache knows the ConfigMap, and its data (None: absent)."""
        key = (namespace, name)
        return (key in self._config_maps, self._config_maps.get(key))

    def remember_config_map(self, namespace: str, name: str, data: dict[str, str] | None) -> None:
        """Record a ConfigMap read from the API (first reference); watches keep it current after."""
        self._config_maps[(namespace, name)] = data
