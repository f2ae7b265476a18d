"""Serve a ``ServingArgs`` on an embedded, single-node Ray: the local view behind ``dsd run``.

Why: the same application KubeRay deploys from serveConfigV2 runs here unchanged (``build_app``),
so a developer or CI exercises the real data plane without Kubernetes. The embedded Ray is a new
local cluster (never one found through ``RAY_ADDRESS``) with:

- ``RAY_AUTH_MODE=disabled`` unless the caller set it (Ray 2.60 enables token auth by default,
  which a throwaway local cluster does not need);
- ``RAY_SERVE_ENABLE_HA_PROXY=1``: HAProxy forwards HTTP straight to the rank replicas (app.py
  explains why); its stats and metrics ports (fixed 8404/9101 by default) are moved to free ports
  unless set, so two local clusters (two test runs) can share a machine;
- ``RAY_worker_niceness=0`` unless set: Ray starts workers at niceness 15, which on a small machine
  lets any other process (a load generator, the CLI) starve the engine;
- ``RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=3`` unless set: a stopping replica stays
  registered at least this long so load balancers can drop it (Ray's 30 s default is meant for
  cross-node balancers; the local HAProxy reloads in well under a second). In-flight requests are
  always waited for, up to ``limits.requestTimeoutS``;
- logical CPUs enough for every group's bundles (bundles are scheduling tokens; cores are shared).

``LocalCluster`` deploys serveConfigV2 applications declaratively, as KubeRay does, so the local
view runs what a RayService runs; ``serve_locally`` deploys one and returns once it is running;
``LocalServing`` is a context manager whose exit (also on Ctrl-C) deletes the application, letting
in-flight requests drain, and stops Ray.
"""

from __future__ import annotations

import glob
import math
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any, Final, Self

from deepseek_serving.autoscaling import decisions_in_log
from deepseek_serving.config import ServingArgs
from deepseek_serving.llm_config import SERVE_DEPLOYMENT_NAME, code_args, render_deployment_override
from deepseek_serving.metrics import RANK_QUEUE_DEPTH_METRIC

__all__ = [
    "APP_IMPORT_PATH",
    "LocalApplication",
    "LocalCluster",
    "LocalServing",
    "application_config",
    "free_port",
    "local_ray_cpus",
    "serve_locally",
]

APP_IMPORT_PATH: Final = "deepseek_serving.app:build_app"
"""serveConfigV2's `import_path` of every version (the operator renders the same)."""

LOCAL_RAY_ENV: Final[dict[str, str]] = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_worker_niceness": "0",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "3",
}
"""Defaults for the embedded Ray; values the caller already exported win."""
HAPROXY_ENV: Final[dict[str, str]] = {"RAY_SERVE_ENABLE_HA_PROXY": "1"}
HAPROXY_PORT_ENV: Final = ("RAY_SERVE_HAPROXY_METRICS_PORT", "RAY_SERVE_HAPROXY_STATS_PORT")


