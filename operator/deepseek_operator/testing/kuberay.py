"""A KubeRay stand-in: deploys each RayService's ``serveConfigV2`` on an embedded Ray and reports
status the way KubeRay v1.7's RayService controller does.

It is a client of the API server like KubeRay: it watches ``ray.io/v1`` RayServices, creates the
``<name>-head-svc`` and ``<name>-serve-svc`` Services (owned by the RayService, so deletion
cascades through garbage collection), hands the Serve config to a ``ServeBackend`` and writes
``status`` through the status subresource: ``serviceStatus``, ``numServeEndpoints``,
``observedGeneration``, ``activeServiceStatus``/``pendingServiceStatus`` with per-application
and per-deployment statuses, and the ``Ready``/``UpgradeInProgress`` conditions.

It also answers Ray's dashboard Serve API per RayService, as KubeRay reads it from the head
Service on port 8265: ``GET <dashboard_url>/api/serve/applications/`` returns the
``ServeInstanceDetails`` JSON (``applications.<app>.deployments.<deployment>`` with ``status``,
``message``, ``target_num_replicas``, ``replicas[].state``, ...) of that RayService's applications,
from ``ServeBackend.serve_details``. ``KubeRayStandIn.dashboard_url_template`` is
``http://127.0.0.1:<port>/{namespace}/{name}`` (a cluster's is
``http://<name>-head-svc.<namespace>.svc:8265``); the head Service carries the RayService's URL in
its ``testing.deepseek.serving.dev/dashboard-url`` annotation.

Differences from KubeRay (by design; the operator under test only sees the API objects):
- no RayCluster objects, Pods or head/worker processes: every RayService shares one local Ray,
  and ``rayClusterConfig`` (images, resources, worker groups) is stored but not acted on;
  ``rayClusterName`` names a cluster that does not exist as an object;
- a ``rayClusterConfig`` change is applied in place (no pending cluster, no zero-downtime
  upgrade); ``serveConfigV2`` changes are applied in place, as KubeRay does too;
- application names and route prefixes are made unique per RayService on the shared Serve
  (``<namespace>--<name>--<app>`` at ``/<namespace>/<name><route_prefix>``); the real local URL
  is in the serve Service's ``testing.deepseek.serving.dev/url`` annotation; applications get
  the driver's working directory on ``PYTHONPATH`` (the image's code, on a cluster);
- ``numServeEndpoints`` is 1 once the applications first ran (one local proxy), not a pod count;
- no Events, no ``RayService`` validation webhook, no ``upgradeStrategy`` handling;
- the dashboard is a facade on one local port, not a dashboard per Ray head: it serves only
  ``GET /{namespace}/{name}/api/serve/applications/`` (no PUT/DELETE; query parameters such as
  KubeRay's ``api_type=declarative`` are ignored, every application here being declarative)
  and the log API's ``GET /{namespace}/{name}/api/v0/logs/file?filename=…&lines=…`` (a file of
  the one local Ray's log directory, cut down to lines that name no other RayService's
  application; ``node_id`` is ignored, there being one node). The Serve API answers 404 for a
  RayService the stand-in does not know (not reconciled yet, deleted, or in a namespace it does
  not watch) and Ray's empty answer (``"applications": {}``) while nothing is deployed. In an
  answer, the application names and route prefixes (also in ``deployed_app_config``, the
  topology and the target groups) are the RayService's own; the rest is the one shared Serve's:
  controller, proxies, HTTP options, and with the real backend the replicas' actor names and log
  paths (``<namespace>--<name>--<app>``) and the ``PYTHONPATH`` in a deployment's
  ``ray_actor_options.runtime_env``;
- Ray 2.60 itself never fills ``deployments.*.autoscaling_detail`` (an experimental field), so
  neither does the facade with the real backend: the autoscaler's decisions show as a
  deployment's ``UPSCALING``/``DOWNSCALING`` status (``status_trigger`` ``AUTOSCALING``, a
  message such as ``"Upscaling from 2 to 4 replicas."``) and its ``target_num_replicas``; their
  reasons are in the controller's log, as on a cluster.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import logging
import os
import queue
import re
import threading
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol

import yaml

from deepseek_operator.testing.clock import system_clock
from deepseek_operator.testing.store import rfc3339

__all__ = [
    "DASHBOARD_URL_ANNOTATION",
    "SERVE_DETAILS_PATH",
    "URL_ANNOTATION",
    "AppState",
    "KubeRayStandIn",
    "ServeBackend",
    "compute_status",
    "empty_serve_details",
    "find_kuberay_crds",
    "render_services",
]

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "ray.io", "v1", "rayservices"
URL_ANNOTATION = "testing.deepseek.serving.dev/url"
DASHBOARD_URL_ANNOTATION = "testing.deepseek.serving.dev/dashboard-url"
MANAGER = "kuberay-standin"
SERVE_DETAILS_PATH: Final = "/api/serve/applications/"
"""Ray's dashboard route for ``ServeInstanceDetails`` (KubeRay's ``ServeDetailsPath``)."""
LOG_FILE_PATH: Final = "/api/v0/logs/file"
"""Ray's dashboard log API route (``ray/dashboard/modules/state/state_head.py``)."""


