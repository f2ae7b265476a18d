"""A Gateway API data-plane stand-in: Gateways and HTTPRoutes served by a real HAProxy.

It is a client of the API server like a Gateway controller (Envoy Gateway, Istio, Cilium): it
watches the GatewayClasses whose ``spec.controllerName`` is its own (``CONTROLLER_NAME`` by
default), their Gateways, the HTTPRoutes attached to them and the Services those routes send to.
Every change (watch events, plus a periodic resync) recomputes one routing table, which a
``deepseek_serving.weighted_proxy.WeightedProxy`` (HAProxy, master-worker) serves after a hitless
reload: requests in flight, long streams included, finish on the old worker; no new connection is
refused. Status is written as a real implementation writes it: GatewayClass ``Accepted``;
Gateway ``addresses``, ``Accepted``/``Programmed`` and per-listener ``supportedKinds``,
``attachedRoutes`` and ``Accepted``/``Programmed``/``ResolvedRefs``/``Conflicted``; HTTPRoute
``status.parents[]`` entries of its own ``controllerName`` (others' entries are kept) with
``Accepted`` and ``ResolvedRefs`` and the reasons the Gateway API defines.

How a test reaches a Gateway: the way a test on kind does, from the Gateway object:
``status.addresses[0]`` (IPAddress ``127.0.0.1``) and the listener's port, mapped through the
``testing.deepseek.serving.dev/listener-ports`` annotation (``PORTS_ANNOTATION``: JSON, spec port
-> local port) which the stand-in writes before it reports ``Programmed``; ``gateway_url(gateway)``
does exactly that and falls back to the spec port where the annotation is absent (a real cluster).
The spec port itself is used when it is unprivileged (>= 1024) and free on 127.0.0.1; otherwise
(80, or a port taken) a free port is picked. Each Gateway keeps its ports for its lifetime.

Backends: there are no Pods or EndpointSlices here. A backendRef (a Service and port in the
route's namespace) resolves to the URL in the Service's ``testing.deepseek.serving.dev/url``
annotation (``kuberay.URL_ANNOTATION``), which the KubeRay stand-in writes on the serve Services
it creates (``http://127.0.0.1:<serve port>/<namespace>/<name>``: the shared local Ray Serve
serves each RayService under its own path prefix, which the proxy prepends). Any Service may
carry that annotation (a test pointing one at its own HTTP server).

Differences from a real Gateway implementation (by design or not yet):
- one HAProxy on 127.0.0.1 for every Gateway; a Gateway's address is always ``127.0.0.1`` and
  its listeners are local ports as described above (``spec.addresses`` other than 127.0.0.1 are
  refused with ``UnsupportedAddress``); no LoadBalancer Service, no per-Gateway Deployment;
- HTTP listeners only: HTTPS/TLS/TCP/UDP listeners are ``Accepted=False``/``UnsupportedProtocol``;
  no GRPCRoute/TLSRoute/TCPRoute, no ListenerSets; listeners sharing a port (different
  hostnames) share one table, where route hostname precedence stands in for listener isolation;
- HTTPRoute matches: ``PathPrefix`` and ``Exact`` paths and hostnames (listener/route hostname
  intersection as specified); header, query-parameter, method and ``RegularExpression`` matches
  and every filter make the route ``Accepted=False``/``UnsupportedValue`` (it is not served);
  ``timeouts`` are ignored (HAProxy's long streaming timeouts apply); no retries beyond
  connection failures, no session persistence;
- backendRefs: core Services only; the Service must carry the URL annotation, else the ref is
  ``ResolvedRefs=False``/``BackendNotFound`` (a real implementation would route to its endpoints,
  or answer 503 without any); the annotation's URL serves every port the Service declares;
  cross-namespace refs are always ``RefNotPermitted`` (ReferenceGrants are not read);
  a rule whose weights are all 0 answers 500, like one whose refs are all invalid;
- weights above 256 are scaled to HAProxy's 0..256 (proportions kept, nonzero stays nonzero);
  the split is HAProxy's smooth weighted round robin per worker (exact over each cycle of
  ``sum(weights)`` requests), where Envoy picks at random per request;
- one ``Programmed`` for all Gateways: a reload HAProxy refuses (a port taken meanwhile) leaves
  the previous table serving, marks the Gateways ``Programmed=False``/``Invalid`` with HAProxy's
  message and is retried on new ports next pass;
- GatewayClass ``parametersRef`` and ``supportedFeatures`` are not used or reported; no Events.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from deepseek_operator.testing.clock import system_clock
from deepseek_operator.testing.kuberay import URL_ANNOTATION
from deepseek_operator.testing.process import free_port
from deepseek_operator.testing.store import rfc3339
from deepseek_serving.weighted_proxy import Backend, Listener, ProxyError, Route, WeightedProxy

__all__ = [
    "CONTROLLER_NAME",
    "GATEWAY_CLASS",
    "PORTS_ANNOTATION",
    "GatewayPlan",
    "GatewayStandIn",
    "compute_gateway_plan",
    "find_gateway_crds",
    "gateway_class",
    "gateway_url",
    "install_gateway_crds",
    "intersect_hostnames",
    "listener_ports",
    "wait_for_gateway_url",
]

log = logging.getLogger(__name__)

GROUP, VERSION = "gateway.networking.k8s.io", "v1"
CONTROLLER_NAME = "testing.deepseek.serving.dev/gateway-standin"
GATEWAY_CLASS = "deepseek-testing"
"""The GatewayClass the pytest fixture and ``python -m deepseek_operator.testing up --gateway`` create."""
PORTS_ANNOTATION = "testing.deepseek.serving.dev/listener-ports"
MANAGER = "gateway-standin"
LOCAL_ADDRESS = "127.0.0.1"
GATEWAY_API_VERSION = "v1.6.1"
_HTTPROUTE_KIND = {"group": GROUP, "kind": "HTTPRoute"}
_TIME_FIELD = re.compile(r'"lastTransitionTime": "[^"]*"')

Obj = Mapping[str, Any]


def find_gateway_crds() -> Path:
    """The vendored Gateway API standard-channel CRDs (GatewayClass, Gateway, HTTPRoute)."""
    return Path(__file__).parent / "crds" / "gateway-api"


def install_gateway_crds(server: Any) -> list[str]:
    """Install the vendored CRDs on an ``ApiServer`` (skipping those already there); their names."""
    from deepseek_operator.testing.resources import CRD_RESOURCE

    names = []
    for path in sorted(find_gateway_crds().glob("*.yaml")):
        name = f"{path.stem.split('_', 1)[1]}.{GROUP}"
        if server.call(server.store.find, CRD_RESOURCE, "", name) is None:
            server.install_crds([path])
        names.append(name)
    return names


def gateway_class(name: str = GATEWAY_CLASS, controller_name: str = CONTROLLER_NAME) -> dict[str, Any]:
    """A GatewayClass for the stand-in (what a real implementation's chart installs)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GatewayClass",
        "metadata": {"name": name},
        "spec": {"controllerName": controller_name},
    }


