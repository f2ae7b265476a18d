"""Conformance of the test API server with Kubernetes API semantics.

Each test states a behaviour of a real API server and cites where Kubernetes documents it:
"API conventions" (community/contributors/devel/sig-architecture/api-conventions.md),
"API concepts" (kubernetes.io/docs/reference/using-api/api-concepts), "Server-Side Apply",
"Garbage Collection", "Finalizers", and the CustomResourceDefinition docs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from deepseek_operator.testing.server import ApiServer
from tests.testing.conftest import WIDGETS, Http, widget

pytestmark = pytest.mark.usefixtures("widgets_crd")


def eventually(check: Callable[[], Any], timeout_s: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def cm(name: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **extra}, "data": {"a": "1"}}


# --- discovery -------------------------------------------------------------------------------


def test_discovery_lists_core_groups_and_crd_groups(http: Http) -> None:
    """API concepts, "Discovery": /api lists v1, /apis lists every group (CRD groups once established)."""
    assert http.ok("GET", "/api")["versions"] == ["v1"]
    groups = {g["name"]: g for g in http.ok("GET", "/apis")["groups"]}
    assert {"apps", "coordination.k8s.io", "rbac.authorization.k8s.io", "example.dev"} <= set(groups)
    assert groups["example.dev"]["preferredVersion"]["groupVersion"] == "example.dev/v1"
    resources = {r["name"]: r for r in http.ok("GET", "/apis/example.dev/v1")["resources"]}
    assert resources["widgets"]["kind"] == "Widget"
    assert resources["widgets"]["shortNames"] == ["wd"]
    assert {"widgets/status", "widgets/scale"} <= set(resources)
    assert "gitVersion" in http.ok("GET", "/version")


# --- create / read / update ------------------------------------------------------------------


def test_create_sets_server_fields(http: Http, ns: str) -> None:
    """API conventions, "Metadata": the server sets uid, creationTimestamp, resourceVersion; CRs get generation 1."""
    obj = http.ok("POST", WIDGETS.format(ns=ns), widget("w"))
    meta = obj["metadata"]
    assert meta["uid"]
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["resourceVersion"]
    assert meta["generation"] == 1
    assert meta["namespace"] == ns


def test_generate_name(http: Http, ns: str) -> None:
    """API conventions, "Idempotency": generateName gets a random suffix from the server."""
    obj = http.ok("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"generateName": "gen-"}})
    assert obj["metadata"]["name"].startswith("gen-")
    assert len(obj["metadata"]["name"]) > 4


def test_create_twice_is_already_exists(http: Http, ns: str) -> None:
    """API conventions, "HTTP Status codes": 409 with reason AlreadyExists."""
    http.ok("POST", f"/api/v1/namespaces/{ns}/configmaps", cm("dup"))
    response = http.request("POST", f"/api/v1/namespaces/{ns}/configmaps", cm("dup"))
    assert response.status_code == 409
    assert response.json()["reason"] == "AlreadyExists"
    assert response.json()["message"] == 'configmaps "dup" already exists'


def test_get_missing_is_not_found_status(http: Http, ns: str) -> None:
    """API conventions, "Response Status Kind": failures are Status objects with code, reason and details."""
    body = http.request("GET", WIDGETS.format(ns=ns) + "/nope").json()
    assert body["kind"] == "Status"
    assert body["status"] == "Failure"
    assert body["code"] == 404
    assert body["reason"] == "NotFound"
    assert body["details"] == {"name": "nope", "group": "example.dev", "kind": "widgets"}


def test_create_in_missing_namespace_is_not_found(http: Http) -> None:
    """Namespaces docs: objects can only be created in existing namespaces."""
    response = http.request("POST", "/api/v1/namespaces/does-not-exist/configmaps", cm("x"))
    assert response.status_code == 404
    assert response.json()["message"] == 'namespaces "does-not-exist" not found'


def test_stale_resource_version_is_conflict(http: Http, ns: str) -> None:
    """API conventions, "Concurrency Control and Consistency": an update with an old resourceVersion gets 409."""
    created = http.ok("POST", WIDGETS.format(ns=ns), widget("w", size=1))
    first = http.ok("PUT", WIDGETS.format(ns=ns) + "/w", {**created, "spec": {"size": 2}})
    response = http.request("PUT", WIDGETS.format(ns=ns) + "/w", {**created, "spec": {"size": 3}})
    assert response.status_code == 409
    assert response.json()["reason"] == "Conflict"
    assert "the object has been modified" in response.json()["message"]
    assert int(first["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])


def test_custom_resource_update_requires_resource_version(http: Http, ns: str) -> None:
    """CRDs: custom resources do not allow unconditional updates (metadata.resourceVersion must be specified)."""
    http.ok("POST", WIDGETS.format(ns=ns), widget("w"))
    response = http.request("PUT", WIDGETS.format(ns=ns) + "/w", widget("w", size=2))
    assert response.status_code == 422
    assert response.json()["details"]["causes"][0]["field"] == "metadata.resourceVersion"


def test_noop_update_keeps_resource_version(http: Http, ns: str) -> None:
    """API concepts, "Resource versions": a write that changes nothing does not produce a new version."""
    created = http.ok("POST", WIDGETS.format(ns=ns), widget("w", size=2))
    again = http.ok("PUT", WIDGETS.format(ns=ns) + "/w", created)
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_generation_counts_spec_changes_only(http: Http, ns: str) -> None:
    """API conventions, "Metadata": generation changes on spec changes, not on metadata or status changes."""
    path = WIDGETS.format(ns=ns) + "/w"
    http.ok("POST", WIDGETS.format(ns=ns), widget("w", size=1))
    labelled = http.ok(
        "PATCH", path, {"metadata": {"labels": {"a": "b"}}}, content_type="application/merge-patch+json"
    )
    assert labelled["metadata"]["generation"] == 1
    with_status = http.ok(
        "PATCH", path + "/status", {"status": {"phase": "Up"}}, content_type="application/merge-patch+json"
    )
    assert with_status["metadata"]["generation"] == 1
    changed = http.ok("PATCH", path, {"spec": {"size": 2}}, content_type="application/merge-patch+json")
    assert changed["metadata"]["generation"] == 2


def test_status_subresource_is_separate(http: Http, ns: str) -> None:
    """CRDs, "Status subresource": the main resource ignores status; /status ignores everything but status."""
    path = WIDGETS.format(ns=ns) + "/w"
    created = http.ok("POST", WIDGETS.format(ns=ns), {**widget("w", size=1), "status": {"phase": "Ignored"}})
    assert "status" not in created
    main = http.ok("PUT", path, {**created, "status": {"phase": "Ignored"}, "spec": {"size": 2}})
    assert "status" not in main
    assert main["spec"]["size"] == 2
    status = http.ok(
        "PUT",
        path + "/status",
        {
            **main,
            "spec": {"size": 9},
            "status": {"phase": "Up"},
            "metadata": {**main["metadata"], "labels": {"x": "y"}},
        },
    )
    assert status["status"] == {"phase": "Up"}
    assert status["spec"]["size"] == 2
    assert "labels" not in status["metadata"]


def test_dry_run_does_not_persist(http: Http, ns: str) -> None:
    """API concepts, "Dry-run": the response is what would be stored; nothing is."""
    obj = http.ok("POST", WIDGETS.format(ns=ns), widget("dry"), dryRun="All")
    assert obj["spec"]["size"] == 1
    assert http.request("GET", WIDGETS.format(ns=ns) + "/dry").status_code == 404


# --- validation -----------------------------------------------------------------------------


def test_invalid_custom_resource_is_422_with_causes(http: Http, ns: str) -> None:
    """CRDs, "Validation": schema violations answer 422 Invalid with details.causes[].field."""
    response = http.request("POST", WIDGETS.format(ns=ns), widget("bad", size=-1, colour="green"))
    assert response.status_code == 422
    body = response.json()
    assert body["reason"] == "Invalid"
    assert body["message"].startswith('Widget.example.dev "bad" is invalid: [')
    causes = {c["field"]: c["reason"] for c in body["details"]["causes"]}
    assert causes == {"spec.size": "FieldValueInvalid", "spec.colour": "FieldValueNotSupported"}


def test_cel_rule_is_enforced(http: Http, ns: str) -> None:
    """CRDs, "Validation rules": x-kubernetes-validations failures are 422 with the rule's message."""
    response = http.request("POST", WIDGETS.format(ns=ns), widget("w", size=5, maxSize=3))
    assert response.status_code == 422
    assert response.json()["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "object": size must not exceed maxSize',
            "field": "spec",
        }
    ]


