"""HTTP routes: Kubernetes REST paths and verbs onto the store, the watch hub and discovery.

``/api/v1/...`` and ``/apis/<group>/<version>/...``, namespaced or not, with the ``status`` and
``scale`` subresources; GET (get, list, watch), POST, PUT, PATCH (JSON, merge, strategic merge,
apply) and DELETE (one or a collection). Every failure answers a ``Status`` body. A request body
over ``MAX_REQUEST_BODY_BYTES`` is refused with 413 before it is decoded, as a real server does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml
from aiohttp import web

from deepseek_operator.testing import apply as ssa
from deepseek_operator.testing import discovery, openapi_docs, patches, protobuf, tables
from deepseek_operator.testing.apierrors import ApiError
from deepseek_operator.testing.resources import Registry, ResourceType
from deepseek_operator.testing.selectors import FieldSelector, LabelSelector, SelectorError
from deepseek_operator.testing.store import Store, rfc3339
from deepseek_operator.testing.watch import Watcher, WatchHub

__all__ = ["MAX_REQUEST_BODY_BYTES", "Api"]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
_SUBRESOURCES_OF_NAMESPACES = ("status", "finalize")
_WATCH_TIMEOUT_S = 1800.0
MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024
"""kube-apiserver's ``MaxRequestBodyBytes`` (3 MiB, twice etcd's limit to allow for JSON being larger
than the protobuf stored): a longer body gets 413 "Request entity too large: limit is 3145728"."""


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    rt: ResourceType
    namespace: str
    name: str
    subresource: str


def _json(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    response = web.Response(text=json.dumps(body), status=status, content_type="application/json")
    for warning in warnings or []:
        response.headers.add("Warning", f"299 - {json.dumps(warning)}")
    return response


def _manager(request: web.Request) -> str:
    """``fieldManager``, else the User-Agent's product token as the real server derives it."""
    explicit = request.query.get("fieldManager")
    if explicit:
        return explicit
    agent = request.headers.get("User-Agent", "unknown")
    return agent.split("/", 1)[0].strip() or "unknown"


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