def gateway_url(gateway: Obj, listener: str | None = None) -> str:
    """``http://<address>:<port>`` of a Gateway's listener (the first when None), from the object.

    Works unchanged on a real cluster: the address is ``status.addresses[0].value``; the port
    is the listener's spec port unless ``PORTS_ANNOTATION`` maps it to a local one.

    Example: status address 127.0.0.1, listener port 80, annotation ``{"80": 41234}`` ->
    ``http://127.0.0.1:41234``.
    """
    addresses = (gateway.get("status") or {}).get("addresses") or []
    if not addresses:
        raise ValueError(f"Gateway {gateway['metadata']['name']} has no address yet")
    listeners = gateway["spec"]["listeners"]
    chosen = next((entry for entry in listeners if listener in (None, entry["name"])), None)
    if chosen is None:
        raise ValueError(f"Gateway {gateway['metadata']['name']} has no listener {listener!r}")
    mapping = json.loads((gateway["metadata"].get("annotations") or {}).get(PORTS_ANNOTATION) or "{}")
    port = mapping.get(str(chosen["port"]), chosen["port"])
    host = addresses[0]["value"]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def wait_for_gateway_url(
    custom: Any, namespace: str, name: str, *, listener: str | None = None, timeout_s: float = 30.0
) -> str:
    """``gateway_url`` once the Gateway is ``Programmed`` for its current generation (a real
    cluster included). ``custom`` is a ``kubernetes.client.CustomObjectsApi``."""
    deadline = time.monotonic() + timeout_s
    while True:
        gateway = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "gateways", name)
        generation = gateway["metadata"].get("generation")
        conditions = (gateway.get("status") or {}).get("conditions") or []
        if any(
            c["type"] == "Programmed" and c["status"] == "True" and c.get("observedGeneration") == generation
            for c in conditions
        ):
            return gateway_url(gateway, listener)
        if time.monotonic() > deadline:
            raise TimeoutError(f"Gateway {namespace}/{name} not programmed within {timeout_s}s: {conditions}")
        time.sleep(0.05)


# --- the pure core --------------------------------------------------------------------------------