def test_defaults_and_pruning_with_warnings(http: Http, ns: str) -> None:
    """CRDs, "Defaulting" and "Field pruning": defaults are applied, unknown fields dropped with a warning."""
    response = http.request("POST", WIDGETS.format(ns=ns), widget("w", bogus=True))
    assert response.status_code == 201
    assert response.json()["spec"] == {"size": 1, "maxSize": 10}
    assert 'unknown field \\"spec.bogus\\"' in response.headers["Warning"]


def test_strict_field_validation_rejects_unknown_fields(http: Http, ns: str) -> None:
    """API concepts, "Field validation": fieldValidation=Strict turns unknown fields into 400 BadRequest."""
    response = http.request("POST", WIDGETS.format(ns=ns), widget("w", bogus=True), fieldValidation="Strict")
    assert response.status_code == 400
    assert 'unknown field "spec.bogus"' in response.json()["message"]


def test_non_structural_crd_is_rejected(http: Http) -> None:
    """CRDs, "Specifying a structural schema": v1 CRDs must have structural schemas."""
    crd = json.loads(
        json.dumps(
            http.ok("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.dev")
        )
    )
    crd = {
        "apiVersion": crd["apiVersion"],
        "kind": crd["kind"],
        "metadata": {"name": "gadgets.example.dev"},
        "spec": crd["spec"],
    }
    crd["spec"]["names"] = {"plural": "gadgets", "kind": "Gadget"}
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["size"] = {
        "minimum": 0
    }
    response = http.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert response.status_code == 422
    assert response.json()["details"]["causes"][0]["field"] == (
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].type"
    )


