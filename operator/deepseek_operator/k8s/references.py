"""The ConfigMaps a deployment's spec names (its architecture, its expert load), read now.

Validation and planning are pure and synchronous; this is the one place that fetches what they
need from the API, for the reconciler and the admission webhook alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deepseek_operator.k8s.client import KubeClient
from deepseek_operator.modelcfg import ArchitectureContext

__all__ = ["REFERENCE_PATHS", "References", "read_references"]

REFERENCE_PATHS = (
    ("spec", "model", "architecture", "configMapRef", "name"),
    ("spec", "parallelism", "eplb", "loadStats", "name"),
)


@dataclass(frozen=True)
class References:
    """ConfigMaps by name, as read (a missing one is absent: validation says so at its field)."""

    config_maps: dict[str, Mapping[str, str]]

    @property
    def digest(self) -> str:
        """Changes when any referenced ConfigMap's data does."""
        return hashlib.sha256(json.dumps(self.config_maps, sort_keys=True).encode()).hexdigest()

    def architecture_context(self) -> ArchitectureContext:
        return ArchitectureContext(config_maps=self.config_maps.get)


async def read_references(client: KubeClient, namespace: str, body: Mapping[str, Any]) -> References:
    config_maps: dict[str, Mapping[str, str]] = {}
    for path in REFERENCE_PATHS:
        name = _dig(body, path)
        if isinstance(name, str) and name and name not in config_maps:
            data = await client.read_config_map(namespace, name)
            if data is not None:
                config_maps[name] = data
    return References(config_maps)


def _dig(body: Mapping[str, Any], path: tuple[str, ...]) -> object:
    node: object = body
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node
