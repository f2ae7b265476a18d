"""The Gateway API stand-in: attachment and status rules as tables (pure), then for real against
the test API server with the real Gateway API CRDs, HAProxy and two tiny local backends."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client

from deepseek_operator.testing.gateway import (
    CONTROLLER_NAME,
    GATEWAY_CLASS,
    PORTS_ANNOTATION,
    GatewayStandIn,
    compute_gateway_plan,
    gateway_url,
    intersect_hostnames,
    wait_for_gateway_url,
)
from deepseek_operator.testing.kuberay import URL_ANNOTATION
from deepseek_serving.weighted_proxy import Backend, Route
from tests.http_backends import Load, NamedBackend, split, stream, wait_until

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T00:05:00Z"
GROUP, VERSION = "gateway.networking.k8s.io", "v1"


# --- builders -------------------------------------------------------------------------------------


def gateway_obj(
    name: str = "gw", namespace: str = "ns", listeners: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {
            "gatewayClassName": GATEWAY_CLASS,
            "listeners": listeners or [{"name": "http", "port": 80, "protocol": "HTTP"}],
        },
    }


def route_obj(
    backend_refs: list[dict[str, Any]],
    *,
    name: str = "route",
    namespace: str = "ns",
    parent: dict[str, Any] | None = None,
    path: str = "/v1",
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {
            "parentRefs": [parent or {"name": "gw"}],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": path}}], "backendRefs": backend_refs}
            ],
            **spec,
        },
    }


def service_obj(name: str, namespace: str = "ns", url: str | None = None, port: int = 8000) -> dict[str, Any]:
    annotations = {URL_ANNOTATION: url} if url else {}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {"ports": [{"name": "serve", "port": port}]},
    }


def ref(name: str, weight: int = 1, port: int = 8000, **extra: Any) -> dict[str, Any]:
    return {"name": name, "port": port, "weight": weight, **extra}


CLASS = {"metadata": {"name": GATEWAY_CLASS, "generation": 1}, "spec": {"controllerName": CONTROLLER_NAME}}
URL_A, URL_B = "http://127.0.0.1:8000/ns/a", "http://127.0.0.1:8000/ns/b"
SERVICES = [service_obj("a-serve-svc", url=URL_A), service_obj("b-serve-svc", url=URL_B)]


def plan(
    routes: list[dict[str, Any]],
    *,
    gateways: list[dict[str, Any]] | None = None,
    services: list[dict[str, Any]] | None = None,
    namespaces: dict[str, dict[str, str]] | None = None,
    programmed_error: str | None = None,
    now: str = NOW,
) -> Any:
    gateways = gateways if gateways is not None else [gateway_obj()]
    ports = {
        (f"{g['metadata']['namespace']}/{g['metadata']['name']}", int(lst["port"])): 40000 + int(lst["port"])
        for g in gateways
        for lst in g["spec"]["listeners"]
    }
    return compute_gateway_plan(
        classes=[CLASS],
        gateways=gateways,
        routes=routes,
        services=SERVICES if services is None else services,
        namespaces=namespaces or {"ns": {}, "other": {"team": "serving"}},
        ports=ports,
        programmed_error=programmed_error,
        now=now,
    )


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def our_parent(status: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in status["parents"] if p["controllerName"] == CONTROLLER_NAME)


# --- pure: hostnames, URLs, attachment and status ----------------------------------------------------


@pytest.mark.parametrize(
    ("listener", "route", "expected"),
    [
        pytest.param(None, [], [None], id="any-any"),
        pytest.param("*.example.com", [], ["*.example.com"], id="listener-only"),
        pytest.param(None, ["a.io", "b.io"], ["a.io", "b.io"], id="route-only"),
        pytest.param(
            "*.example.com", ["a.example.com", "other.io"], ["a.example.com"], id="route-within-wildcard"
        ),
        pytest.param(
            "a.example.com", ["*.example.com"], ["a.example.com"], id="listener-within-route-wildcard"
        ),
        pytest.param("*.example.com", ["example.com"], [], id="wildcard-needs-a-label"),
        pytest.param("a.io", ["b.io"], [], id="disjoint"),
        pytest.param("*.example.com", ["*.a.example.com"], ["*.a.example.com"], id="narrower-wildcard"),
    ],
)
def test_intersect_hostnames(listener: str | None, route: list[str], expected: list[str | None]) -> None:
    assert intersect_hostnames(listener, route) == expected


@pytest.mark.parametrize(
    ("annotations", "listener", "expected"),
    [
        pytest.param(
            {PORTS_ANNOTATION: '{"80": 41234, "8080": 8080}'}, None, "http://127.0.0.1:41234", id="mapped"
        ),
        pytest.param(
            {PORTS_ANNOTATION: '{"80": 41234, "8080": 8080}'}, "alt", "http://127.0.0.1:8080", id="named"
        ),
        pytest.param({}, None, "http://127.0.0.1:80", id="real-cluster-spec-port"),
    ],
)
def test_gateway_url(annotations: dict[str, str], listener: str | None, expected: str) -> None:
    gateway = gateway_obj(
        listeners=[
            {"name": "http", "port": 80, "protocol": "HTTP"},
            {"name": "alt", "port": 8080, "protocol": "HTTP"},
        ]
    )
    gateway["metadata"]["annotations"] = annotations
    gateway["status"] = {"addresses": [{"type": "IPAddress", "value": "127.0.0.1"}]}
    assert gateway_url(gateway, listener) == expected


def test_gateway_url_needs_an_address() -> None:
    with pytest.raises(ValueError, match="no address yet"):
        gateway_url(gateway_obj())


def test_an_accepted_route_is_split_by_weight_and_reported() -> None:
    result = plan([route_obj([ref("a-serve-svc", 80), ref("b-serve-svc", 20)])])
    [listener] = result.listeners
    assert (listener.host, listener.port) == ("127.0.0.1", 40080)
    assert listener.routes == (Route("/v1", (Backend(URL_A, 80), Backend(URL_B, 20))),)
    parent = our_parent(result.route_statuses["ns/route"])
    assert parent["parentRef"] == {"name": "gw"}
    assert conditions(parent) == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
    gateway = result.gateway_statuses["ns/gw"]
    assert gateway["addresses"] == [{"type": "IPAddress", "value": "127.0.0.1"}]
    assert conditions(gateway) == {"Accepted": ("True", "Accepted"), "Programmed": ("True", "Programmed")}
    [status] = gateway["listeners"]
    assert status["attachedRoutes"] == 1
    assert status["supportedKinds"] == [{"group": GROUP, "kind": "HTTPRoute"}]
    assert conditions(status) == {
        "Accepted": ("True", "Accepted"),
        "Programmed": ("True", "Programmed"),
        "ResolvedRefs": ("True", "ResolvedRefs"),
        "Conflicted": ("False", "NoConflicts"),
    }
    assert result.class_statuses[GATEWAY_CLASS]["conditions"][0]["reason"] == "Accepted"


OTHER_NS_ROUTE = {"namespace": "other", "parent": {"name": "gw", "namespace": "ns"}}
SELECTOR_LISTENER = {
    "name": "http",
    "port": 80,
    "protocol": "HTTP",
    "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "serving"}}}},
}


@pytest.mark.parametrize(
    ("route_args", "route_kwargs", "gateway_listeners", "services", "accepted", "resolved", "served"),
    [
        pytest.param(
            [ref("a-serve-svc"), ref("missing")],
            {},
            None,
            None,
            ("True", "Accepted"),
            ("False", "BackendNotFound"),
            (Backend(URL_A), Backend(None)),
            id="missing-service-gets-500-share",
        ),
        pytest.param(
            [ref("plain")],
            {},
            None,
            [service_obj("plain")],
            ("True", "Accepted"),
            ("False", "BackendNotFound"),
            (Backend(None),),
            id="service-without-url-annotation",
        ),
        pytest.param(
            [ref("a-serve-svc", port=9999)],
            {},
            None,
            None,
            ("True", "Accepted"),
            ("False", "BackendNotFound"),
            (Backend(None),),
            id="port-not-on-service",
        ),
        pytest.param(
            [ref("a-serve-svc", group="example.io", kind="Bucket")],
            {},
            None,
            None,
            ("True", "Accepted"),
            ("False", "InvalidKind"),
            (Backend(None),),
            id="not-a-service",
        ),
        pytest.param(
            [ref("a-serve-svc", namespace="elsewhere")],
            {},
            None,
            None,
            ("True", "Accepted"),
            ("False", "RefNotPermitted"),
            (Backend(None),),
            id="cross-namespace-backend",
        ),
        pytest.param(
            [ref("a-serve-svc")],
            {"parent": {"name": "gw", "sectionName": "nope"}},
            None,
            None,
            ("False", "NoMatchingParent"),
            ("True", "ResolvedRefs"),
            None,
            id="section-name-matches-no-listener",
        ),
        pytest.param(
            [],
            OTHER_NS_ROUTE,
            None,
            [],
            ("False", "NotAllowedByListeners"),
            ("True", "ResolvedRefs"),
            None,
            id="other-namespace-not-allowed-by-default",
        ),
        pytest.param(
            [],
            OTHER_NS_ROUTE,
            [SELECTOR_LISTENER],
            [],
            ("True", "Accepted"),
            ("True", "ResolvedRefs"),
            (),
            id="namespace-selector-allows",
        ),
        pytest.param(
            [ref("a-serve-svc")],
            {"hostnames": ["b.io"]},
            [{"name": "http", "port": 80, "protocol": "HTTP", "hostname": "a.io"}],
            None,
            ("False", "NoMatchingListenerHostname"),
            ("True", "ResolvedRefs"),
            None,
            id="hostnames-disjoint",
        ),
        pytest.param(
            [ref("a-serve-svc")],
            {
                "rules": [
                    {"backendRefs": [ref("a-serve-svc")], "filters": [{"type": "RequestHeaderModifier"}]}
                ]
            },
            None,
            None,
            ("False", "UnsupportedValue"),
            ("True", "ResolvedRefs"),
            None,
            id="filters-not-supported",
        ),
        pytest.param(
            [ref("a-serve-svc")],
            {},
            [{"name": "https", "port": 443, "protocol": "HTTPS"}],
            None,
            ("False", "NotAllowedByListeners"),
            ("True", "ResolvedRefs"),
            None,
            id="https-listener-not-served",
        ),
    ],
)
def test_route_attachment_and_references(
    route_args: list[dict[str, Any]],
    route_kwargs: dict[str, Any],
    gateway_listeners: list[dict[str, Any]] | None,
    services: list[dict[str, Any]] | None,
    accepted: tuple[str, str],
    resolved: tuple[str, str],
    served: tuple[Backend, ...] | None,
) -> None:
    """``served``: the backends the proxy route gets (None: the route is not served at all)."""
    route = route_obj(route_args, **route_kwargs)
    result = plan([route], gateways=[gateway_obj(listeners=gateway_listeners)], services=services)
    parent = our_parent(result.route_statuses[f"{route['metadata']['namespace']}/route"])
    assert parent["parentRef"] == route["spec"]["parentRefs"][0]
    assert conditions(parent) == {"Accepted": accepted, "ResolvedRefs": resolved}
    assert all(c["observedGeneration"] == 1 for c in parent["conditions"])
    tables = [proxy_route.backends for listener in result.listeners for proxy_route in listener.routes]
    assert tables == ([] if served is None else [served])


def test_routes_of_other_controllers_are_left_alone() -> None:
    foreign_gateway = {
        **gateway_obj("foreign"),
        "spec": {**gateway_obj()["spec"], "gatewayClassName": "istio"},
    }
    theirs = {
        "parentRef": {"name": "foreign"},
        "controllerName": "istio.io/gateway-controller",
        "conditions": [],
    }
    route = route_obj([ref("a-serve-svc")], parent={"name": "foreign"})
    route["status"] = {"parents": [theirs]}
    result = plan([route], gateways=[gateway_obj(), foreign_gateway])
    assert "ns/route" not in result.route_statuses
    assert "ns/foreign" not in result.gateway_statuses
    both = route_obj([ref("a-serve-svc")])
    both["spec"]["parentRefs"].append({"name": "foreign"})
    both["status"] = {"parents": [theirs]}
    status = plan([both], gateways=[gateway_obj(), foreign_gateway]).route_statuses["ns/route"]
    assert [p["controllerName"] for p in status["parents"]] == [
        "istio.io/gateway-controller",
        CONTROLLER_NAME,
    ]


@pytest.mark.parametrize(
    ("listeners", "accepted", "listener_accepted"),
    [
        pytest.param(
            [{"name": "https", "port": 443, "protocol": "HTTPS"}],
            ("False", "ListenersNotValid"),
            [("False", "UnsupportedProtocol")],
            id="no-listener-served",
        ),
        pytest.param(
            [
                {"name": "http", "port": 80, "protocol": "HTTP"},
                {"name": "tcp", "port": 9000, "protocol": "TCP"},
            ],
            ("True", "ListenersNotValid"),
            [("True", "Accepted"), ("False", "UnsupportedProtocol")],
            id="some-listeners-served",
        ),
    ],
)
def test_unsupported_listeners(
    listeners: list[dict[str, Any]], accepted: tuple[str, str], listener_accepted: list[tuple[str, str]]
) -> None:
    status = plan([], gateways=[gateway_obj(listeners=listeners)]).gateway_statuses["ns/gw"]
    assert conditions(status)["Accepted"] == accepted
    assert [conditions(lst)["Accepted"] for lst in status["listeners"]] == listener_accepted


def test_a_refused_table_marks_gateways_not_programmed() -> None:
    status = plan([], programmed_error="cannot bind socket").gateway_statuses["ns/gw"]
    assert conditions(status)["Programmed"] == ("False", "Invalid")
    assert status["conditions"][1]["message"] == "cannot bind socket"
    assert conditions(status["listeners"][0])["Programmed"] == ("False", "Invalid")


def test_transition_times_move_only_when_a_status_flips() -> None:
    route = route_obj([ref("a-serve-svc")])
    first = plan([route]).route_statuses["ns/route"]
    route["status"] = first
    again = our_parent(plan([route], now=LATER).route_statuses["ns/route"])
    assert {c["lastTransitionTime"] for c in again["conditions"]} == {NOW}
    route["spec"]["rules"][0]["backendRefs"] = [ref("missing")]
    flipped = our_parent(plan([route], now=LATER).route_statuses["ns/route"])
    times = {c["type"]: c["lastTransitionTime"] for c in flipped["conditions"]}
    assert times == {"Accepted": NOW, "ResolvedRefs": LATER}


# --- the real CRDs on the test API server ----------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"path": "/a//b"}, "must not contain '//'", id="cel-path-rule"),
        pytest.param({"path": "v1"}, "must be an absolute path", id="cel-absolute-path"),
        pytest.param({"weight": 1_000_001}, "should be less than or equal to 1000000", id="openapi-maximum"),
    ],
)
def test_the_real_crds_validate_routes(
    gateway_crds: list[str], custom: Any, namespace: str, change: dict[str, Any], message: str
) -> None:
    backend = ref("a-serve-svc", change.get("weight", 1))
    body = route_obj([backend], namespace=namespace, path=change.get("path", "/"))
    del body["metadata"]["generation"]
    with pytest.raises(client.ApiException) as refused:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", body)
    assert refused.value.status == 422
    assert message in refused.value.body


def test_the_real_crds_default_what_the_operator_leaves_out(
    gateway_crds: list[str], custom: Any, namespace: str
) -> None:
    body = route_obj([{"name": "a-serve-svc", "port": 8000}], namespace=namespace)
    del body["metadata"]["generation"]
    created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", body)
    assert created["spec"]["parentRefs"] == [{"name": "gw", "group": GROUP, "kind": "Gateway"}]
    assert created["spec"]["rules"][0]["backendRefs"] == [
        {"name": "a-serve-svc", "port": 8000, "group": "", "kind": "Service", "weight": 1}
    ]


# --- for real: the API server, the real CRDs, HAProxy ------------------------------------------------


@pytest.fixture
def custom(k8s_client: Any) -> Any:
    return client.CustomObjectsApi(k8s_client)


@pytest.fixture
def backends(k8s_client: Any, namespace: str) -> Iterator[tuple[NamedBackend, NamedBackend]]:
    """Two local servers behind Services annotated as the KubeRay stand-in annotates serve Services."""
    core = client.CoreV1Api(k8s_client)
    with NamedBackend("a") as a, NamedBackend("b") as b:
        for backend in (a, b):
            core.create_namespaced_service(
                namespace,
                service_obj(
                    f"{backend.name}-serve-svc", namespace, f"{backend.url}/{namespace}/{backend.name}"
                ),
            )
        yield a, b


def create_gateway(custom: Any, namespace: str) -> str:
    """A Gateway on port 80 (privileged: the stand-in maps it to a free local port); its URL."""
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "gateways", gateway_obj("gw", namespace)
    )
    return wait_for_gateway_url(custom, namespace, "gw")


def put_route(custom: Any, namespace: str, backend_refs: list[dict[str, Any]]) -> None:
    """Create or update the route, then wait until the stand-in served this generation (it
    programs the proxy before it writes status)."""
    body = route_obj(backend_refs, namespace=namespace, path="/")
    del body["metadata"]["generation"]
    try:
        current = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", "route")
    except client.ApiException:
        current = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", body)
    else:
        current["spec"] = body["spec"]
        current = custom.replace_namespaced_custom_object(
            GROUP, VERSION, namespace, "httproutes", "route", current
        )
    wait_for_route(custom, namespace, current["metadata"]["generation"])


def wait_for_route(custom: Any, namespace: str, generation: int) -> dict[str, Any]:
    def served() -> dict[str, Any] | None:
        route = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", "route")
        parents = [
            p
            for p in (route.get("status") or {}).get("parents") or []
            if p["controllerName"] == CONTROLLER_NAME
        ]
        if parents and all(c["observedGeneration"] == generation for c in parents[0]["conditions"]):
            return route
        return None

    route: dict[str, Any] = wait_until(served, timeout_s=30)
    return route


def test_a_route_splits_traffic_by_weight_and_follows_changes(
    gateway: GatewayStandIn, custom: Any, namespace: str, backends: tuple[NamedBackend, NamedBackend]
) -> None:
    a, _b = backends
    base = create_gateway(custom, namespace)
    put_route(custom, namespace, [ref("a-serve-svc", 80), ref("b-serve-svc", 20)])
    requests, tolerance = 400, 32  # 4 standard deviations of a binomial(400, 0.2): see test_weighted_proxy
    first = split(base, requests, path="/v1/models")
    assert abs(first["a"] - 0.8 * requests) <= tolerance, first
    assert a.paths[-1] == f"/{namespace}/a/v1/models"  # the Service URL's prefix, prepended
    put_route(custom, namespace, [ref("a-serve-svc", 20), ref("b-serve-svc", 80)])
    second = split(base, requests)
    assert abs(second["b"] - 0.8 * requests) <= tolerance, second
    print(f"gateway split 80/20 -> {dict(first)}, 20/80 -> {dict(second)}")

    # Status as a real implementation writes it.
    gw = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "gateways", "gw")
    assert gw["status"]["addresses"] == [{"type": "IPAddress", "value": "127.0.0.1"}]
    assert conditions(gw["status"]) == {
        "Accepted": ("True", "Accepted"),
        "Programmed": ("True", "Programmed"),
    }
    [listener] = gw["status"]["listeners"]
    assert (listener["name"], listener["attachedRoutes"]) == ("http", 1)
    assert json.loads(gw["metadata"]["annotations"][PORTS_ANNOTATION])["80"] == int(base.rsplit(":", 1)[1])
    route = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", "route")
    parent = our_parent(route["status"])
    assert parent["parentRef"]["name"] == "gw"
    assert conditions(parent) == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
    gateway_class = custom.get_cluster_custom_object(GROUP, VERSION, "gatewayclasses", GATEWAY_CLASS)
    assert conditions(gateway_class["status"])["Accepted"] == ("True", "Accepted")


def test_removing_a_backend_fails_no_request_in_flight_or_new(
    gateway: GatewayStandIn, custom: Any, namespace: str, backends: tuple[NamedBackend, NamedBackend]
) -> None:
    """Streams on b keep going while b leaves the route; new requests move to a; nothing fails."""
    _a, b = backends
    base = create_gateway(custom, namespace)
    put_route(custom, namespace, [ref("a-serve-svc", 0), ref("b-serve-svc", 1)])
    events = 20
    with ThreadPoolExecutor(2) as pool, Load(base, clients=4) as load:
        streams = [pool.submit(stream, base, f"/s/stream?events={events}&interval=0.1") for _ in range(2)]
        wait_until(lambda: sum(path.endswith(f"events={events}&interval=0.1") for path in b.paths) == 2)
        load.wait_for(20)
        put_route(custom, namespace, [ref("a-serve-svc", 1)])
        served_before = dict(load.served)
        load.wait_for(50)
        results = [future.result(timeout=60) for future in streams]
    moved = {name: load.served[name] - served_before.get(name, 0) for name in ("a", "b")}
    print(f"requests {load.completed}, failures {load.failures}, after the removal {moved}")
    assert load.failures == []
    assert moved["a"] >= 50
    assert moved["b"] <= 4  # at most one keep-alive request per client still on the old worker
    for name, received in results:
        assert (name, received) == ("b", [f"data: b {i}" for i in range(events)])


def test_unresolved_backends_get_500s_until_their_service_appears(
    gateway: GatewayStandIn,
    custom: Any,
    k8s_client: Any,
    namespace: str,
    backends: tuple[NamedBackend, NamedBackend],
) -> None:
    a, _ = backends
    base = create_gateway(custom, namespace)
    put_route(custom, namespace, [ref("a-serve-svc", 1), ref("late-serve-svc", 1)])
    route = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", "route")
    assert conditions(our_parent(route["status"]))["ResolvedRefs"] == ("False", "BackendNotFound")
    answered = split(base, 100)
    # The unresolved half answers 500 (exactly 50 with one round-robin cycle; 20 = 4 standard
    # deviations of a binomial(100, 0.5) in case a reload for another test restarts the cycle).
    assert set(answered) == {"a", "500"}, answered
    assert abs(answered["500"] - 50) <= 20, answered
    late = service_obj("late-serve-svc", namespace, f"{a.url}/late")
    client.CoreV1Api(k8s_client).create_namespaced_service(namespace, copy.deepcopy(late))

    def resolved() -> bool:
        route = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", "route")
        return conditions(our_parent(route["status"]))["ResolvedRefs"] == ("True", "ResolvedRefs")

    wait_until(resolved, timeout_s=30)
    assert split(base, 100) == {"a": 100}