# --- list, selectors, pagination --------------------------------------------------------------


def test_label_and_field_selectors(http: Http, ns: str) -> None:
    """Labels and selectors docs: equality and set-based label selectors; field selectors on metadata.name."""
    base = f"/api/v1/namespaces/{ns}/configmaps"
    http.ok("POST", base, cm("a", labels={"tier": "web", "env": "prod"}))
    http.ok("POST", base, cm("b", labels={"tier": "db"}))
    http.ok("POST", base, cm("c"))

    def names(**params: Any) -> list[str]:
        return [o["metadata"]["name"] for o in http.ok("GET", base, **params)["items"]]

    assert names(labelSelector="tier=web") == ["a"]
    assert names(labelSelector="tier in (web,db)") == ["a", "b"]
    assert names(labelSelector="tier notin (web)") == ["b", "c"]
    assert names(labelSelector="!tier") == ["c"]
    assert names(labelSelector="tier,env!=prod") == ["b"]
    assert names(fieldSelector="metadata.name=b") == ["b"]
    assert names(fieldSelector="metadata.name!=b") == ["a", "c"]
    response = http.request("GET", base, fieldSelector="data.a=1")
    assert response.status_code == 400
    assert "field label not supported" in response.json()["message"]


def test_pagination_with_limit_and_continue(http: Http, ns: str) -> None:
    """API concepts, "Retrieving large results sets in chunks": limit and continue tokens."""
    base = f"/api/v1/namespaces/{ns}/configmaps"
    for i in range(5):
        http.ok("POST", base, cm(f"p{i}"))
    first = http.ok("GET", base, limit=2)
    assert [o["metadata"]["name"] for o in first["items"]] == ["p0", "p1"]
    assert first["metadata"]["remainingItemCount"] == 3
    rest = http.ok("GET", base, limit=10, **{"continue": first["metadata"]["continue"]})
    assert [o["metadata"]["name"] for o in rest["items"]] == ["p2", "p3", "p4"]
    assert "continue" not in rest["metadata"]


# --- watch ----------------------------------------------------------------------------------