@dataclass(frozen=True)
class AppState:
    """One Serve application as Serve reports it."""

    status: str  # NOT_STARTED, DEPLOYING, DEPLOY_FAILED, RUNNING, UNHEALTHY, DELETING
    message: str = ""
    deployments: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # name -> (status, message)


class ServeBackend(Protocol):
    """Where Serve configs run: a real embedded Ray (``serve_backend.RayServeBackend``) or a fake."""

    def deploy(self, key: str, serve_config: Mapping[str, Any]) -> None:
        """Deploy or update in place the applications of RayService ``key`` (``ns/name``); never blocks."""

    def status(self, key: str) -> dict[str, AppState]:
        """Application name (as in serveConfigV2) -> state; empty when nothing is deployed."""

    def delete(self, key: str) -> None:
        """Tear down every application of ``key``."""

    def deployed(self) -> set[str]:
        """The RayServices that have applications deployed."""

    def url(self, key: str) -> str:
        """The HTTP base URL this RayService's applications are served under."""

    def serve_details(self, key: str) -> dict[str, Any]:
        """Ray's ``GET /api/serve/applications/`` body (``ServeInstanceDetails`` as JSON) for ``key``.

        Only ``key``'s applications, named and routed as in its serveConfigV2;
        ``empty_serve_details()`` when nothing is deployed. JSON types only (str, not enums).
        """

    def controller_log(self, key: str, filename: str, lines: int) -> list[str] | None:
        """Ray's ``GET /api/v0/logs/file?filename=…&lines=…`` for ``key``'s cluster: the last
        ``lines`` lines of ``filename`` (relative to Ray's log directory), as ``key`` would see them
        in a cluster of its own; None when there is no such file."""


def empty_serve_details() -> dict[str, Any]:
    """What Ray's dashboard answers when no Serve application runs (``get_empty_schema_dict``)."""
    return {"controller_info": {}, "proxies": {}, "applications": {}, "target_capacity": None}


def find_kuberay_crds() -> Path | None:
    """KubeRay v1.7.0's CRDs: ``$KUBERAY_CRDS`` or ``shared/kuberay-crds/v1.7.0`` beside a parent dir."""
    explicit = os.environ.get("KUBERAY_CRDS")
    if explicit:
        return Path(explicit)
    for parent in [Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents]:
        for candidate in (parent / "shared", parent.parent / "shared"):
            crds = candidate / "kuberay-crds" / "v1.7.0"
            if crds.is_dir():
                return crds
    return None


def cluster_name(rayservice: Mapping[str, Any]) -> str:
    """KubeRay's ``<name>-raycluster-<5 chars>``, stable per RayService uid."""
    digest = hashlib.sha256(str(rayservice["metadata"].get("uid", "")).encode()).hexdigest()[:5]
    return f"{rayservice['metadata']['name']}-raycluster-{digest}"


