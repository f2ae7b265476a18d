"""The KubeRay stand-in: status logic as a pure function, then for real on Ray Serve with a trivial app."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from deepseek_operator.testing.kuberay import (
    URL_ANNOTATION,
    AppState,
    KubeRayStandIn,
    compute_status,
    find_kuberay_crds,
    render_services,
)
from deepseek_operator.testing.server import ApiServer

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T00:05:00Z"


def rayservice(generation: int = 1, status: dict[str, Any] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": "rs", "namespace": "ns", "uid": "u-1", "generation": generation},
        "spec": {},
    }
    if status is not None:
        obj["status"] = status
    return obj


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


@pytest.mark.parametrize(
    ("active", "service_status", "ready", "reason", "endpoints"),
    [
        pytest.param(False, "NotRunning", "False", "Initializing", 0, id="initializing"),
        pytest.param(True, "Running", "True", "NonZeroServeEndpoints", 1, id="active"),
    ],
)
def test_compute_status(active: bool, service_status: str, ready: str, reason: str, endpoints: int) -> None:
    apps = {"llm": AppState("RUNNING" if active else "DEPLOYING", "", {"Server": ("HEALTHY", "")})}
    status = compute_status(rayservice(), apps, active=active, now=NOW)
    assert status["serviceStatus"] == service_status
    assert status["numServeEndpoints"] == endpoints
    assert condition(status, "Ready")["status"] == ready
    assert condition(status, "Ready")["reason"] == reason
    assert condition(status, "UpgradeInProgress")["status"] == "False"
    placed, empty = (
        ("activeServiceStatus", "pendingServiceStatus")
        if active
        else ("pendingServiceStatus", "activeServiceStatus")
    )
    assert status[empty] == {}
    assert (
        status[placed]["applicationStatuses"]["llm"]["serveDeploymentStatuses"]["Server"]["status"]
        == "HEALTHY"
    )
    assert status[placed]["rayClusterName"].startswith("rs-raycluster-")


def test_condition_transition_time_moves_only_on_flips() -> None:
    first = compute_status(rayservice(), {}, active=True, now=NOW)
    again = compute_status(rayservice(status=first), {}, active=True, now=LATER)
    assert condition(again, "Ready")["lastTransitionTime"] == NOW
    assert again["lastUpdateTime"] == LATER
    flipped = compute_status(rayservice(status=first), {}, active=False, now=LATER)
    assert condition(flipped, "Ready")["lastTransitionTime"] == LATER


def test_observed_generation_follows_the_object() -> None:
    status = compute_status(rayservice(generation=4), {}, active=True, now=NOW)
    assert status["observedGeneration"] == 4
    assert condition(status, "Ready")["observedGeneration"] == 4


def test_render_services_are_owned_by_the_rayservice() -> None:
    head, serve = render_services(rayservice(), "http://127.0.0.1:8000/ns/rs")
    assert head["metadata"]["name"] == "rs-head-svc"
    assert serve["metadata"]["name"] == "rs-serve-svc"
    assert serve["spec"]["ports"][0]["port"] == 8000
    assert serve["metadata"]["annotations"][URL_ANNOTATION] == "http://127.0.0.1:8000/ns/rs"
    assert {s["metadata"]["ownerReferences"][0]["uid"] for s in (head, serve)} == {"u-1"}


# --- for real on Ray Serve ----------------------------------------------------------------------


def serve_config(text: str, import_path: str = "tests.testing.serve_echo:build") -> str:
    return yaml.safe_dump(
        {
            "applications": [
                {"name": "echo", "import_path": import_path, "route_prefix": "/", "args": {"text": text}}
            ]
        }
    )


def make_rayservice(name: str, config: str) -> dict[str, Any]:
    head = {
        "rayStartParams": {},
        "template": {"spec": {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.60.0"}]}},
    }
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name},
        "spec": {"serveConfigV2": config, "rayClusterConfig": {"headGroupSpec": head}},
    }


def wait_for(check: Callable[[], Any], timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError("timed out")


def fetch(url: str) -> bytes | None:
    """The body at `url`, or None while it cannot be fetched (no route yet, 404)."""
    try:
        body: bytes = urllib.request.urlopen(url, timeout=10).read()
    except urllib.error.URLError:
        return None
    return body


@dataclass(frozen=True)
class Cluster:
    """An API server of its own with the stand-in on real Ray Serve: other session fixtures may
    run stand-ins (with fake backends) on the shared server, and two controllers must not own
    the same RayServices."""

    kubeconfig: Path
    standin: KubeRayStandIn


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    pytest.importorskip("ray.serve")
    from deepseek_operator.testing.serve_backend import RayServeBackend

    crds = find_kuberay_crds()
    if crds is None:
        pytest.skip("KubeRay CRDs not found: set KUBERAY_CRDS to shared/kuberay-crds/v1.7.0")
    with ApiServer() as server:
        server.install_crds(sorted(crds.glob("*.yaml")))
        kubeconfig = server.write_kubeconfig(tmp_path_factory.mktemp("kuberay") / "config")
        with RayServeBackend(num_cpus=2) as backend, KubeRayStandIn(kubeconfig, backend) as standin:
            yield Cluster(kubeconfig, standin)


@pytest.fixture
def api(cluster: Cluster) -> Iterator[Any]:
    from kubernetes import config

    api_client = config.new_client_from_config(str(cluster.kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture
def ns(api: Any) -> Iterator[str]:
    name = f"rs-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    yield name
    client.CoreV1Api(api).delete_namespace(name)


@pytest.fixture
def custom(api: Any) -> Any:
    return client.CustomObjectsApi(api)


def get_status(custom: Any, namespace: str, name: str) -> dict[str, Any]:
    obj = custom.get_namespaced_custom_object("ray.io", "v1", namespace, "rayservices", name)
    status: dict[str, Any] = obj.get("status") or {}
    return status


def test_rayservice_runs_serves_updates_and_tears_down(custom: Any, api: Any, ns: str) -> None:
    namespace = ns
    core = client.CoreV1Api(api)
    custom.create_namespaced_custom_object(
        "ray.io", "v1", namespace, "rayservices", make_rayservice("echo", serve_config("hello"))
    )
    status = wait_for(
        lambda: (s := get_status(custom, namespace, "echo")).get("serviceStatus") == "Running" and s
    )
    app = status["activeServiceStatus"]["applicationStatuses"]["echo"]
    assert app["status"] == "RUNNING"
    assert app["serveDeploymentStatuses"]["Echo"]["status"] == "HEALTHY"
    assert condition(status, "Ready")["reason"] == "NonZeroServeEndpoints"
    assert status["numServeEndpoints"] == 1
    serve_svc = core.read_namespaced_service("echo-serve-svc", namespace)
    core.read_namespaced_service("echo-head-svc", namespace)
    url = serve_svc.metadata.annotations[URL_ANNOTATION]
    # Serve's proxies learn a new route a moment after the application reports RUNNING.
    wait_for(lambda: fetch(url) == b"hello")

    # serveConfigV2 change: updated in place, generation observed.
    custom.patch_namespaced_custom_object(
        "ray.io", "v1", namespace, "rayservices", "echo", {"spec": {"serveConfigV2": serve_config("changed")}}
    )
    wait_for(lambda: get_status(custom, namespace, "echo").get("observedGeneration") == 2)
    wait_for(lambda: fetch(url) == b"changed")

    # Deletion: the Services go by garbage collection, the application is torn down.
    custom.delete_namespaced_custom_object("ray.io", "v1", namespace, "rayservices", "echo")
    wait_for(lambda: not core.list_namespaced_service(namespace).items, timeout_s=20)


def test_broken_import_path_reports_deploy_failed(cluster: Cluster, custom: Any, ns: str) -> None:
    namespace = ns
    custom.create_namespaced_custom_object(
        "ray.io",
        "v1",
        namespace,
        "rayservices",
        make_rayservice("broken", serve_config("x", "no_such_module:app")),
    )
    status = wait_for(
        lambda: (
            (s := get_status(custom, namespace, "broken"))
            .get("pendingServiceStatus", {})
            .get("applicationStatuses", {})
            .get("echo", {})
            .get("status")
            == "DEPLOY_FAILED"
            and s
        )
    )
    assert "no_such_module" in status["pendingServiceStatus"]["applicationStatuses"]["echo"]["message"]
    assert condition(status, "Ready")["status"] == "False"
    assert status["serviceStatus"] == "NotRunning"
    custom.delete_namespaced_custom_object("ray.io", "v1", namespace, "rayservices", "broken")
    wait_for(lambda: f"{namespace}/broken" not in cluster.standin.backend.deployed(), timeout_s=20)