def test_watch_from_resource_version_replays_in_order(http: Http, ns: str) -> None:
    """API concepts, "Efficient detection of changes": watch from a list's resourceVersion sees every later change."""
    base = WIDGETS.format(ns=ns)
    rv = http.ok("GET", base)["metadata"]["resourceVersion"]
    http.ok("POST", base, widget("w", size=1))
    http.ok("PATCH", base + "/w", {"spec": {"size": 2}}, content_type="application/merge-patch+json")
    http.ok("DELETE", base + "/w")
    events = []
    for event in http.watch(base, resourceVersion=rv, timeoutSeconds=1):
        events.append(event)
        if len(events) == 3:
            break
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)
    assert len(set(versions)) == 3
    assert events[1]["object"]["spec"]["size"] == 2


def test_watch_without_version_starts_with_current_state(http: Http, ns: str) -> None:
    """API concepts, "Semantics for watch": resourceVersion unset means "get state and start at most recent"."""
    base = f"/api/v1/namespaces/{ns}/configmaps"
    http.ok("POST", base, cm("existing"))
    first = next(http.watch(base, timeoutSeconds=1))
    assert first["type"] == "ADDED"
    assert first["object"]["metadata"]["name"] == "existing"


def test_too_old_resource_version_is_410_gone(http: Http, ns: str, apiserver: ApiServer) -> None:
    """API concepts, "Resource versions": a watch from a compacted version gets a 410 Gone (Expired) ERROR event."""
    base = f"/api/v1/namespaces/{ns}/configmaps"
    old = http.ok("POST", base, cm("x"))["metadata"]["resourceVersion"]
    http.ok("POST", base, cm("y"))
    apiserver.compact()
    event = next(http.watch(base, resourceVersion=old))
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired"


def test_bookmarks_carry_a_resource_version(http: Http, ns: str) -> None:
    """API concepts, "Watch bookmarks": with allowWatchBookmarks the server sends BOOKMARK events with a resumable version."""
    base = f"/api/v1/namespaces/{ns}/configmaps"
    rv = http.ok("GET", base)["metadata"]["resourceVersion"]
    event = next(
        e for e in http.watch(base, resourceVersion=rv, allowWatchBookmarks="true", timeoutSeconds=3)
    )
    assert event["type"] == "BOOKMARK"
    assert event["object"]["kind"] == "ConfigMap"
    assert int(event["object"]["metadata"]["resourceVersion"]) >= int(rv)


def test_watch_with_label_selector_sees_objects_leave(http: Http, ns: str) -> None:
    """API concepts, "Watch" with selectors: an object that stops matching is delivered as DELETED."""
    base = f"/api/v1/namespaces/{ns}/configmaps"
    rv = http.ok("POST", base, cm("x", labels={"app": "a"}))["metadata"]["resourceVersion"]
    http.ok(
        "PATCH",
        base + "/x",
        {"metadata": {"labels": {"app": "b"}}},
        content_type="application/merge-patch+json",
    )
    event = next(http.watch(base, resourceVersion=rv, labelSelector="app=a", timeoutSeconds=1))
    assert event["type"] == "DELETED"


def test_watch_delivers_new_events_live(http: Http, ns: str) -> None:
    """API concepts, "Efficient detection of changes": an open watch receives writes as they happen."""
    base = f"/api/v1/namespaces/{ns}/configmaps"
    rv = http.ok("GET", base)["metadata"]["resourceVersion"]
    writer = threading.Timer(0.2, lambda: Http(str(http.client.base_url)).ok("POST", base, cm("live")))
    writer.start()
    event = next(http.watch(base, resourceVersion=rv, timeoutSeconds=3))
    assert event["type"] == "ADDED"
    assert event["object"]["metadata"]["name"] == "live"


# --- patches --------------------------------------------------------------------------------


def test_json_patch_and_failed_test_op(http: Http, ns: str) -> None:
    """API concepts, "Patch": RFC 6902 JSON patch, whose failed test operation rejects the whole patch."""
    base = f"/api/v1/namespaces/{ns}/configmaps"
    http.ok("POST", base, cm("j"))
    patched = http.ok(
        "PATCH",
        base + "/j",
        [{"op": "add", "path": "/data/b", "value": "2"}],
        content_type="application/json-patch+json",
    )
    assert patched["data"] == {"a": "1", "b": "2"}
    failed = http.request(
        "PATCH",
        base + "/j",
        [{"op": "test", "path": "/data/a", "value": "9"}],
        content_type="application/json-patch+json",
    )
    assert failed.status_code == 422