def _owner(rayservice: Mapping[str, Any]) -> dict[str, Any]:
    meta = rayservice["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RayService",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def render_services(
    rayservice: Mapping[str, Any], url: str, *, dashboard_url: str | None = None
) -> list[dict[str, Any]]:
    """The head and serve Services KubeRay creates for a RayService (ports as KubeRay's).

    ``url`` (the applications' local base URL) is annotated on the serve Service and
    ``dashboard_url`` (the stand-in's dashboard facade for this RayService) on the head Service.
    """
    name = rayservice["metadata"]["name"]
    cluster = cluster_name(rayservice)
    head_ports = [
        {"name": "client", "port": 10001, "targetPort": 10001, "protocol": "TCP"},
        {"name": "dashboard", "port": 8265, "targetPort": 8265, "protocol": "TCP"},
        {"name": "gcs", "port": 6379, "targetPort": 6379, "protocol": "TCP"},
        {"name": "metrics", "port": 8080, "targetPort": 8080, "protocol": "TCP"},
        {"name": "serve", "port": 8000, "targetPort": 8000, "protocol": "TCP"},
    ]
    common = {"ray.io/cluster": cluster, "app.kubernetes.io/created-by": "kuberay-operator"}
    head_metadata: dict[str, Any] = {
        "name": f"{name}-head-svc",
        "labels": {**common, "ray.io/node-type": "head", "ray.io/identifier": f"{cluster}-head"},
        "ownerReferences": [_owner(rayservice)],
    }
    if dashboard_url:
        head_metadata["annotations"] = {DASHBOARD_URL_ANNOTATION: dashboard_url}
    head = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": head_metadata,
        "spec": {
            "clusterIP": "None",
            "selector": {"ray.io/cluster": cluster, "ray.io/node-type": "head"},
            "ports": head_ports,
        },
    }
    serve = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"{name}-serve-svc",
            "labels": {**common, "ray.io/serve": f"{name}-serve"},
            "annotations": {URL_ANNOTATION: url},
            "ownerReferences": [_owner(rayservice)],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {"ray.io/cluster": cluster, "ray.io/serve": "true"},
            "ports": [{"name": "serve", "port": 8000, "targetPort": 8000, "protocol": "TCP"}],
        },
    }
    return [head, serve]


def _condition(
    type_: str, status: str, reason: str, message: str, generation: int, now: str
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": now,
    }


def _keep_transition_time(new: dict[str, Any], previous: list[dict[str, Any]]) -> dict[str, Any]:
    old = next((c for c in previous if c.get("type") == new["type"]), None)
    if old is not None and old.get("status") == new["status"] and old.get("lastTransitionTime"):
        return {**new, "lastTransitionTime": old["lastTransitionTime"]}
    return new


def _app_statuses(apps: Mapping[str, AppState]) -> dict[str, Any]:
    return {
        name: {
            "status": app.status,
            "message": app.message,
            "serveDeploymentStatuses": {
                dep: {"status": status, "message": message}
                for dep, (status, message) in app.deployments.items()
            },
        }
        for name, app in apps.items()
    }


def compute_status(
    rayservice: Mapping[str, Any], apps: Mapping[str, AppState], *, active: bool, now: str
) -> dict[str, Any]:
    """RayService status as KubeRay v1.7 writes it (pure).

    Parameters:
        rayservice: the RayService object (its generation, previous status).
        apps: the Serve applications' states (app name from serveConfigV2 -> state).
        active: whether the cluster has been promoted (its applications all ran once).
        now: RFC 3339 timestamp for ``lastUpdateTime`` and new condition transitions.
    """
    generation = int(rayservice["metadata"].get("generation", 1))
    previous = list((rayservice.get("status") or {}).get("conditions") or [])
    service_status = {
        "applicationStatuses": _app_statuses(apps),
        "rayClusterName": cluster_name(rayservice),
    }
    endpoints = 1 if active else 0
    if active:
        ready = _condition(
            "Ready",
            "True",
            "NonZeroServeEndpoints",
            "Number of serve endpoints is greater than 0",
            generation,
            now,
        )
        upgrade = _condition(
            "UpgradeInProgress",
            "False",
            "NoPendingCluster",
            "Active Ray cluster exists and no pending Ray cluster",
            generation,
            now,
        )
    else:
        ready = _condition("Ready", "False", "Initializing", "RayService is initializing", generation, now)
        upgrade = _condition(
            "UpgradeInProgress", "False", "Initializing", "RayService is initializing", generation, now
        )
    return {
        "serviceStatus": "Running" if active else "NotRunning",
        "numServeEndpoints": endpoints,
        "observedGeneration": generation,
        "lastUpdateTime": now,
        "activeServiceStatus": service_status if active else {},
        "pendingServiceStatus": {} if active else service_status,
        "conditions": [_keep_transition_time(c, previous) for c in (ready, upgrade)],
    }


_TIME_FIELD = re.compile(r'"(lastUpdateTime|lastTransitionTime)": "[^"]*"')


def _without_times(status: Mapping[str, Any]) -> str:
    """A status with its timestamps blanked: KubeRay skips writes that only move timestamps."""
    return _TIME_FIELD.sub(r'"\1": ""', json.dumps(status, sort_keys=True))