def intersect_hostnames(listener_hostname: str | None, route_hostnames: Sequence[str]) -> list[str | None]:
    """The hostnames a route serves on a listener (Gateway API rules); None means any host.

    An empty list: the two do not intersect (``NoMatchingListenerHostname``).

    Examples: (None, []) -> [None]; ("*.example.com", []) -> ["*.example.com"];
    ("*.example.com", ["a.example.com", "other.io"]) -> ["a.example.com"];
    ("a.example.com", ["*.example.com"]) -> ["a.example.com"].
    """
    if not route_hostnames:
        return [listener_hostname]
    if listener_hostname is None:
        return list(route_hostnames)
    out: list[str | None] = []
    for hostname in route_hostnames:
        if _host_matches(hostname, listener_hostname):
            out.append(hostname)
        elif _host_matches(listener_hostname, hostname):
            out.append(listener_hostname)
    return out


def _host_matches(hostname: str, pattern: str) -> bool:
    """Whether ``hostname`` (maybe a wildcard itself) falls within ``pattern``."""
    if not pattern.startswith("*."):
        return hostname == pattern
    return hostname.endswith(pattern[1:]) and len(hostname) > len(pattern) - 1


def _condition(type_: str, ok: bool, reason: str, message: str, generation: int, now: str) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": now,
    }


