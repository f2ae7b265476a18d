"""The operator's API client: the `kubernetes` asyncio client behind a rate limiter.

Every request waits for a token (`ratelimit.TokenBucket`), is counted by verb and status code,
and a write answered `409 Conflict` is retried (`conflict_retries` times): server-side apply
with `force` and our merge patches do not conflict, but an Event name can collide and another
writer can race us.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.aio.client import ApiClient
from kubernetes.aio.client.exceptions import ApiException

from deepseek_operator.api import constants
from deepseek_operator.k8s.ratelimit import TokenBucket
from deepseek_operator.metrics import API_REQUESTS
from deepseek_operator.settings import KubernetesSettings

__all__ = ["KubeClient", "ResourceKind", "is_refusal", "kind_of", "refusal_message"]

REFUSALS = frozenset({400, 403, 404, 413, 422})
"""Answers that retrying will not change: the object is invalid or too large, its kind is not
installed, or the operator may not write it. Everything else (409 after retries, 429, 5xx,
timeouts) is transient."""


def is_refusal(error: ApiException) -> bool:
    return error.status in REFUSALS


def refusal_message(error: ApiException) -> str:
    """The API server's own words (`Status.message`), or the HTTP reason."""
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except (TypeError, ValueError):
        return str(error.reason)


@dataclass(frozen=True)
class ResourceKind:
    """Where objects of one kind live in the API."""

    api_version: str
    kind: str
    plural: str

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        root = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        path = f"{root}/namespaces/{namespace}/{self.plural}"
        if name is not None:
            path += f"/{name}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


KINDS = {
    (kind.api_version, kind.kind): kind
    for kind in (
        ResourceKind(constants.API_VERSION, constants.KIND, constants.PLURAL),
        ResourceKind("ray.io/v1", "RayService", "rayservices"),
        ResourceKind("v1", "ConfigMap", "configmaps"),
        ResourceKind("v1", "Service", "services"),
        ResourceKind("v1", "Event", "events"),
        ResourceKind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
    )
}


def kind_of(obj: Mapping[str, Any]) -> ResourceKind:
    return KINDS[(obj["apiVersion"], obj["kind"])]


class KubeClient:
    """Async, rate-limited access to the few API calls the operator makes."""

    def __init__(self, api_client: ApiClient, settings: KubernetesSettings) -> None:
        self._api = api_client
        self._settings = settings
        self._bucket = TokenBucket(settings.qps, settings.burst)

    async def _request(
        self,
        verb: str,
        method: str,
        path: str,
        *,
        body: Callable[[], Any] | None = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One call, retried on 409 for writes; `body` is rebuilt per attempt (new Event names)."""
        attempts = 1 + (self._settings.conflict_retries if method != "GET" else 0)
        for attempt in range(attempts):
            await self._bucket.acquire()
            try:
                result = await self._send(method, path, body() if body else None, query or [], content_type)
            except ApiException as error:
                API_REQUESTS.labels(verb=verb, code=str(error.status)).inc()
                if error.status == 409 and attempt + 1 < attempts:
                    await asyncio.sleep(0.05 * 2**attempt)
                    continue
                raise
            API_REQUESTS.labels(verb=verb, code="2xx").inc()
            return result
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _send(
        self, method: str, path: str, body: Any, query: list[tuple[str, str]], content_type: str
    ) -> Any:
        api: Any = self._api  # the generated client is only partly typed
        method, url, headers, payload, _ = await api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query,
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        timeout = self._settings.request_timeout_seconds
        response: Any = await api.call_api(
            method, url, header_params=headers, body=payload, _request_timeout=timeout
        )
        data: bytes = await response.read()
        if not 200 <= response.status < 300:
            text = data.decode(errors="replace")
            raise ApiException(status=response.status, reason=response.reason, body=text)
        return json.loads(data) if data else {}

    async def apply(
        self, obj: Mapping[str, Any], *, owner: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Server-side apply with our field manager, forcing our fields; other managers' fields survive."""
        body = dict(obj)
        if owner is not None:
            body["metadata"] = {**obj["metadata"], "ownerReferences": [_owner_reference(owner)]}
        metadata = body["metadata"]
        applied: dict[str, Any] = await self._request(
            "apply",
            "PATCH",
            kind_of(body).path(metadata["namespace"], metadata["name"]),
            body=lambda: body,
            query=[("fieldManager", constants.FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        return applied

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch a DeepSeekDeployment's status subresource."""
        kind = KINDS[(constants.API_VERSION, constants.KIND)]
        await self._request(
            "patch_status",
            "PATCH",
            kind.path(namespace, name, "status"),
            body=lambda: {"status": status},
            content_type="application/merge-patch+json",
        )

    async def delete(self, obj: Mapping[str, Any]) -> None:
        """Delete this very object (background propagation; a precondition on its uid, so an object
        re-created under the name since is never deleted); one already gone is fine."""
        metadata = obj["metadata"]
        options: dict[str, Any] = {"propagationPolicy": "Background"}
        if metadata.get("uid"):
            options["preconditions"] = {"uid": metadata["uid"]}
        try:
            await self._request(
                "delete",
                "DELETE",
                kind_of(obj).path(metadata["namespace"], metadata["name"]),
                body=lambda: options,
            )
        except ApiException as error:
            if error.status not in (404, 409):
                raise

    async def get(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """The object of `obj`'s kind and name as stored, or None when there is none."""
        metadata = obj["metadata"]
        try:
            found: dict[str, Any] = await self._request(
                "get", "GET", kind_of(obj).path(metadata["namespace"], metadata["name"])
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    async def read_config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        """A ConfigMap's data, or None when it does not exist."""
        try:
            found = await self._request("get", "GET", KINDS[("v1", "ConfigMap")].path(namespace, name))
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        data: dict[str, str] = found.get("data") or {}
        return data

    async def post_event(self, event_factory: Callable[[], Mapping[str, Any]]) -> None:
        """Create an Event; a name collision (409) retries with a fresh name from the factory."""
        first = event_factory()
        await self._request(
            "create_event",
            "POST",
            KINDS[("v1", "Event")].path(first["metadata"]["namespace"]),
            body=event_factory,
        )


def _owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
