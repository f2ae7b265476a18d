"""The KubeRay stand-in: status logic as a pure function, its dashboard facade over `InstantServe`
(the operator tests' fake Serve), then for real on Ray Serve with a trivial app."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from deepseek_operator.render.rayservice import render_serve_config
from deepseek_operator.testing.kuberay import (
    DASHBOARD_URL_ANNOTATION,
    LOG_FILE_PATH,
    SERVE_DETAILS_PATH,
    URL_ANNOTATION,
    AppState,
    KubeRayStandIn,
    compute_status,
    empty_serve_details,
    find_kuberay_crds,
    render_services,
)
from deepseek_operator.testing.serve_backend import compute_rayservice_serve_details, rayservice_log_lines
from deepseek_operator.testing.server import ApiServer
from deepseek_serving.config import ServingArgs
from tests.operator.conftest import InstantServe

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
    head, serve = render_services(
        rayservice(), "http://127.0.0.1:8000/ns/rs", dashboard_url="http://127.0.0.1:8265/ns/rs"
    )
    assert head["metadata"]["name"] == "rs-head-svc"
    assert serve["metadata"]["name"] == "rs-serve-svc"
    assert serve["spec"]["ports"][0]["port"] == 8000
    assert serve["metadata"]["annotations"][URL_ANNOTATION] == "http://127.0.0.1:8000/ns/rs"
    assert head["metadata"]["annotations"][DASHBOARD_URL_ANNOTATION] == "http://127.0.0.1:8265/ns/rs"
    assert {s["metadata"]["ownerReferences"][0]["uid"] for s in (head, serve)} == {"u-1"}


# --- Ray's dashboard Serve API, per RayService ---------------------------------------------------


def assert_ray_shape(details: dict[str, Any]) -> None:
    """`details` is what Ray's dashboard could have answered (Ray's own response model)."""
    schema = pytest.importorskip("ray.serve.schema")
    schema.ServeInstanceDetails.model_validate(details)


def serving_config(app: str = "chat", **camel: Any) -> dict[str, Any]:
    """serveConfigV2 as the operator renders it, for a ServingArgs with `camel` fields."""
    fields = {
        "deploymentName": app,
        "versionName": "v1",
        "modelSource": "/models/tiny",
        "servedModelName": "tiny",
        "placement": {"accelerator": "cpu", "bundles": [{"CPU": 1.0}] * camel.get("dataParallelSize", 1)},
    }
    config: dict[str, Any] = yaml.safe_load(
        render_serve_config(ServingArgs.model_validate(fields | camel), application=app)
    )
    return config


def engine_ranks(backend: InstantServe, key: str = "ns/rs", app: str = "chat") -> dict[str, Any]:
    deployment: dict[str, Any] = backend.serve_details(key)["applications"][app]["deployments"][
        "engine-ranks"
    ]
    return deployment


def replica_states(deployment: dict[str, Any]) -> list[str]:
    return [replica["state"] for replica in deployment["replicas"]]


@pytest.mark.parametrize(
    ("camel", "replicas"),
    [
        pytest.param({}, 1, id="one-group-one-rank"),
        pytest.param({"groups": 3}, 3, id="groups"),
        pytest.param({"groups": 2, "dataParallelSize": 2}, 4, id="groups-x-dp"),
        pytest.param(
            {"dataParallelSize": 2, "autoscaling": {"minGroups": 2, "maxGroups": 5}}, 4, id="autoscaling-min"
        ),
    ],
)
def test_instant_serve_reports_the_rendered_replicas_running(camel: dict[str, Any], replicas: int) -> None:
    backend = InstantServe(clock=lambda: 1_700_000_000.0)
    backend.deploy("ns/rs", serving_config(routePrefix="/chat", **camel))
    details = backend.serve_details("ns/rs")
    assert_ray_shape(details)
    app = details["applications"]["chat"]
    assert (app["name"], app["route_prefix"], app["status"]) == ("chat", "/chat", "RUNNING")
    deployment = app["deployments"]["engine-ranks"]
    assert (deployment["status"], deployment["target_num_replicas"]) == ("HEALTHY", replicas)
    assert replica_states(deployment) == ["RUNNING"] * replicas
    assert backend.status("ns/rs") == {"chat": AppState("RUNNING", "", {"engine-ranks": ("HEALTHY", "")})}


@pytest.mark.parametrize(
    ("override", "replicas"),
    [
        pytest.param({"num_replicas": 6}, 6, id="num-replicas"),
        pytest.param({"autoscaling_config": {"min_replicas": 2, "initial_replicas": 4}}, 4, id="initial"),
        pytest.param({"autoscaling_config": {"min_replicas": 2, "max_replicas": 8}}, 2, id="min"),
    ],
)
def test_instant_serve_takes_deployments_overrides_as_replicas(
    override: dict[str, Any], replicas: int
) -> None:
    config = serving_config(groups=3, dataParallelSize=2)
    config["applications"][0]["deployments"] = [{"name": "engine-ranks", **override}]
    backend = InstantServe()
    backend.deploy("ns/rs", config)
    assert engine_ranks(backend)["target_num_replicas"] == replicas


def test_instant_serve_hooks_simulate_groups_starting_failing_and_scaling() -> None:
    backend = InstantServe()
    backend.deploy("ns/rs", serving_config(groups=2, dataParallelSize=2))

    # Step 1: the groups start: one group (two ranks) of two running, the application deploying.
    backend.replicas["ns/rs"] = 2
    deployment = engine_ranks(backend)
    assert (deployment["status"], deployment["status_trigger"]) == ("UPDATING", "CONFIG_UPDATE_STARTED")
    assert replica_states(deployment) == ["RUNNING", "RUNNING", "STARTING", "STARTING"]
    assert backend.status("ns/rs")["chat"].status == "DEPLOYING"

    # Step 2: all running: healthy.
    del backend.replicas["ns/rs"]
    assert engine_ranks(backend)["status"] == "HEALTHY"
    assert backend.status("ns/rs")["chat"].status == "RUNNING"

    # Step 3: a rank dies after the deployment was healthy: unhealthy until it runs again.
    backend.replicas["ns/rs"] = 3
    deployment = engine_ranks(backend)
    assert (deployment["status"], deployment["message"]) == ("UNHEALTHY", "1 of 4 replicas are not running.")
    assert backend.status("ns/rs")["chat"].status == "UNHEALTHY"
    del backend.replicas["ns/rs"]

    # Step 4: the autoscaler asks for a third group; its ranks start, then run.
    backend.target_replicas["ns/rs"] = 6
    backend.replicas["ns/rs"] = 4
    deployment = engine_ranks(backend)
    assert (deployment["status"], deployment["status_trigger"]) == ("UPSCALING", "AUTOSCALING")
    assert deployment["message"] == "Upscaling from 4 to 6 replicas."
    assert deployment["target_num_replicas"] == 6
    assert replica_states(deployment).count("RUNNING") == 4
    assert backend.status("ns/rs")["chat"].status == "RUNNING"
    backend.replicas["ns/rs"] = 6
    assert (engine_ranks(backend)["status"], engine_ranks(backend)["status_trigger"]) == (
        "HEALTHY",
        "UPSCALE_COMPLETED",
    )

    # Step 5: down to one group: the extra ranks stop.
    backend.target_replicas["ns/rs"] = 2
    backend.replicas["ns/rs"] = 4
    deployment = engine_ranks(backend)
    assert (deployment["status"], deployment["message"]) == (
        "DOWNSCALING",
        "Downscaling from 4 to 2 replicas.",
    )
    assert replica_states(deployment) == ["RUNNING", "RUNNING", "STOPPING", "STOPPING"]

    # Step 6: the engine fails to start.
    backend.failing.add("ns/rs")
    deployment = engine_ranks(backend)
    assert (deployment["status"], deployment["replicas"]) == ("DEPLOY_FAILED", [])
    assert backend.status("ns/rs")["chat"].status == "DEPLOY_FAILED"
    assert_ray_shape(backend.serve_details("ns/rs"))


def test_instant_serve_with_nothing_deployed_answers_like_ray() -> None:
    backend = InstantServe()
    assert backend.serve_details("ns/rs") == empty_serve_details()
    backend.deploy("ns/rs", {})
    assert backend.serve_details("ns/rs") == empty_serve_details()
    assert_ray_shape(empty_serve_details())


def shared_serve_details() -> dict[str, Any]:
    """The shared Serve's details with two RayServices' applications, as Ray names them."""

    def application(shared: str, prefix: str) -> dict[str, Any]:
        return {
            "name": shared,
            "route_prefix": prefix,
            "docs_path": None,
            "status": "RUNNING",
            "message": "",
            "last_deployed_time_s": 1.0,
            "deployed_app_config": {
                "name": shared,
                "route_prefix": prefix,
                "import_path": "m:app",
                "runtime_env": {"env_vars": {"PYTHONPATH": "/src"}},
            },
            "source": "declarative",
            "deployments": {
                "D": {
                    "name": "D",
                    "status": "HEALTHY",
                    "status_trigger": "CONFIG_UPDATE_COMPLETED",
                    "message": "",
                    "deployment_config": {"name": "D"},
                    "target_num_replicas": 1,
                    "required_resources": {"CPU": 0},
                    "replicas": [{"replica_id": "x", "state": "RUNNING", "start_time_s": 1.0}],
                }
            },
            "external_scaler_enabled": False,
            "deployment_topology": {
                "app_name": shared,
                "nodes": {
                    "D": {"name": "D", "app_name": shared, "outbound_deployments": [], "is_ingress": True}
                },
                "ingress_deployment": "D",
            },
        }

    return {
        "controller_info": {"node_id": "n"},
        "proxies": {},
        "applications": {
            "ns--rs--chat": application("ns--rs--chat", "/ns/rs/chat"),
            "ns--rs--root": application("ns--rs--root", "/ns/rs"),
            "ns--other--chat": application("ns--other--chat", "/ns/other/chat"),
        },
        "target_capacity": None,
        "target_groups": [
            {"targets": [], "route_prefix": "/", "protocol": "HTTP", "app_name": ""},
            {"targets": [], "route_prefix": "/ns/rs/chat", "protocol": "HTTP", "app_name": "ns--rs--chat"},
            {
                "targets": [],
                "route_prefix": "/ns/other/chat",
                "protocol": "HTTP",
                "app_name": "ns--other--chat",
            },
        ],
    }


def test_rayservice_view_of_the_shared_serve_renames_back() -> None:
    config = {
        "applications": [
            {"name": "chat", "route_prefix": "/chat", "import_path": "m:app"},
            {"name": "root", "import_path": "m:app"},
        ]
    }
    view = compute_rayservice_serve_details(shared_serve_details(), "ns/rs", config)
    assert_ray_shape(view)
    assert set(view["applications"]) == {"chat", "root"}
    chat, root = view["applications"]["chat"], view["applications"]["root"]
    assert (chat["name"], chat["route_prefix"], root["route_prefix"]) == ("chat", "/chat", "/")
    assert chat["deployed_app_config"] == {"name": "chat", "route_prefix": "/chat", "import_path": "m:app"}
    assert root["deployed_app_config"] == {"name": "root", "import_path": "m:app"}
    assert chat["deployment_topology"]["app_name"] == "chat"
    assert chat["deployment_topology"]["nodes"]["D"]["app_name"] == "chat"
    assert [(g["app_name"], g["route_prefix"]) for g in view["target_groups"]] == [
        ("", "/"),
        ("chat", "/chat"),
    ]
    assert view["controller_info"] == {"node_id": "n"}
    assert compute_rayservice_serve_details(shared_serve_details(), "ns/none", config)["applications"] == {}


@dataclass(frozen=True)
class FakeCluster:
    """An API server of its own with the stand-in on `InstantServe` (see `Cluster` below for why)."""

    kubeconfig: Path
    standin: KubeRayStandIn
    backend: InstantServe


@pytest.fixture(scope="module")
def fake_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeCluster]:
    crds = find_kuberay_crds()
    if crds is None:
        pytest.skip("KubeRay CRDs not found: set KUBERAY_CRDS to shared/kuberay-crds/v1.7.0")
    with ApiServer() as server:
        server.install_crds(sorted(crds.glob("*.yaml")))
        kubeconfig = server.write_kubeconfig(tmp_path_factory.mktemp("kuberay-fake") / "config")
        backend = InstantServe()
        with KubeRayStandIn(kubeconfig, backend, resync_s=0.1) as standin:
            yield FakeCluster(kubeconfig, standin, backend)


def get_json(url: str) -> tuple[int, Any]:
    """(status, JSON body or text) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_dashboard_facade_answers_per_rayservice(fake_cluster: FakeCluster) -> None:
    from kubernetes import config

    api_client = config.new_client_from_config(str(fake_cluster.kubeconfig))
    custom, core = client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)
    namespace = f"dash-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    template = fake_cluster.standin.dashboard_url_template
    assert template.startswith("http://127.0.0.1:")
    assert template.endswith("/{namespace}/{name}")
    details_url = template.format(namespace=namespace, name="chat-v1") + SERVE_DETAILS_PATH
    assert get_json(details_url)[0] == 404  # not created yet

    rendered = serving_config(routePrefix="/chat", groups=2, dataParallelSize=2)
    for name, serve_config in (("chat-v1", yaml.safe_dump(rendered)), ("empty", "")):
        custom.create_namespaced_custom_object(
            "ray.io", "v1", namespace, "rayservices", make_rayservice(name, serve_config)
        )
    _, details = wait_for(lambda: (answer := get_json(details_url))[0] == 200 and answer)
    assert_ray_shape(details)
    assert get_json(details_url + "?api_type=declarative") == (200, details)  # as KubeRay asks
    deployment = details["applications"]["chat"]["deployments"]["engine-ranks"]
    assert (details["applications"]["chat"]["route_prefix"], deployment["target_num_replicas"]) == (
        "/chat",
        4,
    )
    head = core.read_namespaced_service("chat-v1-head-svc", namespace)
    assert head.metadata.annotations[DASHBOARD_URL_ANNOTATION] == fake_cluster.standin.dashboard_url(
        f"{namespace}/chat-v1"
    )

    # Known but with nothing to deploy: Ray's empty answer. Unknown paths and names: 404.
    empty_url = template.format(namespace=namespace, name="empty") + SERVE_DETAILS_PATH
    assert wait_for(lambda: (answer := get_json(empty_url))[0] == 200 and answer)[1] == empty_serve_details()
    assert get_json(template.format(namespace=namespace, name="nope") + SERVE_DETAILS_PATH)[0] == 404
    assert get_json(template.format(namespace=namespace, name="chat-v1") + "/api/version")[0] == 404

    # The hooks show through; a deleted RayService is unknown again.
    fake_cluster.backend.replicas[f"{namespace}/chat-v1"] = 3
    states = [
        r["state"]
        for r in get_json(details_url)[1]["applications"]["chat"]["deployments"]["engine-ranks"]["replicas"]
    ]
    assert states.count("RUNNING") == 3
    custom.delete_namespaced_custom_object("ray.io", "v1", namespace, "rayservices", "chat-v1")
    wait_for(lambda: get_json(details_url)[0] == 404, timeout_s=20)
    core.delete_namespace(namespace)
    api_client.close()


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