def test_merge_patch_null_deletes(http: Http, ns: str) -> None:
    """RFC 7386 via API concepts, "Patch": null removes a key; maps merge."""
    base = f"/api/v1/namespaces/{ns}/configmaps"
    http.ok("POST", base, {**cm("m"), "data": {"a": "1", "b": "2"}})
    patched = http.ok(
        "PATCH", base + "/m", {"data": {"a": None, "c": "3"}}, content_type="application/merge-patch+json"
    )
    assert patched["data"] == {"b": "2", "c": "3"}


def test_strategic_merge_patch_merges_containers_by_name(http: Http, ns: str) -> None:
    """API concepts, "Strategic merge patch": lists with a patch merge key (containers: name) merge by key."""
    base = f"/apis/apps/v1/namespaces/{ns}/deployments"
    template = {
        "metadata": {"labels": {"app": "d"}},
        "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]},
    }
    http.ok(
        "POST",
        base,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}}, "template": template},
        },
    )
    patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}]}
            }
        }
    }
    patched = http.ok("PATCH", base + "/d", patch, content_type="application/strategic-merge-patch+json")
    containers = {c["name"]: c["image"] for c in patched["spec"]["template"]["spec"]["containers"]}
    assert containers == {"a": "a:1", "b": "b:2", "c": "c:1"}
    assert patched["metadata"]["generation"] == 2


def test_strategic_merge_patch_is_unsupported_for_custom_resources(http: Http, ns: str) -> None:
    """CRDs: custom resources do not support strategic merge patch (415 UnsupportedMediaType)."""
    http.ok("POST", WIDGETS.format(ns=ns), widget("w"))
    response = http.request(
        "PATCH",
        WIDGETS.format(ns=ns) + "/w",
        {"spec": {"size": 2}},
        content_type="application/strategic-merge-patch+json",
    )
    assert response.status_code == 415


# --- server-side apply ----------------------------------------------------------------------


def apply(http: Http, path: str, obj: dict[str, Any], manager: str, **params: Any) -> Any:
    import yaml

    return http.request(
        "PATCH",
        path,
        yaml.safe_dump(obj),
        content_type="application/apply-patch+yaml",
        fieldManager=manager,
        **params,
    )


def test_apply_creates_and_tracks_managers(http: Http, ns: str) -> None:
    """Server-Side Apply, "Field management": apply creates the object and records the manager's fields."""
    path = WIDGETS.format(ns=ns) + "/a"
    response = apply(http, path, widget("a", size=2, tags=["x"]), "alice")
    assert response.status_code == 201
    entry = next(e for e in response.json()["metadata"]["managedFields"] if e["manager"] == "alice")
    assert entry["operation"] == "Apply"
    assert entry["fieldsV1"]["f:spec"] == {"f:size": {}, "f:tags": {}}


def test_apply_conflicts_and_force(http: Http, ns: str) -> None:
    """Server-Side Apply, "Conflicts": changing a field another manager owns is 409 unless force=true."""
    path = WIDGETS.format(ns=ns) + "/a"
    assert apply(http, path, widget("a", size=2), "alice").status_code == 201
    conflict = apply(http, path, widget("a", size=3), "bob")
    assert conflict.status_code == 409
    assert conflict.json()["details"]["causes"][0] == {
        "reason": "FieldManagerConflict",
        "message": 'conflict with "alice" using example.dev/v1',
        "field": ".spec.size",
    }
    forced = apply(http, path, widget("a", size=3), "bob", force="true")
    assert forced.status_code == 200
    assert forced.json()["spec"]["size"] == 3
    owners = {e["manager"]: e.get("fieldsV1", {}) for e in forced.json()["metadata"]["managedFields"]}
    assert "f:size" in owners["bob"]["f:spec"]
    assert "alice" not in owners or "f:size" not in owners["alice"].get("f:spec", {})


def test_apply_same_value_is_shared_ownership(http: Http, ns: str) -> None:
    """Server-Side Apply, "Conflicts": applying the same value to a field is not a conflict; both own it."""
    path = WIDGETS.format(ns=ns) + "/a"
    apply(http, path, widget("a", size=2), "alice")
    assert apply(http, path, widget("a", size=2), "bob").status_code == 200


