"""Ray Serve's REST view of each RayService (Ray's dashboard, as KubeRay reads it), cached briefly.

The dashboard of a RayService's cluster answers `GET /api/serve/applications/` with every
application and deployment, their replicas and their states: the operator reads there how many
groups of a version run and how many its autoscaler wants. One read per RayService at most every
`ttl_seconds`, and only for RayServices KubeRay reports ready (others have no dashboard to ask);
an unreachable dashboard is logged once per RayService and counts as unknown.

The same dashboard's log API (`GET /api/v0/logs/file`) returns the tail of the Serve
controller's log, where our autoscaling policy writes why it changed the group count; it is read
only when the group count changed, at most once per read of the applications, and only its
decisions are kept (`decisions_in_log`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx

from deepseek_operator.k8s.cache import ObjectCache
from deepseek_serving.autoscaling import decisions_in_log

__all__ = ["ServeObserver"]

logger = logging.getLogger(__name__)

SERVE_DETAILS_PATH = "/api/serve/applications/"
LOG_FILE_PATH = "/api/v0/logs/file"
CONTROLLER_LOG_LINES = 2000
"""Lines of the controller's log read back: its newest minutes, decisions included."""


class ServeObserver:
    def __init__(self, url_template: str, *, ttl_seconds: float, timeout_seconds: float = 5.0) -> None:
        """`url_template`: the dashboard's base URL with `{name}` (the RayService) and `{namespace}`,
        e.g. `http://{name}-head-svc.{namespace}.svc:8265` in a cluster."""
        self._template = url_template
        self._ttl = ttl_seconds
        self._client = httpx.AsyncClient(timeout=timeout_seconds)
        self._cache: dict[tuple[str, str, str], tuple[float, str, Mapping[str, Any] | None]] = {}
        """(namespace, name, uid) -> (when read, the RayService's resourceVersion then, details)."""
        self._failing: set[tuple[str, str]] = set()
        self._decisions: dict[tuple[str, str], tuple[Mapping[str, Any], list[dict[str, Any]] | None]] = {}
        """(namespace, name) -> (the details the log was read with, its decisions). A pass that
        applies observes twice; the second finds the same details and needs no second read."""

    @property
    def ttl_seconds(self) -> float:
        return self._ttl

    async def details(self, ray_service: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The RayService's `ServeInstanceDetails` JSON, at most `ttl_seconds` old and read after
        the RayService's last change (None: unknown)."""
        namespace, name = ObjectCache.key_of(ray_service)
        metadata = ray_service["metadata"]
        key = (namespace, name, str(metadata.get("uid", "")))
        # A RayService that changed since the read (KubeRay's status says a deployment is
        # UPSCALING, say) is news from Serve: the cached answer predates it.
        seen = str(metadata.get("resourceVersion", ""))
        cached = self._cache.get(key)
        if cached is not None and cached[1] == seen and time.monotonic() - cached[0] < self._ttl:
            return cached[2]
        url = self._base_url(namespace, name) + SERVE_DETAILS_PATH
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
        self._cache[key] = (time.monotonic(), seen, details)
        return details

    async def scaling_decisions(
        self, ray_service: Mapping[str, Any], details: Mapping[str, Any]
    ) -> list[dict[str, Any]] | None:
        """Our autoscaler's decisions in the last `CONTROLLER_LOG_LINES` lines of the Serve
        controller's log, oldest first (None: the log is unknown).

        `details` is the RayService's `ServeInstanceDetails`: its `controller_info` names the
        node and the log file (relative to Ray's log directory, with a leading "/" that the log
        API would take for an absolute path outside it)."""
        controller = details.get("controller_info") or {}
        node_id, log_file = controller.get("node_id"), controller.get("log_file_path")
        if not node_id or not log_file:
            return None
        namespace, name = ObjectCache.key_of(ray_service)
        remembered = self._decisions.get((namespace, name))
        if remembered is not None and remembered[0] is details:
            return remembered[1]
        decisions = await self._read_decisions(namespace, name, node_id, str(log_file))
        self._decisions[(namespace, name)] = (details, decisions)
        return decisions

    async def _read_decisions(
        self, namespace: str, name: str, node_id: str, log_file: str
    ) -> list[dict[str, Any]] | None:
        params: dict[str, str | int] = {
            "node_id": node_id,
            "filename": log_file.lstrip("/"),
            "lines": CONTROLLER_LOG_LINES,
        }
        try:
            response = await self._client.get(self._base_url(namespace, name) + LOG_FILE_PATH, params=params)
            response.raise_for_status()
        except httpx.HTTPError as error:
            logger.warning("The Serve controller's log of %s/%s is unavailable: %s", namespace, name, error)
            return None
        return decisions_in_log(response.text.splitlines())

    def _base_url(self, namespace: str, name: str) -> str:
        return self._template.format(name=name, namespace=namespace).rstrip("/")

    def forget(self, namespace: str, name: str) -> None:
        self._cache = {key: value for key, value in self._cache.items() if key[:2] != (namespace, name)}
        self._failing.discard((namespace, name))
        self._decisions.pop((namespace, name), None)

    async def close(self) -> None:
        await self._client.aclose()