def test_dashboard_facade_on_real_serve(cluster: Cluster, custom: Any, ns: str) -> None:
    namespace = ns
    config = yaml.safe_dump(
        {
            "applications": [
                {
                    "name": "echo",
                    "import_path": "tests.testing.serve_echo:build",
                    "route_prefix": "/echo",
                    "args": {"text": "hi"},
                }
            ]
        }
    )
    custom.create_namespaced_custom_object(
        "ray.io", "v1", namespace, "rayservices", make_rayservice("dash", config)
    )
    url = cluster.standin.dashboard_url(f"{namespace}/dash") + SERVE_DETAILS_PATH

    def running() -> Any:
        status, details = get_json(url)
        app = details.get("applications", {}).get("echo", {}) if status == 200 else {}
        return app.get("status") == "RUNNING" and details

    details = wait_for(running)
    assert_ray_shape(details)
    app = details["applications"]["echo"]
    assert (app["name"], app["route_prefix"]) == ("echo", "/echo")
    assert app["deployed_app_config"]["name"] == "echo"
    assert "runtime_env" not in app["deployed_app_config"]
    deployment = app["deployments"]["Echo"]
    assert (deployment["status"], deployment["target_num_replicas"]) == ("HEALTHY", 1)
    assert [replica["state"] for replica in deployment["replicas"]] == ["RUNNING"]
    assert all(name == "echo" for name in details["applications"])  # other RayServices' apps are not shown

    # The Serve controller's log, as the operator reads it: the file `controller_info` names,
    # through the log API, in this RayService's names only.
    controller = details["controller_info"]
    log_url = cluster.standin.dashboard_url(f"{namespace}/dash") + LOG_FILE_PATH
    query = urllib.parse.urlencode(
        {"node_id": controller["node_id"], "filename": controller["log_file_path"].lstrip("/"), "lines": 50}
    )
    with urllib.request.urlopen(f"{log_url}?{query}", timeout=10) as response:
        lines = response.read().decode().splitlines()
    assert 0 < len(lines) <= 50
    assert any("app='echo'" in line for line in lines), lines
    assert not any(f"{namespace}--" in line for line in lines), lines
    missing = urllib.parse.urlencode({"filename": "serve/no_such.log"})
    assert get_json(f"{log_url}?{missing}")[0] == 500  # as Ray's log API answers a missing file
    custom.delete_namespaced_custom_object("ray.io", "v1", namespace, "rayservices", "dash")
    wait_for(lambda: get_json(url)[0] == 404, timeout_s=20)


def test_a_rayservice_sees_only_its_own_lines_of_the_shared_controller_log() -> None:
    shared = ["ns--chat-v1--chat", "ns--chat-v10--chat", "ns--chat-v1--chat-eplb"]
    lines = [
        "Deploying Deployment(name='engine-ranks', app='ns--chat-v1--chat')",
        'deepseek-autoscaling-decision {"application": "ns--chat-v10--chat", "to_groups": 2}',
        "Deploying Deployment(name='engine-ranks', app='ns--chat-v1--chat-eplb')",
        "Controller starting",
    ]
    assert rayservice_log_lines(lines, "ns/chat-v1", shared) == [
        "Deploying Deployment(name='engine-ranks', app='chat')",
        "Deploying Deployment(name='engine-ranks', app='chat-eplb')",
        "Controller starting",
    ]