def test_identical_apply_is_a_no_op(http: Http, ns: str) -> None:
    """Server-Side Apply: re-applying the same configuration changes nothing, not even resourceVersion."""
    path = WIDGETS.format(ns=ns) + "/a"
    first = apply(http, path, widget("a", size=2), "alice").json()
    again = apply(http, path, widget("a", size=2), "alice").json()
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert again["metadata"]["managedFields"] == first["metadata"]["managedFields"]


def test_apply_removes_fields_dropped_from_the_config(http: Http, ns: str) -> None:
    """Server-Side Apply, "Merge strategy": a field the manager stops applying is removed if nobody else owns it."""
    path = WIDGETS.format(ns=ns) + "/a"
    apply(http, path, widget("a", size=2, colour="red"), "alice")
    after = apply(http, path, widget("a", size=2), "alice").json()
    assert "colour" not in after["spec"]


def test_apply_merges_list_map_items_by_key(http: Http, ns: str) -> None:
    """Server-Side Apply, "Merge strategy": x-kubernetes-list-type: map lists are merged per key across managers."""
    path = WIDGETS.format(ns=ns) + "/a"
    apply(http, path, widget("a", ports=[{"name": "http", "port": 80}]), "alice")
    merged = apply(http, path, widget("a", ports=[{"name": "metrics", "port": 9090}]), "bob").json()
    assert {p["name"] for p in merged["spec"]["ports"]} == {"http", "metrics"}


def test_update_takes_ownership_silently(http: Http, ns: str) -> None:
    """Server-Side Apply, "Conflicts": non-apply writes never conflict; they take the fields they change."""
    path = WIDGETS.format(ns=ns) + "/a"
    apply(http, path, widget("a", size=2), "alice")
    http.ok(
        "PATCH",
        path,
        {"spec": {"size": 4}},
        content_type="application/merge-patch+json",
        fieldManager="editor",
    )
    assert apply(http, path, widget("a", size=5), "alice").status_code == 409


# --- deletion, finalizers, garbage collection ---------------------------------------------------


def test_finalizers_hold_deletion(http: Http, ns: str) -> None:
    """Finalizers docs: deletion with finalizers sets deletionTimestamp; removing the last one deletes the object."""
    path = WIDGETS.format(ns=ns) + "/f"
    created = http.ok(
        "POST",
        WIDGETS.format(ns=ns),
        {**widget("f"), "metadata": {"name": "f", "finalizers": ["example.dev/hold"]}},
    )
    deleting = http.ok("DELETE", path)
    assert deleting["metadata"]["deletionTimestamp"]
    assert deleting["metadata"]["generation"] == created["metadata"]["generation"] + 1
    current = http.ok("GET", path)
    blocked = http.request(
        "PUT",
        path,
        {**current, "metadata": {**current["metadata"], "finalizers": ["example.dev/hold", "new"]}},
    )
    assert blocked.status_code == 422
    http.ok("PATCH", path, {"metadata": {"finalizers": None}}, content_type="application/merge-patch+json")
    assert http.request("GET", path).status_code == 404


def owner_and_child(http: Http, ns: str) -> tuple[dict[str, Any], str]:
    owner = http.ok("POST", WIDGETS.format(ns=ns), widget("owner"))
    ref = {
        "apiVersion": "example.dev/v1",
        "kind": "Widget",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": True,
    }
    http.ok("POST", f"/api/v1/namespaces/{ns}/configmaps", cm("child", ownerReferences=[ref]))
    return owner, f"/api/v1/namespaces/{ns}/configmaps/child"


def test_background_garbage_collection(http: Http, ns: str) -> None:
    """Garbage Collection, "Background cascading deletion": dependents of a deleted owner are deleted."""
    _, child = owner_and_child(http, ns)
    http.ok("DELETE", WIDGETS.format(ns=ns) + "/owner")
    eventually(lambda: http.request("GET", child).status_code == 404)


def test_foreground_garbage_collection(http: Http, ns: str) -> None:
    """Garbage Collection, "Foreground cascading deletion": the owner waits (foregroundDeletion) until dependents are gone."""
    _, child = owner_and_child(http, ns)
    deleting = http.ok("DELETE", WIDGETS.format(ns=ns) + "/owner", {"propagationPolicy": "Foreground"})
    assert "foregroundDeletion" in deleting["metadata"]["finalizers"]
    eventually(lambda: http.request("GET", child).status_code == 404)
    eventually(lambda: http.request("GET", WIDGETS.format(ns=ns) + "/owner").status_code == 404)


