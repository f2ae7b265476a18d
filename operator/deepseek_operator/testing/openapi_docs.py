"""Just enough OpenAPI v3 for clients that read it: kubectl checks a PATCH operation per kind for
the ``fieldValidation`` parameter before it lets the server validate fields, and ``kubectl explain``
reads the schemas. Custom resources carry their CRD version's schema; built-ins an open object.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from deepseek_operator.testing.resources import Registry, ResourceType

__all__ = ["openapi_group_version", "openapi_index"]

_WRITE_PARAMS = [
    {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    for name in ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")
]


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _schema_name(rt: ResourceType) -> str:
    reversed_group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{reversed_group}.{rt.version}.{rt.kind}"


def _gvk(rt: ResourceType) -> dict[str, str]:
    return {"group": rt.group, "version": rt.version, "kind": rt.kind}


def openapi_group_version(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt in types:
        ref = {"$ref": f"#/components/schemas/{_schema_name(rt)}"}
        content = {"application/json": {"schema": ref}}
        prefix = f"/{_gv_path(group, version)}" + ("/namespaces/{namespace}" if rt.namespaced else "")
        operation = {
            "x-kubernetes-group-version-kind": _gvk(rt),
            "parameters": _WRITE_PARAMS,
            "responses": {"200": {"description": "OK", "content": content}},
        }
        paths[f"{prefix}/{rt.plural}/{{name}}"] = {
            "get": {**operation, "x-kubernetes-action": "get"},
            "put": {**operation, "x-kubernetes-action": "put", "requestBody": {"content": content}},
            "patch": {**operation, "x-kubernetes-action": "patch", "requestBody": {"content": content}},
            "delete": {**operation, "x-kubernetes-action": "delete"},
        }
        paths[f"{prefix}/{rt.plural}"] = {
            "post": {**operation, "x-kubernetes-action": "post", "requestBody": {"content": content}},
        }
        schema = (
            dict(rt.schema)
            if rt.schema is not None
            else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        )
        schemas[_schema_name(rt)] = {**schema, "x-kubernetes-group-version-kind": [_gvk(rt)]}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def openapi_index(registry: Registry) -> dict[str, Any]:
    """``/openapi/v3``: one entry per group-version, its URL hashed by content as the server does."""
    out: dict[str, Any] = {}
    for group, versions in registry.groups().items():
        for version in versions:
            doc = openapi_group_version(registry, group, version)
            digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16].upper()
            path = _gv_path(group, version)
            out[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": out}
