"""The ConfigMaps a deployment's spec names, read now through the API (the admission webhook's).

The reconciler reads them from its watch cache instead (`k8s/cache.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deepseek_operator.k8s.cache import referenced_config_maps
from deepseek_operator.k8s.client import KubeClient
from deepseek_operator.modelcfg import ArchitectureContext

__all__ = ["References", "read_references"]


@dataclass(frozen=True)
class References:
    """ConfigMaps by name, as read (a missing one is absent: validation says so at its field)."""

    config_maps: dict[str, Mapping[str, str]]

    def architecture_context(self) -> ArchitectureContext:
        return ArchitectureContext(config_maps=self.config_maps.get)


async def read_references(client: KubeClient, namespace: str, body: Mapping[str, Any]) -> References:
    config_maps: dict[str, Mapping[str, str]] = {}
    for name in sorted(referenced_config_maps(body)):
        data = await client.read_config_map(namespace, name)
        if data is not None:
            config_maps[name] = data
    return References(config_maps)