@dataclass
class LocalServing:
    """A running local application; use as a context manager to shut it down."""

    base_url: str
    """Where the OpenAI API is served, e.g. ``http://127.0.0.1:8000`` (plus the route prefix)."""
    app_name: str
    """Ray Serve application name."""
    metrics_url: str
    """This node's Ray metrics endpoint (``ray_vllm_*``, ``ray_deepseek_serving_*``, ``ray_serve_*``)."""
    cluster: LocalCluster
    _stopped: threading.Event = field(default_factory=threading.Event, repr=False)

    def block(self) -> None:
        """Wait until Ctrl-C or SIGTERM (main thread) or until ``shutdown`` is called elsewhere."""

        def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, stop_on_sigterm)
        try:
            while not self._stopped.wait(timeout=1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)

    def shutdown(self) -> None:
        """Delete the application (in-flight requests drain), then stop the embedded Ray."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.cluster.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.shutdown()


@dataclass(frozen=True)
class LocalApplication:
    """One application as Ray Serve reports it."""

    status: str
    """NOT_STARTED, DEPLOYING, DEPLOY_FAILED, RUNNING, UNHEALTHY, DELETING."""
    message: str
    running_replicas: int
    """RUNNING replicas of its rank deployment (one per DP rank)."""
    target_replicas: int
    """Replicas its rank deployment aims for: all but those stopping (starting ones included)."""


class LocalCluster:
    """An embedded single-node Ray whose Serve runs applications declared as KubeRay declares them.

    `apply` takes the `applications` of a serveConfigV2 (the same dicts the operator renders into
    RayServices) and deploys exactly those, declaratively: an application whose `args` are
    unchanged keeps its replicas (only its replica counts move), one left out is deleted after
    its in-flight requests drain. KubeRay PUTs the same schema to the dashboard's REST API; here
    it goes to the Serve controller directly (the client Ray's REST handler uses).
    """

    def __init__(self, *, num_cpus: int, host: str = "127.0.0.1", port: int = 0, log_to_driver: bool = True):
        """Start Ray and Serve; Serve's HAProxy ingress listens on `host`:`port` (0: a free port)."""
        for variable, value in LOCAL_RAY_ENV.items():
            os.environ.setdefault(variable, value)
        for variable in HAPROXY_PORT_ENV:
            os.environ.setdefault(variable, str(free_port(host)))
        os.environ.update(HAPROXY_ENV)

        import ray
        from ray import serve

        self.host, self.port = host, port or free_port(host)
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            namespace="deepseek-serving",
            log_to_driver=log_to_driver,
        )
        try:
            serve.start(http_options={"host": host, "port": self.port})
        except BaseException:
            ray.shutdown()
            raise
        node = ray.nodes()[0]  # type: ignore[no-untyped-call]
        self.metrics_url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
        # Where the Serve controller logs its autoscaling decisions (Ray has no public accessor).
        self._session_dir = ray._private.worker._global_node.get_session_dir_path()  # type: ignore[attr-defined]
        self._log_offsets: dict[str, int] = {}
        self._metrics: tuple[float, str] | None = None  # (when read, the page)
        self._stopped = False

    def apply(self, applications: list[dict[str, Any]]) -> None:
        """Deploy exactly `applications` (serveConfigV2 `applications` entries)."""
        from ray.serve.context import _get_global_client
        from ray.serve.schema import ServeDeploySchema

        client = _get_global_client()
        if client is None:
            raise RuntimeError("Serve is not running in this cluster")
        client.deploy_apps(ServeDeploySchema.model_validate({"applications": applications}))

    def applications(self) -> dict[str, LocalApplication]:
        """Every application's status and running rank replicas."""
        from ray import serve
        from ray.serve._private.common import ReplicaState

        found = {}
        for name, app in serve.status().applications.items():
            deployment = app.deployments.get(SERVE_DEPLOYMENT_NAME)
            states = deployment.replica_states if deployment else {}
            found[name] = LocalApplication(
                str(app.status.value),
                str(app.message or ""),
                running_replicas=states.get(ReplicaState.RUNNING, 0),
                target_replicas=sum(n for state, n in states.items() if state != ReplicaState.STOPPING),
            )
        return found

    def metrics(self, *, max_age_s: float = 0.0) -> str:
        """This node's Ray metrics page (Prometheus text), read again once older than `max_age_s`:
        the rollout's step and the live view share one read."""
        import httpx

        if self._metrics is None or time.monotonic() - self._metrics[0] > max_age_s:
            self._metrics = (time.monotonic(), httpx.get(self.metrics_url, timeout=5).text)
        return self._metrics[1]

    def queue_depths(self) -> dict[tuple[str, str], float]:
        """Running + waiting requests per (version, revision), summed over the ranks' gauges on
        this node's metrics endpoint (as fresh as Ray's export, a few seconds)."""
        from prometheus_client.parser import text_string_to_metric_families

        depths: dict[tuple[str, str], float] = {}
        for family in text_string_to_metric_families(self.metrics()):
            if family.name != f"ray_{RANK_QUEUE_DEPTH_METRIC}":
                continue
            for sample in family.samples:
                key = (sample.labels.get("version", ""), sample.labels.get("revision", ""))
                depths[key] = depths.get(key, 0.0) + sample.value
        return depths

    def new_scaling_decisions(self) -> list[dict[str, Any]]:
        """The changes of a target group count the autoscaler made since the last call, oldest
        first, with their reasons (the Serve controller's log lines, ``decisions_in_log``)."""
        decisions: list[dict[str, Any]] = []
        for path in sorted(glob.glob(os.path.join(self._session_dir, "logs", "serve", "controller_*.log"))):
            with open(path, "rb") as log:
                log.seek(self._log_offsets.get(path, 0))
                appended = log.read()
            complete = appended[: appended.rfind(b"\n") + 1]  # a line being written waits
            self._log_offsets[path] = self._log_offsets.get(path, 0) + len(complete)
            lines = complete.decode("utf-8", errors="replace").splitlines()
            decisions += decisions_in_log(lines)
        return decisions

    def wait_running(self, name: str, *, timeout_s: float = 900.0) -> None:
        """Block until `name` is RUNNING; raise with Serve's message if it fails to deploy."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            app = self.applications().get(name)
            if app is not None and app.status == "RUNNING":
                return
            if app is not None and app.status == "DEPLOY_FAILED":
                raise RuntimeError(f"application {name} failed to deploy: {app.message}")
            time.sleep(0.5)
        raise TimeoutError(f"application {name} was not RUNNING within {timeout_s:.0f} s")

    def shutdown(self) -> None:
        """Delete every application (in-flight requests drain), then stop Serve and Ray."""
        if self._stopped:
            return
        self._stopped = True
        import ray
        from ray import serve

        try:
            self.apply([])
            serve.shutdown()  # type: ignore[no-untyped-call]
        finally:
            ray.shutdown()


def local_ray_cpus(args: ServingArgs, machine_cpus: int) -> int:
    """Logical CPUs the embedded Ray declares: the machine's, or more if the groups' bundles need it.

    Example: 2 groups of bundles ``[{"CPU": 1}, {"CPU": 1}]`` on a 2-core machine -> 4.
    """
    max_groups = args.autoscaling.max_groups if args.autoscaling else args.groups
    group_cpus = sum(bundle.get("CPU", 0.0) for bundle in args.placement.bundles)
    return max(machine_cpus, math.ceil(group_cpus * max_groups))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def serve_locally(
    args: ServingArgs,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    app_name: str | None = None,
    log_to_driver: bool = True,
) -> LocalServing:
    """Start an embedded Ray, deploy ``build_app(args)`` and return once it serves.

    Parameters:
        args: the serving contract (the same object the operator renders into serveConfigV2).
        host, port: where HAProxy listens.
        app_name: Ray Serve application name (default: ``<deploymentName>-<versionName>``).
        log_to_driver: stream Ray workers' logs (engines, replicas) to this process's stderr.

    Returns:
        A ``LocalServing`` handle; ``with serve_locally(args) as served: served.block()`` serves
        until Ctrl-C and then shuts everything down.
    """
    name = app_name or f"{args.deployment_name}-{args.version_name}"
    cluster = LocalCluster(
        num_cpus=local_ray_cpus(args, os.cpu_count() or 1), host=host, port=port, log_to_driver=log_to_driver
    )
    try:
        cluster.apply([application_config(args, name=name)])
        cluster.wait_running(name)
    except BaseException:
        cluster.shutdown()
        raise
    prefix = args.route_prefix.rstrip("/")
    return LocalServing(
        base_url=f"http://{host}:{port}{prefix}",
        app_name=name,
        metrics_url=cluster.metrics_url,
        cluster=cluster,
    )


def application_config(args: ServingArgs, *, name: str, route_prefix: str | None = None) -> dict[str, Any]:
    """One serveConfigV2 application running `build_app(args)` (what the operator renders): the
    contract as `args`, the group counts as a deployment override (`llm_config.code_args`)."""
    return {
        "name": name,
        "route_prefix": route_prefix or args.route_prefix,
        "import_path": APP_IMPORT_PATH,
        "args": code_args(args),
        "deployments": [render_deployment_override(args)],
    }
