"""The operator running for real (kopf) against the test API server and the KubeRay stand-in.

The stand-in's Serve backend here is `InstantServe`: it reports every application RUNNING at once
(or FAILED, when a test says so). It replaces Ray and vLLM, which are the environment, not the
code under test; `e2e_tests/` serve the tiny model for real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kopf.testing import KopfRunner

from deepseek_operator.testing.kuberay import AppState, KubeRayStandIn
from deepseek_operator.testing.server import ApiServer

ROOT = Path(__file__).parents[2]
CONTROLLER_LOG_FILE = "/serve/controller_1.log"  # as Ray reports it: relative, with a leading "/"
T = TypeVar("T")


class InstantServe:
    """A Serve backend whose applications are RUNNING as soon as they are deployed.

    Its dashboard view (`serve_details`, what the stand-in's dashboard facade answers) is made up
    from the stored configs the way Ray Serve reports them: each application's one deployment
    (`engine-ranks` for `deepseek_serving.app:build_app`, else the first of the config's
    `deployments`) with `target_num_replicas` set to its initial Serve replicas and all of them
    RUNNING. The initial replicas are a `deployments` override's `num_replicas` or
    `autoscaling_config.initial_replicas` (Serve applies those to the built deployment, so they
    count replicas), else `llm_config.render_llm_config`'s initial groups x `dataParallelSize`
    (Ray Serve LLM's `DPServer` multiplies them so). A Serve replica is one DP rank: a group is
    `dataParallelSize` replicas.

    Test hooks, per RayService key (`ns/name`), for every application of that RayService:
    - `failing`: DEPLOY_FAILED, no replicas (`failing_versions`: the same by version name);
    - `target_replicas[key] = n`: the autoscaler's decision; the deployment is UPSCALING (above
      the initial replicas) or DOWNSCALING (replicas stopping), `status_trigger` AUTOSCALING, with
      Ray's message "Upscaling from 2 to 4 replicas.", until the RUNNING count reaches it, then
      HEALTHY (UPSCALE_/DOWNSCALE_COMPLETED);
    - `replicas[key] = n`: RUNNING replicas (default: the target). Fewer than the target lists the
      rest STARTING: before the deployment was first HEALTHY it is UPDATING (application
      DEPLOYING: groups starting), afterwards UNHEALTHY (application UNHEALTHY: a group failed),
      unless the autoscaler raised the target (UPSCALING). More than the target lists the extra
      ones STOPPING (a scale-down under way).
    - `controller_logs[key]`: lines of the Serve controller's log (the dashboard's log API answers
      their tail for the file `serve_details` names), e.g. the autoscaler's decision lines.
    A changed config (a new `deploy`) starts over as a first deployment.
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        """`clock`: Unix seconds for `last_deployed_time_s`/`start_time_s` (default: the system's)."""
        from deepseek_operator.testing.clock import system_clock

        self._clock = clock or (lambda: system_clock().timestamp())
        self._lock = threading.Lock()
        self.configs: dict[str, Mapping[str, Any]] = {}
        self.failing: set[str] = set()
        """RayService keys (`ns/name`) whose applications report DEPLOY_FAILED."""
        self.failing_versions: set[tuple[str, str, str]] = set()
        """(namespace, deployment, version) whose RayServices fail, whatever their (revision) names."""
        self.target_replicas: dict[str, int] = {}
        """RayService key -> the autoscaler's target in Serve replicas (default: the initial ones)."""
        self.replicas: dict[str, int] = {}
        """RayService key -> RUNNING Serve replicas (default: the target)."""
        self.controller_logs: dict[str, list[str]] = {}
        """RayService key -> lines of its Serve controller's log."""
        self._deployed_at: dict[str, float] = {}
        self._healthy_once: set[tuple[str, str]] = set()  # (key, app) whose deployment was HEALTHY

    def deploy(self, key: str, serve_config: Mapping[str, Any]) -> None:
        with self._lock:
            self.configs[key] = serve_config
            self._deployed_at[key] = self._clock()
            self._healthy_once = {done for done in self._healthy_once if done[0] != key}

    def delete(self, key: str) -> None:
        with self._lock:
            self.configs.pop(key, None)

    def deployed(self) -> set[str]:
        with self._lock:
            return set(self.configs)

    def url(self, key: str) -> str:
        return f"http://127.0.0.1:9/{key}"  # nothing listens: these tests never send requests

    def status(self, key: str) -> dict[str, AppState]:
        return {
            name: AppState(
                app["status"],
                app["message"],
                {dep: (details["status"], details["message"]) for dep, details in app["deployments"].items()},
            )
            for name, app in self._applications(key).items()
        }

    def serve_details(self, key: str) -> dict[str, Any]:
        applications = self._applications(key)
        if not applications:
            return {"controller_info": {}, "proxies": {}, "applications": {}, "target_capacity": None}
        return {
            "controller_info": {
                "node_id": "instant-node",
                "node_ip": "127.0.0.1",
                "log_file_path": CONTROLLER_LOG_FILE,
            },
            "proxy_location": "EveryNode",
            "http_options": {"host": "127.0.0.1", "port": 9},
            "proxies": {},
            "applications": applications,
            "target_capacity": None,
        }

    def controller_log(self, key: str, filename: str, lines: int) -> list[str] | None:
        if filename != CONTROLLER_LOG_FILE.lstrip("/"):
            return None
        with self._lock:
            return list(self.controller_logs.get(key, []))[-lines:] if lines > 0 else []

    def _applications(self, key: str) -> dict[str, dict[str, Any]]:
        """`ApplicationDetails` JSON per application name of `key` (empty when nothing is deployed)."""
        with self._lock:
            config = self.configs.get(key)
            deployed_at = self._deployed_at.get(key, 0.0)
        out: dict[str, dict[str, Any]] = {}
        for app in (config or {}).get("applications") or []:
            name = str(app.get("name", "default"))
            deployment, initial = self._initial_replicas(app)
            details = self._deployment(key, name, deployment, initial, deployed_at)
            app_status, message = {
                "DEPLOY_FAILED": ("DEPLOY_FAILED", "engine failed to start"),
                "UPDATING": ("DEPLOYING", ""),
                "UNHEALTHY": ("UNHEALTHY", f"The deployment '{deployment}' is UNHEALTHY."),
            }.get(details["status"], ("RUNNING", ""))
            out[name] = {
                "name": name,
                "route_prefix": app.get("route_prefix", "/"),
                "docs_path": None,
                "status": app_status,
                "message": message,
                "last_deployed_time_s": deployed_at,
                "deployed_app_config": dict(app),
                "source": "declarative",
                "deployments": {deployment: details},
                "external_scaler_enabled": False,
                "deployment_topology": {
                    "app_name": name,
                    "nodes": {
                        deployment: {
                            "name": deployment,
                            "app_name": name,
                            "outbound_deployments": [],
                            "is_ingress": True,
                        }
                    },
                    "ingress_deployment": deployment,
                },
            }
        return out

    def _deployment(
        self, key: str, app: str, deployment: str, initial: int, deployed_at: float
    ) -> dict[str, Any]:
        """`DeploymentDetails` JSON of one application's deployment, from the hooks."""
        target = self.target_replicas.get(key, initial)
        running = self.replicas.get(key, target)
        states = ["RUNNING"] * min(running, target)
        states += ["STARTING"] * (target - running) + ["STOPPING"] * (running - target)
        upscaling, downscaling = target > initial and running < target, running > target
        status, trigger, message = "HEALTHY", "CONFIG_UPDATE_COMPLETED", ""
        if key in self.failing or self._version_fails(key):
            states = []
            status, trigger, message = "DEPLOY_FAILED", "REPLICA_STARTUP_FAILED", "engine failed to start"
        elif upscaling or downscaling:
            status, trigger = ("UPSCALING" if upscaling else "DOWNSCALING"), "AUTOSCALING"
            verb = "Upscaling" if upscaling else "Downscaling"
            message = f"{verb} from {running} to {target} replicas."
        elif running < target:
            with self._lock:
                started = (key, app) in self._healthy_once
            status, trigger = (
                ("UNHEALTHY", "HEALTH_CHECK_FAILED") if started else ("UPDATING", "CONFIG_UPDATE_STARTED")
            )
            message = f"{target - running} of {target} replicas are not running."
        else:
            if target != initial:
                trigger = "UPSCALE_COMPLETED" if target > initial else "DOWNSCALE_COMPLETED"
            with self._lock:
                self._healthy_once.add((key, app))
        return {
            "name": deployment,
            "status": status,
            "status_trigger": trigger,
            "message": message,
            "deployment_config": {"name": deployment},
            "target_num_replicas": target,
            "required_resources": {},
            "replicas": [
                {
                    "node_id": "instant-node",
                    "node_ip": "127.0.0.1",
                    "actor_name": f"SERVE_REPLICA::{app}#{deployment}#r{index}",
                    "replica_id": f"r{index}",
                    "state": state,
                    "start_time_s": deployed_at,
                }
                for index, state in enumerate(states)
            ],
        }

    def _version_fails(self, key: str) -> bool:
        with self._lock:
            config = self.configs.get(key) or {}
        for app in config.get("applications") or []:
            args = app.get("args") or {}
            identity = (key.split("/")[0], str(args.get("deploymentName")), str(args.get("versionName")))
            if identity in self.failing_versions:
                return True
        return False

    @staticmethod
    def _initial_replicas(app: Mapping[str, Any]) -> tuple[str, int]:
        """The application's deployment name and its initial Serve replicas (see the class doc)."""
        from deepseek_operator.render.rayservice import APP_IMPORT_PATH
        from deepseek_serving.config import ServingArgs
        from deepseek_serving.llm_config import SERVE_DEPLOYMENT_NAME, render_llm_config

        overrides = list(app.get("deployments") or [])
        built_here = app.get("import_path") == APP_IMPORT_PATH
        name = SERVE_DEPLOYMENT_NAME if built_here or not overrides else str(overrides[0]["name"])
        override = next((dep for dep in overrides if dep.get("name") == name), {})
        if isinstance(override.get("num_replicas"), int):
            return name, int(override["num_replicas"])
        scaling = override.get("autoscaling_config") or {}
        if "initial_replicas" in scaling or "min_replicas" in scaling:
            return name, int(scaling.get("initial_replicas", scaling.get("min_replicas", 1)))
        if not built_here:
            return name, 1
        args = ServingArgs.model_validate(app.get("args") or {})
        groups = render_llm_config(args)["deployment_config"]["autoscaling_config"]["initial_replicas"]
        return name, int(groups) * args.data_parallel_size