def test_orphan_deletion_keeps_dependents(http: Http, ns: str) -> None:
    """Garbage Collection, "Orphaned dependents": propagationPolicy=Orphan removes the owner reference instead."""
    _, child = owner_and_child(http, ns)
    http.ok("DELETE", WIDGETS.format(ns=ns) + "/owner", propagationPolicy="Orphan")
    eventually(lambda: http.request("GET", WIDGETS.format(ns=ns) + "/owner").status_code == 404)
    eventually(lambda: "ownerReferences" not in http.ok("GET", child)["metadata"])


def test_namespace_deletion_removes_its_contents(http: Http) -> None:
    """Namespaces docs: deleting a namespace deletes everything in it; it is Terminating until then."""
    http.ok("POST", "/api/v1/namespaces", {"metadata": {"name": "doomed"}})
    http.ok("POST", "/api/v1/namespaces/doomed/configmaps", cm("x"))
    terminating = http.ok("DELETE", "/api/v1/namespaces/doomed")
    assert terminating["status"]["phase"] == "Terminating"
    refused = http.request("POST", "/api/v1/namespaces/doomed/configmaps", cm("y"))
    assert refused.status_code in (403, 404)
    eventually(lambda: http.request("GET", "/api/v1/namespaces/doomed").status_code == 404)
    assert http.request("GET", "/api/v1/namespaces/doomed/configmaps/x").status_code == 404


def test_delete_preconditions(http: Http, ns: str) -> None:
    """API conventions, "Concurrency Control": DeleteOptions.preconditions with a wrong uid is 409."""
    http.ok("POST", f"/api/v1/namespaces/{ns}/configmaps", cm("p"))
    response = http.request(
        "DELETE", f"/api/v1/namespaces/{ns}/configmaps/p", {"preconditions": {"uid": "wrong"}}
    )
    assert response.status_code == 409


# --- scale ----------------------------------------------------------------------------------


def test_scale_subresource(http: Http, ns: str) -> None:
    """CRDs, "Scale subresource": /scale reads and writes specReplicasPath as an autoscaling/v1 Scale."""
    path = WIDGETS.format(ns=ns) + "/s"
    http.ok("POST", WIDGETS.format(ns=ns), widget("s", replicas=2))
    scale = http.ok("GET", path + "/scale")
    assert scale["kind"] == "Scale"
    assert scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"]["replicas"] == 2
    http.ok("PUT", path + "/scale", {**scale, "spec": {"replicas": 5}})
    assert http.ok("GET", path)["spec"]["replicas"] == 5
    patched = http.ok(
        "PATCH", path + "/scale", {"spec": {"replicas": 1}}, content_type="application/merge-patch+json"
    )
    assert patched["spec"]["replicas"] == 1


def test_deleting_a_crd_deletes_its_objects_and_its_endpoints(http: Http, ns: str) -> None:
    """CRDs, "Delete a CustomResourceDefinition": its custom resources are deleted and its REST endpoint disappears."""
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.example.dev"},
        "spec": {
            "group": "example.dev",
            "scope": "Namespaced",
            "names": {"plural": "gizmos", "kind": "Gizmo"},
            "versions": [
                {
                    "name": "v2",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    http.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    base = f"/apis/example.dev/v2/namespaces/{ns}/gizmos"
    rv = http.ok(
        "POST",
        base,
        {"apiVersion": "example.dev/v2", "kind": "Gizmo", "metadata": {"name": "g"}, "anything": {"goes": 1}},
    )["metadata"]["resourceVersion"]
    assert "v2" in [v["version"] for v in http.ok("GET", "/apis/example.dev")["versions"]]
    http.ok("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gizmos.example.dev")
    assert http.request("GET", base).status_code == 404
    assert "v2" not in [v["version"] for v in http.ok("GET", "/apis/example.dev")["versions"]]
    events = http.watch(f"/apis/example.dev/v1/namespaces/{ns}/widgets", resourceVersion=rv, timeoutSeconds=1)
    assert all(e["object"]["kind"] != "Gizmo" for e in events)