class Api:
    """The request handlers; one instance per server."""

    def __init__(
        self,
        registry: Registry,
        store: Store,
        hub: WatchHub,
        clock: Callable[[], datetime],
        *,
        bookmark_interval_s: float,
    ) -> None:
        self.registry = registry
        self.store = store
        self.hub = hub
        self._clock = clock
        self._bookmark_interval_s = bookmark_interval_s
        self._watchers: set[Watcher] = set()

    def close_watches(self) -> None:
        """End every open watch (server shutdown)."""
        for watcher in list(self._watchers):
            watcher.queue.put_nowait(("", {}, 0))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._route(request)
        except ApiError as err:
            return _json(err.body(), err.code)

    # --- routing ---------------------------------------------------------------------------

    async def _route(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            return _json({"paths": ["/api", "/apis", "/version", "/healthz"]})
        if parts[0] in ("healthz", "livez", "readyz"):
            return web.Response(text="ok")
        if parts == ["version"]:
            return _json(discovery.version_info())
        if parts[:2] == ["openapi", "v3"]:
            return _json(self._openapi(parts[2:]))
        if parts[0] == "api":
            if len(parts) == 1:
                return _json(discovery.api_versions(request.host))
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis":
            if len(parts) == 1:
                return _json(discovery.api_groups(self.registry))
            if len(parts) == 2:
                return _json(_found(discovery.api_group(self.registry, parts[1])))
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise _not_found()
        if not rest:
            return _json(_found(discovery.api_resources(self.registry, group, version)))
        target = self._target(group, version, rest)
        handler = self._handler(request.method, target)
        return await handler(request, target)

    def _openapi(self, rest: list[str]) -> dict[str, Any]:
        if not rest:
            return openapi_docs.openapi_index(self.registry)
        if rest[0] == "api" and len(rest) == 2:
            return _found(openapi_docs.openapi_group_version(self.registry, "", rest[1]))
        if rest[0] == "apis" and len(rest) == 3:
            return _found(openapi_docs.openapi_group_version(self.registry, rest[1], rest[2]))
        raise _not_found()

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in _SUBRESOURCES_OF_NAMESPACES:
            namespace, rest = rest[1], rest[2:]
        rt = self.registry.get(group, version, rest[0])
        if rt is None or len(rest) > 3 or (namespace and not rt.namespaced):
            raise _not_found()
        name = rest[1] if len(rest) > 1 else ""
        subresource = rest[2] if len(rest) > 2 else ""
        if subresource and not (
            (subresource == "status" and rt.status) or (subresource == "scale" and rt.scale is not None)
        ):
            raise _not_found()
        return Target(rt, namespace, name, subresource)

    def _handler(
        self, method: str, target: Target
    ) -> Callable[[web.Request, Target], Awaitable[web.StreamResponse]]:
        named = bool(target.name)
        table: dict[tuple[str, bool], Callable[[web.Request, Target], Awaitable[web.StreamResponse]]] = {
            ("GET", True): self._get,
            ("GET", False): self._list_or_watch,
            ("POST", False): self._create,
            ("PUT", True): self._update,
            ("PATCH", True): self._patch,
            ("DELETE", True): self._delete,
            ("DELETE", False): self._delete_collection,
        }
        handler = table.get((method, named))
        if handler is None:
            raise ApiError.method_not_allowed()
        return handler

    # --- reads -----------------------------------------------------------------------------

    async def _get(self, request: web.Request, target: Target) -> web.StreamResponse:
        obj = self.store.get(target.rt, target.namespace, target.name)
        if target.subresource == "scale":
            return _json(_scale_of(target.rt, obj))
        if tables.wants_table(request.headers.get("Accept", "")):
            return _json(tables.table(target.rt, [obj], obj["metadata"]["resourceVersion"], self._clock()))
        return _json(obj)

    def _selectors(self, request: web.Request, rt: ResourceType) -> tuple[LabelSelector, FieldSelector]:
        try:
            return (
                LabelSelector(request.query.get("labelSelector", "")),
                FieldSelector(request.query.get("fieldSelector", ""), rt.field_labels),
            )
        except SelectorError as err:
            raise ApiError.bad_request(str(err)) from err

    async def _list_or_watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        if _flag(request, "watch"):
            return await self._watch(request, target)
        labels, fields = self._selectors(request, target.rt)
        items, rv = self.store.select(target.rt, target.namespace, labels, fields)
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        limit = int(request.query.get("limit") or 0)
        start = _decode_continue(request.query.get("continue", ""))
        if start or limit:
            end = start + limit if limit else len(items)
            if end < len(items):
                meta["continue"] = base64.urlsafe_b64encode(json.dumps({"start": end}).encode()).decode()
                meta["remainingItemCount"] = len(items) - end
            items = items[start:end]
        if tables.wants_table(request.headers.get("Accept", "")):
            return _json(tables.table(target.rt, items, str(rv), self._clock()))
        return _json(
            {
                "kind": target.rt.list_kind,
                "apiVersion": target.rt.api_version,
                "metadata": meta,
                "items": items,
            }
        )

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        labels, fields = self._selectors(request, rt)
        watcher = Watcher(rt.key, target.namespace, labels, fields)
        raw_rv = request.query.get("resourceVersion", "")
        initial: list[dict[str, Any]] = []
        gone: ApiError | None = None
        if raw_rv in ("", "0") or _flag(request, "sendInitialEvents"):
            initial, _ = self.store.select(rt, target.namespace, labels, fields)
            self.hub.subscribe(watcher, None)
        else:
            try:
                self.hub.subscribe(watcher, int(raw_rv))
            except ValueError as err:
                raise ApiError.bad_request(f"invalid resource version: {raw_rv}") from err
            except ApiError as err:
                gone = err
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if gone is not None:
            await response.write(_line("ERROR", gone.body()))
            return response
        self._watchers.add(watcher)
        try:
            await self._stream(request, response, target, watcher, initial)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watchers.discard(watcher)
            self.hub.unsubscribe(watcher)
        return response

    async def _stream(
        self,
        request: web.Request,
        response: web.StreamResponse,
        target: Target,
        watcher: Watcher,
        initial: list[dict[str, Any]],
    ) -> None:
        rt = target.rt
        bookmarks = _flag(request, "allowWatchBookmarks")
        as_table = tables.wants_table(request.headers.get("Accept", ""))

        def shown(obj: dict[str, Any]) -> dict[str, Any]:
            """Each event's object, or a one-row Table of it (``kubectl get --watch``)."""
            out = copy.deepcopy(obj)
            out["apiVersion"] = rt.api_version
            if as_table:
                return tables.table(rt, [out], str(out["metadata"].get("resourceVersion", "")), self._clock())
            return out

        for obj in initial:
            await response.write(_line("ADDED", shown(obj)))
        if bookmarks and _flag(request, "sendInitialEvents"):
            await response.write(_line("BOOKMARK", self._bookmark(rt, initial_events_end=True)))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(request.query.get("timeoutSeconds") or _WATCH_TIMEOUT_S)
        while (remaining := deadline - loop.time()) > 0:
            try:
                kind, obj, _ = await asyncio.wait_for(
                    watcher.queue.get(), min(remaining, self._bookmark_interval_s)
                )
            except TimeoutError:
                if bookmarks and watcher.queue.empty():
                    await response.write(_line("BOOKMARK", self._bookmark(rt)))
                continue
            if not kind:
                return
            await response.write(_line(kind, shown(obj)))

    def _bookmark(self, rt: ResourceType, *, initial_events_end: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(self.store.rv)}
        if initial_events_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}

    # --- writes ----------------------------------------------------------------------------

    async def _body(self, request: web.Request) -> Any:
        try:
            raw = await request.read()  # the application's client_max_size is MAX_REQUEST_BODY_BYTES
        except web.HTTPRequestEntityTooLarge:
            raise ApiError.request_entity_too_large(MAX_REQUEST_BODY_BYTES) from None
        if len(raw) > MAX_REQUEST_BODY_BYTES:
            raise ApiError.request_entity_too_large(MAX_REQUEST_BODY_BYTES)
        if request.content_type == PROTOBUF:
            try:
                return protobuf.decode(raw)
            except protobuf.ProtobufError as err:
                raise ApiError.unsupported_media_type(
                    request.content_type, ["application/json", PROTOBUF]
                ) from err
        try:
            if request.content_type in (APPLY_PATCH, "application/yaml"):
                return yaml.safe_load(raw)
            return json.loads(raw or b"null")
        except (ValueError, yaml.YAMLError) as err:
            raise ApiError.bad_request(f"the request body is not valid: {err}") from err

    def _now(self) -> str:
        return rfc3339(self._clock())

    def _check_kind(self, rt: ResourceType, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError.bad_request("the request body must be an object")
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if (kind and kind != rt.kind) or (api_version and api_version != rt.api_version):
            raise ApiError.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version})"
                if api_version != rt.api_version
                else f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        return body

    def _strict(self, request: web.Request) -> bool:
        return request.query.get("fieldValidation", "").lower() == "strict"

    async def _create(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        if rt.key == "authorization.k8s.io/selfsubjectaccessreviews":
            review = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": {}, "spec": {}}
            return _json(
                {**review, "status": {"allowed": True, "reason": "the test API server allows everything"}},
                201,
            )
        body = self._check_kind(rt, await self._body(request))
        body_ns = (body.get("metadata") or {}).get("namespace")
        if rt.namespaced and body_ns and body_ns != target.namespace:
            raise ApiError.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        if rt.namespaced and not target.namespace:
            raise ApiError.method_not_allowed()
        ssa.record_update(rt, None, body, _manager(request), self._now())
        obj, warnings = self.store.create(
            rt,
            target.namespace,
            body,
            dry_run=bool(request.query.get("dryRun")),
            strict=self._strict(request),
        )
        return _json(obj, 201, warnings)

    async def _update(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        if target.subresource == "scale":
            return await self._write_scale(request, target, await self._body(request))
        body = self._check_kind(rt, await self._body(request))
        current = self.store.get(rt, target.namespace, target.name)
        return self._write(request, target, current, body)

    def _write(
        self, request: web.Request, target: Target, current: dict[str, Any], new: dict[str, Any]
    ) -> web.StreamResponse:
        """Record ownership of the change, then store it (status or main resource).

        A request that rewrites ``managedFields`` itself (kubectl's client-side-apply upgrade)
        gets exactly those; otherwise the writer takes the fields it changed.
        """
        explicit = new.get("metadata", {}).get("managedFields") != current["metadata"].get("managedFields")
        if not explicit and _without_managed_fields(new) == _without_managed_fields(current):
            return _json(current)
        if not explicit:
            ssa.record_update(target.rt, current, new, _manager(request), self._now(), target.subresource)
        obj, warnings = self.store.update(
            target.rt,
            target.namespace,
            target.name,
            new,
            subresource=target.subresource,
            dry_run=bool(request.query.get("dryRun")),
            strict=self._strict(request),
        )
        return _json(obj, 200, warnings)

    async def _patch(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        body = await self._body(request)
        content_type = request.content_type
        accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH] + ([] if rt.crd else [STRATEGIC_PATCH])
        if content_type not in accepted:
            raise ApiError.unsupported_media_type(content_type, accepted)
        if content_type == APPLY_PATCH:
            return self._apply(request, target, self._check_kind(rt, body))
        current = self.store.get(rt, target.namespace, target.name)
        base = _scale_of(rt, current) if target.subresource == "scale" else current
        try:
            if content_type == JSON_PATCH:
                patched = patches.json_patch(base, body)
            elif content_type == MERGE_PATCH:
                patched = patches.merge_patch(base, body)
            else:
                patched = patches.strategic_merge_patch(base, body, rt.merge_keys)
        except patches.PatchError as err:
            raise ApiError(422, "Invalid", str(err)) from err
        if target.subresource == "scale":
            return await self._write_scale(request, target, patched)
        if not isinstance(patched, dict):
            raise ApiError.bad_request("the patch must produce an object")
        return self._write(request, target, current, patched)

    def _apply(self, request: web.Request, target: Target, config: dict[str, Any]) -> web.StreamResponse:
        rt = target.rt
        manager = request.query.get("fieldManager")
        if not manager:
            raise ApiError.bad_request(
                "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests"
            )
        current = self.store.find(rt, target.namespace, target.name)
        live = self.store.present(rt, current) if current is not None else None
        merged = ssa.apply(
            rt,
            live,
            config,
            manager,
            force=_flag(request, "force"),
            now=self._now(),
            subresource=target.subresource,
        )
        dry_run = bool(request.query.get("dryRun"))
        if live is None:
            merged.setdefault("metadata", {}).setdefault("name", target.name)
            obj, warnings = self.store.create(
                rt, target.namespace, merged, dry_run=dry_run, strict=self._strict(request), apply=True
            )
            return _json(obj, 201, warnings)
        if _without_managed_fields(merged) == _without_managed_fields(live) and merged["metadata"].get(
            "managedFields"
        ) == live["metadata"].get("managedFields"):
            return _json(live)
        obj, warnings = self.store.update(
            rt,
            target.namespace,
            target.name,
            merged,
            subresource=target.subresource,
            dry_run=dry_run,
            strict=self._strict(request),
            apply=True,
        )
        return _json(obj, 200, warnings)

    async def _write_scale(self, request: web.Request, target: Target, scale: Any) -> web.StreamResponse:
        rt = target.rt
        assert rt.scale is not None
        current = self.store.get(rt, target.namespace, target.name)
        if not isinstance(scale, dict) or not isinstance((scale.get("spec") or {}).get("replicas"), int):
            raise ApiError.bad_request("a Scale with an integer spec.replicas is required")
        given_rv = (scale.get("metadata") or {}).get("resourceVersion")
        if given_rv and given_rv != current["metadata"]["resourceVersion"]:
            raise ApiError.stale(rt, target.name)
        new = copy.deepcopy(current)
        _set_path(new, rt.scale.spec_replicas_path, scale["spec"]["replicas"])
        main = Target(rt, target.namespace, target.name, "")
        self._write(request, main, current, new)
        return _json(_scale_of(rt, self.store.get(rt, target.namespace, target.name)))

    async def _delete(self, request: web.Request, target: Target) -> web.StreamResponse:
        options = await self._body(request) if request.can_read_body else None
        options = options if isinstance(options, dict) else {}
        propagation = request.query.get("propagationPolicy") or options.get("propagationPolicy") or ""
        obj = self.store.delete(
            target.rt,
            target.namespace,
            target.name,
            propagation=propagation,
            preconditions=options.get("preconditions"),
            dry_run=bool(request.query.get("dryRun") or options.get("dryRun")),
        )
        return _json(obj)

    async def _delete_collection(self, request: web.Request, target: Target) -> web.StreamResponse:
        labels, fields = self._selectors(request, target.rt)
        items, _ = self.store.select(target.rt, target.namespace, labels, fields)
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            with contextlib.suppress(ApiError):
                deleted.append(self.store.delete(target.rt, meta.get("namespace", ""), meta["name"]))
        return _json(
            {
                "kind": target.rt.list_kind,
                "apiVersion": target.rt.api_version,
                "metadata": {},
                "items": deleted,
            }
        )


def _found(doc: dict[str, Any] | None) -> dict[str, Any]:
    if doc is None:
        raise _not_found()
    return doc


def _not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def _line(kind: str, obj: dict[str, Any]) -> bytes:
    return (json.dumps({"type": kind, "object": obj}) + "\n").encode()


def _decode_continue(token: str) -> int:
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["start"])
    except (ValueError, KeyError) as err:
        raise ApiError.bad_request(f"invalid continue token: {err}") from err


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if k != "metadata"}
    out["metadata"] = {k: v for k, v in obj.get("metadata", {}).items() if k != "managedFields"}
    return out


def _get_path(obj: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = [p for p in path.split(".") if p]
    for part in parts[:-1]:
        obj = obj.setdefault(part, {})
    obj[parts[-1]] = value


def _scale_of(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """The ``autoscaling/v1`` Scale view of an object (``subresources.scale`` paths)."""
    assert rt.scale is not None
    meta = obj["metadata"]
    status: dict[str, Any] = {"replicas": _get_path(obj, rt.scale.status_replicas_path) or 0}
    if rt.scale.label_selector_path:
        selector = _get_path(obj, rt.scale.label_selector_path)
        if selector:
            status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": _get_path(obj, rt.scale.spec_replicas_path) or 0},
        "status": status,
    }
