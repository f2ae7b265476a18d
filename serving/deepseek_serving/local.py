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

``serve_locally`` returns once the application is running; ``LocalServing`` is a context manager
whose exit (also on Ctrl-C) deletes the application, letting in-flight requests drain, and stops Ray.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import threading
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Final, Self

from deepseek_serving.config import ServingArgs

__all__ = ["LocalServing", "free_port", "local_ray_cpus", "serve_locally"]

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
        import ray
        from ray import serve

        try:
            serve.delete(self.app_name)
            serve.shutdown()  # type: ignore[no-untyped-call]
        finally:
            ray.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.shutdown()


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
    for variable, value in LOCAL_RAY_ENV.items():
        os.environ.setdefault(variable, value)
    for variable in HAPROXY_PORT_ENV:
        os.environ.setdefault(variable, str(free_port(host)))
    os.environ.update(HAPROXY_ENV)

    import ray
    from ray import serve

    from deepseek_serving.app import build_app

    name = app_name or f"{args.deployment_name}-{args.version_name}"
    ray.init(
        address="local",
        num_cpus=local_ray_cpus(args, os.cpu_count() or 1),
        include_dashboard=False,
        namespace="deepseek-serving",
        log_to_driver=log_to_driver,
    )
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(build_app(args), name=name, route_prefix=args.route_prefix, blocking=False)
    except BaseException:
        ray.shutdown()
        raise
    prefix = args.route_prefix.rstrip("/")
    node = ray.nodes()[0]  # type: ignore[no-untyped-call]
    metrics_url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
    return LocalServing(base_url=f"http://{host}:{port}{prefix}", app_name=name, metrics_url=metrics_url)