def _keep_times(new: list[dict[str, Any]], old: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``lastTransitionTime`` moves only when a condition's status flips."""
    previous = {c.get("type"): c for c in old}
    kept = []
    for condition in new:
        before = previous.get(condition["type"])
        if before and before.get("status") == condition["status"] and before.get("lastTransitionTime"):
            condition = {**condition, "lastTransitionTime": before["lastTransitionTime"]}
        kept.append(condition)
    return kept


def _key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector (``matchLabels``, ``matchExpressions``) against labels."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(operator, False)
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class _Listener:
    """A Gateway listener as the stand-in judged it."""

    spec: Mapping[str, Any]
    supported: bool
    """An HTTP listener (the only protocol served): ``Accepted`` reason and message below."""
    reason: str
    message: str
    takes_http_routes: bool
    """``allowedRoutes.kinds`` is unset or names HTTPRoute."""
    kinds_resolved: bool
    """Only HTTPRoute in ``allowedRoutes.kinds`` (else ``ResolvedRefs=False``/``InvalidRouteKinds``)."""

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def port(self) -> int:
        return int(self.spec["port"])

    @property
    def hostname(self) -> str | None:
        return self.spec.get("hostname")

    def allows(self, gateway_namespace: str, route_namespace: str, labels: Mapping[str, str]) -> bool:
        """Whether an HTTPRoute in ``route_namespace`` (with these labels) may attach."""
        if not (self.supported and self.takes_http_routes):
            return False
        namespaces = (self.spec.get("allowedRoutes") or {}).get("namespaces") or {}
        origin = namespaces.get("from", "Same")
        if origin == "All":
            return True
        if origin == "Selector":
            return _selects(namespaces.get("selector") or {}, labels)
        return origin == "Same" and gateway_namespace == route_namespace


def _judge_listener(spec: Mapping[str, Any]) -> _Listener:
    kinds = [(k.get("group", GROUP), k["kind"]) for k in (spec.get("allowedRoutes") or {}).get("kinds") or []]
    takes = not kinds or (GROUP, "HTTPRoute") in kinds
    resolved = all(kind == (GROUP, "HTTPRoute") for kind in kinds)
    if spec["protocol"] != "HTTP":
        message = (
            f"protocol {spec['protocol']} is not supported by the test environment's Gateway (HTTP only)"
        )
        return _Listener(spec, False, "UnsupportedProtocol", message, takes, resolved)
    return _Listener(spec, True, "Accepted", "Listener is accepted", takes, resolved)


_UNSUPPORTED_MATCH_FIELDS = ("headers", "queryParams", "method")


def _unsupported(route: Obj) -> list[str]:
    """What a route asks for that this Gateway does not implement (the route is then not served)."""
    problems = []
    for i, rule in enumerate(route["spec"].get("rules") or []):
        if rule.get("filters"):
            problems.append(f"rules[{i}].filters")
        for j, ref in enumerate(rule.get("backendRefs") or []):
            if ref.get("filters"):
                problems.append(f"rules[{i}].backendRefs[{j}].filters")
        for j, match in enumerate(rule.get("matches") or []):
            problems += [
                f"rules[{i}].matches[{j}].{name}" for name in _UNSUPPORTED_MATCH_FIELDS if match.get(name)
            ]
            if (match.get("path") or {}).get("type", "PathPrefix") not in ("PathPrefix", "Exact"):
                problems.append(f"rules[{i}].matches[{j}].path.type {match['path']['type']}")
    return problems


@dataclass(frozen=True)
class _Resolution:
    """Every backendRef of a route: its URL (None when unresolved) and what went wrong."""

    urls: Mapping[tuple[int, int], str | None]  # (rule, ref) -> URL
    reason: str
    message: str

    @property
    def ok(self) -> bool:
        return self.reason == "ResolvedRefs"


def _resolve(route: Obj, services: Mapping[str, Obj]) -> _Resolution:
    namespace = route["metadata"]["namespace"]
    urls: dict[tuple[int, int], str | None] = {}
    problems: list[tuple[str, str]] = []
    for i, rule in enumerate(route["spec"].get("rules") or []):
        for j, ref in enumerate(rule.get("backendRefs") or []):
            url, problem = _resolve_ref(ref, namespace, services)
            urls[(i, j)] = url
            if problem:
                problems.append(problem)
    if not problems:
        return _Resolution(urls, "ResolvedRefs", "All references are resolved")
    return _Resolution(urls, problems[0][0], "; ".join(message for _, message in problems))


def _resolve_ref(
    ref: Mapping[str, Any], namespace: str, services: Mapping[str, Obj]
) -> tuple[str | None, tuple[str, str] | None]:
    """A backendRef's URL, or None and the problem: (``ResolvedRefs`` reason, message)."""
    group, kind, name = ref.get("group", ""), ref.get("kind", "Service"), ref["name"]
    if (group, kind) != ("", "Service"):
        return None, (
            "InvalidKind",
            f"backendRef {name}: {group or 'core'}/{kind} is not supported (Service only)",
        )
    target_namespace = ref.get("namespace", namespace)
    if target_namespace != namespace:
        message = f"backendRef {target_namespace}/{name}: cross-namespace references are not permitted here"
        return None, ("RefNotPermitted", message)
    service = services.get(f"{namespace}/{name}")
    if service is None:
        return None, ("BackendNotFound", f"Service {namespace}/{name} not found")
    ports = {p.get("port") for p in (service.get("spec") or {}).get("ports") or []}
    if ref.get("port") not in ports:
        return None, ("BackendNotFound", f"Service {namespace}/{name} has no port {ref.get('port')}")
    url = (service["metadata"].get("annotations") or {}).get(URL_ANNOTATION)
    if not url:
        message = f"Service {namespace}/{name} has no {URL_ANNOTATION} annotation: no way to reach it here"
        return None, ("BackendNotFound", message)
    return url, None


@dataclass(frozen=True)
class _Attachment:
    """A route accepted on one listener of one Gateway, with the hostnames it serves there."""

    gateway: str  # ns/name
    listener: _Listener
    hostnames: tuple[str | None, ...]


@dataclass(frozen=True)
class GatewayPlan:
    """What one pass decided: the proxy's routing table and every status to write."""

    listeners: tuple[Listener, ...]
    """The routing table, one proxy listener per (Gateway, spec port)."""
    class_statuses: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """GatewayClass name -> status."""
    gateway_statuses: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """Gateway ``ns/name`` -> status."""
    route_statuses: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """HTTPRoute ``ns/name`` -> status (other controllers' parent entries kept)."""


def compute_gateway_plan(
    *,
    classes: Sequence[Obj],
    gateways: Sequence[Obj],
    routes: Sequence[Obj],
    services: Sequence[Obj],
    namespaces: Mapping[str, Mapping[str, str]],
    ports: Mapping[tuple[str, int], int],
    controller_name: str = CONTROLLER_NAME,
    programmed_error: str | None = None,
    now: str,
) -> GatewayPlan:
    """The routing table and statuses for the observed objects (pure).

    Parameters:
        classes, gateways, routes, services: the objects as listed (JSON dicts).
        namespaces: namespace name -> labels (for ``allowedRoutes.namespaces.selector``).
        ports: (Gateway ``ns/name``, spec port) -> local port; every HTTP listener's port of
            every Gateway of ours must be there (``listener_ports`` says which).
        programmed_error: why the proxy could not be programmed this pass (None: it was).
        now: RFC 3339 time for new condition transitions.
    """
    # Step 1: our classes, and our Gateways with their listeners judged.
    ours = {c["metadata"]["name"] for c in classes if c["spec"].get("controllerName") == controller_name}
    class_statuses = {
        c["metadata"]["name"]: _class_status(c, now) for c in classes if c["metadata"]["name"] in ours
    }
    our_gateways = {_key(g): g for g in gateways if g["spec"].get("gatewayClassName") in ours}
    judged = {
        key: [_judge_listener(spec) for spec in g["spec"]["listeners"]] for key, g in our_gateways.items()
    }
    address_problem = {key: _address_problem(g) for key, g in our_gateways.items()}
    by_key = {_key(s): s for s in services}

    # Step 2: attach routes (oldest first, as the spec orders ties) and resolve their backends.
    attachments: dict[str, list[_Attachment]] = {}
    route_statuses: dict[str, dict[str, Any]] = {}
    resolutions: dict[str, _Resolution] = {}
    for route in sorted(routes, key=lambda r: (r["metadata"].get("creationTimestamp", ""), _key(r))):
        key = _key(route)
        resolutions[key] = _resolve(route, by_key)
        parents = []
        for parent in route["spec"].get("parentRefs") or []:
            gateway_key = _parent_gateway(parent, route)
            if gateway_key not in our_gateways or address_problem[gateway_key]:
                continue  # another controller's parent, or a Gateway this one does not serve
            found, reason, message = _attach(
                route, parent, our_gateways[gateway_key], judged[gateway_key], namespaces
            )
            attachments.setdefault(key, []).extend(found)
            parents.append(
                _parent_status(route, parent, reason, message, resolutions[key], controller_name, now)
            )
        if parents or _has_our_parents(route, controller_name):
            route_statuses[key] = _route_status(route, parents, controller_name)

    # Step 3: the routing table, one proxy listener per (Gateway, spec port).
    routes_by_key = {_key(r): r for r in routes}
    listeners = []
    for gateway_key in sorted(our_gateways):
        if address_problem[gateway_key]:
            continue
        for port in sorted({lst.port for lst in judged[gateway_key] if lst.supported}):
            table = [
                proxy_route
                for route_key, found in attachments.items()
                for attached in found
                if attached.gateway == gateway_key and attached.listener.port == port
                for proxy_route in _proxy_routes(routes_by_key[route_key], attached, resolutions[route_key])
            ]
            listeners.append(Listener(ports[(gateway_key, port)], tuple(table), LOCAL_ADDRESS))

    # Step 4: Gateway statuses, with the routes attached to each listener counted.
    gateway_statuses = {
        key: _gateway_status(g, judged[key], attachments, address_problem[key], programmed_error, now)
        for key, g in our_gateways.items()
    }
    return GatewayPlan(tuple(listeners), class_statuses, gateway_statuses, route_statuses)


def listener_ports(gateway: Obj) -> set[int]:
    """The spec ports of a Gateway's HTTP listeners (each needs a local port)."""
    return {int(spec["port"]) for spec in gateway["spec"]["listeners"] if _judge_listener(spec).supported}


def _address_problem(gateway: Obj) -> str:
    for address in gateway["spec"].get("addresses") or []:
        if address.get("type", "IPAddress") != "IPAddress" or address.get("value") != LOCAL_ADDRESS:
            return f"only {LOCAL_ADDRESS} can be assigned here, not {address.get('value')!r}"
    return ""


def _parent_gateway(parent: Mapping[str, Any], route: Obj) -> str:
    if (parent.get("group", GROUP), parent.get("kind", "Gateway")) != (GROUP, "Gateway"):
        return ""
    return f"{parent.get('namespace', route['metadata']['namespace'])}/{parent['name']}"


def _attach(
    route: Obj,
    parent: Mapping[str, Any],
    gateway: Obj,
    listeners: list[_Listener],
    namespaces: Mapping[str, Mapping[str, str]],
) -> tuple[list[_Attachment], str, str]:
    """The listeners a parentRef attaches the route to, and the ``Accepted`` reason and message."""
    unsupported = _unsupported(route)
    if unsupported:
        return (
            [],
            "UnsupportedValue",
            "not supported by the test environment's Gateway: " + ", ".join(unsupported),
        )
    candidates = [
        lst
        for lst in listeners
        if parent.get("sectionName") in (None, lst.name) and parent.get("port") in (None, lst.port)
    ]
    if not candidates:
        return [], "NoMatchingParent", "no listener matches the parentRef's sectionName/port"
    route_namespace = route["metadata"]["namespace"]
    labels = namespaces.get(route_namespace) or {}
    allowing = [
        lst for lst in candidates if lst.allows(gateway["metadata"]["namespace"], route_namespace, labels)
    ]
    if not allowing:
        return [], "NotAllowedByListeners", "no listener allows routes from this namespace or of this kind"
    key = _key(gateway)
    found = [
        _Attachment(key, lst, tuple(hostnames))
        for lst in allowing
        if (hostnames := intersect_hostnames(lst.hostname, route["spec"].get("hostnames") or []))
    ]
    if not found:
        return [], "NoMatchingListenerHostname", "no listener hostname matches the route's hostnames"
    return found, "Accepted", "Route is accepted"


def _proxy_routes(route: Obj, attached: _Attachment, resolution: _Resolution) -> list[Route]:
    out = []
    for i, rule in enumerate(route["spec"].get("rules") or []):
        backends = tuple(
            Backend(resolution.urls[(i, j)], int(ref.get("weight", 1)))
            for j, ref in enumerate(rule.get("backendRefs") or [])
        )
        for match in rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]:
            path = match.get("path") or {}
            for hostname in attached.hostnames:
                out.append(Route(path.get("value", "/"), backends, path.get("type", "PathPrefix"), hostname))
    return out


