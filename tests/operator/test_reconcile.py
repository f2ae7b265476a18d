"""The operator end to end against the test API server: create, steady state, upgrade, reject, delete."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from deepseek_operator.modelcfg import ArchitectureContext
from deepseek_operator.planner.plan import plan_deployment
from deepseek_operator.render import render_deployment
from deepseek_operator.validation import validate_deployment
from e2e_tests.support import Cluster
from tests.api.resources import EXAMPLES, example
from tests.operator.conftest import InstantServe, eventually

SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "ownerReferences",
)


DRAIN_S = 11  # requestTimeoutSeconds 1 + the operator's 10 s route-propagation margin


def _tiny(namespace: str) -> dict[str, Any]:
    document = copy.deepcopy(example("tiny-local"))
    document["metadata"]["namespace"] = namespace
    # A version leaving the route drains for the longest request: keep the tests' drains short.
    document["spec"].setdefault("serving", {}).setdefault("limits", {})["requestTimeoutSeconds"] = 1
    return document


@pytest.fixture
def cluster(k8s_client: Any, namespace: str) -> Cluster:
    return Cluster(k8s_client, namespace)


def _serving(cluster: Cluster, name: str, version: str) -> dict[str, Any]:
    status: dict[str, Any] = cluster.deployment(name).get("status") or {}
    assert status.get("phase") == "Serving", status.get("message")
    assert status.get("currentVersion") == version
    return status


def test_create_serves_and_steady_state_writes_nothing(
    operator: Callable[[], KopfRunner], cluster: Cluster, instant_serve: InstantServe
) -> None:
    with operator() as runner:
        created = cluster.create_deployment(_tiny(cluster.namespace))
        status = eventually(lambda: _serving(cluster, "tiny", "v1"))

        ray_service = cluster.ray_service_of("tiny", "v1")
        (owner,) = ray_service["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "DeepSeekDeployment",
            created["metadata"]["uid"],
            True,
        )
        assert status["observedGeneration"] == created["metadata"]["generation"]
        # The resync timer must not cost a finalizer write (handlers._without_finalizer).
        assert not cluster.deployment("tiny")["metadata"].get("finalizers")
        assert [c["type"] for c in status["conditions"]] == ["Ready", "Progressing", "Degraded"]
        assert cluster.condition("tiny", "Ready")["status"] == "True"
        assert status["plan"]["tensorParallelSize"] == 1
        assert (status["desiredGroups"], status["readyGroups"]) == (1, 1)
        reasons = [event.reason for event in cluster.events("tiny")]
        assert "Planned" in reasons or "Ready" in reasons

        # Steady state: two resyncs later, nothing was written.
        versions = (
            cluster.deployment("tiny")["metadata"]["resourceVersion"],
            ray_service["metadata"]["resourceVersion"],
        )
        events = len(cluster.events("tiny"))
        time.sleep(5)
        assert (
            cluster.deployment("tiny")["metadata"]["resourceVersion"],
            cluster.ray_service_of("tiny", "v1")["metadata"]["resourceVersion"],
        ) == versions
        assert len(cluster.events("tiny")) == events
    assert runner.exception is None, runner.output


def test_operator_applies_exactly_what_dsd_render_prints(
    operator: Callable[[], KopfRunner], cluster: Cluster, instant_serve: InstantServe
) -> None:
    document = _tiny(cluster.namespace)
    with operator():
        cluster.create_deployment(document)
        eventually(lambda: _serving(cluster, "tiny", "v1"))
        applied = cluster.ray_service_of("tiny", "v1")
    validated = validate_deployment(document, ArchitectureContext(base_dir=EXAMPLES))
    (rendered,) = render_deployment(validated, plan_deployment(validated)).of_kind("RayService")
    for field in SERVER_FIELDS:
        applied["metadata"].pop(field, None)
    applied.pop("status", None)
    # The API server keeps keys in its own order; the content must be identical.
    assert json.dumps(applied, sort_keys=True) == json.dumps(rendered, sort_keys=True)


def test_new_version_starts_beside_the_old_and_replaces_it(
    operator: Callable[[], KopfRunner], cluster: Cluster, instant_serve: InstantServe
) -> None:
    document = _tiny(cluster.namespace)
    with operator():
        cluster.create_deployment(document)
        eventually(lambda: _serving(cluster, "tiny", "v1"))
        failing_v2 = (cluster.namespace, "tiny", "v2")
        instant_serve.failing_versions.add(failing_v2)
        versions = [*document["spec"]["versions"], {"name": "v2", "engineArgs": {"max_num_seqs": 4}}]
        cluster.patch_spec("tiny", {"versions": versions})

        # v2 fails to start: v1 keeps serving, the deployment says Degraded with KubeRay's reason.
        def degraded() -> dict[str, Any]:
            status: dict[str, Any] = cluster.deployment("tiny")["status"]
            assert (status["phase"], status["currentVersion"]) == ("Degraded", "v1"), status
            return status

        eventually(degraded)
        assert "engine failed to start" in cluster.condition("tiny", "Degraded")["message"]
        assert cluster.condition("tiny", "Ready")["status"] == "True"
        assert set(cluster.ray_services_by_version("tiny")) == {"v1", "v2"}

        # v2 recovers: it takes over; v1 leaves the route, drains, then goes.
        instant_serve.failing_versions.discard(failing_v2)
        status = eventually(lambda: _serving(cluster, "tiny", "v2"))
        assert status["observedGeneration"] == cluster.deployment("tiny")["metadata"]["generation"]
        assert [(t["version"], t["role"], t["weight"]) for t in status["traffic"]] == [
            ("v2", "Stable", 100),
            ("v1", "Draining", 0),
        ]
        service = cluster.core.read_namespaced_service("tiny", cluster.namespace)
        assert service.spec.selector["deepseek.serving.dev/version"] == "v2"
        eventually(lambda: set(cluster.ray_services_by_version("tiny")) == {"v2"}, timeout=DRAIN_S + 10)
        (history,) = cluster.deployment("tiny")["status"]["history"]
        assert (history["version"], history["fromVersion"], history["outcome"]) == ("v2", "v1", "Promoted")


def test_groups_change_in_place_and_engine_args_roll_out(
    operator: Callable[[], KopfRunner], cluster: Cluster, instant_serve: InstantServe
) -> None:
    document = _tiny(cluster.namespace)
    with operator():
        cluster.create_deployment(document)
        eventually(lambda: _serving(cluster, "tiny", "v1"))
        before = cluster.ray_service_of("tiny", "v1")

        # More groups: the same RayService, resized (its revision is its content, groups aside).
        cluster.patch_spec("tiny", {"groups": 2})

        def resized() -> dict[str, Any]:
            ray_service = cluster.ray_service_of("tiny", "v1")
            (application,) = yaml.safe_load(ray_service["spec"]["serveConfigV2"])["applications"]
            scaling = application["deployments"][0]["autoscaling_config"]
            assert (scaling["min_replicas"], scaling["max_replicas"]) == (2, 2), scaling
            return ray_service

        ray_service = eventually(resized)
        assert ray_service["metadata"]["name"] == before["metadata"]["name"]
        workers = ray_service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
        assert (workers["replicas"], workers["numOfHosts"]) == (2, 1)
        eventually(lambda: cluster.deployment("tiny")["status"]["desiredGroups"] == 2)

        # Other engine arguments: a new revision of v1, rolled out beside the old one.
        version = {**document["spec"]["versions"][0], "engineArgs": {"max_num_seqs": 4}}
        cluster.patch_spec("tiny", {"versions": [version]})

        def rolled_out() -> dict[str, Any]:
            status = _serving(cluster, "tiny", "v1")
            (stable,) = [t for t in status["traffic"] if t["role"] == "Stable"]
            assert stable["rayService"] != before["metadata"]["name"], status["traffic"]
            return stable

        stable = eventually(rolled_out)
        args = yaml.safe_load(cluster.ray_services()[stable["rayService"]]["spec"]["serveConfigV2"])
        assert args["applications"][0]["args"]["engineArgs"]["max_num_seqs"] == 4
        eventually(lambda: set(cluster.ray_services()) == {stable["rayService"]}, timeout=DRAIN_S + 10)


def test_invalid_change_is_rejected_without_touching_what_serves(
    operator: Callable[[], KopfRunner], cluster: Cluster, instant_serve: InstantServe
) -> None:
    with operator():
        cluster.create_deployment(_tiny(cluster.namespace))
        eventually(lambda: _serving(cluster, "tiny", "v1"))
        served = cluster.ray_service_of("tiny", "v1")["metadata"]["resourceVersion"]
        cluster.patch_spec("tiny", {"model": {"maxModelLen": 10**6}})

        def rejected() -> dict[str, Any]:
            degraded = cluster.condition("tiny", "Degraded")
            assert (degraded["status"], degraded["reason"]) == ("True", "ValidationFailed"), degraded
            return degraded

        degraded = eventually(rejected)
        assert "spec.model.maxModelLen: 1000000 exceeds max_position_embeddings=4096" in degraded["message"]
        warnings = [e for e in cluster.events("tiny") if e.type == "Warning"]
        assert [e.reason for e in warnings] == ["ValidationFailed"]
        assert cluster.ray_service_of("tiny", "v1")["metadata"]["resourceVersion"] == served
        assert cluster.condition("tiny", "Ready")["status"] == "True"  # ready means serves


def test_restart_converges_and_delete_cleans_up(
    operator: Callable[[], KopfRunner], cluster: Cluster, instant_serve: InstantServe
) -> None:
    document = _tiny(cluster.namespace)
    with operator():
        cluster.create_deployment(document)
        eventually(lambda: _serving(cluster, "tiny", "v1"))
    # While no operator runs, the spec moves on; a new operator picks it up from the watch listing.
    cluster.patch_spec("tiny", {"versions": [*document["spec"]["versions"], {"name": "v2"}]})
    with operator():
        eventually(lambda: _serving(cluster, "tiny", "v2"))
        cluster.delete_deployment("tiny")
        eventually(lambda: cluster.ray_services() == {})
        eventually(
            lambda: all(
                s.metadata.name != "tiny"
                for s in cluster.core.list_namespaced_service(cluster.namespace).items
            )
        )