class KubeRayStandIn:
    """The controller: a watch to react at once, a periodic resync to follow Serve's progress."""

    def __init__(
        self,
        kubeconfig: Path,
        backend: ServeBackend,
        *,
        resync_s: float = 0.5,
        clock: Callable[[], datetime] = system_clock,
        namespaces: Collection[str] = (),
        dashboard_port: int = 0,
    ) -> None:
        """
        Parameters:
            kubeconfig: where the API server is (the stand-in is a client like KubeRay).
            backend: where Serve configs run.
            resync_s: how often every RayService is reconciled (Serve's progress is polled).
            namespaces: only these (KubeRay's ``--watch-namespace``); empty means all. Two
                stand-ins on one API server must not share a namespace, as two KubeRays must not.
            dashboard_port: local port of the dashboard facade (0: a free one); it is bound here,
                so ``dashboard_url_template`` is known before ``start``.
        """
        from kubernetes import client, config

        self._api_client: Any = config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
        # Any: the generated clients' signatures want model objects; we speak JSON dicts.
        self._custom: Any = client.CustomObjectsApi(self._api_client)
        self._core: Any = client.CoreV1Api(self._api_client)
        self._exceptions = client.ApiException
        self.backend = backend
        self._resync_s = resync_s
        self._namespaces = frozenset(namespaces)
        self._clock = clock
        self._deployed: dict[str, str] = {}  # RayService key -> digest of the deployed serve config
        self._active: set[str] = set()  # RayServices whose applications all ran once
        self._known: frozenset[str] = frozenset()  # RayServices seen by the last pass (dashboard)
        self._stop = threading.Event()
        self._wake: queue.Queue[None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._dashboard = _DashboardServer(("127.0.0.1", dashboard_port), self._serve_details, self._log)

    @property
    def dashboard_url_template(self) -> str:
        """``http://127.0.0.1:<port>/{namespace}/{name}``: a RayService's dashboard base URL once
        formatted (``template.format(namespace=..., name=...)``); Serve's API is under
        ``SERVE_DETAILS_PATH``."""
        return f"http://127.0.0.1:{self._dashboard.server_address[1]}/{{namespace}}/{{name}}"

    def dashboard_url(self, key: str) -> str:
        """The dashboard base URL of RayService ``key`` (``ns/name``)."""
        namespace, name = key.split("/", 1)
        return self.dashboard_url_template.format(namespace=namespace, name=name)

    def start(self) -> KubeRayStandIn:
        for target, name in (
            (self._watch_loop, "kuberay-watch"),
            (self._reconcile_loop, "kuberay-reconcile"),
            (self._dashboard.serve_forever, "kuberay-dashboard"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.put(None)
        if self._threads:  # shutdown() waits for serve_forever, which only runs once started
            self._dashboard.shutdown()
        self._dashboard.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._api_client.close()

    def _serve_details(self, key: str) -> dict[str, Any] | None:
        """The dashboard's answer for ``key``; None for a RayService this stand-in does not know."""
        if key not in self._known:
            return None
        return self.backend.serve_details(key)

    def _log(self, key: str, filename: str, lines: int) -> list[str] | None:
        """The log API's answer for ``key``; None for an unknown RayService or file."""
        if key not in self._known:
            return None
        return self.backend.controller_log(key, filename, lines)

    def __enter__(self) -> KubeRayStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _watch_loop(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            stream: Any = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for _ in stream.stream(
                    self._custom.list_cluster_custom_object, GROUP, VERSION, PLURAL, timeout_seconds=5
                ):
                    self._wake.put(None)
                    if self._stop.is_set():
                        stream.stop()
            except Exception:  # the server restarting or the CRD not installed yet: retry
                log.debug("RayService watch failed; retrying", exc_info=True)
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
                log.warning("KubeRay stand-in pass failed", exc_info=True)

    def reconcile_all(self) -> None:
        """One level-based pass over every RayService, then tear down what has no RayService any more."""
        try:
            items = self._custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
        except self._exceptions as err:
            if err.status == 404:  # the RayService CRD is not installed
                return
            raise
        present = set()
        for rayservice in items:
            if self._namespaces and rayservice["metadata"]["namespace"] not in self._namespaces:
                continue
            key = f"{rayservice['metadata']['namespace']}/{rayservice['metadata']['name']}"
            present.add(key)
            self.reconcile(key, rayservice)
        self._known = frozenset(present)
        for key in (self.backend.deployed() | set(self._deployed)) - present:
            self.backend.delete(key)
            self._deployed.pop(key, None)
            self._active.discard(key)

    def reconcile(self, key: str, rayservice: dict[str, Any]) -> None:
        spec = rayservice.get("spec") or {}
        config = yaml.safe_load(spec.get("serveConfigV2") or "") or {}
        digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
        if self._deployed.get(key) != digest:
            self.backend.deploy(key, config)
            self._deployed[key] = digest
        self._ensure_services(rayservice, self.backend.url(key))
        self._known |= {key}  # the dashboard answers from the first pass on
        apps = self.backend.status(key)
        wanted = [str(app.get("name", "default")) for app in config.get("applications") or []]
        if wanted and all(name in apps and apps[name].status == "RUNNING" for name in wanted):
            self._active.add(key)
        status = compute_status(rayservice, apps, active=key in self._active, now=rfc3339(self._clock()))
        if _without_times(status) == _without_times(rayservice.get("status") or {}):
            return
        meta = rayservice["metadata"]
        body = {**rayservice, "status": status}
        with contextlib.suppress(self._exceptions):  # stale: the next pass writes it
            self._custom.replace_namespaced_custom_object_status(
                GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], body, field_manager=MANAGER
            )

    def _ensure_services(self, rayservice: Mapping[str, Any], url: str) -> None:
        namespace = rayservice["metadata"]["namespace"]
        key = f"{namespace}/{rayservice['metadata']['name']}"
        for service in render_services(rayservice, url, dashboard_url=self.dashboard_url(key)):
            try:
                self._core.create_namespaced_service(namespace, service, field_manager=MANAGER)
            except self._exceptions as err:
                if err.status != 409:
                    raise


class _DashboardServer(http.server.ThreadingHTTPServer):
    """Ray's dashboard Serve API (``GET /{namespace}/{name}/api/serve/applications/``) and log API
    (``GET /{namespace}/{name}/api/v0/logs/file``), per RayService."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        details: Callable[[str], dict[str, Any] | None],
        log: Callable[[str, str, int], list[str] | None],
    ) -> None:
        super().__init__(address, _DashboardHandler)
        self.details = details
        self.log = log


_RAYSERVICE = r"^/(?P<namespace>[^/]+)/(?P<name>[^/]+)"
_DASHBOARD_PATH = re.compile(_RAYSERVICE + re.escape(SERVE_DETAILS_PATH) + "$")
_LOG_PATH = re.compile(_RAYSERVICE + re.escape(LOG_FILE_PATH) + "$")
_DEFAULT_LOG_LINES = 1000  # Ray's DEFAULT_LOG_LIMIT


class _DashboardHandler(http.server.BaseHTTPRequestHandler):
    server: _DashboardServer

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        log_match = _LOG_PATH.match(path)
        if log_match is not None:
            self._send_log(f"{log_match['namespace']}/{log_match['name']}", urllib.parse.parse_qs(query))
            return
        match = _DASHBOARD_PATH.match(path)
        if match is None:
            self._send(404, b"404: Not Found", "text/plain")
            return
        key = f"{match['namespace']}/{match['name']}"
        try:
            details = self.server.details(key)
        except Exception as error:  # Serve's controller unreachable: Ray answers 503 too
            log.warning("dashboard facade: Serve details for %s failed", key, exc_info=True)
            self._send(503, f"Failed to get a response from the controller: {error}".encode(), "text/plain")
            return
        if details is None:
            self._send(404, f"404: RayService {key} not found".encode(), "text/plain")
            return
        self._send(200, json.dumps(details).encode(), "application/json")

    def _send_log(self, key: str, query: Mapping[str, list[str]]) -> None:
        filename = (query.get("filename") or [""])[0]
        try:
            lines = int((query.get("lines") or [str(_DEFAULT_LOG_LINES)])[0])
        except ValueError:
            self._send(400, b"lines must be an integer", "text/plain")
            return
        found = self.server.log(key, filename, lines) if filename else None
        if found is None:  # Ray answers 500 with the agent's error for a file it cannot find
            self._send(500, f"{filename!r} not found for RayService {key}".encode(), "text/plain")
            return
        self._send(200, "".join(f"{line}\n" for line in found).encode(), "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("dashboard facade: " + format, *args)