def _parent_status(
    route: Obj,
    parent: Mapping[str, Any],
    reason: str,
    message: str,
    resolution: _Resolution,
    controller_name: str,
    now: str,
) -> dict[str, Any]:
    generation = int(route["metadata"].get("generation", 1))
    return {
        "parentRef": dict(parent),
        "controllerName": controller_name,
        "conditions": [
            _condition("Accepted", reason == "Accepted", reason, message, generation, now),
            _condition("ResolvedRefs", resolution.ok, resolution.reason, resolution.message, generation, now),
        ],
    }


def _has_our_parents(route: Obj, controller_name: str) -> bool:
    return any(
        p.get("controllerName") == controller_name for p in (route.get("status") or {}).get("parents") or []
    )


def _route_status(route: Obj, parents: list[dict[str, Any]], controller_name: str) -> dict[str, Any]:
    """Our parent entries (transition times kept) after the other controllers' ones."""
    previous = (route.get("status") or {}).get("parents") or []
    theirs = [p for p in previous if p.get("controllerName") != controller_name]
    mine = []
    for entry in parents:
        old: Mapping[str, Any] = next(
            (
                p
                for p in previous
                if p.get("controllerName") == controller_name and p.get("parentRef") == entry["parentRef"]
            ),
            {},
        )
        mine.append({**entry, "conditions": _keep_times(entry["conditions"], old.get("conditions") or [])})
    return {**(route.get("status") or {}), "parents": theirs + mine}


