"""Conformance of the test API server with a real one's size limits.

- kube-apiserver reads at most `MaxRequestBodyBytes` (3 MiB, 3145728 bytes) of a write's body
  (`staging/src/k8s.io/apiserver/pkg/endpoints/handlers/rest.go`, `limitedReadBody`); a longer body
  gets 413 with reason RequestEntityTooLarge and "Request entity too large: limit is 3145728".
- etcd refuses a request over its `--max-request-bytes` (1.5 MiB by default) with
  "etcdserver: request is too large"; the API server retries a create, update or patch once
  without `managedFields` (`handlers/create.go`, `update.go`, `patch.go`: `isTooLargeError`; not a
  server-side apply) and otherwise passes etcd's error on as a 500 Status of unknown (empty, so
  absent) reason (`responsewriters/status.go`). A dry run never reaches etcd.
"""

from __future__ import annotations

from typing import Any

import pytest

from deepseek_operator.testing.handlers import MAX_REQUEST_BODY_BYTES
from deepseek_operator.testing.store import MAX_STORED_OBJECT_BYTES
from tests.testing.conftest import Http

pytestmark = pytest.mark.usefixtures("widgets_crd")


def _config_map(name: str, body_bytes: int) -> str:
    """A ConfigMap's JSON body of exactly `body_bytes` bytes."""
    head, tail = (
        f'{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"big":"',
        '"}}',
    )
    return head + "x" * (body_bytes - len(head) - len(tail)) + tail


def test_the_limits_are_the_real_servers() -> None:
    assert (MAX_REQUEST_BODY_BYTES, MAX_STORED_OBJECT_BYTES) == (3145728, 1572864)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_a_body_over_3_mib_is_413(http: Http, ns: str, method: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    http.ok("POST", path, {"metadata": {"name": "small"}, "data": {"a": "1"}})
    target = path if method == "POST" else f"{path}/small"
    content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
    response = http.request(
        method, target, _config_map("small", MAX_REQUEST_BODY_BYTES + 1), content_type=content_type
    )
    assert response.status_code == 413
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Request entity too large: limit is 3145728",
        "reason": "RequestEntityTooLarge",
        "code": 413,
    }
    assert http.ok("GET", f"{path}/small")["data"] == {"a": "1"}


def test_a_body_of_exactly_3_mib_is_read(http: Http, ns: str) -> None:
    """A dry run never reaches etcd: only the body limit applies."""
    path = f"/api/v1/namespaces/{ns}/configmaps"
    response = http.request("POST", path, _config_map("exact", MAX_REQUEST_BODY_BYTES), dryRun="All")
    assert response.status_code == 201, response.text[:300]
    assert http.request("GET", f"{path}/exact").status_code == 404


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param(
            "/api/v1/namespaces/{ns}/configmaps",
            {"metadata": {"name": "huge"}, "data": {"big": "x" * (MAX_STORED_OBJECT_BYTES + 1)}},
            id="configmap",
        ),
        pytest.param(
            "/apis/example.dev/v1/namespaces/{ns}/widgets",
            {
                "apiVersion": "example.dev/v1",
                "kind": "Widget",
                "metadata": {"name": "huge", "annotations": {"note": "x" * (MAX_STORED_OBJECT_BYTES + 1)}},
                "spec": {},
            },
            id="custom-resource",
        ),
    ],
)
def test_an_object_over_etcds_limit_is_refused_as_etcd_refuses_it(
    http: Http, ns: str, path: str, body: dict[str, Any]
) -> None:
    collection = path.format(ns=ns)
    response = http.request("POST", collection, body)
    assert response.status_code == 500
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "etcdserver: request is too large",
        "code": 500,
    }
    assert http.request("GET", f"{collection}/huge").status_code == 404


def test_an_update_that_grows_past_etcds_limit_is_refused_and_nothing_changes(http: Http, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    created = http.ok("POST", path, {"metadata": {"name": "grows"}, "data": {"a": "1"}})
    grown = {**created, "data": {"a": "x" * (MAX_STORED_OBJECT_BYTES + 1)}}
    response = http.request("PUT", f"{path}/grows", grown)
    assert (response.status_code, response.json()["message"]) == (500, "etcdserver: request is too large")
    current = http.ok("GET", f"{path}/grows")
    assert (current["data"], current["metadata"]["resourceVersion"]) == (
        {"a": "1"},
        created["metadata"]["resourceVersion"],
    )


def test_a_write_too_large_only_with_its_managed_fields_is_stored_without_them(http: Http, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    created = http.ok("POST", path, {"metadata": {"name": "fields"}, "data": {"a": "1"}})
    # An update that rewrites managedFields itself (as kubectl's client-side-apply upgrade does).
    entry = {"manager": "m" * 1000, "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1"}
    managed = [entry] * (MAX_STORED_OBJECT_BYTES // 1000)
    body = {
        **created,
        "metadata": {**created["metadata"], "managedFields": managed},
        "data": {"a": "x" * 100_000},
    }
    stored = http.ok("PUT", f"{path}/fields", body)
    assert stored["data"]["a"] == "x" * 100_000
    assert "managedFields" not in stored["metadata"]


def _many_keys(count: int) -> dict[str, str]:
    """ConfigMap data whose managedFields (one entry per key) add about as much as the data."""
    return {f"k{index:06d}": "v" for index in range(count)}


def test_a_create_too_large_only_with_its_managed_fields_is_stored_without_them(http: Http, ns: str) -> None:
    body = {"metadata": {"name": "keys"}, "data": _many_keys(80_000)}
    stored = http.ok("POST", f"/api/v1/namespaces/{ns}/configmaps", body)
    assert len(stored["data"]) == 80_000
    assert "managedFields" not in stored["metadata"]


def test_server_side_apply_is_not_retried_without_managed_fields(http: Http, ns: str) -> None:
    """`handlers/patch.go`: the retry leaves apply patches out (their managedFields are the point)."""
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "applied"},
        "data": _many_keys(80_000),
    }
    response = http.request(
        "PATCH",
        f"/api/v1/namespaces/{ns}/configmaps/applied",
        body,
        content_type="application/apply-patch+yaml",
        fieldManager="tests",
    )
    assert (response.status_code, response.json()["message"]) == (500, "etcdserver: request is too large")
