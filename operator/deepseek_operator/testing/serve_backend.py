"""The real ``ServeBackend``: Ray Serve on an embedded local Ray, driven like KubeRay drives it.

KubeRay PUTs the multi-application config to the Ray dashboard; here the same declarative call
(``deploy_apps`` with a ``ServeDeploySchema``) goes to the Serve controller directly. Serve
imports each ``import_path`` itself (calling application builders with ``args``), applies the
``deployments`` overrides and reports per-application status, so a broken import shows up as
``DEPLOY_FAILED`` with Serve's own message, as on a cluster. Ray is imported lazily: importing
``deepseek_operator.testing`` never needs it.

``serve_details`` is what Ray's dashboard answers on ``GET /api/serve/applications/`` (the Serve
controller's ``ServeInstanceDetails``, fetched through the Serve client as the dashboard does),
cut down to one RayService's applications and renamed back to their serveConfigV2 names and
route prefixes (``compute_rayservice_serve_details``, pure). ``controller_log`` is what the
dashboard's log API answers for the Serve controller's log file: its tail, cut down the same way
(``rayservice_log_lines``, pure).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from deepseek_operator.testing.kuberay import AppState, empty_serve_details
from deepseek_operator.testing.process import free_port

__all__ = ["RayServeBackend", "compute_rayservice_serve_details", "rayservice_log_lines"]


def _app_name(key: str, app: str) -> str:
    namespace, name = key.split("/", 1)
    return f"{namespace}--{name}--{app}"


def _route_prefix(key: str, prefix: str) -> str:
    return f"/{key}" + ("" if prefix == "/" else prefix)


def compute_rayservice_serve_details(
    details: Mapping[str, Any], key: str, serve_config: Mapping[str, Any]
) -> dict[str, Any]:
    """One RayService's view of the shared Serve's ``ServeInstanceDetails`` JSON (pure).

    Parameters:
        details: the whole Serve instance's details as the dashboard returns them (JSON types).
        key: the RayService, ``ns/name``.
        serve_config: its serveConfigV2 (application names and route prefixes as written).

    Returns:
        ``details`` with only ``key``'s applications, under their serveConfigV2 names, with the
        configured route prefixes (in ``route_prefix``, ``deployed_app_config``, the deployment
        topology and the target groups); the Serve-wide fields (controller, proxies, HTTP options)
        unchanged.
    """
    configured = {str(app.get("name", "default")): app for app in serve_config.get("applications") or []}
    names = {_app_name(key, name): name for name in configured}
    out: dict[str, Any] = json.loads(json.dumps(dict(details)))  # a deep copy in JSON types
    out["applications"] = {
        names[shared]: _rename_application(app, configured[names[shared]], names)
        for shared, app in (out.get("applications") or {}).items()
        if shared in names
    }
    if "target_groups" in out:
        out["target_groups"] = [
            _rename_target_group(group, key, names)
            for group in out["target_groups"]
            if not group.get("app_name") or group["app_name"] in names
        ]
    return out


def _rename_application(
    app: dict[str, Any], configured: Mapping[str, Any], names: Mapping[str, str]
) -> dict[str, Any]:
    name = names[app["name"]]
    app["name"] = name
    if app.get("route_prefix") is not None:
        app["route_prefix"] = str(configured.get("route_prefix", "/"))
    if app.get("deployed_app_config") is not None:
        # As submitted: the RayService's own name, route prefix and runtime_env (ours added PYTHONPATH).
        deployed = {**app["deployed_app_config"], "name": name}
        for field in ("route_prefix", "runtime_env"):
            deployed.pop(field, None)
            if field in configured:
                deployed[field] = configured[field]
        app["deployed_app_config"] = deployed
    topology = app.get("deployment_topology")
    if topology is not None:
        topology["app_name"] = names.get(topology.get("app_name", ""), topology.get("app_name"))
        for node in (topology.get("nodes") or {}).values():
            node["app_name"] = names.get(node.get("app_name", ""), node.get("app_name"))
            for outbound in node.get("outbound_deployments") or []:
                if outbound.get("app_name") in names:
                    outbound["app_name"] = names[outbound["app_name"]]
    return app


def _rename_target_group(group: dict[str, Any], key: str, names: Mapping[str, str]) -> dict[str, Any]:
    if group.get("app_name") in names:
        prefix = str(group.get("route_prefix", ""))
        group["app_name"] = names[group["app_name"]]
        group["route_prefix"] = prefix.removeprefix(f"/{key}") or "/"
    return group


def rayservice_log_lines(lines: Iterable[str], key: str, shared_names: Iterable[str]) -> list[str]:
    """One RayService's view of the shared Serve controller's log lines (pure): lines that name
    another RayService's application are dropped, ``key``'s applications get their serveConfigV2
    names back (as ``compute_rayservice_serve_details`` does).

    >>> rayservice_log_lines(["up ns--a--chat", "up ns--b--chat", "started"], "ns/a",
    ...                      ["ns--a--chat", "ns--b--chat"])
    ['up chat', 'started']
    """
    shared = set(shared_names)
    prefix = _app_name(key, "")
    own = sorted((name for name in shared if name.startswith(prefix)), key=len, reverse=True)
    others = shared.difference(own)
    kept = []
    for line in lines:
        if any(name in line for name in others):
            continue
        for name in own:
            line = line.replace(name, name.removeprefix(prefix))
        kept.append(line)
    return kept


class RayServeBackend:
    """All RayServices' applications on one local Serve, each under its own name and route prefix."""

    def __init__(self, *, num_cpus: int | None = None, http_port: int = 0) -> None:
        self._num_cpus = num_cpus
        self.http_port = http_port or free_port()
        self._configs: dict[str, Mapping[str, Any]] = {}
        self._lock = threading.Lock()
        self._owns_ray = False
        self._owns_serve = False
        # Applications import their modules from where the driver runs (as `serve run` does);
        # installed packages they find themselves. Not all of sys.path: a test's temporary
        # directory there may hold modules that shadow the standard library's.
        inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        self._python_path = os.pathsep.join([os.getcwd(), *inherited])

    def start(self) -> RayServeBackend:
        """Start Ray and Serve, or join the ones this process already runs (another fixture's).

        Joined ones are left running at ``stop``; their imperative applications are untouched,
        since a declarative deploy only replaces declaratively deployed applications.
        """
        import ray
        from ray import serve
        from ray.serve.context import _get_global_client

        if not ray.is_initialized():
            ray.init(num_cpus=self._num_cpus, include_dashboard=False, log_to_driver=False)
            self._owns_ray = True
        client = _get_global_client(raise_if_no_controller_running=False)
        if client is None:
            serve.start(http_options={"host": "127.0.0.1", "port": self.http_port})
            self._owns_serve = True
        else:
            self.http_port = int(client.http_config.port)
        node = ray.nodes()[0]  # type: ignore[no-untyped-call]
        self.metrics_url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
        """The node's Ray metrics (every RayService's serving metrics: one shared Ray)."""
        return self

    def stop(self) -> None:
        import ray
        from ray import serve

        if self._owns_serve:
            serve.shutdown()  # type: ignore[no-untyped-call]
        else:
            with self._lock:
                self._configs.clear()
                self._apply()
        if self._owns_ray:
            ray.shutdown()

    def __enter__(self) -> RayServeBackend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def app_name(key: str, app: str) -> str:
        return _app_name(key, app)

    def url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/{key}"

    def _rewrite(self, key: str, app: Mapping[str, Any]) -> dict[str, Any]:
        prefix = str(app.get("route_prefix", "/"))
        rewritten = dict(app)
        rewritten["name"] = self.app_name(key, str(app.get("name", "default")))
        rewritten["route_prefix"] = _route_prefix(key, prefix)
        runtime_env = dict(app.get("runtime_env") or {})
        env_vars = dict(runtime_env.get("env_vars") or {})
        env_vars.setdefault("PYTHONPATH", self._python_path)
        rewritten["runtime_env"] = {**runtime_env, "env_vars": env_vars}
        return rewritten

    def _apply(self) -> None:
        from ray.serve.context import _get_global_client
        from ray.serve.schema import ServeDeploySchema

        applications = [
            self._rewrite(key, app)
            for key, config in self._configs.items()
            for app in config.get("applications") or []
        ]
        client = _get_global_client()
        if client is None:
            raise RuntimeError("Serve is not running: call start() first")
        client.deploy_apps(ServeDeploySchema.model_validate({"applications": applications}))

    def deploy(self, key: str, serve_config: Mapping[str, Any]) -> None:
        with self._lock:
            self._configs[key] = serve_config
            self._apply()

    def delete(self, key: str) -> None:
        with self._lock:
            if self._configs.pop(key, None) is not None:
                self._apply()

    def deployed(self) -> set[str]:
        return set(self._configs)

    def status(self, key: str) -> dict[str, AppState]:
        from ray import serve

        config = self._configs.get(key)
        if not config:
            return {}
        applications = serve.status().applications
        out: dict[str, AppState] = {}
        for app in config.get("applications") or []:
            name = str(app.get("name", "default"))
            overview = applications.get(self.app_name(key, name))
            if overview is None:
                out[name] = AppState("NOT_STARTED")
                continue
            deployments = {
                dep_name: (str(dep.status.value), str(dep.message or ""))
                for dep_name, dep in overview.deployments.items()
            }
            out[name] = AppState(str(overview.status.value), str(overview.message or ""), deployments)
        return out

    def controller_log(self, key: str, filename: str, lines: int) -> list[str] | None:
        import ray

        logs = os.path.realpath(ray._private.worker._global_node.get_logs_dir_path())  # type: ignore[attr-defined]
        path = os.path.realpath(os.path.join(logs, filename))
        if not path.startswith(logs + os.sep) or not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8", errors="replace") as log:
            tail = log.read().splitlines()[-lines:] if lines > 0 else []
        with self._lock:
            configs = list(self._configs.items())
        shared = [
            _app_name(other, str(app.get("name", "default")))
            for other, config in configs
            for app in config.get("applications") or []
        ]
        return rayservice_log_lines(tail, key, shared)

    def serve_details(self, key: str) -> dict[str, Any]:
        from ray.serve.context import _get_global_client

        with self._lock:
            config = self._configs.get(key)
        client = _get_global_client(raise_if_no_controller_running=False)
        if not config or client is None:
            return empty_serve_details()
        # What the dashboard's GET /api/serve/applications/ returns: the controller's details.
        return compute_rayservice_serve_details(client.get_serve_details(), key, config)