def _class_status(gateway_class: Obj, now: str) -> dict[str, Any]:
    generation = int(gateway_class["metadata"].get("generation", 1))
    accepted = _condition("Accepted", True, "Accepted", "GatewayClass is accepted", generation, now)
    previous = (gateway_class.get("status") or {}).get("conditions") or []
    return {**(gateway_class.get("status") or {}), "conditions": _keep_times([accepted], previous)}


def _gateway_status(
    gateway: Obj,
    listeners: list[_Listener],
    attachments: Mapping[str, list[_Attachment]],
    address_problem: str,
    programmed_error: str | None,
    now: str,
) -> dict[str, Any]:
    generation = int(gateway["metadata"].get("generation", 1))
    key = _key(gateway)
    previous = gateway.get("status") or {}
    previous_listeners = {entry.get("name"): entry for entry in previous.get("listeners") or []}
    valid = [lst for lst in listeners if lst.supported]
    # Accepted: the Gateway's own validity; Programmed: whether the proxy serves it.
    if address_problem:
        accepted = _condition("Accepted", False, "UnsupportedAddress", address_problem, generation, now)
        programmed = _condition("Programmed", False, "AddressNotUsable", address_problem, generation, now)
    else:
        accepted = _condition(
            "Accepted",
            bool(valid),
            "Accepted" if len(valid) == len(listeners) else "ListenersNotValid",
            "Gateway is accepted" if len(valid) == len(listeners) else "some listeners are not valid",
            generation,
            now,
        )
        programmed = _condition(
            "Programmed",
            programmed_error is None and bool(valid),
            "Programmed" if programmed_error is None and valid else "Invalid",
            programmed_error or ("Gateway is programmed" if valid else "no listener can be served"),
            generation,
            now,
        )
    statuses = []
    for lst in listeners:
        attached = sum(
            1 for found in attachments.values() if any(a.gateway == key and a.listener == lst for a in found)
        )
        served = lst.supported and not address_problem and programmed_error is None
        conditions = [
            _condition("Accepted", lst.supported, lst.reason, lst.message, generation, now),
            _condition(
                "Programmed",
                served,
                "Programmed" if served else "Invalid",
                "Listener is programmed" if served else programmed_error or address_problem or lst.message,
                generation,
                now,
            ),
            _condition(
                "ResolvedRefs",
                lst.kinds_resolved,
                "ResolvedRefs" if lst.kinds_resolved else "InvalidRouteKinds",
                "References are resolved" if lst.kinds_resolved else "only HTTPRoute is supported",
                generation,
                now,
            ),
            _condition("Conflicted", False, "NoConflicts", "No conflicts", generation, now),
        ]
        old = previous_listeners.get(lst.name) or {}
        statuses.append(
            {
                "name": lst.name,
                "supportedKinds": [dict(_HTTPROUTE_KIND)] if lst.supported and lst.takes_http_routes else [],
                "attachedRoutes": attached,
                "conditions": _keep_times(conditions, old.get("conditions") or []),
            }
        )
    return {
        **previous,
        "addresses": [] if address_problem else [{"type": "IPAddress", "value": LOCAL_ADDRESS}],
        "conditions": _keep_times([accepted, programmed], previous.get("conditions") or []),
        "listeners": statuses,
    }


