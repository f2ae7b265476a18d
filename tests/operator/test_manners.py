"""What a production operator owes, tried as a user would (issue 10's defects), against `dsd operator`
running as its own process with a five-minute resync (and the default two-second settle before a
new RayService): everything below happens within seconds, so it is driven by watch events, not by
the periodic resync.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from typer.testing import CliRunner

from deepseek_operator.cli import app
from deepseek_operator.modelcfg.catalog import catalog_config
from deepseek_operator.testing.kuberay import KubeRayStandIn
from deepseek_operator.testing.process import OperatorProcess
from deepseek_serving.autoscaling import DECISION_LOG_PREFIX
from e2e_tests.support import GROUP, Cluster
from tests.api.resources import example
from tests.operator.conftest import InstantServe, eventually

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def operator_process(
    kubeconfig: Path, kuberay_standin: KubeRayStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    env = {
        "DSD_RECONCILE__RESYNC_SECONDS": "300",
        "DSD_RAY__SERVE_TTL_SECONDS": "0.5",
        "DSD_RAY__DASHBOARD_URL_TEMPLATE": kuberay_standin.dashboard_url_template,
    }
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with OperatorProcess(kubeconfig, log, env=env, standalone=True) as process:
        yield process


@pytest.fixture
def cluster(k8s_client: Any, namespace: str, operator_process: OperatorProcess) -> Cluster:
    return Cluster(k8s_client, namespace)


def _tiny(namespace: str, name: str = "tiny") -> dict[str, Any]:
    document = copy.deepcopy(example("tiny-local"))
    document["metadata"] = {"name": name, "namespace": namespace}
    document["spec"]["serving"] = {"limits": {"requestTimeoutSeconds": 1}}
    return document


def _serving(cluster: Cluster, name: str = "tiny", version: str = "v1") -> dict[str, Any]:
    status: dict[str, Any] = cluster.deployment(name).get("status") or {}
    assert (status.get("phase"), status.get("currentVersion")) == ("Serving", version), status.get("message")
    return status


def _load_config_map(namespace: str, hot_expert: int, heat: float = 100.0) -> dict[str, Any]:
    """Expert-load statistics of the tiny model (2 MoE layers, 16 experts) with one hot expert."""
    layers = [[heat if expert == hot_expert else 1.0 for expert in range(16)] for _ in range(2)]
    document = {"format": "deepseek.serving.dev/expert-load/v1", "layers": layers}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "tiny-load", "namespace": namespace},
        "data": {"expert-load.json": json.dumps(document)},
    }


def _eplb_tiny(namespace: str) -> dict[str, Any]:
    """The tiny model on two GPUs of one node, EPLB on, planned from the load statistics."""
    document = _tiny(namespace)
    spec = document["spec"]
    spec["parallelism"] = {
        "tensorParallelSize": 1,
        "dataParallelSize": 2,
        "expertParallelSize": 2,
        "eplb": {
            "enabled": True,
            "redundantExperts": 2,
            "loadStats": {"name": "tiny-load", "key": "expert-load.json"},
        },
    }
    spec["resources"] = {"gpuType": "H100", "gpusPerNode": 2}
    return document


def _plan(cluster: Cluster) -> dict[str, Any]:
    plan: dict[str, Any] = (cluster.deployment("tiny").get("status") or {})["plan"]
    return plan


def test_render_plans_from_a_load_config_map_as_the_operator_does_and_edits_reach_it_in_seconds(
    cluster: Cluster, tmp_path: Path
) -> None:
    config_map, document = _load_config_map(cluster.namespace, hot_expert=3), _eplb_tiny(cluster.namespace)
    cluster.core.create_namespaced_config_map(cluster.namespace, config_map)
    cluster.create_deployment(document)
    planned = eventually(lambda: _plan(cluster))
    applied = eventually(lambda: cluster.ray_service_of("tiny", "v1"))

    # dsd render, given the same ConfigMap among its files, prints exactly the operator's RayService.
    (tmp_path / "deployment.yaml").write_text(yaml.safe_dump_all([config_map, document]))
    rendered = CliRunner().invoke(app, ["render", str(tmp_path / "deployment.yaml"), "-o", "json"])
    assert rendered.exit_code == 0, rendered.output
    (offline,) = [item for item in json.loads(rendered.output)["items"] if item["kind"] == "RayService"]
    offline_config = yaml.safe_load(offline["spec"].pop("serveConfigV2"))
    applied_config = yaml.safe_load(applied["spec"].pop("serveConfigV2"))
    assert offline_config == applied_config
    assert offline["spec"] == applied["spec"]
    assert offline["metadata"]["name"] == applied["metadata"]["name"]

    # The referenced ConfigMap is watched: an edit is planned in seconds, not at the next resync.
    started = time.monotonic()
    cluster.core.replace_namespaced_config_map(
        "tiny-load", cluster.namespace, _load_config_map(cluster.namespace, 11, heat=3.0)
    )
    eventually(lambda: _plan(cluster) != planned, timeout=10)
    assert time.monotonic() - started < 10


def test_hand_edits_of_managed_fields_are_reverted_and_deleted_children_recreated(cluster: Cluster) -> None:
    cluster.create_deployment(_tiny(cluster.namespace))
    eventually(_serving_tiny(cluster))
    ray_service = cluster.ray_service_of("tiny", "v1")
    name = ray_service["metadata"]["name"]
    worker_path = ray_service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    rendered_env = worker_path[0]["template"]["spec"]["containers"][0]["env"]

    # A worker count, a container's environment and a managed label, changed by hand.
    edited = copy.deepcopy(worker_path)
    edited[0]["replicas"] = 5
    edited[0]["template"]["spec"]["containers"][0]["env"] = [*rendered_env, {"name": "HAND", "value": "edit"}]
    hand_edit = {
        "metadata": {"labels": {f"{GROUP}/version": "hand"}},
        "spec": {"rayClusterConfig": {"workerGroupSpecs": edited}},
    }
    cluster.custom.patch_namespaced_custom_object(
        "ray.io", "v1", cluster.namespace, "rayservices", name, hand_edit
    )
    # The stable Service's selector, widened by hand.
    cluster.core.patch_namespaced_service("tiny", cluster.namespace, {"spec": {"selector": {"extra": "x"}}})

    def reverted() -> bool:
        current = cluster.custom.get_namespaced_custom_object(
            "ray.io", "v1", cluster.namespace, "rayservices", name
        )
        group = current["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
        selector = cluster.core.read_namespaced_service("tiny", cluster.namespace).spec.selector
        return (
            group["replicas"] == 1
            and group["template"]["spec"]["containers"][0]["env"] == rendered_env
            and current["metadata"]["labels"][f"{GROUP}/version"] == "v1"
            and "extra" not in selector
        )

    eventually(reverted, timeout=10)

    # The Event follows the pass's status write, a moment after the objects were reverted.
    def drift_events() -> list[str]:
        return [event.message for event in cluster.events("tiny") if event.reason == "DriftCorrected"]

    corrected = eventually(drift_events, timeout=10)
    assert f"RayService/{name}" in " ".join(corrected)

    # A child deleted by hand comes back.
    cluster.core.delete_namespaced_service("tiny", cluster.namespace)

    def names() -> set[str]:
        return {
            service.metadata.name for service in cluster.core.list_namespaced_service(cluster.namespace).items
        }

    eventually(lambda: "tiny" in names(), timeout=10)


def _serving_tiny(cluster: Cluster):  # type: ignore[no-untyped-def]
    return lambda: _serving(cluster)


def test_a_recreated_deployment_adopts_orphans_and_its_deletion_leaves_nothing(cluster: Cluster) -> None:
    cluster.create_deployment(_tiny(cluster.namespace))
    eventually(_serving_tiny(cluster))
    orphaned = cluster.ray_service_of("tiny", "v1")["metadata"]["name"]
    cluster.custom.delete_namespaced_custom_object(
        GROUP, "v1alpha1", cluster.namespace, "deepseekdeployments", "tiny", propagation_policy="Orphan"
    )
    eventually(lambda: not cluster.ray_services()[orphaned]["metadata"].get("ownerReferences"), timeout=10)

    created = cluster.create_deployment(_tiny(cluster.namespace))
    eventually(_serving_tiny(cluster))
    adopted = cluster.ray_services()[orphaned]
    (owner,) = adopted["metadata"]["ownerReferences"]
    assert owner["uid"] == created["metadata"]["uid"]
    assert set(cluster.ray_services()) == {orphaned}  # adopted, not started again

    cluster.delete_deployment("tiny")
    eventually(lambda: cluster.ray_services() == {}, timeout=20)
    services = cluster.core.list_namespaced_service(cluster.namespace).items
    assert [s.metadata.name for s in services if s.metadata.name == "tiny"] == []


def test_names_never_collide_and_another_owners_object_is_never_taken(cluster: Cluster) -> None:
    first = _tiny(cluster.namespace, name="a")
    first["spec"]["versions"][0]["name"] = "b-v1"
    second = _tiny(cluster.namespace, name="a-b")
    cluster.create_deployment(first)
    cluster.create_deployment(second)
    eventually(lambda: _serving(cluster, "a", "b-v1") and _serving(cluster, "a-b", "v1"))
    names = {
        cluster.ray_service_of("a", "b-v1")["metadata"]["name"],
        cluster.ray_service_of("a-b", "v1")["metadata"]["name"],
    }
    assert len(names) == 2
    cluster.delete_deployment("a-b")
    eventually(lambda: set(cluster.ray_services_by_version("a-b")) == set(), timeout=20)
    assert set(cluster.ray_services_by_version("a")) == {"b-v1"}

    # A Service someone else made under the name the deployment needs: refused, left alone.
    cluster.core.create_namespaced_service(
        cluster.namespace,
        {"metadata": {"name": "c", "labels": {"team": "theirs"}}, "spec": {"ports": [{"port": 80}]}},
    )
    cluster.create_deployment(_tiny(cluster.namespace, name="c"))

    def conflict() -> dict[str, Any]:
        degraded = cluster.condition("c", "Degraded")
        assert (degraded["status"], degraded["reason"]) == ("True", "NameConflict"), degraded
        return degraded

    degraded = eventually(conflict, timeout=20)
    assert "Service c exists and belongs to no DeepSeekDeployment" in degraded["message"]
    theirs = cluster.core.read_namespaced_service("c", cluster.namespace)
    assert theirs.metadata.labels == {"team": "theirs"}
    assert not theirs.metadata.owner_references
    assert [e.reason for e in cluster.events("c") if e.type == "Warning"] == ["NameConflict"]
    cluster.delete_deployment("c")
    time.sleep(1)
    assert cluster.core.read_namespaced_service("c", cluster.namespace).metadata.labels == {"team": "theirs"}


def test_ten_version_changes_in_two_seconds_start_only_the_last(cluster: Cluster, kubeconfig: Path) -> None:
    document = _tiny(cluster.namespace)
    cluster.create_deployment(document)
    eventually(_serving_tiny(cluster))
    created: list[str] = []
    deleted: list[str] = []
    stop = threading.Event()

    def record() -> None:
        api = client.ApiClient(cluster.api_client.configuration)
        custom = client.CustomObjectsApi(api)
        stream = watch.Watch()
        for event in stream.stream(
            custom.list_namespaced_custom_object,
            "ray.io",
            "v1",
            cluster.namespace,
            "rayservices",
            timeout_seconds=60,
        ):
            (created if event["type"] == "ADDED" else deleted if event["type"] == "DELETED" else []).append(
                event["object"]["metadata"]["labels"][f"{GROUP}/version"]
            )
            if stop.is_set():
                stream.stop()

    recorder = threading.Thread(target=record, daemon=True)
    recorder.start()
    time.sleep(1)
    for index in range(2, 12):
        cluster.patch_spec("tiny", {"versions": [{"name": f"v{index}"}]})
        time.sleep(0.2)
    eventually(lambda: _serving(cluster, "tiny", "v11"), timeout=30)
    eventually(lambda: set(cluster.ray_services_by_version("tiny")) == {"v11"}, timeout=30)
    stop.set()
    cluster.patch_spec("tiny", {"groups": 1})  # one more event ends the watch
    recorder.join(timeout=30)
    assert created == ["v1", "v11"]  # the listing's existing v1, then only the final version
    assert deleted == ["v1"]


def test_status_follows_groups_as_they_start_not_the_resync(
    cluster: Cluster, kuberay_standin: KubeRayStandIn
) -> None:
    """`kubectl scale`: Ray Serve starting the new group's replicas is no event the operator
    watches, so while groups start it looks at Serve again (every TTL) until they are ready."""
    cluster.create_deployment(_tiny(cluster.namespace))
    eventually(_serving_tiny(cluster))
    name = cluster.ray_service_of("tiny", "v1")["metadata"]["name"]
    backend = kuberay_standin.backend
    assert isinstance(backend, InstantServe)
    key = f"{cluster.namespace}/{name}"
    backend.replicas[key] = 1  # the second group's replica is still starting
    try:
        cluster.patch_spec("tiny", {"groups": 2})

        def groups() -> tuple[int, int]:
            status = cluster.deployment("tiny").get("status") or {}
            return status.get("desiredGroups"), status.get("readyGroups")

        eventually(lambda: groups() == (2, 1), timeout=10)
    finally:
        del backend.replicas[key]  # it is up
    eventually(lambda: groups() == (2, 2), timeout=10)


def test_an_autoscaler_decision_is_a_scaled_event_with_the_reason_from_the_controller_log(
    cluster: Cluster, kuberay_standin: KubeRayStandIn
) -> None:
    """Ray Serve's autoscaler changes the group count; the operator only observes it, and reads why
    from the Serve controller's log through the dashboard's log API (only when the count moved)."""
    document = _tiny(cluster.namespace)
    del document["spec"]["groups"]
    document["spec"]["autoscaling"] = {"minGroups": 1, "maxGroups": 2}
    cluster.create_deployment(document)
    eventually(_serving_tiny(cluster))
    key = f"{cluster.namespace}/{cluster.ray_service_of('tiny', 'v1')['metadata']['name']}"
    backend = kuberay_standin.backend
    assert isinstance(backend, InstantServe)
    decision = {
        "application": "tiny", "deployment": "tiny", "version": "v1", "from_groups": 1, "to_groups": 2,
        "ready_groups": 1, "queue_depth": 12.0, "rule": "ScaleUp", "time_s": 1796290230.43,
        "reason": "level 12 req (in system 12) -> forecast 12; ... -> scale up to 2",
    }  # fmt: skip
    backend.controller_logs[key] = [
        "INFO 2026-12-03 09:30:14,896 controller 8675 -- Adding 1 replica to Deployment(...).",
        f"INFO 2026-12-03 09:30:30,429 controller 8675 -- {DECISION_LOG_PREFIX}{json.dumps(decision)}",
    ]
    # The new group starts: Serve's deployment is UPSCALING, which KubeRay's status shows (a watch
    # event); the operator then looks at Serve every TTL until the groups are ready.
    backend.replicas[key] = 1
    backend.target_replicas[key] = 2
    why = "ScaleUp at queue depth 12: level 12 req (in system 12) -> forecast 12; ... -> scale up to 2"

    def traffic() -> dict[str, Any]:
        entry: dict[str, Any] = cluster.deployment("tiny")["status"]["traffic"][0]
        return entry

    try:
        eventually(lambda: traffic()["desiredGroups"] == 2, timeout=10)
        assert traffic()["lastScaling"] == {
            "fromGroups": 1, "toGroups": 2, "rule": "ScaleUp", "queueDepth": 12.0,
            "reason": decision["reason"], "decidedAt": "2026-12-03T09:30:30Z",
        }  # fmt: skip
        scaled = eventually(lambda: [e.message for e in cluster.events("tiny") if e.reason == "Scaled"])
        assert scaled == [f"v1: 1 → 2 group(s) ({why})"]
        del backend.replicas[key]
        eventually(lambda: traffic()["readyGroups"] == 2, timeout=10)
        # A change the log does not explain (here: none logged) is an Event without a stale reason.
        backend.replicas[key] = 2  # the leaving group drains: Serve's deployment is DOWNSCALING
        backend.target_replicas[key] = 1
        eventually(lambda: traffic()["desiredGroups"] == 1, timeout=10)
        assert traffic().get("lastScaling") is None
        messages = eventually(
            lambda: [m for m in (e.message for e in cluster.events("tiny")) if m.startswith("v1: 2 → 1")]
        )
        assert messages == ["v1: 2 → 1 group(s)"]
    finally:
        backend.replicas.pop(key, None)
        backend.target_replicas.pop(key, None)
        backend.controller_logs.pop(key, None)


def test_a_spec_error_found_past_validation_is_status_and_one_warning(cluster: Cluster) -> None:
    """The CRD refuses groups 0 without scale-to-zero; a stored object that slipped past it
    (CRD applied later) is refused by the operator with its field path, once."""
    document = _tiny(cluster.namespace)
    cluster.create_deployment(document)
    eventually(_serving_tiny(cluster))
    cluster.patch_spec("tiny", {"model": {"maxModelLen": 10**6}})

    def invalid() -> dict[str, Any]:
        degraded = cluster.condition("tiny", "Degraded")
        assert (degraded["status"], degraded["reason"]) == ("True", "ValidationFailed")
        return degraded

    eventually(invalid, timeout=10)
    time.sleep(2)
    warnings = [e for e in cluster.events("tiny") if e.type == "Warning"]
    assert [e.reason for e in warnings] == ["ValidationFailed"]
    assert cluster.condition("tiny", "Ready")["status"] == "True"


def test_status_fields_that_become_unset_are_removed(cluster: Cluster) -> None:
    config_map = _load_config_map(cluster.namespace, hot_expert=0)
    cluster.core.create_namespaced_config_map(cluster.namespace, config_map)
    document = _eplb_tiny(cluster.namespace)
    cluster.create_deployment(document)
    eventually(lambda: _serving(cluster)["plan"].get("eplbBalancedness") is not None)
    # One rank per group: nothing to balance, no balancedness.
    cluster.patch_spec(
        "tiny",
        {
            "parallelism": {
                "tensorParallelSize": 1,
                "dataParallelSize": 1,
                "expertParallelSize": 1,
                "eplb": None,
            }
        },
    )
    eventually(lambda: "eplbBalancedness" not in cluster.deployment("tiny")["status"]["plan"], timeout=20)
    assert cluster.deployment("tiny")["status"]["plan"]["expertParallelSize"] == 1


def test_the_architecture_config_map_is_read_from_the_watch(cluster: Cluster) -> None:
    cluster.core.create_namespaced_config_map(
        cluster.namespace,
        {"metadata": {"name": "arch"}, "data": {"config.json": json.dumps({"max_position_embeddings": 1})}},
    )
    document = _tiny(cluster.namespace)
    document["spec"]["model"]["architecture"] = {"configMapRef": {"name": "arch"}}
    cluster.create_deployment(document)
    eventually(lambda: cluster.condition("tiny", "Degraded")["reason"] == "ValidationFailed", timeout=10)
    cluster.core.replace_namespaced_config_map(
        "arch",
        cluster.namespace,
        {"metadata": {"name": "arch"}, "data": {"config.json": json.dumps(catalog_config("deepseek-tiny"))}},
    )
    eventually(_serving_tiny(cluster), timeout=10)


def test_a_rollout_steered_with_dsd_rollout_and_shown_by_kubectl(
    cluster: Cluster, kubeconfig_env: Path
) -> None:
    document = _tiny(cluster.namespace)
    document["spec"]["rollout"] = {"steps": [{"setWeight": 50}, {"pause": {}}]}
    cluster.create_deployment(document)
    eventually(_serving_tiny(cluster))
    cluster.patch_spec("tiny", {"versions": [*document["spec"]["versions"], {"name": "v2"}]})

    def paused() -> dict[str, Any]:
        status: dict[str, Any] = cluster.deployment("tiny")["status"]
        assert (status["phase"], status["canaryWeight"], status["canaryStep"]) == ("Paused", 50, "2/2"), (
            status
        )
        return status

    eventually(paused, timeout=20)
    runner = CliRunner()
    shown = runner.invoke(app, ["rollout", "status", "tiny", "-n", cluster.namespace])
    assert shown.exit_code == 0, shown.output
    assert "v1 → v2, step 2/2, Paused: paused until promoted" in shown.output

    promoted = runner.invoke(app, ["rollout", "promote", "tiny", "-n", cluster.namespace])
    assert promoted.exit_code == 0, promoted.output
    eventually(lambda: _serving(cluster, "tiny", "v2"), timeout=20)

    # Back to v1 from history: a new rollout of it, paused at the same step.
    undone = runner.invoke(app, ["rollout", "undo", "tiny", "-n", cluster.namespace])
    assert undone.exit_code == 0, undone.output
    assert [v["name"] for v in cluster.deployment("tiny")["spec"]["versions"]] == ["v2", "v1"]
    eventually(lambda: cluster.deployment("tiny")["status"].get("canaryVersion") == "v1", timeout=20)
    aborted = runner.invoke(app, ["rollout", "abort", "tiny", "-n", cluster.namespace])
    assert aborted.exit_code == 0, aborted.output

    def rolled_back() -> dict[str, Any]:
        status: dict[str, Any] = cluster.deployment("tiny")["status"]
        assert (status["phase"], status["currentVersion"], status["rollout"]["phase"]) == (
            "RolledBack",
            "v2",
            "Aborted",
        ), status
        return status

    status = eventually(rolled_back, timeout=20)
    assert [(h["version"], h["outcome"]) for h in status["history"]] == [
        ("v2", "Promoted"),
        ("v1", "Aborted"),
    ]
    assert cluster.condition("tiny", "Degraded")["reason"] == "Aborted"
