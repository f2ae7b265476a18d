"""Ray Serve's REST view of each RayService (Ray's dashboard, as KubeRay reads it), cached briefly.

The dashboard of a RayService's cluster answers `GET /api/serve/applications/` with every
application and deployment, their replicas and their states: the operator reads there how many
groups of a version run and how many its autoscaler wants. One read per RayService at most every
`ttl_seconds`, and only for RayServices KubeRay reports ready (others have no dashboard to ask);
an unreachable dashboard is logged once per RayService and counts as unknown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = ["ServeObserver"]

logger = logging.getLogger(__name__)

SERVE_DETAILS_PATH = "/api/serve/applications/"


class ServeObserver:
    def __init__(self, url_template: str, *, ttl_seconds: float, timeout_seconds: float = 5.0) -> None:
        """`url_template`: the dashboard's base URL with `{name}` (the RayService) and `{namespace}`,
        e.g. `http://{name}-head-svc.{namespace}.svc:8265` in a cluster."""
        self._template = url_template
        self._ttl = ttl_seconds
        self._client = httpx.AsyncClient(timeout=timeout_seconds)
        self._cache: dict[tuple[str, str, str], tuple[float, Mapping[str, Any] | None]] = {}
        self._failing: set[tuple[str, str]] = set()

    @property
    def ttl_seconds(self) -> float:
        return self._ttl

    async def details(
        self, ray_service: Mapping[str, Any], *, fresh: bool = False
    ) -> Mapping[str, Any] | None:
        """The RayService's `ServeInstanceDetails` JSON, at most `ttl_seconds` old (None: unknown)."""
        metadata = ray_service["metadata"]
        namespace, name = metadata.get("namespace") or "default", metadata["name"]
        key = (namespace, name, str(metadata.get("uid", "")))
        cached = self._cache.get(key)
        if cached is not None and not fresh and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        url = self._template.format(name=name, namespace=namespace).rstrip("/") + SERVE_DETAILS_PATH
        details: Mapping[str, Any] | None
        try:
            response = await self._client.get(url)
            response.raise_for_status()
            details = response.json()
            self._failing.discard((namespace, name))
        except (httpx.HTTPError, ValueError) as error:
            if (namespace, name) not in self._failing:
                logger.warning(
                    "Ray Serve's view of %s/%s is unavailable (%s): %s", namespace, name, url, error
                )
                self._failing.add((namespace, name))
            details = None
        self._cache[key] = (time.monotonic(), details)
        return details

    def forget(self, namespace: str, name: str) -> None:
        self._cache = {key: value for key, value in self._cache.items() if key[:2] != (namespace, name)}
        self._failing.discard((namespace, name))

    async def close(self) -> None:
        await self._client.aclose()