def _without_times(status: Any) -> str:
    return _TIME_FIELD.sub('"lastTransitionTime": ""', json.dumps(status, sort_keys=True))


# --- the controller (I/O) ---------------------------------------------------------------------------


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((LOCAL_ADDRESS, port))
        except OSError:
            return False
    return True


class GatewayStandIn:
    """The controller: watches to react at once, a periodic resync, one HAProxy for all Gateways."""

    def __init__(
        self,
        kubeconfig: Path,
        *,
        namespaces: Collection[str] = (),
        controller_name: str = CONTROLLER_NAME,
        resync_s: float = 0.5,
        clock: Callable[[], datetime] = system_clock,
        haproxy: str | None = None,
    ) -> None:
        """
        Parameters:
            kubeconfig: where the API server is (the stand-in is a client like any controller).
            namespaces: only Gateways, HTTPRoutes and Services in these (a controller's watch
                namespaces); empty means all. Two stand-ins on one API server must not share a
                namespace, nor, unless their ``controller_name`` differs, a GatewayClass.
            controller_name: the ``spec.controllerName`` of the GatewayClasses it implements.
            resync_s: how often everything is recomputed without an event.
            haproxy: the HAProxy binary (``weighted_proxy.find_haproxy()`` when None).
        """
        from kubernetes import client, config

        self._api_client: Any = config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
        self._custom: Any = client.CustomObjectsApi(self._api_client)
        self._core: Any = client.CoreV1Api(self._api_client)
        self._exceptions = client.ApiException
        self.controller_name = controller_name
        self.proxy = WeightedProxy(binary=haproxy)
        self._namespaces = frozenset(namespaces)
        self._resync_s = resync_s
        self._clock = clock
        self._ports: dict[tuple[str, int], int] = {}
        self._spec_port_refused: set[tuple[str, int]] = set()
        self._stop = threading.Event()
        self._wake: queue.Queue[None] = queue.Queue()
        self._threads: list[threading.Thread] = []

    def start(self) -> GatewayStandIn:
        self.proxy.start()
        watches = [
            (self._custom.list_cluster_custom_object, (GROUP, VERSION, "gatewayclasses")),
            (self._custom.list_cluster_custom_object, (GROUP, VERSION, "gateways")),
            (self._custom.list_cluster_custom_object, (GROUP, VERSION, "httproutes")),
            (self._core.list_service_for_all_namespaces, ()),
        ]
        for i, (list_fn, args) in enumerate(watches):
            self._spawn(f"gateway-watch-{i}", self._watch_loop, list_fn, args)
        self._spawn("gateway-reconcile", self._reconcile_loop)
        return self

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._wake.put(None)
        *watches, reconcile = self._threads
        reconcile.join(timeout=30)  # no status write after this
        for thread in watches:  # each ends with its watch's timeout (<= 5 s) at the latest
            thread.join(timeout=0.1)
        self.proxy.stop(grace_s=2.0)
        self._api_client.close()

    def __enter__(self) -> GatewayStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _watch_loop(self, list_fn: Callable[..., Any], args: tuple[str, ...]) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            stream: Any = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for _ in stream.stream(list_fn, *args, timeout_seconds=5):
                    self._wake.put(None)
                    if self._stop.is_set():
                        stream.stop()
            except Exception:  # the server restarting or the CRDs not installed yet: retry
                log.debug("Gateway API watch failed; retrying", exc_info=True)
                self._stop.wait(self._resync_s)

    def _reconcile_loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Empty):
                self._wake.get(timeout=self._resync_s)
            while not self._wake.empty():
                self._wake.get_nowait()
            if self._stop.is_set():
                return
            try:
                self.reconcile_all()
            except Exception:
                log.warning("Gateway stand-in pass failed", exc_info=True)

    # --- one pass ----------------------------------------------------------------------------

    def _list(self, plural: str) -> list[dict[str, Any]] | None:
        try:
            items: list[dict[str, Any]] = self._custom.list_cluster_custom_object(GROUP, VERSION, plural)[
                "items"
            ]
        except self._exceptions as err:
            if err.status == 404:  # the Gateway API CRDs are not installed
                return None
            raise
        return items

    def _watched(self, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            i for i in items if not self._namespaces or i["metadata"].get("namespace") in self._namespaces
        ]

    def reconcile_all(self) -> None:
        """One level-based pass: observe, plan, program the proxy, then write what changed."""
        # Step 1: observe.
        classes, gateways, routes = (self._list(p) for p in ("gatewayclasses", "gateways", "httproutes"))
        if classes is None or gateways is None or routes is None:
            return
        gateways, routes = self._watched(gateways), self._watched(routes)
        services = self._watched(
            json.loads(self._core.list_service_for_all_namespaces(_preload_content=False).data)["items"]
        )
        namespaces = {
            ns["metadata"]["name"]: ns["metadata"].get("labels") or {}
            for ns in json.loads(self._core.list_namespace(_preload_content=False).data)["items"]
        }
        ours = {
            c["metadata"]["name"] for c in classes if c["spec"].get("controllerName") == self.controller_name
        }
        ports = self._assign_ports([g for g in gateways if g["spec"].get("gatewayClassName") in ours])

        def plan_with(programmed_error: str | None) -> GatewayPlan:
            return compute_gateway_plan(
                classes=classes,
                gateways=gateways,
                routes=routes,
                services=services,
                namespaces=namespaces,
                ports=ports,
                controller_name=self.controller_name,
                programmed_error=programmed_error,
                now=rfc3339(self._clock()),
            )

        # Step 2: plan, and program the proxy (hitless); a refused table keeps the last one serving.
        plan = plan_with(None)
        try:
            self.proxy.apply(plan.listeners)
        except ProxyError as err:
            log.warning("HAProxy refused the Gateways' table: %s", err)
            self._forget_new_ports(ports)
            plan = plan_with(str(err)[:2000])
        # Step 3: write what changed: the port annotations first, then statuses.
        self._write_statuses(plan, classes, gateways, routes, ports)

    def _assign_ports(self, gateways: list[dict[str, Any]]) -> dict[tuple[str, int], int]:
        """A local port per (Gateway, spec port): the spec port if unprivileged and free, else any."""
        wanted = {(_key(g), port) for g in gateways for port in listener_ports(g)}
        for key in set(self._ports) - wanted:
            del self._ports[key]
        for key in sorted(wanted - set(self._ports)):
            spec_port = key[1]
            in_use = set(self._ports.values())
            use_spec = (
                spec_port >= 1024
                and spec_port not in in_use
                and key not in self._spec_port_refused
                and _bindable(spec_port)
            )
            self._ports[key] = spec_port if use_spec else free_port()
        return dict(self._ports)

    def _forget_new_ports(self, ports: Mapping[tuple[str, int], int]) -> None:
        """After a refused reload: ports the running table does not serve are picked anew next pass."""
        serving = {lst.port for lst in self.proxy.listeners}
        for key, port in ports.items():
            if port not in serving:
                self._spec_port_refused.add(key)
                self._ports.pop(key, None)

    def _write_statuses(
        self,
        plan: GatewayPlan,
        classes: list[dict[str, Any]],
        gateways: list[dict[str, Any]],
        routes: list[dict[str, Any]],
        ports: Mapping[tuple[str, int], int],
    ) -> None:
        for gateway_class in classes:
            name = gateway_class["metadata"]["name"]
            if name in plan.class_statuses:
                self._write_status("gatewayclasses", gateway_class, plan.class_statuses[name])
        for gateway in gateways:
            key = _key(gateway)
            if key not in plan.gateway_statuses:
                continue
            mapping = json.dumps(
                {str(p): local for (g, p), local in sorted(ports.items()) if g == key}, sort_keys=True
            )
            if (gateway["metadata"].get("annotations") or {}).get(PORTS_ANNOTATION) != mapping:
                # Before the status: Programmed=True promises the annotation is in place.
                patch = {"metadata": {"annotations": {PORTS_ANNOTATION: mapping}}}
                meta = gateway["metadata"]
                try:
                    gateway = self._custom.patch_namespaced_custom_object(
                        GROUP, VERSION, meta["namespace"], "gateways", meta["name"], patch
                    )
                except self._exceptions:
                    continue  # deleted meanwhile, or the server restarting: the next pass retries
            self._write_status("gateways", gateway, plan.gateway_statuses[key])
        for route in routes:
            if _key(route) in plan.route_statuses:
                self._write_status("httproutes", route, plan.route_statuses[_key(route)])

    def _write_status(self, plural: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
        if _without_times(status) == _without_times(obj.get("status") or {}):
            return
        meta = obj["metadata"]
        body = {**obj, "status": status}
        with contextlib.suppress(self._exceptions):  # stale: the next pass writes it
            if "namespace" in meta:
                self._custom.replace_namespaced_custom_object_status(
                    GROUP, VERSION, meta["namespace"], plural, meta["name"], body, field_manager=MANAGER
                )
            else:
                self._custom.replace_cluster_custom_object_status(
                    GROUP, VERSION, plural, meta["name"], body, field_manager=MANAGER
                )
