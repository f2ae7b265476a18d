"""Helpers for the test-environment tests: raw HTTP access and a small CRD of our own."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from deepseek_operator.testing.server import ApiServer

WIDGETS = "/apis/example.dev/v1/namespaces/{ns}/widgets"
WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.dev"},
    "spec": {
        "group": "example.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {
                    "status": {},
                    "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"},
                },
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.size <= self.maxSize",
                                        "message": "size must not exceed maxSize",
                                    }
                                ],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 0, "default": 1},
                                    "maxSize": {"type": "integer", "default": 10},
                                    "replicas": {"type": "integer", "minimum": 0},
                                    "colour": {"type": "string", "enum": ["red", "blue"]},
                                    "tags": {"type": "array", "items": {"type": "string"}},
                                    "ports": {
                                        "type": "array",
                                        "x-kubernetes-list-type": "map",
                                        "x-kubernetes-list-map-keys": ["name"],
                                        "items": {
                                            "type": "object",
                                            "required": ["name"],
                                            "properties": {
                                                "name": {"type": "string"},
                                                "port": {"type": "integer"},
                                            },
                                        },
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {"replicas": {"type": "integer"}, "phase": {"type": "string"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}


class Http:
    """Raw requests against the server, for what client libraries hide (headers, streams, codes)."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=10)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        **params: Any,
    ) -> httpx.Response:
        content = None if body is None else (body if isinstance(body, str) else json.dumps(body))
        return self.client.request(
            method, path, content=content, headers={"Content-Type": content_type}, params=params
        )

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        response = self.request(method, path, body, **kw)
        assert response.status_code < 300, response.text
        result: dict[str, Any] = response.json()
        return result

    def watch(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        with self.client.stream("GET", path, params={"watch": "true", **params}, timeout=10) as response:
            for line in response.iter_lines():
                if line:
                    yield json.loads(line)


@pytest.fixture(scope="session")
def http(apiserver: ApiServer) -> Iterator[Http]:
    api = Http(apiserver.url)
    yield api
    api.client.close()


@pytest.fixture(scope="session")
def widgets_crd(http: Http) -> dict[str, Any]:
    response = http.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    assert response.status_code in (201, 409), response.text
    return WIDGET_CRD


@pytest.fixture
def ns(http: Http) -> Iterator[str]:
    name = f"conf-{uuid.uuid4().hex[:8]}"
    http.ok("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    http.request("DELETE", f"/api/v1/namespaces/{name}")


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}