@pytest.fixture(scope="session")
def project_crds(apiserver: ApiServer, kuberay_crds: list[str]) -> list[str]:
    return apiserver.install_crds(sorted((ROOT / "crds").glob("*.yaml")))


@pytest.fixture(scope="session")
def kuberay_standin(kubeconfig: Path, project_crds: list[str]) -> Iterator[KubeRayStandIn]:
    with KubeRayStandIn(kubeconfig, InstantServe(), resync_s=0.2) as standin:
        yield standin


@pytest.fixture(scope="session")
def instant_serve(kuberay_standin: KubeRayStandIn) -> InstantServe:
    backend = kuberay_standin.backend
    assert isinstance(backend, InstantServe)
    return backend


OPERATOR_ENV = {
    "DSD_RECONCILE__RESYNC_SECONDS": "2",
    "DSD_SERVER__METRICS_PORT": "0",
    "DSD_RECONCILE__BACKOFF_INITIAL_SECONDS": "0.2",
    "DSD_RECONCILE__SETTLE_SECONDS": "0.5",
    "DSD_RAY__SERVE_TTL_SECONDS": "0.5",
}


@pytest.fixture
def operator(
    kubeconfig_env: Path,
    kuberay_standin: KubeRayStandIn,
    instant_serve: InstantServe,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[], KopfRunner]:
    """A factory of running operators (`with operator(): ...`), kopf as `kopf run` starts it."""
    for name, value in OPERATOR_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DSD_RAY__DASHBOARD_URL_TEMPLATE", kuberay_standin.dashboard_url_template)

    def start() -> KopfRunner:
        return KopfRunner(
            ["run", "--standalone", "--all-namespaces", "-m", "deepseek_operator.handlers"], timeout=60
        )

    return start


def eventually(check: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll `check` until it returns a truthy value without raising; its last error otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
            error: BaseException | None = AssertionError(f"{check.__name__} returned {result!r}")
        except (AssertionError, KeyError, LookupError) as failure:
            error = failure
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s") from error
        time.sleep(interval)
